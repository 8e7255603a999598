//! The read-back phase of `shardctl bench`: every open shard of every stream read with
//! GetRecords, `READERS` shards at a time, counting what it holds since the run began.
//!
//! A stream the run created holds only this run's records and is read from TRIM_HORIZON, with
//! iterators taken when its shard's turn comes: 10,000 iterators taken before the run could
//! expire (Kinesis: after 5 minutes) before the last shard is read. A stream that existed is
//! read from LATEST iterators taken before the first put ([`starts`]).

use std::collections::HashSet;
use std::time::Instant;

use anyhow::Context;
use aws_sdk_kinesis::types::ShardIteratorType;
use futures_util::{stream, StreamExt as _, TryStreamExt as _};
use indicatif::{ProgressBar, ProgressStyle};

use super::streams::Target;
use crate::connection::explain;

/// GetRecords readers (and GetShardIterator calls) at once.
const READERS: usize = 64;

/// Where the read-back of one shard starts.
pub struct Start {
    stream: String,
    shard: String,
    /// A LATEST iterator taken before the run, or `None` for TRIM_HORIZON.
    iterator: Option<String>,
}

/// What the read-back found.
pub struct ReadBack {
    /// User records read (aggregated records counted by their user records).
    pub records: u64,
    /// Bytes of user record data read.
    pub bytes: u64,
    /// Length of the phase.
    pub seconds: f64,
}

/// The read-back start of every open shard; call before anything is put.
pub async fn starts(client: &aws_sdk_kinesis::Client, targets: &[Target]) -> anyhow::Result<Vec<Start>> {
    let shards = targets.iter().flat_map(|t| t.shards.iter().map(move |s| (t, s)));
    stream::iter(shards)
        .map(|(target, shard)| async move {
            let iterator = match target.created {
                true => None,
                false => Some(iterator(client, &target.name, &shard.id, ShardIteratorType::Latest).await?),
            };
            anyhow::Ok(Start { stream: target.name.clone(), shard: shard.id.clone(), iterator })
        })
        .buffered(READERS)
        .try_collect()
        .await
}

async fn iterator(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    shard: &str,
    kind: ShardIteratorType,
) -> anyhow::Result<String> {
    client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard)
        .shard_iterator_type(kind)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("GetShardIterator {stream} {shard}: {}", explain(&e)))?
        .shard_iterator
        .with_context(|| format!("GetShardIterator {stream} {shard}: no iterator"))
}

/// Reads every shard from its start, following a shard that closes into its children (read
/// from their start; each child once, though a merge has two parents), with a progress bar of
/// the shards done.
pub async fn run(client: &aws_sdk_kinesis::Client, starts: Vec<Start>) -> anyhow::Result<ReadBack> {
    let bar = ProgressBar::new(starts.len() as u64);
    bar.set_style(ProgressStyle::with_template("read-back {bar:30} {pos}/{len} shards")?);
    let begin = Instant::now();
    let mut waiting = starts;
    // Shards are read in the order listed.
    waiting.reverse();
    let mut readers = tokio::task::JoinSet::new();
    let (mut records, mut bytes) = (0, 0);
    let mut followed = HashSet::new();
    loop {
        while readers.len() < READERS {
            let Some(start) = waiting.pop() else { break };
            let client = client.clone();
            readers.spawn(async move {
                let iterator = match start.iterator {
                    Some(iterator) => iterator,
                    None => iterator(&client, &start.stream, &start.shard, ShardIteratorType::TrimHorizon).await?,
                };
                let read = read_shard(&client, &start.stream, &start.shard, iterator).await?;
                anyhow::Ok((start.stream, read))
            });
        }
        let Some(done) = readers.join_next().await else { break };
        let (stream, (r, b, children)) = done.context("read-back task")??;
        records += r;
        bytes += b;
        bar.inc(1);
        for child in children {
            if followed.insert((stream.clone(), child.clone())) {
                bar.inc_length(1);
                waiting.push(Start { stream: stream.clone(), shard: child, iterator: None });
            }
        }
    }
    bar.finish_and_clear();
    Ok(ReadBack { records, bytes, seconds: begin.elapsed().as_secs_f64() })
}

/// One shard to its tip or its end: records, bytes, and the children of a closed shard.
async fn read_shard(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    shard: &str,
    iterator: String,
) -> anyhow::Result<(u64, u64, Vec<String>)> {
    let (mut records, mut bytes, mut iterator) = (0u64, 0u64, iterator);
    loop {
        let page = client
            .get_records()
            .shard_iterator(&iterator)
            .limit(10_000)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("GetRecords {stream} {shard}: {}", explain(&e)))?;
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
