//! The shard log engine: record bytes written once, to a journal shared by every shard of the
//! server, one journal per retention class (see `docs/storage.md`).
//!
//! - **Group commit across shards.** The appender gathers everything queued during the
//!   previous fsync into a [`Group`]: one frame per shard, one buffer per retention class.
//!   [`Journal::commit`] writes each class's buffer with one positional write and then
//!   `fdatasync`s each file written: fsyncs per group = classes written, never shards.
//! - **Raft-ready.** Every frame carries the (term, index) of its shard's log; a frame whose
//!   index is at or below the shard's last replaces that suffix, and truncations are frames
//!   too, so a shard's log after a restart is exactly the log before it.
//! - **Retention deletes files.** A segment goes once every stream with frames in it has
//!   expired them ([`Journal::expire`]); streams of different retention write to different
//!   classes and never pin each other's files.
//! - **Recovery.** Sealed segments are read through their index files; the newest segment of
//!   each class is scanned and its torn tail (bytes past the durable length its last marker
//!   states) is cut. A bad frame anywhere else stops the open with its file and offset.

pub mod files;
pub mod frame;
pub mod index;
mod segment;

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap, FxHashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use files::Files;
use frame::{Header, Kind};
use index::{IndexEntry, Location, ShardIndex};
use segment::{Located, Segment};

/// Segments are sealed once they reach this size.
pub const SEGMENT_BYTES: u64 = 64 << 20;
/// Bytes at the head of each class that stay in the page cache once durable: what tailing
/// readers read. Older pages are dropped after their fsync (see [`Cached`]).
pub const CACHED_TAIL_BYTES: u64 = 64 << 20;
/// Retention classes: class `k` holds streams retaining at most 24 h × 2^k (the last one
/// every retention up to the 8,760 h maximum).
pub const CLASSES: u8 = 10;

/// The retention class of a stream retaining `hours`.
pub fn class_of(hours: u32) -> u8 {
    let mut class = 0u8;
    while class + 1 < CLASSES && 24u64 << class < u64::from(hours) {
        class += 1;
    }
    class
}

/// A shard of a stream, as the journal names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardKey {
    /// Stream id.
    pub stream: u64,
    /// Shard index.
    pub shard: u32,
}

/// A set of shards.
pub type ShardSet = FxHashSet<ShardKey>;

/// A shard's index, shared by the writer (which extends it after each fsync) and readers.
pub type SharedIndex = Arc<RwLock<ShardIndex>>;

/// Reads a shared index.
pub fn read_index(index: &SharedIndex) -> RwLockReadGuard<'_, ShardIndex> {
    index.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Drops a shard's index entries below `below` (a Raft log's purged prefix).
pub fn purge_index(index: &SharedIndex, below: u64) {
    write_index(index).purge_below(below);
}

fn write_index(index: &SharedIndex) -> RwLockWriteGuard<'_, ShardIndex> {
    index.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Journal failures.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A file operation failed.
    #[error("journal file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Stored bytes are damaged where acknowledged data lies.
    #[error("journal file {path} is damaged at offset {offset}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset of the damaged frame.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// An earlier write or fsync failed; nothing more is written until the server restarts
    /// (after a failed fsync the kernel may have dropped the unsynced pages).
    #[error("the journal stopped after a failed write or fsync: {0}")]
    Stopped(String),
    /// A segment's deletion was put off because what must be kept first could not be.
    #[error("segment deletion put off: {0}")]
    Deferred(String),
}

impl JournalError {
    fn corrupt(path: &Path, offset: u64, reason: &str) -> Self {
        JournalError::Corrupt { path: path.to_owned(), offset, reason: reason.to_owned() }
    }
}

/// Tuning of a journal.
#[derive(Debug, Clone, Copy)]
pub struct JournalOptions {
    /// Seal segments at this size.
    pub segment_bytes: u64,
}

impl Default for JournalOptions {
    fn default() -> Self {
        Self { segment_bytes: SEGMENT_BYTES }
    }
}

/// Counters for metrics and tests.
#[derive(Debug, Default)]
pub struct JournalStats {
    /// fsyncs of segments.
    pub syncs: AtomicU64,
    /// Bytes written to segments.
    pub bytes: AtomicU64,
    /// Group writes.
    pub groups: AtomicU64,
    /// Segments deleted by retention.
    pub segments_deleted: AtomicU64,
}

/// One frame waiting in a [`Group`].
#[derive(Debug)]
struct Pending {
    key: ShardKey,
    index: SharedIndex,
    header: Header,
    offset: usize,
    len: usize,
    first_counter: u64,
    count: u32,
    arrival_ms: u64,
}

#[derive(Debug)]
struct ClassBuffer {
    /// Starts with room for the group's marker frame.
    bytes: Vec<u8>,
    frames: Vec<Pending>,
}

impl Default for ClassBuffer {
    fn default() -> Self {
        Self { bytes: vec![0; frame::MARKER_LEN], frames: Vec::new() }
    }
}

/// Where a frame goes: its retention class and shard, and its place in the shard's Raft log.
#[derive(Debug, Clone, Copy)]
pub struct Slot<'a> {
    /// Retention class.
    pub class: u8,
    /// The shard.
    pub key: ShardKey,
    /// The shard's index, extended once the frame is durable.
    pub index: &'a SharedIndex,
    /// Raft term (0 in standalone).
    pub term: u64,
    /// Raft index of the entry.
    pub raft_index: u64,
}

/// Frames gathered for one durable write, per retention class.
#[derive(Debug, Default)]
pub struct Group {
    classes: BTreeMap<u8, ClassBuffer>,
}

impl Group {
    /// An empty group.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes room for `bytes` more in `class`'s buffer, so a group whose size is known up front
    /// is built without growing (and copying) its buffer.
    pub fn reserve(&mut self, class: u8, bytes: usize) {
        self.classes.entry(class).or_default().bytes.reserve(bytes);
    }

    /// Room a record batch of `count` records holding `bytes` of keys and data takes.
    pub fn batch_len(count: usize, bytes: usize) -> usize {
        frame::HEADER_LEN + frame::BATCH_HEADER_LEN + count * frame::RECORD_OVERHEAD + bytes
    }

    /// Adds a batch of records of one shard, counters from `first_counter`, all arriving at
    /// `arrival_ms`.
    pub fn records<'a>(
        &mut self,
        slot: Slot<'_>,
        first_counter: u64,
        arrival_ms: u64,
        records: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) {
        self.push(slot, Kind::Records, |bytes| {
            let count_at = bytes.len() + 8;
            frame::begin_batch(bytes, first_counter, 0, arrival_ms);
            let mut count = 0u32;
            for (partition_key, data) in records {
                frame::push_record(bytes, partition_key, data);
                count += 1;
            }
            bytes[count_at..count_at + 4].copy_from_slice(&count.to_le_bytes());
            (first_counter, count, arrival_ms)
        });
    }

    /// Adds a frame with a payload already encoded: a record batch's (as a Raft log receives
    /// it from a leader), an opaque Raft entry, or none for a truncation of the shard's log
    /// from the slot's index on. A record batch whose payload header does not decode is refused.
    pub fn other(&mut self, slot: Slot<'_>, kind: Kind, payload: &[u8]) -> Result<(), frame::FrameError> {
        let batch = match kind {
            Kind::Records => frame::batch_header(payload)?,
            Kind::Marker => return Err(frame::FrameError::Malformed("markers are the journal's own")),
            Kind::Truncate | Kind::Entry => (0, 0, 0),
        };
        self.push(slot, kind, |bytes| {
            bytes.extend_from_slice(payload);
            batch
        });
        Ok(())
    }

    /// Adds one frame whose payload `fill` writes, returning the batch's `(first counter,
    /// count, arrival ms)`.
    fn push(&mut self, slot: Slot<'_>, kind: Kind, fill: impl FnOnce(&mut Vec<u8>) -> (u64, u32, u64)) {
        let buffer = self.classes.entry(slot.class).or_default();
        let header =
            Header { kind, stream: slot.key.stream, shard: slot.key.shard, term: slot.term, index: slot.raft_index };
        let start = frame::begin(&mut buffer.bytes, header);
        let (first_counter, count, arrival_ms) = fill(&mut buffer.bytes);
        let len = frame::finish(&mut buffer.bytes, start);
        buffer.frames.push(Pending {
            key: slot.key,
            index: slot.index.clone(),
            header,
            offset: start,
            len,
            first_counter,
            count,
            arrival_ms,
        });
    }

    /// Bytes the group will write.
    pub fn bytes(&self) -> usize {
        self.classes.values().map(|c| c.bytes.len()).sum()
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.classes.values().all(|c| c.frames.is_empty())
    }
}

/// The active segment of a class.
#[derive(Debug)]
struct Active {
    segment: Arc<Segment>,
    len: u64,
}

#[derive(Debug, Default)]
struct WriterState {
    active: BTreeMap<u8, Active>,
    next_id: BTreeMap<u8, u64>,
    group: u64,
    cached: BTreeMap<u8, Cached>,
}

/// The durable ranges of one class still in the page cache, oldest first.
///
/// The journal writes every byte once and most reads are of the newest ones, so it keeps only
/// the last [`CACHED_TAIL_BYTES`] of each class cached and drops older pages once they are
/// synced (as BookKeeper does with its journal). Left to the system, the page cache fills with
/// cold log data and every write lands in a page never used before — where memory is backed
/// lazily (virtual machines), that costs more than the write itself: 367 MB/s into new pages
/// against 3.9 GB/s into pages dropped and reused, measured on the 2-core test machine.
#[derive(Debug, Default)]
struct Cached {
    /// Weak: a segment that retention deleted is not kept open by this.
    ranges: std::collections::VecDeque<(std::sync::Weak<Segment>, u64, u64)>,
    bytes: u64,
}

impl Cached {
    /// Records `offset..offset + len` of `segment` as written and synced, and drops the
    /// pages of the ranges that fell out of the tail.
    /// Returns the end (segment id, offset) of the newest range dropped, if any was.
    fn push(&mut self, segment: &Arc<Segment>, offset: u64, len: u64) -> Option<(u64, u64)> {
        self.ranges.push_back((Arc::downgrade(segment), offset, len));
        self.bytes += len;
        let mut evicted = None;
        while let Some((_, _, oldest)) = self.ranges.front() {
            if self.bytes - oldest < CACHED_TAIL_BYTES {
                break;
            }
            self.bytes -= oldest;
            if let Some((segment, offset, len)) = self.ranges.pop_front() {
                if let Some(segment) = segment.upgrade() {
                    segment.file.evict(offset, len);
                    evicted = Some((segment.id, offset + len));
                }
            }
        }
        evicted
    }
}

/// What a retention pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    /// Segments deleted.
    pub segments: u64,
}

/// The journal of one data directory.
#[derive(Debug)]
pub struct Journal {
    files: Arc<dyn Files>,
    dir: PathBuf,
    options: JournalOptions,
    writer: Mutex<WriterState>,
    segments: RwLock<BTreeMap<(u8, u64), Arc<Segment>>>,
    shards: RwLock<FxHashMap<ShardKey, SharedIndex>>,
    stopped: AtomicBool,
    stats: JournalStats,
    /// Per class, the (segment, offset) below which the writer dropped cached pages: a read
    /// there came from the device and drops its pages again, so a reader far behind streams
    /// through reused pages instead of filling the page cache.
    cold_below: Mutex<FxHashMap<u8, (u64, u64)>>,
}

impl Journal {
    /// Opens (or creates) the journal in `dir`, rebuilding the index of every shard; the
    /// catalog then drops those of deleted streams ([`Journal::retain_streams`]).
    pub fn open(files: Arc<dyn Files>, dir: &Path, options: JournalOptions) -> Result<Self, JournalError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| JournalError::Io { path, source }
        };
        files.create_dir_all(dir).map_err(io(dir))?;
        let mut writer = WriterState::default();
        let mut segments = BTreeMap::new();
        let mut cold_below = FxHashMap::default();
        let mut frames: Vec<Located> = Vec::new();
        for name in files.list_dirs(dir).map_err(io(dir))? {
            let Some(class) = name.parse::<u8>().ok().filter(|c| *c < CLASSES) else { continue };
            let class_dir = dir.join(&name);
            let mut ids: Vec<u64> = files
                .list(&class_dir)
                .map_err(io(&class_dir))?
                .iter()
                .filter_map(|f| f.strip_suffix(".seg")?.parse().ok())
                .collect();
            ids.sort_unstable();
            for (n, id) in ids.iter().enumerate() {
                let path = Segment::path_in(&class_dir, *id);
                let file = files.open(&path, false).map_err(io(&path))?;
                let mut segment = Segment { class, id: *id, path, file, summary: Mutex::default() };
                let newest = n + 1 == ids.len();
                let len = segment.file.size().map_err(io(&segment.path))?;
                let known = if newest { None } else { segment::read_index(files.as_ref(), &segment, len) };
                let mut summary = match known {
                    Some(summary) => summary,
                    None => {
                        let scan = segment::scan(&segment, newest)?;
                        if scan.valid_len < scan.file_len {
                            segment.file.truncate(scan.valid_len).map_err(io(&segment.path))?;
                        }
                        scan.summary
                    }
                };
                frames.extend(summary.frames.iter().copied());
                if newest {
                    let _ = files.remove(&segment.index_path());
                    writer.next_id.insert(class, id + 1);
                    let segment = Arc::new(Segment { summary: Mutex::new(summary), ..segment });
                    let len = segment.file.size().map_err(io(&segment.path))?;
                    cold_below.insert(class, (*id, len));
                    writer.active.insert(class, Active { segment: segment.clone(), len });
                    segments.insert((class, *id), segment);
                } else {
                    summary.frames = Vec::new();
                    segment.summary = Mutex::new(summary);
                    segments.insert((class, *id), Arc::new(segment));
                }
            }
        }
        frames.sort_by_key(|f| (f.group, f.entry.location.class, f.entry.location.segment, f.entry.location.offset));
        writer.group = frames.last().map_or(0, |f| f.group);
        let mut shards: FxHashMap<ShardKey, SharedIndex> = FxHashMap::default();
        for located in frames {
            let index = shards.entry(located.key).or_default();
            let mut index = write_index(index);
            match located.entry.kind {
                Kind::Truncate => index.truncate_from(located.entry.index),
                _ => index.push(located.entry),
            }
        }
        Ok(Self {
            files,
            dir: dir.to_owned(),
            options,
            writer: Mutex::new(writer),
            segments: RwLock::new(segments),
            shards: RwLock::new(shards),
            stopped: AtomicBool::new(false),
            stats: JournalStats::default(),
            cold_below: Mutex::new(cold_below),
        })
    }

    /// Counters.
    pub fn stats(&self) -> &JournalStats {
        &self.stats
    }

    /// The index of a shard (an empty one for a shard without frames).
    pub fn index(&self, key: ShardKey) -> SharedIndex {
        if let Some(index) = self.shards.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return index.clone();
        }
        self.shards.write().unwrap_or_else(|p| p.into_inner()).entry(key).or_default().clone()
    }

    /// An empty journal on an in-memory file system (tests, fuzzing).
    pub fn in_memory() -> Arc<Self> {
        Self::open(Arc::new(files::MemoryFiles::new()), Path::new("/journal"), JournalOptions::default())
            .map(Arc::new)
            .unwrap_or_else(|err| unreachable!("an empty in-memory journal opens: {err}"))
    }

    /// Keeps only the indexes of streams for which `live` is true; the frames of the others
    /// go with their segments.
    pub fn retain_streams(&self, live: &dyn Fn(u64) -> bool) {
        self.shards.write().unwrap_or_else(|p| p.into_inner()).retain(|key, _| live(key.stream));
    }

    /// Writes `group` durably: one write per retention class, then one fsync per file
    /// written. Only then are the frames added to their shards' indexes. After a failure
    /// nothing more is written (see [`JournalError::Stopped`]).
    pub fn commit(&self, group: Group, now_ms: u64) -> Result<(), JournalError> {
        if group.is_empty() {
            return Ok(());
        }
        let mut writer = lock(&self.writer);
        if self.stopped.load(Ordering::Acquire) {
            return Err(JournalError::Stopped("an earlier write failed".into()));
        }
        writer.group += 1;
        let number = writer.group;
        let mut written = Vec::with_capacity(group.classes.len());
        for (class, mut buffer) in group.classes {
            if buffer.frames.is_empty() {
                continue;
            }
            let active = self.active(&mut writer, class).inspect_err(|err| self.stop(err))?;
            frame::write_marker(&mut buffer.bytes[..frame::MARKER_LEN], active.len, number, now_ms);
            let base = active.len;
            let segment = active.segment.clone();
            segment
                .file
                .write_at(&buffer.bytes, base)
                .map_err(|source| JournalError::Io { path: segment.path.clone(), source })
                .inspect_err(|err| self.stop(err))?;
            written.push((segment, base, buffer));
        }
        for (segment, _, _) in &written {
            segment
                .file
                .sync()
                .map_err(|source| JournalError::Io { path: segment.path.clone(), source })
                .inspect_err(|err| self.stop(err))?;
            self.stats.syncs.fetch_add(1, Ordering::Relaxed);
        }
        self.stats.groups.fetch_add(1, Ordering::Relaxed);
        for (segment, base, buffer) in written {
            if let Some(active) = writer.active.get_mut(&segment.class) {
                active.len = base + buffer.bytes.len() as u64;
            }
            let cached = writer.cached.entry(segment.class).or_default();
            if let Some(evicted) = cached.push(&segment, base, buffer.bytes.len() as u64) {
                let mut cold = lock(&self.cold_below);
                let below = cold.entry(segment.class).or_default();
                *below = (*below).max(evicted);
            }
            self.stats.bytes.fetch_add(buffer.bytes.len() as u64, Ordering::Relaxed);
            let mut summary = lock(&segment.summary);
            for pending in buffer.frames {
                let entry = IndexEntry {
                    term: pending.header.term,
                    index: pending.header.index,
                    kind: pending.header.kind,
                    location: Location {
                        class: segment.class,
                        segment: segment.id,
                        offset: base + pending.offset as u64,
                        len: u32::try_from(pending.len).unwrap_or(u32::MAX),
                    },
                    first_counter: pending.first_counter,
                    count: pending.count,
                    arrival_ms: pending.arrival_ms,
                };
                summary.add(Located { key: pending.key, group: number, entry }, now_ms, true);
                self.register(pending.key, &pending.index);
                let mut index = write_index(&pending.index);
                match entry.kind {
                    Kind::Truncate => index.truncate_from(entry.index),
                    _ => index.push(entry),
                }
            }
        }
        Ok(())
    }

    /// Makes sure retention finds `index` under `key`.
    fn register(&self, key: ShardKey, index: &SharedIndex) {
        let known =
            self.shards.read().unwrap_or_else(|p| p.into_inner()).get(&key).is_some_and(|i| Arc::ptr_eq(i, index));
        if !known {
            self.shards.write().unwrap_or_else(|p| p.into_inner()).insert(key, index.clone());
        }
    }

    fn stop(&self, err: &JournalError) {
        tracing::error!(cause = %err, "journal write failed; no further writes until restart");
        self.stopped.store(true, Ordering::Release);
    }

    /// The active segment of `class`, sealing the current one and starting the next when it
    /// is full.
    fn active<'w>(&self, writer: &'w mut WriterState, class: u8) -> Result<&'w mut Active, JournalError> {
        let full = writer.active.get(&class).is_none_or(|a| a.len >= self.options.segment_bytes);
        if full {
            if let Some(old) = writer.active.remove(&class) {
                let mut summary = lock(&old.segment.summary);
                segment::write_index(self.files.as_ref(), &old.segment, old.len, &summary)?;
                summary.frames = Vec::new();
            }
            let class_dir = self.dir.join(format!("{class:02}"));
            let io = |source| JournalError::Io { path: class_dir.clone(), source };
            self.files.create_dir_all(&class_dir).map_err(io)?;
            let id = writer.next_id.get(&class).copied().unwrap_or(1);
            let path = Segment::path_in(&class_dir, id);
            let file =
                self.files.open(&path, true).map_err(|source| JournalError::Io { path: path.clone(), source })?;
            self.files.sync_dir(&class_dir).map_err(io)?;
            self.files.sync_dir(&self.dir).map_err(|source| JournalError::Io { path: self.dir.clone(), source })?;
            let segment = Arc::new(Segment { class, id, path, file, summary: Mutex::default() });
            self.segments.write().unwrap_or_else(|p| p.into_inner()).insert((class, id), segment.clone());
            writer.next_id.insert(class, id + 1);
            writer.active.insert(class, Active { segment, len: 0 });
        }
        writer.active.get_mut(&class).ok_or_else(|| JournalError::Stopped("no active segment".into()))
    }

    /// Reads the frame at `location`, checksum verified: `(header, frame bytes)`; the payload
    /// starts at [`frame::HEADER_LEN`]. `None` when its segment was deleted by retention.
    pub fn read(&self, location: &Location) -> Result<Option<(Header, Vec<u8>)>, JournalError> {
        let segment =
            self.segments.read().unwrap_or_else(|p| p.into_inner()).get(&(location.class, location.segment)).cloned();
        let Some(segment) = segment else { return Ok(None) };
        let mut bytes = vec![0; location.len as usize];
        segment
            .file
            .read_at(&mut bytes, location.offset)
            .map_err(|source| JournalError::Io { path: segment.path.clone(), source })?;
        let cold = lock(&self.cold_below)
            .get(&location.class)
            .is_some_and(|&below| (location.segment, location.offset + u64::from(location.len)) <= below);
        if cold {
            segment.file.evict(location.offset, u64::from(location.len));
        }
        let header = frame::parse(&bytes)
            .map_err(|err| JournalError::corrupt(&segment.path, location.offset, &err.to_string()))?
            .0;
        Ok(Some((header, bytes)))
    }

    /// Deletes every segment whose frames have all expired: for each stream with frames in
    /// it, `retention_of` gives its retention (`None` for a deleted stream) and its newest
    /// frame there is older than that. `before_delete` is told the shards losing frames
    /// first (their sequence counters must be kept durably elsewhere by then).
    pub fn expire(
        &self,
        now_ms: u64,
        retention_of: &dyn Fn(u64) -> Option<u64>,
        before_delete: &mut dyn FnMut(&ShardSet) -> Result<(), JournalError>,
    ) -> Result<Expiry, JournalError> {
        // The writer is held only for the active segment of a class, the one it may still
        // append to. A sealed segment takes no more frames, so deleting one (which writes the
        // progress rows of every shard in it: 10,000 for a busy server) never holds up a group.
        let candidates: Vec<Arc<Segment>> =
            self.segments.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        let mut expiry = Expiry::default();
        for segment in candidates {
            let expired = |summary: &segment::Summary| {
                summary.newest.iter().all(|(stream, newest)| {
                    retention_of(*stream).is_none_or(|retention| newest.saturating_add(retention) <= now_ms)
                })
            };
            if !expired(&lock(&segment.summary)) {
                continue;
            }
            let mut writer = Some(lock(&self.writer));
            let active = writer
                .as_ref()
                .is_some_and(|w| w.active.get(&segment.class).is_some_and(|a| a.segment.id == segment.id));
            let shards = {
                // Checked again under the writer: frames may have landed (and the segment been
                // sealed) since the first look. A sealed segment's answer is final; an active one
                // keeps the writer until it is gone.
                let summary = lock(&segment.summary);
                if (active && summary.newest.is_empty()) || !expired(&summary) {
                    continue;
                }
                summary.shards.clone()
            };
            if !active {
                writer = None;
            }
            before_delete(&shards)?;
            if let Some(writer) = writer.as_mut() {
                writer.active.remove(&segment.class);
            }
            self.segments.write().unwrap_or_else(|p| p.into_inner()).remove(&(segment.class, segment.id));
            {
                let indexes = self.shards.read().unwrap_or_else(|p| p.into_inner());
                for key in &shards {
                    if let Some(index) = indexes.get(key) {
                        write_index(index).drop_segment(segment.class, segment.id);
                    }
                }
            }
            let io = |path: &Path| {
                let path = path.to_owned();
                move |source| JournalError::Io { path, source }
            };
            self.files.remove(&segment.path).map_err(io(&segment.path))?;
            let _ = self.files.remove(&segment.index_path());
            if let Some(dir) = segment.path.parent() {
                self.files.sync_dir(dir).map_err(io(dir))?;
            }
            self.stats.segments_deleted.fetch_add(1, Ordering::Relaxed);
            expiry.segments += 1;
            tracing::debug!(path = %segment.path.display(), "expired segment deleted");
        }
        Ok(expiry)
    }

    /// Segment files present, for tests and metrics.
    pub fn segment_count(&self) -> usize {
        self.segments.read().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests;
