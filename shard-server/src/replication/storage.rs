//! raft-rs's `Storage` over a shard's journal log. A record batch is a normal entry whose data
//! is the batch payload, stored as the journal's record frame (readable by GetRecords through
//! the same index); every other entry (a leader's empty entry, a configuration change) is an
//! opaque frame holding the whole entry encoded.
//!
//! Every group begins at a founding snapshot ([`FOUNDING_INDEX`], [`FOUNDING_TERM`]) whose data
//! is the founders' configuration: each founding replica writes it when it first hosts the
//! group, and a replica that joins later (empty) receives it from the leader, with itself added
//! as a learner, and then replays every configuration change of the log after it. So every
//! replica's membership is the founders' changed by the log's entries, as Raft requires.

use std::sync::Arc;

use protobuf::Message as _;
use raft::prelude::{ConfState, Entry, EntryType, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};

use crate::journal::frame;
use crate::raft_log::{self, EntryKind, JournalRaftLog, LogEntry, RaftLog, RaftLogError};

/// Index of every group's founding snapshot: its first entry is the one after.
pub const FOUNDING_INDEX: u64 = 1;
/// Term of the founding snapshot.
pub const FOUNDING_TERM: u64 = 1;

/// One replica's Raft storage: its log and the membership it opened with.
#[derive(Debug)]
pub struct GroupStorage {
    log: Arc<JournalRaftLog>,
    conf_state: ConfState,
}

impl GroupStorage {
    /// Storage over `log` whose membership, as of the last applied entry, is `conf_state`.
    pub fn new(log: Arc<JournalRaftLog>, conf_state: ConfState) -> Self {
        Self { log, conf_state }
    }

    /// The log.
    pub fn log(&self) -> &Arc<JournalRaftLog> {
        &self.log
    }
}

/// The log entry an entry from Raft is stored as.
pub fn to_log_entry(entry: &Entry) -> Result<LogEntry, RaftLogError> {
    let is_batch = entry.get_entry_type() == EntryType::EntryNormal
        && entry.context.is_empty()
        && frame::batch_header(&entry.data).is_ok();
    if is_batch {
        return Ok(LogEntry {
            term: entry.term,
            index: entry.index,
            kind: EntryKind::Records,
            payload: entry.data.to_vec(),
        });
    }
    let payload = entry.write_to_bytes().map_err(|err| RaftLogError::Malformed(err.to_string()))?;
    Ok(LogEntry { term: entry.term, index: entry.index, kind: EntryKind::Opaque, payload })
}

/// The entry Raft sees for a stored log entry.
pub fn from_log_entry(stored: LogEntry) -> Result<Entry, RaftLogError> {
    match stored.kind {
        EntryKind::Records => {
            let mut entry = Entry::default();
            entry.set_entry_type(EntryType::EntryNormal);
            entry.term = stored.term;
            entry.index = stored.index;
            entry.data = stored.payload.into();
            Ok(entry)
        }
        EntryKind::Opaque => {
            let entry = Entry::parse_from_bytes(&stored.payload)
                .map_err(|err| RaftLogError::Malformed(format!("entry {}: {err}", stored.index)))?;
            if entry.index != stored.index || entry.term != stored.term {
                return Err(RaftLogError::Malformed(format!(
                    "entry stored at {} (term {}) says {} (term {})",
                    stored.index, stored.term, entry.index, entry.term
                )));
            }
            Ok(entry)
        }
    }
}

fn storage_error(err: RaftLogError) -> raft::Error {
    match err {
        RaftLogError::Compacted(_) => raft::Error::Store(StorageError::Compacted),
        RaftLogError::Unavailable(_) => raft::Error::Store(StorageError::Unavailable),
        other => raft::Error::Store(StorageError::Other(Box::new(other))),
    }
}

/// The hard state as raft-rs spells it.
pub fn to_raft_hard_state(state: raft_log::HardState) -> HardState {
    HardState { term: state.term, vote: state.vote, commit: state.commit, ..HardState::default() }
}

/// The hard state as the log stores it.
pub fn from_raft_hard_state(state: &HardState) -> raft_log::HardState {
    raft_log::HardState { term: state.term, vote: state.vote, commit: state.commit }
}

impl raft::Storage for GroupStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let mut hard_state = self.log.hard_state().map_err(storage_error)?;
        // A commit index past the log (its tail lost with a disk) would stop raft-rs.
        hard_state.commit = hard_state.commit.min(self.log.last_index()).max(self.log.first_index() - 1);
        Ok(RaftState { hard_state: to_raft_hard_state(hard_state), conf_state: self.conf_state.clone() })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let max = max_size.into().map_or(usize::MAX, |m| usize::try_from(m).unwrap_or(usize::MAX));
        let stored = self.log.entries(low, high, max).map_err(storage_error)?;
        stored.into_iter().map(|e| from_log_entry(e).map_err(storage_error)).collect()
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        self.log.term(index).map_err(storage_error)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.log.first_index())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.log.last_index())
    }

    fn snapshot(&self, _request_index: u64, to: u64) -> raft::Result<Snapshot> {
        // The only snapshot is the founding one (the log is not compacted into snapshots yet):
        // it is what a replica joining the group starts from. Its data is the founders'
        // configuration; the recipient is added as a learner (Raft takes a snapshot only from a
        // configuration naming its recipient) and then replays the log's changes after it,
        // where its own addition is a no-op.
        let stored = self.log.snapshot().map_err(storage_error)?;
        let Some(stored) = stored.filter(|s| s.index == FOUNDING_INDEX && !s.data.is_empty()) else {
            return Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable));
        };
        let mut conf_state = ConfState::parse_from_bytes(&stored.data)
            .map_err(|err| storage_error(RaftLogError::Malformed(format!("founding configuration: {err}"))))?;
        if !is_member(&conf_state, to) {
            conf_state.learners.push(to);
        }
        let mut snapshot = Snapshot::default();
        let metadata = snapshot.mut_metadata();
        metadata.index = stored.index;
        metadata.term = stored.term;
        metadata.set_conf_state(conf_state);
        snapshot.data = stored.data.into();
        Ok(snapshot)
    }
}

/// True when `id` is a voter (incoming or outgoing) or a learner of `conf_state`.
pub fn is_member(conf_state: &ConfState, id: u64) -> bool {
    conf_state.voters.iter().chain(&conf_state.voters_outgoing).chain(&conf_state.learners).any(|&m| m == id)
}
