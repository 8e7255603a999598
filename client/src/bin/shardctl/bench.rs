//! `shardctl bench`: a Kinesis benchmark. It speaks only the Kinesis API (through
//! `aws-sdk-kinesis`), so the same command measures Shardline or any other Kinesis-compatible
//! endpoint. Phases: a sequential single-record PutRecord latency run, PutRecords ingest from
//! concurrent producers (with a progress bar), then a read-back of everything written with
//! GetRecords, checking that the count read equals the count acknowledged. The figures end as
//! a two-column table (figure, value), or JSON with `--json`.
//!
//! - `--shards N` (up to 10,000) spreads the shards evenly over as many streams of at most
//!   `--shards-per-stream` (default 500) as needed: `NAME`, `NAME-1`, `NAME-2`, … Each is
//!   created when it does not exist (a CreateStream throttled for too many at once is retried
//!   with backoff; an account shard limit is reported with how to raise it), waited on until
//!   ACTIVE with a progress bar, and deleted at the end unless `--keep-stream`. Producers take
//!   the streams in turn, one stream per PutRecords call, and spread each call's records over
//!   that stream's shards with explicit hash keys ([`ingest`]); the read-back reads every shard
//!   of every stream, 64 at a time ([`read_back`]).
//! - `--rate MB/s` caps the ingest phase, for latency at a given load (e.g. half of the peak a
//!   first run measured).
//! - `--data-dir PATH` (or `SHARDLINE_DATA_DIR`), on the server's machine, reads
//!   `/proc/diskstats` for the block device holding PATH before and after the ingest phase
//!   ([`disk`]) and reports the device bytes written, the bytes acknowledged (record data and
//!   partition keys) and their ratio, the write amplification; "n/a" without it. The device
//!   counts every writer, so keep the machine otherwise quiet.
//!
//! Side by side: `make kinesalite` runs kinesalite 3.3.3 on 127.0.0.1:4568 and kinesis-mock
//! on 127.0.0.1:4571 until Ctrl-C; run the same command with `--endpoint
//! http://127.0.0.1:4568` and `--endpoint http://127.0.0.1:4571`.

use crate::connection::table;
use crate::output::out;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{ConsumerStatus, ShardIteratorType, StartingPosition, SubscribeToShardEventStream};
use clap::Args;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, RngCore};
use serde::Serialize;

mod consumers;
mod disk;
mod ingest;
mod read_back;
mod streams;

/// Characters of the random partition keys.
const PARTITION_KEY_LEN: usize = 32;

/// Options of `shardctl bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Kinesis endpoint to measure.
    #[arg(long, env = "SHARDLINE_ENDPOINT", default_value = "http://127.0.0.1:4567")]
    pub(crate) endpoint: String,
    /// Stream to use, and the prefix of the others when `--shards` needs more (`NAME-1`,
    /// `NAME-2`, …); each is created (and deleted afterwards) when it does not exist.
    #[arg(long, default_value = "shardctl-bench")]
    pub(crate) stream: String,
    /// Shards in all (up to 10,000), spread evenly over as many streams as
    /// `--shards-per-stream` needs.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    shards: u32,
    /// Most shards in one stream the bench creates.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    shards_per_stream: u32,
    /// Cap on the ingest rate in MB/s of record data (0: as fast as the server takes it).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// The server's data directory, when it is on this machine: report the bytes its block
    /// device wrote during the ingest phase (from /proc/diskstats), the bytes acknowledged and
    /// their ratio, the write amplification ("n/a" without).
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
    /// Keep the streams the bench created.
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
    /// The data directory's device, with `--data-dir` (null without).
    device: Option<String>,
    /// MB that device wrote during the ingest phase (null without `--data-dir`).
    device_mb_written: Option<f64>,
    /// Device bytes written per byte acknowledged (null without `--data-dir`).
    write_amplification: Option<f64>,
    put_records_latency: Latency,
    put_record_latency: Latency,
    read_records: u64,
    read_seconds: f64,
    read_mb_per_second: f64,
    /// Records acknowledged in every phase, which the read-back must find.
    records_expected: u64,
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
    let plan = streams::plan(&args.stream, args.shards, args.shards_per_stream);
    let prepared = streams::prepare(&client, &plan).await;
    let measured = match prepared.targets {
        Ok(targets) => measure(&client, &args, device.as_ref(), &targets).await,
        Err(err) => Err(err),
    };
    // The streams this run created go, whether or not it got through.
    let deleted = match args.keep_stream {
        true => Ok(()),
        false => streams::delete(&client, &prepared.created).await,
    };
    let summary = match (measured, deleted) {
        (Ok(summary), Ok(())) => summary,
        (Ok(_), Err(err)) | (Err(err), Ok(())) => return Err(err),
        (Err(err), Err(cleanup)) => return Err(err.context(format!("and cleaning up: {cleanup:#}"))),
    };
    if args.json {
        out!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_table(&summary);
    }
    if !summary.read_matches_acknowledged {
        bail!("read back {} records but {} were acknowledged", summary.read_records, summary.records_expected);
    }
    Ok(())
}

/// Every phase, on streams that are ACTIVE.
async fn measure(
    client: &aws_sdk_kinesis::Client,
    args: &BenchArgs,
    device: Option<&disk::Device>,
    targets: &[streams::Target],
) -> anyhow::Result<Summary> {
    // Fixed before the first put, so the read-back sees exactly what this run writes.
    let starts = read_back::starts(client, targets).await?;
    // The latency, fan-out, producer and consumer phases use the first stream.
    let first = targets.first().context("no stream")?;
    let shard_ids: Vec<String> = first.shards.iter().map(|s| s.id.clone()).collect();

    // Single-record latency is measured on a quiet server, before the ingest phase leaves the
    // store flushing and compacting its backlog.
    let (single_acknowledged, put_record_latency) = single_puts(client, args).await?;
    let (efo_acknowledged, efo_latency) = match args.efo {
        true => {
            let (records, latency) = fan_out_latency(client, args, &shard_ids).await?;
            (records, Some(Latency::of(&latency)))
        }
        false => (0, None),
    };
    let (producer_acknowledged, producer_records_per_second) = match args.producer_records {
        0 => (0, None),
        records => {
            let aggregated = producer_rate(client, args, true).await?;
            let not_aggregated = producer_rate(client, args, false).await?;
            (2 * records as u64, Some(ProducerRates { aggregated, not_aggregated }))
        }
    };
    let (consumer_acknowledged, consumer_latency) = match args.consumers {
        0 => (0, None),
        workers => {
            let (records, latency) = consumers::latency(client, args, workers, shard_ids.len()).await?;
            (records, Some(Latency::of(&latency)))
        }
    };
    let written_before = device.map(disk::Device::bytes_written).transpose()?;
    let ingested = ingest::run(client, args, targets).await?;
    let written_after = device.map(disk::Device::bytes_written).transpose()?;
    let device_written = written_before.zip(written_after).map(|(before, after)| after.saturating_sub(before));
    let acknowledged = ingested.acknowledged;
    let acknowledged_bytes = acknowledged * (args.record_size + PARTITION_KEY_LEN) as u64;
    let shard_count = starts.len();
    let read = read_back::run(client, starts).await?;
    let records_expected =
        acknowledged + single_acknowledged + efo_acknowledged + consumer_acknowledged + producer_acknowledged;

    Ok(Summary {
        endpoint: args.endpoint.clone(),
        stream: args.stream.clone(),
        streams: targets.len(),
        shards: shard_count,
        record_size: args.record_size,
        producers: args.producers,
        batch: args.batch,
        ingest_seconds: ingested.seconds,
        records_acknowledged: acknowledged,
        records_failed: ingested.failed,
        records_per_second: acknowledged as f64 / ingested.seconds,
        ingest_mb_per_second: (acknowledged * args.record_size as u64) as f64 / ingested.seconds / 1e6,
        rate_cap_mb_per_second: (args.rate > 0.0).then_some(args.rate),
        acknowledged_mb: acknowledged_bytes as f64 / 1e6,
        device: device.map(|d| d.name.clone()),
        device_mb_written: device_written.map(|b| b as f64 / 1e6),
        write_amplification: device_written
            .filter(|_| acknowledged_bytes > 0)
            .map(|b| b as f64 / acknowledged_bytes as f64),
        put_records_latency: Latency::of(&ingested.latency),
        put_record_latency: Latency::of(&put_record_latency),
        read_records: read.records,
        read_seconds: read.seconds,
        read_mb_per_second: read.bytes as f64 / read.seconds / 1e6,
        records_expected,
        read_matches_acknowledged: read.records == records_expected,
        efo_latency,
        consumer_latency,
        producer_records_per_second,
    })
}

fn partition_key() -> String {
    format!("{:0width$x}", rand::rng().random::<u128>(), width = PARTITION_KEY_LEN)
}

pub(crate) fn payload(size: usize) -> Vec<u8> {
    let mut data = vec![0u8; size];
    rand::rng().fill_bytes(&mut data);
    data
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

fn print_table(s: &Summary) {
    let streams =
        if s.streams == 1 { format!("stream {}", s.stream) } else { format!("{} streams {}…", s.streams, s.stream) };
    out!("shardctl bench: {} ({streams}, {} shards)", s.endpoint, s.shards);
    out!("records of {} B, {} producers x PutRecords of {}", s.record_size, s.producers, s.batch);
    out!();
    let na = || "n/a".to_owned();
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut row = |figure: &str, value: String| rows.push(vec![figure.to_owned(), value]);
    row("ingest records/s", format!("{:.0}", s.records_per_second));
    row("ingest MB/s", format!("{:.1}", s.ingest_mb_per_second));
    if let Some(cap) = s.rate_cap_mb_per_second {
        row("ingest cap MB/s", format!("{cap:.1}"));
    }
    row("records acknowledged", s.records_acknowledged.to_string());
    row("records failed", s.records_failed.to_string());
    row("acknowledged bytes (MB)", format!("{:.1}", s.acknowledged_mb));
    row("device", s.device.clone().unwrap_or_else(na));
    row("device bytes written (MB)", s.device_mb_written.map_or_else(na, |m| format!("{m:.1}")));
    row("write amplification", s.write_amplification.map_or_else(na, |w| format!("{w:.3}")));
    let mut latency = |name: &str, l: &Latency| {
        row(&format!("{name} p50 ms"), format!("{:.3}", l.p50_ms));
        row(&format!("{name} p99 ms"), format!("{:.3}", l.p99_ms));
        row(&format!("{name} p99.9 ms"), format!("{:.3}", l.p999_ms));
        row(&format!("{name} max ms"), format!("{:.3}", l.max_ms));
        row(&format!("{name} calls"), l.calls.to_string());
    };
    latency("PutRecords", &s.put_records_latency);
    latency("PutRecord", &s.put_record_latency);
    if let Some(efo) = &s.efo_latency {
        latency("put→SubscribeToShard", efo);
    }
    if let Some(consumer) = &s.consumer_latency {
        latency("put→worker processed", consumer);
    }
    row("read-back MB/s", format!("{:.1}", s.read_mb_per_second));
    row("read-back records", s.read_records.to_string());
    row("read == acknowledged", s.read_matches_acknowledged.to_string());
    if let Some(rates) = &s.producer_records_per_second {
        row("producer records/s (KPL agg)", format!("{:.0}", rates.aggregated));
        row("producer records/s (no agg)", format!("{:.0}", rates.not_aggregated));
    }
    table(&["figure", "value"], &rows);
}
