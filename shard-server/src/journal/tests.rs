//! The journal on the in-memory file system: group commit, recovery, torn tails and damage
//! at every offset, retention by file deletion, and power cuts.

use std::collections::HashSet;
use std::path::PathBuf;

use super::files::{Cut, MemoryFiles};
use super::*;

const DIR: &str = "/data/log";

fn open(files: &MemoryFiles) -> Result<Journal, JournalError> {
    open_with(files, JournalOptions::default())
}

fn open_with(files: &MemoryFiles, options: JournalOptions) -> Result<Journal, JournalError> {
    Journal::open(Arc::new(files.clone()), Path::new(DIR), options)
}

fn key(stream: u64, shard: u32) -> ShardKey {
    ShardKey { stream, shard }
}

/// Appends one batch of `records` to a shard, the next index after its last.
fn put(journal: &Journal, class: u8, key: ShardKey, records: &[&str], arrival_ms: u64) {
    let mut group = Group::new();
    add(journal, &mut group, class, key, records, arrival_ms);
    journal.commit(group, arrival_ms).expect("commit");
}

fn add(journal: &Journal, group: &mut Group, class: u8, key: ShardKey, records: &[&str], arrival_ms: u64) {
    let index = journal.index(key);
    let (next_index, next_counter) = {
        let index = read_index(&index);
        (index.last_index().unwrap_or(0) + 1, index.last_record().map_or(1, |(c, _)| c + 1))
    };
    let pairs: Vec<(&[u8], &[u8])> = records.iter().map(|r| (&b"pk"[..], r.as_bytes())).collect();
    group.records(Slot { class, key, index: &index, term: 0, raft_index: next_index }, next_counter, arrival_ms, pairs);
}

/// Every record of a shard, read back through the journal.
fn contents(journal: &Journal, key: ShardKey) -> Vec<String> {
    let index = journal.index(key);
    let entries = read_index(&index).batches_from(0, 0, usize::MAX);
    let mut out = Vec::new();
    for entry in entries {
        let (_, bytes) = journal.read(&entry.location).expect("read").expect("present");
        for record in frame::records(&bytes[frame::HEADER_LEN..]) {
            let (_, data) = record.expect("record");
            out.push(String::from_utf8(data.to_vec()).expect("utf-8"));
        }
    }
    out
}

fn segment_path(class: u8, id: u64) -> PathBuf {
    PathBuf::from(format!("{DIR}/{class:02}/{id:020}.seg"))
}

#[test]
fn one_fsync_per_class_per_group_whatever_the_shard_count() {
    let files = MemoryFiles::new();
    let journal = open(&files).expect("open");
    let mut group = Group::new();
    for shard in 0..1000 {
        add(&journal, &mut group, 0, key(1, shard), &["a", "b"], 10);
    }
    add(&journal, &mut group, 3, key(2, 0), &["c"], 10);
    journal.commit(group, 10).expect("commit");
    assert_eq!(journal.stats().syncs.load(Ordering::Relaxed), 2, "two classes, two fsyncs");
    assert_eq!(contents(&journal, key(1, 999)), vec!["a", "b"]);
    assert_eq!(contents(&journal, key(2, 0)), vec!["c"]);
}

#[test]
fn a_reopened_journal_has_the_same_logs() {
    let files = MemoryFiles::new();
    let options = JournalOptions { segment_bytes: 300 };
    let journal = open_with(&files, options).expect("open");
    for n in 0..20 {
        put(&journal, 0, key(1, n % 3), &[&format!("r{n}")], 100 + u64::from(n));
    }
    let before: Vec<_> = (0..3).map(|s| contents(&journal, key(1, s))).collect();
    assert!(journal.segment_count() > 3, "small segments roll");
    drop(journal);
    let journal = open_with(&files, options).expect("reopen");
    let after: Vec<_> = (0..3).map(|s| contents(&journal, key(1, s))).collect();
    assert_eq!(before, after);
    // Sealed segments were read through their index files; removing one makes open scan.
    let sidecar = segment_path(0, 1).with_extension("idx");
    assert!(files.contents(&sidecar).is_some());
    files.set_contents(&sidecar, b"damaged".to_vec());
    drop(journal);
    let journal = open_with(&files, options).expect("reopen with a damaged index file");
    assert_eq!((0..3).map(|s| contents(&journal, key(1, s))).collect::<Vec<_>>(), before);
    // Writing continues where it stopped, with counters and indexes following on.
    put(&journal, 0, key(1, 0), &["more"], 500);
    assert_eq!(contents(&journal, key(1, 0)).last().map(String::as_str), Some("more"));
}

#[test]
fn a_torn_or_damaged_last_batch_is_cut_at_every_offset() {
    let files = MemoryFiles::new();
    let journal = open(&files).expect("open");
    put(&journal, 0, key(1, 0), &["one", "two"], 1);
    put(&journal, 0, key(1, 0), &["three"], 2);
    let path = segment_path(0, 1);
    let whole = files.contents(&path).expect("segment");
    let last_start = {
        let index = journal.index(key(1, 0));
        let index = read_index(&index);
        let last = index.batches_from(3, 0, 1)[0];
        // The group's marker comes first.
        last.location.offset as usize - frame::MARKER_LEN
    };
    drop(journal);
    for cut in last_start..whole.len() {
        files.set_contents(&path, whole[..cut].to_vec());
        let journal = open(&files).unwrap_or_else(|err| panic!("cut at {cut}: {err}"));
        assert_eq!(contents(&journal, key(1, 0)), vec!["one", "two"], "cut at {cut}");
        let left = files.contents(&path).map_or(0, |c| c.len());
        assert!(left <= last_start + frame::MARKER_LEN, "cut at {cut}: the tail is cut away ({left} bytes left)");
    }
    for at in last_start..whole.len() {
        let mut damaged = whole.clone();
        damaged[at] ^= 0x5a;
        files.set_contents(&path, damaged);
        let journal = open(&files).unwrap_or_else(|err| panic!("damage at {at}: {err}"));
        assert_eq!(contents(&journal, key(1, 0)), vec!["one", "two"], "damage at {at}");
    }
    files.set_contents(&path, whole);
    let journal = open(&files).expect("open");
    assert_eq!(contents(&journal, key(1, 0)), vec!["one", "two", "three"]);
}

#[test]
fn damage_before_the_durable_length_stops_the_open_with_file_and_offset() {
    let files = MemoryFiles::new();
    let journal = open(&files).expect("open");
    put(&journal, 0, key(1, 0), &["one"], 1);
    put(&journal, 0, key(1, 0), &["two"], 2);
    drop(journal);
    let path = segment_path(0, 1);
    let mut damaged = files.contents(&path).expect("segment");
    let at = frame::MARKER_LEN + frame::HEADER_LEN + 2;
    damaged[at] ^= 1;
    files.set_contents(&path, damaged);
    match open(&files) {
        Err(JournalError::Corrupt { path: p, offset, .. }) => {
            assert_eq!(p, path);
            assert_eq!(offset, frame::MARKER_LEN as u64);
        }
        other => panic!("expected damage to be reported, got {other:?}"),
    }
}

#[test]
fn damage_in_a_sealed_segment_is_an_error_on_read_or_open() {
    let files = MemoryFiles::new();
    let options = JournalOptions { segment_bytes: 1 };
    let journal = open_with(&files, options).expect("open");
    put(&journal, 0, key(1, 0), &["sealed"], 1);
    put(&journal, 0, key(1, 0), &["active"], 2);
    let path = segment_path(0, 1);
    let mut damaged = files.contents(&path).expect("segment");
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    files.set_contents(&path, damaged);
    let index = journal.index(key(1, 0));
    let first = read_index(&index).batches_from(0, 0, 1)[0];
    assert!(matches!(journal.read(&first.location), Err(JournalError::Corrupt { .. })));
    drop(journal);
    // Its index file lets the journal open; the read still fails.
    let journal = open_with(&files, options).expect("open");
    let index = journal.index(key(1, 0));
    let first = read_index(&index).batches_from(0, 0, 1)[0];
    assert!(matches!(journal.read(&first.location), Err(JournalError::Corrupt { .. })));
    drop(journal);
    // Without it, the scan finds the damage.
    files.set_contents(&path.with_extension("idx"), Vec::new());
    assert!(matches!(open_with(&files, options), Err(JournalError::Corrupt { .. })));
}

#[test]
fn retention_deletes_whole_files_and_classes_do_not_pin_each_other() {
    const HOUR: u64 = 3_600_000;
    let files = MemoryFiles::new();
    let options = JournalOptions { segment_bytes: 200 };
    let journal = open_with(&files, options).expect("open");
    // Stream 1 keeps 24 h (class 0), stream 2 keeps 7 days (class 3).
    let retention = |stream: u64| match stream {
        1 => Some(24 * HOUR),
        2 => Some(168 * HOUR),
        _ => None,
    };
    for hour in 0..48u64 {
        put(&journal, class_of(24), key(1, 0), &["short"], hour * HOUR);
        put(&journal, class_of(168), key(2, 0), &["long"], hour * HOUR);
    }
    let mut told = HashSet::new();
    let mut note = |shards: &ShardSet| {
        told.extend(shards.iter().copied());
        Ok(())
    };
    let now = 48 * HOUR;
    let expiry = journal.expire(now, &retention, &mut note).expect("expire");
    assert!(expiry.segments > 0);
    assert_eq!(told, HashSet::from([key(1, 0)]), "only the 24-hour stream lost files");
    // What remains of stream 1 is at most its retention plus one segment.
    let kept = contents(&journal, key(1, 0)).len();
    assert!((24..=26).contains(&kept), "{kept} records kept");
    assert_eq!(contents(&journal, key(2, 0)).len(), 48);
    let segments = |class: &str| {
        files
            .paths()
            .iter()
            .filter(|p| p.starts_with(format!("{DIR}/{class}")) && p.extension().is_some_and(|e| e == "seg"))
            .count()
    };
    // Two records per segment here: the 24 hours kept, plus at most one segment more.
    assert!(segments("00") <= kept / 2 + 1, "class 0 holds {} segments", segments("00"));
    assert_eq!(segments("03"), 24, "the 7-day stream keeps all of its 48 hours");
    // A deleted stream's segments go at the next pass, even the active one.
    let expiry = journal.expire(now, &|s| if s == 2 { None } else { retention(s) }, &mut |_| Ok(())).expect("expire");
    assert!(expiry.segments > 0);
    assert!(contents(&journal, key(2, 0)).is_empty());
    assert_eq!(segments("03"), 0);
    // A journal reopened after deletions has the same view.
    drop(journal);
    let journal = open_with(&files, options).expect("reopen");
    assert_eq!(contents(&journal, key(1, 0)).len(), kept);
}

#[test]
fn truncations_and_overwrites_survive_a_restart() {
    let files = MemoryFiles::new();
    let journal = open(&files).expect("open");
    let k = key(1, 0);
    for n in 1..=5u64 {
        let index = journal.index(k);
        let mut group = Group::new();
        let slot = Slot { class: 0, key: k, index: &index, term: 1, raft_index: n };
        group.other(slot, Kind::Entry, format!("e{n}").as_bytes()).expect("frame");
        journal.commit(group, n).expect("commit");
    }
    let index = journal.index(k);
    let mut group = Group::new();
    group
        .other(Slot { class: 0, key: k, index: &index, term: 2, raft_index: 4 }, Kind::Entry, b"new-4")
        .expect("frame");
    journal.commit(group, 6).expect("commit");
    let mut group = Group::new();
    group.other(Slot { class: 0, key: k, index: &index, term: 0, raft_index: 4 }, Kind::Truncate, &[]).expect("frame");
    journal.commit(group, 7).expect("commit");
    let view = |journal: &Journal| {
        let index = journal.index(k);
        let entries = read_index(&index).range(0, u64::MAX);
        entries.iter().map(|e| (e.term, e.index)).collect::<Vec<_>>()
    };
    assert_eq!(view(&journal), vec![(1, 1), (1, 2), (1, 3)]);
    drop(journal);
    let journal = open(&files).expect("reopen");
    assert_eq!(view(&journal), vec![(1, 1), (1, 2), (1, 3)]);
}

/// Reopens after a power cut and checks each shard: every acknowledged record is there, and
/// nothing else but records that were pending (written, never acknowledged).
fn recover(
    files: &MemoryFiles,
    options: JournalOptions,
    committed: &mut [Vec<String>],
    pending: &mut [Vec<String>],
    round: usize,
) -> Journal {
    let journal = open_with(files, options).unwrap_or_else(|err| panic!("round {round}: {err}"));
    for (shard, (acked, maybe)) in committed.iter_mut().zip(pending.iter_mut()).enumerate() {
        let found = contents(&journal, key(1, shard as u32));
        assert!(found.starts_with(acked), "round {round}: acknowledged records lost: {found:?} vs {acked:?}");
        let mut possible = acked.clone();
        possible.extend(maybe.iter().cloned());
        assert!(possible.starts_with(&found), "round {round}: records that were never written: {found:?}");
        *acked = found;
        maybe.clear();
    }
    journal
}

#[test]
fn after_a_power_cut_every_acknowledged_batch_is_there_and_nothing_else() {
    use rand::Rng as _;
    let mut rng = rand::rng();
    for round in 0..50 {
        let files = MemoryFiles::new();
        let options = JournalOptions { segment_bytes: 512 };
        let mut committed: Vec<Vec<String>> = vec![Vec::new(); 4];
        let mut pending: Vec<Vec<String>> = vec![Vec::new(); 4];
        let mut journal = open_with(&files, options).expect("open");
        for step in 0..80 {
            let mut group = Group::new();
            let mut added: Vec<(usize, String)> = Vec::new();
            for shard in 0..4u32 {
                if rng.random_bool(0.5) {
                    let data = format!("s{shard}-{step}");
                    add(&journal, &mut group, 0, key(1, shard), &[&data], step);
                    added.push((shard as usize, data));
                }
            }
            if rng.random_ratio(1, 8) {
                // The power fails during the fsync: the write is pending, never acknowledged.
                files.fail_syncs(true);
                let outcome = journal.commit(group, step);
                assert!(added.is_empty() || outcome.is_err());
                for (shard, data) in added {
                    pending[shard].push(data);
                }
                let cut = match rng.random_range(0..3) {
                    0 => Cut::DropUnsynced,
                    1 => Cut::Torn(rng.random_range(0..300)),
                    _ => Cut::KeepAll,
                };
                files.power_cut(cut);
                files.fail_syncs(false);
                drop(journal);
                journal = recover(&files, options, &mut committed, &mut pending, round);
                continue;
            }
            journal.commit(group, step).expect("commit");
            for (shard, data) in added {
                committed[shard].push(data);
            }
            if rng.random_ratio(1, 20) {
                files.power_cut(Cut::DropUnsynced);
                drop(journal);
                journal = recover(&files, options, &mut committed, &mut pending, round);
            }
        }
    }
}

#[test]
fn only_the_durable_tail_stays_cached_and_cold_reads_let_their_pages_go() {
    let files = MemoryFiles::new();
    let journal = open_with(&files, JournalOptions { segment_bytes: 8 << 20 }).expect("open");
    let shard = key(1, 0);
    let record = "x".repeat(1 << 20);
    let groups = 80;
    for n in 0..groups {
        put(&journal, 0, shard, &[&record], n);
    }
    let written: u64 = journal.stats().bytes.load(Ordering::Relaxed);
    let segments: Vec<PathBuf> =
        files.paths().into_iter().filter(|p| p.extension().is_some_and(|e| e == "seg")).collect();
    let evicted: Vec<(PathBuf, u64, u64)> =
        segments.iter().flat_map(|p| files.evicted(p).into_iter().map(move |(o, l)| (p.clone(), o, l))).collect();
    let dropped: u64 = evicted.iter().map(|(_, _, len)| len).sum();
    assert!(dropped > 0, "older pages are let go");
    assert!(written - dropped >= CACHED_TAIL_BYTES, "the newest {CACHED_TAIL_BYTES} bytes stay cached");
    assert!(written - dropped < CACHED_TAIL_BYTES + (2 << 20), "no more than one group beyond the tail stays");
    assert_eq!(evicted.first().map(|(p, o, _)| (p.clone(), *o)), Some((segments[0].clone(), 0)), "oldest first");

    // A read of the oldest frame lets its pages go again; a read at the head keeps them.
    let index = journal.index(shard);
    let (oldest, newest) = {
        let index = read_index(&index);
        let entries = index.batches_from(0, 0, usize::MAX);
        (entries[0].location, entries[entries.len() - 1].location)
    };
    journal.read(&oldest).expect("read").expect("present");
    let first_segment = segment_path(0, oldest.segment);
    assert_eq!(files.evicted(&first_segment).last(), Some(&(oldest.offset, u64::from(oldest.len))));
    let head_segment = segment_path(0, newest.segment);
    let before = files.evicted(&head_segment).len();
    journal.read(&newest).expect("read").expect("present");
    assert_eq!(files.evicted(&head_segment).len(), before, "the tail is read from the cache");
    assert_eq!(contents(&journal, shard).len(), groups as usize, "every record still reads");
}
