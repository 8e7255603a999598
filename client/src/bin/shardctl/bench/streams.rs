//! The streams of one `shardctl bench` run: `--shards` spread evenly over as many streams of at
//! most `--shards-per-stream` as needed (`NAME`, `NAME-1`, `NAME-2`, …), created when missing,
//! waited on until ACTIVE, and deleted at the end when the bench created them.

use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aws_sdk_kinesis::error::ProvideErrorMetadata as _;
use aws_sdk_kinesis::types::StreamStatus;
use futures_util::{stream, StreamExt as _};
use indicatif::{ProgressBar, ProgressStyle};

use crate::connection::explain;

/// Streams created (or deleted) at once: Kinesis allows five streams in CREATING at a time.
const TRANSITIONS_AT_ONCE: usize = 5;
/// How long one stream may take to become ACTIVE.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a CreateStream or DeleteStream refused for too many transitions at once is retried.
const THROTTLED_FOR: Duration = Duration::from_secs(120);
/// Longest wait between two tries of a throttled call.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// One stream of the run and its open shards.
#[derive(Debug, Clone)]
pub struct Target {
    /// Stream name.
    pub name: String,
    /// Whether this run created it (so it holds only this run's records).
    pub created: bool,
    /// Its open shards.
    pub shards: Vec<Shard>,
}

/// An open shard and the hash keys it takes.
#[derive(Debug, Clone)]
pub struct Shard {
    /// Shard id.
    pub id: String,
    /// Its hash key range, both ends included.
    pub hash_keys: RangeInclusive<u128>,
}

/// The streams to use and their shard counts: `shards` spread evenly over streams of at most
/// `per_stream`, so that round-robin calls load every shard alike.
pub fn plan(base: &str, shards: u32, per_stream: u32) -> Vec<(String, u32)> {
    let count = shards.div_ceil(per_stream.max(1)).max(1);
    let (each, extra) = (shards / count, shards % count);
    (0..count)
        .map(|i| {
            let name = if i == 0 { base.to_owned() } else { format!("{base}-{i}") };
            (name, each + u32::from(i < extra))
        })
        .collect()
}

/// The streams ready to use, and those created on the way (to delete even when preparing
/// failed half-way).
pub struct Prepared {
    /// Names of the streams this run created.
    pub created: Vec<String>,
    /// Every stream of the plan with its open shards, or why they are not all ready.
    pub targets: anyhow::Result<Vec<Target>>,
}

/// Creates the streams of `plan` that do not exist, a few at a time, and waits until every
/// stream is ACTIVE, with a progress bar of the streams active.
pub async fn prepare(client: &aws_sdk_kinesis::Client, plan: &[(String, u32)]) -> Prepared {
    if let Err(err) = check_limit(client, plan).await {
        return Prepared { created: Vec::new(), targets: Err(err) };
    }
    let bar = ProgressBar::new(plan.len() as u64);
    if let Ok(style) = ProgressStyle::with_template("streams {bar:30} {pos}/{len} active") {
        bar.set_style(style);
    }
    let outcomes: Vec<(usize, Outcome)> = stream::iter(plan.iter().enumerate())
        .map(|(i, (name, shards))| {
            let bar = bar.clone();
            async move {
                let outcome = prepare_one(client, name, *shards).await;
                bar.inc(1);
                (i, outcome)
            }
        })
        .buffer_unordered(TRANSITIONS_AT_ONCE)
        .collect()
        .await;
    bar.finish_and_clear();
    let mut outcomes = outcomes;
    outcomes.sort_by_key(|(i, _)| *i);
    let created = outcomes.iter().filter(|(_, o)| o.created).map(|(i, _)| plan[*i].0.clone()).collect();
    let targets = outcomes
        .into_iter()
        .map(|(i, o)| o.shards.map(|shards| Target { name: plan[i].0.clone(), created: o.created, shards }))
        .collect();
    Prepared { created, targets }
}

/// What preparing one stream did.
struct Outcome {
    created: bool,
    shards: anyhow::Result<Vec<Shard>>,
}

async fn prepare_one(client: &aws_sdk_kinesis::Client, name: &str, shards: u32) -> Outcome {
    let created = match ensure_exists(client, name, shards).await {
        Ok(created) => created,
        Err(err) => return Outcome { created: false, shards: Err(err) },
    };
    let shards = async {
        wait_active(client, name).await?;
        open_shards(client, name).await
    }
    .await;
    Outcome { created, shards }
}

/// Refuses early, before creating anything, a plan the endpoint's account shard limit cannot
/// hold (when the endpoint answers DescribeLimits; kinesalite does not).
async fn check_limit(client: &aws_sdk_kinesis::Client, plan: &[(String, u32)]) -> anyhow::Result<()> {
    let Ok(limits) = client.describe_limits().send().await else { return Ok(()) };
    let mut needed = 0u64;
    for (name, shards) in plan {
        if describe_status(client, name).await?.is_none() {
            needed += u64::from(*shards);
        }
    }
    let free = u64::try_from(limits.shard_limit().saturating_sub(limits.open_shard_count())).unwrap_or(0);
    if needed > free {
        bail!(
            "the endpoint's account shard limit is {} and {} shards are open, so the {needed} shards this run \
             would create do not fit.\n{LIMIT_HINT}",
            limits.shard_limit(),
            limits.open_shard_count()
        );
    }
    Ok(())
}

/// How to raise each neighbour's account shard limit.
const LIMIT_HINT: &str = "Raise the endpoint's account shard limit (shard-server --shard-limit or \
                          SHARDLINE_SHARD_LIMIT, kinesalite --shardLimit, kinesis-mock SHARD_LIMIT) or \
                          lower --shards.";

/// The stream's status, `None` when it does not exist.
async fn describe_status(client: &aws_sdk_kinesis::Client, name: &str) -> anyhow::Result<Option<StreamStatus>> {
    match client.describe_stream_summary().stream_name(name).send().await {
        Ok(out) => Ok(out.stream_description_summary().map(|s| s.stream_status().clone())),
        Err(err) if err.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => Ok(None),
        Err(err) => bail!("DescribeStreamSummary {name}: {}", explain(&err)),
    }
}

/// Creates the stream unless it exists (waiting out a DELETING one, a previous run's); returns
/// whether it created it.
async fn ensure_exists(client: &aws_sdk_kinesis::Client, name: &str, shards: u32) -> anyhow::Result<bool> {
    let deadline = Instant::now() + ACTIVE_TIMEOUT;
    loop {
        match describe_status(client, name).await? {
            None => break,
            Some(StreamStatus::Deleting) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Some(StreamStatus::Deleting) => bail!("stream {name} is still DELETING after {ACTIVE_TIMEOUT:?}"),
            Some(_) => return Ok(false),
        }
    }
    let shard_count = i32::try_from(shards).context("shard count")?;
    let mut backoff = Backoff::new();
    loop {
        let err = match client.create_stream().stream_name(name).shard_count(shard_count).send().await {
            Ok(_) => return Ok(true),
            Err(err) => err,
        };
        // Kinesis answers LimitExceededException both for too many streams in transition at once
        // (wait and retry) and for the account's shard limit (retrying cannot help); only the
        // message tells them apart.
        let throttled = err.as_service_error().is_some_and(|e| e.is_limit_exceeded_exception());
        let message = err.as_service_error().and_then(|e| e.message()).unwrap_or_default();
        if throttled && message.to_ascii_lowercase().contains("shard limit") {
            bail!("CreateStream {name} ({shards} shards) refused: {message}\n{LIMIT_HINT}");
        }
        if !throttled || !backoff.wait().await {
            bail!("CreateStream {name} ({shards} shards): {}", explain(&err));
        }
    }
}

async fn wait_active(client: &aws_sdk_kinesis::Client, name: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + ACTIVE_TIMEOUT;
    loop {
        match describe_status(client, name).await? {
            Some(StreamStatus::Active) => return Ok(()),
            None => bail!("stream {name} vanished while the bench waited for it"),
            Some(status) if Instant::now() > deadline => {
                bail!("stream {name} is still {status} after {ACTIVE_TIMEOUT:?}")
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The stream's open shards (those without an ending sequence number), over every ListShards
/// page.
async fn open_shards(client: &aws_sdk_kinesis::Client, name: &str) -> anyhow::Result<Vec<Shard>> {
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        // A page after the first names only its token, not the stream.
        let request = match &token {
            Some(token) => client.list_shards().next_token(token),
            None => client.list_shards().stream_name(name),
        };
        let page = request
            .max_results(1000)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("ListShards {name}: {}", explain(&e)))?;
        for shard in page.shards() {
            if shard.sequence_number_range().and_then(|r| r.ending_sequence_number()).is_some() {
                continue;
            }
            let range =
                shard.hash_key_range().with_context(|| format!("shard {} has no hash key range", shard.shard_id()))?;
            let key = |text: &str| {
                text.parse::<u128>().with_context(|| format!("shard {} hash key {text}", shard.shard_id()))
            };
            let (start, end) = (key(range.starting_hash_key())?, key(range.ending_hash_key())?);
            shards.push(Shard { id: shard.shard_id().to_owned(), hash_keys: start..=end.max(start) });
        }
        match page.next_token() {
            Some(next) => token = Some(next.to_owned()),
            None => break,
        }
    }
    if shards.is_empty() {
        bail!("stream {name} has no open shard");
    }
    Ok(shards)
}

/// Deletes the streams, a few at a time, retrying a DeleteStream refused for too many at once.
pub async fn delete(client: &aws_sdk_kinesis::Client, names: &[String]) -> anyhow::Result<()> {
    let results: Vec<anyhow::Result<()>> = stream::iter(names)
        .map(|name| async move {
            let mut backoff = Backoff::new();
            loop {
                let err = match client.delete_stream().stream_name(name).send().await {
                    Ok(_) => return Ok(()),
                    Err(err) => err,
                };
                let throttled = err.as_service_error().is_some_and(|e| e.is_limit_exceeded_exception());
                if !throttled || !backoff.wait().await {
                    bail!("DeleteStream {name}: {}", explain(&err));
                }
            }
        })
        .buffer_unordered(TRANSITIONS_AT_ONCE)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Exponential backoff with jitter for throttled calls, up to `THROTTLED_FOR` in all.
struct Backoff {
    next: Duration,
    until: Instant,
}

impl Backoff {
    fn new() -> Self {
        Backoff { next: Duration::from_millis(100), until: Instant::now() + THROTTLED_FOR }
    }

    /// Sleeps before the next try; false when the time for tries is over.
    async fn wait(&mut self) -> bool {
        if Instant::now() >= self.until {
            return false;
        }
        let jitter = rand::random_range(0.5..1.0);
        tokio::time::sleep(self.next.mul_f64(jitter)).await;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_shards_evenly_over_as_few_streams_as_the_cap_allows() {
        assert_eq!(plan("b", 4, 500), vec![("b".to_owned(), 4)]);
        assert_eq!(plan("b", 500, 500), vec![("b".to_owned(), 500)]);
        assert_eq!(plan("b", 1001, 500), vec![("b".to_owned(), 334), ("b-1".to_owned(), 334), ("b-2".to_owned(), 333)]);
        let big = plan("b", 10_000, 500);
        assert_eq!(big.len(), 20);
        assert!(big.iter().all(|(_, shards)| *shards == 500));
        assert_eq!(big[19].0, "b-19");
        let odd = plan("b", 9_999, 7);
        assert!(odd.iter().all(|(_, shards)| *shards <= 7));
        assert_eq!(odd.iter().map(|(_, shards)| shards).sum::<u32>(), 9_999);
    }
}
