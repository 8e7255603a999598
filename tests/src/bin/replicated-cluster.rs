//! A replicated cluster to benchmark: `replicated-cluster [--shards N] [--stream NAME]
//! [--dir PATH] [--idle-cpu SECS]` starts three `shard-server --cluster` processes and gives
//! them the streams `shardctl bench --shards N --stream NAME` uses (`NAME`, `NAME-1`, … of at
//! most 500 shards), every shard replicated on all three servers with preferred leaders
//! rotated, then prints the endpoints and runs until Ctrl-C. Point `shardctl bench --endpoint`
//! at any of them with `--keep-stream` (a cluster's streams belong to the operator).
//!
//! `--idle-cpu SECS` instead measures each server's CPU over SECS with no traffic, once every
//! shard has a leader, prints it as a share of one core and exits.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use shardline_tests::replicated::ReplicatedCluster;

/// Shards per stream, as `shardctl bench --shards-per-stream` defaults to.
const PER_STREAM: u32 = 500;

/// CPU seconds process `pid` has used.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    Ok((ticks(11) + ticks(12)) / 100.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut shards, mut stream, mut base, mut idle) = (4u32, "shardctl-bench".to_owned(), std::env::temp_dir(), None);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--shards" => shards = value()?.parse()?,
            "--stream" => stream = value()?,
            "--dir" => base = value()?.into(),
            "--idle-cpu" => idle = Some(Duration::from_secs(value()?.parse()?)),
            other => anyhow::bail!(
                "unknown argument {other}; usage: replicated-cluster [--shards N] [--stream NAME] [--dir PATH] [--idle-cpu SECS]"
            ),
        }
    }
    let dir = tempfile::tempdir_in(&base)?;
    let limit = (shards + 100).to_string();
    let cluster = ReplicatedCluster::start(dir.path(), "bench", &["--shard-limit", &limit])?;
    let count = shards.div_ceil(PER_STREAM).max(1);
    let (each, extra) = (shards / count, shards % count);
    let started = Instant::now();
    let mut streams = Vec::new();
    for i in 0..count {
        let name = if i == 0 { stream.clone() } else { format!("{stream}-{i}") };
        let n = each + u32::from(i < extra);
        cluster.assign(&cluster.layout(&name, n)).await?;
        streams.push((name, n));
    }
    for (name, n) in &streams {
        cluster.wait_for_leaders(name, *n, Duration::from_secs(120)).await?;
    }
    println!(
        "{shards} shards in {count} streams, each a Raft group on all 3 servers, led in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for server in &cluster.servers {
        println!("endpoint {} (data {})", server.endpoint, dir.path().display());
    }
    if let Some(window) = idle {
        // Let elections and the first heartbeats settle, then measure.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let pids: Vec<u32> = cluster.servers.iter().filter_map(|s| s.pid()).collect();
        let before = pids.iter().map(|&p| cpu_seconds(p)).collect::<anyhow::Result<Vec<_>>>()?;
        tokio::time::sleep(window).await;
        for ((server, &pid), before) in cluster.servers.iter().zip(&pids).zip(before) {
            let used = cpu_seconds(pid)? - before;
            println!(
                "idle CPU of {}: {:.1} % of a core over {} s",
                server.endpoint,
                used / window.as_secs_f64() * 100.0,
                window.as_secs()
            );
        }
        return Ok(());
    }
    tokio::signal::ctrl_c().await?;
    Ok(())
}
