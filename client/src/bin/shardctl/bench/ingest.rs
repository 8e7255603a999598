//! The ingest phase of `shardctl bench`: concurrent producers calling PutRecords for
//! `--duration`, optionally capped at `--rate`, with a progress bar of the rate so far.
//!
//! Each call goes to one stream, the producers taking the streams in turn. Within a stream,
//! every record carries an ExplicitHashKey drawn from the next shard's range, the stream's
//! shards taken round-robin, so every shard gets its share even when the run writes only a
//! few records per shard (random partition keys alone leave some of 10,000 shards empty in a
//! short run). The partition keys are still random, and sent.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rand::Rng as _;

use super::streams::Target;
use super::{histogram, micros, partition_key, payload, BenchArgs};
use crate::connection::explain;

/// What the ingest phase measured.
pub struct Ingested {
    /// Records acknowledged.
    pub acknowledged: u64,
    /// Records refused inside successful calls.
    pub failed: u64,
    /// Length of the phase.
    pub seconds: f64,
    /// PutRecords call latency.
    pub latency: Histogram<u64>,
}

/// One stream's shards and the next one to write to.
struct Spread {
    target: Target,
    next: AtomicUsize,
}

impl Spread {
    /// Hash keys for the next `count` records: one in each of the next `count` shards.
    fn hash_keys(&self, count: usize) -> Vec<u128> {
        let shards = &self.target.shards;
        let first = self.next.fetch_add(count, Ordering::Relaxed);
        let mut rng = rand::rng();
        (first..first + count).map(|i| rng.random_range(shards[i % shards.len()].hash_keys.clone())).collect()
    }
}

/// Runs the producers until `--duration` is over.
pub async fn run(client: &aws_sdk_kinesis::Client, args: &BenchArgs, targets: &[Target]) -> anyhow::Result<Ingested> {
    let acknowledged = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let spreads: Arc<Vec<Spread>> =
        Arc::new(targets.iter().map(|t| Spread { target: t.clone(), next: AtomicUsize::new(0) }).collect());
    let bar = ProgressBar::new(args.duration.as_secs().max(1));
    bar.set_style(ProgressStyle::with_template("ingest {bar:30} {pos}/{len}s {msg}")?);
    let start = Instant::now();
    let deadline = start + args.duration;
    let mut tasks = Vec::new();
    // Each producer's share of the cap, as seconds per call.
    let call_secs =
        (args.rate > 0.0).then(|| (args.batch * args.record_size) as f64 * args.producers as f64 / (args.rate * 1e6));
    for producer in 0..args.producers {
        let (client, acknowledged, failed, spreads) =
            (client.clone(), acknowledged.clone(), failed.clone(), spreads.clone());
        let (batch, record_size, producers) = (args.batch, args.record_size, args.producers);
        tasks.push(tokio::spawn(async move {
            let mut latency = histogram()?;
            let data = payload(record_size);
            let mut calls = 0u64;
            while Instant::now() < deadline {
                if let Some(call_secs) = call_secs {
                    // Producers are phased evenly over the period, not all due at once: a
                    // capped rate is a steady load, not a burst of every producer per period.
                    let phase = producer as f64 / producers as f64;
                    let due = start + Duration::from_secs_f64(call_secs * (calls as f64 + phase));
                    tokio::time::sleep_until(due.into()).await;
                    if Instant::now() >= deadline {
                        break;
                    }
                }
                let spread = &spreads[(producer + calls as usize) % spreads.len()];
                calls += 1;
                let entries = spread
                    .hash_keys(batch)
                    .into_iter()
                    .map(|hash_key| {
                        PutRecordsRequestEntry::builder()
                            .partition_key(partition_key())
                            .explicit_hash_key(hash_key.to_string())
                            .data(Blob::new(data.clone()))
                            .build()
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let sent = Instant::now();
                let out = client
                    .put_records()
                    .stream_name(&spread.target.name)
                    .set_records(Some(entries))
                    .send()
                    .await
                    .map_err(|e| anyhow::anyhow!("PutRecords {}: {}", spread.target.name, explain(&e)))?;
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
    let mut first_error = None;
    for task in tasks {
        match task.await.context("producer task")? {
            Ok(producer) => latency.add(producer)?,
            Err(err) => first_error = first_error.or(Some(err)),
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    ticker.abort();
    bar.finish_and_clear();
    if let Some(err) = first_error {
        return Err(err);
    }
    Ok(Ingested {
        acknowledged: acknowledged.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        seconds,
        latency,
    })
}

#[cfg(test)]
mod tests {
    use super::super::streams::Shard;
    use super::*;

    #[test]
    fn hash_keys_go_round_the_shards() {
        let quarter = u128::MAX / 4;
        let shards = (0..4u128)
            .map(|i| Shard {
                id: format!("shardId-{i:012}"),
                hash_keys: i * quarter + i..=if i == 3 { u128::MAX } else { (i + 1) * quarter + i },
            })
            .collect();
        let spread = Spread { target: Target { name: "s".into(), created: true, shards }, next: AtomicUsize::new(0) };
        let shard_of = |key: u128| spread.target.shards.iter().position(|s| s.hash_keys.contains(&key));
        let keys = spread.hash_keys(6);
        let hit: Vec<Option<usize>> = keys.into_iter().map(shard_of).collect();
        assert_eq!(hit, [0, 1, 2, 3, 0, 1].map(Some));
        let next: Vec<Option<usize>> = spread.hash_keys(2).into_iter().map(shard_of).collect();
        assert_eq!(next, [2, 3].map(Some), "the next call goes on where the last one stopped");
    }
}
