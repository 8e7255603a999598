//! Every key the shard-server stores is built here. Each key space starts with a one-byte
//! prefix, and integers are big-endian so that byte order equals numeric order. Records are
//! not here: they live in the journal.
//!
//! | family  | prefix | key                                             | value              |
//! |---------|--------|-------------------------------------------------|--------------------|
//! | catalog | `c`    | stream name                                     | stream definition  |
//! | meta    | `s`    | stream id (8) · shard index (4)                 | counter (8) · arrival ms (8) |
//! | meta    | `a`    | stream id (8) · shard index (4) · `h`/`p`/`f`    | Raft hard state / snapshot / first index |
//! | meta    | `m`    | name                                            | server metadata    |
//! | leases  | `l`    | application · 0 · stream · 0 · shard index (4)  | lease (JSON)       |

/// Prefix of stream definitions in the catalog family.
pub const STREAM_PREFIX: u8 = b'c';
/// Prefix of per-shard sequence counters in the meta family.
pub const COUNTER_PREFIX: u8 = b's';
/// Prefix of per-shard Raft state in the meta family.
pub const RAFT_PREFIX: u8 = b'a';
/// Raft state kinds, the last byte of a Raft state key.
pub const RAFT_HARD_STATE: u8 = b'h';
/// See [`RAFT_HARD_STATE`].
pub const RAFT_SNAPSHOT: u8 = b'p';
/// See [`RAFT_HARD_STATE`].
pub const RAFT_FIRST_INDEX: u8 = b'f';
/// See [`RAFT_HARD_STATE`].
pub const RAFT_MEMBERSHIP: u8 = b'm';
/// Prefix of named server metadata in the meta family.
pub const META_PREFIX: u8 = b'm';

/// Prefix of leases in the leases family.
pub const LEASE_PREFIX: u8 = b'l';

/// Meta key of the secret that authenticates shard iterators.
pub const ITERATOR_SECRET: &str = "iterator-secret";
/// Meta key of the next stream id to hand out.
pub const NEXT_STREAM_ID: &str = "next-stream-id";

/// Key of a stream definition.
pub fn stream(name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + name.len());
    key.push(STREAM_PREFIX);
    key.extend_from_slice(name.as_bytes());
    key
}

/// The half-open range holding every stream definition.
pub fn stream_range() -> (Vec<u8>, Vec<u8>) {
    (vec![STREAM_PREFIX], vec![STREAM_PREFIX + 1])
}

fn shard_prefix(prefix: u8, stream_id: u64, shard: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(29);
    key.push(prefix);
    key.extend_from_slice(&stream_id.to_be_bytes());
    key.extend_from_slice(&shard.to_be_bytes());
    key
}

/// The half-open range of every key of one stream under `prefix`.
pub fn stream_data_range(prefix: u8, stream_id: u64) -> (Vec<u8>, Vec<u8>) {
    let mut start = vec![prefix];
    start.extend_from_slice(&stream_id.to_be_bytes());
    let mut end = vec![prefix];
    match stream_id.checked_add(1) {
        Some(next) => end.extend_from_slice(&next.to_be_bytes()),
        None => end = vec![prefix + 1],
    }
    (start, end)
}

/// Key of a shard's last assigned sequence counter.
pub fn counter(stream_id: u64, shard: u32) -> Vec<u8> {
    shard_prefix(COUNTER_PREFIX, stream_id, shard)
}

/// Key of one piece of a shard's Raft state (`RAFT_HARD_STATE`, …).
pub fn raft(stream_id: u64, shard: u32, kind: u8) -> Vec<u8> {
    let mut key = shard_prefix(RAFT_PREFIX, stream_id, shard);
    key.push(kind);
    key
}

fn lease_prefix(application: &str, stream: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(3 + application.len() + stream.len() + 4);
    key.push(LEASE_PREFIX);
    key.extend_from_slice(application.as_bytes());
    key.push(0);
    key.extend_from_slice(stream.as_bytes());
    key.push(0);
    key
}

/// Key of one lease. Application and stream names never contain a NUL byte.
pub fn lease(application: &str, stream: &str, shard: u32) -> Vec<u8> {
    let mut key = lease_prefix(application, stream);
    key.extend_from_slice(&shard.to_be_bytes());
    key
}

/// The half-open range of every lease of an application on a stream.
pub fn lease_range(application: &str, stream: &str) -> (Vec<u8>, Vec<u8>) {
    let start = lease_prefix(application, stream);
    let mut end = start.clone();
    if let Some(last) = end.last_mut() {
        *last = 1;
    }
    (start, end)
}

/// The half-open range of every lease of an application, on any stream.
pub fn application_range(application: &str) -> (Vec<u8>, Vec<u8>) {
    let mut start = vec![LEASE_PREFIX];
    start.extend_from_slice(application.as_bytes());
    let mut end = start.clone();
    start.push(0);
    end.push(1);
    (start, end)
}

/// The half-open range of every lease.
pub fn all_leases_range() -> (Vec<u8>, Vec<u8>) {
    (vec![LEASE_PREFIX], vec![LEASE_PREFIX + 1])
}

/// The application and stream names of a lease key.
pub fn lease_names(key: &[u8]) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(&[LEASE_PREFIX])?;
    let mut parts = rest.splitn(3, |b| *b == 0);
    let application = std::str::from_utf8(parts.next()?).ok()?;
    let stream = std::str::from_utf8(parts.next()?).ok()?;
    parts.next()?;
    Some((application, stream))
}

/// Key of named server metadata.
pub fn meta(name: &str) -> Vec<u8> {
    let mut key = vec![META_PREFIX];
    key.extend_from_slice(name.as_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_keys_sort_by_stream_then_shard() {
        assert!(counter(1, 0) < counter(1, 1));
        assert!(counter(1, u32::MAX) < counter(2, 0));
        let (start, end) = stream_data_range(COUNTER_PREFIX, 5);
        assert!(start <= counter(5, 0) && counter(5, u32::MAX) < end);
        assert!(counter(6, 0) >= end);
    }
}
