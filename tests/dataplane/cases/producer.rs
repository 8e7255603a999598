//! The KPL-like producer against a real server: aggregated records land on the shard of every
//! key inside them and come apart again through GetRecords and the worker; records refused for
//! throughput are retried to completion without loss or duplicates.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_kinesis::types::ShardIteratorType;
use shardline::consumer::{Checkpointer, Position, ProcessRecordsInput, ShardRecordProcessor, Worker, WorkerConfig};
use shardline::producer::aggregation::deaggregate;
use shardline::producer::{Producer, ProducerConfig};
use shardline_tests::{create_active_stream, expected_shard, shard_ranges, Server};
use tokio_util::sync::CancellationToken;

/// Every Kinesis record of every shard: (shard, data).
async fn read_all(client: &aws_sdk_kinesis::Client, stream: &str) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for (shard, _, _) in shard_ranges(client, stream).await? {
        let records = shardline_tests::read_shard(client, stream, &shard).await?;
        out.extend(records.into_iter().map(|(_, _, data)| (shard.clone(), data)));
    }
    Ok(out)
}

struct Collect(Arc<Mutex<Vec<(String, u64, bool)>>>);

impl ShardRecordProcessor for Collect {
    async fn initialize(&mut self, _shard_id: &str, _position: &Position) {}
    async fn process_records(&mut self, input: ProcessRecordsInput<'_>) {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        seen.extend(
            input
                .records
                .iter()
                .map(|r| (String::from_utf8_lossy(&r.data).into_owned(), r.sub_sequence_number, r.aggregated)),
        );
    }
    async fn shard_ended(&mut self, checkpointer: &Checkpointer) {
        let _ = checkpointer.checkpoint_shard_end().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregated_records_round_trip_through_get_records_and_the_worker() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let client = server.client();
    create_active_stream(&client, "agg", 4).await?;
    let producer = Producer::new(client.clone(), ProducerConfig::new("agg"));
    let mut pending = Vec::new();
    for i in 0..1000 {
        pending.push((format!("key-{i}"), producer.put(format!("key-{i}"), None, format!("value-{i}")).await?));
    }
    producer.flush().await?;
    let ranges = shard_ranges(&client, "agg").await?;
    for (key, answer) in pending {
        let stored = answer.await??;
        assert_eq!(stored.shard_id, expected_shard(&ranges, &key), "{key} must land on its own key's shard");
    }
    let metrics = producer.metrics();
    assert_eq!(metrics.user_records_stored.load(std::sync::atomic::Ordering::Relaxed), 1000);

    let kinesis_records = read_all(&client, "agg").await?;
    assert!(kinesis_records.len() < 100, "aggregation packed 1,000 records into {}", kinesis_records.len());
    let mut users = BTreeMap::new();
    for (shard, data) in &kinesis_records {
        for user in deaggregate(data).expect("every record is a KPL aggregate") {
            assert_eq!(*shard, expected_shard(&ranges, &user.partition_key));
            users.insert(user.partition_key, String::from_utf8_lossy(&user.data).into_owned());
        }
    }
    assert_eq!(users.len(), 1000);
    assert_eq!(users.get("key-7").map(String::as_str), Some("value-7"));

    let seen = Arc::new(Mutex::new(Vec::new()));
    let factory = {
        let seen = seen.clone();
        move || Collect(seen.clone())
    };
    let mut config = WorkerConfig::new("agg-app", "agg", "only");
    config.failover_time = Duration::from_secs(3);
    let worker = Worker::connect(&server.endpoint, config, factory).await?;
    let stop = CancellationToken::new();
    let task = tokio::spawn(worker.run(stop.clone()));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while seen.lock().unwrap_or_else(|p| p.into_inner()).len() < 1000 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    task.await?;
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    let values: HashSet<&String> = seen.iter().map(|(v, _, _)| v).collect();
    assert_eq!(values.len(), 1000);
    assert!(seen.iter().all(|(_, _, aggregated)| *aggregated));
    assert!(seen.iter().any(|(_, sub, _)| *sub > 0), "sub-sequence numbers are reported");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_records_are_retried_to_completion_without_duplicates() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &["--throughput-limits"])?;
    let client = shardline_tests::kinesis_client_without_retries(&server.endpoint);
    create_active_stream(&client, "busy", 1).await?;
    let mut config = ProducerConfig::new("busy");
    config.aggregation = false;
    // Far above what a shard accepts, so the server refuses records and the producer retries.
    config.shard_records_per_second = 100_000.0;
    config.shard_bytes_per_second = 100_000_000.0;
    config.linger = Duration::from_millis(5);
    config.retry_base = Duration::from_millis(50);
    let producer = Producer::new(client.clone(), config);
    let mut pending = Vec::new();
    for i in 0..3000 {
        pending.push(producer.put("same-key", None, format!("r{i}")).await?);
    }
    producer.flush().await?;
    for answer in pending {
        answer.await??;
    }
    let retries = producer.metrics().retries.load(std::sync::atomic::Ordering::Relaxed);
    assert!(retries > 0, "the server throttled and the producer retried");

    let iterator = client
        .get_shard_iterator()
        .stream_name("busy")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await?;
    let mut data = Vec::new();
    let mut next = iterator.shard_iterator;
    tokio::time::sleep(Duration::from_secs(1)).await;
    while let Some(it) = next {
        let page = match client.get_records().shard_iterator(&it).send().await {
            Ok(page) => page,
            Err(_) => {
                // Reads are throttled too; wait and retry the same iterator.
                tokio::time::sleep(Duration::from_millis(300)).await;
                next = Some(it);
                continue;
            }
        };
        data.extend(page.records().iter().map(|r| String::from_utf8_lossy(r.data().as_ref()).into_owned()));
        next = if page.records().is_empty() { None } else { page.next_shard_iterator().map(str::to_owned) };
    }
    let unique: HashSet<&String> = data.iter().collect();
    assert_eq!(data.len(), 3000, "no loss and no duplicates ({} unique)", unique.len());
    assert_eq!(unique.len(), 3000);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_mode_keeps_each_keys_order_through_retries() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &["--throughput-limits"])?;
    let client = shardline_tests::kinesis_client_without_retries(&server.endpoint);
    create_active_stream(&client, "ordered", 1).await?;
    let mut config = ProducerConfig::new("ordered");
    config.aggregation = false;
    config.ordered = true;
    config.shard_records_per_second = 100_000.0;
    config.linger = Duration::from_millis(5);
    config.retry_base = Duration::from_millis(20);
    let producer = Producer::new(client, config);
    let mut pending = Vec::new();
    for i in 0..3000 {
        let key = format!("key-{}", i % 200);
        pending.push((key.clone(), producer.put(key, None, format!("{i}")).await?));
    }
    producer.flush().await?;
    let mut last: BTreeMap<String, shardline_proto::sequence::SequenceNumber> = BTreeMap::new();
    for (key, answer) in pending {
        let sequence = shardline_tests::seq(&answer.await??.sequence_number);
        let previous = last.insert(key.clone(), sequence);
        assert!(previous.is_none_or(|p| p < sequence), "{key}: {previous:?} then {sequence}");
    }
    assert!(producer.metrics().retries.load(std::sync::atomic::Ordering::Relaxed) > 0, "throttled and retried");
    Ok(())
}
