//! A shard's record log in the store: how a record is encoded, how a slice of the log is read
//! (bounded by count, bytes, the durable high watermark and retention), and how an arrival
//! time is found through the time index.

use crate::error::Result;
use crate::store::{keys, Cf, Error as StoreError, KvEngine};

/// Bytes before the partition key in an encoded record: arrival time (8) and key length (2).
pub const HEADER_LEN: usize = 10;

/// A record as read back from a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Position in the shard.
    pub counter: u64,
    /// Arrival time, ms since the epoch.
    pub arrival_ms: u64,
    /// Partition key.
    pub partition_key: String,
    /// Payload.
    pub data: Vec<u8>,
}

/// Encodes a record with a zero arrival time; the appender stamps the time with
/// [`stamp_arrival`] when it assigns the sequence number.
pub fn encode(partition_key: &str, data: &[u8]) -> Vec<u8> {
    let key = partition_key.as_bytes();
    let mut value = Vec::with_capacity(HEADER_LEN + key.len() + data.len());
    value.extend_from_slice(&0u64.to_be_bytes());
    // Partition keys are at most 256 characters (1,024 bytes), validated before this point.
    value.extend_from_slice(&u16::try_from(key.len()).unwrap_or(u16::MAX).to_be_bytes());
    value.extend_from_slice(key);
    value.extend_from_slice(data);
    value
}

/// Writes the arrival time into an encoded record.
pub fn stamp_arrival(value: &mut [u8], arrival_ms: u64) {
    if let Some(slot) = value.get_mut(..8) {
        slot.copy_from_slice(&arrival_ms.to_be_bytes());
    }
}

/// Arrival time of an encoded record.
fn arrival_of(value: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(value.get(..8)?.try_into().ok()?))
}

/// Decodes a stored record.
pub fn decode(key: &[u8], value: &[u8]) -> Result<StoredRecord, StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt { key: crate::stream::hex(key), reason: reason.to_owned() };
    let counter = keys::record_counter(key).ok_or_else(|| corrupt("short record key"))?;
    let arrival_ms = arrival_of(value).ok_or_else(|| corrupt("short record header"))?;
    let key_len = usize::from(u16::from_be_bytes(
        value.get(8..10).and_then(|s| s.try_into().ok()).ok_or_else(|| corrupt("short record header"))?,
    ));
    let pk = value.get(HEADER_LEN..HEADER_LEN + key_len).ok_or_else(|| corrupt("truncated partition key"))?;
    let partition_key = String::from_utf8(pk.to_vec()).map_err(|_| corrupt("partition key is not UTF-8"))?;
    Ok(StoredRecord { counter, arrival_ms, partition_key, data: value[HEADER_LEN + key_len..].to_vec() })
}

/// Bounds of one read.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// Most records returned.
    pub max_records: usize,
    /// Most payload bytes returned (at least one record is always returned).
    pub max_bytes: usize,
    /// Records that arrived before this time are expired and skipped.
    pub expired_before_ms: u64,
}

/// The outcome of a read.
#[derive(Debug, Clone, Default)]
pub struct ReadSlice {
    /// Records, in order.
    pub records: Vec<StoredRecord>,
    /// Counter to continue from.
    pub next_position: u64,
    /// Arrival time of the record at `next_position`, when there is one (for lag).
    pub next_arrival_ms: Option<u64>,
}

/// Reads records of one shard from `position` up to and including `last_counter`.
pub fn read(
    engine: &dyn KvEngine,
    stream_id: u64,
    shard: u32,
    position: u64,
    last_counter: u64,
    limits: ReadLimits,
) -> Result<ReadSlice> {
    let mut start = position;
    let mut slice = ReadSlice { next_position: position, ..ReadSlice::default() };
    if start > last_counter {
        return Ok(slice);
    }
    // Skip expired records with one seek through the time index instead of a scan.
    if let Some(first) = first_arrival(engine, stream_id, shard, start, last_counter)? {
        if first < limits.expired_before_ms {
            start = seek_time(engine, stream_id, shard, limits.expired_before_ms)?
                .map_or(last_counter + 1, |c| c.max(start));
            slice.next_position = start;
            if start > last_counter {
                return Ok(slice);
            }
        }
    }
    let end = keys::record(stream_id, shard, last_counter.saturating_add(1));
    let mut bytes = 0usize;
    let mut failure = None;
    engine.scan(Cf::Records, &keys::record(stream_id, shard, start), &end, &mut |key, value| {
        let record = match decode(key, value) {
            Ok(record) => record,
            Err(err) => {
                failure = Some(err);
                return false;
            }
        };
        if record.arrival_ms < limits.expired_before_ms {
            slice.next_position = record.counter + 1;
            return true;
        }
        let full = slice.records.len() >= limits.max_records
            || (!slice.records.is_empty() && bytes + record.data.len() > limits.max_bytes);
        if full {
            slice.next_arrival_ms = Some(record.arrival_ms);
            return false;
        }
        bytes += record.data.len();
        slice.next_position = record.counter + 1;
        slice.records.push(record);
        true
    })?;
    if let Some(err) = failure {
        return Err(err.into());
    }
    Ok(slice)
}

fn first_arrival(engine: &dyn KvEngine, stream_id: u64, shard: u32, from: u64, last: u64) -> Result<Option<u64>> {
    let mut arrival = None;
    let end = keys::record(stream_id, shard, last.saturating_add(1));
    engine.scan(Cf::Records, &keys::record(stream_id, shard, from), &end, &mut |_, value| {
        arrival = arrival_of(value);
        false
    })?;
    Ok(arrival)
}

/// The counter of the first record that arrived at or after `time_ms`, if any.
pub fn seek_time(engine: &dyn KvEngine, stream_id: u64, shard: u32, time_ms: u64) -> Result<Option<u64>> {
    let (_, end) = keys::shard_range(keys::TIME_INDEX_PREFIX, stream_id, shard);
    let mut found = None;
    engine.scan(Cf::Records, &keys::time_index(stream_id, shard, time_ms, 0), &end, &mut |key, _| {
        found = keys::time_index_entry(key).map(|(_, counter)| counter);
        false
    })?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Durability, MemoryEngine, WriteBatch};

    fn put(engine: &MemoryEngine, shard: u32, counter: u64, arrival: u64, data: &[u8]) {
        let mut value = encode("pk", data);
        stamp_arrival(&mut value, arrival);
        let mut batch = WriteBatch::new();
        batch.put(Cf::Records, keys::record(1, shard, counter), value);
        batch.put(Cf::Records, keys::time_index(1, shard, arrival, counter), Vec::new());
        engine.write(batch, Durability::Sync).expect("write");
    }

    fn limits(max_records: usize) -> ReadLimits {
        ReadLimits { max_records, max_bytes: 10 << 20, expired_before_ms: 0 }
    }

    #[test]
    fn encodes_and_decodes() {
        let mut value = encode("ключ", b"\x00\x01data");
        stamp_arrival(&mut value, 99);
        let record = decode(&keys::record(1, 2, 3), &value).expect("decode");
        assert_eq!(
            record,
            StoredRecord {
                counter: 3, arrival_ms: 99, partition_key: "ключ".into(), data: b"\x00\x01data".to_vec()
            }
        );
        assert!(decode(&keys::record(1, 2, 3), &value[..9]).is_err());
    }

    #[test]
    fn reads_respect_count_watermark_and_shard() {
        let engine = MemoryEngine::new();
        for counter in 1..=10 {
            put(&engine, 0, counter, 100 + counter, b"x");
        }
        put(&engine, 1, 1, 100, b"other shard");
        let slice = read(&engine, 1, 0, 1, 10, limits(4)).expect("read");
        assert_eq!(slice.records.iter().map(|r| r.counter).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
        assert_eq!(slice.next_position, 5);
        assert_eq!(slice.next_arrival_ms, Some(105));
        // The watermark hides records past it even if they are in the store.
        let slice = read(&engine, 1, 0, 8, 9, limits(100)).expect("read");
        assert_eq!(slice.records.iter().map(|r| r.counter).collect::<Vec<_>>(), vec![8, 9]);
        assert_eq!(slice.next_position, 10);
        let slice = read(&engine, 1, 0, 11, 10, limits(100)).expect("read");
        assert!(slice.records.is_empty());
        assert_eq!(slice.next_position, 11);
    }

    #[test]
    fn reads_stop_at_the_byte_budget_but_return_one_record() {
        let engine = MemoryEngine::new();
        for counter in 1..=3 {
            put(&engine, 0, counter, 1, &[0; 600]);
        }
        let slice = read(&engine, 1, 0, 1, 3, ReadLimits { max_records: 100, max_bytes: 1000, expired_before_ms: 0 })
            .expect("read");
        assert_eq!(slice.records.len(), 1);
        let slice = read(&engine, 1, 0, 1, 3, ReadLimits { max_records: 100, max_bytes: 10, expired_before_ms: 0 })
            .expect("read");
        assert_eq!(slice.records.len(), 1, "a record larger than the budget still comes back alone");
    }

    #[test]
    fn expired_records_are_skipped_through_the_time_index() {
        let engine = MemoryEngine::new();
        for counter in 1..=6 {
            put(&engine, 0, counter, counter * 10, b"x");
        }
        let slice =
            read(&engine, 1, 0, 1, 6, ReadLimits { max_records: 100, max_bytes: 1 << 20, expired_before_ms: 35 })
                .expect("read");
        assert_eq!(slice.records.iter().map(|r| r.counter).collect::<Vec<_>>(), vec![4, 5, 6]);
        let slice =
            read(&engine, 1, 0, 1, 6, ReadLimits { max_records: 100, max_bytes: 1 << 20, expired_before_ms: 1000 })
                .expect("read");
        assert!(slice.records.is_empty());
        assert_eq!(slice.next_position, 7);
        assert_eq!(seek_time(&engine, 1, 0, 25).expect("seek"), Some(3));
        assert_eq!(seek_time(&engine, 1, 0, 61).expect("seek"), None);
    }
}
