//! Every key the shard-server stores is built here. Each key space starts with a one-byte
//! prefix, and integers are big-endian so that byte order equals numeric order: a shard's
//! records sort by sequence, and its time index by arrival time.
//!
//! | family  | prefix | key                                             | value              |
//! |---------|--------|-------------------------------------------------|--------------------|
//! | catalog | `c`    | stream name                                     | stream definition  |
//! | records | `r`    | stream id (8) · shard index (4) · counter (8)   | encoded record     |
//! | records | `t`    | stream id (8) · shard index (4) · time ms (8) · counter (8) | empty  |
//! | meta    | `s`    | stream id (8) · shard index (4)                 | last counter (8)   |
//! | meta    | `m`    | name                                            | server metadata    |
//! | leases  | `l`    | application · 0 · stream · 0 · shard index (4)  | lease (JSON)       |

/// Prefix of stream definitions in the catalog family.
pub const STREAM_PREFIX: u8 = b'c';
/// Prefix of records in the records family.
pub const RECORD_PREFIX: u8 = b'r';
/// Prefix of the arrival-time index in the records family.
pub const TIME_INDEX_PREFIX: u8 = b't';
/// Prefix of per-shard sequence counters in the meta family.
pub const COUNTER_PREFIX: u8 = b's';
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

/// Key of one record.
pub fn record(stream_id: u64, shard: u32, counter: u64) -> Vec<u8> {
    let mut key = shard_prefix(RECORD_PREFIX, stream_id, shard);
    key.extend_from_slice(&counter.to_be_bytes());
    key
}

/// Decodes the counter of a record key built by [`record`].
pub fn record_counter(key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.get(13..21)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// Key of one time-index entry: the first record of a write batch in a shard.
pub fn time_index(stream_id: u64, shard: u32, time_ms: u64, counter: u64) -> Vec<u8> {
    let mut key = shard_prefix(TIME_INDEX_PREFIX, stream_id, shard);
    key.extend_from_slice(&time_ms.to_be_bytes());
    key.extend_from_slice(&counter.to_be_bytes());
    key
}

/// Decodes `(time_ms, counter)` of a time-index key built by [`time_index`].
pub fn time_index_entry(key: &[u8]) -> Option<(u64, u64)> {
    let time: [u8; 8] = key.get(13..21)?.try_into().ok()?;
    let counter: [u8; 8] = key.get(21..29)?.try_into().ok()?;
    Some((u64::from_be_bytes(time), u64::from_be_bytes(counter)))
}

/// The half-open range of every key of one shard under `prefix` (records or time index).
pub fn shard_range(prefix: u8, stream_id: u64, shard: u32) -> (Vec<u8>, Vec<u8>) {
    let start = shard_prefix(prefix, stream_id, shard);
    let end = match shard.checked_add(1) {
        Some(next) => shard_prefix(prefix, stream_id, next),
        None => stream_data_range(prefix, stream_id).1,
    };
    (start, end)
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
    fn record_keys_sort_by_counter_then_shard() {
        assert!(record(1, 0, 255) < record(1, 0, 256));
        assert!(record(1, 0, u64::MAX) < record(1, 1, 0));
        assert!(record(1, u32::MAX, u64::MAX) < record(2, 0, 0));
        assert_eq!(record_counter(&record(7, 3, 42)), Some(42));
    }

    #[test]
    fn ranges_cover_exactly_one_shard() {
        let (start, end) = shard_range(RECORD_PREFIX, 5, 2);
        assert!(start <= record(5, 2, 0) && record(5, 2, u64::MAX) < end);
        assert!(record(5, 1, u64::MAX) < start);
        assert!(record(5, 3, 0) >= end);
        let (start, end) = shard_range(RECORD_PREFIX, 5, u32::MAX);
        assert!(start <= record(5, u32::MAX, 9) && record(5, u32::MAX, u64::MAX) < end);
        assert!(record(6, 0, 0) >= end);
    }

    #[test]
    fn time_index_round_trips() {
        let key = time_index(1, 2, 1_700_000_000_000, 99);
        assert_eq!(time_index_entry(&key), Some((1_700_000_000_000, 99)));
        assert!(time_index(1, 2, 10, 5) < time_index(1, 2, 11, 0));
    }
}
