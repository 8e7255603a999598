//! Crash safety under SIGKILL: concurrent producers, the server killed at random moments and
//! restarted, and afterwards every acknowledged record readable exactly once, where it was
//! acknowledged, with per-shard sequence order equal to acknowledgement order. The data-plane
//! suite runs a few cycles; `crash --cycles 200` (this crate's binary) runs the long mode.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use rand::Rng;
use shardline_proto::sequence::SequenceNumber;

use crate::{create_active_stream, read_shard, Server};

const PRODUCERS: usize = 6;
const SHARDS: usize = 4;

#[derive(Debug, Clone)]
struct Ack {
    data: String,
    shard: String,
    sequence: Option<SequenceNumber>,
    sent: Instant,
    acked: Instant,
}

async fn produce(
    client: aws_sdk_kinesis::Client,
    round: usize,
    producer: usize,
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<Ack>>>,
) {
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let sent = Instant::now();
        if n.is_multiple_of(2) {
            let data: Vec<String> = (0..25).map(|i| format!("r{round}-p{producer}-n{n}-{i}")).collect();
            let entries = data
                .iter()
                .map(|d| PutRecordsRequestEntry::builder().partition_key(d).data(Blob::new(d.as_bytes())).build())
                .collect::<Result<Vec<_>, _>>();
            let Ok(entries) = entries else { return };
            let Ok(out) = client.put_records().stream_name("crash").set_records(Some(entries)).send().await else {
                return;
            };
            let acked = Instant::now();
            let mut acks = acks.lock().unwrap_or_else(|p| p.into_inner());
            for (d, r) in data.into_iter().zip(out.records()) {
                let (Some(shard), Some(seq)) = (r.shard_id(), r.sequence_number()) else { continue };
                acks.push(Ack { data: d, shard: shard.to_owned(), sequence: SequenceNumber::parse(seq), sent, acked });
            }
        } else {
            let d = format!("r{round}-p{producer}-n{n}");
            let Ok(out) =
                client.put_record().stream_name("crash").partition_key(&d).data(Blob::new(d.as_bytes())).send().await
            else {
                return;
            };
            let acked = Instant::now();
            let ack = Ack {
                data: d,
                shard: out.shard_id().to_owned(),
                sequence: SequenceNumber::parse(out.sequence_number()),
                sent,
                acked,
            };
            acks.lock().unwrap_or_else(|p| p.into_inner()).push(ack);
        }
    }
}

fn round_of(data: &str) -> usize {
    data.trim_start_matches('r').split('-').next().and_then(|r| r.parse().ok()).unwrap_or(usize::MAX)
}

/// What a run found.
#[derive(Debug, Clone, Copy)]
pub struct Report {
    /// Records acknowledged.
    pub acknowledged: usize,
    /// Records stored at the end (acknowledged, or pending when a kill came).
    pub stored: usize,
    /// Kills.
    pub kills: usize,
}

/// Runs `cycles` kill-and-restart cycles and checks the stream afterwards.
pub async fn sigkill_cycles(cycles: usize, progress: &dyn Fn(usize)) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir()?;
    let mut server = Server::start(&dir, &[])?;
    create_active_stream(&server.client(), "crash", SHARDS as i32).await?;
    let acks = Arc::new(Mutex::new(Vec::<Ack>::new()));

    for round in 0..cycles {
        let stop = Arc::new(AtomicBool::new(false));
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| tokio::spawn(produce(server.client(), round, p, stop.clone(), acks.clone())))
            .collect();
        let delay = rand::rng().random_range(300..1500);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        server.kill()?;
        stop.store(true, Ordering::Relaxed);
        for producer in producers {
            producer.await?;
        }
        server.restart()?;
        progress(round + 1);
    }

    let acks = acks.lock().unwrap_or_else(|p| p.into_inner()).clone();
    ensure!(acks.len() > 500, "the producers should have been acknowledged plenty of records, got {}", acks.len());
    let client = server.client();
    let mut stored: HashMap<String, Vec<(String, Option<SequenceNumber>)>> = HashMap::new();
    for shard in 0..SHARDS {
        let shard_id = format!("shardId-{shard:012}");
        let records = read_shard(&client, "crash", &shard_id).await?;
        let mut previous_round = 0;
        for (seq, _, data) in records {
            let data = String::from_utf8(data)?;
            // Sequence numbers issued after a restart are above every earlier one.
            let round = round_of(&data);
            ensure!(round >= previous_round, "{shard_id}: round {round} record after a round {previous_round} record");
            previous_round = round;
            stored.entry(data).or_default().push((shard_id.clone(), SequenceNumber::parse(&seq)));
        }
    }
    // Nothing is stored twice, acknowledged or not.
    for (data, places) in &stored {
        ensure!(places.len() == 1, "{data} stored {} times", places.len());
    }
    // Every acknowledged record is there, where and as it was acknowledged.
    for ack in &acks {
        let Some(places) = stored.get(&ack.data) else { bail!("acknowledged record {} was lost", ack.data) };
        ensure!(places[0] == (ack.shard.clone(), ack.sequence), "{} is not where it was acknowledged", ack.data);
    }
    // Per shard, acknowledgement order is sequence order: a record acknowledged before another
    // was sent has the smaller sequence number.
    let mut by_shard: HashMap<&str, Vec<&Ack>> = HashMap::new();
    for ack in &acks {
        by_shard.entry(ack.shard.as_str()).or_default().push(ack);
    }
    for (shard, mut list) in by_shard {
        list.sort_by_key(|a| a.sequence);
        let mut earliest_ack_above: Option<Instant> = None;
        for ack in list.iter().rev() {
            if let Some(earliest) = earliest_ack_above {
                ensure!(
                    earliest >= ack.sent,
                    "{shard}: a record with a higher sequence number was acknowledged before {} was sent",
                    ack.data
                );
            }
            earliest_ack_above = Some(earliest_ack_above.map_or(ack.acked, |e| e.min(ack.acked)));
        }
    }
    Ok(Report { acknowledged: acks.len(), stored: stored.len(), kills: cycles })
}
