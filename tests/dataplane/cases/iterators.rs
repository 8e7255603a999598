//! Reading: every iterator type, GetRecords limits and lag, and iterator misuse.

use std::time::Duration;

use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::ShardIteratorType;
use base64::Engine as _;
use shardline_tests::{code, create_active_stream, Server};

const SHARD: &str = "shardId-000000000000";

async fn iterator(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    kind: ShardIteratorType,
    seq: Option<&str>,
) -> anyhow::Result<String> {
    let out = client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(SHARD)
        .shard_iterator_type(kind)
        .set_starting_sequence_number(seq.map(str::to_owned))
        .send()
        .await?;
    Ok(out.shard_iterator().unwrap_or_default().to_owned())
}

async fn data_at(
    client: &aws_sdk_kinesis::Client,
    iterator: &str,
    limit: i32,
) -> anyhow::Result<(Vec<String>, Option<String>, i64)> {
    let page = client.get_records().shard_iterator(iterator).limit(limit).send().await?;
    let data = page.records().iter().map(|r| String::from_utf8_lossy(r.data().as_ref()).into_owned()).collect();
    Ok((data, page.next_shard_iterator().map(str::to_owned), page.millis_behind_latest().unwrap_or(-1)))
}

#[tokio::test]
async fn every_iterator_type_starts_where_kinesis_says() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let client = server.client();
    create_active_stream(&client, "iter", 1).await?;

    let mut sequence_numbers = Vec::new();
    for i in 0..5 {
        let put =
            client.put_record().stream_name("iter").partition_key("k").data(Blob::new(format!("r{i}"))).send().await?;
        sequence_numbers.push(put.sequence_number().to_owned());
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let between =
        DateTime::from_millis(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64);
    tokio::time::sleep(Duration::from_millis(50)).await;
    for i in 5..10 {
        let put =
            client.put_record().stream_name("iter").partition_key("k").data(Blob::new(format!("r{i}"))).send().await?;
        sequence_numbers.push(put.sequence_number().to_owned());
    }
    let all: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();

    // TRIM_HORIZON: everything, in order, with the stored fields.
    let page = client
        .get_records()
        .shard_iterator(iterator(&client, "iter", ShardIteratorType::TrimHorizon, None).await?)
        .send()
        .await?;
    let records = page.records();
    assert_eq!(
        records.iter().map(|r| String::from_utf8_lossy(r.data().as_ref()).into_owned()).collect::<Vec<_>>(),
        all
    );
    assert_eq!(records.iter().map(|r| r.sequence_number().to_owned()).collect::<Vec<_>>(), sequence_numbers);
    assert!(records.iter().all(|r| r.partition_key() == Some("k") && r.approximate_arrival_timestamp().is_some()));
    assert_eq!(page.millis_behind_latest(), Some(0));

    let at = iterator(&client, "iter", ShardIteratorType::AtSequenceNumber, Some(&sequence_numbers[3])).await?;
    assert_eq!(data_at(&client, &at, 100).await?.0, all[3..]);
    let after = iterator(&client, "iter", ShardIteratorType::AfterSequenceNumber, Some(&sequence_numbers[3])).await?;
    assert_eq!(data_at(&client, &after, 100).await?.0, all[4..]);

    let stamped = client
        .get_shard_iterator()
        .stream_name("iter")
        .shard_id(SHARD)
        .shard_iterator_type(ShardIteratorType::AtTimestamp)
        .timestamp(between)
        .send()
        .await?;
    assert_eq!(data_at(&client, stamped.shard_iterator().unwrap_or_default(), 100).await?.0, all[5..]);

    // LATEST sees only what comes after it.
    let latest = iterator(&client, "iter", ShardIteratorType::Latest, None).await?;
    let (data, next, behind) = data_at(&client, &latest, 100).await?;
    assert!(data.is_empty());
    assert_eq!(behind, 0);
    client.put_record().stream_name("iter").partition_key("k").data(Blob::new("fresh")).send().await?;
    let (data, _, _) = data_at(&client, &next.unwrap_or_default(), 100).await?;
    assert_eq!(data, ["fresh"]);

    // Limit pages through the shard; a page that stops short of the tip reports lag.
    let mut iterator_at = iterator(&client, "iter", ShardIteratorType::TrimHorizon, None).await?;
    let mut pages = Vec::new();
    loop {
        let (data, next, behind) = data_at(&client, &iterator_at, 3).await?;
        if data.is_empty() {
            break;
        }
        pages.push((data.len(), behind));
        iterator_at = next.unwrap_or_default();
    }
    assert_eq!(pages.iter().map(|p| p.0).collect::<Vec<_>>(), [3, 3, 3, 2]);
    assert!(pages[0].1 > 0, "a lagging reader sees MillisBehindLatest > 0");
    assert_eq!(pages[3].1, 0, "a reader at the tip sees 0");
    Ok(())
}

#[tokio::test]
async fn misused_iterators_get_aws_errors() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &["--iterator-ttl-secs", "1"])?;
    let client = server.client();
    create_active_stream(&client, "misuse", 2).await?;
    let put = client
        .put_record()
        .stream_name("misuse")
        .partition_key("k")
        .explicit_hash_key("0")
        .data(Blob::new("x"))
        .send()
        .await?;
    assert_eq!(put.shard_id(), SHARD);
    let token = iterator(&client, "misuse", ShardIteratorType::TrimHorizon, None).await?;

    // Altered, truncated and made-up iterators.
    let mut bytes = base64::engine::general_purpose::STANDARD.decode(&token)?;
    bytes[20] ^= 0x01;
    let altered = base64::engine::general_purpose::STANDARD.encode(&bytes);
    for bad in [
        altered.as_str(),
        &token[..token.len() - 8],
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "not base64 at all",
    ] {
        let err = client.get_records().shard_iterator(bad).send().await.expect_err("bad iterator");
        assert_eq!(code(&err), "InvalidArgumentException", "{bad}");
    }
    let err = client.get_records().shard_iterator("x".repeat(513)).send().await.expect_err("too long");
    assert_eq!(code(&err), "ValidationException");
    let err = client.get_records().shard_iterator(&token).limit(0).send().await.expect_err("limit 0");
    assert_eq!(code(&err), "ValidationException");
    let err = client.get_records().shard_iterator(&token).limit(10_001).send().await.expect_err("limit 10001");
    assert_eq!(code(&err), "InvalidArgumentException");

    // Sequence numbers: of another shard, not ours, or missing where needed.
    let other = client
        .get_shard_iterator()
        .stream_name("misuse")
        .shard_id("shardId-000000000001")
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .starting_sequence_number(put.sequence_number())
        .send()
        .await;
    assert_eq!(code(&other.expect_err("other shard")), "InvalidArgumentException");
    let foreign = iterator(
        &client,
        "misuse",
        ShardIteratorType::AtSequenceNumber,
        Some("49590338271490256608559692538361571095921575989136588898"),
    )
    .await;
    assert!(foreign.is_err());
    let err = client
        .get_shard_iterator()
        .stream_name("misuse")
        .shard_id(SHARD)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .send()
        .await;
    assert_eq!(code(&err.expect_err("no seq")), "InvalidArgumentException");
    let err = client
        .get_shard_iterator()
        .stream_name("misuse")
        .shard_id(SHARD)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .starting_sequence_number(put.sequence_number())
        .send()
        .await;
    assert_eq!(code(&err.expect_err("seq with TRIM_HORIZON")), "InvalidArgumentException");
    let err = client
        .get_shard_iterator()
        .stream_name("misuse")
        .shard_id(SHARD)
        .shard_iterator_type(ShardIteratorType::AtTimestamp)
        .send()
        .await;
    assert_eq!(code(&err.expect_err("no timestamp")), "InvalidArgumentException");
    let future = DateTime::from_secs(4_000_000_000);
    let err = client
        .get_shard_iterator()
        .stream_name("misuse")
        .shard_id(SHARD)
        .shard_iterator_type(ShardIteratorType::AtTimestamp)
        .timestamp(future)
        .send()
        .await;
    assert_eq!(code(&err.expect_err("future timestamp")), "InvalidArgumentException");
    let err = client
        .get_shard_iterator()
        .stream_name("misuse")
        .shard_id("shardId-000000000009")
        .shard_iterator_type(ShardIteratorType::Latest)
        .send()
        .await;
    assert_eq!(code(&err.expect_err("no such shard")), "ResourceNotFoundException");
    let err = client
        .get_shard_iterator()
        .stream_name("nope")
        .shard_id(SHARD)
        .shard_iterator_type(ShardIteratorType::Latest)
        .send()
        .await;
    assert_eq!(code(&err.expect_err("no such stream")), "ResourceNotFoundException");

    // Iterators expire (this server was started with a 1-second lifetime).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let err = client.get_records().shard_iterator(&token).send().await.expect_err("expired");
    assert_eq!(code(&err), "ExpiredIteratorException");

    // An iterator of a deleted stream does not reach a new stream of the same name.
    let fresh = iterator(&client, "misuse", ShardIteratorType::TrimHorizon, None).await?;
    client.delete_stream().stream_name("misuse").send().await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while client.describe_stream_summary().stream_name("misuse").send().await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "stream never deleted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    create_active_stream(&client, "misuse", 2).await?;
    let err = client.get_records().shard_iterator(&fresh).send().await.expect_err("old stream");
    assert_eq!(code(&err), "ResourceNotFoundException");
    Ok(())
}
