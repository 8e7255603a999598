//! The `shardline.v1` gRPC services through a tonic client: admin on the internal port (with
//! the token), puts, reads and a subscription on the Kinesis port that receives records put
//! after it opened, the per-stream throughput switch, and errors carrying the Kinesis error
//! type.

use std::time::{Duration, Instant};

use shardline_proto::v1 as pb;
use shardline_proto::v1::admin_client::AdminClient;
use shardline_proto::v1::records_client::RecordsClient;
use shardline_tests::{Internal, Server};
use tonic::transport::Channel;

async fn active(admin: &mut AdminClient<Internal>, name: &str, shards: u32) -> anyhow::Result<pb::StreamDescription> {
    admin.create_stream(pb::CreateStreamRequest { stream_name: name.into(), shard_count: shards }).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let description =
            admin.describe_stream(pb::DescribeStreamRequest { stream_name: name.into() }).await?.into_inner();
        if description.status == i32::from(pb::StreamStatus::Active) {
            return Ok(description);
        }
        anyhow::ensure!(Instant::now() < deadline, "{name} never became ACTIVE");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn latest(stream: &str) -> pb::GetRecordsRequest {
    pb::GetRecordsRequest {
        stream_name: stream.into(),
        shard_id: "shardId-000000000000".into(),
        position: pb::StartingPosition::Latest.into(),
        consumer: "app".into(),
        ..Default::default()
    }
}

fn entry(key: &str, data: &str) -> pb::PutRecordEntry {
    pb::PutRecordEntry { partition_key: key.into(), explicit_hash_key: None, data: data.as_bytes().to_vec() }
}

#[tokio::test]
async fn grpc_puts_reads_and_subscribes_on_the_kinesis_port() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let channel = Channel::from_shared(server.endpoint.clone())?.connect().await?;
    let mut admin = AdminClient::new(server.internal().await?);
    let mut records = RecordsClient::new(channel);
    let description = active(&mut admin, "rpc", 1).await?;
    assert_eq!(description.shards.len(), 1);

    let one = records
        .put(pb::PutRecordRequest { stream_name: "rpc".into(), record: Some(entry("k", "first")) })
        .await?
        .into_inner();
    assert_eq!(one.shard_id, "shardId-000000000000");
    let batch = records
        .put_records(pb::PutRecordsRequest {
            stream_name: "rpc".into(),
            records: vec![entry("a", "second"), entry("b", "third")],
        })
        .await?
        .into_inner();
    assert_eq!(batch.failed_record_count, 0);

    let read = records
        .get_records(pb::GetRecordsRequest {
            stream_name: "rpc".into(),
            shard_id: "shardId-000000000000".into(),
            position: pb::StartingPosition::TrimHorizon.into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let data: Vec<_> = read.records.iter().map(|r| String::from_utf8_lossy(&r.data).into_owned()).collect();
    assert_eq!(data, vec!["first", "second", "third"]);
    assert_eq!(read.continuation_sequence_number, batch.records[1].sequence_number);
    let after = records
        .get_records(pb::GetRecordsRequest {
            stream_name: "rpc".into(),
            shard_id: "shardId-000000000000".into(),
            position: pb::StartingPosition::AfterSequenceNumber.into(),
            sequence_number: one.sequence_number.clone(),
            limit: 1,
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(after.records.len(), 1);
    assert_eq!(after.records[0].data, b"second");

    let mut subscription = records.subscribe(latest("rpc")).await?.into_inner();
    records.put(pb::PutRecordRequest { stream_name: "rpc".into(), record: Some(entry("k", "pushed")) }).await?;
    let mut pushed = Vec::new();
    while pushed.is_empty() {
        let event = tokio::time::timeout(Duration::from_secs(10), subscription.message()).await??.expect("event");
        pushed.extend(event.records.into_iter().map(|r| r.data));
    }
    assert_eq!(pushed, vec![b"pushed".to_vec()]);
    // One subscription per application and shard: a newer one replaces the open one, which ends.
    let _replacement = records.subscribe(latest("rpc")).await?.into_inner();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = subscription.message().await {}
    })
    .await;
    assert!(ended.is_ok(), "the replaced subscription kept going");
    let mut anonymous = latest("rpc");
    anonymous.consumer.clear();
    let anonymous = records.subscribe(anonymous).await.expect_err("no consumer");
    assert_eq!(anonymous.code(), tonic::Code::InvalidArgument, "{anonymous:?}");
    let mut other_application = latest("rpc");
    other_application.consumer = "other".into();
    let mut open_subscription = records.subscribe(other_application).await?.into_inner();

    // Errors carry the Kinesis type.
    let missing =
        admin.describe_stream(pb::DescribeStreamRequest { stream_name: "nope".into() }).await.expect_err("missing");
    assert_eq!(missing.code(), tonic::Code::NotFound);
    assert_eq!(
        missing.metadata().get("x-shardline-error").and_then(|v| v.to_str().ok()),
        Some("ResourceNotFoundException")
    );
    let bad = records
        .put(pb::PutRecordRequest { stream_name: "rpc".into(), record: Some(entry("", "x")) })
        .await
        .expect_err("empty key");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);

    // Resharding through admin: the split children appear.
    admin
        .split_shard(pb::SplitShardRequest {
            stream_name: "rpc".into(),
            shard_id: "shardId-000000000000".into(),
            new_starting_hash_key: (1u128 << 127).to_string(),
        })
        .await?;
    let split = admin.describe_stream(pb::DescribeStreamRequest { stream_name: "rpc".into() }).await?.into_inner();
    assert_eq!(split.shards.len(), 3);
    assert!(split.shards[0].ending_sequence_number.is_some());

    // An open subscription does not hold up a graceful stop: SIGTERM ends it and the server exits.
    let mut server = server;
    let started = Instant::now();
    tokio::task::spawn_blocking(move || server.terminate()).await??;
    assert!(started.elapsed() < Duration::from_secs(5), "stop took {:?}", started.elapsed());
    while let Ok(Some(_)) = open_subscription.message().await {}
    Ok(())
}

#[tokio::test]
async fn the_throughput_switch_is_per_stream() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let channel = Channel::from_shared(server.endpoint.clone())?.connect().await?;
    let mut admin = AdminClient::new(server.internal().await?);
    let mut records = RecordsClient::new(channel);
    active(&mut admin, "limited", 1).await?;
    active(&mut admin, "free", 1).await?;
    admin
        .set_throughput_limits(pb::SetThroughputLimitsRequest {
            stream_name: "limited".into(),
            limits: pb::ThroughputLimits::On.into(),
        })
        .await?;
    for (stream, expect_failures) in [("limited", true), ("free", false)] {
        let mut failed = 0;
        for _ in 0..3 {
            let batch = (0..500).map(|i| entry("same", &i.to_string())).collect();
            failed += records
                .put_records(pb::PutRecordsRequest { stream_name: stream.into(), records: batch })
                .await?
                .into_inner()
                .failed_record_count;
        }
        assert_eq!(failed > 0, expect_failures, "{stream}: {failed} failed");
    }
    Ok(())
}

#[tokio::test]
async fn lease_calls_refuse_bad_input_with_typed_statuses() -> anyhow::Result<()> {
    use shardline_proto::v1::leases_client::LeasesClient;

    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let channel = Channel::from_shared(server.endpoint.clone())?.connect().await?;
    let mut admin = AdminClient::new(server.internal().await?);
    let mut leases = LeasesClient::new(channel);
    active(&mut admin, "leased", 1).await?;
    let list = |application: &str| pb::ListLeasesRequest {
        application: application.into(),
        stream_name: "leased".into(),
        initial_position: None,
    };
    let listed = leases.list_leases(list("app")).await?.into_inner().leases;
    assert_eq!(listed.len(), 1);
    let update = |owner: &str, shard: &str, counter: u64| pb::UpdateLeaseRequest {
        application: "app".into(),
        stream_name: "leased".into(),
        shard_id: shard.into(),
        expected_counter: counter,
        owner: owner.into(),
    };
    let code = |status: &tonic::Status| {
        status.metadata().get("x-shardline-error").and_then(|v| v.to_str().ok()).map(str::to_owned)
    };

    let bad_name = leases.list_leases(list("no spaces allowed")).await.expect_err("bad application");
    assert_eq!(
        (bad_name.code(), code(&bad_name).as_deref()),
        (tonic::Code::InvalidArgument, Some("InvalidArgumentException"))
    );
    let missing_stream = leases
        .list_leases(pb::ListLeasesRequest {
            application: "app".into(),
            stream_name: "nope".into(),
            initial_position: None,
        })
        .await
        .expect_err("missing stream");
    assert_eq!(missing_stream.code(), tonic::Code::NotFound);
    let no_owner = leases.take_lease(update("", "shardId-000000000000", 0)).await.expect_err("no owner");
    assert_eq!(no_owner.code(), tonic::Code::InvalidArgument);
    let no_shard = leases.take_lease(update("w", "shardId-000000000009", 0)).await.expect_err("no shard");
    assert_eq!(no_shard.code(), tonic::Code::NotFound);
    let taken = leases.take_lease(update("w", "shardId-000000000000", 0)).await?.into_inner();
    assert_eq!(taken.lease_counter, 1);
    let stale = leases.renew_lease(update("w", "shardId-000000000000", 0)).await.expect_err("stale counter");
    assert_eq!((stale.code(), code(&stale).as_deref()), (tonic::Code::Aborted, Some("LeaseConflictException")));
    let no_kind = leases
        .checkpoint(pb::CheckpointRequest {
            lease: Some(update("w", "shardId-000000000000", 1)),
            checkpoint: Some(pb::Checkpoint::default()),
        })
        .await
        .expect_err("checkpoint without a kind");
    assert_eq!(no_kind.code(), tonic::Code::InvalidArgument);
    let deleted =
        leases.delete_application(pb::DeleteApplicationRequest { application: "app".into() }).await?.into_inner();
    assert_eq!(deleted.deleted, 1);
    Ok(())
}
