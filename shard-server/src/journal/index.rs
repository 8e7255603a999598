//! A shard's index into the journal: one entry per frame of its log, in Raft-index order,
//! kept in memory. Record batches also carry their counter range and arrival time, so a read
//! by position or by time is a binary search; no per-record key exists anywhere.

use std::collections::VecDeque;

use super::frame::Kind;

/// Where a frame lies: its retention class, segment, offset and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Retention class of the segment.
    pub class: u8,
    /// Segment id within the class.
    pub segment: u64,
    /// Byte offset of the frame in the segment.
    pub offset: u64,
    /// Frame length in bytes.
    pub len: u32,
}

/// One frame of a shard's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// Raft term.
    pub term: u64,
    /// Raft index.
    pub index: u64,
    /// What the frame holds ([`Kind::Records`] or [`Kind::Entry`]).
    pub kind: Kind,
    /// Where it lies.
    pub location: Location,
    /// Counter of its first record; for a frame without records, the next counter.
    pub first_counter: u64,
    /// Records in it.
    pub count: u32,
    /// Arrival time of its records; for a frame without records, the previous arrival.
    pub arrival_ms: u64,
}

impl IndexEntry {
    /// The counter after its last record.
    pub fn end_counter(&self) -> u64 {
        self.first_counter + u64::from(self.count)
    }
}

/// The in-memory index of one shard's log.
#[derive(Debug, Default)]
pub struct ShardIndex {
    entries: VecDeque<IndexEntry>,
}

impl ShardIndex {
    /// Adds the entry written after every present one. An index at or below the last one
    /// replaces the suffix from there (a Raft leader overwriting a follower's conflicting
    /// entries). Frames without records take their counter and time from their predecessor
    /// so both stay monotonic along the index.
    pub fn push(&mut self, mut entry: IndexEntry) {
        if self.entries.back().is_some_and(|last| last.index >= entry.index) {
            self.truncate_from(entry.index);
        }
        if entry.kind != Kind::Records {
            let (counter, arrival) = self.entries.back().map_or((1, 0), |e| (e.end_counter(), e.arrival_ms));
            entry.first_counter = counter;
            entry.count = 0;
            entry.arrival_ms = arrival;
        }
        self.entries.push_back(entry);
    }

    /// Removes every entry with an index of `from` or more.
    pub fn truncate_from(&mut self, from: u64) {
        let keep = self.entries.partition_point(|e| e.index < from);
        self.entries.truncate(keep);
    }

    /// Removes every entry with an index below `below`.
    pub fn purge_below(&mut self, below: u64) {
        let drop = self.entries.partition_point(|e| e.index < below);
        self.entries.drain(..drop);
    }

    /// Removes the entries stored in one segment (deleted by retention).
    pub fn drop_segment(&mut self, class: u8, segment: u64) {
        self.entries.retain(|e| e.location.class != class || e.location.segment != segment);
    }

    /// Index of the first entry, if any.
    pub fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|e| e.index)
    }

    /// Index of the last entry, if any.
    pub fn last_index(&self) -> Option<u64> {
        self.entries.back().map(|e| e.index)
    }

    /// The entry of Raft index `index`.
    pub fn get(&self, index: u64) -> Option<IndexEntry> {
        let at = self.entries.partition_point(|e| e.index < index);
        self.entries.get(at).filter(|e| e.index == index).copied()
    }

    /// Entries with indexes in `[lo, hi)`.
    pub fn range(&self, lo: u64, hi: u64) -> Vec<IndexEntry> {
        let start = self.entries.partition_point(|e| e.index < lo);
        self.entries.iter().skip(start).take_while(|e| e.index < hi).copied().collect()
    }

    /// Raft indexes in `[lo, hi)` of the entries of kind `kind`.
    pub fn indexes_of_kind(&self, lo: u64, hi: u64, kind: Kind) -> Vec<u64> {
        let start = self.entries.partition_point(|e| e.index < lo);
        self.entries
            .iter()
            .skip(start)
            .take_while(|e| e.index < hi)
            .filter(|e| e.kind == kind)
            .map(|e| e.index)
            .collect()
    }

    /// Up to `max` record batches holding counters from `counter` on that arrived at or after
    /// `not_before_ms`, in order.
    pub fn batches_from(&self, counter: u64, not_before_ms: u64, max: usize) -> Vec<IndexEntry> {
        let by_counter = self.entries.partition_point(|e| e.end_counter() <= counter);
        let by_time = self.entries.partition_point(|e| e.arrival_ms < not_before_ms);
        self.entries.iter().skip(by_counter.max(by_time)).filter(|e| e.count > 0).take(max).copied().collect()
    }

    /// The counter of the first record that arrived at or after `at_ms`.
    pub fn seek_time(&self, at_ms: u64) -> Option<u64> {
        let at = self.entries.partition_point(|e| e.arrival_ms < at_ms);
        self.entries.iter().skip(at).find(|e| e.count > 0).map(|e| e.first_counter)
    }

    /// `(last counter, arrival)` of the newest record, if any.
    pub fn last_record(&self) -> Option<(u64, u64)> {
        self.entries.iter().rev().find(|e| e.count > 0).map(|e| (e.end_counter() - 1, e.arrival_ms))
    }

    /// The last record batch at or below Raft index `index`.
    pub fn last_batch_through(&self, index: u64) -> Option<IndexEntry> {
        let end = self.entries.partition_point(|e| e.index <= index);
        self.entries.range(..end).rev().find(|e| e.count > 0).copied()
    }

    /// The first record batch above Raft index `index`.
    pub fn first_batch_after(&self, index: u64) -> Option<IndexEntry> {
        let start = self.entries.partition_point(|e| e.index <= index);
        self.entries.range(start..).find(|e| e.count > 0).copied()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the index holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(index: u64, first_counter: u64, count: u32, arrival_ms: u64) -> IndexEntry {
        IndexEntry {
            term: 0,
            index,
            kind: Kind::Records,
            location: Location { class: 0, segment: index / 3, offset: index * 100, len: 100 },
            first_counter,
            count,
            arrival_ms,
        }
    }

    #[test]
    fn finds_batches_by_counter_and_time() {
        let mut index = ShardIndex::default();
        index.push(batch(1, 1, 10, 100));
        index.push(IndexEntry { kind: Kind::Entry, ..batch(2, 0, 0, 0) });
        index.push(batch(3, 11, 5, 200));
        index.push(batch(4, 16, 5, 300));
        let counters = |v: Vec<IndexEntry>| v.iter().map(|e| e.first_counter).collect::<Vec<_>>();
        assert_eq!(counters(index.batches_from(1, 0, 10)), vec![1, 11, 16]);
        assert_eq!(counters(index.batches_from(10, 0, 10)), vec![1, 11, 16]);
        assert_eq!(counters(index.batches_from(11, 0, 10)), vec![11, 16]);
        assert_eq!(counters(index.batches_from(1, 150, 1)), vec![11]);
        assert_eq!(counters(index.batches_from(21, 0, 10)), Vec::<u64>::new());
        assert_eq!(index.seek_time(101), Some(11));
        assert_eq!(index.seek_time(301), None);
        assert_eq!(index.last_record(), Some((20, 300)));
        assert_eq!(index.get(2).map(|e| (e.first_counter, e.arrival_ms)), Some((11, 100)));
        assert_eq!(index.last_batch_through(2).map(|e| e.index), Some(1));
        assert_eq!(index.last_batch_through(0), None);
        assert_eq!(index.first_batch_after(1).map(|e| e.index), Some(3));
        assert_eq!(index.first_batch_after(4), None);
    }

    #[test]
    fn a_lower_index_replaces_the_suffix_and_segments_drop_out() {
        let mut index = ShardIndex::default();
        for i in 1..=6 {
            index.push(batch(i, i, 1, i));
        }
        index.push(batch(4, 4, 2, 10));
        assert_eq!(index.last_index(), Some(4));
        assert_eq!(index.last_record(), Some((5, 10)));
        index.drop_segment(0, 0);
        assert_eq!(index.first_index(), Some(3));
        index.purge_below(4);
        assert_eq!(index.range(0, 10).len(), 1);
        index.truncate_from(4);
        assert!(index.is_empty());
    }
}
