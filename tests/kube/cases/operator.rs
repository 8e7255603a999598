//! The operator process against a real apiserver, with the harness playing the nodes (real
//! `shard-server --cluster` processes per StatefulSet pod): a Stream goes Active with its
//! objects; `kubectl scale` 4 → 8 → 3 under a producer loses nothing and keeps each key's order;
//! a retention change reaches every server; an operator killed in the middle of a reshard step
//! converges when it comes back; a Consumer's lag falls to 0 as a worker catches up; deleting
//! the Stream releases its data and removes its objects.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use shardline::consumer::{
    Checkpointer, Position, ProcessRecordsInput, Retrieval, ShardRecordProcessor, Worker, WorkerConfig,
};
use shardline::producer::{Producer, ProducerConfig};
use shardline_operator::crd::consumer::Consumer;
use shardline_operator::crd::stream::{Phase, Stream};
use shardline_proto::v1 as pb;
use shardline_proto::v1::cluster_client::ClusterClient;
use shardline_tests::kube::{chart_service_account, install_crds, ControlPlane, Kubelet, Operator};
use shardline_tests::{code, kinesis_client, kinesis_client_without_retries, read_shard, Server};
use tokio_util::sync::CancellationToken;

const NS: &str = "default";
const STREAM: &str = "orders";
const PODS: [&str; 2] = ["orders-0-0", "orders-1-0"];

async fn wait<T>(what: &str, timeout: Duration, mut probe: impl AsyncFnMut() -> Result<Option<T>>) -> Result<T> {
    let started = Instant::now();
    loop {
        match probe().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(err) if started.elapsed() > timeout => return Err(err.context(format!("waiting for {what}"))),
            Err(_) => {}
        }
        ensure!(started.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the Stream is Active and Ready with `shards` open shards.
async fn wait_active(streams: &Api<Stream>, shards: u32) -> Result<Stream> {
    wait(&format!("{STREAM} Active with {shards} shards"), Duration::from_secs(60), async || {
        let stream = streams.get(STREAM).await?;
        let status = stream.status.clone().unwrap_or_default();
        let ready = status.conditions.iter().any(|c| c.kind == "Ready" && c.status == "True");
        Ok((status.phase == Some(Phase::Active) && ready && status.shards == shards).then_some(stream))
    })
    .await
}

async fn states(kubelet: &Kubelet) -> Result<Vec<pb::ClusterStateResponse>> {
    let mut out = Vec::new();
    for pod in PODS {
        let endpoint = kubelet.endpoint(pod).context("pod not running")?;
        let mut client = ClusterClient::connect(endpoint).await?;
        out.push(client.state(pb::ClusterStateRequest { stream_name: STREAM.into() }).await?.into_inner());
    }
    Ok(out)
}

fn stream_manifest() -> Result<Stream> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "shardline.io/v1alpha1",
        "kind": "Stream",
        "metadata": { "name": STREAM, "namespace": NS },
        "spec": { "shards": 4, "zones": ["zone-a", "zone-b"], "serversPerZone": 1 },
    }))?)
}

async fn scale(streams: &Api<Stream>, shards: u32) -> Result<()> {
    let patch = serde_json::json!({ "spec": { "replicas": shards } });
    streams.patch_scale(STREAM, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

/// A producer writing numbered records per key, in order, until stopped; what was acknowledged.
struct Writer {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Result<Vec<(String, u64, String)>>>,
}

fn start_writer(endpoint: &str) -> Writer {
    let stop = Arc::new(AtomicBool::new(false));
    let client = kinesis_client(endpoint);
    let flag = stop.clone();
    let task = tokio::spawn(async move {
        let mut config = ProducerConfig::new(STREAM);
        config.aggregation = false;
        config.ordered = true;
        config.linger = Duration::from_millis(5);
        config.retry_base = Duration::from_millis(20);
        let producer = Producer::new(client, config);
        let mut pending = Vec::new();
        let mut n = 0u64;
        while !flag.load(Ordering::Relaxed) {
            for key in 0..40 {
                let key = format!("key-{key}");
                pending.push((key.clone(), n, producer.put(key, None, format!("{n}")).await?));
            }
            n += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        producer.flush().await?;
        let mut acked = Vec::new();
        for (key, n, answer) in pending {
            acked.push((key, n, answer.await??.sequence_number));
        }
        Ok(acked)
    });
    Writer { stop, task }
}

/// Every record of the stream, read through `endpoint`: sequence number → (key, data).
async fn read_everything(endpoint: &str) -> Result<HashMap<String, (String, String)>> {
    let client = kinesis_client(endpoint);
    let shards = client.list_shards().stream_name(STREAM).send().await?;
    let mut seen = HashMap::new();
    for shard in shards.shards() {
        for (sequence, key, data) in read_shard(&client, STREAM, shard.shard_id()).await? {
            ensure!(seen.insert(sequence.clone(), (key, String::from_utf8(data)?)).is_none(), "{sequence} twice");
        }
    }
    Ok(seen)
}

/// Processes and checkpoints everything.
struct Checkpointing;

impl ShardRecordProcessor for Checkpointing {
    async fn initialize(&mut self, _shard_id: &str, _position: &Position) {}

    async fn process_records(&mut self, input: ProcessRecordsInput<'_>) {
        let _ = input.checkpointer.checkpoint().await;
    }

    async fn shard_ended(&mut self, checkpointer: &Checkpointer) {
        let _ = checkpointer.checkpoint_shard_end().await;
    }

    async fn shutdown_requested(&mut self, checkpointer: &Checkpointer) {
        let _ = checkpointer.checkpoint().await;
    }
}

#[tokio::test]
async fn the_operator_runs_a_stream_through_scaling_a_crash_a_consumer_and_deletion() -> Result<()> {
    let plane = tokio::task::spawn_blocking(ControlPlane::start).await??;
    let client = plane.client()?;
    install_crds(&client).await?;
    let kubelet = Kubelet::start(client.clone(), NS)?;
    // The operator runs as the chart's ServiceAccount: every call below must be allowed by the
    // chart's RBAC, and by nothing more.
    let token = chart_service_account(&plane, "shardline-system").await?;
    let mut operator = Operator::start_as(&plane, Some((&token, "shardline-system")), 0)?;
    let streams: Api<Stream> = Api::namespaced(client.clone(), NS);

    // Apply → Active, with the shard map spread over both zones' servers and every object made.
    streams.create(&PostParams::default(), &stream_manifest()?).await?;
    let active = wait_active(&streams, 4).await?;
    let status = active.status.clone().unwrap_or_default();
    assert_eq!(status.shard_map.len(), 4);
    for pod in PODS {
        let held = status.shard_map.iter().filter(|s| s.server.as_deref() == Some(pod)).count();
        assert_eq!(held, 2, "{pod} holds two of four shards");
    }
    assert_eq!(status.endpoint.as_deref(), Some("http://orders.default.svc:4567"));
    let claims: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> = Api::namespaced(client.clone(), NS);
    assert_eq!(claims.list(&Default::default()).await?.items.len(), 2, "one volume per server");
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    assert!(sets.get_opt("orders-0").await?.is_some() && sets.get_opt("orders-1").await?.is_some());
    let services: Api<Service> = Api::namespaced(client.clone(), NS);
    assert!(services.get_opt("orders").await?.is_some() && services.get_opt("orders-servers").await?.is_some());
    let finalizers = active.metadata.finalizers.clone().unwrap_or_default();
    assert!(finalizers.iter().any(|f| f == "streams.shardline.io/cleanup"));
    let (first, second) = (kubelet.endpoint(PODS[0]).context("pod 0")?, kubelet.endpoint(PODS[1]).context("pod 1")?);

    // kubectl scale 4 → 8 → 3 while a producer writes through one server.
    let writer = start_writer(&first);
    tokio::time::sleep(Duration::from_millis(500)).await;
    scale(&streams, 8).await?;
    wait_active(&streams, 8).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    scale(&streams, 3).await?;
    let three = wait_active(&streams, 3).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    writer.stop.store(true, Ordering::Relaxed);
    let acked = writer.task.await??;
    ensure!(acked.len() > 400, "the producer wrote through the resharding ({} records)", acked.len());
    let map = three.status.unwrap_or_default().shard_map;
    // 4 → 8 closes the 4 roots; 8 → 4 → 3 closes the 8 and then more (uniform scaling).
    assert!(map.iter().filter(|s| s.state == "closed").count() >= 12, "every parent closed: {map:?}");
    assert_eq!(map.iter().filter(|s| s.state == "open").count(), 3);
    // Read through the other server: every acknowledged record, once, and each key in order.
    let read = read_everything(&second).await?;
    let mut last: BTreeMap<&str, u128> = BTreeMap::new();
    for (key, n, sequence) in &acked {
        let (stored_key, data) = read.get(sequence).with_context(|| format!("{key} #{n} ({sequence}) lost"))?;
        assert_eq!((stored_key.as_str(), data.as_str()), (key.as_str(), n.to_string().as_str()));
        let number: u128 = sequence.parse()?;
        let previous = last.insert(key, number);
        assert!(previous.is_none_or(|p| p < number), "{key}: #{n} numbered below its predecessor");
    }
    assert_eq!(read.len(), acked.len(), "nothing stored that was not acknowledged");

    // A retention change reaches every server.
    let retention = serde_json::json!({ "spec": { "retentionHours": 48 } });
    streams.patch(STREAM, &PatchParams::default(), &Patch::Merge(&retention)).await?;
    wait("retention 48 h on both servers", Duration::from_secs(30), async || {
        let states = states(&kubelet).await?;
        Ok(states.iter().all(|s| s.layout.as_ref().is_some_and(|l| l.retention_hours == 48)).then_some(()))
    })
    .await?;
    let summary = kinesis_client(&first).describe_stream_summary().stream_name(STREAM).send().await?;
    assert_eq!(summary.stream_description_summary().map(|d| d.retention_period_hours()), Some(48));

    // The operator dies in the middle of a reshard step (servers frozen, not resharded)...
    operator.kill();
    operator.spawn(4_000)?;
    scale(&streams, 6).await?;
    wait("a frozen server", Duration::from_secs(30), async || {
        Ok(states(&kubelet).await?.iter().any(|s| s.layout.as_ref().is_some_and(|l| l.frozen)).then_some(()))
    })
    .await?;
    operator.kill();
    let refused = kinesis_client_without_retries(&first)
        .put_record()
        .stream_name(STREAM)
        .partition_key("key-0")
        .data(aws_sdk_kinesis::primitives::Blob::new("frozen"))
        .send()
        .await
        .expect_err("writes wait while frozen");
    assert_eq!(code(&refused), "InternalFailure");
    // ...and a new one finishes it.
    operator.spawn(0)?;
    wait_active(&streams, 6).await?;
    let settled = states(&kubelet).await?;
    let epochs: Vec<u64> = settled.iter().filter_map(|s| s.layout.as_ref().map(|l| l.epoch)).collect();
    assert!(epochs.len() == 2 && epochs[0] == epochs[1], "both servers at one epoch: {epochs:?}");
    assert!(settled.iter().all(|s| s.layout.as_ref().is_some_and(|l| !l.frozen)));
    kinesis_client(&second)
        .put_record()
        .stream_name(STREAM)
        .partition_key("key-0")
        .data("again".as_bytes().to_vec().into())
        .send()
        .await?;

    // A shard-server pod is deleted: its replacement starts on the same volume, the stream is
    // Ready again and every record is still there.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), NS);
    let old_uid = pods.get(PODS[1]).await?.metadata.uid;
    pods.delete(PODS[1], &DeleteParams::default()).await?;
    wait("a replacement pod", Duration::from_secs(30), async || {
        let pod = pods.get_opt(PODS[1]).await?;
        Ok(pod.filter(|p| p.metadata.uid != old_uid && kubelet.endpoint(PODS[1]).is_some()).map(|_| ()))
    })
    .await?;
    wait_active(&streams, 6).await?;
    let after_restart = read_everything(&first).await?;
    assert_eq!(after_restart.len(), acked.len() + 1, "every record survives the server's restart");

    // A Consumer reports lag, which falls to 0 as a worker catches up.
    let consumers: Api<Consumer> = Api::namespaced(client.clone(), NS);
    let consumer: Consumer = serde_json::from_value(serde_json::json!({
        "apiVersion": "shardline.io/v1alpha1",
        "kind": "Consumer",
        "metadata": { "name": "billing", "namespace": NS },
        "spec": { "stream": STREAM, "applicationName": "billing" },
    }))?;
    consumers.create(&PostParams::default(), &consumer).await?;
    let lagging = wait("consumer lag reported", Duration::from_secs(30), async || {
        let status = consumers.get("billing").await?.status.unwrap_or_default();
        Ok((status.lag_records > 0).then_some(status))
    })
    .await?;
    assert_eq!(lagging.lag_records, acked.len() as u64 + 1, "every record is behind before the worker runs");
    assert!(lagging.lag_millis > 0);
    let mut config = WorkerConfig::new("billing", STREAM, "worker-1");
    config.retrieval = Retrieval::Polling { idle: Duration::from_millis(50), max_records: 1000 };
    let worker = Worker::connect(&second, config, || Checkpointing).await?;
    let stop = CancellationToken::new();
    let running = tokio::spawn(worker.run(stop.clone()));
    let shards = streams.get(STREAM).await?.status.unwrap_or_default().shard_map.len();
    let caught_up = wait("consumer lag 0", Duration::from_secs(60), async || {
        let status = consumers.get("billing").await?.status.unwrap_or_default();
        Ok((status.lag_records == 0 && status.shards.len() == shards).then_some(status))
    })
    .await?;
    assert!(caught_up.shards.iter().any(|s| s.owner.as_deref() == Some("worker-1")));
    stop.cancel();
    running.await?;
    consumers.delete("billing", &DeleteParams::default()).await?;
    wait("consumer gone", Duration::from_secs(30), async || {
        Ok(consumers.get_opt("billing").await?.is_none().then_some(()))
    })
    .await?;

    // A Consumer of a stream that does not exist says so instead of failing.
    let orphan: Consumer = serde_json::from_value(serde_json::json!({
        "apiVersion": "shardline.io/v1alpha1",
        "kind": "Consumer",
        "metadata": { "name": "orphan", "namespace": NS },
        "spec": { "stream": "missing", "applicationName": "orphan" },
    }))?;
    consumers.create(&PostParams::default(), &orphan).await?;
    wait("orphan consumer condition", Duration::from_secs(30), async || {
        let status = consumers.get("orphan").await?.status.unwrap_or_default();
        Ok(status.conditions.iter().any(|c| c.kind == "Ready" && c.reason == "StreamNotFound").then_some(()))
    })
    .await?;
    consumers.delete("orphan", &DeleteParams::default()).await?;

    // The operator counts its work on /metrics.
    let metrics = reqwest::get(&operator.metrics_endpoint).await?.text().await?;
    let reconciles = metrics
        .lines()
        .find(|l| l.starts_with("shardline_operator_reconciles_total{controller=\"stream\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .context("no stream reconcile counter")?;
    assert!(reconciles > 0.0, "{metrics}");
    assert!(metrics.contains("shardline_operator_reconcile_duration_seconds_bucket"));

    // Events tell the story.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), NS);
    let reasons: Vec<String> = events
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(STREAM))
        .filter_map(|e| e.reason)
        .collect();
    for reason in ["Created", "Resharded", "SettingsChanged"] {
        assert!(reasons.iter().any(|r| r == reason), "no {reason} event in {reasons:?}");
    }

    // Delete: the finalizer releases the data on the servers, then objects and pods go.
    streams.delete(STREAM, &DeleteParams::default()).await?;
    wait("stream gone", Duration::from_secs(30), async || Ok(streams.get_opt(STREAM).await?.is_none().then_some(())))
        .await?;
    assert!(sets.get_opt("orders-0").await?.is_none() && sets.get_opt("orders-1").await?.is_none());
    assert!(services.get_opt("orders").await?.is_none());
    wait("pods stopped", Duration::from_secs(30), async || Ok(kubelet.pods().is_empty().then_some(()))).await?;
    let claims: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> = Api::namespaced(client.clone(), NS);
    // Deleted; with no controller-manager here, pvc-protection's finalizer keeps them listed.
    let claims = claims.list(&Default::default()).await?.items;
    assert!(claims.iter().all(|c| c.metadata.deletion_timestamp.is_some()), "the stream's volumes are deleted");
    let leftover = Server::start_cluster(&kubelet.data_dir(PODS[0]), PODS[0], "127.0.0.1:0", &[])?;
    let state = ClusterClient::connect(leftover.endpoint.clone())
        .await?
        .state(pb::ClusterStateRequest { stream_name: STREAM.into() })
        .await?
        .into_inner();
    assert!(state.layout.is_none(), "the stream's data was released");
    Ok(())
}
