//! An ON_DEMAND Stream follows its write rate: the operator samples the servers' appended
//! records, grows the stream while a producer writes faster than half of its shards' capacity,
//! and shrinks it again (never below `spec.shards`) once the writes stop. Two operator replicas
//! run: only the lease holder reconciles, and when its pod dies the other takes over.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use shardline_operator::crd::stream::Stream;
use shardline_tests::kinesis_client;
use shardline_tests::kube::nodes::OPERATOR_NAMESPACE;
use shardline_tests::kube::Cluster;

use super::operator::{leader_metrics, wait};

async fn shards(streams: &Api<Stream>) -> Result<u32> {
    Ok(streams.get("clicks").await?.status.unwrap_or_default().shards)
}

fn reconciled(metrics: &str) -> bool {
    metrics.lines().any(|l| l.starts_with("shardline_operator_reconciles_total"))
}

pub async fn on_demand(cluster: &Cluster) -> Result<()> {
    let client = cluster.plane.client()?;
    let streams: Api<Stream> = Api::namespaced(client.clone(), "default");
    let stream: Stream = serde_json::from_value(serde_json::json!({
        "apiVersion": "shardline.io/v1alpha1",
        "kind": "Stream",
        "metadata": { "name": "clicks", "namespace": "default" },
        "spec": { "shards": 1, "streamMode": "ON_DEMAND" },
    }))?;
    streams.create(&PostParams::default(), &stream).await?;
    wait("clicks Active", Duration::from_secs(120), async || Ok((shards(&streams).await? == 1).then_some(()))).await?;
    let endpoint = wait("clicks-0-0 Ready", Duration::from_secs(60), async || {
        cluster.pod_endpoint("default", "clicks-0-0", 4567).await
    })
    .await?;

    // About 3,000 records/s: six times half of one shard's capacity.
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let writer_client = kinesis_client(&endpoint);
    let writer = tokio::spawn(async move {
        let mut n = 0u64;
        while !flag.load(Ordering::Relaxed) {
            let batch = (0..300)
                .map(|i| {
                    PutRecordsRequestEntry::builder()
                        .partition_key(format!("user-{i}"))
                        .data(Blob::new(format!("click-{n}-{i}")))
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()?;
            writer_client.put_records().stream_name("clicks").set_records(Some(batch)).send().await?;
            n += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::Ok(n)
    });
    let grown = Instant::now();
    let mut peak = 1;
    while peak < 4 {
        ensure!(grown.elapsed() < Duration::from_secs(120), "clicks did not grow (at {peak} shards)");
        peak = peak.max(shards(&streams).await?);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let batches = writer.await??;
    ensure!(batches > 10, "the writer ran ({batches} batches)");

    // Idle: it shrinks back towards spec.shards.
    let shrunk = Instant::now();
    loop {
        let now = shards(&streams).await?;
        peak = peak.max(now);
        if now < peak && now <= 2 {
            break;
        }
        ensure!(shrunk.elapsed() < Duration::from_secs(150), "clicks did not shrink (at {now}, peak {peak})");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Leader election: only the lease holder reconciled; when its pod dies the other replica
    // takes over.
    let operators = cluster.wait_operator_pods(2).await?;
    let (leader, _) = leader_metrics(cluster).await?;
    let standby = operators.iter().find(|p| **p != leader).context("no standby replica")?;
    let standby_endpoint =
        cluster.pod_endpoint(OPERATOR_NAMESPACE, standby, 8080).await?.context("standby not Ready")?;
    let idle = reqwest::get(format!("{standby_endpoint}/metrics")).await?.text().await?;
    assert!(!reconciled(&idle), "the standby {standby} reconciled while not leading:\n{idle}");
    let pods: Api<Pod> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    pods.delete(&leader, &DeleteParams::default().grace_period(0)).await?;
    let (holder, metrics) = wait("a new leader", Duration::from_secs(60), async || {
        let (holder, metrics) = leader_metrics(cluster).await?;
        Ok((holder != leader && reconciled(&metrics)).then_some((holder, metrics)))
    })
    .await?;
    assert!(reconciled(&metrics), "{holder} leads and reconciles");
    streams.delete("clicks", &DeleteParams::default()).await?;
    wait("clicks gone", Duration::from_secs(60), async || Ok(streams.get_opt("clicks").await?.is_none().then_some(())))
        .await?;
    Ok(())
}
