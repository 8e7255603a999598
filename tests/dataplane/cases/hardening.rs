//! Regression tests for what a hostile review of the shard-server found: each drives a real
//! server process over its real ports the way the attack did.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shardline_tests::{create_active_stream, kinesis_client_without_retries, Server};

/// A standalone server whose streams change state at once, and a client that never retries.
fn instant_server() -> anyhow::Result<(tempfile::TempDir, Server, aws_sdk_kinesis::Client)> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &["--stream-transition-ms", "0"])?;
    let client = kinesis_client_without_retries(&server.endpoint);
    Ok((dir, server, client))
}

/// A SplitShard/MergeShards loop and two AddTagsToStream loops on one stream, for 30 s with
/// instant transitions: the server keeps answering everything, `/health` within 1 s, and the
/// loops make progress (a lock-order inversion between definition updates and the catalog
/// hung every request).
#[tokio::test]
async fn concurrent_reshards_and_tag_updates_never_stall_the_server() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &["--stream-transition-ms", "0", "--shard-limit", "100000"])?;
    let client = kinesis_client_without_retries(&server.endpoint);
    create_active_stream(&client, "knot", 1).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let reshards = Arc::new(AtomicU64::new(0));
    let tags = Arc::new(AtomicU64::new(0));
    let mut loops = Vec::new();
    {
        let (client, stop, done) = (client.clone(), stop.clone(), reshards.clone());
        loops.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(listed) = client.list_shards().stream_name("knot").send().await else { continue };
                let open: Vec<_> = listed
                    .shards()
                    .iter()
                    .filter(|s| s.sequence_number_range().is_some_and(|r| r.ending_sequence_number().is_none()))
                    .map(|s| s.shard_id().to_owned())
                    .collect();
                let result = if let [only] = open.as_slice() {
                    client
                        .split_shard()
                        .stream_name("knot")
                        .shard_to_split(only)
                        .new_starting_hash_key((1u128 << 127).to_string())
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                } else if let [left, right, ..] = open.as_slice() {
                    client
                        .merge_shards()
                        .stream_name("knot")
                        .shard_to_merge(left)
                        .adjacent_shard_to_merge(right)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                } else {
                    Ok(())
                };
                if result.is_ok() {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for worker in 0..2 {
        let (client, stop, done) = (client.clone(), stop.clone(), tags.clone());
        loops.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let added = client
                    .add_tags_to_stream()
                    .stream_name("knot")
                    .tags(format!("w{worker}"), n.to_string())
                    .send()
                    .await;
                if added.is_ok() {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let health = reqwest::Client::builder().timeout(Duration::from_secs(1)).build()?;
    let started = Instant::now();
    let mut checks = 0;
    while started.elapsed() < Duration::from_secs(30) {
        let asked = Instant::now();
        let answer = health.get(format!("{}/health", server.endpoint)).send().await;
        let answered = answer.map(|r| r.status().is_success()).unwrap_or(false);
        assert!(answered, "/health did not answer within 1 s after {:?} of the loops", started.elapsed());
        assert!(asked.elapsed() < Duration::from_secs(1));
        checks += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in loops {
        tokio::time::timeout(Duration::from_secs(10), task).await??;
    }
    let (reshards, tags) = (reshards.load(Ordering::Relaxed), tags.load(Ordering::Relaxed));
    assert!(checks > 100, "{checks} health checks");
    assert!(reshards > 20 && tags > 20, "the loops made progress: {reshards} reshards, {tags} tag updates");
    let summary = client.describe_stream_summary().stream_name("knot").send().await?;
    assert!(summary.stream_description_summary().is_some(), "the stream still answers");
    Ok(())
}

/// Puts to streams that do not exist leave no metric series behind, and a deleted stream's
/// series go with it (random names once grew `/metrics` without bound).
#[tokio::test]
async fn metric_series_exist_only_for_existing_streams() -> anyhow::Result<()> {
    let (_dir, server, client) = instant_server()?;
    for n in 0..300 {
        let put = client
            .put_record()
            .stream_name(format!("ghost-{n}"))
            .partition_key("k")
            .data(aws_sdk_kinesis::primitives::Blob::new("x"))
            .send()
            .await;
        assert!(put.is_err(), "ghost-{n} does not exist");
    }
    let text = reqwest::get(&server.metrics_endpoint).await?.text().await?;
    assert!(!text.contains("ghost-"), "series for streams that do not exist:\n{}", &text[..text.len().min(2000)]);

    create_active_stream(&client, "brief", 1).await?;
    client.enable_enhanced_monitoring().stream_name("brief").shard_level_metrics("ALL".into()).send().await?;
    client
        .put_record()
        .stream_name("brief")
        .partition_key("k")
        .data(aws_sdk_kinesis::primitives::Blob::new("x"))
        .send()
        .await?;
    let text = reqwest::get(&server.metrics_endpoint).await?.text().await?;
    assert!(text.contains("stream=\"brief\""), "an existing stream is measured");
    client.delete_stream().stream_name("brief").send().await?;
    let started = Instant::now();
    loop {
        let text = reqwest::get(&server.metrics_endpoint).await?.text().await?;
        if !text.contains("\"brief\"") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "a deleted stream's series stay:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Deleting a stream deletes its applications' leases in the same batch: a stream re-created
/// under the same name starts with fresh leases (an old checkpoint made a worker skip records).
#[tokio::test]
async fn a_deleted_streams_leases_go_with_it() -> anyhow::Result<()> {
    use shardline_proto::v1 as pb;
    use shardline_proto::v1::leases_client::LeasesClient;
    let (_dir, server, client) = instant_server()?;
    let mut leases = LeasesClient::connect(server.endpoint.clone()).await?;
    let list = || pb::ListLeasesRequest {
        application: "billing".into(),
        stream_name: "reborn".into(),
        initial_position: Some(pb::Checkpoint { kind: pb::checkpoint::Kind::TrimHorizon as i32, ..Default::default() }),
    };
    create_active_stream(&client, "reborn", 1).await?;
    let put = client
        .put_record()
        .stream_name("reborn")
        .partition_key("k")
        .data(aws_sdk_kinesis::primitives::Blob::new("old"))
        .send()
        .await?;
    let lease = leases.list_leases(list()).await?.into_inner().leases.remove(0);
    let take = |counter| pb::UpdateLeaseRequest {
        application: "billing".into(),
        stream_name: "reborn".into(),
        shard_id: lease.lease_key.clone(),
        expected_counter: counter,
        owner: "worker-1".into(),
    };
    let taken = leases.take_lease(take(lease.lease_counter)).await?.into_inner();
    let checkpoint = pb::Checkpoint {
        kind: pb::checkpoint::Kind::SequenceNumber as i32,
        sequence_number: put.sequence_number().to_owned(),
        ..Default::default()
    };
    leases
        .checkpoint(pb::CheckpointRequest { lease: Some(take(taken.lease_counter)), checkpoint: Some(checkpoint) })
        .await?;

    client.delete_stream().stream_name("reborn").send().await?;
    let started = Instant::now();
    while client.describe_stream_summary().stream_name("reborn").send().await.is_ok() {
        assert!(started.elapsed() < Duration::from_secs(10), "the stream was never deleted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    create_active_stream(&client, "reborn", 1).await?;
    let fresh = leases.list_leases(list()).await?.into_inner().leases;
    assert_eq!(fresh.len(), 1);
    assert_eq!(fresh[0].lease_owner, None, "no owner carried over: {:?}", fresh[0]);
    assert_eq!(fresh[0].lease_counter, 0);
    let kind = fresh[0].checkpoint.as_ref().map(|c| c.kind);
    assert_eq!(kind, Some(pb::checkpoint::Kind::TrimHorizon as i32), "the old checkpoint is gone: {:?}", fresh[0]);

    // And after a restart too: the deletion was durable.
    drop(leases);
    let mut server = server;
    server.restart()?;
    let mut leases = LeasesClient::connect(server.endpoint.clone()).await?;
    let after = leases.list_leases(list()).await?.into_inner().leases;
    assert_eq!(after[0].lease_counter, 0);
    Ok(())
}

/// In cluster mode a shard the layout gives no owner is served by nobody: requests for it
/// answer a retryable error (never a local, empty log), and a layout past `--shard-limit` is
/// refused.
#[tokio::test]
async fn unowned_shards_are_unavailable_and_layouts_respect_the_shard_limit() -> anyhow::Result<()> {
    use shardline_proto::v1 as pb;
    use shardline_proto::v1::cluster_client::ClusterClient;
    let dir = tempfile::tempdir()?;
    let server = Server::start_cluster(dir.path(), "solo-0-0", "127.0.0.1:0", &["--shard-limit", "3"])?;
    let half = 1u128 << 127;
    let shard = |index: u32, start: u128, end: u128, owner: &str| pb::ShardLayout {
        index,
        starting_hash_key: start.to_string(),
        ending_hash_key: end.to_string(),
        owner: owner.into(),
        ..Default::default()
    };
    let layout = pb::StreamLayout {
        stream_name: "halves".into(),
        epoch: 1,
        servers: vec![pb::ClusterServer {
            id: "solo-0-0".into(),
            address: server.address().to_owned(),
            ..Default::default()
        }],
        shards: vec![shard(0, 0, half - 1, "solo-0-0"), shard(1, half, u128::MAX, "")],
        retention_hours: 24,
        ..Default::default()
    };
    let mut cluster = ClusterClient::new(server.internal().await?);
    cluster.assign(pb::AssignRequest { layout: Some(layout.clone()) }).await?;
    let client = kinesis_client_without_retries(&server.endpoint);
    // "user-1" hashes into the upper half: shard 1, which nobody owns.
    let refused = client
        .put_record()
        .stream_name("halves")
        .partition_key("user-1")
        .data(aws_sdk_kinesis::primitives::Blob::new("x"))
        .send()
        .await
        .expect_err("nobody serves shard 1");
    assert_eq!(shardline_tests::code(&refused), "InternalFailure", "retryable: {refused:?}");
    let iterator = client
        .get_shard_iterator()
        .stream_name("halves")
        .shard_id("shardId-000000000001")
        .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
        .send()
        .await
        .expect_err("nobody serves shard 1");
    assert_eq!(shardline_tests::code(&iterator), "InternalFailure");
    // The owned half works.
    client
        .put_record()
        .stream_name("halves")
        .partition_key("user-2")
        .explicit_hash_key("1")
        .data(aws_sdk_kinesis::primitives::Blob::new("x"))
        .send()
        .await?;

    // Four open shards on a server allowed three.
    let mut four = layout.clone();
    four.stream_name = "quarters".into();
    let quarter = 1u128 << 126;
    four.shards = (0..4u32)
        .map(|i| {
            let start = u128::from(i) * quarter;
            let end = if i == 3 { u128::MAX } else { start + quarter - 1 };
            shard(i, start, end, "solo-0-0")
        })
        .collect();
    let status = cluster.assign(pb::AssignRequest { layout: Some(four) }).await.expect_err("over the limit");
    let kind = status.metadata().get("x-shardline-error").and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(kind.as_deref(), Some("LimitExceededException"), "{status:?}");
    Ok(())
}

/// ListShards' NextToken is sealed with the server's secret: a forged one that would never
/// expire is refused, and a real one still pages.
#[tokio::test]
async fn forged_page_tokens_are_refused() -> anyhow::Result<()> {
    use base64::Engine as _;
    let (_dir, server, client) = instant_server()?;
    create_active_stream(&client, "paged", 3).await?;
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!(r#"{{"issued_ms":{},"at":{{"stream":"paged","after":0,"filter":null}}}}"#, 1u64 << 63));
    let (status, body) =
        shardline_tests::raw_call(&server.endpoint, "ListShards", format!(r#"{{"NextToken":"{forged}"}}"#)).await?;
    assert_eq!((status, shardline_tests::error_type(&body)), (400, "InvalidArgumentException"), "{body}");
    let first = client.list_shards().stream_name("paged").max_results(1).send().await?;
    let token = first.next_token().map(str::to_owned).expect("a next page");
    let second = client.list_shards().next_token(token).max_results(1).send().await?;
    assert_eq!(second.shards().len(), 1);
    Ok(())
}

/// A peer that accepts connections and never answers costs a forwarded call its deadline
/// (`--peer-timeout-ms`), then the client gets a retryable error; nothing waits forever.
#[tokio::test]
async fn a_peer_that_never_answers_costs_a_deadline_not_a_hang() -> anyhow::Result<()> {
    use shardline_proto::v1 as pb;
    use shardline_proto::v1::cluster_client::ClusterClient;
    // Accepts, reads, never writes.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let silent_address = silent.local_addr()?.to_string();
    let sink = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let dir = tempfile::tempdir()?;
    let server = Server::start_cluster(dir.path(), "near-0-0", "127.0.0.1:0", &["--peer-timeout-ms", "1000"])?;
    let layout = pb::StreamLayout {
        stream_name: "split".into(),
        epoch: 1,
        servers: vec![
            pb::ClusterServer { id: "near-0-0".into(), address: server.address().to_owned(), ..Default::default() },
            pb::ClusterServer { id: "far-0-0".into(), address: silent_address, ..Default::default() },
        ],
        retention_hours: 24,
        initial_shard_count: 2,
        initial_owners: vec!["near-0-0".into(), "far-0-0".into()],
        ..Default::default()
    };
    ClusterClient::new(server.internal().await?).assign(pb::AssignRequest { layout: Some(layout) }).await?;
    let client = kinesis_client_without_retries(&server.endpoint);
    let started = Instant::now();
    // "user-1" hashes into the upper half: shard 1, on the silent peer.
    let put = client
        .put_record()
        .stream_name("split")
        .partition_key("user-1")
        .data(aws_sdk_kinesis::primitives::Blob::new("x"))
        .send();
    let put = tokio::time::timeout(Duration::from_secs(10), put).await?.expect_err("the owner never answers");
    assert_eq!(shardline_tests::code(&put), "InternalFailure", "retryable: {put:?}");
    let iterator = client
        .get_shard_iterator()
        .stream_name("split")
        .shard_id("shardId-000000000001")
        .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
        .send();
    let iterator = tokio::time::timeout(Duration::from_secs(10), iterator).await?.expect_err("never answers");
    assert_eq!(shardline_tests::code(&iterator), "InternalFailure");
    assert!(started.elapsed() < Duration::from_secs(6), "two calls took {:?}", started.elapsed());
    // The local shard is unaffected.
    client
        .put_record()
        .stream_name("split")
        .partition_key("k")
        .explicit_hash_key("1")
        .data(aws_sdk_kinesis::primitives::Blob::new("x"))
        .send()
        .await?;
    sink.abort();
    Ok(())
}

/// A 16 MiB PutRecords body of empty entries, in JSON and in CBOR, is refused with the
/// 500-record ValidationException without the server holding more than a small multiple of
/// the body (decoding every entry first once took 437 MB for JSON and 1.25 GB for CBOR).
#[tokio::test]
async fn oversized_record_lists_are_refused_without_the_memory_blowing_up() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &["--stream-transition-ms", "0"])?;
    create_active_stream(&kinesis_client_without_retries(&server.endpoint), "flood", 1).await?;
    let baseline = server.peak_memory_bytes()?;
    let entries = 5_000_000;
    let mut json = String::with_capacity(16 << 20);
    json.push_str(r#"{"StreamName":"flood","Records":["#);
    for i in 0..entries {
        json.push_str(if i == 0 { "{}" } else { ",{}" });
    }
    json.push_str("]}");
    let (status, body) = shardline_tests::raw_call(&server.endpoint, "PutRecords", json).await?;
    assert_eq!((status, shardline_tests::error_type(&body)), (400, "ValidationException"), "{body}");
    let message = body.get("message").or(body.get("Message")).and_then(|m| m.as_str()).unwrap_or_default();
    assert!(message.contains("less than or equal to 500"), "{message}");

    // CBOR: a map {"StreamName": "flood", "Records": [ {} × 16M ]}.
    let mut cbor = vec![0xa2];
    ciborium::into_writer(&"StreamName", &mut cbor)?;
    ciborium::into_writer(&"flood", &mut cbor)?;
    ciborium::into_writer(&"Records", &mut cbor)?;
    let count: u32 = 16_000_000;
    cbor.push(0x9a);
    cbor.extend_from_slice(&count.to_be_bytes());
    cbor.resize(cbor.len() + count as usize, 0xa0);
    let started = Instant::now();
    let request = reqwest::Client::new()
        .post(&server.endpoint)
        .header("X-Amz-Target", "Kinesis_20131202.PutRecords")
        .header("Content-Type", "application/x-amz-cbor-1.1");
    let response = shardline_tests::signed(request).body(cbor).send().await?;
    assert_eq!(response.status().as_u16(), 400);
    let kind = response.headers().get("x-amzn-errortype").and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(kind.as_deref(), Some("ValidationException"));
    assert!(started.elapsed() < Duration::from_secs(5), "CBOR took {:?}", started.elapsed());
    let peak = server.peak_memory_bytes()?;
    assert!(peak < baseline + (200 << 20), "peak memory grew from {} MB to {} MB", baseline >> 20, peak >> 20);
    Ok(())
}

/// Operations the current SDKs know but Shardline does not serve answer why, in the AWS error
/// shape, instead of "not a Kinesis operation".
#[tokio::test]
async fn newer_sdk_operations_answer_that_they_are_not_served() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let client = kinesis_client_without_retries(&server.endpoint);
    let listed = client.list_channels().send().await.expect_err("not served");
    let described = client
        .describe_channel()
        .channel_arn("arn:aws:kinesis:us-east-1:123456789012:channel/c")
        .send()
        .await
        .expect_err("not served");
    let strategy = client
        .update_stream_record_distribution_strategy()
        .stream_arn("arn:aws:kinesis:us-east-1:123456789012:stream/s")
        .send()
        .await
        .expect_err("not served");
    for (op, code, message) in [
        ("ListChannels", shardline_tests::code(&listed), shardline_tests::message(&listed)),
        ("DescribeChannel", shardline_tests::code(&described), shardline_tests::message(&described)),
        (
            "UpdateStreamRecordDistributionStrategy",
            shardline_tests::code(&strategy),
            shardline_tests::message(&strategy),
        ),
    ] {
        assert_eq!(code, "UnknownOperationException", "{op}");
        assert!(message.contains(&format!("Shardline does not serve {op}")), "{op}: {message}");
    }
    Ok(())
}
