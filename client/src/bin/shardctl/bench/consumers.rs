//! The consumer phase of `shardctl bench`: put→processed latency through KCL-like workers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::bail;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use shardline::consumer::{
    Checkpointer, InitialPosition, Position, ProcessRecordsInput, Retrieval, ShardRecordProcessor, Worker, WorkerConfig,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{histogram, micros, payload, put_one, BenchArgs};

struct Timer {
    origin: std::time::Instant,
    latency: Arc<Mutex<Histogram<u64>>>,
    processed: Arc<AtomicU64>,
}

impl ShardRecordProcessor for Timer {
    async fn initialize(&mut self, _shard_id: &str, _position: &Position) {}

    async fn process_records(&mut self, input: ProcessRecordsInput<'_>) {
        let now = micros(self.origin.elapsed());
        {
            let mut latency = self.latency.lock().unwrap_or_else(|p| p.into_inner());
            for record in &input.records {
                if let Some(stamp) = record.data.get(..8) {
                    let sent = u64::from_be_bytes(stamp.try_into().unwrap_or_default());
                    let _ = latency.record(now.saturating_sub(sent).max(1));
                }
            }
        }
        self.processed.fetch_add(input.records.len() as u64, Ordering::Relaxed);
        let _ = input.checkpointer.checkpoint().await;
    }

    async fn shard_ended(&mut self, checkpointer: &Checkpointer) {
        let _ = checkpointer.checkpoint_shard_end().await;
    }
}

/// Starts `workers` workers (push retrieval), waits until they hold every shard, puts the
/// records one by one with their send time inside, and measures when each is processed.
pub async fn latency(
    client: &aws_sdk_kinesis::Client,
    args: &BenchArgs,
    workers: usize,
    shards: usize,
) -> anyhow::Result<(u64, Histogram<u64>)> {
    let origin = std::time::Instant::now();
    let latency = Arc::new(Mutex::new(histogram()?));
    let processed = Arc::new(AtomicU64::new(0));
    let application = format!("shardctl-bench-{:08x}", rand::random::<u32>());
    let stop = CancellationToken::new();
    let mut statuses = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..workers {
        let mut config = WorkerConfig::new(&application, &args.stream, format!("bench-worker-{i}"));
        config.initial_position = InitialPosition::Latest;
        config.retrieval = Retrieval::Push;
        config.failover_time = Duration::from_secs(3);
        let (latency, processed) = (latency.clone(), processed.clone());
        let factory = move || Timer { origin, latency: latency.clone(), processed: processed.clone() };
        let worker = Worker::connect(&args.endpoint, config, factory).await?;
        statuses.push(worker.status());
        tasks.push(tokio::spawn(worker.run(stop.clone())));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Balanced: every shard held, every worker with its share, so no lease moves mid-run.
        let counts: Vec<usize> =
            statuses.iter().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).shards.len()).collect();
        let held: usize = counts.iter().sum();
        if held >= shards && counts.iter().all(|&n| n >= shards / workers) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the workers took only {held} of {shards} shards within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let every shard's subscription open before the clock starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let expected = args.consumer_records as u64;
    let bar = ProgressBar::new(expected);
    bar.set_style(ProgressStyle::with_template("consumers {bar:30} {pos}/{len}")?);
    let mut data = payload(args.record_size.max(8));
    for _ in 0..expected {
        data[..8].copy_from_slice(&micros(origin.elapsed()).to_be_bytes());
        put_one(client, &args.stream, &data).await?;
        bar.inc(1);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while processed.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bar.finish_and_clear();
    stop.cancel();
    for task in tasks {
        task.await?;
    }
    // The bench's application leaves no leases behind.
    let mut leases = shardline_proto::v1::leases_client::LeasesClient::connect(args.endpoint.clone()).await?;
    leases.delete_application(shardline_proto::v1::DeleteApplicationRequest { application }).await?;
    let got = processed.load(Ordering::Relaxed);
    if got < expected {
        bail!("the workers processed {got} of {expected} records");
    }
    let histogram = latency.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok((expected, histogram))
}
