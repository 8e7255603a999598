//! A shard's Raft log in the journal: entries are journal frames of the shard (record batches
//! stay readable by GetRecords through the same index), truncations are frames too, and the
//! hard state, snapshot and purge point are rows of the meta family.

use std::sync::{Arc, Mutex, MutexGuard};

use super::{check_follows, EntryKind, HardState, LogEntry, RaftLog, RaftLogError, Result, Snapshot};
use crate::clock::Clock;
use crate::journal::frame::{self, Kind};
use crate::journal::{read_index, Group, Journal, ShardKey, SharedIndex, Slot};
use crate::store::{keys, Cf, Durability, KvEngine, WriteBatch};

/// One shard's Raft log over the journal and the meta family.
#[derive(Debug)]
pub struct JournalRaftLog {
    journal: Arc<Journal>,
    engine: Arc<dyn KvEngine>,
    clock: Arc<dyn Clock>,
    key: ShardKey,
    class: u8,
    index: SharedIndex,
    /// The first index kept (entries below were purged or are in the snapshot).
    first: Mutex<u64>,
    snapshot: Mutex<Option<Snapshot>>,
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fn corrupt(what: &str) -> RaftLogError {
    RaftLogError::Store(crate::store::Error::Corrupt { key: what.to_owned(), reason: "bad length".into() })
}

impl JournalRaftLog {
    /// The Raft log of `key`, whose entries are written to retention class `class`.
    pub fn open(
        journal: Arc<Journal>,
        engine: Arc<dyn KvEngine>,
        clock: Arc<dyn Clock>,
        key: ShardKey,
        class: u8,
    ) -> Result<Self> {
        let index = journal.index(key);
        let first = match engine.get(Cf::Meta, &keys::raft(key.stream, key.shard, keys::RAFT_FIRST_INDEX))? {
            Some(raw) => u64_at(&raw, 0).ok_or_else(|| corrupt("raft first index"))?,
            None => 1,
        };
        let snapshot = match engine.get(Cf::Meta, &keys::raft(key.stream, key.shard, keys::RAFT_SNAPSHOT))? {
            Some(raw) => Some(Snapshot {
                index: u64_at(&raw, 0).ok_or_else(|| corrupt("raft snapshot"))?,
                term: u64_at(&raw, 8).ok_or_else(|| corrupt("raft snapshot"))?,
                data: raw.get(16..).unwrap_or_default().to_vec(),
            }),
            None => None,
        };
        let first = first.max(snapshot.as_ref().map_or(1, |s| s.index + 1));
        crate::journal::purge_index(&index, first);
        Ok(Self { journal, engine, clock, key, class, index, first: Mutex::new(first), snapshot: Mutex::new(snapshot) })
    }

    fn slot(&self, term: u64, raft_index: u64) -> Slot<'_> {
        Slot { class: self.class, key: self.key, index: &self.index, term, raft_index }
    }

    fn first(&self) -> MutexGuard<'_, u64> {
        self.first.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn snapshot_guard(&self) -> MutexGuard<'_, Option<Snapshot>> {
        self.snapshot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn last(&self, first: u64) -> u64 {
        read_index(&self.index).last_index().unwrap_or(first - 1).max(first - 1)
    }

    fn set_first(&self, first: &mut u64, below: u64, batch: &mut WriteBatch) {
        *first = below;
        batch.put(
            Cf::Meta,
            keys::raft(self.key.stream, self.key.shard, keys::RAFT_FIRST_INDEX),
            below.to_le_bytes().to_vec(),
        );
    }

    /// The shard this log belongs to.
    pub fn key(&self) -> ShardKey {
        self.key
    }

    /// The shard's journal index (what GetRecords reads through).
    pub fn index(&self) -> &SharedIndex {
        &self.index
    }

    /// Adds `entries` to `group` as [`RaftLog::append`] would write them, for a caller that
    /// makes many logs durable in one [`Journal::commit`] (the replication store loop). They
    /// are readable once that commit returns.
    pub fn stage(&self, group: &mut Group, entries: &[LogEntry]) -> Result<()> {
        let first = *self.first();
        check_follows(self.last(first), entries)?;
        if let Some(entry) = entries.first().filter(|e| e.index < first) {
            return Err(RaftLogError::Compacted(entry.index));
        }
        for entry in entries {
            let kind = match entry.kind {
                EntryKind::Records => Kind::Records,
                EntryKind::Opaque => Kind::Entry,
            };
            group
                .other(self.slot(entry.term, entry.index), kind, &entry.payload)
                .map_err(|err| RaftLogError::Malformed(err.to_string()))?;
        }
        Ok(())
    }

    /// The group membership last stored with [`JournalRaftLog::stage_membership`]: the index
    /// of the entry it is as of, and its bytes (the Raft library's encoding).
    pub fn membership(&self) -> Result<Option<(u64, Vec<u8>)>> {
        let raw = self.engine.get(Cf::Meta, &keys::raft(self.key.stream, self.key.shard, keys::RAFT_MEMBERSHIP))?;
        let Some(raw) = raw else { return Ok(None) };
        let index = u64_at(&raw, 0).ok_or_else(|| corrupt("raft membership"))?;
        Ok(Some((index, raw[8..].to_vec())))
    }

    /// Adds the write of the group's membership as of entry `index` to `batch`.
    pub fn stage_membership(&self, batch: &mut WriteBatch, index: u64, membership: &[u8]) {
        let mut value = index.to_le_bytes().to_vec();
        value.extend_from_slice(membership);
        batch.put(Cf::Meta, keys::raft(self.key.stream, self.key.shard, keys::RAFT_MEMBERSHIP), value);
    }

    /// Stores the group's membership as of entry `index`, durably.
    pub fn set_membership(&self, index: u64, membership: &[u8]) -> Result<()> {
        let mut batch = WriteBatch::new();
        self.stage_membership(&mut batch, index, membership);
        Ok(self.engine.write(batch, Durability::Sync)?)
    }

    /// Starts an empty log at `snapshot` with `state` and `membership` (as of the snapshot's
    /// index), in one durable write: how a group's founding replicas begin.
    pub fn found(&self, snapshot: &Snapshot, state: &HardState, membership: &[u8]) -> Result<()> {
        let mut batch = WriteBatch::new();
        self.stage_hard_state(&mut batch, state);
        self.stage_membership(&mut batch, snapshot.index, membership);
        self.install_snapshot(batch, snapshot)
    }

    /// Writes `snapshot` with whatever `batch` holds, durably, and drops the entries it covers.
    fn install_snapshot(&self, mut batch: WriteBatch, snapshot: &Snapshot) -> Result<()> {
        let mut first = self.first();
        let mut value = snapshot.index.to_le_bytes().to_vec();
        value.extend_from_slice(&snapshot.term.to_le_bytes());
        value.extend_from_slice(&snapshot.data);
        batch.put(Cf::Meta, keys::raft(self.key.stream, self.key.shard, keys::RAFT_SNAPSHOT), value);
        let below = snapshot.index + 1;
        if below > *first {
            self.set_first(&mut first, below, &mut batch);
        }
        self.engine.write(batch, Durability::Sync)?;
        crate::journal::purge_index(&self.index, *first);
        *self.snapshot_guard() = Some(snapshot.clone());
        Ok(())
    }

    /// Adds the write of `state` to `batch` (durable when the batch is written with sync).
    pub fn stage_hard_state(&self, batch: &mut WriteBatch, state: &HardState) {
        let mut value = state.term.to_le_bytes().to_vec();
        value.extend_from_slice(&state.vote.to_le_bytes());
        value.extend_from_slice(&state.commit.to_le_bytes());
        batch.put(Cf::Meta, keys::raft(self.key.stream, self.key.shard, keys::RAFT_HARD_STATE), value);
    }
}

impl RaftLog for JournalRaftLog {
    fn append(&self, entries: &[LogEntry]) -> Result<()> {
        let mut group = Group::new();
        self.stage(&mut group, entries)?;
        Ok(self.journal.commit(group, self.clock.now_ms())?)
    }

    fn entries(&self, lo: u64, hi: u64, max_bytes: usize) -> Result<Vec<LogEntry>> {
        let first = *self.first();
        if lo < first {
            return Err(RaftLogError::Compacted(lo));
        }
        if hi > self.last(first) + 1 {
            return Err(RaftLogError::Unavailable(hi - 1));
        }
        let mut out = Vec::new();
        let mut bytes = 0;
        let found = read_index(&self.index).range(lo, hi);
        if lo < hi && found.first().map(|e| e.index) != Some(lo) {
            // The frames went with their segment (retention): the entries are gone.
            return Err(RaftLogError::Compacted(lo));
        }
        for entry in found {
            let Some((header, data)) = self.journal.read(&entry.location)? else {
                return Err(RaftLogError::Compacted(entry.index));
            };
            let payload = data[frame::HEADER_LEN..].to_vec();
            if !out.is_empty() && bytes + payload.len() > max_bytes {
                break;
            }
            bytes += payload.len();
            let kind = if header.kind == Kind::Records { EntryKind::Records } else { EntryKind::Opaque };
            out.push(LogEntry { term: header.term, index: header.index, kind, payload });
        }
        Ok(out)
    }

    fn first_index(&self) -> u64 {
        *self.first()
    }

    fn last_index(&self) -> u64 {
        self.last(*self.first())
    }

    fn term(&self, index: u64) -> Result<u64> {
        if let Some(snapshot) = self.snapshot_guard().as_ref().filter(|s| s.index == index) {
            return Ok(snapshot.term);
        }
        let first = *self.first();
        if index == 0 && first == 1 {
            return Ok(0);
        }
        if index < first {
            return Err(RaftLogError::Compacted(index));
        }
        let index_of = read_index(&self.index);
        match index_of.get(index) {
            Some(entry) => Ok(entry.term),
            None if index_of.first_index().is_some_and(|kept| index < kept) => Err(RaftLogError::Compacted(index)),
            None => Err(RaftLogError::Unavailable(index)),
        }
    }

    fn truncate_suffix(&self, from: u64) -> Result<()> {
        let mut group = Group::new();
        group.other(self.slot(0, from), Kind::Truncate, &[]).map_err(|err| RaftLogError::Malformed(err.to_string()))?;
        Ok(self.journal.commit(group, self.clock.now_ms())?)
    }

    fn purge_prefix(&self, below: u64) -> Result<()> {
        let mut first = self.first();
        if below <= *first {
            return Ok(());
        }
        let mut batch = WriteBatch::new();
        self.set_first(&mut first, below, &mut batch);
        self.engine.write(batch, Durability::Sync)?;
        crate::journal::purge_index(&self.index, below);
        Ok(())
    }

    fn hard_state(&self) -> Result<HardState> {
        let raw = self.engine.get(Cf::Meta, &keys::raft(self.key.stream, self.key.shard, keys::RAFT_HARD_STATE))?;
        let Some(raw) = raw else { return Ok(HardState::default()) };
        let field = |at| u64_at(&raw, at).ok_or_else(|| corrupt("raft hard state"));
        Ok(HardState { term: field(0)?, vote: field(8)?, commit: field(16)? })
    }

    fn set_hard_state(&self, state: &HardState) -> Result<()> {
        let mut batch = WriteBatch::new();
        self.stage_hard_state(&mut batch, state);
        Ok(self.engine.write(batch, Durability::Sync)?)
    }

    fn snapshot(&self) -> Result<Option<Snapshot>> {
        Ok(self.snapshot_guard().clone())
    }

    fn set_snapshot(&self, snapshot: &Snapshot) -> Result<()> {
        self.install_snapshot(WriteBatch::new(), snapshot)
    }
}
