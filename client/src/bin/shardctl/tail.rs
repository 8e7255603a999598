//! `shardctl get` (read what is there) and `shardctl tail` (follow new records), over every
//! open shard or one, with KPL aggregates taken apart.

use crate::output::out;
use std::time::Duration;

use anyhow::Context;
use aws_sdk_kinesis::types::{ShardFilter, ShardFilterType, ShardIteratorType};
use clap::{Args, ValueEnum};
use serde::Serialize;
use shardline::producer::aggregation::deaggregate;
use tokio::sync::mpsc;

use crate::connection::{explain, Connection};

/// Where reading starts.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum From {
    /// The oldest retained record.
    TrimHorizon,
    /// Only records put from now on.
    Latest,
}

/// Read records.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Stream name.
    stream: String,
    /// Only this shard (default: every shard).
    #[arg(long)]
    shard: Option<String>,
    /// Where to start.
    #[arg(long, value_enum)]
    from: Option<From>,
    /// Stop after this many records.
    #[arg(long)]
    limit: Option<usize>,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Clone, Serialize)]
struct Line {
    shard_id: String,
    sequence_number: String,
    sub_sequence_number: Option<u64>,
    partition_key: String,
    data: String,
}

async fn shards(client: &aws_sdk_kinesis::Client, args: &ReadArgs, follow: bool) -> anyhow::Result<Vec<String>> {
    if let Some(shard) = &args.shard {
        return Ok(vec![shard.clone()]);
    }
    let mut request = client.list_shards().stream_name(&args.stream);
    if follow {
        request = request.shard_filter(ShardFilter::builder().r#type(ShardFilterType::AtLatest).build()?);
    }
    let out = request.send().await.map_err(|e| anyhow::anyhow!(explain(&e)))?;
    Ok(out.shards().iter().map(|s| s.shard_id().to_owned()).collect())
}

async fn read_shard(
    client: aws_sdk_kinesis::Client,
    stream: String,
    shard: String,
    start: ShardIteratorType,
    follow: bool,
    lines: mpsc::Sender<Line>,
) -> anyhow::Result<()> {
    let out = client
        .get_shard_iterator()
        .stream_name(&stream)
        .shard_id(&shard)
        .shard_iterator_type(start)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!(explain(&e)))?;
    let mut iterator = out.shard_iterator().context("no iterator")?.to_owned();
    loop {
        let page =
            client.get_records().shard_iterator(&iterator).send().await.map_err(|e| anyhow::anyhow!(explain(&e)))?;
        for record in page.records() {
            let seq = record.sequence_number().to_owned();
            let users = deaggregate(record.data().as_ref());
            let rendered: Vec<Line> = match users {
                Some(users) => users
                    .into_iter()
                    .enumerate()
                    .map(|(i, u)| Line {
                        shard_id: shard.clone(),
                        sequence_number: seq.clone(),
                        sub_sequence_number: Some(i as u64),
                        partition_key: u.partition_key,
                        data: String::from_utf8_lossy(&u.data).into_owned(),
                    })
                    .collect(),
                None => vec![Line {
                    shard_id: shard.clone(),
                    sequence_number: seq,
                    sub_sequence_number: None,
                    partition_key: record.partition_key().unwrap_or_default().to_owned(),
                    data: String::from_utf8_lossy(record.data().as_ref()).into_owned(),
                }],
            };
            for line in rendered {
                if lines.send(line).await.is_err() {
                    return Ok(());
                }
            }
        }
        let caught_up = page.records().is_empty() && page.millis_behind_latest().unwrap_or(0) == 0;
        match page.next_shard_iterator() {
            None => return Ok(()),
            Some(_) if caught_up && !follow => return Ok(()),
            Some(next) => iterator = next.to_owned(),
        }
        if caught_up {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Runs `get` (`follow` false) or `tail` (`follow` true).
pub async fn run(args: ReadArgs, follow: bool) -> anyhow::Result<()> {
    let client = args.connection.kinesis();
    let start = match args.from.unwrap_or(if follow { From::Latest } else { From::TrimHorizon }) {
        From::TrimHorizon => ShardIteratorType::TrimHorizon,
        From::Latest => ShardIteratorType::Latest,
    };
    let (sender, mut lines) = mpsc::channel(1024);
    let mut readers = Vec::new();
    for shard in shards(&client, &args, follow).await? {
        readers.push(tokio::spawn(read_shard(
            client.clone(),
            args.stream.clone(),
            shard,
            start.clone(),
            follow,
            sender.clone(),
        )));
    }
    drop(sender);
    let mut count = 0;
    while let Some(line) = lines.recv().await {
        if args.connection.json {
            out!("{}", serde_json::to_string(&line)?);
        } else {
            out!("{}  {}  {}  {}", line.shard_id, line.sequence_number, line.partition_key, line.data);
        }
        count += 1;
        if args.limit.is_some_and(|limit| count >= limit) {
            break;
        }
    }
    for reader in readers {
        reader.abort();
    }
    Ok(())
}
