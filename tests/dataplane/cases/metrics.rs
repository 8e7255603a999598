//! Prometheus metrics on their own port move with load: the Kinesis CloudWatch set per stream,
//! per shard once enhanced monitoring is on, and the storage metrics.

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{MetricsName, PutRecordsRequestEntry, ShardIteratorType};
use shardline_tests::{create_active_stream, metric, Server};

#[tokio::test]
async fn metrics_follow_puts_reads_and_enhanced_monitoring() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let client = server.client();
    create_active_stream(&client, "watched", 2).await?;
    let stream = r#"{stream="watched"}"#;
    assert_eq!(metric(&server, &format!("shardline_kinesis_incoming_records_total{stream}")).await?, 0.0);

    let entries = (0..10)
        .map(|i| PutRecordsRequestEntry::builder().partition_key(format!("k{i}")).data(Blob::new("0123456789")).build())
        .collect::<Result<Vec<_>, _>>()?;
    client.put_records().stream_name("watched").set_records(Some(entries)).send().await?;
    client.put_record().stream_name("watched").partition_key("single").data(Blob::new("x")).send().await?;
    assert_eq!(metric(&server, &format!("shardline_kinesis_incoming_records_total{stream}")).await?, 11.0);
    assert_eq!(
        metric(&server, &format!("shardline_kinesis_put_records_successful_records_total{stream}")).await?,
        10.0
    );
    assert_eq!(metric(&server, &format!("shardline_kinesis_put_record_success_total{stream}")).await?, 1.0);
    assert_eq!(metric(&server, &format!("shardline_kinesis_put_records_latency_seconds_count{stream}")).await?, 1.0);
    let bytes = metric(&server, &format!("shardline_kinesis_incoming_bytes_total{stream}")).await?;
    assert_eq!(bytes, (10 * (2 + 10) + 6 + 1) as f64);

    let mut read = 0.0;
    for shard in ["shardId-000000000000", "shardId-000000000001"] {
        let iterator = client
            .get_shard_iterator()
            .stream_name("watched")
            .shard_id(shard)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await?;
        let page = client.get_records().shard_iterator(iterator.shard_iterator().unwrap_or_default()).send().await?;
        read += page.records().len() as f64;
    }
    assert_eq!(read, 11.0);
    assert_eq!(metric(&server, &format!("shardline_kinesis_get_records_records_total{stream}")).await?, 11.0);
    assert_eq!(metric(&server, &format!("shardline_kinesis_get_records_success_total{stream}")).await?, 2.0);
    assert!(metric(&server, "shardline_storage_fsync_batch_records_count").await? >= 2.0);
    assert!(metric(&server, "shardline_storage_disk_bytes").await? > 0.0);

    // Shard-level metrics appear only once enhanced monitoring is on.
    let shard0 = r#"{stream="watched",shard="shardId-000000000000"}"#;
    assert_eq!(metric(&server, &format!("shardline_kinesis_shard_incoming_records_total{shard0}")).await?, 0.0);
    client
        .enable_enhanced_monitoring()
        .stream_name("watched")
        .shard_level_metrics(MetricsName::IncomingRecords)
        .send()
        .await?;
    let out = client
        .put_record()
        .stream_name("watched")
        .partition_key("p")
        .explicit_hash_key("0")
        .data(Blob::new("y"))
        .send()
        .await?;
    assert_eq!(out.shard_id(), "shardId-000000000000");
    assert_eq!(metric(&server, &format!("shardline_kinesis_shard_incoming_records_total{shard0}")).await?, 1.0);
    // Only the enabled shard-level metric is published.
    assert_eq!(metric(&server, &format!("shardline_kinesis_shard_incoming_bytes_total{shard0}")).await?, 0.0);
    Ok(())
}
