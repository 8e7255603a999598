//! Putting records: MD5 routing, explicit hash keys, sequence numbers and every record limit.

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use shardline_tests::{code, create_active_stream, expected_shard, message, read_shard, shard_ranges, Server};

fn entry(key: &str, data: &[u8]) -> PutRecordsRequestEntry {
    PutRecordsRequestEntry::builder().partition_key(key).data(Blob::new(data)).build().expect("entry")
}

#[tokio::test]
async fn records_route_by_md5_and_explicit_hash_key() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let client = server.client();
    create_active_stream(&client, "routes", 4).await?;
    let ranges = shard_ranges(&client, "routes").await?;

    for i in 0..100 {
        let key = format!("user-{i}");
        let put = client
            .put_record()
            .stream_name("routes")
            .partition_key(&key)
            .data(Blob::new(key.as_bytes()))
            .send()
            .await?;
        assert_eq!(put.shard_id(), expected_shard(&ranges, &key), "{key}");
    }
    let keys: Vec<String> = (0..500).map(|i| format!("ключ-{i}")).collect();
    let batch = client
        .put_records()
        .stream_name("routes")
        .set_records(Some(keys.iter().map(|k| entry(k, k.as_bytes())).collect()))
        .send()
        .await?;
    assert_eq!(batch.failed_record_count(), Some(0));
    assert_eq!(batch.records().len(), 500);
    for (key, result) in keys.iter().zip(batch.records()) {
        assert_eq!(result.shard_id(), Some(expected_shard(&ranges, key).as_str()), "{key}");
        assert!(result.error_code().is_none());
    }

    // An explicit hash key overrides the partition key's hash, at both edges of a range.
    for (shard, start, end) in &ranges {
        for hash in [start, end] {
            let put = client
                .put_record()
                .stream_name("routes")
                .partition_key("same-key")
                .explicit_hash_key(hash.to_string())
                .data(Blob::new("x"))
                .send()
                .await?;
            assert_eq!(put.shard_id(), shard);
        }
    }

    // Every record is read back from the shard it was routed to, exactly once.
    let mut total = 0;
    for (shard, _, _) in &ranges {
        let records = read_shard(&client, "routes", shard).await?;
        for (_, key, _) in &records {
            if key != "same-key" {
                assert_eq!(&expected_shard(&ranges, key), shard);
            }
        }
        total += records.len();
    }
    assert_eq!(total, 100 + 500 + 8);
    Ok(())
}

#[tokio::test]
async fn sequence_numbers_increase_within_a_shard_and_are_unique() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let client = server.client();
    create_active_stream(&client, "seq", 2).await?;
    let mut last: std::collections::HashMap<String, shardline_proto::sequence::SequenceNumber> = Default::default();
    let mut all = std::collections::HashSet::new();
    for i in 0..200 {
        let put =
            client.put_record().stream_name("seq").partition_key(format!("k{i}")).data(Blob::new("x")).send().await?;
        let number = shardline_tests::seq(put.sequence_number());
        assert!(put.sequence_number().len() == 56 && !put.sequence_number().starts_with('0'));
        if let Some(previous) = last.insert(put.shard_id().to_owned(), number) {
            assert!(number > previous, "sequence numbers must increase within a shard");
        }
        assert!(all.insert(number), "sequence numbers are unique in the stream");
    }
    // SequenceNumberForOrdering: a later put for the key gets a larger number.
    let first = client.put_record().stream_name("seq").partition_key("ordered").data(Blob::new("1")).send().await?;
    let second = client
        .put_record()
        .stream_name("seq")
        .partition_key("ordered")
        .sequence_number_for_ordering(first.sequence_number())
        .data(Blob::new("2"))
        .send()
        .await?;
    assert!(shardline_tests::seq(second.sequence_number()) > shardline_tests::seq(first.sequence_number()));
    let err = client
        .put_record()
        .stream_name("seq")
        .partition_key("ordered")
        .sequence_number_for_ordering("73559785961562665201200657303214840813699477864812904449")
        .data(Blob::new("3"))
        .send()
        .await
        .expect_err("a number of no layout");
    assert_eq!(code(&err), "InvalidArgumentException");
    Ok(())
}

#[tokio::test]
async fn every_record_limit_is_enforced_without_partial_writes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let client = server.client();
    create_active_stream(&client, "limits", 1).await?;
    let put = |key: String, data: Vec<u8>| {
        client.put_record().stream_name("limits").partition_key(key).data(Blob::new(data)).send()
    };

    let err = put(String::new(), b"x".to_vec()).await.expect_err("empty key");
    assert_eq!(code(&err), "ValidationException");
    let err = put("k".repeat(257), b"x".to_vec()).await.expect_err("long key");
    assert_eq!(code(&err), "ValidationException");
    assert!(message(&err).contains("Member must have length less than or equal to 256"), "{}", message(&err));
    // 256 characters is fine even when they are multi-byte.
    put("é".repeat(256), b"x".to_vec()).await?;
    // Partition key plus data may be exactly 1 MiB, not a byte more.
    put("k".into(), vec![7; (1 << 20) - 1]).await?;
    let err = put("kk".into(), vec![7; (1 << 20) - 1]).await.expect_err("over 1 MiB");
    assert_eq!(code(&err), "InvalidArgumentException");

    let err = client
        .put_record()
        .stream_name("limits")
        .partition_key("k")
        .explicit_hash_key("340282366920938463463374607431768211456")
        .data(Blob::new("x"))
        .send()
        .await
        .expect_err("2^128");
    assert_eq!(code(&err), "InvalidArgumentException");
    let err = client
        .put_record()
        .stream_name("limits")
        .partition_key("k")
        .explicit_hash_key("12a")
        .data(Blob::new("x"))
        .send()
        .await;
    assert_eq!(code(&err.expect_err("not decimal")), "ValidationException");

    let too_many: Vec<_> = (0..501).map(|i| entry(&i.to_string(), b"x")).collect();
    let err = client.put_records().stream_name("limits").set_records(Some(too_many)).send().await.expect_err("501");
    assert_eq!(code(&err), "ValidationException");
    let err = client.put_records().stream_name("limits").set_records(Some(Vec::new())).send().await.expect_err("0");
    assert_eq!(code(&err), "ValidationException");
    // Six records of just under 1 MiB each: every record is valid, the call is over 5 MiB.
    let big: Vec<_> = (0..6).map(|i| entry(&format!("big-{i}"), &vec![1; 1_000_000])).collect();
    let err = client.put_records().stream_name("limits").set_records(Some(big)).send().await.expect_err("over 5 MiB");
    assert_eq!(code(&err), "InvalidArgumentException");
    // One bad record fails the whole call; nothing of it is stored.
    let mixed = vec![entry("good", b"must-not-appear"), entry("", b"bad key")];
    let err = client.put_records().stream_name("limits").set_records(Some(mixed)).send().await.expect_err("mixed");
    assert_eq!(code(&err), "ValidationException");
    assert!(message(&err).contains("records.2.member.partitionKey"), "{}", message(&err));

    let stored = read_shard(&client, "limits", "shardId-000000000000").await?;
    assert_eq!(stored.len(), 2, "only the two valid single puts are stored");
    assert!(stored.iter().all(|(_, key, _)| !key.starts_with("big-") && key != "good"));

    let err = client.put_record().stream_name("nope").partition_key("k").data(Blob::new("x")).send().await;
    assert_eq!(code(&err.expect_err("missing stream")), "ResourceNotFoundException");
    Ok(())
}
