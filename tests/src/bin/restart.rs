//! Restart time with data stored: `restart --gigabytes 10` fills a standalone shard-server
//! (4 shards, 1 KiB records, 8 concurrent PutRecords producers) until that much is
//! acknowledged, kills it with SIGKILL, starts it again and reports the time until it serves
//! again: the first successful PutRecord and its read-back, then a read of the oldest records.
//! `--drop-caches` empties the page cache before the restart (root), so the journal is read
//! from the device as after a power cycle. The data directory is a temporary one under `--dir`
//! (default: the system's temporary directory).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use shardline_tests::{create_active_stream, Server};

const STREAM: &str = "restart";
const RECORD: usize = 1024;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut gigabytes, mut base, mut drop_caches) = (10.0f64, std::env::temp_dir(), false);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--gigabytes" => gigabytes = args.next().context("--gigabytes needs a number")?.parse()?,
            "--dir" => base = args.next().context("--dir needs a path")?.into(),
            "--drop-caches" => drop_caches = true,
            other => anyhow::bail!("unknown argument {other}; usage: restart [--gigabytes N] [--dir PATH]"),
        }
    }
    let dir = tempfile::tempdir_in(&base)?;
    let mut server = Server::start(&dir, &[])?;
    create_active_stream(&server.client(), STREAM, 4).await?;
    let target = (gigabytes * 1e9) as u64;
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let producers: Vec<_> = (0..8)
        .map(|p| {
            let (client, acked, stop) = (server.client(), acked.clone(), stop.clone());
            tokio::spawn(async move {
                let data = vec![b'x'; RECORD];
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) && acked.load(Ordering::Relaxed) < target {
                    let entries: Vec<_> = (0..500)
                        .filter_map(|i| {
                            PutRecordsRequestEntry::builder()
                                .partition_key(format!("p{p}-{n}-{i}"))
                                .data(Blob::new(data.clone()))
                                .build()
                                .ok()
                        })
                        .collect();
                    n += 1;
                    if let Ok(out) = client.put_records().stream_name(STREAM).set_records(Some(entries)).send().await {
                        let ok = 500 - u64::try_from(out.failed_record_count().unwrap_or(0)).unwrap_or(0);
                        acked.fetch_add(ok * RECORD as u64, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let mut last_report = Instant::now();
    while acked.load(Ordering::Relaxed) < target {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if last_report.elapsed() > Duration::from_secs(10) {
            last_report = Instant::now();
            eprintln!("{:.1} GB acknowledged", acked.load(Ordering::Relaxed) as f64 / 1e9);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for producer in producers {
        producer.await?;
    }
    let stored = acked.load(Ordering::Relaxed);
    let fill = started.elapsed();

    server.kill()?;
    if drop_caches {
        std::process::Command::new("sync").status()?;
        std::fs::write("/proc/sys/vm/drop_caches", "3").context("dropping the page cache needs root")?;
    }
    let killed = Instant::now();
    server.restart()?;
    let listening = killed.elapsed();
    let client = server.client();
    let (put, read) = loop {
        let put = client.put_record().stream_name(STREAM).partition_key("after").data(Blob::new("after")).send().await;
        if let Ok(put) = put {
            let put_at = killed.elapsed();
            let iterator = client
                .get_shard_iterator()
                .stream_name(STREAM)
                .shard_id(put.shard_id())
                .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                .starting_sequence_number(put.sequence_number())
                .send()
                .await?;
            let records =
                client.get_records().set_shard_iterator(iterator.shard_iterator().map(str::to_owned)).send().await?;
            anyhow::ensure!(records.records().len() == 1, "the record put after the restart reads back");
            break (put_at, killed.elapsed());
        }
        anyhow::ensure!(killed.elapsed() < Duration::from_secs(60), "the server did not serve within 60 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let oldest = client
        .get_shard_iterator()
        .stream_name(STREAM)
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await?;
    let page = client.get_records().set_shard_iterator(oldest.shard_iterator().map(str::to_owned)).send().await?;
    anyhow::ensure!(!page.records().is_empty(), "the oldest records read back after the restart");
    let oldest_read = killed.elapsed();
    println!(
        "restart: {:.2} GB stored in {:.0} s; after SIGKILL listening in {:.2} s, first PutRecord {:.2} s, read back {:.2} s, oldest records read {:.2} s (page cache {})",
        stored as f64 / 1e9,
        fill.as_secs_f64(),
        listening.as_secs_f64(),
        put.as_secs_f64(),
        read.as_secs_f64(),
        oldest_read.as_secs_f64(),
        if drop_caches { "dropped" } else { "warm" }
    );
    Ok(())
}
