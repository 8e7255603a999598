//! An ON_DEMAND Stream follows its write rate: the operator samples the servers' appended
//! records, grows the stream while a producer writes faster than half of its shards' capacity,
//! and shrinks it again (never below `spec.shards`) once the writes stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use kube::api::{Api, PostParams};
use shardline_operator::crd::stream::Stream;
use shardline_tests::kinesis_client;
use shardline_tests::kube::{install_crds, ControlPlane, Kubelet, Operator};

async fn shards(streams: &Api<Stream>) -> Result<u32> {
    Ok(streams.get("clicks").await?.status.unwrap_or_default().shards)
}

#[tokio::test]
async fn an_on_demand_stream_grows_with_its_write_rate_and_shrinks_after() -> Result<()> {
    let plane = tokio::task::spawn_blocking(ControlPlane::start).await??;
    let client = plane.client()?;
    install_crds(&client).await?;
    let kubelet = Kubelet::start(client.clone(), "default")?;
    let mut operator = Operator::start(&plane, 0)?;
    // A second replica stands by while the first holds the leader lease.
    let standby = Operator::start_replica(&plane, "operator-1")?;
    let streams: Api<Stream> = Api::namespaced(client.clone(), "default");
    let stream: Stream = serde_json::from_value(serde_json::json!({
        "apiVersion": "shardline.io/v1alpha1",
        "kind": "Stream",
        "metadata": { "name": "clicks", "namespace": "default" },
        "spec": { "shards": 1, "streamMode": "ON_DEMAND" },
    }))?;
    streams.create(&PostParams::default(), &stream).await?;
    let started = Instant::now();
    while shards(&streams).await? != 1 {
        ensure!(started.elapsed() < Duration::from_secs(60), "clicks never became Active");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let endpoint = kubelet.endpoint("clicks-0-0").context("pod")?;

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
        ensure!(grown.elapsed() < Duration::from_secs(90), "clicks did not grow (at {peak} shards)");
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
        ensure!(shrunk.elapsed() < Duration::from_secs(120), "clicks did not shrink (at {now}, peak {peak})");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Leader election: only the lease holder reconciled; when it dies the standby takes over.
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(client.clone(), "default");
    let holder = |lease: k8s_openapi::api::coordination::v1::Lease| lease.spec.and_then(|s| s.holder_identity);
    assert_eq!(holder(leases.get("shardline-operator").await?).as_deref(), Some("operator-0"));
    let reconciles = |text: &str| text.lines().any(|l| l.starts_with("shardline_operator_reconciles_total"));
    let idle = reqwest::get(&standby.metrics_endpoint).await?.text().await?;
    assert!(!reconciles(&idle), "the standby reconciled while not leading:\n{idle}");
    operator.kill();
    let taken = Instant::now();
    loop {
        let text = reqwest::get(&standby.metrics_endpoint).await?.text().await?;
        if holder(leases.get("shardline-operator").await?).as_deref() == Some("operator-1") && reconciles(&text) {
            break;
        }
        ensure!(taken.elapsed() < Duration::from_secs(45), "the standby never took over");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}
