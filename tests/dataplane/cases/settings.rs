//! Settings that change no record, through the AWS SDK: tags (both APIs), enhanced
//! monitoring, DescribeLimits, UpdateStreamMode, UpdateMaxRecordSize, and the operations
//! Shardline refuses with a reason.

use aws_sdk_kinesis::types::{MetricsName, StreamMode, StreamModeDetails, StreamStatus, Tag};
use shardline_tests::{code, create_active_stream, message, raw_call, wait_for_status, Server, ACCOUNT, REGION};

#[tokio::test]
async fn tags_follow_aws_limits_through_both_apis() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let client = server.client();
    create_active_stream(&client, "tagged", 1).await?;
    let arn = format!("arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/tagged");
    client.add_tags_to_stream().stream_name("tagged").tags("team", "data").tags("env", "prod").send().await?;
    client.tag_resource().resource_arn(&arn).tags("owner", "ops").send().await?;
    let listed = client.list_tags_for_stream().stream_name("tagged").limit(2).send().await?;
    let keys: Vec<_> = listed.tags().iter().map(|t| t.key().to_owned()).collect();
    assert_eq!(keys, vec!["env", "owner"]);
    assert!(listed.has_more_tags());
    let rest = client.list_tags_for_stream().stream_name("tagged").exclusive_start_tag_key("owner").send().await?;
    assert_eq!(rest.tags().iter().map(|t| (t.key(), t.value())).collect::<Vec<_>>(), vec![("team", Some("data"))]);

    client.remove_tags_from_stream().stream_name("tagged").tag_keys("env").send().await?;
    client.untag_resource().resource_arn(&arn).tag_keys("owner").send().await?;
    let all = client.list_tags_for_resource().resource_arn(&arn).send().await?;
    assert_eq!(all.tags(), &[Tag::builder().key("team").value("data").build()?]);

    // 50 tags at most, counted after overwrites.
    let mut add = client.add_tags_to_stream().stream_name("tagged");
    for i in 0..49 {
        add = add.tags(format!("k{i}"), "v");
    }
    add.send().await?;
    let over = client.add_tags_to_stream().stream_name("tagged").tags("one-too-many", "v").send().await;
    assert_eq!(over.as_ref().map_err(code).err().as_deref(), Some("InvalidArgumentException"));
    client.add_tags_to_stream().stream_name("tagged").tags("team", "overwritten").send().await?;
    let bad = client.add_tags_to_stream().stream_name("tagged").tags("a#b", "v").send().await;
    assert_eq!(bad.as_ref().map_err(code).err().as_deref(), Some("InvalidArgumentException"));
    let long = client.add_tags_to_stream().stream_name("tagged").tags("k".repeat(129), "v").send().await;
    assert_eq!(long.as_ref().map_err(code).err().as_deref(), Some("ValidationException"));
    let missing = client.list_tags_for_stream().stream_name("nope").send().await;
    assert_eq!(missing.as_ref().map_err(code).err().as_deref(), Some("ResourceNotFoundException"));
    Ok(())
}

#[tokio::test]
async fn monitoring_limits_mode_and_record_size() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &["--shard-limit", "20"])?;
    let client = server.client();
    create_active_stream(&client, "settings", 3).await?;
    let arn = format!("arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/settings");

    let on = client
        .enable_enhanced_monitoring()
        .stream_name("settings")
        .shard_level_metrics(MetricsName::IncomingBytes)
        .shard_level_metrics(MetricsName::IteratorAgeMilliseconds)
        .send()
        .await?;
    assert!(on.current_shard_level_metrics().is_empty());
    assert_eq!(on.desired_shard_level_metrics(), &[MetricsName::IncomingBytes, MetricsName::IteratorAgeMilliseconds]);
    let all = client
        .enable_enhanced_monitoring()
        .stream_name("settings")
        .shard_level_metrics(MetricsName::All)
        .send()
        .await?;
    assert_eq!(all.desired_shard_level_metrics().len(), 7);
    let off = client
        .disable_enhanced_monitoring()
        .stream_name("settings")
        .shard_level_metrics(MetricsName::IncomingBytes)
        .send()
        .await?;
    assert_eq!(off.desired_shard_level_metrics().len(), 6);
    let described = client.describe_stream().stream_name("settings").send().await?;
    let enhanced = described.stream_description().map(|d| d.enhanced_monitoring().to_vec()).unwrap_or_default();
    assert_eq!(enhanced[0].shard_level_metrics().len(), 6);

    let limits = client.describe_limits().send().await?;
    assert_eq!((limits.shard_limit(), limits.open_shard_count()), (20, 3));
    assert_eq!((limits.on_demand_stream_count(), limits.on_demand_stream_count_limit()), (0, 50));

    client
        .update_stream_mode()
        .stream_arn(&arn)
        .stream_mode_details(StreamModeDetails::builder().stream_mode(StreamMode::OnDemand).build()?)
        .send()
        .await?;
    let summary = client.describe_stream_summary().stream_name("settings").send().await?;
    let summary = summary.stream_description_summary().expect("summary");
    assert_eq!(summary.stream_status(), &StreamStatus::Updating);
    assert_eq!(summary.stream_mode_details().map(|d| d.stream_mode()), Some(&StreamMode::OnDemand));
    wait_for_status(&client, "settings", StreamStatus::Active).await?;
    assert_eq!(client.describe_limits().send().await?.on_demand_stream_count(), 1);
    let scale = client
        .update_shard_count()
        .stream_name("settings")
        .target_shard_count(4)
        .scaling_type(aws_sdk_kinesis::types::ScalingType::UniformScaling)
        .send()
        .await;
    assert_eq!(scale.as_ref().map_err(code).err().as_deref(), Some("InvalidArgumentException"));

    client.update_max_record_size().stream_arn(&arn).max_record_size_in_kib(2048).send().await?;
    let big = vec![7u8; 1_500_000];
    client
        .put_record()
        .stream_name("settings")
        .partition_key("k")
        .data(aws_sdk_kinesis::primitives::Blob::new(big))
        .send()
        .await?;
    let small = client.update_max_record_size().stream_arn(&arn).max_record_size_in_kib(10).send().await;
    assert_eq!(small.as_ref().map_err(code).err().as_deref(), Some("ValidationException"));
    Ok(())
}

#[tokio::test]
async fn unserved_operations_say_why() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let client = server.client();
    create_active_stream(&client, "enc", 1).await?;
    let err = client
        .start_stream_encryption()
        .stream_name("enc")
        .encryption_type(aws_sdk_kinesis::types::EncryptionType::Kms)
        .key_id("alias/aws/kinesis")
        .send()
        .await
        .expect_err("not served");
    assert_eq!(code(&err), "UnknownOperationException");
    assert!(message(&err).contains("encryption at rest"), "{}", message(&err));
    let (status, body) = raw_call(&server.endpoint, "GetResourcePolicy", "{}").await?;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap_or_default().contains("IAM"), "{body}");
    Ok(())
}
