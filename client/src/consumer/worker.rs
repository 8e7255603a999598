//! The worker: a lease loop (list, renew, take, steal) and one task per held shard.

use std::collections::HashMap;
use std::sync::Arc;

use shardline_proto::v1 as pb;
use shardline_proto::v1::leases_client::LeasesClient;
use shardline_proto::v1::records_client::RecordsClient;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::checkpoint::Checkpointer;
use super::lease::{is_conflict, plan_takes, HeldLease, Observations};
use super::shard_consumer::{Ending, ShardConsumer};
use super::{InitialPosition, Position, ProcessorFactory, WorkerConfig};

/// Why a worker stopped.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The endpoint could not be reached.
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// Endpoint.
        endpoint: String,
        /// Cause.
        #[source]
        source: tonic::transport::Error,
    },
    /// The endpoint is not a valid URI.
    #[error("invalid endpoint {0}")]
    Endpoint(String),
    /// The enhanced fan-out consumer could not be registered.
    #[error("cannot register the stream consumer: {0}")]
    Consumer(String),
}

/// Registers (or finds) the stream consumer named after the application and waits until it is
/// ACTIVE; returns a Kinesis client and its ARN.
async fn register_consumer(
    endpoint: &str,
    config: &WorkerConfig,
) -> Result<(aws_sdk_kinesis::Client, String), WorkerError> {
    use aws_sdk_kinesis::types::ConsumerStatus;
    let fail = |e: String| WorkerError::Consumer(e);
    let client = crate::kinesis::client(endpoint, "us-east-1");
    let summary = client.describe_stream_summary().stream_name(&config.stream).send().await;
    let summary = summary.map_err(|e| fail(aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string()))?;
    let stream_arn = summary.stream_description_summary().map(|s| s.stream_arn().to_owned()).unwrap_or_default();
    let registered =
        client.register_stream_consumer().stream_arn(&stream_arn).consumer_name(&config.application).send().await;
    if let Err(err) = &registered {
        if aws_sdk_kinesis::error::ProvideErrorMetadata::code(err) != Some("ResourceInUseException") {
            return Err(fail(aws_sdk_kinesis::error::DisplayErrorContext(err).to_string()));
        }
    }
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let described = client
            .describe_stream_consumer()
            .stream_arn(&stream_arn)
            .consumer_name(&config.application)
            .send()
            .await
            .map_err(|e| fail(aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string()))?;
        if let Some(consumer) = described.consumer_description() {
            if consumer.consumer_status() == &ConsumerStatus::Active {
                return Ok((client, consumer.consumer_arn().to_owned()));
            }
        }
        if Instant::now() > deadline {
            return Err(fail("the consumer did not become ACTIVE within 60 s".into()));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// What a worker holds right now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerStatus {
    /// Shards whose leases this worker holds.
    pub shards: Vec<String>,
}

struct Held {
    /// When the lease was last renewed (or taken).
    renewed: Instant,
    lease: Arc<HeldLease>,
    lost: CancellationToken,
    stop: CancellationToken,
    task: JoinHandle<Ending>,
}

/// A consumer worker of one application on one stream.
pub struct Worker<F: ProcessorFactory> {
    config: WorkerConfig,
    /// Kinesis client and the application's stream consumer ARN, for enhanced fan-out.
    fan_out: Option<(aws_sdk_kinesis::Client, String)>,
    leases: LeasesClient<Channel>,
    records: RecordsClient<Channel>,
    factory: Arc<F>,
    status: Arc<std::sync::Mutex<WorkerStatus>>,
}

impl<F: ProcessorFactory> std::fmt::Debug for Worker<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("config", &self.config).finish()
    }
}

fn checkpoint_message(position: InitialPosition) -> pb::Checkpoint {
    use pb::checkpoint::Kind;
    match position {
        InitialPosition::TrimHorizon => pb::Checkpoint { kind: Kind::TrimHorizon.into(), ..Default::default() },
        InitialPosition::Latest => pb::Checkpoint { kind: Kind::Latest.into(), ..Default::default() },
        InitialPosition::AtTimestamp(ms) => pb::Checkpoint {
            kind: Kind::AtTimestamp.into(),
            timestamp_ms: i64::try_from(ms).unwrap_or(i64::MAX),
            ..Default::default()
        },
    }
}

fn position(lease: &pb::Lease) -> Position {
    use pb::checkpoint::Kind;
    let Some(checkpoint) = lease.checkpoint.as_ref() else { return Position::TrimHorizon };
    match Kind::try_from(checkpoint.kind) {
        Ok(Kind::Latest) => Position::Latest,
        Ok(Kind::AtTimestamp) => Position::AtTimestamp(u64::try_from(checkpoint.timestamp_ms).unwrap_or(0)),
        Ok(Kind::SequenceNumber) => Position::After {
            sequence_number: checkpoint.sequence_number.clone(),
            sub_sequence_number: checkpoint.sub_sequence_number,
        },
        Ok(Kind::ShardEnd) => Position::ShardEnd,
        Ok(Kind::TrimHorizon | Kind::Unspecified) | Err(_) => Position::TrimHorizon,
    }
}

impl<F: ProcessorFactory> Worker<F> {
    /// A worker talking to the shard-server(s) at `endpoint` (e.g. `http://127.0.0.1:4567`).
    pub async fn connect(endpoint: &str, config: WorkerConfig, factory: F) -> Result<Self, WorkerError> {
        // Deadlines on every lease and record call: a server that stops answering costs a
        // retry, never a worker stuck holding its leases.
        let channel = Channel::from_shared(endpoint.to_owned())
            .map_err(|_| WorkerError::Endpoint(endpoint.to_owned()))?
            .connect_timeout(std::time::Duration::from_secs(3))
            .http2_keep_alive_interval(std::time::Duration::from_secs(10))
            .keep_alive_timeout(std::time::Duration::from_secs(10))
            .keep_alive_while_idle(true)
            .connect()
            .await
            .map_err(|source| WorkerError::Connect { endpoint: endpoint.to_owned(), source })?;
        let fan_out = match config.retrieval {
            super::Retrieval::EnhancedFanOut => Some(register_consumer(endpoint, &config).await?),
            _ => None,
        };
        Ok(Self {
            config,
            fan_out,
            leases: LeasesClient::new(channel.clone()),
            records: RecordsClient::new(channel),
            factory: Arc::new(factory),
            status: Arc::default(),
        })
    }

    /// A live view of the shards this worker holds.
    pub fn status(&self) -> Arc<std::sync::Mutex<WorkerStatus>> {
        self.status.clone()
    }

    /// Runs until `shutdown` is cancelled, then lets each processor checkpoint and gives every
    /// lease up. Dropping the future instead (an abort) leaves the leases to expire.
    pub async fn run(self, shutdown: CancellationToken) {
        // Dropping the run future (an abort, a crash) aborts the shard tasks with it.
        let mut held = HeldShards::default();
        let mut observations = Observations::default();
        let mut ticker = tokio::time::interval(self.config.lease_interval());
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            self.reap(&mut held);
            self.renew(&mut held).await;
            let listed = self
                .leases
                .clone()
                .list_leases(pb::ListLeasesRequest {
                    application: self.config.application.clone(),
                    stream_name: self.config.stream.clone(),
                    initial_position: Some(checkpoint_message(self.config.initial_position)),
                })
                .await;
            let leases = match listed {
                Ok(response) => response.into_inner().leases,
                Err(status) => {
                    tracing::warn!(cause = %status, "ListLeases failed");
                    continue;
                }
            };
            let expired = observations.expired(&leases, Instant::now(), self.config.failover_time);
            let takes = plan_takes(&leases, &expired, &self.config.worker_id, held.len(), self.config.max_leases);
            for lease in takes {
                if held.contains_key(&lease.lease_key) {
                    continue;
                }
                self.take(lease, &mut held).await;
            }
            self.publish(&held);
        }
        for entry in held.values() {
            entry.stop.cancel();
        }
        for (_, entry) in held.drain() {
            let ending = entry.task.await.unwrap_or(Ending::Shutdown);
            if ending != Ending::LeaseLost {
                let counter = *entry.lease.counter.lock().await;
                let _ = self.leases.clone().evict_lease(entry.lease.request(counter)).await;
            }
        }
        self.publish(&held);
    }

    fn publish(&self, held: &HashMap<String, Held>) {
        let mut shards: Vec<String> = held.keys().cloned().collect();
        shards.sort();
        self.status.lock().unwrap_or_else(|p| p.into_inner()).shards = shards;
    }

    /// Forgets shards whose task ended: a finished shard's lease is given up so it is never
    /// taken again (its checkpoint is SHARD_END), a lost one is already someone else's.
    fn reap(&self, held: &mut HashMap<String, Held>) {
        let done: Vec<String> = held.iter().filter(|(_, h)| h.task.is_finished()).map(|(k, _)| k.clone()).collect();
        for key in done {
            if let Some(entry) = held.remove(&key) {
                let leases = self.leases.clone();
                tokio::spawn(async move {
                    if let Ok(Ending::ShardEnd) = entry.task.await {
                        let counter = *entry.lease.counter.lock().await;
                        let _ = leases.clone().evict_lease(entry.lease.request(counter)).await;
                    }
                });
            }
        }
    }

    async fn renew(&self, held: &mut HashMap<String, Held>) {
        let mut lost = Vec::new();
        let deadline = self.config.lease_interval();
        for (key, entry) in held.iter_mut() {
            let mut counter = entry.lease.counter.lock().await;
            let mut client = self.leases.clone();
            match tokio::time::timeout(deadline, client.renew_lease(entry.lease.request(*counter))).await {
                Ok(Ok(lease)) => {
                    *counter = lease.into_inner().lease_counter;
                    entry.renewed = Instant::now();
                }
                Ok(Err(status)) if is_conflict(&status) => {
                    tracing::info!(shard = %key, "lease lost to another worker");
                    entry.lost.cancel();
                    lost.push(key.clone());
                }
                Ok(Err(status)) => tracing::warn!(shard = %key, cause = %status, "lease renewal failed"),
                Err(_) => tracing::warn!(shard = %key, "lease renewal timed out"),
            }
            // Unrenewed for the failover time, the lease is another worker's to take: stop
            // processing the shard rather than process it twice.
            if !entry.lost.is_cancelled() && entry.renewed.elapsed() > self.config.failover_time {
                tracing::warn!(shard = %key, "lease not renewed within the failover time: giving it up");
                entry.lost.cancel();
                lost.push(key.clone());
            }
        }
        for key in lost {
            held.remove(&key);
        }
    }

    async fn take(&self, lease: pb::Lease, held: &mut HashMap<String, Held>) {
        let request = pb::UpdateLeaseRequest {
            application: self.config.application.clone(),
            stream_name: self.config.stream.clone(),
            shard_id: lease.lease_key.clone(),
            expected_counter: lease.lease_counter,
            owner: self.config.worker_id.clone(),
        };
        let taken = match self.leases.clone().take_lease(request).await {
            Ok(taken) => taken.into_inner(),
            Err(status) => {
                if !is_conflict(&status) {
                    tracing::warn!(shard = %lease.lease_key, cause = %status, "TakeLease failed");
                }
                return;
            }
        };
        tracing::info!(shard = %taken.lease_key, worker = %self.config.worker_id, "lease taken");
        let held_lease = Arc::new(HeldLease {
            application: self.config.application.clone(),
            stream: self.config.stream.clone(),
            shard_id: taken.lease_key.clone(),
            owner: self.config.worker_id.clone(),
            counter: tokio::sync::Mutex::new(taken.lease_counter),
        });
        let lost = CancellationToken::new();
        let stop = CancellationToken::new();
        let consumer = ShardConsumer {
            processor: self.factory.create(),
            records: self.records.clone(),
            stream: self.config.stream.clone(),
            shard_id: taken.lease_key.clone(),
            position: position(&taken),
            checkpointer: Checkpointer::new(self.leases.clone(), held_lease.clone(), lost.clone()),
            retrieval: self.config.retrieval,
            lost: lost.clone(),
            stop: stop.clone(),
            fan_out: self.fan_out.clone(),
            application: self.config.application.clone(),
        };
        let task = tokio::spawn(consumer.run());
        held.insert(taken.lease_key, Held { renewed: Instant::now(), lease: held_lease, lost, stop, task });
    }
}

/// The shards a worker holds; whatever is still held when it drops has its task aborted.
#[derive(Default)]
struct HeldShards(HashMap<String, Held>);

impl std::ops::Deref for HeldShards {
    type Target = HashMap<String, Held>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for HeldShards {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for HeldShards {
    fn drop(&mut self) {
        for held in self.0.values() {
            held.task.abort();
        }
    }
}
