//! Reading a shard's log: a slice bounded by count, bytes, the durable high watermark and
//! retention, found through the shard's journal index and read from the journal's files
//! (positional reads that never wait for the writer).

use crate::error::Result;
use crate::journal::index::IndexEntry;
use crate::journal::{frame, read_index, Journal, JournalError, SharedIndex};

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

/// Index entries fetched per step of a read.
const ENTRIES_PER_STEP: usize = 32;

/// Reads records of one shard from `position` up to and including `last_counter`.
pub fn read(
    journal: &Journal,
    index: &SharedIndex,
    position: u64,
    last_counter: u64,
    limits: ReadLimits,
) -> Result<ReadSlice> {
    let mut slice = ReadSlice { next_position: position, ..ReadSlice::default() };
    if position > last_counter {
        return Ok(slice);
    }
    let mut bytes = 0usize;
    let mut cursor = position;
    loop {
        let entries = read_index(index).batches_from(cursor, limits.expired_before_ms, ENTRIES_PER_STEP);
        let Some(first) = entries.first() else {
            // Everything up to the watermark has expired (or was deleted with its segment).
            if slice.records.is_empty() {
                slice.next_position = slice.next_position.max(last_counter + 1);
            }
            return Ok(slice);
        };
        if slice.records.is_empty() {
            // Expired records before the first kept batch are skipped.
            slice.next_position = slice.next_position.max(first.first_counter.min(last_counter + 1));
        }
        for entry in &entries {
            if entry.first_counter > last_counter {
                return Ok(slice);
            }
            if read_batch(journal, entry, last_counter, limits, &mut slice, &mut bytes)? {
                return Ok(slice);
            }
            cursor = entry.end_counter();
        }
    }
}

/// Adds the records of one batch to `slice`; true once the slice is full.
fn read_batch(
    journal: &Journal,
    entry: &IndexEntry,
    last_counter: u64,
    limits: ReadLimits,
    slice: &mut ReadSlice,
    bytes: &mut usize,
) -> Result<bool> {
    let Some((_, frame_bytes)) = journal.read(&entry.location)? else {
        // Its segment was deleted by retention meanwhile: its records had expired.
        slice.next_position = slice.next_position.max(entry.end_counter());
        return Ok(false);
    };
    let damaged = |reason: String| JournalError::Corrupt {
        path: format!("segment {} of class {}", entry.location.segment, entry.location.class).into(),
        offset: entry.location.offset,
        reason,
    };
    for (n, record) in frame::records(&frame_bytes[frame::HEADER_LEN..]).enumerate() {
        let counter = entry.first_counter + n as u64;
        if counter < slice.next_position {
            continue;
        }
        if counter > last_counter {
            return Ok(true);
        }
        let full = slice.records.len() >= limits.max_records;
        let (key, data) = record.map_err(|err| damaged(err.to_string()))?;
        if full || (!slice.records.is_empty() && *bytes + data.len() > limits.max_bytes) {
            slice.next_arrival_ms = Some(entry.arrival_ms);
            return Ok(true);
        }
        let partition_key =
            String::from_utf8(key.to_vec()).map_err(|_| damaged("partition key is not UTF-8".into()))?;
        *bytes += data.len();
        slice.next_position = counter + 1;
        slice.records.push(StoredRecord { counter, arrival_ms: entry.arrival_ms, partition_key, data: data.to_vec() });
    }
    Ok(false)
}

/// The counter of the first record that arrived at or after `time_ms`, if any.
pub fn seek_time(index: &SharedIndex, time_ms: u64) -> Option<u64> {
    read_index(index).seek_time(time_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Group, ShardKey, Slot};

    fn put(journal: &Journal, index: &SharedIndex, first: u64, arrival: u64, data: &[&[u8]]) {
        let mut group = Group::new();
        let raft_index = read_index(index).last_index().unwrap_or(0) + 1;
        let key = ShardKey { stream: 1, shard: 0 };
        let slot = Slot { class: 0, key, index, term: 0, raft_index };
        group.records(slot, first, arrival, data.iter().map(|d| (&b"pk"[..], *d)));
        journal.commit(group, arrival).expect("commit");
    }

    fn limits(max_records: usize) -> ReadLimits {
        ReadLimits { max_records, max_bytes: 10 << 20, expired_before_ms: 0 }
    }

    fn counters(slice: &ReadSlice) -> Vec<u64> {
        slice.records.iter().map(|r| r.counter).collect()
    }

    #[test]
    fn reads_respect_count_watermark_and_batches() {
        let journal = Journal::in_memory();
        let index = journal.index(ShardKey { stream: 1, shard: 0 });
        put(&journal, &index, 1, 101, &[b"a", b"b", b"c"]);
        put(&journal, &index, 4, 104, &[b"d", b"e", b"f", b"g"]);
        put(&journal, &index, 8, 108, &[b"h", b"i", b"j"]);
        let slice = read(&journal, &index, 1, 10, limits(4)).expect("read");
        assert_eq!(counters(&slice), vec![1, 2, 3, 4]);
        assert_eq!(slice.next_position, 5);
        assert_eq!(slice.next_arrival_ms, Some(104));
        assert_eq!(slice.records[3].partition_key, "pk");
        assert_eq!(slice.records[3].data, b"d");
        // The watermark hides records past it even if they are in the journal.
        let slice = read(&journal, &index, 5, 9, limits(100)).expect("read");
        assert_eq!(counters(&slice), vec![5, 6, 7, 8, 9]);
        assert_eq!(slice.next_position, 10);
        let slice = read(&journal, &index, 11, 10, limits(100)).expect("read");
        assert!(slice.records.is_empty());
        assert_eq!(slice.next_position, 11);
    }

    #[test]
    fn reads_stop_at_the_byte_budget_but_return_one_record() {
        let journal = Journal::in_memory();
        let index = journal.index(ShardKey { stream: 1, shard: 0 });
        put(&journal, &index, 1, 1, &[&[0; 600], &[0; 600], &[0; 600]]);
        let budget = |max_bytes| ReadLimits { max_records: 100, max_bytes, expired_before_ms: 0 };
        assert_eq!(read(&journal, &index, 1, 3, budget(1000)).expect("read").records.len(), 1);
        let slice = read(&journal, &index, 1, 3, budget(10)).expect("read");
        assert_eq!(slice.records.len(), 1, "a record larger than the budget still comes back alone");
    }

    #[test]
    fn expired_records_are_skipped_through_the_index() {
        let journal = Journal::in_memory();
        let index = journal.index(ShardKey { stream: 1, shard: 0 });
        for counter in 1..=6 {
            put(&journal, &index, counter, counter * 10, &[b"x"]);
        }
        let expired = |before| ReadLimits { max_records: 100, max_bytes: 1 << 20, expired_before_ms: before };
        let slice = read(&journal, &index, 1, 6, expired(35)).expect("read");
        assert_eq!(counters(&slice), vec![4, 5, 6]);
        let slice = read(&journal, &index, 1, 6, expired(1000)).expect("read");
        assert!(slice.records.is_empty());
        assert_eq!(slice.next_position, 7);
        assert_eq!(seek_time(&index, 25), Some(3));
        assert_eq!(seek_time(&index, 61), None);
    }
}
