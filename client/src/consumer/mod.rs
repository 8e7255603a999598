//! A KCL-like consumer worker whose lease table lives in the shard-servers (gRPC
//! `shardline.v1.Leases`) instead of DynamoDB.
//!
//! Workers of one application share a stream's shards through leases: each renews its leases
//! on an interval; a lease whose counter has not moved for the failover time is taken by another
//! worker; a worker below its fair share takes free leases, then steals one from the most loaded
//! worker. A shard starts only once its parents were read to SHARD_END. Records come by polling
//! (`GetRecords`) or by push (`Subscribe`), KPL aggregates are taken apart, and every checkpoint
//! is a compare-and-set: a worker that lost a lease (a zombie) is refused and stops that shard at
//! once. Delivery is at least once; duplicates only follow the last checkpoint.

mod checkpoint;
mod lease;
mod shard_consumer;
mod worker;

use std::future::Future;
use std::time::Duration;

pub use self::checkpoint::{CheckpointError, Checkpointer};
pub use self::worker::{Worker, WorkerError, WorkerStatus};

/// Where a shard without a checkpoint starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialPosition {
    /// The oldest retained record.
    TrimHorizon,
    /// Records put from now on.
    Latest,
    /// The first record at or after this time (ms since the epoch).
    AtTimestamp(u64),
}

/// How a worker fetches records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retrieval {
    /// `GetRecords` polling, waiting `idle` after an empty read.
    Polling {
        /// Pause after a read that returned nothing.
        idle: Duration,
        /// Records per read.
        max_records: u32,
    },
    /// Records pushed by the shard-server as soon as they are durable (gRPC `Subscribe`).
    Push,
    /// Kinesis enhanced fan-out: the worker registers a stream consumer named after the
    /// application and reads each shard with `SubscribeToShard`.
    EnhancedFanOut,
}

/// Where processing of a shard stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// At the oldest retained record.
    TrimHorizon,
    /// At the newest record.
    Latest,
    /// At a time (ms since the epoch).
    AtTimestamp(u64),
    /// After this record (and sub-record of an aggregate).
    After {
        /// Sequence number.
        sequence_number: String,
        /// Sub-sequence number within an aggregated record.
        sub_sequence_number: u64,
    },
    /// The shard was read to its end.
    ShardEnd,
}

/// A user record as the processor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// Sequence number of the Kinesis record.
    pub sequence_number: String,
    /// Index inside an aggregated record (0 otherwise).
    pub sub_sequence_number: u64,
    /// True when the record came out of a KPL aggregate.
    pub aggregated: bool,
    /// Partition key.
    pub partition_key: String,
    /// Payload.
    pub data: Vec<u8>,
    /// When the Kinesis record arrived, ms since the epoch.
    pub approximate_arrival_ms: i64,
}

/// One batch for a processor.
#[derive(Debug)]
pub struct ProcessRecordsInput<'a> {
    /// The records, in shard order.
    pub records: Vec<ConsumedRecord>,
    /// How far behind the tip of the shard the batch is.
    pub millis_behind_latest: i64,
    /// Checkpoints this shard's progress.
    pub checkpointer: &'a Checkpointer,
}

/// What an application implements to process one shard (the KCL's `ShardRecordProcessor`).
/// One instance serves one shard lease at a time.
pub trait ShardRecordProcessor: Send + 'static {
    /// The worker took the shard; processing resumes at `position`.
    fn initialize(&mut self, shard_id: &str, position: &Position) -> impl Future<Output = ()> + Send;

    /// A batch of records.
    fn process_records(&mut self, input: ProcessRecordsInput<'_>) -> impl Future<Output = ()> + Send;

    /// The lease went to another worker; do not checkpoint (it would be refused).
    fn lease_lost(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// The shard was read to its end; checkpoint with
    /// [`Checkpointer::checkpoint_shard_end`] so its children can start.
    fn shard_ended(&mut self, checkpointer: &Checkpointer) -> impl Future<Output = ()> + Send;

    /// The worker is shutting down; checkpoint what was processed.
    fn shutdown_requested(&mut self, checkpointer: &Checkpointer) -> impl Future<Output = ()> + Send {
        let _ = checkpointer;
        async {}
    }
}

/// Makes processors, one per shard a worker takes.
pub trait ProcessorFactory: Send + Sync + 'static {
    /// The processor type.
    type Processor: ShardRecordProcessor;
    /// A fresh processor.
    fn create(&self) -> Self::Processor;
}

impl<F, P> ProcessorFactory for F
where
    F: Fn() -> P + Send + Sync + 'static,
    P: ShardRecordProcessor,
{
    type Processor = P;
    fn create(&self) -> P {
        self()
    }
}

/// A worker's settings; the defaults follow the KCL's.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Application name: workers with the same name share the stream's shards.
    pub application: String,
    /// Stream to consume.
    pub stream: String,
    /// This worker's identity in the lease table.
    pub worker_id: String,
    /// Where shards without a checkpoint start.
    pub initial_position: InitialPosition,
    /// A lease not renewed for this long is taken by another worker.
    pub failover_time: Duration,
    /// Most leases one worker holds.
    pub max_leases: usize,
    /// How records are fetched.
    pub retrieval: Retrieval,
}

impl WorkerConfig {
    /// Defaults: TRIM_HORIZON, 10 s failover, polling.
    pub fn new(application: impl Into<String>, stream: impl Into<String>, worker_id: impl Into<String>) -> Self {
        Self {
            application: application.into(),
            stream: stream.into(),
            worker_id: worker_id.into(),
            initial_position: InitialPosition::TrimHorizon,
            failover_time: Duration::from_secs(10),
            max_leases: usize::MAX,
            retrieval: Retrieval::Polling { idle: Duration::from_millis(200), max_records: 10_000 },
        }
    }

    /// How often leases are renewed and rebalanced: a third of the failover time.
    pub fn lease_interval(&self) -> Duration {
        (self.failover_time / 3).max(Duration::from_millis(10))
    }
}
