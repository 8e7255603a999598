//! Streams: their persisted definition (shards, retention, status), the in-memory catalog of
//! every stream this server holds, and the lifecycle CREATING → ACTIVE → DELETING.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use serde::{Deserialize, Serialize};

use crate::consumer::ConsumerDef;
use crate::error::{Error, Result};
use crate::hash_range::HashRange;
use crate::journal::{read_index, Journal, ShardKey, SharedIndex};
use crate::placement::Placement;
use crate::sequence::SequenceNumber;
use crate::store::{keys, Cf, Durability, KvEngine, WriteBatch};

/// Default retention of a new stream, in hours.
pub const DEFAULT_RETENTION_HOURS: u32 = 24;
/// Shortest retention Kinesis allows, in hours.
pub const MIN_RETENTION_HOURS: u32 = 24;
/// Longest retention Kinesis allows, in hours (365 days).
pub const MAX_RETENTION_HOURS: u32 = 8760;
/// Shards of a new on-demand stream.
pub const ON_DEMAND_SHARDS: u32 = 4;
/// Default maximum record size (partition key plus data), in KiB.
pub const DEFAULT_MAX_RECORD_SIZE_KIB: u32 = 1024;
/// Streams that may be CREATING at once in an account.
pub const MAX_CREATING_STREAMS: usize = 5;

/// Kinesis' stream status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamStatus {
    /// Being created; not yet readable or writable.
    Creating,
    /// Serving reads and writes.
    Active,
    /// Serving while its shards or settings change.
    Updating,
    /// Being deleted.
    Deleting,
}

impl StreamStatus {
    /// The Kinesis spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            StreamStatus::Creating => "CREATING",
            StreamStatus::Active => "ACTIVE",
            StreamStatus::Updating => "UPDATING",
            StreamStatus::Deleting => "DELETING",
        }
    }

    /// True when records may be put and read.
    pub const fn is_serving(self) -> bool {
        matches!(self, StreamStatus::Active | StreamStatus::Updating)
    }
}

/// Kinesis' capacity mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamMode {
    /// A fixed number of shards chosen by the user.
    Provisioned,
    /// Shards managed by the service.
    OnDemand,
}

impl StreamMode {
    /// The Kinesis spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            StreamMode::Provisioned => "PROVISIONED",
            StreamMode::OnDemand => "ON_DEMAND",
        }
    }
}

/// One shard as the catalog records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardDef {
    /// Index; the shard id is `shardId-` and this number in 12 digits.
    pub index: u32,
    /// Hash keys this shard owns.
    pub hash_range: HashRange,
    /// The shard this one was split or merged from.
    pub parent: Option<u32>,
    /// The other shard of a merge.
    pub adjacent_parent: Option<u32>,
    /// When the shard opened, ms since the epoch.
    pub created_at_ms: u64,
    /// Counter of the last record, once the shard is closed.
    pub ending_counter: Option<u64>,
    /// When the shard closed, ms since the epoch.
    #[serde(default)]
    pub closed_at_ms: Option<u64>,
}

impl ShardDef {
    /// The first shards of a new stream: `count` shards over even hash ranges.
    pub fn roots(count: u32, created_at_ms: u64) -> Vec<ShardDef> {
        HashRange::split_evenly(count)
            .into_iter()
            .zip(0u32..)
            .map(|(hash_range, index)| ShardDef {
                index,
                hash_range,
                parent: None,
                adjacent_parent: None,
                created_at_ms,
                ending_counter: None,
                closed_at_ms: None,
            })
            .collect()
    }

    /// The Kinesis shard id.
    pub fn id(&self) -> String {
        shard_id(self.index)
    }

    /// The sequence number of position `counter` of this shard, arrived at `arrival_ms`.
    pub const fn sequence(&self, counter: u64, arrival_ms: u64) -> SequenceNumber {
        SequenceNumber::new(self.index, self.created_at_ms, counter, arrival_ms)
    }

    /// The sequence number the shard starts at.
    pub const fn starting_sequence(&self) -> SequenceNumber {
        self.sequence(0, self.created_at_ms)
    }

    /// The sequence number the shard ended at, once closed.
    pub fn ending_sequence(&self) -> Option<SequenceNumber> {
        let closed_at_ms = self.closed_at_ms.unwrap_or(self.created_at_ms);
        self.ending_counter.map(|counter| self.sequence(counter, closed_at_ms))
    }

    /// True while the shard accepts records.
    pub fn is_open(&self) -> bool {
        self.ending_counter.is_none()
    }

    /// True when the shard was open at `time_ms`.
    pub fn open_at(&self, time_ms: u64) -> bool {
        self.created_at_ms <= time_ms && self.open_after(time_ms)
    }

    /// True when the shard was open at some point at or after `time_ms`.
    pub fn open_after(&self, time_ms: u64) -> bool {
        self.closed_at_ms.is_none_or(|closed| closed > time_ms)
    }
}

/// The Kinesis id of shard `index`.
pub fn shard_id(index: u32) -> String {
    format!("shardId-{index:012}")
}

/// The index of a shard id: `shardId-000000000007` (or the bare number, as Kinesis accepts).
pub fn parse_shard_id(text: &str) -> Option<u32> {
    // As Kinesis resolves a shard id: the number after the last `-` (`shard-7`, `shardId-7`
    // and `7` all name shard 7), at most 2^31 - 1.
    let digits = text.rsplit('-').next().unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let significant = digits.trim_start_matches('0');
    if significant.len() > 10 {
        return None;
    }
    let index = significant.parse::<u64>().unwrap_or(0);
    u32::try_from(index).ok().filter(|&i| i <= i32::MAX as u32)
}

/// A stream's persisted definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamDef {
    /// Internal id, never reused, so old iterators cannot reach a new stream of the same name.
    pub id: u64,
    /// Name.
    pub name: String,
    /// Lifecycle status.
    pub status: StreamStatus,
    /// Capacity mode.
    pub mode: StreamMode,
    /// Retention in hours.
    pub retention_hours: u32,
    /// Creation time, ms since the epoch.
    pub created_at_ms: u64,
    /// Largest record (partition key plus data) accepted, in KiB.
    pub max_record_size_kib: u32,
    /// Every shard ever created, open and closed, in index order.
    pub shards: Vec<ShardDef>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// When UpdateShardCount ran within the last 24 hours, ms since the epoch.
    #[serde(default)]
    pub scalings_ms: Vec<u64>,
    /// Shard-level metrics enabled (enhanced monitoring), by CloudWatch name.
    #[serde(default)]
    pub shard_level_metrics: BTreeSet<String>,
    /// Per-stream throughput-limit switch; `None` follows the server default.
    #[serde(default)]
    pub throughput_limits: Option<bool>,
    /// Enhanced fan-out consumers registered on the stream.
    #[serde(default)]
    pub consumers: Vec<ConsumerDef>,
    /// Which server holds each shard (cluster mode); `None` on a standalone server.
    #[serde(default)]
    pub placement: Option<Placement>,
}

impl StreamDef {
    /// Shards accepting records.
    pub fn open_shards(&self) -> impl Iterator<Item = &ShardDef> {
        self.shards.iter().filter(|s| s.is_open())
    }

    /// Shards still listed at `now_ms`: open ones, and closed ones until every record they
    /// hold has outlived the retention period, as Kinesis lists them.
    pub fn listed_shards(&self, now_ms: u64) -> impl Iterator<Item = &ShardDef> {
        let retention = self.retention_ms();
        self.shards
            .iter()
            .filter(move |s| s.closed_at_ms.is_none_or(|closed| closed.saturating_add(retention) > now_ms))
    }

    /// The shards split or merged out of shard `index`.
    pub fn children(&self, index: u32) -> impl Iterator<Item = &ShardDef> {
        self.shards.iter().filter(move |s| s.parent == Some(index) || s.adjacent_parent == Some(index))
    }

    /// The open shard owning `hash_key`.
    pub fn route(&self, hash_key: u128) -> Option<&ShardDef> {
        self.open_shards().find(|s| s.hash_range.contains(hash_key))
    }

    /// The open shards ordered by hash range, for routing many records at once.
    pub fn router(&self) -> Router<'_> {
        let mut open: Vec<&ShardDef> = self.open_shards().collect();
        open.sort_unstable_by_key(|s| s.hash_range.start);
        Router { open }
    }

    /// The shard of index `index`.
    pub fn shard(&self, index: u32) -> Option<&ShardDef> {
        self.shards.get(usize::try_from(index).ok()?).filter(|s| s.index == index)
    }

    /// Retention in milliseconds.
    pub fn retention_ms(&self) -> u64 {
        u64::from(self.retention_hours) * 3_600_000
    }

    /// Largest record in bytes.
    pub fn max_record_bytes(&self) -> usize {
        usize::try_from(self.max_record_size_kib).unwrap_or(usize::MAX).saturating_mul(1024)
    }
}

/// A stream's open shards by hash range: [`StreamDef::route`] by binary search.
#[derive(Debug)]
pub struct Router<'a> {
    open: Vec<&'a ShardDef>,
}

impl<'a> Router<'a> {
    /// The open shard owning `hash_key`.
    pub fn route(&self, hash_key: u128) -> Option<&'a ShardDef> {
        let at = self.open.partition_point(|s| s.hash_range.end < hash_key);
        self.open.get(at).copied().filter(|s| s.hash_range.contains(hash_key))
    }
}

/// Live state of one shard's log, shared by the writer and readers.
#[derive(Debug)]
pub struct ShardLog {
    /// The shard's index into the journal (extended by the appender after each fsync).
    pub index: SharedIndex,
    /// Counter of the last durable record (0 when none). Written only by the appender after
    /// the record's batch is fsync'd, so readers never see an unacknowledged record.
    pub last_counter: AtomicU64,
    /// Arrival time of the last durable record; arrival times never go backwards in a shard.
    pub last_arrival_ms: AtomicU64,
    /// Record bytes appended since this server started (for write-rate estimates).
    pub appended_bytes: AtomicU64,
    /// Woken each time new records become durable (enhanced fan-out pushes on it).
    pub appended: tokio::sync::Notify,
    /// Throughput limits, consulted when the stream's limits are on.
    pub throttle: crate::throttle::ShardThrottle,
}

/// A stream held by this server: its definition plus the live state of its shard logs.
#[derive(Debug)]
pub struct Stream {
    /// Internal id.
    pub id: u64,
    /// Name.
    pub name: String,
    def: RwLock<StreamDef>,
    logs: RwLock<Vec<Arc<ShardLog>>>,
    deleted: AtomicBool,
    journal: Arc<Journal>,
}

impl ShardLog {
    /// The live log of a shard whose last durable record is `(counter, arrival ms)`.
    fn new(index: SharedIndex, (counter, arrival): (u64, u64)) -> Self {
        Self {
            index,
            last_counter: AtomicU64::new(counter),
            last_arrival_ms: AtomicU64::new(arrival),
            appended_bytes: AtomicU64::new(0),
            appended: tokio::sync::Notify::new(),
            throttle: crate::throttle::ShardThrottle::default(),
        }
    }
}

impl Stream {
    /// A stream with each shard's `(last counter, last arrival ms)` as stored in the meta
    /// family; the journal's index raises them to its newest records.
    fn new(def: StreamDef, progress: Vec<(u64, u64)>, journal: Arc<Journal>) -> Self {
        let logs = progress
            .into_iter()
            .enumerate()
            .map(|(shard, stored)| {
                let index = journal.index(ShardKey { stream: def.id, shard: shard as u32 });
                let progress = read_index(&index).last_record().map_or(stored, |newest| newest.max(stored));
                Arc::new(ShardLog::new(index, progress))
            })
            .collect();
        Self {
            id: def.id,
            name: def.name.clone(),
            def: RwLock::new(def),
            logs: RwLock::new(logs),
            deleted: AtomicBool::new(false),
            journal,
        }
    }

    /// The retention class the stream's records are written to.
    pub fn retention_class(&self) -> u8 {
        crate::journal::class_of(self.def().retention_hours)
    }

    /// A consistent view of the definition.
    pub fn def(&self) -> RwLockReadGuard<'_, StreamDef> {
        self.def.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn update_def<T>(&self, f: impl FnOnce(&mut StreamDef) -> T) -> T {
        let mut guard = self.def.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }

    /// The live log of shard `index`.
    pub fn log(&self, index: u32) -> Option<Arc<ShardLog>> {
        let logs = self.logs.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        logs.get(usize::try_from(index).ok()?).cloned()
    }

    /// Gives every shard of the definition a live log (new shards start empty).
    fn grow_logs(&self, len: usize) {
        let mut logs = self.logs.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        while logs.len() < len {
            let key = ShardKey { stream: self.id, shard: logs.len() as u32 };
            logs.push(Arc::new(ShardLog::new(self.journal.index(key), (0, 0))));
        }
    }

    /// True once the appender has deleted the stream's data.
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Marks the stream's data as deleted; appends are refused from now on.
    pub fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
    }
}

/// What CreateStream asks for, already validated by the API layer.
#[derive(Debug, Clone)]
pub struct NewStream {
    /// Name.
    pub name: String,
    /// Number of shards.
    pub shard_count: u32,
    /// Capacity mode.
    pub mode: StreamMode,
    /// Largest record in KiB.
    pub max_record_size_kib: u32,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// Every stream this server holds, persisted in the catalog column family.
///
/// Lock order, everywhere: the catalog write lock (`writes`), then the stream map
/// (`streams`), then one stream's definition or logs. Nothing takes the map while it holds a
/// definition, and nothing holds the map across I/O: a metadata write (and its fsync) holds
/// only the write lock, so readers of the map and of other definitions never wait for a disk.
#[derive(Debug)]
pub struct Catalog {
    engine: Arc<dyn KvEngine>,
    journal: Arc<Journal>,
    account: String,
    region: String,
    shard_limit: u32,
    streams: RwLock<BTreeMap<String, Arc<Stream>>>,
    /// Serialises every write of a catalog row: create, install, update, and the appender's
    /// deletions.
    writes: Arc<Mutex<()>>,
    next_id: AtomicU64,
}

impl Catalog {
    /// Loads the catalog from the store, and each shard's progress from the store and the
    /// journal (the journal's indexes of streams no longer in the catalog are dropped).
    pub fn load(
        engine: Arc<dyn KvEngine>,
        journal: Arc<Journal>,
        account: String,
        region: String,
        shard_limit: u32,
    ) -> Result<Self> {
        let mut defs = Vec::new();
        let (start, end) = keys::stream_range();
        let mut failure = None;
        engine.scan(Cf::Catalog, &start, &end, &mut |key, value| match serde_json::from_slice::<StreamDef>(value) {
            Ok(def) => {
                defs.push(def);
                true
            }
            Err(err) => {
                failure = Some(crate::store::Error::Corrupt { key: hex(key), reason: err.to_string() });
                false
            }
        })?;
        if let Some(err) = failure {
            return Err(err.into());
        }
        let next_id = match engine.get(Cf::Meta, &keys::meta(keys::NEXT_STREAM_ID))? {
            Some(raw) => decode_u64(&raw, keys::NEXT_STREAM_ID)?,
            None => 1,
        };
        let mut streams = BTreeMap::new();
        for def in defs {
            let mut counters = Vec::with_capacity(def.shards.len());
            for shard in &def.shards {
                let progress = match engine.get(Cf::Meta, &keys::counter(def.id, shard.index))? {
                    Some(raw) => ShardProgress::decode(&raw)?,
                    None => (0, 0),
                };
                counters.push(progress);
            }
            streams.insert(def.name.clone(), Arc::new(Stream::new(def, counters, journal.clone())));
        }
        let live: BTreeSet<u64> = streams.values().map(|s| s.id).collect();
        journal.retain_streams(&|id| live.contains(&id));
        Ok(Self {
            engine,
            journal,
            account,
            region,
            shard_limit,
            streams: RwLock::new(streams),
            writes: Arc::default(),
            next_id: AtomicU64::new(next_id),
        })
    }

    /// The account id used in messages.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The account-wide shard limit.
    pub fn shard_limit(&self) -> u32 {
        self.shard_limit
    }

    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, Arc<Stream>>> {
        self.streams.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The catalog write lock, shared with the appender (which holds it while deleting).
    pub fn write_lock(&self) -> Arc<Mutex<()>> {
        self.writes.clone()
    }

    fn lock_writes(&self) -> MutexGuard<'_, ()> {
        self.writes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Inserts a stream whose row is durable (under the write lock, so no other insert raced).
    fn insert(&self, stream: Arc<Stream>) {
        let mut streams = self.streams.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        streams.insert(stream.name.clone(), stream);
    }

    /// The stream called `name`, in any status.
    pub fn get(&self, name: &str) -> Result<Arc<Stream>> {
        self.read().get(name).cloned().ok_or_else(|| self.not_found(name))
    }

    /// The error for a missing stream.
    pub fn not_found(&self, name: &str) -> Error {
        Error::StreamNotFound { name: name.to_owned(), account: self.account.clone() }
    }

    /// Every stream, in name order.
    pub fn list(&self) -> Vec<Arc<Stream>> {
        self.read().values().cloned().collect()
    }

    /// Open shards across all streams (what the shard limit counts).
    pub fn open_shard_count(&self) -> u64 {
        self.read().values().map(|s| s.def().open_shards().count() as u64).sum()
    }

    /// Creates a stream in CREATING status.
    pub fn create(&self, request: NewStream, now_ms: u64) -> Result<Arc<Stream>> {
        let _writes = self.lock_writes();
        let (creating, current) = {
            let streams = self.read();
            if streams.contains_key(&request.name) {
                return Err(Error::StreamExists { name: request.name, account: self.account.clone() });
            }
            let creating = streams.values().filter(|s| s.def().status == StreamStatus::Creating).count();
            let current: u64 = streams.values().map(|s| s.def().open_shards().count() as u64).sum();
            (creating, current)
        };
        if creating >= MAX_CREATING_STREAMS {
            return Err(Error::LimitExceeded(format!(
                "This request would exceed the limit of {MAX_CREATING_STREAMS} streams in CREATING state for account {}.",
                self.account
            )));
        }
        if current + u64::from(request.shard_count) > u64::from(self.shard_limit) {
            return Err(Error::shard_limit(
                &self.account,
                &self.region,
                current,
                self.shard_limit,
                u64::from(request.shard_count),
            ));
        }
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let shards = ShardDef::roots(request.shard_count, now_ms);
        let counters = vec![(0, 0); shards.len()];
        let def = StreamDef {
            id,
            name: request.name.clone(),
            status: StreamStatus::Creating,
            mode: request.mode,
            retention_hours: DEFAULT_RETENTION_HOURS,
            created_at_ms: now_ms,
            max_record_size_kib: request.max_record_size_kib,
            shards,
            tags: request.tags,
            scalings_ms: Vec::new(),
            shard_level_metrics: BTreeSet::new(),
            throughput_limits: None,
            consumers: Vec::new(),
            placement: None,
        };
        let mut batch = WriteBatch::new();
        batch.put(Cf::Catalog, keys::stream(&def.name), encode_def(&def)?);
        batch.put(Cf::Meta, keys::meta(keys::NEXT_STREAM_ID), (id + 1).to_be_bytes().to_vec());
        self.engine.write(batch, Durability::Sync)?;
        let stream = Arc::new(Stream::new(def, counters, self.journal.clone()));
        self.insert(stream.clone());
        Ok(stream)
    }

    /// Adds a stream defined elsewhere (cluster mode: the operator's layout), giving it this
    /// server's next internal id. Persisted before it becomes visible.
    pub fn install(&self, mut def: StreamDef) -> Result<Arc<Stream>> {
        let _writes = self.lock_writes();
        if self.read().contains_key(&def.name) {
            return Err(Error::StreamExists { name: def.name, account: self.account.clone() });
        }
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        def.id = id;
        let mut batch = WriteBatch::new();
        batch.put(Cf::Catalog, keys::stream(&def.name), encode_def(&def)?);
        batch.put(Cf::Meta, keys::meta(keys::NEXT_STREAM_ID), (id + 1).to_be_bytes().to_vec());
        self.engine.write(batch, Durability::Sync)?;
        let counters = vec![(0, 0); def.shards.len()];
        let stream = Arc::new(Stream::new(def, counters, self.journal.clone()));
        self.insert(stream.clone());
        Ok(stream)
    }

    /// Changes a stream's definition and persists it before the change becomes visible.
    pub fn update(&self, stream: &Stream, change: impl FnOnce(&mut StreamDef) -> Result<()>) -> Result<()> {
        // Two changes never interleave, and none rewrites the row of a stream the appender is
        // deleting (it holds this lock while it deletes). The map stays readable throughout.
        let _writes = self.lock_writes();
        if stream.is_deleted() {
            return Err(Error::StreamNotFound { name: stream.name.clone(), account: self.account.clone() });
        }
        let mut next = stream.def().clone();
        change(&mut next)?;
        let mut batch = WriteBatch::new();
        batch.put(Cf::Catalog, keys::stream(&next.name), encode_def(&next)?);
        self.engine.write(batch, Durability::Sync)?;
        // Logs first, so a reader that sees a new shard in the definition finds its log.
        stream.grow_logs(next.shards.len());
        stream.update_def(|def| *def = next);
        Ok(())
    }

    /// The mutations that erase `stream`'s definition and counters; the appender applies
    /// them. Its records go with their journal segments (see [`Journal::expire`]).
    pub fn deletion_batch(stream: &Stream) -> WriteBatch {
        let mut batch = WriteBatch::new();
        for prefix in [keys::COUNTER_PREFIX, keys::RAFT_PREFIX] {
            let (start, end) = keys::stream_data_range(prefix, stream.id);
            batch.delete_range(Cf::Meta, start, end);
        }
        batch.delete(Cf::Catalog, keys::stream(&stream.name));
        batch
    }

    /// The journal under the catalog's streams.
    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    /// Forgets a stream whose data the appender has deleted.
    pub fn forget(&self, stream: &Stream) {
        let mut streams = self.streams.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if streams.get(&stream.name).is_some_and(|s| s.id == stream.id) {
            streams.remove(&stream.name);
        }
    }
}

fn encode_def(def: &StreamDef) -> Result<Vec<u8>> {
    serde_json::to_vec(def).map_err(|err| {
        crate::store::Error::Corrupt { key: hex(&keys::stream(&def.name)), reason: err.to_string() }.into()
    })
}

/// What the meta family keeps per shard: the last record's counter and arrival time as of
/// the last time journal segments holding the shard were deleted, so that counters and arrival
/// times never go backwards even when retention has deleted every record of a shard.
pub struct ShardProgress;

impl ShardProgress {
    /// The stored value for `counter` and `arrival_ms`.
    pub fn encode(counter: u64, arrival_ms: u64) -> Vec<u8> {
        let mut value = counter.to_be_bytes().to_vec();
        value.extend_from_slice(&arrival_ms.to_be_bytes());
        value
    }

    /// `(counter, arrival)`.
    fn decode(raw: &[u8]) -> Result<(u64, u64)> {
        match raw.len() {
            16 => Ok((decode_u64(&raw[..8], "sequence counter")?, decode_u64(&raw[8..], "arrival time")?)),
            n => Err(crate::store::Error::Corrupt {
                key: "shard progress".into(),
                reason: format!("{n} bytes, expected 16"),
            }
            .into()),
        }
    }
}

fn decode_u64(raw: &[u8], what: &str) -> Result<u64> {
    let bytes: [u8; 8] = raw.try_into().map_err(|_| crate::store::Error::Corrupt {
        key: what.to_owned(),
        reason: format!("{} bytes, expected 8", raw.len()),
    })?;
    Ok(u64::from_be_bytes(bytes))
}

/// Hex rendering of a key for error messages.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryEngine;

    fn new_stream(name: &str, shards: u32) -> NewStream {
        NewStream {
            name: name.into(),
            shard_count: shards,
            mode: StreamMode::Provisioned,
            max_record_size_kib: DEFAULT_MAX_RECORD_SIZE_KIB,
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn shard_ids_round_trip() {
        assert_eq!(shard_id(7), "shardId-000000000007");
        assert_eq!(parse_shard_id("shardId-000000000007"), Some(7));
        assert_eq!(parse_shard_id("7"), Some(7));
        assert_eq!(parse_shard_id("shardId-"), None);
        assert_eq!(parse_shard_id("shardId-x"), None);
        assert_eq!(parse_shard_id("shardId-0000000000001"), Some(1));
        assert_eq!(parse_shard_id("shard-2"), Some(2));
        assert_eq!(parse_shard_id("a-b-3"), Some(3));
        assert_eq!(parse_shard_id("shardId-2147483648"), None);
        assert_eq!(parse_shard_id("shardId-2147483647"), Some(2_147_483_647));
    }

    #[test]
    fn create_persists_and_reloads() {
        let engine: Arc<dyn KvEngine> = Arc::new(MemoryEngine::new());
        let journal = Journal::in_memory();
        let catalog = Catalog::load(engine.clone(), journal.clone(), "123456789012".into(), "us-east-1".into(), 10)
            .expect("load");
        let stream = catalog.create(new_stream("a", 3), 1000).expect("create");
        assert_eq!(stream.def().status, StreamStatus::Creating);
        let again = catalog.create(new_stream("a", 1), 1000);
        assert!(matches!(again, Err(Error::StreamExists { .. })));
        let reloaded = Catalog::load(engine, journal, "123456789012".into(), "us-east-1".into(), 10).expect("reload");
        let def = reloaded.get("a").expect("get").def().clone();
        assert_eq!(def.shards.len(), 3);
        assert_eq!(def.id, stream.id);
        let next = reloaded.create(new_stream("b", 1), 2000).expect("create b");
        assert!(next.id > stream.id, "ids are never reused across restarts");
    }

    #[test]
    fn the_router_agrees_with_route() {
        let catalog = Catalog::load(
            Arc::new(MemoryEngine::new()),
            Journal::in_memory(),
            "123456789012".into(),
            "us-east-1".into(),
            10,
        )
        .expect("load");
        let stream = catalog.create(new_stream("r", 7), 0).expect("create");
        let def = stream.def();
        let router = def.router();
        let mut keys = vec![0, 1, u128::MAX, u128::MAX - 1];
        for shard in &def.shards {
            keys.extend([shard.hash_range.start, shard.hash_range.end, shard.hash_range.start.wrapping_sub(1)]);
        }
        keys.extend((0..1000u128).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)));
        for key in keys {
            assert_eq!(router.route(key).map(|s| s.index), def.route(key).map(|s| s.index), "hash key {key}");
        }
    }

    #[test]
    fn shard_limit_counts_open_shards() {
        let engine: Arc<dyn KvEngine> = Arc::new(MemoryEngine::new());
        let catalog =
            Catalog::load(engine, Journal::in_memory(), "123456789012".into(), "us-east-1".into(), 5).expect("load");
        catalog.create(new_stream("a", 3), 0).expect("create");
        let err = catalog.create(new_stream("b", 3), 0);
        assert!(
            matches!(err, Err(Error::LimitExceeded(ref m)) if m.contains("Current shard count for the account: 3. Limit: 5."))
        );
        catalog.create(new_stream("b", 2), 0).expect("exactly at the limit");
    }
}
