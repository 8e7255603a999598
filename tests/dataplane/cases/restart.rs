//! Restart: a clean stop and start restores every stream, shard, record, setting and counter,
//! and iterators issued before the restart stay valid.

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::ShardIteratorType;
use shardline_tests::{create_active_stream, read_shard, Server};

#[tokio::test]
async fn a_restart_restores_streams_records_and_counters() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut server = Server::start(&dir, &[])?;
    let client = server.client();
    create_active_stream(&client, "alpha", 3).await?;
    create_active_stream(&client, "beta", 1).await?;
    client.increase_stream_retention_period().stream_name("beta").retention_period_hours(72).send().await?;
    let mut before = Vec::new();
    for i in 0..60 {
        let put = client
            .put_record()
            .stream_name("alpha")
            .partition_key(format!("k{i}"))
            .data(Blob::new(format!("a{i}")))
            .send()
            .await?;
        before.push((put.shard_id().to_owned(), shardline_tests::seq(put.sequence_number())));
    }
    client.put_record().stream_name("beta").partition_key("k").data(Blob::new("b0")).send().await?;
    let early_iterator = client
        .get_shard_iterator()
        .stream_name("beta")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await?
        .shard_iterator
        .unwrap_or_default();
    let alpha_before: Vec<_> = read_stream(&client, "alpha", 3).await?;

    server.terminate()?;
    server.restart()?;
    let client = server.client();

    assert_eq!(client.list_streams().send().await?.stream_names(), ["alpha", "beta"]);
    let beta = client.describe_stream_summary().stream_name("beta").send().await?;
    assert_eq!(beta.stream_description_summary().map(|s| s.retention_period_hours()), Some(72));
    assert_eq!(read_stream(&client, "alpha", 3).await?, alpha_before);
    let page = client.get_records().shard_iterator(early_iterator).send().await?;
    assert_eq!(page.records().first().map(|r| r.data().as_ref().to_vec()), Some(b"b0".to_vec()));

    for i in 0..60 {
        let put = client
            .put_record()
            .stream_name("alpha")
            .partition_key(format!("k{i}"))
            .data(Blob::new("after"))
            .send()
            .await?;
        let max_before = before.iter().filter(|(s, _)| s == put.shard_id()).map(|(_, n)| *n).max();
        assert!(
            max_before.is_some_and(|max| shardline_tests::seq(put.sequence_number()) > max),
            "sequence numbers keep increasing after a restart"
        );
    }
    Ok(())
}

async fn read_stream(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    shards: usize,
) -> anyhow::Result<Vec<Vec<(String, String, Vec<u8>)>>> {
    let mut out = Vec::new();
    for shard in 0..shards {
        out.push(read_shard(client, stream, &format!("shardId-{shard:012}")).await?);
    }
    Ok(out)
}
