//! Enhanced fan-out through the AWS SDK: consumer registration and SubscribeToShard pushing
//! records put after the subscription opened, one subscription per consumer and shard,
//! ChildShards at a closed shard's end.

use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{ConsumerStatus, ShardIteratorType, StartingPosition, SubscribeToShardEventStream};
use shardline_tests::{code, create_active_stream, Server, ACCOUNT, REGION};

type Client = aws_sdk_kinesis::Client;

async fn active_consumer(client: &Client, stream_arn: &str, name: &str) -> anyhow::Result<String> {
    let registered = client.register_stream_consumer().stream_arn(stream_arn).consumer_name(name).send().await?;
    let consumer = registered.consumer().expect("consumer");
    assert_eq!(consumer.consumer_status(), &ConsumerStatus::Creating);
    let arn = consumer.consumer_arn().to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let described = client.describe_stream_consumer().consumer_arn(&arn).send().await?;
        if described.consumer_description().map(|d| d.consumer_status()) == Some(&ConsumerStatus::Active) {
            return Ok(arn);
        }
        anyhow::ensure!(Instant::now() < deadline, "consumer never became ACTIVE");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn consumers_register_list_describe_and_deregister() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let client = server.client();
    create_active_stream(&client, "efo", 1).await?;
    let stream_arn = format!("arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/efo");
    let arn = active_consumer(&client, &stream_arn, "app").await?;
    assert!(arn.starts_with(&format!("{stream_arn}/consumer/app:")), "{arn}");
    let again = client.register_stream_consumer().stream_arn(&stream_arn).consumer_name("app").send().await;
    assert_eq!(again.as_ref().map_err(code).err().as_deref(), Some("ResourceInUseException"));
    for i in 0..3 {
        client.register_stream_consumer().stream_arn(&stream_arn).consumer_name(format!("c{i}")).send().await?;
    }
    let page = client.list_stream_consumers().stream_arn(&stream_arn).max_results(3).send().await?;
    assert_eq!(page.consumers().len(), 3);
    let next = client
        .list_stream_consumers()
        .next_token(page.next_token().expect("more"))
        .stream_arn(&stream_arn)
        .send()
        .await?;
    assert_eq!(next.consumers().len(), 1);
    let by_name = client.describe_stream_consumer().stream_arn(&stream_arn).consumer_name("app").send().await?;
    let description = by_name.consumer_description().expect("description");
    assert_eq!((description.consumer_arn(), description.stream_arn()), (arn.as_str(), stream_arn.as_str()));
    let summary = client.describe_stream_summary().stream_name("efo").send().await?;
    assert_eq!(summary.stream_description_summary().and_then(|s| s.consumer_count()), Some(4));

    client.deregister_stream_consumer().consumer_arn(&arn).send().await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = client.describe_stream_consumer().consumer_arn(&arn).send().await;
        match found {
            Err(err) => {
                assert_eq!(code(&err), "ResourceNotFoundException");
                break;
            }
            Ok(_) => anyhow::ensure!(Instant::now() < deadline, "consumer never went away"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let missing = client.describe_stream_consumer().consumer_arn(format!("{stream_arn}/consumer/none:1")).send().await;
    assert_eq!(missing.as_ref().map_err(code).err().as_deref(), Some("ResourceNotFoundException"));
    Ok(())
}

#[tokio::test]
async fn subscribe_to_shard_pushes_new_records_and_ends_with_child_shards() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let client = server.client();
    create_active_stream(&client, "push", 1).await?;
    let stream_arn = format!("arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/push");
    let consumer = active_consumer(&client, &stream_arn, "reader").await?;
    client.put_record().stream_name("push").partition_key("k").data(Blob::new("before")).send().await?;

    let mut subscription = client
        .subscribe_to_shard()
        .consumer_arn(&consumer)
        .shard_id("shardId-000000000000")
        .starting_position(StartingPosition::builder().r#type(ShardIteratorType::Latest).build()?)
        .send()
        .await?;
    // A second subscription of the same consumer to the same shard is refused while this one is open.
    let second = client
        .subscribe_to_shard()
        .consumer_arn(&consumer)
        .shard_id("shardId-000000000000")
        .starting_position(StartingPosition::builder().r#type(ShardIteratorType::Latest).build()?)
        .send()
        .await;
    assert_eq!(second.as_ref().map_err(code).err().as_deref(), Some("ResourceInUseException"));

    let writer = client.clone();
    tokio::spawn(async move {
        for i in 0..20 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = writer
                .put_record()
                .stream_name("push")
                .partition_key("k")
                .data(Blob::new(format!("after-{i}")))
                .send()
                .await;
        }
    });
    let mut received = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while received.len() < 20 && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(10), subscription.event_stream.recv()).await?? {
            Some(SubscribeToShardEventStream::SubscribeToShardEvent(event)) => {
                received
                    .extend(event.records().iter().map(|r| String::from_utf8_lossy(r.data().as_ref()).into_owned()));
                assert!(!event.continuation_sequence_number().is_empty());
            }
            Some(_) => {}
            None => break,
        }
    }
    assert_eq!(
        received,
        (0..20).map(|i| format!("after-{i}")).collect::<Vec<_>>(),
        "only records put after LATEST, in order"
    );

    // Split the shard: the subscription reads the parent to its end and reports its children.
    client
        .split_shard()
        .stream_name("push")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key((1u128 << 127).to_string())
        .send()
        .await?;
    let mut children = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(10), subscription.event_stream.recv()).await?? {
        if let SubscribeToShardEventStream::SubscribeToShardEvent(event) = event {
            children.extend(event.child_shards().iter().map(|c| c.shard_id().to_owned()));
        }
    }
    assert_eq!(children, vec!["shardId-000000000001", "shardId-000000000002"]);
    Ok(())
}

/// SubscribeToShard over HTTP/2 with prior knowledge (as the Java SDK's Netty client speaks
/// it), decoded frame by frame: initial-response first, then events; the call ends by itself
/// after the subscription lifetime.
#[tokio::test]
async fn subscribe_to_shard_over_http2_ends_after_its_lifetime() -> anyhow::Result<()> {
    use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};

    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &["--subscription-lifetime-secs", "2"])?;
    let client = server.client();
    create_active_stream(&client, "h2", 1).await?;
    let stream_arn = format!("arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/h2");
    let consumer = active_consumer(&client, &stream_arn, "raw").await?;
    client.put_record().stream_name("h2").partition_key("k").data(Blob::new("stored")).send().await?;

    let http2 = reqwest::Client::builder().http2_prior_knowledge().build()?;
    let body = serde_json::json!({
        "ConsumerARN": consumer,
        "ShardId": "shardId-000000000000",
        "StartingPosition": {"Type": "TRIM_HORIZON"},
    });
    let started = Instant::now();
    let request = http2
        .post(&server.endpoint)
        .header("X-Amz-Target", "Kinesis_20131202.SubscribeToShard")
        .header("Content-Type", "application/x-amz-json-1.1");
    let mut response = shardline_tests::signed(request).body(body.to_string()).send().await?;
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(
        response.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/vnd.amazon.eventstream")
    );
    let mut decoder = MessageFrameDecoder::new();
    let mut buffer = bytes::BytesMut::new();
    let mut kinds = Vec::new();
    let mut data = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        buffer.extend_from_slice(&chunk);
        while let DecodedFrame::Complete(message) = decoder.decode_frame(&mut buffer)? {
            let event_type = message.headers().iter().find(|h| h.name().as_str() == ":event-type");
            let kind =
                event_type.and_then(|h| h.value().as_string().ok()).map(|s| s.as_str().to_owned()).unwrap_or_default();
            if kind == "SubscribeToShardEvent" {
                let payload: serde_json::Value = serde_json::from_slice(message.payload())?;
                data.extend(
                    payload["Records"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|r| r["Data"].as_str().unwrap_or_default().to_owned()),
                );
            }
            kinds.push(kind);
        }
    }
    let lasted = started.elapsed();
    assert_eq!(kinds.first().map(String::as_str), Some("initial-response"));
    assert!(kinds.iter().skip(1).all(|k| k == "SubscribeToShardEvent"), "{kinds:?}");
    assert_eq!(data, vec!["c3RvcmVk"], "the stored record, base64 in the JSON payload");
    assert!(lasted >= Duration::from_secs(2) && lasted < Duration::from_secs(8), "lasted {lasted:?}");
    Ok(())
}
