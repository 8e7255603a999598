//! Cluster mode without Kubernetes: two `shard-server --cluster` processes given a stream's
//! layout through the Cluster gRPC calls, exactly as the operator gives it; every Kinesis call
//! works through either server, and a reshard across both keeps every record and its order.

use std::collections::{BTreeMap, HashMap};

use anyhow::{ensure, Context, Result};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use shardline_proto::v1 as pb;
use shardline_proto::v1::cluster_client::ClusterClient;
use shardline_tests::{code, kinesis_client_without_retries, read_shard, Internal, Server};

const STREAM: &str = "orders";

async fn cluster(server: &Server) -> Result<ClusterClient<Internal>> {
    Ok(ClusterClient::new(server.internal().await?))
}

async fn put_batch(client: &aws_sdk_kinesis::Client, round: usize) -> Result<BTreeMap<String, String>> {
    let entries = (0..200)
        .map(|i| {
            PutRecordsRequestEntry::builder()
                .partition_key(format!("key-{i}"))
                .data(Blob::new(format!("{round}:{i}")))
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let out = client.put_records().stream_name(STREAM).set_records(Some(entries)).send().await?;
    ensure!(out.failed_record_count() == Some(0), "failed records: {:?}", out.records());
    Ok(out
        .records()
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("key-{i}"), r.sequence_number().unwrap_or_default().to_owned()))
        .collect())
}

async fn read_all(client: &aws_sdk_kinesis::Client) -> Result<HashMap<String, (String, String)>> {
    let shards = client.list_shards().stream_name(STREAM).send().await?;
    let mut seen = HashMap::new();
    for shard in shards.shards() {
        for (sequence, key, data) in read_shard(client, STREAM, shard.shard_id()).await? {
            let data = String::from_utf8(data)?;
            ensure!(seen.insert(sequence.clone(), (key, data)).is_none(), "record {sequence} read twice");
        }
    }
    Ok(seen)
}

#[tokio::test]
async fn two_servers_serve_one_stream_and_reshard_across_both() -> Result<()> {
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let a = Server::start_cluster(dir_a.path(), "orders-0-0", "127.0.0.1:0", &[])?;
    let b = Server::start_cluster(dir_b.path(), "orders-1-0", "127.0.0.1:0", &[])?;
    let servers = vec![
        pb::ClusterServer { id: "orders-0-0".into(), address: a.address().to_owned(), ..Default::default() },
        pb::ClusterServer { id: "orders-1-0".into(), address: b.address().to_owned(), ..Default::default() },
    ];
    let first = pb::StreamLayout {
        stream_name: STREAM.into(),
        epoch: 1,
        servers,
        retention_hours: 24,
        initial_shard_count: 4,
        initial_owners: ["orders-0-0", "orders-1-0", "orders-0-0", "orders-1-0"].map(String::from).to_vec(),
        ..Default::default()
    };
    for server in [&a, &b] {
        cluster(server).await?.assign(pb::AssignRequest { layout: Some(first.clone()) }).await?;
    }
    let (via_a, via_b) = (a.client(), b.client());

    // Topology belongs to the operator.
    let refused = via_b
        .update_shard_count()
        .stream_name(STREAM)
        .target_shard_count(8)
        .scaling_type(aws_sdk_kinesis::types::ScalingType::UniformScaling);
    let err = refused.send().await.expect_err("resharding through Kinesis is refused");
    assert_eq!(code(&err), "AccessDeniedException");
    let err = via_a.create_stream().stream_name("other").shard_count(1).send().await.expect_err("refused");
    assert_eq!(code(&err), "AccessDeniedException");

    // Written through one server, read through the other: each read is forwarded to the owner.
    let first_round = put_batch(&via_a, 1).await?;
    let read = read_all(&via_b).await?;
    assert_eq!(read.len(), 200, "every record readable through the other server");
    let state_a = cluster(&a).await?.state(pb::ClusterStateRequest { stream_name: STREAM.into() }).await?.into_inner();
    let state_b = cluster(&b).await?.state(pb::ClusterStateRequest { stream_name: STREAM.into() }).await?.into_inner();
    let stored: u64 = state_a.owned.iter().chain(&state_b.owned).map(|s| s.last_counter).sum();
    assert_eq!(stored, 200, "each record stored once, on its shard's owner");
    assert!(state_a.owned.iter().all(|s| s.last_counter > 0) && state_b.owned.iter().all(|s| s.last_counter > 0));

    // Reshard 4 -> 8 as the operator does: freeze everywhere, reshard on one, assign the rest.
    let mut endings = HashMap::new();
    let frozen = cluster(&a).await?.freeze(pb::FreezeRequest { stream_name: STREAM.into(), epoch: 1 }).await?;
    endings.extend(frozen.into_inner().owned_open.into_iter().map(|s| (s.index, s.last_counter)));
    // Only A is frozen: through A, B's records are stored and A's fail on their own, retryably
    // (failing the whole call would make the SDK put B's records twice).
    let entries = (0..40)
        .map(|i| PutRecordsRequestEntry::builder().partition_key(format!("key-{i}")).data(Blob::new("half")).build())
        .collect::<Result<Vec<_>, _>>()?;
    let half = kinesis_client_without_retries(&a.endpoint)
        .put_records()
        .stream_name(STREAM)
        .set_records(Some(entries))
        .send()
        .await?;
    let failed = half.records().iter().filter(|r| r.error_code().is_some()).count();
    assert!(failed > 0 && failed < 40, "{failed} of 40 failed");
    assert_eq!(half.failed_record_count(), Some(i32::try_from(failed)?));
    assert!(half.records().iter().filter_map(|r| r.error_code()).all(|c| c == "InternalFailure"));
    let half_stored = 40 - failed;
    let b_after = cluster(&b).await?.state(pb::ClusterStateRequest { stream_name: STREAM.into() }).await?.into_inner();
    let b_stored = |state: &pb::ClusterStateResponse| state.owned.iter().map(|s| s.last_counter).sum::<u64>();
    assert_eq!(b_stored(&b_after), b_stored(&state_b) + half_stored as u64, "B stored its records once");
    let frozen = cluster(&b).await?.freeze(pb::FreezeRequest { stream_name: STREAM.into(), epoch: 1 }).await?;
    endings.extend(frozen.into_inner().owned_open.into_iter().map(|s| (s.index, s.last_counter)));
    let blocked = kinesis_client_without_retries(&a.endpoint)
        .put_record()
        .stream_name(STREAM)
        .partition_key("key-1")
        .data(Blob::new("while frozen"))
        .send()
        .await
        .expect_err("a frozen stream refuses writes");
    assert_eq!(code(&blocked), "InternalFailure", "a retryable error");
    let resharded = cluster(&a)
        .await?
        .reshard(pb::ClusterReshardRequest {
            stream_name: STREAM.into(),
            epoch: 1,
            target_shard_count: 8,
            ending_counters: endings,
        })
        .await?
        .into_inner()
        .layout
        .context("layout")?;
    assert_eq!(resharded.epoch, 2);
    cluster(&b).await?.assign(pb::AssignRequest { layout: Some(resharded.clone()) }).await?;
    let stale = cluster(&b).await?.assign(pb::AssignRequest { layout: Some(first.clone()) }).await;
    assert_eq!(stale.expect_err("older epoch").code(), tonic::Code::FailedPrecondition);
    let open: Vec<&pb::ShardLayout> = resharded.shards.iter().filter(|s| s.ending_counter.is_none()).collect();
    assert_eq!(open.len(), 8);
    let per_server = |id: &str| open.iter().filter(|s| s.owner == id).count();
    assert_eq!((per_server("orders-0-0"), per_server("orders-1-0")), (4, 4), "children spread evenly");

    // Written through the other server now; every key's new record numbers above its old one.
    let second_round = put_batch(&via_b, 2).await?;
    let read = read_all(&via_a).await?;
    assert_eq!(read.len(), 400 + half_stored, "nothing lost across the reshard");
    for (key, before) in &first_round {
        let after = &second_round[key];
        assert!(after.len() == before.len() && after > before, "{key}: {after} after {before}");
        assert_eq!(read.get(after).map(|(k, _)| k.as_str()), Some(key.as_str()));
    }
    let listed = via_b.list_shards().stream_name(STREAM).send().await?;
    assert_eq!(listed.shards().len(), 12, "4 closed parents and 8 children");

    // Enhanced fan-out across servers: the consumer is registered on the stream's first server
    // (through B), and a subscription opened through A to a shard B holds is served by B.
    let stream_arn = "arn:aws:kinesis:us-east-1:123456789012:stream/orders";
    let registered = via_b.register_stream_consumer().stream_arn(stream_arn).consumer_name("fan").send().await?;
    let consumer_arn = registered.consumer().context("consumer")?.consumer_arn().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let described = via_a.describe_stream_consumer().consumer_arn(&consumer_arn).send().await?;
        let status = described.consumer_description().map(|d| d.consumer_status().clone());
        if status == Some(aws_sdk_kinesis::types::ConsumerStatus::Active) {
            break;
        }
        ensure!(std::time::Instant::now() < deadline, "consumer never became ACTIVE");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let on_b = open.iter().find(|s| s.owner == "orders-1-0").context("a shard on B")?;
    let shard_id = format!("shardId-{:012}", on_b.index);
    let mut subscription = via_a
        .subscribe_to_shard()
        .consumer_arn(&consumer_arn)
        .shard_id(&shard_id)
        .starting_position(
            aws_sdk_kinesis::types::StartingPosition::builder()
                .r#type(aws_sdk_kinesis::types::ShardIteratorType::Latest)
                .build()?,
        )
        .send()
        .await?;
    for i in 0..5 {
        via_b
            .put_record()
            .stream_name(STREAM)
            .partition_key("fan")
            .explicit_hash_key(&on_b.starting_hash_key)
            .data(Blob::new(format!("fan-{i}")))
            .send()
            .await?;
    }
    let mut received = Vec::new();
    while received.len() < 5 {
        let event =
            tokio::time::timeout(std::time::Duration::from_secs(10), subscription.event_stream.recv()).await??;
        if let Some(aws_sdk_kinesis::types::SubscribeToShardEventStream::SubscribeToShardEvent(event)) = event {
            received.extend(event.records().iter().map(|r| String::from_utf8_lossy(r.data().as_ref()).into_owned()));
        } else if event.is_none() {
            break;
        }
    }
    assert_eq!(received, (0..5).map(|i| format!("fan-{i}")).collect::<Vec<_>>());
    Ok(())
}
