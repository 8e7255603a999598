//! The operator as users run it, on real nodes (see `shardline_tests::kube::nodes`): installed
//! from the Helm chart as a Deployment, the Stream and Consumer of `examples/` applied with
//! kubectl, shard-server pods scheduled across three zones and run by real kubelets from the
//! operator's own pod specs, clients on the pods' addresses. A Stream goes Active with its
//! objects; `kubectl scale` 4 → 8 → 3 under a producer loses nothing and keeps each key's order;
//! a retention change reaches every server; an operator killed in the middle of a reshard step
//! converges when it comes back; a deleted pod comes back on its volume; a Consumer's lag falls
//! to 0 as a worker catches up; deleting the Stream releases its data and removes its objects.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use shardline::consumer::{
    Checkpointer, Position, ProcessRecordsInput, Retrieval, ShardRecordProcessor, Worker, WorkerConfig,
};
use shardline::producer::{Producer, ProducerConfig};
use shardline_operator::crd::consumer::Consumer;
use shardline_operator::crd::stream::{Phase, Stream};
use shardline_proto::auth::BearerToken;
use shardline_proto::v1 as pb;
use shardline_proto::v1::cluster_client::ClusterClient;
use shardline_tests::kube::nodes::{describe_pods, OPERATOR_NAMESPACE, ZONES};
use shardline_tests::kube::{kubectl, Cluster};
use shardline_tests::{code, kinesis_client, kinesis_client_without_retries, read_shard, Server};
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

const NS: &str = "default";
const STREAM: &str = "orders";
/// One shard-server per zone: `examples/stream.yaml` spreads the stream over three.
const PODS: [&str; 3] = ["orders-0-0", "orders-1-0", "orders-2-0"];

pub async fn wait<T>(what: &str, timeout: Duration, mut probe: impl AsyncFnMut() -> Result<Option<T>>) -> Result<T> {
    let started = Instant::now();
    loop {
        match probe().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(err) if started.elapsed() > timeout => return Err(err.context(format!("waiting for {what}"))),
            Err(_) => {}
        }
        ensure!(started.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Waits until the Stream is Active and Ready with `shards` open shards.
async fn wait_active(cluster: &Cluster, streams: &Api<Stream>, shards: u32) -> Result<Stream> {
    let waited = wait(&format!("{STREAM} Active with {shards} shards"), Duration::from_secs(120), async || {
        let stream = streams.get(STREAM).await?;
        let status = stream.status.clone().unwrap_or_default();
        let ready = status.conditions.iter().any(|c| c.kind == "Ready" && c.status == "True");
        Ok((status.phase == Some(Phase::Active) && ready && status.shards == shards).then_some(stream))
    })
    .await;
    waited.with_context(|| cluster.logs(NS))
}

/// The Kinesis endpoint of a Ready shard-server pod.
async fn endpoint(cluster: &Cluster, pod: &str) -> Result<String> {
    cluster.pod_endpoint(NS, pod, 4567).await?.with_context(|| format!("{pod} is not Ready"))
}

/// The stream's internal token, from the Secret the operator made.
async fn internal_token(cluster: &Cluster) -> Result<BearerToken> {
    let secrets: Api<Secret> = Api::namespaced(cluster.plane.client()?, NS);
    let secret = secrets.get(&format!("{STREAM}-internal-token")).await?;
    let owner = secret.metadata.owner_references.unwrap_or_default();
    ensure!(owner.iter().any(|o| o.kind == "Stream" && o.name == STREAM), "the token Secret is not the Stream's");
    let bytes = secret.data.unwrap_or_default().remove("token").context("no token in the Secret")?.0;
    BearerToken::new(std::str::from_utf8(&bytes)?.trim()).context("token is not ASCII")
}

/// A Cluster client for a Ready pod's internal port, with the stream's token.
async fn cluster_client(
    cluster: &Cluster,
    pod: &str,
) -> Result<ClusterClient<InterceptedService<Channel, BearerToken>>> {
    let address = cluster.pod_endpoint(NS, pod, 4569).await?.with_context(|| format!("{pod} is not Ready"))?;
    let channel = Channel::from_shared(address)?.connect().await?;
    Ok(ClusterClient::with_interceptor(channel, internal_token(cluster).await?))
}

async fn states(cluster: &Cluster) -> Result<Vec<pb::ClusterStateResponse>> {
    let mut out = Vec::new();
    for pod in PODS {
        let mut client = cluster_client(cluster, pod).await?;
        out.push(client.state(pb::ClusterStateRequest { stream_name: STREAM.into() }).await?.into_inner());
    }
    Ok(out)
}

/// A client in the cluster without the token (here, on the pod network) cannot reach the
/// servers' Cluster service: the internal port refuses it, the Kinesis port does not serve it.
async fn strangers_are_refused(cluster: &Cluster) -> Result<()> {
    let internal = cluster.pod_endpoint(NS, PODS[0], 4569).await?.context("not Ready")?;
    let mut stranger = ClusterClient::new(Channel::from_shared(internal)?.connect().await?);
    let refused = stranger.release(pb::ReleaseRequest { stream_name: STREAM.into() }).await.expect_err("no token");
    ensure!(refused.code() == tonic::Code::Unauthenticated, "internal port without a token: {refused:?}");
    let mut public = ClusterClient::new(Channel::from_shared(endpoint(cluster, PODS[0]).await?)?.connect().await?);
    let refused = public.release(pb::ReleaseRequest { stream_name: STREAM.into() }).await.expect_err("public");
    ensure!(refused.code() == tonic::Code::Unimplemented, "Kinesis port: {refused:?}");
    Ok(())
}

async fn scale(streams: &Api<Stream>, shards: u32) -> Result<()> {
    let patch = serde_json::json!({ "spec": { "replicas": shards } });
    streams.patch_scale(STREAM, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

/// The example manifest `examples/NAME`.
fn example(name: &str) -> Result<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name);
    Ok(std::fs::read_to_string(path)?)
}

/// Sets the operator Deployment's replicas and its reshard pause (the hidden
/// `SHARDLINE_RESHARD_PAUSE_MS`, which holds a step between freezing and resharding), as
/// `kubectl patch` would.
pub async fn set_operator(cluster: &Cluster, replicas: i32, reshard_pause_ms: u64) -> Result<()> {
    let deployments: Api<Deployment> = Api::namespaced(cluster.plane.client()?, OPERATOR_NAMESPACE);
    let patch = serde_json::json!({
        "spec": {
            "replicas": replicas,
            "template": { "spec": { "containers": [{
                "name": "operator",
                "env": [{ "name": "SHARDLINE_RESHARD_PAUSE_MS", "value": reshard_pause_ms.to_string() }],
            }] } },
        },
    });
    deployments.patch("shardline", &PatchParams::default(), &Patch::Strategic(&patch)).await?;
    Ok(())
}

/// Kills every operator pod at once (no grace period) and keeps them down.
async fn kill_operator(cluster: &Cluster) -> Result<()> {
    let deployments: Api<Deployment> = Api::namespaced(cluster.plane.client()?, OPERATOR_NAMESPACE);
    let patch = serde_json::json!({ "spec": { "replicas": 0 } });
    deployments.patch("shardline", &PatchParams::default(), &Patch::Merge(&patch)).await?;
    let pods: Api<Pod> = Api::namespaced(cluster.plane.client()?, OPERATOR_NAMESPACE);
    for pod in pods.list(&Default::default()).await?.items {
        let name = pod.metadata.name.unwrap_or_default();
        let _ = pods.delete(&name, &DeleteParams::default().grace_period(0)).await;
    }
    cluster.wait_operator_pods(0).await?;
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

/// The operator's `/metrics` text from the pod holding its leader lease.
pub async fn leader_metrics(cluster: &Cluster) -> Result<(String, String)> {
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(cluster.plane.client()?, OPERATOR_NAMESPACE);
    let holder = leases
        .get("shardline-operator")
        .await?
        .spec
        .and_then(|s| s.holder_identity)
        .context("nobody holds the operator lease")?;
    let endpoint = cluster.pod_endpoint(OPERATOR_NAMESPACE, &holder, 8080).await?.context("leader not Ready")?;
    Ok((holder, reqwest::get(format!("{endpoint}/metrics")).await?.text().await?))
}

/// The operator (installed by the chart, running as its ServiceAccount: every call below must
/// be allowed by the chart's RBAC, and by nothing more) through one Stream's life.
pub async fn stream_lifecycle(cluster: &Cluster) -> Result<()> {
    let client = cluster.plane.client()?;
    let streams: Api<Stream> = Api::namespaced(client.clone(), NS);

    // kubectl apply -f examples/stream.yaml → Active, one server per zone, the shard map spread
    // over them, every object made.
    kubectl(&cluster.plane, &["apply", "-n", NS, "-f", "-"], &example("stream.yaml")?)?;
    let active = wait_active(cluster, &streams, 4).await?;
    let status = active.status.clone().unwrap_or_default();
    assert_eq!(status.shard_map.len(), 4);
    for (pod, zone) in PODS.iter().zip(ZONES) {
        let held = status.shard_map.iter().filter(|s| s.server.as_deref() == Some(*pod)).count();
        assert!((1..=2).contains(&held), "{pod} leads {held} of four shards by preference");
        assert_eq!(cluster.pod_zone(NS, pod).await?.as_deref(), Some(zone), "{pod} runs in {zone}");
    }
    // replicationFactor 3 over three zones: every shard has a replica in each zone, a leader,
    // and none is under-replicated once the leaders are elected.
    let replicated = wait("every shard led and fully replicated", Duration::from_secs(60), async || {
        let status = streams.get(STREAM).await?.status.unwrap_or_default();
        let led = status.shard_map.iter().all(|s| s.leader.is_some());
        Ok((led && status.under_replicated == 0).then_some(status))
    })
    .await?;
    for shard in &replicated.shard_map {
        let mut replicas = shard.replicas.clone();
        replicas.sort();
        assert_eq!(replicas, PODS.map(String::from).to_vec(), "{} has a replica in every zone", shard.id);
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let running = pods.list(&Default::default()).await?.items;
    assert_eq!(running.len(), 3, "one pod per zone: {}", describe_pods(&running));
    assert_eq!(status.endpoint.as_deref(), Some("http://orders.default.svc:4567"));
    let claims: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> = Api::namespaced(client.clone(), NS);
    assert_eq!(claims.list(&Default::default()).await?.items.len(), 3, "one volume per server");
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    for set in ["orders-0", "orders-1", "orders-2"] {
        assert!(sets.get_opt(set).await?.is_some(), "no StatefulSet {set}");
    }
    let services: Api<Service> = Api::namespaced(client.clone(), NS);
    assert!(services.get_opt("orders").await?.is_some() && services.get_opt("orders-servers").await?.is_some());
    let finalizers = active.metadata.finalizers.clone().unwrap_or_default();
    assert!(finalizers.iter().any(|f| f == "streams.shardline.io/cleanup"));
    strangers_are_refused(cluster).await?;
    let (first, second) = (endpoint(cluster, PODS[0]).await?, endpoint(cluster, PODS[1]).await?);

    // kubectl scale 4 → 8 → 3 while a producer writes through one server.
    let writer = start_writer(&first);
    tokio::time::sleep(Duration::from_millis(500)).await;
    scale(&streams, 8).await?;
    wait_active(cluster, &streams, 8).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    scale(&streams, 3).await?;
    let three = wait_active(cluster, &streams, 3).await?;
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
    let mut last: BTreeMap<&str, shardline_proto::sequence::SequenceNumber> = BTreeMap::new();
    for (key, n, sequence) in &acked {
        let (stored_key, data) = read.get(sequence).with_context(|| format!("{key} #{n} ({sequence}) lost"))?;
        assert_eq!((stored_key.as_str(), data.as_str()), (key.as_str(), n.to_string().as_str()));
        let number = shardline_tests::seq(sequence);
        let previous = last.insert(key, number);
        assert!(previous.is_none_or(|p| p < number), "{key}: #{n} numbered below its predecessor");
    }
    assert_eq!(read.len(), acked.len(), "nothing stored that was not acknowledged");

    // A retention change reaches every server.
    let retention = serde_json::json!({ "spec": { "retentionHours": 72 } });
    streams.patch(STREAM, &PatchParams::default(), &Patch::Merge(&retention)).await?;
    wait("retention 72 h on every server", Duration::from_secs(30), async || {
        let states = states(cluster).await?;
        Ok(states.iter().all(|s| s.layout.as_ref().is_some_and(|l| l.retention_hours == 72)).then_some(()))
    })
    .await?;
    let summary = kinesis_client(&first).describe_stream_summary().stream_name(STREAM).send().await?;
    assert_eq!(summary.stream_description_summary().map(|d| d.retention_period_hours()), Some(72));

    // The operator dies in the middle of a reshard step (servers frozen, not resharded)...
    kill_operator(cluster).await?;
    set_operator(cluster, 1, 15_000).await?;
    cluster.wait_operator_pods(1).await?;
    scale(&streams, 6).await?;
    wait("a frozen server", Duration::from_secs(60), async || {
        Ok(states(cluster).await?.iter().any(|s| s.layout.as_ref().is_some_and(|l| l.frozen)).then_some(()))
    })
    .await?;
    kill_operator(cluster).await?;
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
    set_operator(cluster, 2, 0).await?;
    cluster.wait_operator_pods(2).await?;
    wait_active(cluster, &streams, 6).await?;
    let settled = states(cluster).await?;
    let epochs: Vec<u64> = settled.iter().filter_map(|s| s.layout.as_ref().map(|l| l.epoch)).collect();
    assert!(epochs.len() == 3 && epochs.iter().all(|e| *e == epochs[0]), "every server at one epoch: {epochs:?}");
    assert!(settled.iter().all(|s| s.layout.as_ref().is_some_and(|l| !l.frozen)));
    kinesis_client(&second)
        .put_record()
        .stream_name(STREAM)
        .partition_key("key-0")
        .data("again".as_bytes().to_vec().into())
        .send()
        .await?;

    // A shard-server pod is deleted under load: it hands its leaderships over as it stops, the
    // stream stays writable through the others (the producer retries what fails while leaders
    // move), the StatefulSet's replacement starts on the same volume, the stream is Ready again
    // and every record is still there.
    let during = start_writer(&first);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let old_uid = pods.get(PODS[1]).await?.metadata.uid;
    pods.delete(PODS[1], &DeleteParams::default()).await?;
    wait("a replacement pod", Duration::from_secs(90), async || {
        let pod = pods.get_opt(PODS[1]).await?;
        let replaced = pod.is_some_and(|p| p.metadata.uid != old_uid);
        Ok((replaced && cluster.pod_endpoint(NS, PODS[1], 4567).await?.is_some()).then_some(()))
    })
    .await?;
    wait_active(cluster, &streams, 6).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    during.stop.store(true, Ordering::Relaxed);
    let during = during.task.await??;
    ensure!(during.len() > 400, "the producer wrote while the pod was replaced ({} records)", during.len());
    let second = endpoint(cluster, PODS[1]).await?;
    let after_restart = read_everything(&second).await?;
    for (key, n, sequence) in acked.iter().chain(&during) {
        let (stored_key, data) =
            after_restart.get(sequence).with_context(|| format!("{key} #{n} ({sequence}) lost"))?;
        assert_eq!((stored_key.as_str(), data.as_str()), (key.as_str(), n.to_string().as_str()));
    }
    let stored = after_restart.len();
    let written = acked.len() + 1 + during.len();
    // A put the producer retried after its first try was stored after all is stored twice.
    assert!(stored >= written, "every record survives the server's restart ({stored} of {written})");
    eprintln!(
        "pod {} replaced under load: {} records acknowledged meanwhile, {} stored beyond them (retries)",
        PODS[1],
        during.len(),
        stored - written
    );

    // kubectl apply -f examples/consumer.yaml: the Consumer reports lag, which falls to 0 as a
    // worker catches up.
    let consumers: Api<Consumer> = Api::namespaced(client.clone(), NS);
    kubectl(&cluster.plane, &["apply", "-n", NS, "-f", "-"], &example("consumer.yaml")?)?;
    let lagging = wait("consumer lag reported", Duration::from_secs(30), async || {
        let status = consumers.get("billing").await?.status.unwrap_or_default();
        Ok((status.lag_records > 0).then_some(status))
    })
    .await?;
    assert_eq!(lagging.lag_records, stored as u64, "every record is behind before the worker runs");
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
    consumers.create(&Default::default(), &orphan).await?;
    wait("orphan consumer condition", Duration::from_secs(30), async || {
        let status = consumers.get("orphan").await?.status.unwrap_or_default();
        Ok(status.conditions.iter().any(|c| c.kind == "Ready" && c.reason == "StreamNotFound").then_some(()))
    })
    .await?;
    consumers.delete("orphan", &DeleteParams::default()).await?;

    // The operator counts its work on /metrics (its pod's metrics port).
    let (_, metrics) = leader_metrics(cluster).await?;
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
    wait("stream gone", Duration::from_secs(60), async || Ok(streams.get_opt(STREAM).await?.is_none().then_some(())))
        .await?;
    for set in ["orders-0", "orders-1", "orders-2"] {
        assert!(sets.get_opt(set).await?.is_none(), "StatefulSet {set} left");
    }
    assert!(services.get_opt("orders").await?.is_none());
    wait("pods stopped", Duration::from_secs(90), async || {
        Ok(pods.list(&Default::default()).await?.items.is_empty().then_some(()))
    })
    .await?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NS);
    wait("volumes released", Duration::from_secs(60), async || {
        Ok(claims.list(&Default::default()).await?.items.is_empty().then_some(()))
    })
    .await?;
    // What the first server's volume still holds (its PersistentVolume is retained) has no
    // trace of the stream.
    let volume = cluster.volume_dir(NS, &format!("data-{}", PODS[0]));
    let leftover = Server::start_cluster(&volume, PODS[0], "127.0.0.1:0", &[])?;
    let state = ClusterClient::new(leftover.internal().await?)
        .state(pb::ClusterStateRequest { stream_name: STREAM.into() })
        .await?
        .into_inner();
    assert!(state.layout.is_none(), "the stream's data was released");
    Ok(())
}
