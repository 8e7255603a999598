//! Subscriptions have SubscribeToShard's rules on both fronts: a per-server cap, a lifetime
//! (gRPC Subscribe included), one per subscriber and shard; the events they hold for slow
//! clients are bounded in bytes server-wide; and clients that take nothing cannot keep a
//! stopping server alive past its drain timeout.

use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{ShardIteratorType, StartingPosition};
use shardline_proto::v1 as pb;
use shardline_proto::v1::records_client::RecordsClient;
use shardline_tests::{code, create_active_stream, Server, ACCOUNT, REGION};
use tonic::transport::{Channel, Endpoint};

fn from_start(stream: &str, application: &str) -> pb::GetRecordsRequest {
    pb::GetRecordsRequest {
        stream_name: stream.into(),
        shard_id: "shardId-000000000000".into(),
        position: pb::StartingPosition::TrimHorizon.into(),
        consumer: application.into(),
        ..Default::default()
    }
}

/// A connection whose client grants the server only HTTP/2's minimum flow-control window.
async fn stingy_channel(endpoint: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(endpoint.to_owned())?
        .initial_stream_window_size(Some(65_535))
        .initial_connection_window_size(Some(65_535))
        .connect()
        .await?)
}

#[tokio::test]
async fn the_server_caps_subscriptions_on_both_fronts() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &["--max-subscriptions", "2"])?;
    let client = server.client();
    create_active_stream(&client, "capped", 1).await?;
    let mut records = RecordsClient::new(Channel::from_shared(server.endpoint.clone())?.connect().await?);
    let first = records.subscribe(from_start("capped", "a")).await?.into_inner();
    let _second = records.subscribe(from_start("capped", "b")).await?.into_inner();
    let refused = records.subscribe(from_start("capped", "c")).await.expect_err("over the cap");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{refused:?}");
    assert_eq!(
        refused.metadata().get("x-shardline-error").and_then(|v| v.to_str().ok()),
        Some("LimitExceededException")
    );

    let stream_arn = format!("arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/capped");
    let registered = client.register_stream_consumer().stream_arn(&stream_arn).consumer_name("fan").send().await?;
    let consumer_arn = registered.consumer().expect("consumer").consumer_arn().to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    let subscribe = || {
        client.subscribe_to_shard().consumer_arn(&consumer_arn).shard_id("shardId-000000000000").starting_position(
            StartingPosition::builder().r#type(ShardIteratorType::TrimHorizon).build().expect("position"),
        )
    };
    let refused = loop {
        let attempt = subscribe().send().await;
        match attempt {
            Err(err) if code(&err) == "ResourceInUseException" && Instant::now() < deadline => {
                // The consumer is still CREATING.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => break err,
            Ok(_) => anyhow::bail!("SubscribeToShard opened past the cap"),
        }
    };
    assert_eq!(code(&refused), "LimitExceededException");

    // A closed subscription frees its place.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match records.subscribe(from_start("capped", "c")).await {
            Ok(_) => break,
            Err(status) if status.code() == tonic::Code::ResourceExhausted && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => anyhow::bail!("the freed place was not given: {status:?}"),
        }
    }
    Ok(())
}

#[tokio::test]
async fn grpc_subscriptions_end_after_their_lifetime() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &["--subscription-lifetime-secs", "2"])?;
    create_active_stream(&server.client(), "brief", 1).await?;
    let mut records = RecordsClient::new(Channel::from_shared(server.endpoint.clone())?.connect().await?);
    let started = Instant::now();
    let mut events = records.subscribe(from_start("brief", "app")).await?.into_inner();
    while tokio::time::timeout(Duration::from_secs(10), events.message()).await??.is_some() {}
    let lasted = started.elapsed();
    assert!(lasted >= Duration::from_millis(1900) && lasted < Duration::from_secs(5), "lasted {lasted:?}");
    // Its place is free again at once.
    records.subscribe(from_start("brief", "app")).await?;
    Ok(())
}

/// Twenty subscribers that grant no flow-control window, each from the start of a 60 MiB
/// shard: the server holds at most its subscription buffer for them, and SIGTERM still stops
/// it within the drain timeout.
#[tokio::test]
async fn stalled_subscribers_hold_bounded_memory_and_cannot_block_shutdown() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut server = Server::start(&dir, &["--subscription-buffer-mib", "64", "--drain-timeout-ms", "2000"])?;
    let client = server.client();
    create_active_stream(&client, "heavy", 1).await?;
    // The largest record a default stream takes: data and key within 1 MiB.
    let megabyte = vec![7u8; (1 << 20) - 16];
    for i in 0..60 {
        client
            .put_record()
            .stream_name("heavy")
            .partition_key(format!("k{i}"))
            .data(Blob::new(megabyte.clone()))
            .send()
            .await?;
    }
    let before = server.peak_memory_bytes()?;
    let mut stalled = Vec::new();
    for i in 0..20 {
        let mut records = RecordsClient::new(stingy_channel(&server.endpoint).await?);
        let events = records.subscribe(from_start("heavy", &format!("app-{i}"))).await?.into_inner();
        stalled.push((records, events));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let grown = server.peak_memory_bytes()?.saturating_sub(before);
    assert!(grown < 400 << 20, "20 stalled subscribers grew the server by {} MiB", grown >> 20);

    let started = Instant::now();
    tokio::task::spawn_blocking(move || server.terminate()).await??;
    assert!(started.elapsed() < Duration::from_secs(6), "stop took {:?}", started.elapsed());
    drop(stalled);
    Ok(())
}
