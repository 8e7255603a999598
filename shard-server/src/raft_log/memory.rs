//! The reference Raft log: everything in memory.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use super::{check_follows, HardState, LogEntry, RaftLog, RaftLogError, Result, Snapshot};

#[derive(Debug, Default)]
struct State {
    entries: BTreeMap<u64, LogEntry>,
    hard_state: HardState,
    snapshot: Option<Snapshot>,
    first: u64,
}

/// A Raft log held in memory.
#[derive(Debug, Default)]
pub struct MemoryRaftLog {
    state: Mutex<State>,
}

impl MemoryRaftLog {
    /// An empty log.
    pub fn new() -> Self {
        Self { state: Mutex::new(State { first: 1, ..State::default() }) }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    fn last(&self) -> u64 {
        self.entries.keys().next_back().copied().unwrap_or(self.first - 1)
    }
}

impl RaftLog for MemoryRaftLog {
    fn append(&self, entries: &[LogEntry]) -> Result<()> {
        let mut state = self.state();
        check_follows(state.last(), entries)?;
        if let Some(first) = entries.first() {
            if first.index < state.first {
                return Err(RaftLogError::Compacted(first.index));
            }
            state.entries.split_off(&first.index);
        }
        for entry in entries {
            state.entries.insert(entry.index, entry.clone());
        }
        Ok(())
    }

    fn entries(&self, lo: u64, hi: u64, max_bytes: usize) -> Result<Vec<LogEntry>> {
        let state = self.state();
        if lo < state.first {
            return Err(RaftLogError::Compacted(lo));
        }
        if hi > state.last() + 1 {
            return Err(RaftLogError::Unavailable(hi - 1));
        }
        let mut out = Vec::new();
        let mut bytes = 0;
        for entry in state.entries.range(lo..hi).map(|(_, e)| e) {
            if !out.is_empty() && bytes + entry.payload.len() > max_bytes {
                break;
            }
            bytes += entry.payload.len();
            out.push(entry.clone());
        }
        Ok(out)
    }

    fn first_index(&self) -> u64 {
        self.state().first
    }

    fn last_index(&self) -> u64 {
        self.state().last()
    }

    fn term(&self, index: u64) -> Result<u64> {
        let state = self.state();
        if let Some(snapshot) = state.snapshot.as_ref().filter(|s| s.index == index) {
            return Ok(snapshot.term);
        }
        if index == 0 && state.first == 1 {
            return Ok(0);
        }
        if index < state.first {
            return Err(RaftLogError::Compacted(index));
        }
        state.entries.get(&index).map(|e| e.term).ok_or(RaftLogError::Unavailable(index))
    }

    fn truncate_suffix(&self, from: u64) -> Result<()> {
        self.state().entries.split_off(&from);
        Ok(())
    }

    fn purge_prefix(&self, below: u64) -> Result<()> {
        let mut state = self.state();
        if below > state.first {
            let kept = state.entries.split_off(&below);
            state.entries = kept;
            state.first = below;
        }
        Ok(())
    }

    fn hard_state(&self) -> Result<HardState> {
        Ok(self.state().hard_state)
    }

    fn set_hard_state(&self, hard_state: &HardState) -> Result<()> {
        self.state().hard_state = *hard_state;
        Ok(())
    }

    fn snapshot(&self) -> Result<Option<Snapshot>> {
        Ok(self.state().snapshot.clone())
    }

    fn set_snapshot(&self, snapshot: &Snapshot) -> Result<()> {
        let mut state = self.state();
        state.snapshot = Some(snapshot.clone());
        if snapshot.index + 1 > state.first {
            let kept = state.entries.split_off(&(snapshot.index + 1));
            state.entries = kept;
            state.first = snapshot.index + 1;
        }
        Ok(())
    }
}
