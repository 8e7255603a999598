//! `shardctl bench`: a Kinesis benchmark. It speaks only the Kinesis API (through
//! `aws-sdk-kinesis`), so the same command measures Shardline or any other Kinesis-compatible
//! endpoint. Phases: a sequential single-record PutRecord latency run, PutRecords ingest from
//! concurrent producers, then a read-back of everything written with GetRecords, checking that
//! the count read equals the count acknowledged.
//!
//! - `--shards N` (up to 10,000) spreads the shards over as many streams of at most
//!   `--shards-per-stream` as needed (`NAME`, `NAME-1`, …), created and deleted by the bench;
//!   producers go round the streams, random partition keys spread each call over its shards.
//! - `--rate MB/s` caps the ingest phase, for latency at a given load (e.g. half of the peak a
//!   first run measured).
//! - `--data-dir PATH`, on the server's machine, reads `/proc/diskstats` for the device holding
//!   PATH before and after the ingest phase and prints the device bytes written per byte
//!   acknowledged (write amplification).
//!
//! Side by side: `make kinesalite` runs kinesalite on 127.0.0.1:4568 and kinesis-mock on
//! 127.0.0.1:4569; run the same command with `--endpoint http://127.0.0.1:4568` and `:4569`.

use crate::output::out;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{
    ConsumerStatus, PutRecordsRequestEntry, ShardIteratorType, StartingPosition, StreamStatus,
    SubscribeToShardEventStream,
};
use clap::Args;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, RngCore};
use serde::Serialize;

mod consumers;
mod disk;

/// Characters of the random partition keys.
const PARTITION_KEY_LEN: usize = 32;
/// GetRecords readers at once in the read-back phase.
const READERS: usize = 64;

/// Options of `shardctl bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Kinesis endpoint to measure.
    #[arg(long, env = "SHARDLINE_ENDPOINT", default_value = "http://127.0.0.1:4567")]
    pub(crate) endpoint: String,
    /// Stream to use; created (and deleted afterwards) when it does not exist.
    #[arg(long, default_value = "shardctl-bench")]
    pub(crate) stream: String,
    /// Shards in all (up to 10,000), over as many streams as `--shards-per-stream` needs.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    shards: u32,
    /// Most shards per stream the bench creates.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    shards_per_stream: u32,
    /// Cap on the ingest rate in MB/s of record data (0: as fast as the server takes it).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// The server's data directory, when it is on this machine: report the device's bytes
    /// written per byte acknowledged during the ingest phase (from /proc/diskstats).
    #[arg(long, env = "SHARDLINE_DATA_DIR")]
    data_dir: Option<std::path::PathBuf>,
    /// Bytes of data per record.
    #[arg(long, default_value_t = 1024)]
    pub(crate) record_size: usize,
    /// Length of the ingest phase, e.g. `10s`.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Concurrent PutRecords producers.
    #[arg(long, default_value_t = 8)]
    producers: usize,
    /// Records per PutRecords call (1..500).
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Sequential single-record PutRecord calls in the latency phase.
    #[arg(long, default_value_t = 2000)]
    single_puts: usize,
    /// Also measure put→receive latency through enhanced fan-out (SubscribeToShard).
    #[arg(long)]
    efo: bool,
    /// Records put one by one in the enhanced fan-out phase.
    #[arg(long, default_value_t = 2000)]
    efo_records: usize,
    /// Also measure the producer's throughput with this many records, aggregation on and then
    /// off (0: skip).
    #[arg(long, default_value_t = 0)]
    producer_records: usize,
    /// Bytes of data per producer record.
    #[arg(long, default_value_t = 100)]
    producer_record_size: usize,
    /// Also measure put→processed latency through this many consumer workers (0: skip).
    #[arg(long, default_value_t = 0)]
    consumers: usize,
    /// Records put one by one in the consumer phase.
    #[arg(long, default_value_t = 2000)]
    pub(crate) consumer_records: usize,
    /// Region to sign requests for.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Keep a stream the bench created.
    #[arg(long)]
    keep_stream: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Serialize)]
struct Latency {
    calls: u64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
}

impl Latency {
    fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |micros: u64| micros as f64 / 1000.0;
        Latency {
            calls: histogram.len(),
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p999_ms: ms(histogram.value_at_quantile(0.999)),
            max_ms: ms(histogram.max()),
        }
    }
}

/// The producer's throughput with and without aggregation.
#[derive(Debug, Serialize)]
struct ProducerRates {
    aggregated: f64,
    not_aggregated: f64,
}

/// What the bench measured.
#[derive(Debug, Serialize)]
struct Summary {
    endpoint: String,
    stream: String,
    streams: usize,
    shards: usize,
    record_size: usize,
    producers: usize,
    batch: usize,
    ingest_seconds: f64,
    records_acknowledged: u64,
    records_failed: u64,
    records_per_second: f64,
    ingest_mb_per_second: f64,
    /// The `--rate` cap, when one was set.
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_cap_mb_per_second: Option<f64>,
    /// Record data and partition keys acknowledged in the ingest phase.
    acknowledged_mb: f64,
    /// The data directory's device, with `--data-dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<String>,
    /// Bytes that device wrote during the ingest phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    device_mb_written: Option<f64>,
    /// Device bytes written per byte acknowledged.
    #[serde(skip_serializing_if = "Option::is_none")]
    write_amplification: Option<f64>,
    put_records_latency: Latency,
    put_record_latency: Latency,
    read_records: u64,
    read_seconds: f64,
    read_mb_per_second: f64,
    read_matches_acknowledged: bool,
    /// Put→receive latency through SubscribeToShard, with `--efo`.
    #[serde(skip_serializing_if = "Option::is_none")]
    efo_latency: Option<Latency>,
    /// Producer user records per second with aggregation on and off, with `--producer-records`.
    #[serde(skip_serializing_if = "Option::is_none")]
    producer_records_per_second: Option<ProducerRates>,
    /// Put→processed latency through `--consumers` workers.
    #[serde(skip_serializing_if = "Option::is_none")]
    consumer_latency: Option<Latency>,
}

pub(crate) fn histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000, 3).context("histogram bounds")
}

pub(crate) fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Runs the benchmark.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.batch == 0 || args.batch > 500 {
        bail!("--batch must be between 1 and 500");
    }
    if args.rate < 0.0 || !args.rate.is_finite() {
        bail!("--rate must be a number of MB/s, 0 for no cap");
    }
    let client = shardline::kinesis::client(&args.endpoint, &args.region);
    let device = args.data_dir.as_deref().map(disk::Device::of).transpose()?;
    let plan = stream_plan(&args);
    let created = prepare_streams(&client, &plan).await?;
    let streams: Vec<String> = plan.iter().map(|(name, _)| name.clone()).collect();
    // Read-back starts at LATEST taken now, so it sees exactly what this run writes.
    let mut iterators = Vec::new();
    let mut shard_ids = Vec::new();
    for stream in &streams {
        for shard in list_shards(&client, stream).await? {
            let out = client
                .get_shard_iterator()
                .stream_name(stream)
                .shard_id(&shard)
                .shard_iterator_type(ShardIteratorType::Latest)
                .send()
                .await
                .context("GetShardIterator")?;
            iterators.push((stream.clone(), out.shard_iterator().context("no iterator")?.to_owned()));
            if stream == &args.stream {
                shard_ids.push(shard);
            }
        }
    }

    // Single-record latency is measured on a quiet server, before the ingest phase leaves the
    // store flushing and compacting its backlog.
    let (single_acknowledged, put_record_latency) = single_puts(&client, &args).await?;
    let (efo_acknowledged, efo_latency) = match args.efo {
        true => {
            let (records, latency) = fan_out_latency(&client, &args, &shard_ids).await?;
            (records, Some(Latency::of(&latency)))
        }
        false => (0, None),
    };
    let (producer_acknowledged, producer_records_per_second) = match args.producer_records {
        0 => (0, None),
        records => {
            let aggregated = producer_rate(&client, &args, true).await?;
            let not_aggregated = producer_rate(&client, &args, false).await?;
            (2 * records as u64, Some(ProducerRates { aggregated, not_aggregated }))
        }
    };
    let (consumer_acknowledged, consumer_latency) = match args.consumers {
        0 => (0, None),
        workers => {
            let (records, latency) = consumers::latency(&client, &args, workers, shard_ids.len()).await?;
            (records, Some(Latency::of(&latency)))
        }
    };
    let written_before = device.as_ref().map(disk::Device::bytes_written).transpose()?;
    let (acknowledged, failed, ingest_seconds, put_records_latency) = ingest(&client, &args, &streams).await?;
    let written_after = device.as_ref().map(disk::Device::bytes_written).transpose()?;
    let device_written = written_before.zip(written_after).map(|(before, after)| after.saturating_sub(before));
    let acknowledged_bytes = acknowledged * (args.record_size + PARTITION_KEY_LEN) as u64;
    let shard_count = iterators.len();
    let (read_records, read_bytes, read_seconds) = read_back(&client, iterators).await?;
    let total_acknowledged =
        acknowledged + single_acknowledged + efo_acknowledged + consumer_acknowledged + producer_acknowledged;

    let summary = Summary {
        endpoint: args.endpoint.clone(),
        stream: args.stream.clone(),
        streams: streams.len(),
        shards: shard_count,
        record_size: args.record_size,
        producers: args.producers,
        batch: args.batch,
        ingest_seconds,
        records_acknowledged: acknowledged,
        records_failed: failed,
        records_per_second: acknowledged as f64 / ingest_seconds,
        ingest_mb_per_second: (acknowledged * args.record_size as u64) as f64 / ingest_seconds / 1e6,
        rate_cap_mb_per_second: (args.rate > 0.0).then_some(args.rate),
        acknowledged_mb: acknowledged_bytes as f64 / 1e6,
        device: device.as_ref().map(|d| d.name.clone()),
        device_mb_written: device_written.map(|b| b as f64 / 1e6),
        write_amplification: device_written.map(|b| b as f64 / acknowledged_bytes.max(1) as f64),
        put_records_latency: Latency::of(&put_records_latency),
        put_record_latency: Latency::of(&put_record_latency),
        read_records,
        read_seconds,
        read_mb_per_second: read_bytes as f64 / read_seconds / 1e6,
        read_matches_acknowledged: read_records == total_acknowledged,
        efo_latency,
        consumer_latency,
        producer_records_per_second,
    };
    if !args.keep_stream {
        for stream in created {
            client.delete_stream().stream_name(&stream).send().await.context("DeleteStream")?;
        }
    }
    if args.json {
        out!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_table(&summary);
    }
    if !summary.read_matches_acknowledged {
        bail!("read back {read_records} records but {total_acknowledged} were acknowledged");
    }
    Ok(())
}

/// The streams to use and their shard counts: `--shards` in streams of at most
/// `--shards-per-stream`.
fn stream_plan(args: &BenchArgs) -> Vec<(String, u32)> {
    let per = args.shards_per_stream.max(1);
    let count = args.shards.div_ceil(per).max(1);
    (0..count)
        .map(|i| {
            let name = if i == 0 { args.stream.clone() } else { format!("{}-{i}", args.stream) };
            (name, per.min(args.shards - i * per))
        })
        .collect()
}

/// Creates the streams that do not exist and waits for all to be ACTIVE; returns those it
/// created. CreateStream refused for too many concurrent creations is retried.
async fn prepare_streams(client: &aws_sdk_kinesis::Client, plan: &[(String, u32)]) -> anyhow::Result<Vec<String>> {
    let bar = ProgressBar::new(plan.len() as u64);
    bar.set_style(ProgressStyle::with_template("streams {bar:30} {pos}/{len} active")?);
    let mut created = Vec::new();
    for (name, shards) in plan {
        if client.describe_stream_summary().stream_name(name).send().await.is_ok() {
            continue;
        }
        let mut backoff = Duration::from_millis(100);
        loop {
            let shard_count = i32::try_from(*shards).context("shard count")?;
            match client.create_stream().stream_name(name).shard_count(shard_count).send().await {
                Ok(_) => break,
                Err(err) => {
                    let code = aws_sdk_kinesis::error::ProvideErrorMetadata::code(&err).unwrap_or_default().to_owned();
                    if code != "LimitExceededException" || backoff > Duration::from_secs(30) {
                        return Err(anyhow::Error::new(err).context(format!("CreateStream {name}")));
                    }
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
            }
        }
        created.push(name.clone());
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    for (name, _) in plan {
        loop {
            let summary =
                client.describe_stream_summary().stream_name(name).send().await.context("DescribeStreamSummary")?;
            if summary.stream_description_summary().map(|s| s.stream_status()) == Some(&StreamStatus::Active) {
                bar.inc(1);
                break;
            }
            if Instant::now() > deadline {
                bail!("stream {name} did not become ACTIVE within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    bar.finish_and_clear();
    Ok(created)
}

/// Every shard id of a stream.
async fn list_shards(client: &aws_sdk_kinesis::Client, stream: &str) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    let mut page = client.list_shards().stream_name(stream).max_results(1000).send().await.context("ListShards")?;
    loop {
        ids.extend(page.shards().iter().map(|s| s.shard_id().to_owned()));
        let Some(token) = page.next_token().map(str::to_owned) else { return Ok(ids) };
        page = client.list_shards().next_token(token).max_results(1000).send().await.context("ListShards")?;
    }
}

fn partition_key() -> String {
    format!("{:0width$x}", rand::rng().random::<u128>(), width = PARTITION_KEY_LEN)
}

pub(crate) fn payload(size: usize) -> Vec<u8> {
    let mut data = vec![0u8; size];
    rand::rng().fill_bytes(&mut data);
    data
}

async fn ingest(
    client: &aws_sdk_kinesis::Client,
    args: &BenchArgs,
    streams: &[String],
) -> anyhow::Result<(u64, u64, f64, Histogram<u64>)> {
    let acknowledged = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let bar = ProgressBar::new(args.duration.as_secs().max(1));
    bar.set_style(ProgressStyle::with_template("ingest {bar:30} {pos}/{len}s {msg}")?);
    let start = Instant::now();
    let deadline = start + args.duration;
    let mut tasks = Vec::new();
    // Each producer's share of the cap, as seconds per call.
    let call_secs =
        (args.rate > 0.0).then(|| (args.batch * args.record_size) as f64 * args.producers as f64 / (args.rate * 1e6));
    for producer in 0..args.producers {
        let (client, acknowledged, failed) = (client.clone(), acknowledged.clone(), failed.clone());
        let (batch, record_size) = (args.batch, args.record_size);
        let streams = streams.to_vec();
        tasks.push(tokio::spawn(async move {
            let mut latency = histogram()?;
            let data = payload(record_size);
            let mut calls = 0u64;
            while Instant::now() < deadline {
                if let Some(call_secs) = call_secs {
                    let due = start + Duration::from_secs_f64(call_secs * calls as f64);
                    tokio::time::sleep_until(due.into()).await;
                    if Instant::now() >= deadline {
                        break;
                    }
                }
                let stream = streams[(producer + calls as usize) % streams.len()].as_str();
                calls += 1;
                let entries = (0..batch)
                    .map(|_| {
                        PutRecordsRequestEntry::builder()
                            .partition_key(partition_key())
                            .data(Blob::new(data.clone()))
                            .build()
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let sent = Instant::now();
                let out = client
                    .put_records()
                    .stream_name(stream)
                    .set_records(Some(entries))
                    .send()
                    .await
                    .context("PutRecords")?;
                latency.record(micros(sent.elapsed()))?;
                let failures = u64::try_from(out.failed_record_count().unwrap_or(0)).unwrap_or(0);
                failed.fetch_add(failures, Ordering::Relaxed);
                acknowledged.fetch_add(batch as u64 - failures, Ordering::Relaxed);
            }
            anyhow::Ok(latency)
        }));
    }
    let ticker = {
        let (bar, acknowledged) = (bar.clone(), acknowledged.clone());
        let record_size = args.record_size as f64;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let secs = start.elapsed().as_secs_f64();
                let records = acknowledged.load(Ordering::Relaxed) as f64;
                bar.set_position(start.elapsed().as_secs());
                bar.set_message(format!(
                    "{:.0} records/s, {:.1} MB/s",
                    records / secs,
                    records * record_size / secs / 1e6
                ));
            }
        })
    };
    let mut latency = histogram()?;
    for task in tasks {
        latency.add(task.await??)?;
    }
    let seconds = start.elapsed().as_secs_f64();
    ticker.abort();
    bar.finish_and_clear();
    Ok((acknowledged.load(Ordering::Relaxed), failed.load(Ordering::Relaxed), seconds, latency))
}

/// One PutRecord of `data` under a random partition key.
pub(crate) async fn put_one(client: &aws_sdk_kinesis::Client, stream: &str, data: &[u8]) -> anyhow::Result<()> {
    client
        .put_record()
        .stream_name(stream)
        .partition_key(partition_key())
        .data(Blob::new(data.to_vec()))
        .send()
        .await
        .context("PutRecord")?;
    Ok(())
}

async fn single_puts(client: &aws_sdk_kinesis::Client, args: &BenchArgs) -> anyhow::Result<(u64, Histogram<u64>)> {
    let bar = ProgressBar::new(args.single_puts as u64);
    bar.set_style(ProgressStyle::with_template("PutRecord {bar:30} {pos}/{len}")?);
    let mut latency = histogram()?;
    let data = payload(args.record_size);
    for _ in 0..args.single_puts {
        let sent = Instant::now();
        put_one(client, &args.stream, &data).await?;
        latency.record(micros(sent.elapsed()))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok((args.single_puts as u64, latency))
}

/// Registers a consumer, subscribes it to every shard at LATEST, puts `--efo-records` records
/// one by one, each carrying its send time, and measures when each arrives through
/// SubscribeToShard.
async fn fan_out_latency(
    client: &aws_sdk_kinesis::Client,
    args: &BenchArgs,
    shard_ids: &[String],
) -> anyhow::Result<(u64, Histogram<u64>)> {
    let stream =
        client.describe_stream_summary().stream_name(&args.stream).send().await.context("DescribeStreamSummary")?;
    let stream_arn = stream.stream_description_summary().context("no summary")?.stream_arn().to_owned();
    let registered = client
        .register_stream_consumer()
        .stream_arn(&stream_arn)
        .consumer_name("shardctl-bench-efo")
        .send()
        .await
        .context("RegisterStreamConsumer")?;
    let consumer_arn = registered.consumer().context("no consumer")?.consumer_arn().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let described = client.describe_stream_consumer().consumer_arn(&consumer_arn).send().await?;
        if described.consumer_description().map(|d| d.consumer_status()) == Some(&ConsumerStatus::Active) {
            break;
        }
        if Instant::now() > deadline {
            bail!("consumer did not become ACTIVE within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let origin = Instant::now();
    let expected = args.efo_records as u64;
    let received = Arc::new(AtomicU64::new(0));
    let latency = Arc::new(std::sync::Mutex::new(histogram()?));
    let mut readers = Vec::new();
    for shard in shard_ids {
        let mut subscription = client
            .subscribe_to_shard()
            .consumer_arn(&consumer_arn)
            .shard_id(shard)
            .starting_position(StartingPosition::builder().r#type(ShardIteratorType::Latest).build()?)
            .send()
            .await
            .context("SubscribeToShard")?;
        let (received, latency) = (received.clone(), latency.clone());
        readers.push(tokio::spawn(async move {
            while received.load(Ordering::Relaxed) < expected {
                let Ok(Ok(Some(event))) =
                    tokio::time::timeout(Duration::from_secs(10), subscription.event_stream.recv()).await
                else {
                    break;
                };
                let SubscribeToShardEventStream::SubscribeToShardEvent(event) = event else { continue };
                let now = micros(origin.elapsed());
                for record in event.records() {
                    let Some(stamp) = record.data().as_ref().get(..8) else { continue };
                    let sent = u64::from_be_bytes(stamp.try_into().unwrap_or_default());
                    let mut histogram = latency.lock().unwrap_or_else(|p| p.into_inner());
                    let _ = histogram.record(now.saturating_sub(sent).max(1));
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let bar = ProgressBar::new(expected);
    bar.set_style(ProgressStyle::with_template("fan-out {bar:30} {pos}/{len}")?);
    let mut data = payload(args.record_size.max(8));
    for _ in 0..expected {
        data[..8].copy_from_slice(&micros(origin.elapsed()).to_be_bytes());
        put_one(client, &args.stream, &data).await?;
        bar.inc(1);
    }
    for reader in readers {
        reader.await?;
    }
    bar.finish_and_clear();
    client.deregister_stream_consumer().consumer_arn(&consumer_arn).send().await.context("DeregisterStreamConsumer")?;
    let got = received.load(Ordering::Relaxed);
    if got != expected {
        bail!("enhanced fan-out delivered {got} of {expected} records");
    }
    let histogram = latency.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok((expected, histogram))
}

/// User records per second through the producer: every put queued, then flushed.
async fn producer_rate(client: &aws_sdk_kinesis::Client, args: &BenchArgs, aggregation: bool) -> anyhow::Result<f64> {
    let mut config = shardline::producer::ProducerConfig::new(&args.stream);
    config.aggregation = aggregation;
    let producer = shardline::producer::Producer::new(client.clone(), config);
    let data = payload(args.producer_record_size);
    let bar = ProgressBar::new(args.producer_records as u64);
    let label = if aggregation { "producer (aggregated)" } else { "producer (plain)" };
    bar.set_style(ProgressStyle::with_template(&format!("{label} {{bar:30}} {{pos}}/{{len}}"))?);
    let start = Instant::now();
    let mut answers = Vec::with_capacity(args.producer_records);
    for _ in 0..args.producer_records {
        answers.push(producer.put(partition_key(), None, data.clone()).await?);
        bar.inc(1);
    }
    producer.flush().await?;
    let seconds = start.elapsed().as_secs_f64();
    for answer in answers {
        answer.await??;
    }
    bar.finish_and_clear();
    Ok(args.producer_records as f64 / seconds)
}

/// Reads every shard from the iterators taken before the ingest, `READERS` at a time,
/// following a shard that closes into its children (read from their start; each child once,
/// though a merge has two parents).
async fn read_back(
    client: &aws_sdk_kinesis::Client,
    iterators: Vec<(String, String)>,
) -> anyhow::Result<(u64, u64, f64)> {
    let bar = ProgressBar::new(iterators.len() as u64);
    bar.set_style(ProgressStyle::with_template("read-back {bar:30} {pos}/{len} shards")?);
    let start = Instant::now();
    let mut waiting = iterators;
    let mut readers = tokio::task::JoinSet::new();
    let (mut records, mut bytes) = (0, 0);
    let mut followed = std::collections::HashSet::new();
    loop {
        while readers.len() < READERS {
            let Some((stream, iterator)) = waiting.pop() else { break };
            let client = client.clone();
            readers.spawn(async move { (stream, read_shard(client, iterator).await) });
        }
        let Some(done) = readers.join_next().await else { break };
        let (stream, read) = done?;
        let (r, b, children) = read?;
        records += r;
        bytes += b;
        bar.inc(1);
        for child in children {
            if !followed.insert((stream.clone(), child.clone())) {
                continue;
            }
            let iterator = client
                .get_shard_iterator()
                .stream_name(&stream)
                .shard_id(&child)
                .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
                .send()
                .await
                .context("GetShardIterator")?
                .shard_iterator
                .context("no shard iterator")?;
            bar.inc_length(1);
            waiting.push((stream.clone(), iterator));
        }
    }
    bar.finish_and_clear();
    Ok((records, bytes, start.elapsed().as_secs_f64()))
}

/// One shard to its tip or its end: records, bytes, and the children of a closed shard.
async fn read_shard(client: aws_sdk_kinesis::Client, iterator: String) -> anyhow::Result<(u64, u64, Vec<String>)> {
    let (mut records, mut bytes, mut iterator) = (0u64, 0u64, iterator);
    loop {
        let page = client.get_records().shard_iterator(&iterator).limit(10_000).send().await.context("GetRecords")?;
        for record in page.records() {
            match shardline::producer::aggregation::deaggregate(record.data().as_ref()) {
                Some(users) => {
                    records += users.len() as u64;
                    bytes += users.iter().map(|u| u.data.len() as u64).sum::<u64>();
                }
                None => {
                    records += 1;
                    bytes += record.data().as_ref().len() as u64;
                }
            }
        }
        let caught_up = page.records().is_empty() && page.millis_behind_latest().unwrap_or(0) == 0;
        match page.next_shard_iterator() {
            Some(next) if !caught_up => iterator = next.to_owned(),
            Some(_) => return Ok((records, bytes, Vec::new())),
            None => {
                let children = page.child_shards().iter().map(|c| c.shard_id().to_owned()).collect();
                return Ok((records, bytes, children));
            }
        }
    }
}

fn print_table(s: &Summary) {
    let streams =
        if s.streams == 1 { format!("stream {}", s.stream) } else { format!("{} streams {}…", s.streams, s.stream) };
    out!("shardctl bench: {} ({streams}, {} shards)", s.endpoint, s.shards);
    out!("  records of {} B, {} producers x PutRecords of {}", s.record_size, s.producers, s.batch);
    out!();
    out!("  {:<28} {:>14}", "ingest records/s", format!("{:.0}", s.records_per_second));
    out!("  {:<28} {:>14}", "ingest MB/s", format!("{:.1}", s.ingest_mb_per_second));
    if let Some(cap) = s.rate_cap_mb_per_second {
        out!("  {:<28} {:>14}", "ingest cap MB/s", format!("{cap:.1}"));
    }
    out!("  {:<28} {:>14}", "acknowledged MB", format!("{:.1}", s.acknowledged_mb));
    let na = || "n/a".to_owned();
    let device = s.device.clone().unwrap_or_else(na);
    out!("  {:<28} {:>14}", "device", device);
    out!("  {:<28} {:>14}", "device MB written", s.device_mb_written.map_or_else(na, |m| format!("{m:.1}")));
    out!("  {:<28} {:>14}", "write amplification", s.write_amplification.map_or_else(na, |w| format!("{w:.3}")));
    out!("  {:<28} {:>14}", "records acknowledged", s.records_acknowledged);
    out!("  {:<28} {:>14}", "records failed", s.records_failed);
    let row = |name: &str, l: &Latency| {
        out!(
            "  {name:<28} {:>8.3} p50 {:>8.3} p99 {:>8.3} p99.9 {:>8.3} max  ({} calls)",
            l.p50_ms,
            l.p99_ms,
            l.p999_ms,
            l.max_ms,
            l.calls
        );
    };
    row("PutRecords latency ms", &s.put_records_latency);
    row("PutRecord latency ms", &s.put_record_latency);
    out!("  {:<28} {:>14}", "read-back MB/s", format!("{:.1}", s.read_mb_per_second));
    out!("  {:<28} {:>14}", "read-back records", s.read_records);
    out!("  {:<28} {:>14}", "read == acknowledged", s.read_matches_acknowledged);
    if let Some(efo) = &s.efo_latency {
        row("put→SubscribeToShard ms", efo);
    }
    if let Some(rates) = &s.producer_records_per_second {
        out!("  {:<28} {:>14}", "producer records/s (KPL agg)", format!("{:.0}", rates.aggregated));
        out!("  {:<28} {:>14}", "producer records/s (no agg)", format!("{:.0}", rates.not_aggregated));
    }
    if let Some(consumer) = &s.consumer_latency {
        row("put→worker processed ms", consumer);
    }
}
