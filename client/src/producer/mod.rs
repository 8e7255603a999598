//! A KPL-like producer over the Kinesis API: user records are aggregated per predicted shard in
//! the KPL format, collected into PutRecords calls (≤ 500 records, ≤ 5 MiB) that leave after
//! a linger time or when full, rate-limited per shard, and retried record by record with
//! exponential backoff and jitter until their time-to-live. `put` returns a future of where the
//! record landed; `flush` waits for everything buffered; a full buffer makes `put` wait.

pub mod aggregation;
mod batcher;
pub mod retry;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use self::aggregation::UserRecord;

/// Why a record was not stored.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProducerError {
    /// The record's time-to-live passed before it was stored; the last failure is given.
    #[error("record expired after {attempts} attempts: {last_error}")]
    Expired {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last_error: String,
    },
    /// The record can never be stored (bad key, too large, missing stream).
    #[error("record refused: {0}")]
    Refused(String),
    /// The producer has stopped.
    #[error("the producer has stopped")]
    Stopped,
}

/// Where a user record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Shard id.
    pub shard_id: String,
    /// Sequence number of the Kinesis record holding it.
    pub sequence_number: String,
    /// Its index inside an aggregated record (0 when not aggregated).
    pub sub_sequence_number: u64,
}

/// Producer settings; the defaults follow the KPL's.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Stream to write to.
    pub stream: String,
    /// Pack user records into KPL aggregated records.
    pub aggregation: bool,
    /// Largest aggregated record in bytes.
    pub max_aggregate_bytes: usize,
    /// Longest a record waits for companions before its PutRecords leaves.
    pub linger: Duration,
    /// Records per PutRecords call (1..=500).
    pub max_batch_records: usize,
    /// Bytes per PutRecords call.
    pub max_batch_bytes: usize,
    /// How long a record may keep being retried.
    pub record_ttl: Duration,
    /// User records buffered before `put` waits (backpressure).
    pub max_buffered_records: usize,
    /// PutRecords calls in flight at once.
    pub max_in_flight: usize,
    /// Keep each partition key's records in order, retries included: a key has one record in
    /// flight at a time.
    pub ordered: bool,
    /// Records per second sent to one shard (Kinesis accepts 1,000).
    pub shard_records_per_second: f64,
    /// Bytes per second sent to one shard (Kinesis accepts 1 MiB).
    pub shard_bytes_per_second: f64,
    /// First retry delay; doubled per attempt, with jitter.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
}

impl ProducerConfig {
    /// Defaults for `stream`.
    pub fn new(stream: impl Into<String>) -> Self {
        Self {
            stream: stream.into(),
            aggregation: true,
            max_aggregate_bytes: 51_200,
            linger: Duration::from_millis(100),
            max_batch_records: 500,
            max_batch_bytes: 5 << 20,
            record_ttl: Duration::from_secs(30),
            max_buffered_records: 100_000,
            max_in_flight: 16,
            ordered: false,
            shard_records_per_second: 1_000.0,
            shard_bytes_per_second: 1_048_576.0,
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
        }
    }
}

/// Counters of a producer's work.
#[derive(Debug, Default)]
pub struct ProducerMetrics {
    /// User records accepted by `put`.
    pub user_records_put: AtomicU64,
    /// User records stored.
    pub user_records_stored: AtomicU64,
    /// Kinesis records (aggregated or not) sent in PutRecords calls, retries included.
    pub kinesis_records_sent: AtomicU64,
    /// PutRecords calls made.
    pub put_records_calls: AtomicU64,
    /// Kinesis records retried after a failure.
    pub retries: AtomicU64,
    /// User records that failed for good.
    pub errors: AtomicU64,
    /// User records waiting in the buffer or in flight.
    pub buffered: AtomicU64,
}

pub(crate) enum Command {
    Put { record: UserRecord, reply: oneshot::Sender<Result<Stored, ProducerError>> },
    Flush { reply: oneshot::Sender<()> },
}

/// A handle to the producer's background task; cheap to clone.
#[derive(Clone)]
pub struct Producer {
    commands: mpsc::Sender<Command>,
    metrics: Arc<ProducerMetrics>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").field("metrics", &self.metrics).finish()
    }
}

impl Producer {
    /// Starts a producer on a Tokio runtime.
    pub fn new(client: aws_sdk_kinesis::Client, config: ProducerConfig) -> Self {
        let (commands, receiver) = mpsc::channel(config.max_buffered_records.max(1));
        let metrics = Arc::new(ProducerMetrics::default());
        tokio::spawn(batcher::Batcher::new(client, config, metrics.clone()).run(receiver));
        Self { commands, metrics }
    }

    /// Queues a record; the returned future resolves once it is stored or has failed for good.
    /// Waits first while the buffer is full.
    pub async fn put(
        &self,
        partition_key: impl Into<String>,
        explicit_hash_key: Option<String>,
        data: impl Into<Vec<u8>>,
    ) -> Result<oneshot::Receiver<Result<Stored, ProducerError>>, ProducerError> {
        let (reply, answer) = oneshot::channel();
        let record = UserRecord { partition_key: partition_key.into(), explicit_hash_key, data: data.into() };
        self.metrics.user_records_put.fetch_add(1, Ordering::Relaxed);
        self.metrics.buffered.fetch_add(1, Ordering::Relaxed);
        self.commands.send(Command::Put { record, reply }).await.map_err(|_| ProducerError::Stopped)?;
        Ok(answer)
    }

    /// Puts a record and waits until it is stored.
    pub async fn put_and_wait(
        &self,
        partition_key: impl Into<String>,
        data: impl Into<Vec<u8>>,
    ) -> Result<Stored, ProducerError> {
        let answer = self.put(partition_key, None, data).await?;
        answer.await.map_err(|_| ProducerError::Stopped)?
    }

    /// Sends everything buffered now and waits until no record is buffered or in flight.
    pub async fn flush(&self) -> Result<(), ProducerError> {
        let (reply, done) = oneshot::channel();
        self.commands.send(Command::Flush { reply }).await.map_err(|_| ProducerError::Stopped)?;
        done.await.map_err(|_| ProducerError::Stopped)
    }

    /// The producer's counters.
    pub fn metrics(&self) -> &ProducerMetrics {
        &self.metrics
    }
}
