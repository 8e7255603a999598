//! The append seam: the only way records enter a shard log.
//!
//! One writer thread owns sequence assignment. Callers hand it whole requests; it takes every
//! request that queued while the previous write was being fsync'd, assigns sequence numbers
//! and arrival times, puts one frame per shard into a journal [`Group`] (one buffer per
//! retention class), writes and fsyncs it ([`Journal::commit`]: one fsync per class written,
//! never per shard), and only then publishes the new high watermarks and answers the callers
//! (group commit). A crash before the fsync loses only records nobody was told about.
//!
//! Replication will take this seam over: an append will be acknowledged once a majority of a
//! shard's replicas hold it.

use std::collections::HashSet;

use rustc_hash::FxHashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::journal::{read_index, Group, Journal, ShardKey, Slot};
use crate::metrics::Metrics;
use crate::store::{Durability, KvEngine, WriteBatch};
use crate::stream::{Catalog, ShardLog, Stream};

/// The Raft term of every frame of a server without replication.
const STANDALONE_TERM: u64 = 0;
/// Requests waiting for the writer before callers feel backpressure.
const QUEUE_DEPTH: usize = 4096;
/// Most record bytes written in one group (one fsync).
const MAX_GROUP_BYTES: usize = 32 << 20;

/// One record bound for a shard.
#[derive(Debug)]
pub struct Entry {
    /// Target shard, as routed when the request was made.
    pub shard: u32,
    /// The record's hash key, to route it again if its shard closed while it queued.
    pub hash: u128,
    /// Partition key.
    pub partition_key: String,
    /// Payload.
    pub data: Vec<u8>,
}

impl Entry {
    /// Bytes of partition key and data.
    pub fn size(&self) -> usize {
        self.partition_key.len() + self.data.len()
    }
}

/// Where an appended record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Shard index.
    pub shard: u32,
    /// Position in the shard.
    pub counter: u64,
    /// Its arrival time, ms since the epoch (as stamped in the record).
    pub arrival_ms: u64,
}

enum Command {
    Append { stream: Arc<Stream>, entries: Vec<Entry>, reply: oneshot::Sender<Result<Vec<Appended>>> },
    Delete { stream: Arc<Stream>, also: WriteBatch, reply: oneshot::Sender<Result<()>> },
    Barrier { work: BarrierWork, reply: oneshot::Sender<Result<()>> },
    Stop,
}

/// Work run on the writer thread between two groups (see [`Appender::barrier`]).
type BarrierWork = Box<dyn FnOnce() -> Result<()> + Send>;

impl Command {
    fn bytes(&self) -> usize {
        match self {
            Command::Append { entries, .. } => entries.iter().map(Entry::size).sum(),
            Command::Delete { .. } | Command::Barrier { .. } | Command::Stop => 0,
        }
    }
}

/// Counters describing group commit, for metrics and tests.
#[derive(Debug, Default)]
pub struct AppendStats {
    /// Durable writes (fsyncs) issued.
    pub syncs: AtomicU64,
    /// Append requests served.
    pub requests: AtomicU64,
    /// Records appended.
    pub records: AtomicU64,
}

/// Handle to the writer thread.
#[derive(Debug)]
pub struct Appender {
    queue: mpsc::Sender<Command>,
    thread: Mutex<Option<JoinHandle<()>>>,
    stats: Arc<AppendStats>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Append { stream, entries, .. } => write!(f, "Append({}, {} records)", stream.name, entries.len()),
            Command::Delete { stream, .. } => write!(f, "Delete({})", stream.name),
            Command::Barrier { .. } => write!(f, "Barrier"),
            Command::Stop => write!(f, "Stop"),
        }
    }
}

impl Appender {
    /// Starts the writer thread.
    /// Starts the writer thread. `catalog_writes` is the catalog's write lock
    /// ([`Catalog::write_lock`]): a group that deletes streams holds it while it writes, so a
    /// definition update can never rewrite the catalog row of a stream being deleted.
    pub fn start(
        engine: Arc<dyn KvEngine>,
        journal: Arc<Journal>,
        clock: Arc<dyn Clock>,
        account: String,
        metrics: Arc<Metrics>,
        catalog_writes: Arc<Mutex<()>>,
    ) -> std::io::Result<Self> {
        let (queue, receiver) = mpsc::channel(QUEUE_DEPTH);
        let stats = Arc::new(AppendStats::default());
        let writer = Writer { engine, journal, clock, account, stats: stats.clone(), metrics, catalog_writes };
        let thread = std::thread::Builder::new().name("shardline-append".into()).spawn(move || writer.run(receiver))?;
        Ok(Self { queue, thread: Mutex::new(Some(thread)), stats })
    }

    /// Group-commit counters.
    pub fn stats(&self) -> &AppendStats {
        &self.stats
    }

    /// Appends `entries` to `stream`, returning once they are durable.
    pub async fn append(&self, stream: Arc<Stream>, entries: Vec<Entry>) -> Result<Vec<Appended>> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Command::Append { stream, entries, reply })
            .await
            .map_err(|_| Error::WritePathClosed("the appender has stopped"))?;
        answer.await.map_err(|_| Error::WritePathClosed("the appender dropped the request"))?
    }

    /// Deletes every record, index entry, counter and the catalog entry of `stream`, with the
    /// mutations in `also` (its leases), in one batch in order with appends, and refuses
    /// further appends to it.
    pub async fn delete_stream(&self, stream: Arc<Stream>, also: WriteBatch) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Command::Delete { stream, also, reply })
            .await
            .map_err(|_| Error::WritePathClosed("the appender has stopped"))?;
        answer.await.map_err(|_| Error::WritePathClosed("the appender dropped the request"))?
    }

    /// Runs `work` on the writer thread once every request queued before it is durable and
    /// before any request queued after it is written: a shard map change (split, merge) sees
    /// each shard's exact last record, and later appends see the new map.
    pub async fn barrier(&self, work: impl FnOnce() -> Result<()> + Send + 'static) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Command::Barrier { work: Box::new(work), reply })
            .await
            .map_err(|_| Error::WritePathClosed("the appender has stopped"))?;
        answer.await.map_err(|_| Error::WritePathClosed("the appender dropped the request"))?
    }

    /// Lets the writer finish every request queued before this call, then stops it. Requests
    /// sent afterwards fail with [`Error::WritePathClosed`].
    pub async fn shutdown(&self) {
        let _ = self.queue.send(Command::Stop).await;
        let thread = self.thread.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

struct Writer {
    engine: Arc<dyn KvEngine>,
    journal: Arc<Journal>,
    clock: Arc<dyn Clock>,
    account: String,
    stats: Arc<AppendStats>,
    metrics: Arc<Metrics>,
    catalog_writes: Arc<Mutex<()>>,
}

/// What a group does to one shard: its frame, applied to its log after the fsync.
struct Touched {
    log: Arc<ShardLog>,
    class: u8,
    /// Counter of the group's first record in the shard.
    first_counter: u64,
    last_counter: u64,
    arrival_ms: u64,
    /// Record bytes the group adds to the shard.
    bytes: u64,
    records: Vec<(String, Vec<u8>)>,
}

impl Writer {
    fn run(self, mut receiver: mpsc::Receiver<Command>) {
        while let Some(first) = receiver.blocking_recv() {
            let mut stop = matches!(first, Command::Stop);
            let mut bytes = first.bytes();
            let mut group = vec![first];
            while !stop && bytes < MAX_GROUP_BYTES {
                match receiver.try_recv() {
                    Ok(command) => {
                        stop = matches!(command, Command::Stop);
                        bytes += command.bytes();
                        group.push(command);
                    }
                    Err(_) => break,
                }
            }
            let mut pending = Vec::with_capacity(group.len());
            for command in group {
                match command {
                    Command::Barrier { work, reply } => {
                        self.commit(std::mem::take(&mut pending));
                        let _ = reply.send(work());
                    }
                    other => pending.push(other),
                }
            }
            self.commit(pending);
            if stop {
                // Dropping the receiver fails every request still queued: none was written.
                return;
            }
        }
    }

    fn commit(&self, group: Vec<Command>) {
        let now = self.clock.now_ms();
        let mut batch = WriteBatch::new();
        let mut touched: FxHashMap<(u64, u32), Touched> = FxHashMap::default();
        let mut appends = Vec::new();
        let mut deletes = Vec::new();
        // Streams deleted by this group: nothing of theirs is written after their deletion.
        let mut deleted: HashSet<u64> = HashSet::new();

        for command in group {
            match command {
                Command::Append { stream, entries, reply } => {
                    if stream.is_deleted() || deleted.contains(&stream.id) {
                        let _ = reply.send(Err(self.gone(&stream)));
                        continue;
                    }
                    match self.stage(&stream, entries, now, &mut touched) {
                        Ok(results) => appends.push((stream, reply, results)),
                        Err(err) => {
                            let _ = reply.send(Err(err));
                        }
                    }
                }
                Command::Delete { stream, also, reply } => {
                    deleted.insert(stream.id);
                    batch.append(Catalog::deletion_batch(&stream));
                    batch.append(also);
                    deletes.push((stream, reply));
                }
                Command::Barrier { reply, .. } => {
                    // `run` takes barriers out of groups; one reaching here is refused, not lost.
                    let _ = reply.send(Err(Error::WritePathClosed("barrier inside a group")));
                }
                Command::Stop => {}
            }
        }
        touched.retain(|(stream_id, _), _| !deleted.contains(stream_id));
        let mut frames = Group::new();
        let mut class_bytes: FxHashMap<u8, usize> = FxHashMap::default();
        for touch in touched.values() {
            *class_bytes.entry(touch.class).or_default() += Group::batch_len(touch.records.len(), touch.bytes as usize);
        }
        for (class, bytes) in class_bytes {
            frames.reserve(class, bytes);
        }
        for ((stream, shard), touch) in &mut touched {
            let raft_index = read_index(&touch.log.index).last_index().unwrap_or(0) + 1;
            let records = std::mem::take(&mut touch.records);
            let key = ShardKey { stream: *stream, shard: *shard };
            frames.records(
                Slot { class: touch.class, key, index: &touch.log.index, term: STANDALONE_TERM, raft_index },
                touch.first_counter,
                touch.arrival_ms,
                records.iter().map(|(key, data)| (key.as_bytes(), data.as_slice())),
            );
        }
        if frames.is_empty() && batch.is_empty() {
            return;
        }

        let started = std::time::Instant::now();
        let mut outcome = self.journal.commit(frames, now).map_err(Error::from);
        if outcome.is_ok() && !batch.is_empty() {
            // Deletions remove catalog rows: ordered with the catalog's own writes (see `start`).
            let _catalog = self.catalog_writes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            outcome = self.engine.write(batch, Durability::Sync).map_err(Error::from);
            if outcome.is_ok() {
                for (stream, _) in &deletes {
                    stream.mark_deleted();
                    self.journal.retain_streams(&|id| id != stream.id);
                }
            }
        }
        let records: u64 = touched.values().map(|t| t.last_counter + 1 - t.first_counter).sum();
        self.metrics.fsync(records, started.elapsed());
        self.stats.syncs.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok(()) => {
                for touch in touched.values() {
                    touch.log.last_arrival_ms.store(touch.arrival_ms, Ordering::Release);
                    touch.log.last_counter.store(touch.last_counter, Ordering::Release);
                    touch.log.appended_bytes.fetch_add(touch.bytes, Ordering::Relaxed);
                    touch.log.appended.notify_waiters();
                }
                for (_, reply) in deletes {
                    let _ = reply.send(Ok(()));
                }
                self.stats.requests.fetch_add(appends.len() as u64, Ordering::Relaxed);
                for (stream, reply, results) in appends {
                    if deleted.contains(&stream.id) {
                        // Staged before the stream's deletion in the same group: erased by it.
                        let _ = reply.send(Err(self.gone(&stream)));
                        continue;
                    }
                    self.stats.records.fetch_add(results.len() as u64, Ordering::Relaxed);
                    let _ = reply.send(Ok(results));
                }
            }
            Err(err) => {
                tracing::error!(cause = %err, "durable write failed; nothing in the group was acknowledged");
                let message = err.to_string();
                for (_, reply) in deletes {
                    let _ = reply.send(Err(crate::store::Error::Engine(message.clone()).into()));
                }
                for (_, reply, _) in appends {
                    let _ = reply.send(Err(crate::store::Error::Engine(message.clone()).into()));
                }
            }
        }
    }

    /// The answer to an append for a stream whose data is deleted.
    fn gone(&self, stream: &Stream) -> Error {
        Error::StreamNotFound { name: stream.name.clone(), account: self.account.clone() }
    }

    /// Assigns counters and arrival times to one request's records and stages their writes.
    fn stage(
        &self,
        stream: &Stream,
        entries: Vec<Entry>,
        now: u64,
        touched: &mut FxHashMap<(u64, u32), Touched>,
    ) -> Result<Vec<Appended>> {
        // Resolve every shard first so a bad request stages nothing. A record routed to a shard
        // that has since closed goes to the open shard that now owns its hash key.
        let mut entries = entries;
        {
            let def = stream.def();
            if let Some(placement) = &def.placement {
                // Cluster mode: the node routed each record to a shard this server owns. While a
                // reshard is being prepared nothing is written; a shard that closed meanwhile may
                // have children elsewhere, so the caller routes again rather than the writer.
                let moved = entries.iter().any(|e| def.shard(e.shard).is_none_or(|s| !s.is_open()));
                if placement.frozen || moved {
                    return Err(Error::Unavailable(format!(
                        "Stream {} is being resharded; retry the request shortly.",
                        def.name
                    )));
                }
            }
            for entry in &mut entries {
                let open = def.shard(entry.shard).is_some_and(|s| s.is_open());
                if !open {
                    entry.shard = def.route(entry.hash).map(|s| s.index).ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "No open shard of stream {} owns hash key {}.",
                            def.name, entry.hash
                        ))
                    })?;
                }
                if stream.log(entry.shard).is_none() {
                    return Err(Error::InvalidArgument(format!("shard {} does not exist", entry.shard)));
                }
            }
        }
        let class = stream.retention_class();
        let mut results = Vec::with_capacity(entries.len());
        for entry in entries {
            let key = (stream.id, entry.shard);
            let touch = match touched.get_mut(&key) {
                Some(touch) => touch,
                None => {
                    let log = stream.log(entry.shard).ok_or_else(|| Error::InvalidArgument("shard vanished".into()))?;
                    let last_counter = log.last_counter.load(Ordering::Acquire);
                    let arrival_ms = now.max(log.last_arrival_ms.load(Ordering::Acquire));
                    touched.entry(key).or_insert(Touched {
                        log,
                        class,
                        first_counter: last_counter + 1,
                        last_counter,
                        arrival_ms,
                        bytes: 0,
                        records: Vec::new(),
                    })
                }
            };
            touch.last_counter += 1;
            touch.bytes += entry.size() as u64;
            let counter = touch.last_counter;
            touch.records.push((entry.partition_key, entry.data));
            results.push(Appended { shard: entry.shard, counter, arrival_ms: touch.arrival_ms });
        }
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::{keys, Cf, MemoryEngine};
    use crate::stream::{NewStream, StreamMode, DEFAULT_MAX_RECORD_SIZE_KIB};

    fn count(engine: &dyn KvEngine, cf: Cf, start: &[u8], end: &[u8]) -> usize {
        let mut n = 0;
        engine
            .scan(cf, start, end, &mut |_, _| {
                n += 1;
                true
            })
            .expect("scan");
        n
    }

    fn setup(shards: u32) -> (Arc<dyn KvEngine>, Arc<Journal>, Catalog, Writer) {
        let engine: Arc<dyn KvEngine> = Arc::new(MemoryEngine::new());
        let journal = Journal::in_memory();
        let catalog = Catalog::load(engine.clone(), journal.clone(), "123456789012".into(), "us-east-1".into(), 10_000)
            .expect("load");
        let writer = Writer {
            engine: engine.clone(),
            journal: journal.clone(),
            clock: Arc::new(ManualClock::new(1)),
            account: "123456789012".into(),
            stats: Arc::default(),
            metrics: Arc::default(),
            catalog_writes: catalog.write_lock(),
        };
        let request = NewStream {
            name: "s".into(),
            shard_count: shards,
            mode: StreamMode::Provisioned,
            max_record_size_kib: DEFAULT_MAX_RECORD_SIZE_KIB,
            tags: Default::default(),
        };
        catalog.create(request, 0).expect("create");
        (engine, journal, catalog, writer)
    }

    fn entry(shard: u32) -> Entry {
        Entry { shard, hash: 0, partition_key: "k".into(), data: b"v".to_vec() }
    }

    #[test]
    fn a_deletion_erases_everything_of_its_stream_in_the_same_group() {
        let (engine, journal, catalog, writer) = setup(1);
        let stream = catalog.get("s").expect("stream");
        let (before, mut before_rx) = oneshot::channel();
        let (delete, mut delete_rx) = oneshot::channel();
        let (after, mut after_rx) = oneshot::channel();
        writer.commit(vec![
            Command::Append { stream: stream.clone(), entries: vec![entry(0)], reply: before },
            Command::Delete { stream: stream.clone(), also: WriteBatch::new(), reply: delete },
            Command::Append { stream: stream.clone(), entries: vec![entry(0)], reply: after },
        ]);
        assert!(matches!(before_rx.try_recv(), Ok(Err(Error::StreamNotFound { .. }))));
        assert!(matches!(delete_rx.try_recv(), Ok(Ok(()))));
        assert!(matches!(after_rx.try_recv(), Ok(Err(Error::StreamNotFound { .. }))));
        assert!(stream.is_deleted());
        assert_eq!(journal.stats().bytes.load(Ordering::Relaxed), 0, "no record was written");
        assert_eq!(count(engine.as_ref(), Cf::Catalog, &[0], &[0xff]), 0, "the definition is gone");
        let (start, end) = keys::stream_data_range(keys::COUNTER_PREFIX, stream.id);
        assert_eq!(count(engine.as_ref(), Cf::Meta, &start, &end), 0, "no sequence counter survives");
    }

    #[test]
    fn one_group_over_many_shards_is_one_fsync_and_numbers_each_shard_from_one() {
        let (_, journal, catalog, writer) = setup(1000);
        let stream = catalog.get("s").expect("stream");
        let mut replies = Vec::new();
        let commands = (0..4)
            .map(|_| {
                let (reply, answer) = oneshot::channel();
                replies.push(answer);
                Command::Append { stream: stream.clone(), entries: (0..1000).map(entry).collect(), reply }
            })
            .collect();
        writer.commit(commands);
        assert_eq!(journal.stats().syncs.load(Ordering::Relaxed), 1);
        for (n, mut answer) in replies.into_iter().enumerate() {
            let results = answer.try_recv().expect("answered").expect("appended");
            assert!(results.iter().all(|r| r.counter == n as u64 + 1));
        }
        let log = stream.log(999).expect("log");
        assert_eq!(log.last_counter.load(Ordering::Acquire), 4);
    }
}
