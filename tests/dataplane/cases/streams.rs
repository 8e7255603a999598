//! Stream lifecycle, description, listing and addressing.

use aws_sdk_kinesis::types::{ShardFilter, ShardFilterType, StreamMode, StreamModeDetails, StreamStatus};
use shardline_tests::{code, create_active_stream, message, wait_for_status, Server, ACCOUNT};

#[tokio::test]
async fn lifecycle_from_creating_to_deleted() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &["--stream-transition-ms", "300"])?;
    let client = server.client();
    client.create_stream().stream_name("orders").shard_count(3).send().await?;
    let summary = client.describe_stream_summary().stream_name("orders").send().await?;
    assert_eq!(summary.stream_description_summary().map(|s| s.stream_status().clone()), Some(StreamStatus::Creating));
    // Records cannot be put into a CREATING stream.
    let err = client.put_record().stream_name("orders").partition_key("k").data(b"x".to_vec().into()).send().await;
    assert_eq!(code(&err.expect_err("creating")), "ResourceNotFoundException");
    wait_for_status(&client, "orders", StreamStatus::Active).await?;

    let description = client.describe_stream().stream_name("orders").send().await?;
    let description = description.stream_description().expect("description");
    assert_eq!(description.stream_arn(), format!("arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/orders"));
    assert_eq!(description.retention_period_hours(), 24);
    assert_eq!(description.stream_mode_details().map(|m| m.stream_mode().clone()), Some(StreamMode::Provisioned));
    let shards = description.shards();
    assert_eq!(shards.len(), 3);
    let ids: Vec<_> = shards.iter().map(|s| s.shard_id()).collect();
    assert_eq!(ids, ["shardId-000000000000", "shardId-000000000001", "shardId-000000000002"]);
    let ranges: Vec<_> = shards
        .iter()
        .map(|s| {
            let r = s.hash_key_range().expect("range");
            (r.starting_hash_key().to_owned(), r.ending_hash_key().to_owned())
        })
        .collect();
    // Exactly the ranges Kinesis gives a 3-shard stream.
    assert_eq!(
        ranges,
        [
            ("0".to_owned(), "113427455640312821154458202477256070484".to_owned()),
            (
                "113427455640312821154458202477256070485".to_owned(),
                "226854911280625642308916404954512140969".to_owned()
            ),
            (
                "226854911280625642308916404954512140970".to_owned(),
                "340282366920938463463374607431768211455".to_owned()
            ),
        ]
    );
    assert!(shards.iter().all(|s| s.sequence_number_range().and_then(|r| r.ending_sequence_number()).is_none()));

    let summary = client.describe_stream_summary().stream_name("orders").send().await?;
    assert_eq!(summary.stream_description_summary().map(|s| s.open_shard_count()), Some(3));

    client.delete_stream().stream_name("orders").send().await?;
    let summary = client.describe_stream_summary().stream_name("orders").send().await?;
    assert_eq!(summary.stream_description_summary().map(|s| s.stream_status().clone()), Some(StreamStatus::Deleting));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match client.describe_stream_summary().stream_name("orders").send().await {
            Err(err) if code(&err) == "ResourceNotFoundException" => break,
            _ if std::time::Instant::now() > deadline => anyhow::bail!("stream never disappeared"),
            _ => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    // The name is free again, and the new stream starts empty.
    create_active_stream(&client, "orders", 1).await?;
    let list = client.list_streams().send().await?;
    assert_eq!(list.stream_names(), ["orders"]);
    Ok(())
}

#[tokio::test]
async fn create_stream_enforces_names_counts_and_limits() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &["--shard-limit", "10"])?;
    let client = server.client();
    for bad in ["has space", "slash/name", &"x".repeat(129)] {
        let err = client.create_stream().stream_name(bad).shard_count(1).send().await.expect_err(bad);
        assert_eq!(code(&err), "ValidationException", "{bad}");
    }
    let err = client.create_stream().stream_name("zero").shard_count(0).send().await.expect_err("zero shards");
    assert_eq!(code(&err), "ValidationException");
    assert!(message(&err).contains("greater than or equal to 1"), "{}", message(&err));

    create_active_stream(&client, "first", 6).await?;
    let err = client.create_stream().stream_name("first").shard_count(1).send().await.expect_err("duplicate");
    assert_eq!(code(&err), "ResourceInUseException");
    let err = client.create_stream().stream_name("second").shard_count(5).send().await.expect_err("over limit");
    assert_eq!(code(&err), "LimitExceededException");
    create_active_stream(&client, "second", 4).await?;

    // ON_DEMAND without a shard count gets Kinesis' default of 4 shards.
    let dir2 = tempfile::tempdir()?;
    let server2 = Server::start(&dir2, &[])?;
    let client2 = server2.client();
    client2
        .create_stream()
        .stream_name("od")
        .stream_mode_details(StreamModeDetails::builder().stream_mode(StreamMode::OnDemand).build()?)
        .send()
        .await?;
    wait_for_status(&client2, "od", StreamStatus::Active).await?;
    let summary = client2.describe_stream_summary().stream_name("od").send().await?;
    let summary = summary.stream_description_summary().expect("summary");
    assert_eq!(summary.open_shard_count(), 4);
    assert_eq!(summary.stream_mode_details().map(|m| m.stream_mode().clone()), Some(StreamMode::OnDemand));
    Ok(())
}

#[tokio::test]
async fn describe_and_list_paginate() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let client = server.client();
    create_active_stream(&client, "wide", 5).await?;

    let page = client.describe_stream().stream_name("wide").limit(2).send().await?;
    let page = page.stream_description().expect("description");
    assert!(page.has_more_shards());
    assert_eq!(page.shards().len(), 2);
    let page =
        client.describe_stream().stream_name("wide").exclusive_start_shard_id("shardId-000000000003").send().await?;
    let ids: Vec<_> = page.stream_description().expect("d").shards().iter().map(|s| s.shard_id().to_owned()).collect();
    assert_eq!(ids, ["shardId-000000000004"]);

    let mut seen = Vec::new();
    let mut page = client.list_shards().stream_name("wide").max_results(2).send().await?;
    loop {
        seen.extend(page.shards().iter().map(|s| s.shard_id().to_owned()));
        let Some(token) = page.next_token() else { break };
        page = client.list_shards().next_token(token).max_results(2).send().await?;
    }
    assert_eq!(seen.len(), 5);
    let token =
        client.list_shards().stream_name("wide").max_results(1).send().await?.next_token().expect("token").to_owned();
    let err = client.list_shards().stream_name("wide").next_token(token).send().await.expect_err("both");
    assert_eq!(code(&err), "InvalidArgumentException");
    let err = client.list_shards().send().await.expect_err("neither");
    assert_eq!(code(&err), "InvalidArgumentException");

    let after = client
        .list_shards()
        .stream_name("wide")
        .shard_filter(
            ShardFilter::builder().r#type(ShardFilterType::AfterShardId).shard_id("shardId-000000000002").build()?,
        )
        .send()
        .await?;
    assert_eq!(after.shards().len(), 2);
    let latest = client
        .list_shards()
        .stream_name("wide")
        .shard_filter(ShardFilter::builder().r#type(ShardFilterType::AtLatest).build()?)
        .send()
        .await?;
    assert_eq!(latest.shards().len(), 5);
    let err = client
        .list_shards()
        .stream_name("wide")
        .shard_filter(ShardFilter::builder().r#type(ShardFilterType::AtTimestamp).build()?)
        .send()
        .await
        .expect_err("no timestamp");
    assert_eq!(code(&err), "InvalidArgumentException");

    for name in ["s-a", "s-b", "s-c", "s-d"] {
        create_active_stream(&client, name, 1).await?;
    }
    let mut names = Vec::new();
    let mut page = client.list_streams().limit(2).send().await?;
    loop {
        names.extend(page.stream_names().iter().cloned());
        assert_eq!(page.stream_summaries().len(), page.stream_names().len());
        if !page.has_more_streams() {
            break;
        }
        page = client.list_streams().limit(2).next_token(page.next_token().expect("token")).send().await?;
    }
    assert_eq!(names, ["s-a", "s-b", "s-c", "s-d", "wide"]);
    let page = client.list_streams().exclusive_start_stream_name("s-c").send().await?;
    assert_eq!(page.stream_names(), ["s-d", "wide"]);
    assert!(!page.has_more_streams());
    Ok(())
}

#[tokio::test]
async fn streams_are_addressed_by_name_or_arn() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let client = server.client();
    create_active_stream(&client, "byarn", 1).await?;
    let arn = format!("arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/byarn");
    let summary = client.describe_stream_summary().stream_arn(&arn).send().await?;
    assert_eq!(summary.stream_description_summary().map(|s| s.stream_name().to_owned()), Some("byarn".into()));
    let put = client.put_record().stream_arn(&arn).partition_key("k").data(b"v".to_vec().into()).send().await?;
    assert_eq!(put.shard_id(), "shardId-000000000000");

    let err =
        client.describe_stream_summary().stream_arn("arn:aws:kinesis:us-east-1:999999999999:stream/byarn").send().await;
    assert_eq!(code(&err.expect_err("other account")), "ResourceNotFoundException");
    let err = client.describe_stream_summary().stream_arn(&arn).stream_name("other").send().await;
    assert_eq!(code(&err.expect_err("mismatch")), "InvalidArgumentException");
    let err = client.describe_stream_summary().stream_arn("not-an-arn").send().await;
    assert_eq!(code(&err.expect_err("malformed")), "ValidationException");
    let err = client.describe_stream_summary().send().await;
    assert_eq!(code(&err.expect_err("neither")), "InvalidArgumentException");
    let err = client.describe_stream().stream_name("missing").send().await;
    assert_eq!(code(&err.expect_err("missing")), "ResourceNotFoundException");
    let err = client.delete_stream().stream_name("missing").send().await;
    assert_eq!(code(&err.expect_err("missing")), "ResourceNotFoundException");
    Ok(())
}
