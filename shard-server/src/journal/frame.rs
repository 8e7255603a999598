//! The journal's unit: a frame. Every frame carries its shard, the Raft (term, index) of its
//! entry in that shard's log, and a CRC32C over everything after the CRC field, so a torn or
//! damaged frame is always detected. All integers are little-endian.
//!
//! ```text
//! 0   magic u32 "SHLF"   4 length u32 (whole frame)   8 crc32c u32 (bytes 12..length)
//! 12  kind u8, 3 reserved zero bytes
//! 16  stream id u64      24 shard u32      28 term u64      36 index u64      44 payload
//! ```
//!
//! A record batch's payload is `first counter u64 | count u32 | arrival ms u64`, then each
//! record as `key length u16 | key | data length u32 | data`. Every record of a batch shares
//! the batch's arrival time (the appender stamps one time per shard per group).

/// The first four bytes of every frame.
pub const MAGIC: u32 = u32::from_le_bytes(*b"SHLF");
/// Bytes before the payload.
pub const HEADER_LEN: usize = 44;
/// Bytes before the first record in a record batch's payload.
pub const BATCH_HEADER_LEN: usize = 20;
/// Bytes a record takes in a batch besides its key and data (their lengths).
pub const RECORD_OVERHEAD: usize = 6;
/// Largest frame the journal accepts; anything claiming more is damage.
pub const MAX_FRAME_LEN: usize = 256 << 20;

/// What a frame holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A batch of records of one shard.
    Records = 1,
    /// Entries from `index` on are removed from the shard's log (a Raft suffix truncation).
    Truncate = 2,
    /// Written first in every group write: the payload is the file length already durable
    /// before this write, so recovery can tell a torn tail from damage to acknowledged data.
    Marker = 3,
    /// An opaque Raft entry (a configuration change, an empty leader entry).
    Entry = 4,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            1 => Kind::Records,
            2 => Kind::Truncate,
            3 => Kind::Marker,
            4 => Kind::Entry,
            _ => return None,
        })
    }
}

/// The identity of a frame, as its header states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Its kind.
    pub kind: Kind,
    /// Stream id (0 for markers).
    pub stream: u64,
    /// Shard index.
    pub shard: u32,
    /// Raft term of the entry (0 in standalone).
    pub term: u64,
    /// Raft index of the entry in its shard's log.
    pub index: u64,
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Fewer bytes than the frame needs.
    #[error("frame cut short: {need} bytes needed, {have} present")]
    Short {
        /// Bytes the frame needs.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// The magic or length field is wrong.
    #[error("not a frame header")]
    NotAFrame,
    /// The checksum does not match the contents.
    #[error("checksum mismatch")]
    Checksum,
    /// The contents do not decode.
    #[error("malformed frame contents: {0}")]
    Malformed(&'static str),
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// Starts a frame at the end of `buf`; fill the payload, then call [`finish`] with the
/// returned start offset.
pub fn begin(buf: &mut Vec<u8>, header: Header) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&MAGIC.to_le_bytes());
    buf.extend_from_slice(&[0; 8]);
    buf.extend_from_slice(&[header.kind as u8, 0, 0, 0]);
    buf.extend_from_slice(&header.stream.to_le_bytes());
    buf.extend_from_slice(&header.shard.to_le_bytes());
    buf.extend_from_slice(&header.term.to_le_bytes());
    buf.extend_from_slice(&header.index.to_le_bytes());
    start
}

/// Seals the frame begun at `start`: writes its length and checksum. Returns its length.
pub fn finish(buf: &mut [u8], start: usize) -> usize {
    let frame = &mut buf[start..];
    let len = frame.len();
    frame[4..8].copy_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
    let crc = crc32c::crc32c(&frame[12..]);
    frame[8..12].copy_from_slice(&crc.to_le_bytes());
    len
}

/// Appends a record batch's payload header.
pub fn begin_batch(buf: &mut Vec<u8>, first_counter: u64, count: u32, arrival_ms: u64) {
    buf.extend_from_slice(&first_counter.to_le_bytes());
    buf.extend_from_slice(&count.to_le_bytes());
    buf.extend_from_slice(&arrival_ms.to_le_bytes());
}

/// Appends one record to a batch payload. Partition keys are at most 256 characters and data
/// at most 10 MiB, validated before this point.
pub fn push_record(buf: &mut Vec<u8>, key: &[u8], data: &[u8]) {
    buf.extend_from_slice(&u16::try_from(key.len()).unwrap_or(u16::MAX).to_le_bytes());
    buf.extend_from_slice(key);
    buf.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_le_bytes());
    buf.extend_from_slice(data);
}

/// Length of a marker frame.
pub const MARKER_LEN: usize = HEADER_LEN + 24;

/// Writes a marker frame into `slot` (exactly [`MARKER_LEN`] bytes): the segment length
/// durable before this write, the journal-wide group number and the time of the write.
pub fn write_marker(slot: &mut [u8], durable_len: u64, group: u64, written_ms: u64) {
    let mut buf = Vec::with_capacity(MARKER_LEN);
    let start = begin(&mut buf, Header { kind: Kind::Marker, stream: 0, shard: 0, term: 0, index: 0 });
    buf.extend_from_slice(&durable_len.to_le_bytes());
    buf.extend_from_slice(&group.to_le_bytes());
    buf.extend_from_slice(&written_ms.to_le_bytes());
    finish(&mut buf, start);
    slot.copy_from_slice(&buf);
}

/// A marker's `(durable length, group, written ms)`.
pub fn marker(payload: &[u8]) -> Result<(u64, u64, u64), FrameError> {
    let bad = FrameError::Malformed("short marker");
    Ok((u64_at(payload, 0).ok_or(bad)?, u64_at(payload, 8).ok_or(bad)?, u64_at(payload, 16).ok_or(bad)?))
}

/// The length a frame's first 12 bytes announce, once magic and bounds are checked.
pub fn announced_len(prefix: &[u8]) -> Result<usize, FrameError> {
    if prefix.len() < 12 {
        return Err(FrameError::Short { need: 12, have: prefix.len() });
    }
    if u32_at(prefix, 0) != Some(MAGIC) {
        return Err(FrameError::NotAFrame);
    }
    let len = u32_at(prefix, 4).map_or(0, |n| n as usize);
    if !(HEADER_LEN..=MAX_FRAME_LEN).contains(&len) {
        return Err(FrameError::NotAFrame);
    }
    Ok(len)
}

/// Checks one whole frame at the start of `bytes` and returns its header, payload and length.
pub fn parse(bytes: &[u8]) -> Result<(Header, &[u8], usize), FrameError> {
    let len = announced_len(bytes)?;
    if bytes.len() < len {
        return Err(FrameError::Short { need: len, have: bytes.len() });
    }
    let frame = &bytes[..len];
    if u32_at(frame, 8) != Some(crc32c::crc32c(&frame[12..])) {
        return Err(FrameError::Checksum);
    }
    let kind = Kind::from_byte(frame[12]).ok_or(FrameError::Malformed("unknown kind"))?;
    let header = Header {
        kind,
        stream: u64_at(frame, 16).ok_or(FrameError::Malformed("header"))?,
        shard: u32_at(frame, 24).ok_or(FrameError::Malformed("header"))?,
        term: u64_at(frame, 28).ok_or(FrameError::Malformed("header"))?,
        index: u64_at(frame, 36).ok_or(FrameError::Malformed("header"))?,
    };
    Ok((header, &frame[HEADER_LEN..], len))
}

/// A record batch's payload header: `(first counter, count, arrival ms)`.
pub fn batch_header(payload: &[u8]) -> Result<(u64, u32, u64), FrameError> {
    let bad = FrameError::Malformed("short batch header");
    Ok((u64_at(payload, 0).ok_or(bad)?, u32_at(payload, 8).ok_or(bad)?, u64_at(payload, 12).ok_or(bad)?))
}

/// The `(key, data)` of every record in a batch payload, in order.
pub fn records(payload: &[u8]) -> Records<'_> {
    Records { rest: payload.get(BATCH_HEADER_LEN..).unwrap_or_default() }
}

/// Iterator over a batch payload's records.
#[derive(Debug)]
pub struct Records<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<(&'a [u8], &'a [u8]), FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let mut take = |n: usize| -> Result<&'a [u8], FrameError> {
            if self.rest.len() < n {
                self.rest = &[];
                return Err(FrameError::Malformed("record cut short"));
            }
            let (head, tail) = self.rest.split_at(n);
            self.rest = tail;
            Ok(head)
        };
        let item = (|| {
            let key_len = u16::from_le_bytes(take(2)?.try_into().map_err(|_| FrameError::Malformed("key length"))?);
            let key = take(usize::from(key_len))?;
            let data_len = u32::from_le_bytes(take(4)?.try_into().map_err(|_| FrameError::Malformed("data length"))?);
            let data = take(data_len as usize)?;
            Ok((key, data))
        })();
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> Vec<u8> {
        let mut buf = b"junk".to_vec();
        let start = begin(&mut buf, Header { kind: Kind::Records, stream: 7, shard: 3, term: 2, index: 9 });
        begin_batch(&mut buf, 100, 2, 1_700_000_000_000);
        push_record(&mut buf, b"k1", b"first");
        push_record(&mut buf, b"", b"");
        finish(&mut buf, start);
        buf.split_off(4)
    }

    #[test]
    fn a_batch_round_trips() {
        let frame = batch();
        let (header, payload, len) = parse(&frame).expect("parse");
        assert_eq!(len, frame.len());
        assert_eq!(header, Header { kind: Kind::Records, stream: 7, shard: 3, term: 2, index: 9 });
        assert_eq!(batch_header(payload).expect("header"), (100, 2, 1_700_000_000_000));
        let records: Vec<_> = records(payload).collect::<Result<_, _>>().expect("records");
        assert_eq!(records, vec![(&b"k1"[..], &b"first"[..]), (&b""[..], &b""[..])]);
    }

    #[test]
    fn every_damaged_byte_and_every_cut_is_detected() {
        let frame = batch();
        for at in 0..frame.len() {
            assert!(parse(&frame[..at]).is_err(), "cut at {at}");
            let mut damaged = frame.clone();
            damaged[at] ^= 0x40;
            assert!(parse(&damaged).is_err(), "byte {at} flipped");
        }
    }
}
