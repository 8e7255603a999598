//! The producer's background task: routing to predicted shards, aggregation, batching into
//! PutRecords calls, per-shard rate limits, ordered mode, retries and flushes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardFilter, ShardFilterType};
use md5::{Digest, Md5};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::aggregation::{Aggregator, UserRecord};
use super::retry::{backoff, is_retryable};
use super::{Command, ProducerConfig, ProducerError, ProducerMetrics, Stored};

/// How often the task looks at lingering records while work is pending.
const TICK: Duration = Duration::from_millis(5);
/// Least time between two shard map refreshes.
const REFRESH_GAP: Duration = Duration::from_secs(1);

/// A caller waiting for one user record.
struct Member {
    reply: oneshot::Sender<Result<Stored, ProducerError>>,
    sub_sequence_number: u64,
}

/// One Kinesis record to send: a plain user record or an aggregate of several.
struct Outgoing {
    partition_key: String,
    explicit_hash_key: Option<String>,
    data: Vec<u8>,
    shard: String,
    members: Vec<Member>,
    /// Partition keys of the user records inside.
    keys: Vec<String>,
    attempts: u32,
    queued: Instant,
    deadline: Instant,
    not_before: Instant,
    last_error: String,
}

impl Outgoing {
    fn size(&self) -> usize {
        self.partition_key.len() + self.data.len()
    }
}

struct OpenAggregate {
    aggregator: Aggregator,
    members: Vec<Member>,
    keys: Vec<String>,
    partition_key: String,
    explicit_hash_key: String,
    opened: Instant,
    deadline: Instant,
}

struct Bucket {
    records: f64,
    bytes: f64,
    at: Instant,
}

type CallResult = (Vec<Outgoing>, Result<Vec<(Option<String>, Option<String>, Option<String>)>, (String, String)>);

pub(super) struct Batcher {
    client: aws_sdk_kinesis::Client,
    config: ProducerConfig,
    metrics: Arc<ProducerMetrics>,
    shards: Vec<(u128, u128, String)>,
    refreshed: Option<Instant>,
    stale_map: bool,
    open: HashMap<String, OpenAggregate>,
    ready: VecDeque<Outgoing>,
    in_flight: JoinSet<CallResult>,
    /// Ordered mode: partition keys with a record in flight.
    busy_keys: HashSet<String>,
    buckets: HashMap<String, Bucket>,
    flush_waiters: Vec<oneshot::Sender<()>>,
}

fn hash_of(record: &UserRecord) -> u128 {
    record
        .explicit_hash_key
        .as_deref()
        .and_then(|k| k.parse().ok())
        .unwrap_or_else(|| u128::from_be_bytes(Md5::digest(record.partition_key.as_bytes()).into()))
}

impl Batcher {
    pub(super) fn new(client: aws_sdk_kinesis::Client, config: ProducerConfig, metrics: Arc<ProducerMetrics>) -> Self {
        Self {
            client,
            config,
            metrics,
            shards: Vec::new(),
            refreshed: None,
            stale_map: true,
            open: HashMap::new(),
            ready: VecDeque::new(),
            in_flight: JoinSet::new(),
            busy_keys: HashSet::new(),
            buckets: HashMap::new(),
            flush_waiters: Vec::new(),
        }
    }

    pub(super) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut closed = false;
        loop {
            self.refresh_shards().await;
            let pending = !self.open.is_empty() || !self.ready.is_empty();
            tokio::select! {
                command = commands.recv(), if !closed => match command {
                    Some(Command::Put { record, reply }) => self.accept(record, reply),
                    Some(Command::Flush { reply }) => self.flush_waiters.push(reply),
                    None => closed = true,
                },
                Some(done) = self.in_flight.join_next() => match done {
                    Ok(result) => self.settle(result),
                    Err(err) => tracing::error!(cause = %err, "PutRecords task failed"),
                },
                _ = tokio::time::sleep(TICK), if pending => {}
            }
            let flushing = closed || !self.flush_waiters.is_empty();
            self.close_aggregates(flushing);
            self.send(flushing);
            if self.open.is_empty() && self.ready.is_empty() && self.in_flight.is_empty() {
                for waiter in self.flush_waiters.drain(..) {
                    let _ = waiter.send(());
                }
                if closed {
                    return;
                }
            }
        }
    }

    async fn refresh_shards(&mut self) {
        if !self.stale_map || self.refreshed.is_some_and(|at| at.elapsed() < REFRESH_GAP) {
            return;
        }
        self.refreshed = Some(Instant::now());
        let Ok(filter) = ShardFilter::builder().r#type(ShardFilterType::AtLatest).build() else { return };
        match self.client.list_shards().stream_name(&self.config.stream).shard_filter(filter).send().await {
            Ok(out) => {
                self.shards = out
                    .shards()
                    .iter()
                    .filter_map(|s| {
                        let range = s.hash_key_range()?;
                        Some((
                            range.starting_hash_key().parse().ok()?,
                            range.ending_hash_key().parse().ok()?,
                            s.shard_id().to_owned(),
                        ))
                    })
                    .collect();
                self.stale_map = false;
            }
            Err(err) => tracing::warn!(cause = %err, "ListShards failed; records are routed by the last known map"),
        }
    }

    fn predict(&self, hash: u128) -> String {
        self.shards
            .iter()
            .find(|(start, end, _)| *start <= hash && hash <= *end)
            .map(|(_, _, id)| id.clone())
            .unwrap_or_default()
    }

    fn accept(&mut self, record: UserRecord, reply: oneshot::Sender<Result<Stored, ProducerError>>) {
        let now = Instant::now();
        let deadline = now + self.config.record_ttl;
        let hash = hash_of(&record);
        let shard = self.predict(hash);
        let single = record.partition_key.len() + record.data.len();
        if !self.config.aggregation || single + 64 > self.config.max_aggregate_bytes {
            self.ready.push_back(Outgoing {
                keys: vec![record.partition_key.clone()],
                partition_key: record.partition_key,
                explicit_hash_key: record.explicit_hash_key,
                data: record.data,
                shard,
                members: vec![Member { reply, sub_sequence_number: 0 }],
                attempts: 0,
                queued: now,
                deadline,
                not_before: now,
                last_error: String::new(),
            });
            return;
        }
        let full = self.open.get(&shard).is_some_and(|open| {
            open.aggregator.size() + open.aggregator.added_size(&record) > self.config.max_aggregate_bytes
        });
        if full {
            self.close(&shard);
        }
        let open = self.open.entry(shard).or_insert_with(|| OpenAggregate {
            aggregator: Aggregator::default(),
            members: Vec::new(),
            keys: Vec::new(),
            partition_key: record.partition_key.clone(),
            explicit_hash_key: hash.to_string(),
            opened: now,
            deadline,
        });
        open.deadline = open.deadline.min(deadline);
        if !open.keys.contains(&record.partition_key) {
            open.keys.push(record.partition_key.clone());
        }
        let sub_sequence_number = open.aggregator.add(record);
        open.members.push(Member { reply, sub_sequence_number });
    }

    fn close(&mut self, shard: &str) {
        let Some(mut open) = self.open.remove(shard) else { return };
        self.ready.push_back(Outgoing {
            partition_key: open.partition_key,
            explicit_hash_key: Some(open.explicit_hash_key),
            data: open.aggregator.finish(),
            shard: shard.to_owned(),
            members: open.members,
            keys: open.keys,
            attempts: 0,
            queued: open.opened,
            deadline: open.deadline,
            not_before: open.opened,
            last_error: String::new(),
        });
    }

    fn close_aggregates(&mut self, flushing: bool) {
        let linger = self.config.linger;
        let due: Vec<String> = self
            .open
            .iter()
            .filter(|(_, open)| flushing || open.opened.elapsed() >= linger)
            .map(|(shard, _)| shard.clone())
            .collect();
        for shard in due {
            self.close(&shard);
        }
    }

    fn admit(&mut self, shard: &str, bytes: usize, now: Instant) -> bool {
        let (rate_records, rate_bytes) = (self.config.shard_records_per_second, self.config.shard_bytes_per_second);
        let bucket = self.buckets.entry(shard.to_owned()).or_insert(Bucket {
            records: rate_records,
            bytes: rate_bytes,
            at: now,
        });
        let elapsed = now.duration_since(bucket.at).as_secs_f64();
        bucket.records = (bucket.records + elapsed * rate_records).min(rate_records);
        bucket.bytes = (bucket.bytes + elapsed * rate_bytes).min(rate_bytes);
        bucket.at = now;
        let bytes = bytes as f64;
        // A record larger than a whole second's budget still goes once the bucket is full.
        if bucket.records < 1.0 || (bucket.bytes < bytes && bucket.bytes < rate_bytes) {
            return false;
        }
        bucket.records -= 1.0;
        bucket.bytes -= bytes;
        true
    }

    fn send(&mut self, flushing: bool) {
        let now = Instant::now();
        while self.in_flight.len() < self.config.max_in_flight.max(1) {
            let waiting = self.ready.iter().filter(|r| r.not_before <= now).count();
            let bytes: usize = self.ready.iter().filter(|r| r.not_before <= now).map(Outgoing::size).sum();
            let lingered = self.ready.iter().any(|r| r.not_before <= now && r.queued.elapsed() >= self.config.linger);
            let full = waiting >= self.config.max_batch_records || bytes >= self.config.max_batch_bytes;
            if waiting == 0 || !(full || lingered || flushing) {
                return;
            }
            let mut batch = Vec::new();
            let (mut batch_bytes, mut kept) = (0, VecDeque::new());
            // Ordered mode: a partition key has one record in flight at a time, and a record
            // waits while an earlier one of its keys waits, so retries cannot reorder a key.
            let mut blocked: HashSet<String> = HashSet::new();
            while let Some(record) = self.ready.pop_front() {
                let fits = batch.len() < self.config.max_batch_records.clamp(1, 500)
                    && batch_bytes + record.size() <= self.config.max_batch_bytes;
                let ordered_wait = self.config.ordered
                    && record.keys.iter().any(|k| self.busy_keys.contains(k) || blocked.contains(k));
                if record.not_before > now || !fits || ordered_wait || !self.admit(&record.shard, record.size(), now) {
                    if self.config.ordered {
                        blocked.extend(record.keys.iter().cloned());
                    }
                    kept.push_back(record);
                    continue;
                }
                batch_bytes += record.size();
                if self.config.ordered {
                    blocked.extend(record.keys.iter().cloned());
                }
                batch.push(record);
            }
            self.ready = kept;
            if batch.is_empty() {
                return;
            }
            if self.config.ordered {
                self.busy_keys.extend(batch.iter().flat_map(|r| r.keys.iter().cloned()));
            }
            self.launch(batch);
        }
    }

    fn launch(&mut self, batch: Vec<Outgoing>) {
        let entries = batch
            .iter()
            .map(|r| {
                PutRecordsRequestEntry::builder()
                    .partition_key(&r.partition_key)
                    .set_explicit_hash_key(r.explicit_hash_key.clone())
                    .data(Blob::new(r.data.clone()))
                    .build()
            })
            .collect::<Result<Vec<_>, _>>();
        self.metrics.put_records_calls.fetch_add(1, Ordering::Relaxed);
        self.metrics.kinesis_records_sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let call = self.client.put_records().stream_name(&self.config.stream).set_records(entries.ok());
        self.in_flight.spawn(async move {
            let outcome = match call.send().await {
                Ok(out) => Ok(out
                    .records()
                    .iter()
                    .map(|r| {
                        (
                            r.shard_id().map(str::to_owned),
                            r.sequence_number().map(str::to_owned),
                            r.error_code().map(|c| format!("{c}: {}", r.error_message().unwrap_or_default())),
                        )
                    })
                    .collect()),
                Err(err) => {
                    let code = aws_sdk_kinesis::error::ProvideErrorMetadata::code(&err)
                        .unwrap_or("InternalFailure")
                        .to_owned();
                    let message = aws_sdk_kinesis::error::DisplayErrorContext(&err).to_string();
                    Err((code, message))
                }
            };
            (batch, outcome)
        });
    }

    fn settle(&mut self, (batch, outcome): CallResult) {
        for record in &batch {
            for key in &record.keys {
                self.busy_keys.remove(key);
            }
        }
        match outcome {
            Ok(results) => {
                for (record, (shard, sequence, error)) in batch.into_iter().zip(results) {
                    match (shard, sequence, error) {
                        (Some(shard), Some(sequence), None) => self.stored(record, shard, sequence),
                        (_, _, error) => {
                            let error = error.unwrap_or_else(|| "no result".into());
                            let code = error.split(':').next().unwrap_or_default().to_owned();
                            self.failed(record, &code, error);
                        }
                    }
                }
            }
            Err((code, message)) => {
                for record in batch {
                    self.failed(record, &code, message.clone());
                }
            }
        }
    }

    fn stored(&mut self, record: Outgoing, shard: String, sequence: String) {
        if shard != record.shard {
            self.stale_map = true;
        }
        let count = record.members.len() as u64;
        for member in record.members {
            let stored = Stored {
                shard_id: shard.clone(),
                sequence_number: sequence.clone(),
                sub_sequence_number: member.sub_sequence_number,
            };
            let _ = member.reply.send(Ok(stored));
        }
        self.metrics.user_records_stored.fetch_add(count, Ordering::Relaxed);
        self.metrics.buffered.fetch_sub(count, Ordering::Relaxed);
    }

    fn failed(&mut self, mut record: Outgoing, code: &str, message: String) {
        record.attempts += 1;
        record.last_error = message;
        let now = Instant::now();
        let delay = backoff(record.attempts, self.config.retry_base, self.config.retry_max);
        if is_retryable(code) && now + delay < record.deadline {
            self.metrics.retries.fetch_add(1, Ordering::Relaxed);
            record.not_before = now + delay;
            record.queued = now;
            if code != "ProvisionedThroughputExceededException" {
                self.stale_map = true;
            }
            // Retries go first so that, in ordered mode, a key's records keep their order.
            self.ready.push_front(record);
            return;
        }
        let count = record.members.len() as u64;
        let error = if is_retryable(code) {
            ProducerError::Expired { attempts: record.attempts, last_error: record.last_error }
        } else {
            ProducerError::Refused(record.last_error)
        };
        for member in record.members {
            let _ = member.reply.send(Err(error.clone()));
        }
        self.metrics.errors.fetch_add(count, Ordering::Relaxed);
        self.metrics.buffered.fetch_sub(count, Ordering::Relaxed);
    }
}
