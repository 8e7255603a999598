//! One shard-server's data plane: the store, the stream catalog, the appender and the iterator
//! codec, plus the background work (stream lifecycle, retention) that belongs to them. The
//! Kinesis and gRPC fronts call these operations; none of them sees bytes on the wire.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::append::Appender;
use crate::clock::Clock;
use crate::config::Config;
use crate::consumer::Subscriptions;
use crate::error::{Error, Result};
use crate::iterator::IteratorCodec;
#[cfg(feature = "rocksdb")]
use crate::journal::files::DiskFiles;
use crate::journal::Journal;
#[cfg(feature = "rocksdb")]
use crate::journal::JournalOptions;
use crate::lease::LeaseTable;
use crate::metrics::Metrics;
use crate::peers::Peers;
use crate::reshard::{self, Change};
use crate::sequence::{Position, SequenceNumber};
use crate::shard::StoredRecord;
use crate::store::{keys, Cf, Durability, KvEngine, WriteBatch};
use crate::stream::{Catalog, NewStream, ShardDef, Stream, StreamDef, StreamStatus};
use crate::{retention, stream};

mod cluster;
mod consumers;
mod leases;
mod records;
mod replicated;
mod settings;

pub use cluster::next_hop;
pub use consumers::{ConsumerView, SubscriptionEvent, HEARTBEAT};
pub use replicated::{replicas_of, Replication};
pub use settings::{AccountLimits, MonitoringChange};

/// How long a stopping server waits for the groups it leads to elect the replicas it handed
/// their leadership to.
const HAND_OVER_WITHIN: Duration = Duration::from_secs(2);

/// Most payload bytes one GetRecords call returns (10 MiB, as Kinesis).
pub const MAX_GET_RECORDS_BYTES: usize = 10 << 20;

/// A record to put, validated by the caller.
#[derive(Debug, Clone)]
pub struct PutEntry {
    /// Partition key.
    pub partition_key: String,
    /// Explicit hash key overriding the partition key's MD5.
    pub explicit_hash_key: Option<u128>,
    /// Payload.
    pub data: Vec<u8>,
}

/// Where a request came from: a client, or another shard-server of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// A client: requests for shards held elsewhere are sent on.
    Client,
    /// Another server: served here or refused, never sent on again.
    Forwarded,
}

/// Where a put record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResult {
    /// Shard id.
    pub shard_id: String,
    /// Sequence number.
    pub sequence_number: SequenceNumber,
}

/// Where an iterator starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartingPosition {
    /// The oldest record still retained.
    TrimHorizon,
    /// Just after the most recent record.
    Latest,
    /// At a sequence number.
    AtSequenceNumber(Position),
    /// Just after a sequence number.
    AfterSequenceNumber(Position),
    /// At the first record that arrived at or after a time (ms since the epoch).
    AtTimestamp(u64),
}

/// What GetRecords returns.
#[derive(Debug, Clone)]
pub struct RecordsPage {
    /// Records with their sequence numbers.
    pub records: Vec<(SequenceNumber, StoredRecord)>,
    /// Iterator to continue with.
    pub next_iterator: Option<String>,
    /// How far the last position is behind the tip of the shard.
    pub millis_behind_latest: u64,
    /// The shard's children, once the iterator has read a closed shard to its end (then there
    /// is no next iterator).
    pub child_shards: Vec<ShardDef>,
    /// Where a stateless reader continues: after this sequence number (the last record read,
    /// or the position before the iterator's when nothing was read).
    pub continuation: SequenceNumber,
}

/// Why opening a data directory failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data directory cannot be created or made private.
    #[error(transparent)]
    DataDir(#[from] crate::data_dir::DataDirError),
    /// The writer thread could not start.
    #[error("cannot start the append thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The store or catalog failed to load.
    #[error(transparent)]
    Load(#[from] Error),
}

/// The data plane of one process.
#[derive(Debug)]
pub struct Node {
    config: Config,
    engine: Arc<dyn KvEngine>,
    catalog: Catalog,
    appender: Appender,
    iterators: IteratorCodec,
    clock: Arc<dyn Clock>,
    subscriptions: Arc<Subscriptions>,
    /// Bytes of subscription events read and not yet taken by their clients.
    subscription_buffer: Arc<tokio::sync::Semaphore>,
    leases: LeaseTable,
    metrics: Arc<Metrics>,
    peers: Peers,
    /// Replicated shards' store loop (cluster servers only).
    replication: Option<Replication>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Node {
    #[cfg(feature = "rocksdb")]
    /// Opens the RocksDB store in `config.data_dir` (created, and made private to this user:
    /// see [`crate::data_dir`]) and starts the background work.
    pub fn open(config: Config) -> Result<Arc<Self>, OpenError> {
        crate::data_dir::prepare(&config.data_dir)?;
        let layout = crate::data_dir::check_format(&config.data_dir)?;
        let engine = crate::store::RocksEngine::open(&layout.meta).map_err(Error::from)?;
        let started = std::time::Instant::now();
        let journal =
            Journal::open(Arc::new(DiskFiles), &layout.log, JournalOptions::default()).map_err(Error::from)?;
        tracing::info!(
            segments = journal.segment_count(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "journal opened"
        );
        Self::open_with(config, Arc::new(engine), Arc::new(journal), Arc::new(crate::clock::SystemClock))
    }

    /// Opens the data plane over any engine, journal and clock (tests use the memory engine,
    /// an in-memory journal and a manual clock). Must be called inside a Tokio runtime.
    pub fn open_with(
        config: Config,
        engine: Arc<dyn KvEngine>,
        journal: Arc<Journal>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, OpenError> {
        let catalog = Catalog::load(
            engine.clone(),
            journal.clone(),
            config.account_id.clone(),
            config.region.clone(),
            config.shard_limit,
        )?;
        // The servers of a cluster share one iterator key, so an iterator a shard's leader made
        // still opens after leadership moves to another server.
        let secret = match &config.peer_bearer {
            Some(bearer) if config.cluster_id.is_some() => bearer.derive_key("shardline shard iterators"),
            _ => load_or_create_secret(engine.as_ref())?,
        };
        let iterators = IteratorCodec::new(secret, u64::try_from(config.iterator_ttl.as_millis()).unwrap_or(u64::MAX));
        let metrics = Arc::new(Metrics::new());
        let replication = match (&config.cluster_id, &config.peer_bearer) {
            (Some(me), Some(bearer)) => Some(
                Replication::start(me, journal.clone(), engine.clone(), clock.clone(), bearer)
                    .map_err(OpenError::Thread)?,
            ),
            _ => None,
        };
        let appender = Appender::start(
            engine.clone(),
            journal.clone(),
            clock.clone(),
            config.account_id.clone(),
            metrics.clone(),
            catalog.write_lock(),
        )
        .map_err(OpenError::Thread)?;
        let leases = LeaseTable::new(engine.clone());
        let subscriptions = Arc::new(Subscriptions::new(config.max_subscriptions));
        // Room for at least one event of the largest size.
        let buffer_bytes =
            config.subscription_buffer_bytes.clamp(MAX_GET_RECORDS_BYTES, tokio::sync::Semaphore::MAX_PERMITS);
        let subscription_buffer = Arc::new(tokio::sync::Semaphore::new(buffer_bytes));
        let peers = Peers::new(config.peer_timeout);
        let node = Arc::new(Self {
            config,
            engine,
            catalog,
            appender,
            iterators,
            clock,
            subscriptions,
            subscription_buffer,
            leases,
            metrics,
            peers,
            replication,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        node.publish_committed_at_open(&journal)?;
        node.resume_replication();
        node.resume_lifecycle();
        node.spawn_retention();
        Ok(node)
    }

    /// Settings in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The stream catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The codec sealing this server's opaque tokens (shard iterators, NextTokens).
    pub fn iterators(&self) -> &IteratorCodec {
        &self.iterators
    }

    /// The appender (for its statistics).
    pub fn appender(&self) -> &Appender {
        &self.appender
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The storage engine.
    pub fn engine(&self) -> &dyn KvEngine {
        self.engine.as_ref()
    }

    /// Current time in ms.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The ARN of stream `name`.
    pub fn stream_arn(&self, name: &str) -> String {
        format!("arn:aws:kinesis:{}:{}:stream/{name}", self.config.region, self.config.account_id)
    }

    /// Ends subscriptions and background work (lifecycle, retention) without closing the write
    /// path: requests in flight still complete.
    pub fn stop_background(&self) {
        self.shutdown.cancel();
    }

    /// Before a planned stop: hands the leadership of the replicated shards this server leads
    /// to other replicas (at most 2 s), so writes move on without an election timeout.
    pub async fn hand_over_leadership(&self) {
        let Some(replicator) = self.replicator() else { return };
        match replicator.hand_over(HAND_OVER_WITHIN).await {
            Ok(0) => tracing::info!("leadership handed over"),
            Ok(led) => tracing::warn!(led, "some groups still led here at shutdown"),
            Err(err) => tracing::warn!(cause = %err, "leadership not handed over"),
        }
    }

    /// Stops background work and the appender after it has written what is queued.
    pub async fn close(&self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        if let Some(replicator) = self.replicator() {
            replicator.shutdown().await;
        }
        self.appender.shutdown().await;
    }

    /// Creates a stream; it turns ACTIVE after the configured transition time.
    pub fn create_stream(self: &Arc<Self>, request: NewStream) -> Result<()> {
        self.standalone_only(&request.name, "create it")?;
        let stream = self.catalog.create(request, self.now_ms())?;
        self.schedule_activation(stream);
        Ok(())
    }

    /// Starts deleting a stream: DELETING now, data and definition gone shortly after.
    /// Registered consumers block the deletion unless `enforce_consumer_deletion` is set.
    pub fn delete_stream(self: &Arc<Self>, name: &str, enforce_consumer_deletion: bool) -> Result<()> {
        self.standalone_only(name, "delete it")?;
        let stream = self.catalog.get(name)?;
        let account = self.config.account_id.clone();
        self.catalog.update(&stream, |def| match def.status {
            _ if !enforce_consumer_deletion && !def.consumers.is_empty() && def.status != StreamStatus::Deleting => {
                Err(Error::ResourceInUse(format!(
                    "Stream {} under account {account} has {} registered consumers. Deregister them or set EnforceConsumerDeletion.",
                    def.name,
                    def.consumers.len()
                )))
            }
            // Kinesis deletes a stream in any state, a CREATING one too (its activation then
            // finds it DELETING and leaves it so).
            StreamStatus::Creating | StreamStatus::Active | StreamStatus::Updating => {
                def.status = StreamStatus::Deleting;
                Ok(())
            }
            StreamStatus::Deleting => Ok(()),
        })?;
        self.schedule_deletion(stream);
        Ok(())
    }

    /// The ResourceInUse error for a stream that is not ACTIVE.
    pub(crate) fn not_active(&self, def: &StreamDef) -> Error {
        Error::StreamNotActive {
            name: def.name.clone(),
            account: self.config.account_id.clone(),
            status: def.status.as_str(),
        }
    }

    /// A stream that can be reconfigured (ACTIVE), else `ResourceInUse`.
    pub fn active_stream(&self, name: &str) -> Result<Arc<Stream>> {
        let stream = self.catalog.get(name)?;
        let def = stream.def();
        if def.status != StreamStatus::Active {
            return Err(self.not_active(&def));
        }
        drop(def);
        Ok(stream)
    }

    /// Changes the retention period, increasing (`increase`) or decreasing it as Kinesis does.
    pub fn set_retention(&self, name: &str, hours: u32, increase: bool) -> Result<()> {
        let stream = self.active_stream(name)?;
        self.standalone_only(name, "change its retention (spec.retentionHours)")?;
        if hours < stream::MIN_RETENTION_HOURS {
            return Err(Error::InvalidArgument(format!(
                "Minimum allowed retention period is {} hours. Requested retention period ({hours} hours) is too short.",
                stream::MIN_RETENTION_HOURS
            )));
        }
        if hours > stream::MAX_RETENTION_HOURS {
            return Err(Error::InvalidArgument(format!(
                "Maximum allowed retention period is {} hours. Requested retention period ({hours} hours) is too long.",
                stream::MAX_RETENTION_HOURS
            )));
        }
        self.catalog.update(&stream, |def| {
            if increase && hours < def.retention_hours {
                return Err(Error::InvalidArgument(format!(
                    "Requested retention period ({hours} hours) for stream {} can not be shorter than existing retention period ({} hours). Use DecreaseRetentionPeriod API.",
                    def.name, def.retention_hours
                )));
            }
            if !increase && hours > def.retention_hours {
                return Err(Error::InvalidArgument(format!(
                    "Requested retention period ({hours} hours) for stream {} can not be longer than existing retention period ({} hours). Use IncreaseRetentionPeriod API.",
                    def.name, def.retention_hours
                )));
            }
            def.retention_hours = hours;
            Ok(())
        })
    }

    /// Splits, merges or rescales a stream's shards (SplitShard, MergeShards, UpdateShardCount).
    /// The new shard map takes effect at once, in order with appends: every record acknowledged
    /// before it is in a parent, every one after it in a child. The stream is UPDATING until
    /// the transition delay has passed.
    pub async fn reshard(self: &Arc<Self>, name: &str, change: Change) -> Result<()> {
        self.standalone_only(name, "change its shards (spec.shards)")?;
        let stream = self.active_stream(name)?;
        // Counted before the definition is read: the catalog's map is never taken while a
        // definition guard is held (see `Catalog`'s lock order).
        let current = self.catalog.open_shard_count();
        {
            let def = stream.def();
            if matches!(change, Change::Scale { .. }) && def.mode == stream::StreamMode::OnDemand {
                return Err(Error::InvalidArgument(format!(
                    "UpdateShardCount is not supported for stream {} under account {} because it is in ON_DEMAND mode.",
                    def.name, self.config.account_id
                )));
            }
            reshard::validate(&def, change, &self.config.account_id, self.now_ms())?;
            let delta = change.open_shard_delta(&def);
            if delta > 0 && current.saturating_add(delta.unsigned_abs()) > u64::from(self.config.shard_limit) {
                return Err(Error::shard_limit(
                    &self.config.account_id,
                    &self.config.region,
                    current,
                    self.config.shard_limit,
                    delta.unsigned_abs(),
                ));
            }
        }
        let node = self.clone();
        let target = stream.clone();
        self.appender
            .barrier(move || {
                let now = node.now_ms();
                node.catalog.update(&target, |def| {
                    if def.status != StreamStatus::Active {
                        return Err(node.not_active(def));
                    }
                    reshard::validate(def, change, &node.config.account_id, now)?;
                    let ending =
                        |index: u32| target.log(index).map_or(0, |log| log.last_counter.load(Ordering::Acquire));
                    reshard::apply(def, change, &ending, now);
                    def.status = StreamStatus::Updating;
                    Ok(())
                })
            })
            .await?;
        tracing::info!(stream = %stream.name, ?change, "reshard applied");
        self.schedule_update_done(stream);
        Ok(())
    }

    /// Runs one retention pass now.
    pub fn enforce_retention(&self) -> Result<retention::Pass> {
        retention::enforce(self.engine.as_ref(), &self.catalog, self.now_ms())
    }

    fn resume_lifecycle(self: &Arc<Self>) {
        for stream in self.catalog.list() {
            let pending: Vec<String> = stream
                .def()
                .consumers
                .iter()
                .filter(|c| c.status != crate::consumer::ConsumerStatus::Active)
                .map(|c| c.name.clone())
                .collect();
            for name in pending {
                self.schedule_consumer_transition(stream.clone(), name);
            }
            let status = stream.def().status;
            match status {
                StreamStatus::Creating => self.schedule_activation(stream),
                StreamStatus::Deleting => self.schedule_deletion(stream),
                StreamStatus::Updating => self.schedule_update_done(stream),
                StreamStatus::Active => {}
            }
        }
    }

    /// Runs `work` after the stream transition delay, unless the node shuts down first.
    pub(crate) fn after_transition<F>(self: &Arc<Self>, work: impl FnOnce(Arc<Self>) -> F + Send + 'static)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let node = self.clone();
        let delay = self.config.stream_transition;
        self.tasks.spawn(async move {
            tokio::select! {
                _ = node.shutdown.cancelled() => {}
                _ = tokio::time::sleep(delay) => work(node).await,
            }
        });
    }

    fn schedule_activation(self: &Arc<Self>, stream: Arc<Stream>) {
        self.after_transition(move |node| async move {
            let activated = node.catalog.update(&stream, |def| {
                if def.status == StreamStatus::Creating {
                    def.status = StreamStatus::Active;
                }
                Ok(())
            });
            match activated {
                Ok(()) => tracing::info!(stream = %stream.name, "stream active"),
                Err(err) => tracing::error!(stream = %stream.name, cause = %err, "stream activation failed"),
            }
        });
    }

    /// Returns an UPDATING stream to ACTIVE after the transition delay.
    pub(crate) fn schedule_update_done(self: &Arc<Self>, stream: Arc<Stream>) {
        self.after_transition(move |node| async move {
            let done = node.catalog.update(&stream, |def| {
                if def.status == StreamStatus::Updating {
                    def.status = StreamStatus::Active;
                }
                Ok(())
            });
            if let Err(err) = done {
                tracing::error!(stream = %stream.name, cause = %err, "stream update did not finish");
            }
        });
    }

    /// Deletes a stream's records, counters, catalog row and every application's leases on
    /// it in one batch, then forgets it.
    async fn erase(&self, stream: &Arc<Stream>) -> Result<()> {
        let leases = self.leases.stream_deletion(&stream.name)?;
        self.appender.delete_stream(stream.clone(), leases).await?;
        self.forget(stream);
        Ok(())
    }

    /// Forgets a stream whose data the appender has deleted: from the catalog's map and from
    /// the metrics.
    fn forget(&self, stream: &Stream) {
        self.catalog.forget(stream);
        let shards: Vec<String> = stream.def().shards.iter().map(|s| stream::shard_id(s.index)).collect();
        self.metrics.forget_stream(&stream.name, shards);
    }

    /// Whether a stream of this name exists here: only existing streams get metric series
    /// (a name anyone can send must not create them).
    pub fn has_stream(&self, name: &str) -> bool {
        self.catalog.get(name).is_ok()
    }

    fn schedule_deletion(self: &Arc<Self>, stream: Arc<Stream>) {
        self.after_transition(move |node| async move {
            match node.erase(&stream).await {
                Ok(()) => {
                    tracing::info!(stream = %stream.name, "stream deleted");
                }
                Err(err) => {
                    tracing::error!(stream = %stream.name, cause = %err, "stream deletion failed; retried at restart")
                }
            }
        });
    }

    fn spawn_retention(self: &Arc<Self>) {
        let node = self.clone();
        let interval = self.config.retention_check_interval.max(Duration::from_millis(10));
        self.tasks.spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = node.shutdown.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                let pass_node = node.clone();
                match tokio::task::spawn_blocking(move || pass_node.enforce_retention()).await {
                    Ok(Ok(pass)) if pass.segments_deleted > 0 => {
                        tracing::info!(segments = pass.segments_deleted, "retention pass")
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(err)) => tracing::error!(cause = %err, "retention pass failed"),
                    Err(err) => tracing::error!(cause = %err, "retention pass panicked"),
                }
            }
        });
    }
}

fn load_or_create_secret(engine: &dyn KvEngine) -> Result<[u8; 32]> {
    let key = keys::meta(keys::ITERATOR_SECRET);
    if let Some(raw) = engine.get(Cf::Meta, &key)? {
        if let Ok(secret) = <[u8; 32]>::try_from(raw.as_slice()) {
            return Ok(secret);
        }
    }
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let mut batch = WriteBatch::new();
    batch.put(Cf::Meta, key, secret.to_vec());
    engine.write(batch, Durability::Sync)?;
    Ok(secret)
}

#[cfg(all(test, feature = "rocksdb"))]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::clock::ManualClock;
    use crate::stream::{StreamMode, DEFAULT_MAX_RECORD_SIZE_KIB};

    const T0: u64 = 1_700_000_000_000;

    struct Fixture {
        node: Arc<Node>,
        clock: Arc<ManualClock>,
        _dir: tempfile::TempDir,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(ManualClock::new(T0));
        let mut config = Config::new(dir.path());
        config.stream_transition = Duration::ZERO;
        config.retention_check_interval = Duration::from_secs(3600);
        let engine = Arc::new(crate::store::RocksEngine::open(&dir.path().join("meta")).expect("open"));
        let node = Node::open_with(config, engine, small_segments(dir.path()), clock.clone()).expect("node");
        Fixture { node, clock, _dir: dir }
    }

    /// A journal on disk whose every group write begins a new segment, so that retention has
    /// files to delete.
    fn small_segments(dir: &std::path::Path) -> Arc<Journal> {
        let options = JournalOptions { segment_bytes: 1 };
        Arc::new(Journal::open(Arc::new(DiskFiles), &dir.join("log"), options).expect("journal"))
    }

    async fn active_stream(node: &Arc<Node>, name: &str, shards: u32) {
        node.create_stream(NewStream {
            name: name.into(),
            shard_count: shards,
            mode: StreamMode::Provisioned,
            max_record_size_kib: DEFAULT_MAX_RECORD_SIZE_KIB,
            tags: BTreeMap::new(),
        })
        .expect("create");
        for _ in 0..200 {
            if node.catalog().get(name).expect("stream").def().status == StreamStatus::Active {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("stream {name} never became active");
    }

    fn entry(key: &str, data: &str) -> PutEntry {
        PutEntry { partition_key: key.into(), explicit_hash_key: None, data: data.as_bytes().to_vec() }
    }

    fn read_all(node: &Node, stream: &str, shard: &str) -> Vec<String> {
        let token = node.shard_iterator(stream, shard, StartingPosition::TrimHorizon).expect("iterator");
        let page = node.get_records(&token, 10_000).expect("records");
        page.records.into_iter().map(|(_, r)| String::from_utf8(r.data).unwrap_or_default()).collect()
    }

    #[tokio::test]
    async fn expired_records_are_unreadable_then_deleted_from_disk() {
        let f = fixture().await;
        active_stream(&f.node, "s", 1).await;
        f.node.put("s", vec![entry("k", "old-1"), entry("k", "old-2")]).await.expect("put");
        f.clock.advance_ms(23 * 3_600_000);
        f.node.put("s", vec![entry("k", "new")]).await.expect("put");
        assert_eq!(read_all(&f.node, "s", "shardId-000000000000"), vec!["old-1", "old-2", "new"]);

        // 24 h after the first put, the old records are gone from reads at once.
        f.clock.advance_ms(3_600_000 + 1);
        assert_eq!(read_all(&f.node, "s", "shardId-000000000000"), vec!["new"]);

        // The retention pass deletes the segment that held them.
        let journal = f.node.catalog().journal().clone();
        assert_eq!(journal.segment_count(), 2);
        let pass = f.node.enforce_retention().expect("retention");
        assert_eq!(pass.segments_deleted, 1);
        assert_eq!(journal.segment_count(), 1);
        assert_eq!(read_all(&f.node, "s", "shardId-000000000000"), vec!["new"]);
        // A second pass has nothing left to do.
        assert_eq!(f.node.enforce_retention().expect("retention").segments_deleted, 0);

        // Once every record has gone, sequence numbers still go on from where they were.
        f.clock.advance_ms(24 * 3_600_000);
        assert_eq!(f.node.enforce_retention().expect("retention").segments_deleted, 1);
        assert!(read_all(&f.node, "s", "shardId-000000000000").is_empty());
        f.node.close().await;
        let mut config = Config::new(f._dir.path());
        config.stream_transition = Duration::ZERO;
        config.retention_check_interval = Duration::from_secs(3600);
        let node = Node::open_with(config, f.node.engine.clone(), small_segments(f._dir.path()), f.clock.clone())
            .expect("reopen");
        let results = node.put("s", vec![entry("k", "later")]).await.expect("put");
        let result = results.into_iter().next().expect("one").expect("stored");
        assert_eq!(result.sequence_number.counter, 4, "the counter kept through the deletions");
        node.close().await;
    }

    /// A clock that steps back across a restart does not make arrival times go backwards:
    /// records kept within retention are never range-deleted with expired ones.
    #[tokio::test]
    async fn arrival_times_stay_monotonic_across_a_restart_with_a_clock_step_back() {
        let f = fixture().await;
        active_stream(&f.node, "s", 1).await;
        f.clock.advance_ms(10 * 3_600_000);
        f.node.put("s", vec![entry("k", "before")]).await.expect("put");
        f.node.close().await;
        // The server restarts on the same store with its clock 10 h behind.
        f.clock.set_ms(T0);
        let mut config = Config::new(f._dir.path());
        config.stream_transition = Duration::ZERO;
        config.retention_check_interval = Duration::from_secs(3600);
        let journal = small_segments(f._dir.path());
        let node = Node::open_with(config, f.node.engine.clone(), journal, f.clock.clone()).expect("reopen");
        node.put("s", vec![entry("k", "after")]).await.expect("put");
        // 25 h after the step: "before" (and "after", stamped no earlier) are 15 h old.
        f.clock.set_ms(T0 + 25 * 3_600_000);
        node.enforce_retention().expect("retention");
        assert_eq!(read_all(&node, "s", "shardId-000000000000"), vec!["before", "after"]);
        node.close().await;
    }

    #[tokio::test]
    async fn decreasing_retention_hides_older_records() {
        let f = fixture().await;
        active_stream(&f.node, "s", 1).await;
        f.node.set_retention("s", 72, true).expect("increase");
        f.node.put("s", vec![entry("k", "two-days-old")]).await.expect("put");
        f.clock.advance_ms(48 * 3_600_000);
        f.node.put("s", vec![entry("k", "fresh")]).await.expect("put");
        assert_eq!(read_all(&f.node, "s", "shardId-000000000000"), vec!["two-days-old", "fresh"]);
        f.node.set_retention("s", 24, false).expect("decrease");
        assert_eq!(read_all(&f.node, "s", "shardId-000000000000"), vec!["fresh"]);
        f.node.close().await;
    }

    /// Power cuts under concurrent puts, on the file system that loses unsynced writes: after
    /// each restart every acknowledged record is readable exactly once, in order, and every
    /// record present was acknowledged or pending when the power went.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn power_cuts_lose_no_acknowledged_record_and_invent_none() {
        use crate::journal::files::{Cut, MemoryFiles};
        use std::collections::{HashMap, HashSet};
        use std::sync::Mutex as StdMutex;

        let files = MemoryFiles::new();
        let engine: Arc<dyn KvEngine> = Arc::new(crate::store::MemoryEngine::new());
        let clock = Arc::new(ManualClock::new(T0));
        let open = |engine: Arc<dyn KvEngine>| {
            let mut config = Config::new(std::path::Path::new("/unused"));
            config.stream_transition = Duration::ZERO;
            config.retention_check_interval = Duration::from_secs(3600);
            let options = JournalOptions { segment_bytes: 64 << 10 };
            let journal =
                Journal::open(Arc::new(files.clone()), std::path::Path::new("/data/log"), options).expect("journal");
            Node::open_with(config, engine, Arc::new(journal), clock.clone()).expect("node")
        };
        let mut node = open(engine.clone());
        active_stream(&node, "s", 3).await;
        // Acknowledged data per shard in order, and everything ever sent without an answer.
        /// Per shard id, `(counter, data)` of each acknowledged record.
        type Acked = HashMap<String, Vec<(u64, String)>>;
        let acked: Arc<StdMutex<Acked>> = Arc::default();
        let pending: Arc<StdMutex<HashSet<String>>> = Arc::default();
        for round in 0..6 {
            let mut producers = Vec::new();
            for producer in 0..4 {
                let (node, acked, pending) = (node.clone(), acked.clone(), pending.clone());
                producers.push(tokio::spawn(async move {
                    for n in 0.. {
                        let data: Vec<String> = (0..5).map(|i| format!("r{round}-p{producer}-{n}-{i}")).collect();
                        pending.lock().expect("lock").extend(data.iter().cloned());
                        let entries = data.iter().map(|d| entry(d, d)).collect();
                        let Ok(results) = node.put("s", entries).await else { return };
                        for (result, d) in results.into_iter().zip(data) {
                            let Ok(result) = result else { return };
                            acked
                                .lock()
                                .expect("lock")
                                .entry(result.shard_id)
                                .or_default()
                                .push((result.sequence_number.counter, d));
                        }
                    }
                }));
            }
            tokio::time::sleep(Duration::from_millis(20 + round * 15)).await;
            // The power fails: fsyncs fail from now on, then unsynced bytes are lost or torn.
            files.fail_syncs(true);
            for producer in producers {
                producer.await.expect("join");
            }
            files.power_cut(match round % 3 {
                0 => Cut::DropUnsynced,
                1 => Cut::Torn(777),
                _ => Cut::KeepAll,
            });
            files.fail_syncs(false);
            node.close().await;
            node = open(engine.clone());
            let acked = acked.lock().expect("lock");
            let pending = pending.lock().expect("lock");
            for shard in ["shardId-000000000000", "shardId-000000000001", "shardId-000000000002"] {
                let mut token = node.shard_iterator("s", shard, StartingPosition::TrimHorizon).expect("iterator");
                let mut found: Vec<(u64, String)> = Vec::new();
                loop {
                    let page = node.get_records(&token, 10_000).expect("records");
                    if page.records.is_empty() {
                        break;
                    }
                    found.extend(
                        page.records
                            .into_iter()
                            .map(|(seq, r)| (seq.counter, String::from_utf8(r.data).unwrap_or_default())),
                    );
                    token = page.next_iterator.expect("an open shard has a next iterator");
                }
                let counters: Vec<u64> = found.iter().map(|(c, _)| *c).collect();
                assert!(counters.windows(2).all(|w| w[1] == w[0] + 1), "round {round}: {shard} has gaps");
                let present: HashMap<u64, &String> = found.iter().map(|(c, d)| (*c, d)).collect();
                for (counter, data) in acked.get(shard).into_iter().flatten() {
                    assert_eq!(present.get(counter), Some(&data), "round {round}: acknowledged {data} lost");
                }
                let acked_data: HashSet<&String> = acked.get(shard).into_iter().flatten().map(|(_, d)| d).collect();
                for (_, data) in &found {
                    assert!(acked_data.contains(data) || pending.contains(data), "round {round}: {data} never sent");
                }
                let unique: HashSet<&String> = found.iter().map(|(_, d)| d).collect();
                assert_eq!(unique.len(), found.len(), "round {round}: a record appears twice");
            }
        }
        node.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_puts_share_fsyncs() {
        let f = fixture().await;
        active_stream(&f.node, "s", 4).await;
        let mut tasks = Vec::new();
        for i in 0..400 {
            let node = f.node.clone();
            tasks.push(tokio::spawn(async move { node.put("s", vec![entry(&format!("key-{i}"), "x")]).await }));
        }
        for task in tasks {
            task.await.expect("join").expect("put");
        }
        let stats = f.node.appender().stats();
        let (syncs, requests) = (stats.syncs.load(Ordering::Relaxed), stats.requests.load(Ordering::Relaxed));
        assert_eq!(requests, 400);
        assert!(syncs < requests / 2, "group commit should batch: {syncs} fsyncs for {requests} puts");
        f.node.close().await;
    }

    #[tokio::test]
    async fn sequence_numbers_keep_increasing_across_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::new(dir.path());
        config.stream_transition = Duration::ZERO;
        let first = {
            let node = Node::open(config.clone()).expect("open");
            active_stream(&node, "s", 2).await;
            let results = node.put("s", (0..50).map(|i| entry(&i.to_string(), "x")).collect()).await.expect("put");
            let results: Vec<PutResult> = results.into_iter().collect::<Result<_>>().expect("stored");
            node.close().await;
            results
        };
        let node = Node::open(config).expect("reopen");
        let second = node.put("s", (0..50).map(|i| entry(&i.to_string(), "y")).collect()).await.expect("put");
        let second: Vec<PutResult> = second.into_iter().collect::<Result<_>>().expect("stored");
        for shard in ["shardId-000000000000", "shardId-000000000001"] {
            let before = first.iter().filter(|r| r.shard_id == shard).map(|r| r.sequence_number).max();
            let after = second.iter().filter(|r| r.shard_id == shard).map(|r| r.sequence_number).min();
            assert!(before < after, "{shard}: {before:?} then {after:?}");
        }
        node.close().await;
    }

    #[tokio::test]
    async fn appends_after_close_fail_cleanly() {
        let f = fixture().await;
        active_stream(&f.node, "s", 1).await;
        f.node.close().await;
        let err = f.node.put("s", vec![entry("k", "late")]).await;
        assert!(matches!(err, Err(Error::WritePathClosed(_))), "{err:?}");
    }
}
