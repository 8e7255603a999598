//! One behavioural suite for every Raft log store, and the journal's survival of restarts
//! and power cuts.

use std::sync::Arc;

use super::*;
use crate::clock::ManualClock;
use crate::journal::files::{Cut, MemoryFiles};
use crate::journal::{frame, Journal, JournalOptions, ShardKey};
use crate::store::{KvEngine, MemoryEngine};

fn opaque(term: u64, index: u64) -> LogEntry {
    LogEntry { term, index, kind: EntryKind::Opaque, payload: format!("t{term}i{index}").into_bytes() }
}

/// A record batch entry of `count` records from `first_counter`.
fn batch(term: u64, index: u64, first_counter: u64, count: u32) -> LogEntry {
    let mut payload = Vec::new();
    frame::begin_batch(&mut payload, first_counter, count, 1_000 + index);
    for n in 0..count {
        frame::push_record(&mut payload, b"pk", format!("r{}", first_counter + u64::from(n)).as_bytes());
    }
    LogEntry { term, index, kind: EntryKind::Records, payload }
}

fn indexes(entries: &[LogEntry]) -> Vec<(u64, u64)> {
    entries.iter().map(|e| (e.term, e.index)).collect()
}

/// What every store must do.
fn suite(log: &dyn RaftLog) {
    // Empty.
    assert_eq!((log.first_index(), log.last_index()), (1, 0));
    assert_eq!(log.term(0).expect("term 0"), 0);
    assert!(matches!(log.term(1), Err(RaftLogError::Unavailable(1))));
    assert_eq!(log.hard_state().expect("hard state"), HardState::default());
    assert_eq!(log.snapshot().expect("snapshot"), None);

    // Append and read back, by range and byte budget.
    let first: Vec<_> = (1..=5).map(|i| if i == 3 { batch(1, i, 1, 3) } else { opaque(1, i) }).collect();
    log.append(&first).expect("append");
    assert_eq!((log.first_index(), log.last_index()), (1, 5));
    assert_eq!(log.entries(1, 6, usize::MAX).expect("entries"), first);
    assert_eq!(indexes(&log.entries(2, 4, usize::MAX).expect("entries")), vec![(1, 2), (1, 3)]);
    assert_eq!(log.entries(1, 6, 0).expect("entries").len(), 1, "at least one entry whatever the budget");
    assert!(matches!(log.entries(1, 7, usize::MAX), Err(RaftLogError::Unavailable(6))));
    assert_eq!(log.term(3).expect("term"), 1);

    // Gaps and bad sequences are refused.
    assert!(matches!(log.append(&[opaque(1, 7)]), Err(RaftLogError::Gap { expected: 6, got: 7 })));
    assert!(matches!(log.append(&[opaque(1, 6), opaque(1, 8)]), Err(RaftLogError::Gap { .. })));
    assert_eq!(log.last_index(), 5);

    // A conflicting append replaces the suffix.
    log.append(&[opaque(2, 4), opaque(2, 5), opaque(2, 6)]).expect("overwrite");
    assert_eq!(
        indexes(&log.entries(1, 7, usize::MAX).expect("entries")),
        vec![(1, 1), (1, 2), (1, 3), (2, 4), (2, 5), (2, 6)]
    );

    // Truncate a suffix, then purge a prefix.
    log.truncate_suffix(6).expect("truncate");
    assert_eq!(log.last_index(), 5);
    log.purge_prefix(3).expect("purge");
    assert_eq!(log.first_index(), 3);
    assert!(matches!(log.term(2), Err(RaftLogError::Compacted(2))));
    assert!(matches!(log.entries(2, 4, usize::MAX), Err(RaftLogError::Compacted(2))));
    assert!(matches!(log.append(&[opaque(3, 2)]), Err(RaftLogError::Compacted(2))));
    log.purge_prefix(2).expect("a lower purge point changes nothing");
    assert_eq!(log.first_index(), 3);

    // Hard state and snapshot.
    let state = HardState { term: 2, vote: 7, commit: 4 };
    log.set_hard_state(&state).expect("hard state");
    assert_eq!(log.hard_state().expect("hard state"), state);
    let snapshot = Snapshot { index: 4, term: 2, data: b"counters".to_vec() };
    log.set_snapshot(&snapshot).expect("snapshot");
    assert_eq!(log.snapshot().expect("snapshot"), Some(snapshot));
    assert_eq!((log.first_index(), log.last_index()), (5, 5));
    assert_eq!(log.term(4).expect("the snapshot's term"), 2);
    log.append(&[opaque(3, 6)]).expect("append after the snapshot");
    assert_eq!(indexes(&log.entries(5, 7, usize::MAX).expect("entries")), vec![(2, 5), (3, 6)]);
}

#[test]
fn the_memory_log_conforms() {
    suite(&MemoryRaftLog::new());
}

struct Setup {
    files: MemoryFiles,
    engine: Arc<dyn KvEngine>,
}

impl Setup {
    fn new() -> Self {
        Self { files: MemoryFiles::new(), engine: Arc::new(MemoryEngine::new()) }
    }

    fn open(&self) -> (Arc<Journal>, JournalRaftLog) {
        let journal =
            Journal::open(Arc::new(self.files.clone()), std::path::Path::new("/log"), JournalOptions::default())
                .expect("journal");
        let journal = Arc::new(journal);
        let key = ShardKey { stream: 1, shard: 0 };
        let clock = Arc::new(ManualClock::new(1_000));
        let log = JournalRaftLog::open(journal.clone(), self.engine.clone(), clock, key, 0).expect("log");
        (journal, log)
    }
}

#[test]
fn the_journal_log_conforms_and_reopens_to_the_same_log() {
    let setup = Setup::new();
    let (_, log) = setup.open();
    suite(&log);
    let before = log.entries(log.first_index(), log.last_index() + 1, usize::MAX).expect("entries");
    let state = (log.first_index(), log.last_index(), log.hard_state().expect("hs"), log.snapshot().expect("snap"));
    drop(log);
    setup.files.power_cut(Cut::DropUnsynced);
    let (_, log) = setup.open();
    assert_eq!(log.entries(log.first_index(), log.last_index() + 1, usize::MAX).expect("entries"), before);
    assert_eq!(
        (log.first_index(), log.last_index(), log.hard_state().expect("hs"), log.snapshot().expect("snap")),
        state
    );
}

#[test]
fn record_batches_appended_as_entries_are_readable_as_records() {
    let setup = Setup::new();
    let (journal, log) = setup.open();
    log.append(&[batch(1, 1, 1, 2), opaque(1, 2), batch(1, 3, 3, 2)]).expect("append");
    let index = journal.index(ShardKey { stream: 1, shard: 0 });
    let limits = crate::shard::ReadLimits { max_records: 100, max_bytes: 1 << 20, expired_before_ms: 0 };
    let slice = crate::shard::read(&journal, &index, 1, 4, limits).expect("read");
    let data: Vec<_> = slice.records.iter().map(|r| String::from_utf8_lossy(&r.data).into_owned()).collect();
    assert_eq!(data, vec!["r1", "r2", "r3", "r4"]);
    assert!(matches!(
        log.append(&[LogEntry { term: 1, index: 4, kind: EntryKind::Records, payload: vec![1, 2] }]),
        Err(RaftLogError::Malformed(_))
    ));
}
