//! What a Raft library's log store needs, per shard, over the journal: append (a lower index
//! replaces the conflicting suffix), read a range by index, first and last index, the term of
//! an index, truncate a suffix, purge a prefix, and the hard state and a small snapshot.
//!
//! [`JournalRaftLog`] keeps entries in the journal (record batches are written once, as the
//! records themselves) and the hard state, snapshot and purge point in the meta family;
//! [`MemoryRaftLog`] is the reference. Both pass the `conformance` suite, so `raft-rs` or
//! `openraft` can be plugged onto either without a second copy of the records.

mod journal_log;
mod memory;

#[cfg(test)]
mod conformance;

pub use journal_log::JournalRaftLog;
pub use memory::MemoryRaftLog;

/// What an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A record batch (its payload as the journal stores it: first counter, count, arrival,
    /// records), readable by GetRecords once committed.
    Records,
    /// Anything else the Raft library logs (configuration changes, empty leader entries).
    Opaque,
}

/// One entry of a shard's Raft log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Term it was proposed in.
    pub term: u64,
    /// Its index.
    pub index: u64,
    /// What it holds.
    pub kind: EntryKind,
    /// Its bytes.
    pub payload: Vec<u8>,
}

/// Raft's persistent state besides the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HardState {
    /// Current term.
    pub term: u64,
    /// Candidate voted for in `term` (0: none).
    pub vote: u64,
    /// Highest index known committed.
    pub commit: u64,
}

/// The state the log was compacted into.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Last index it covers.
    pub index: u64,
    /// Term of that index.
    pub term: u64,
    /// Its contents (small: the shard's counters and configuration, not records).
    pub data: Vec<u8>,
}

/// Raft log failures.
#[derive(Debug, thiserror::Error)]
pub enum RaftLogError {
    /// The index is below the first one kept.
    #[error("index {0} is compacted")]
    Compacted(u64),
    /// The index is past the last one.
    #[error("index {0} is not in the log yet")]
    Unavailable(u64),
    /// Entries to append do not follow on from the log (a gap) or from each other.
    #[error("entries must follow on from index {expected}, got {got}")]
    Gap {
        /// The highest index the next entry may have.
        expected: u64,
        /// The index given.
        got: u64,
    },
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    /// The meta family failed.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// An entry's payload is not what its kind says.
    #[error("malformed entry: {0}")]
    Malformed(String),
}

/// Result alias for Raft log calls.
pub type Result<T, E = RaftLogError> = std::result::Result<T, E>;

/// A shard's Raft log store. Every mutating call is durable when it returns.
pub trait RaftLog: Send + Sync {
    /// Appends `entries` (consecutive indexes). The first may be at or below the last index,
    /// replacing the suffix from there, but never above `last_index() + 1`.
    fn append(&self, entries: &[LogEntry]) -> Result<()>;
    /// Entries with indexes in `[lo, hi)`, stopping once `max_bytes` of payload are reached
    /// (at least one entry is returned when `lo < hi`).
    fn entries(&self, lo: u64, hi: u64, max_bytes: usize) -> Result<Vec<LogEntry>>;
    /// The first index still readable (the snapshot's index + 1 when the log is empty).
    fn first_index(&self) -> u64;
    /// The last index (the snapshot's index when the log is empty).
    fn last_index(&self) -> u64;
    /// The term of `index` (the snapshot's term at its index).
    fn term(&self, index: u64) -> Result<u64>;
    /// Removes every entry from `from` on.
    fn truncate_suffix(&self, from: u64) -> Result<()>;
    /// Removes every entry below `below`.
    fn purge_prefix(&self, below: u64) -> Result<()>;
    /// The stored hard state.
    fn hard_state(&self) -> Result<HardState>;
    /// Stores the hard state.
    fn set_hard_state(&self, state: &HardState) -> Result<()>;
    /// The stored snapshot, if any.
    fn snapshot(&self) -> Result<Option<Snapshot>>;
    /// Stores a snapshot and drops the entries it covers.
    fn set_snapshot(&self, snapshot: &Snapshot) -> Result<()>;
}

/// Checks that `entries` are consecutive and start at most one past `last`.
fn check_follows(last: u64, entries: &[LogEntry]) -> Result<()> {
    let Some(first) = entries.first() else { return Ok(()) };
    if first.index == 0 || first.index > last + 1 {
        return Err(RaftLogError::Gap { expected: last + 1, got: first.index });
    }
    for pair in entries.windows(2) {
        if pair[1].index != pair[0].index + 1 {
            return Err(RaftLogError::Gap { expected: pair[0].index + 1, got: pair[1].index });
        }
    }
    Ok(())
}
