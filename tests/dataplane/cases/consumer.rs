//! The KCL-like worker against a real server: leases balance across workers, an aborted
//! worker's shards are taken over within the failover time with every acknowledged record
//! processed at least once (duplicates only past last checkpoints), children wait for their
//! parents' SHARD_END, and a zombie's checkpoint is refused.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use shardline::consumer::{
    CheckpointError, Checkpointer, Position, ProcessRecordsInput, Retrieval, ShardRecordProcessor, Worker, WorkerConfig,
};
use shardline_proto::sequence::SequenceNumber;
use shardline_proto::v1 as pb;
use shardline_tests::{create_active_stream, Server};
use tokio_util::sync::CancellationToken;

/// Everything the processors of a test saw.
#[derive(Debug, Default)]
struct Journal {
    /// (worker#tenure, shard, sequence number, data) per processed record.
    processed: Vec<(String, String, SequenceNumber, String)>,
    /// Highest checkpointed sequence number per (worker#tenure, shard).
    checkpointed: HashMap<(String, String), SequenceNumber>,
    /// When each shard's first record was processed, and when it ended.
    first_record: HashMap<String, Instant>,
    ended: HashMap<String, Instant>,
    lost: Vec<(String, String)>,
}

/// One processor instance per lease tenure: a record is covered only by a checkpoint made in
/// the same tenure that processed it.
static TENURES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

struct Recorder {
    worker: String,
    shard: String,
    journal: Arc<Mutex<Journal>>,
}

impl Recorder {
    fn journal(&self) -> std::sync::MutexGuard<'_, Journal> {
        self.journal.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ShardRecordProcessor for Recorder {
    async fn initialize(&mut self, shard_id: &str, _position: &Position) {
        self.shard = shard_id.to_owned();
    }

    async fn process_records(&mut self, input: ProcessRecordsInput<'_>) {
        let last = input.records.last().map(|r| shardline_tests::seq(&r.sequence_number));
        {
            let mut journal = self.journal();
            journal.first_record.entry(self.shard.clone()).or_insert_with(Instant::now);
            for r in &input.records {
                let seq = shardline_tests::seq(&r.sequence_number);
                let data = String::from_utf8_lossy(&r.data).into_owned();
                journal.processed.push((self.worker.clone(), self.shard.clone(), seq, data));
            }
        }
        if input.checkpointer.checkpoint().await.is_ok() {
            if let Some(last) = last {
                let mut journal = self.journal();
                let key = (self.worker.clone(), self.shard.clone());
                journal.checkpointed.entry(key).and_modify(|at| *at = (*at).max(last)).or_insert(last);
            }
        }
    }

    async fn lease_lost(&mut self) {
        let (worker, shard) = (self.worker.clone(), self.shard.clone());
        self.journal().lost.push((worker, shard));
    }

    async fn shard_ended(&mut self, checkpointer: &Checkpointer) {
        if checkpointer.checkpoint_shard_end().await.is_ok() {
            let shard = self.shard.clone();
            self.journal().ended.insert(shard, Instant::now());
        }
    }

    async fn shutdown_requested(&mut self, checkpointer: &Checkpointer) {
        let _ = checkpointer.checkpoint().await;
    }
}

fn config(worker: &str, stream: &str) -> WorkerConfig {
    let mut config = WorkerConfig::new("app", stream, worker);
    config.failover_time = Duration::from_millis(1500);
    config.retrieval = Retrieval::Polling { idle: Duration::from_millis(50), max_records: 1000 };
    config
}

struct Running {
    status: Arc<Mutex<shardline::consumer::WorkerStatus>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn start_worker(
    endpoint: &str,
    id: &str,
    stream: &str,
    journal: &Arc<Mutex<Journal>>,
) -> anyhow::Result<Running> {
    let (journal, worker_id) = (journal.clone(), id.to_owned());
    let factory = move || {
        let tenure = TENURES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Recorder { worker: format!("{worker_id}#{tenure}"), shard: String::new(), journal: journal.clone() }
    };
    let worker = Worker::connect(endpoint, config(id, stream), factory).await?;
    let status = worker.status();
    let stop = CancellationToken::new();
    let task = tokio::spawn(worker.run(stop.clone()));
    Ok(Running { status, stop, task })
}

fn held(worker: &Running) -> usize {
    worker.status.lock().unwrap_or_else(|p| p.into_inner()).shards.len()
}

async fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) -> anyhow::Result<Duration> {
    let started = Instant::now();
    while !check() {
        anyhow::ensure!(started.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(started.elapsed())
}

/// True once every acknowledged record has been processed at least once.
fn all_processed(journal: &Mutex<Journal>, acked: &[String]) -> bool {
    let journal = journal.lock().unwrap_or_else(|p| p.into_inner());
    let seen: HashSet<&String> = journal.processed.iter().map(|(_, _, _, d)| d).collect();
    acked.iter().all(|d| seen.contains(d))
}

/// Waits until every acknowledged record was processed, then shuts the workers down.
async fn drain(journal: &Mutex<Journal>, acked: &[String], workers: Vec<Running>) -> anyhow::Result<()> {
    wait_for("every acknowledged record processed", Duration::from_secs(20), || all_processed(journal, acked)).await?;
    for worker in &workers {
        worker.stop.cancel();
    }
    for worker in workers {
        worker.task.await?;
    }
    Ok(())
}

/// Puts batches until `stop`; returns the acknowledged data.
fn producer(
    client: aws_sdk_kinesis::Client,
    stream: &'static str,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let mut acked = Vec::new();
        let mut n = 0;
        while !stop.is_cancelled() {
            let data: Vec<String> = (0..20).map(|i| format!("r{n}-{i}")).collect();
            n += 1;
            let entries = data
                .iter()
                .map(|d| PutRecordsRequestEntry::builder().partition_key(d).data(Blob::new(d.as_bytes())).build())
                .collect::<Result<Vec<_>, _>>();
            let Ok(entries) = entries else { break };
            if let Ok(out) = client.put_records().stream_name(stream).set_records(Some(entries)).send().await {
                acked.extend(
                    data.into_iter().zip(out.records()).filter(|(_, r)| r.error_code().is_none()).map(|(d, _)| d),
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        acked
    })
}

/// A server, a stream, an empty journal and a producer running until `stop_producing`.
struct Scene {
    _dir: tempfile::TempDir,
    server: Server,
    client: aws_sdk_kinesis::Client,
    journal: Arc<Mutex<Journal>>,
    stop_producing: CancellationToken,
    produced: tokio::task::JoinHandle<Vec<String>>,
}

async fn scene(stream: &'static str, shards: i32) -> anyhow::Result<Scene> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let client = server.client();
    create_active_stream(&client, stream, shards).await?;
    let stop_producing = CancellationToken::new();
    let produced = producer(client.clone(), stream, stop_producing.clone());
    Ok(Scene { _dir: dir, server, client, journal: Arc::default(), stop_producing, produced })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_balance_fail_over_and_process_everything() -> anyhow::Result<()> {
    let Scene { _dir, server, journal, stop_producing, produced, .. } = scene("work", 8).await?;

    let mut workers = Vec::new();
    for id in ["w1", "w2", "w3"] {
        workers.push(start_worker(&server.endpoint, id, "work", &journal).await?);
    }
    wait_for("3/3/2", Duration::from_secs(20), || {
        let mut counts: Vec<usize> = workers.iter().map(held).collect();
        counts.sort_unstable();
        counts == vec![2, 3, 3]
    })
    .await?;

    // Abort w1 without a shutdown: no evictions, no last checkpoints.
    let aborted = workers.remove(0);
    let aborted_shards = held(&aborted);
    aborted.task.abort();
    let took = wait_for("takeover", Duration::from_secs(15), || workers.iter().map(held).sum::<usize>() == 8).await?;
    assert!(took < Duration::from_millis(1500 + 2000), "{aborted_shards} shards taken over after {took:?}");

    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_producing.cancel();
    let acked = produced.await?;
    drain(&journal, &acked, workers).await?;

    let journal = journal.lock().unwrap_or_else(|p| p.into_inner());
    let mut copies: BTreeMap<&String, usize> = BTreeMap::new();
    for (_, _, _, data) in &journal.processed {
        *copies.entry(data).or_default() += 1;
    }
    let duplicates: usize = copies.values().map(|n| n - 1).sum();
    // A record may be delivered again only if the tenure that processed it had not checkpointed
    // past it.
    let uncovered = journal
        .processed
        .iter()
        .filter(|(worker, shard, seq, _)| {
            journal.checkpointed.get(&(worker.clone(), shard.clone())).is_none_or(|c| seq > c)
        })
        .count();
    assert!(duplicates <= uncovered, "{duplicates} duplicates, but only {uncovered} records were past a checkpoint");
    assert!(acked.len() > 100, "the producer kept going ({} records)", acked.len());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_start_only_after_their_parents_end() -> anyhow::Result<()> {
    let Scene { _dir, server, client, journal, stop_producing, produced } = scene("lineage", 2).await?;
    let workers = vec![
        start_worker(&server.endpoint, "a", "lineage", &journal).await?,
        start_worker(&server.endpoint, "b", "lineage", &journal).await?,
    ];
    tokio::time::sleep(Duration::from_millis(800)).await;
    client
        .split_shard()
        .stream_name("lineage")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key((1u128 << 126).to_string())
        .send()
        .await?;
    shardline_tests::wait_for_status(&client, "lineage", aws_sdk_kinesis::types::StreamStatus::Active).await?;
    tokio::time::sleep(Duration::from_millis(800)).await;
    // Merge the split's right child with shard 1.
    client
        .merge_shards()
        .stream_name("lineage")
        .shard_to_merge("shardId-000000000003")
        .adjacent_shard_to_merge("shardId-000000000001")
        .send()
        .await?;
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop_producing.cancel();
    let acked = produced.await?;
    drain(&journal, &acked, workers).await?;
    let journal = journal.lock().unwrap_or_else(|p| p.into_inner());
    let parents: [(&str, &[&str]); 3] = [
        ("shardId-000000000002", &["shardId-000000000000"]),
        ("shardId-000000000003", &["shardId-000000000000"]),
        ("shardId-000000000004", &["shardId-000000000003", "shardId-000000000001"]),
    ];
    for (child, its_parents) in parents {
        let Some(first) = journal.first_record.get(child) else { continue };
        for parent in its_parents {
            let ended =
                journal.ended.get(*parent).unwrap_or_else(|| panic!("{parent} never ended before {child} started"));
            assert!(ended <= first, "{child} processed a record before {parent} reached SHARD_END");
        }
    }
    assert!(journal.first_record.contains_key("shardId-000000000004"), "the merged child was processed");
    Ok(())
}

/// A processor that waits for the test before checkpointing its first batch.
struct Stalled {
    gate: Arc<tokio::sync::Notify>,
    entered: Arc<tokio::sync::Notify>,
    outcome: Arc<Mutex<Option<String>>>,
    lost: Arc<Mutex<bool>>,
}

impl ShardRecordProcessor for Stalled {
    async fn initialize(&mut self, _shard_id: &str, _position: &Position) {}

    async fn process_records(&mut self, input: ProcessRecordsInput<'_>) {
        if self.outcome.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
            return;
        }
        self.entered.notify_one();
        self.gate.notified().await;
        let result = input.checkpointer.checkpoint().await;
        let text = match result {
            Ok(()) => "stored".to_owned(),
            Err(CheckpointError::LeaseLost { .. }) => "lease lost".to_owned(),
            Err(other) => other.to_string(),
        };
        *self.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
    }

    async fn lease_lost(&mut self) {
        *self.lost.lock().unwrap_or_else(|p| p.into_inner()) = true;
    }

    async fn shard_ended(&mut self, checkpointer: &Checkpointer) {
        let _ = checkpointer.checkpoint_shard_end().await;
    }
}

#[tokio::test]
async fn a_zombie_checkpoint_is_refused_and_the_shard_stops() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let client = server.client();
    create_active_stream(&client, "zombie", 1).await?;
    client.put_record().stream_name("zombie").partition_key("k").data(Blob::new("x")).send().await?;
    let (gate, entered) = (Arc::new(tokio::sync::Notify::new()), Arc::new(tokio::sync::Notify::new()));
    let outcome = Arc::new(Mutex::new(None));
    let lost = Arc::new(Mutex::new(false));
    let factory = {
        let (gate, entered, outcome, lost) = (gate.clone(), entered.clone(), outcome.clone(), lost.clone());
        move || Stalled { gate: gate.clone(), entered: entered.clone(), outcome: outcome.clone(), lost: lost.clone() }
    };
    let mut config = config("slow", "zombie");
    config.failover_time = Duration::from_secs(30);
    let worker = Worker::connect(&server.endpoint, config, factory).await?;
    let stop = CancellationToken::new();
    let task = tokio::spawn(worker.run(stop.clone()));
    tokio::time::timeout(Duration::from_secs(10), entered.notified()).await?;

    // Another worker takes the lease while "slow" is stuck in process_records.
    let mut leases = shardline_proto::v1::leases_client::LeasesClient::connect(server.endpoint.clone()).await?;
    let list =
        pb::ListLeasesRequest { application: "app".into(), stream_name: "zombie".into(), initial_position: None };
    let current = leases.list_leases(list.clone()).await?.into_inner().leases.remove(0);
    assert_eq!(current.lease_owner.as_deref(), Some("slow"));
    let take = pb::UpdateLeaseRequest {
        application: "app".into(),
        stream_name: "zombie".into(),
        shard_id: current.lease_key.clone(),
        expected_counter: current.lease_counter,
        owner: "thief".into(),
    };
    leases.take_lease(take).await?;

    gate.notify_one();
    wait_for("the zombie's checkpoint", Duration::from_secs(10), || {
        outcome.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    })
    .await?;
    assert_eq!(outcome.lock().unwrap_or_else(|p| p.into_inner()).as_deref(), Some("lease lost"));
    wait_for("lease_lost", Duration::from_secs(10), || *lost.lock().unwrap_or_else(|p| p.into_inner())).await?;
    let after = leases.list_leases(list).await?.into_inner().leases.remove(0);
    assert_eq!(after.lease_owner.as_deref(), Some("thief"), "the zombie did not overwrite the new owner");
    assert_eq!(
        after.checkpoint.map(|c| c.kind),
        Some(i32::from(pb::checkpoint::Kind::TrimHorizon)),
        "no zombie checkpoint"
    );
    stop.cancel();
    task.await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enhanced_fan_out_worker_reads_through_subscribe_to_shard_across_a_split() -> anyhow::Result<()> {
    let Scene { _dir, server, client, journal, stop_producing, produced } = scene("efo", 1).await?;
    let factory = {
        let journal = journal.clone();
        move || Recorder { worker: "efo".into(), shard: String::new(), journal: journal.clone() }
    };
    let mut config = config("efo", "efo");
    config.retrieval = Retrieval::EnhancedFanOut;
    let worker = Worker::connect(&server.endpoint, config, factory).await?;
    let stop = CancellationToken::new();
    let task = tokio::spawn(worker.run(stop.clone()));
    tokio::time::sleep(Duration::from_millis(600)).await;
    client
        .split_shard()
        .stream_name("efo")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key((1u128 << 127).to_string())
        .send()
        .await?;
    tokio::time::sleep(Duration::from_millis(600)).await;
    stop_producing.cancel();
    let acked = produced.await?;
    let waited =
        wait_for("every record through SubscribeToShard", Duration::from_secs(20), || all_processed(&journal, &acked))
            .await;
    if waited.is_err() {
        let journal = journal.lock().unwrap_or_else(|p| p.into_inner());
        let mut per_shard: BTreeMap<&String, usize> = BTreeMap::new();
        for (_, shard, _, _) in &journal.processed {
            *per_shard.entry(shard).or_default() += 1;
        }
        panic!(
            "acked {}, processed per shard {per_shard:?}, ended {:?}, lost {:?}",
            acked.len(),
            journal.ended.keys(),
            journal.lost
        );
    }
    stop.cancel();
    task.await?;
    let consumers = client
        .list_stream_consumers()
        .stream_arn(format!("arn:aws:kinesis:{}:{}:stream/efo", shardline_tests::REGION, shardline_tests::ACCOUNT))
        .send()
        .await?;
    assert_eq!(consumers.consumers().iter().map(|c| c.consumer_name()).collect::<Vec<_>>(), vec!["app"]);
    let journal = journal.lock().unwrap_or_else(|p| p.into_inner());
    assert!(journal.lost.is_empty(), "a lone worker never loses a lease: {:?}", journal.lost);
    let parent_end = journal.ended.get("shardId-000000000000").copied().expect("the parent reached SHARD_END");
    for child in ["shardId-000000000001", "shardId-000000000002"] {
        if let Some(first) = journal.first_record.get(child) {
            assert!(parent_end <= *first, "{child} started before its parent ended");
        }
    }
    Ok(())
}
