//! `shardctl put`: records from arguments or from stdin lines, through the producer.

use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use shardline::producer::{Producer, ProducerConfig};
use tokio::io::AsyncBufReadExt;

use crate::connection::{table, Connection};

/// Put records.
#[derive(Debug, Args)]
pub struct PutArgs {
    /// Stream name.
    stream: String,
    /// Records to put; without any, every line of stdin is one record.
    data: Vec<String>,
    /// Partition key of every record (default: a random key per record).
    #[arg(long)]
    partition_key: Option<String>,
    /// Pack records into KPL aggregated records.
    #[arg(long)]
    aggregate: bool,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Serialize)]
struct Result {
    data: String,
    shard_id: String,
    sequence_number: String,
    sub_sequence_number: u64,
}

/// Runs `put`.
pub async fn run(args: PutArgs) -> anyhow::Result<()> {
    let mut config = ProducerConfig::new(&args.stream);
    config.aggregation = args.aggregate;
    config.linger = Duration::from_millis(20);
    let producer = Producer::new(args.connection.kinesis(), config);
    let mut lines = args.data.clone();
    if lines.is_empty() {
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Some(line) = stdin.next_line().await? {
            lines.push(line);
        }
    }
    let bar = ProgressBar::new(lines.len() as u64);
    bar.set_style(ProgressStyle::with_template("put {bar:30} {pos}/{len}")?);
    let mut pending = Vec::with_capacity(lines.len());
    for line in lines {
        let key = args.partition_key.clone().unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()));
        pending.push((line.clone(), producer.put(key, None, line.into_bytes()).await?));
    }
    producer.flush().await?;
    let mut results = Vec::with_capacity(pending.len());
    for (data, answer) in pending {
        let stored = answer.await??;
        bar.inc(1);
        results.push(Result {
            data,
            shard_id: stored.shard_id,
            sequence_number: stored.sequence_number,
            sub_sequence_number: stored.sub_sequence_number,
        });
    }
    bar.finish_and_clear();
    args.connection.print(&results, |results| {
        let rows: Vec<Vec<String>> =
            results.iter().map(|r| vec![r.shard_id.clone(), r.sequence_number.clone(), r.data.clone()]).collect();
        table(&["SHARD", "SEQUENCE NUMBER", "DATA"], &rows);
    })
}
