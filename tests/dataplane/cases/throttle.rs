//! Throughput limits: off by default (nothing is ever throttled), and with
//! `--throughput-limits` a shard takes 1,000 records/s and 1 MiB/s in and 5 reads/s out,
//! failing PutRecords records one by one and PutRecord/GetRecords whole.

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use shardline_tests::{code, create_active_stream, kinesis_client_without_retries, Server};

type Client = aws_sdk_kinesis::Client;

/// Puts 3 × 500 small records to one shard at once; returns (failed, stored).
async fn burst(client: &Client, stream: &str) -> anyhow::Result<(usize, usize)> {
    let (mut failed, mut stored) = (0, 0);
    for batch in 0..3 {
        let entries = (0..500)
            .map(|i| {
                PutRecordsRequestEntry::builder()
                    .partition_key("one-key")
                    .data(Blob::new(format!("{batch}-{i}")))
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = client.put_records().stream_name(stream).set_records(Some(entries)).send().await?;
        failed += usize::try_from(out.failed_record_count().unwrap_or_default())?;
        for record in out.records() {
            match record.error_code() {
                Some(code) => {
                    assert_eq!(code, "ProvisionedThroughputExceededException");
                    assert!(record.error_message().is_some_and(|m| m.contains("Rate exceeded for shard")));
                    assert!(record.sequence_number().is_none());
                }
                None => stored += 1,
            }
        }
    }
    Ok((failed, stored))
}

async fn reads(client: &Client, stream: &str, calls: usize) -> anyhow::Result<Vec<String>> {
    let iterator = client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::Latest)
        .send()
        .await?
        .shard_iterator
        .unwrap_or_default();
    let mut codes = Vec::new();
    for _ in 0..calls {
        codes.push(match client.get_records().shard_iterator(&iterator).send().await {
            Ok(_) => "ok".to_owned(),
            Err(err) => code(&err),
        });
    }
    Ok(codes)
}

#[tokio::test]
async fn limits_are_off_by_default() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let client = kinesis_client_without_retries(&server.endpoint);
    create_active_stream(&client, "free", 1).await?;
    assert_eq!(burst(&client, "free").await?, (0, 1500));
    assert!(reads(&client, "free", 20).await?.iter().all(|c| c == "ok"));
    let refused = shardline_tests::metric(
        &server,
        r#"shardline_kinesis_write_provisioned_throughput_exceeded_total{stream="free"}"#,
    )
    .await?;
    assert_eq!(refused, 0.0);
    Ok(())
}

#[tokio::test]
async fn limits_throttle_writes_per_record_and_reads_per_call() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &["--throughput-limits"])?;
    let client = kinesis_client_without_retries(&server.endpoint);
    create_active_stream(&client, "limited", 1).await?;
    let (failed, stored) = burst(&client, "limited").await?;
    assert_eq!(failed + stored, 1500);
    // A full bucket holds 1,000 records; the burst takes well under a second, so a few more
    // may have been refilled, but never the whole 1,500.
    assert!((1000..1300).contains(&stored), "stored {stored}, failed {failed}");
    // Bytes count too: four 1,000 KiB records at once overdraw the 1 MiB/s bucket, and each
    // refused PutRecord fails whole.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let big = Blob::new(vec![1u8; 1000 << 10]);
    let calls =
        (0..4).map(|_| client.put_record().stream_name("limited").partition_key("one-key").data(big.clone()).send());
    let outcomes = futures_util::future::join_all(calls).await;
    let codes: Vec<_> =
        outcomes.iter().map(|o| o.as_ref().map_err(code).err().unwrap_or_else(|| "ok".into())).collect();
    assert!(codes.iter().any(|c| c == "ok"), "{codes:?}");
    assert!(codes.iter().any(|c| c == "ProvisionedThroughputExceededException"), "{codes:?}");

    let refused = shardline_tests::metric(
        &server,
        r#"shardline_kinesis_write_provisioned_throughput_exceeded_total{stream="limited"}"#,
    )
    .await?;
    assert!(refused >= failed as f64 + 1.0, "metric {refused}, refused records {failed} plus a PutRecord");

    let codes = reads(&client, "limited", 8).await?;
    let ok = codes.iter().filter(|c| *c == "ok").count();
    assert!((5..=6).contains(&ok), "{codes:?}");
    assert!(codes.iter().all(|c| c == "ok" || c == "ProvisionedThroughputExceededException"), "{codes:?}");
    let read_refused = shardline_tests::metric(
        &server,
        r#"shardline_kinesis_read_provisioned_throughput_exceeded_total{stream="limited"}"#,
    )
    .await?;
    assert_eq!(read_refused, (8 - ok) as f64);
    Ok(())
}
