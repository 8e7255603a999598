//! Retention period changes and their validation. Expiry itself is proven by the shard-server's
//! node tests, which move a manual clock past the retention period.

use aws_sdk_kinesis::types::StreamStatus;
use shardline_tests::{code, create_active_stream, message, Server};

#[tokio::test]
async fn retention_moves_only_in_the_asked_direction_within_bounds() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let client = server.client();
    create_active_stream(&client, "keep", 1).await?;
    let retention = |c: aws_sdk_kinesis::Client| async move {
        let summary = c.describe_stream_summary().stream_name("keep").send().await?;
        anyhow::Ok(summary.stream_description_summary().map(|s| s.retention_period_hours()).unwrap_or_default())
    };
    assert_eq!(retention(client.clone()).await?, 24);

    client.increase_stream_retention_period().stream_name("keep").retention_period_hours(168).send().await?;
    assert_eq!(retention(client.clone()).await?, 168);
    client.increase_stream_retention_period().stream_name("keep").retention_period_hours(8760).send().await?;
    assert_eq!(retention(client.clone()).await?, 8760);

    let err = client
        .increase_stream_retention_period()
        .stream_name("keep")
        .retention_period_hours(8761)
        .send()
        .await
        .expect_err("too long");
    assert_eq!(code(&err), "InvalidArgumentException");
    assert!(message(&err).contains("Maximum allowed retention period is 8760 hours"), "{}", message(&err));
    let err = client
        .increase_stream_retention_period()
        .stream_name("keep")
        .retention_period_hours(48)
        .send()
        .await
        .expect_err("lower");
    assert_eq!(code(&err), "InvalidArgumentException");
    assert!(message(&err).contains("Use DecreaseRetentionPeriod API"), "{}", message(&err));

    let err = client
        .decrease_stream_retention_period()
        .stream_name("keep")
        .retention_period_hours(9000)
        .send()
        .await
        .expect_err("higher");
    assert_eq!(code(&err), "InvalidArgumentException");
    client.decrease_stream_retention_period().stream_name("keep").retention_period_hours(48).send().await?;
    assert_eq!(retention(client.clone()).await?, 48);
    let err = client
        .decrease_stream_retention_period()
        .stream_name("keep")
        .retention_period_hours(23)
        .send()
        .await
        .expect_err("too short");
    assert_eq!(code(&err), "InvalidArgumentException");
    assert!(message(&err).contains("Minimum allowed retention period is 24 hours"), "{}", message(&err));
    client.decrease_stream_retention_period().stream_name("keep").retention_period_hours(24).send().await?;
    assert_eq!(retention(client.clone()).await?, 24);

    let err = client.increase_stream_retention_period().stream_name("missing").retention_period_hours(48).send().await;
    assert_eq!(code(&err.expect_err("missing")), "ResourceNotFoundException");

    // A stream that is not ACTIVE cannot change.
    client.create_stream().stream_name("young").shard_count(1).send().await?;
    let summary = client.describe_stream_summary().stream_name("young").send().await?;
    if summary.stream_description_summary().map(|s| s.stream_status().clone()) == Some(StreamStatus::Creating) {
        let err =
            client.increase_stream_retention_period().stream_name("young").retention_period_hours(48).send().await;
        assert_eq!(code(&err.expect_err("creating")), "ResourceInUseException");
    }
    Ok(())
}
