//! Resharding through the AWS SDK: SplitShard, MergeShards and UpdateShardCount, reads across
//! the parent/child boundary in order, ChildShards at a closed shard's end, AWS's validation,
//! and a server killed at random moments while it reshards under load.

use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{ScalingType, ShardFilter, ShardFilterType, ShardIteratorType, StreamStatus};
use rand::Rng;
use shardline_tests::{code, create_active_stream, message, shard_ranges, wait_for_status, Server};

type Client = aws_sdk_kinesis::Client;

async fn put(client: &Client, stream: &str, key: &str, data: &str) -> anyhow::Result<(String, String)> {
    let out =
        client.put_record().stream_name(stream).partition_key(key).data(Blob::new(data.as_bytes())).send().await?;
    Ok((out.shard_id().to_owned(), out.sequence_number().to_owned()))
}

/// Reads a shard from TRIM_HORIZON until the server ends it: `(data, sequence)` pairs and the
/// ChildShards of the final page (empty while the shard is open).
async fn read_to_end(
    client: &Client,
    stream: &str,
    shard: &str,
) -> anyhow::Result<(Vec<(String, String)>, Vec<String>)> {
    let mut iterator = client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await?
        .shard_iterator
        .unwrap_or_default();
    let mut records = Vec::new();
    loop {
        let page = client.get_records().shard_iterator(&iterator).send().await?;
        for r in page.records() {
            records.push((String::from_utf8_lossy(r.data().as_ref()).into_owned(), r.sequence_number().to_owned()));
        }
        match page.next_shard_iterator() {
            Some(next) if !page.records().is_empty() => iterator = next.to_owned(),
            Some(_) => return Ok((records, Vec::new())),
            None => {
                let children = page.child_shards().iter().map(|c| c.shard_id().to_owned()).collect();
                return Ok((records, children));
            }
        }
    }
}

use shardline_tests::seq;

#[tokio::test]
async fn split_moves_new_records_to_children_and_parents_end_with_child_shards() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let client = server.client();
    create_active_stream(&client, "split", 1).await?;
    let mut before = Vec::new();
    for i in 0..10 {
        before.push(put(&client, "split", "key", &format!("before-{i}")).await?);
    }
    let middle = (1u128 << 127).to_string();
    client
        .split_shard()
        .stream_name("split")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key(&middle)
        .send()
        .await?;
    let summary = client.describe_stream_summary().stream_name("split").send().await?;
    assert_eq!(summary.stream_description_summary().map(|s| s.stream_status().clone()), Some(StreamStatus::Updating));
    // A second reshard while UPDATING is refused.
    let busy = client
        .split_shard()
        .stream_name("split")
        .shard_to_split("shardId-000000000001")
        .new_starting_hash_key("5")
        .send()
        .await;
    assert_eq!(busy.as_ref().map_err(code).err().as_deref(), Some("ResourceInUseException"));
    let mut after = Vec::new();
    for i in 0..10 {
        after.push(put(&client, "split", "key", &format!("after-{i}")).await?);
    }
    wait_for_status(&client, "split", StreamStatus::Active).await?;

    let shards = client.list_shards().stream_name("split").send().await?;
    let shards = shards.shards();
    assert_eq!(shards.len(), 3);
    let parent = &shards[0];
    let ending = parent.sequence_number_range().and_then(|r| r.ending_sequence_number()).unwrap_or_default();
    assert_eq!(seq(ending).counter, seq(&before[9].1).counter, "the parent ends at its last record");
    assert!(seq(ending) >= seq(&before[9].1));
    for child in &shards[1..] {
        assert_eq!(child.parent_shard_id(), Some("shardId-000000000000"));
        assert!(child.sequence_number_range().is_some_and(|r| r.ending_sequence_number().is_none()));
    }
    let child = &after[0].0;
    assert!(after.iter().all(|(shard, _)| shard == child), "one key, one child");
    assert!(seq(&after[0].1) > seq(&before[9].1), "children's sequence numbers follow the parent's");

    // Reading the parent to its end yields its records and then its children, no next iterator.
    let (records, children) = read_to_end(&client, "split", "shardId-000000000000").await?;
    let data: Vec<_> = records.iter().map(|(d, _)| d.clone()).collect();
    assert_eq!(data, (0..10).map(|i| format!("before-{i}")).collect::<Vec<_>>());
    assert_eq!(children, vec!["shardId-000000000001", "shardId-000000000002"]);
    let (records, children) = read_to_end(&client, "split", child).await?;
    assert_eq!(
        records.iter().map(|(d, _)| d.clone()).collect::<Vec<_>>(),
        (0..10).map(|i| format!("after-{i}")).collect::<Vec<_>>()
    );
    assert!(children.is_empty(), "an open child has no children");

    // LATEST of a closed shard is already its end.
    let latest = client
        .get_shard_iterator()
        .stream_name("split")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::Latest)
        .send()
        .await?;
    let page = client.get_records().shard_iterator(latest.shard_iterator().unwrap_or_default()).send().await?;
    assert!(page.next_shard_iterator().is_none());
    assert_eq!(page.child_shards().len(), 2);

    // The closed parent cannot be split again; the AT_LATEST filter lists only the children.
    let again = client
        .split_shard()
        .stream_name("split")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key(&middle)
        .send()
        .await;
    let err = again.expect_err("closed shard");
    assert_eq!(code(&err), "InvalidArgumentException");
    assert!(message(&err).contains("already been merged or split"), "{}", message(&err));
    let open = client
        .list_shards()
        .stream_name("split")
        .shard_filter(ShardFilter::builder().r#type(ShardFilterType::AtLatest).build()?)
        .send()
        .await?;
    assert_eq!(
        open.shards().iter().map(|s| s.shard_id()).collect::<Vec<_>>(),
        vec!["shardId-000000000001", "shardId-000000000002"]
    );
    Ok(())
}

#[tokio::test]
async fn merge_joins_adjacent_shards() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let client = server.client();
    create_active_stream(&client, "merge", 3).await?;
    let not_adjacent = client
        .merge_shards()
        .stream_name("merge")
        .shard_to_merge("shardId-000000000000")
        .adjacent_shard_to_merge("shardId-000000000002")
        .send()
        .await;
    let err = not_adjacent.expect_err("not adjacent");
    assert_eq!(code(&err), "InvalidArgumentException");
    assert!(message(&err).contains("not an adjacent pair"), "{}", message(&err));
    let missing = client
        .merge_shards()
        .stream_name("merge")
        .shard_to_merge("shardId-000000000000")
        .adjacent_shard_to_merge("shardId-000000000009")
        .send()
        .await;
    assert_eq!(missing.as_ref().map_err(code).err().as_deref(), Some("ResourceNotFoundException"));

    let keys: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
    for key in &keys {
        put(&client, "merge", key, &format!("before-{key}")).await?;
    }
    // Kinesis merges a shard with the one just above it; the pair the other way round is refused.
    let inverted = client
        .merge_shards()
        .stream_name("merge")
        .shard_to_merge("shard-1")
        .adjacent_shard_to_merge("0")
        .send()
        .await
        .expect_err("inverted");
    assert_eq!(
        message(&inverted),
        "Shards shardId-000000000001 and shardId-000000000000 in stream merge under account 123456789012 are not an adjacent pair of shards eligible for merging"
    );
    client
        .merge_shards()
        .stream_name("merge")
        .shard_to_merge("shardId-000000000000")
        .adjacent_shard_to_merge("shardId-000000000001")
        .send()
        .await?;
    wait_for_status(&client, "merge", StreamStatus::Active).await?;
    let shards = client.list_shards().stream_name("merge").send().await?;
    let child = shards.shards().iter().find(|s| s.shard_id() == "shardId-000000000003").expect("merged child");
    assert_eq!(child.parent_shard_id(), Some("shardId-000000000000"));
    assert_eq!(child.adjacent_parent_shard_id(), Some("shardId-000000000001"));
    assert_eq!(child.hash_key_range().map(|r| r.starting_hash_key()), Some("0"));
    let ranges = shard_ranges(&client, "merge").await?;
    assert_eq!(ranges.len(), 2);
    for key in &keys {
        let (shard, _) = put(&client, "merge", key, &format!("after-{key}")).await?;
        assert!(shard == "shardId-000000000003" || shard == "shardId-000000000002", "{key} went to {shard}");
    }
    for parent in ["shardId-000000000000", "shardId-000000000001"] {
        let (records, children) = read_to_end(&client, "merge", parent).await?;
        assert!(records.iter().all(|(d, _)| d.starts_with("before-")));
        assert_eq!(children, vec!["shardId-000000000003"]);
    }
    Ok(())
}

#[tokio::test]
async fn update_shard_count_scales_uniformly_within_bounds() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let client = server.client();
    create_active_stream(&client, "scale", 3).await?;
    let over = client
        .update_shard_count()
        .stream_name("scale")
        .target_shard_count(7)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await;
    let err = over.expect_err("more than double");
    assert_eq!(code(&err), "InvalidArgumentException");
    assert!(message(&err).contains("double"), "{}", message(&err));
    let under = client
        .update_shard_count()
        .stream_name("scale")
        .target_shard_count(1)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await;
    assert_eq!(under.as_ref().map_err(code).err().as_deref(), Some("InvalidArgumentException"));
    let zero = client
        .update_shard_count()
        .stream_name("scale")
        .target_shard_count(0)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await;
    assert_eq!(zero.as_ref().map_err(code).err().as_deref(), Some("ValidationException"));

    for key in 0..30 {
        put(&client, "scale", &format!("k{key}"), "x").await?;
    }
    for (target, current) in [(5, 3), (4, 5), (2, 4)] {
        let out = client
            .update_shard_count()
            .stream_name("scale")
            .target_shard_count(target)
            .scaling_type(ScalingType::UniformScaling)
            .send()
            .await?;
        assert_eq!((out.current_shard_count(), out.target_shard_count()), (Some(current), Some(target)));
        wait_for_status(&client, "scale", StreamStatus::Active).await?;
        let mut ranges = shard_ranges(&client, "scale").await?;
        ranges.sort_by_key(|r| r.1);
        assert_eq!(ranges.len(), usize::try_from(target)?);
        let width = u128::MAX / u128::try_from(target)?;
        for (i, (_, start, _)) in ranges.iter().enumerate() {
            let ideal = width * u128::try_from(i)?;
            assert!(start.abs_diff(ideal) <= u128::try_from(target)?, "shard {i} starts at {start}, ideal {ideal}");
        }
    }
    // Every shard ever created is listed, and each child names parents that exist.
    let all = client.list_shards().stream_name("scale").send().await?;
    let ids: Vec<_> = all.shards().iter().map(|s| s.shard_id().to_owned()).collect();
    for shard in all.shards() {
        for parent in shard.parent_shard_id().into_iter().chain(shard.adjacent_parent_shard_id()) {
            assert!(ids.iter().any(|id| id == parent) && parent < shard.shard_id());
        }
    }
    Ok(())
}

/// Puts and reshards run together while the server is killed at random moments. After each
/// restart the open shards tile the key space, every closed shard holds nothing past its
/// ending sequence number, and every acknowledged record is read back exactly once.
#[tokio::test]
async fn a_kill_during_resharding_leaves_a_consistent_stream() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut server = Server::start(&dir, &["--stream-transition-ms", "20"])?;
    create_active_stream(&server.client(), "crashy", 2).await?;
    let mut acked: Vec<String> = Vec::new();
    let mut rng = rand::rng();
    for round in 0..4 {
        let client = server.client();
        let producer = {
            let client = client.clone();
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0.. {
                    let data = format!("r{round}-{i}");
                    match client
                        .put_record()
                        .stream_name("crashy")
                        .partition_key(&data)
                        .data(Blob::new(data.as_bytes()))
                        .send()
                        .await
                    {
                        Ok(_) => acked.push(data),
                        Err(_) => break,
                    }
                }
                acked
            })
        };
        let resharder = {
            let client = client.clone();
            tokio::spawn(async move {
                loop {
                    let _ = reshard_once(&client).await;
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..600))).await;
        server.kill()?;
        resharder.abort();
        acked.extend(producer.await?);
        server.restart()?;
        let client = server.client();
        wait_for_status(&client, "crashy", StreamStatus::Active).await?;

        let listed = client.list_shards().stream_name("crashy").send().await?;
        let mut open: Vec<(u128, u128)> = Vec::new();
        let mut seen = Vec::new();
        for shard in listed.shards() {
            let range = shard.hash_key_range().expect("range");
            let (start, end): (u128, u128) = (range.starting_hash_key().parse()?, range.ending_hash_key().parse()?);
            let ending = shard.sequence_number_range().and_then(|r| r.ending_sequence_number()).map(seq);
            if ending.is_none() {
                open.push((start, end));
            }
            let (records, children) = read_to_end(&client, "crashy", shard.shard_id()).await?;
            if let Some(ending) = ending {
                assert!(records.iter().all(|(_, s)| seq(s) <= ending), "a record past the end of {}", shard.shard_id());
                assert!(!children.is_empty(), "closed shard {} has children", shard.shard_id());
            }
            seen.extend(records.into_iter().map(|(d, _)| d));
        }
        open.sort_unstable();
        assert_eq!(open.first().map(|r| r.0), Some(0));
        assert_eq!(open.last().map(|r| r.1), Some(u128::MAX));
        assert!(open.windows(2).all(|w| w[0].1 + 1 == w[1].0), "open shards tile the key space: {open:?}");
        let mut unique = seen.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "no record is stored twice");
        for data in &acked {
            assert!(unique.binary_search(data).is_ok(), "acknowledged {data} was lost");
        }
    }
    Ok(())
}

/// One split (while there are fewer than six open shards) or merge, chosen from the live map,
/// plus an UpdateShardCount now and then; errors (UPDATING, limits) are expected and ignored.
async fn reshard_once(client: &Client) -> anyhow::Result<()> {
    let open = client
        .list_shards()
        .stream_name("crashy")
        .shard_filter(ShardFilter::builder().r#type(ShardFilterType::AtLatest).build()?)
        .send()
        .await?;
    let mut shards: Vec<(u128, u128, String)> = open
        .shards()
        .iter()
        .filter_map(|s| {
            let r = s.hash_key_range()?;
            Some((r.starting_hash_key().parse().ok()?, r.ending_hash_key().parse().ok()?, s.shard_id().to_owned()))
        })
        .collect();
    shards.sort_unstable();
    if rand::rng().random_bool(0.2) {
        let target = i32::try_from(shards.len())?.max(2) - 1;
        client
            .update_shard_count()
            .stream_name("crashy")
            .target_shard_count(target)
            .scaling_type(ScalingType::UniformScaling)
            .send()
            .await?;
    } else if shards.len() < 6 {
        let (start, end, id) = shards.iter().max_by_key(|(s, e, _)| e - s).cloned().unwrap_or_default();
        let middle = start + (end - start) / 2;
        client
            .split_shard()
            .stream_name("crashy")
            .shard_to_split(id)
            .new_starting_hash_key(middle.to_string())
            .send()
            .await?;
    } else if let [first, second, ..] = shards.as_slice() {
        client
            .merge_shards()
            .stream_name("crashy")
            .shard_to_merge(&first.2)
            .adjacent_shard_to_merge(&second.2)
            .send()
            .await?;
    }
    Ok(())
}
