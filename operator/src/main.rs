//! The `shardline-operator` binary: runs the Stream and Consumer controllers, and serves
//! `/metrics` and `/healthz`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, Controller};
use kube::Client;
use shardline_operator::crd::consumer::Consumer;
use shardline_operator::crd::stream::Stream;
use shardline_operator::leader;
use shardline_operator::metrics::Metrics;
use shardline_operator::reconcile::{self, Context};

/// Shardline operator: runs Kinesis-compatible streams on Kubernetes.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Image of the shard-server pods.
    #[arg(long, env = "SHARDLINE_IMAGE", default_value = "ghcr.io/shardline/shard-server:0.1.0")]
    image: String,
    /// Address of `/metrics` and `/healthz`.
    #[arg(long, env = "SHARDLINE_OPERATOR_METRICS_LISTEN", default_value = "0.0.0.0:8080")]
    metrics_listen: String,
    /// Zones for Streams that name none, comma-separated (node label topology.kubernetes.io/zone).
    #[arg(long, env = "SHARDLINE_DEFAULT_ZONES", value_delimiter = ',')]
    default_zones: Vec<String>,
    /// Storage class for Streams that name none (the cluster default when unset).
    #[arg(long, env = "SHARDLINE_DEFAULT_STORAGE_CLASS")]
    default_storage_class: Option<String>,
    /// Namespace of the leader-election Lease (the operator's own namespace in a pod).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    leader_election_namespace: String,
    /// This replica's identity in leader election (its pod name in a pod).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Pause between freezing and resharding in each reshard step (for tests that stop the
    /// operator mid-step).
    #[arg(long, env = "SHARDLINE_RESHARD_PAUSE_MS", default_value_t = 0, hide = true)]
    reshard_pause_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // kube's TLS needs a process-wide crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::try_default().await.context("connecting to the Kubernetes API")?;
    let discovery = kube::Discovery::new(client.clone())
        .filter(&["policy"])
        .run()
        .await
        .context("discovering the policy API group")?;
    let disruption_budget = discovery
        .get("policy")
        .and_then(|group| {
            group
                .versioned_resources(group.preferred_version_or_latest())
                .into_iter()
                .find(|(r, _)| r.kind == "PodDisruptionBudget")
        })
        .map(|(resource, _)| resource)
        .context("the cluster serves no PodDisruptionBudget")?;
    let metrics = Metrics::new();
    let reporter = Reporter { controller: "shardline-operator".into(), instance: std::env::var("POD_NAME").ok() };
    let ctx = Arc::new(Context {
        client: client.clone(),
        image: cli.image,
        recorder: Recorder::new(client.clone(), reporter),
        metrics: metrics.clone(),
        disruption_budget,
        default_zones: cli.default_zones.into_iter().filter(|z| !z.is_empty()).collect(),
        default_storage_class: cli.default_storage_class.filter(|c| !c.is_empty()),
        backoff: Default::default(),
        autoscaler: Default::default(),
        reshard_pause: Duration::from_millis(cli.reshard_pause_ms),
    });

    let listener = tokio::net::TcpListener::bind(&cli.metrics_listen)
        .await
        .with_context(|| format!("binding {}", cli.metrics_listen))?;
    // The only line on stdout: scripts and tests read it.
    println!("shardline-operator metrics on http://{}/metrics", listener.local_addr()?);
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(move || async move { metrics.encode() }))
        .route("/healthz", axum::routing::get(|| async { "ok" }));
    let http = tokio::spawn(async move { axum::serve(listener, app).await });

    let pods = watcher::Config::default().labels("app.kubernetes.io/managed-by=shardline-operator");
    let streams = Controller::new(Api::<Stream>::all(client.clone()), watcher::Config::default())
        .owns(Api::<StatefulSet>::all(client.clone()), watcher::Config::default())
        .watches(Api::<Pod>::all(client.clone()), pods, |pod: Pod| {
            let namespace = pod.metadata.namespace.clone().unwrap_or_default();
            let instance = pod.metadata.labels.and_then(|l| l.get("app.kubernetes.io/instance").cloned());
            instance.map(|name| ObjectRef::<Stream>::new(&name).within(&namespace))
        })
        .shutdown_on_signal()
        .run(reconcile::stream::reconcile, reconcile::retry_later, ctx.clone())
        .for_each(|_| async {});
    let consumers = Controller::new(Api::<Consumer>::all(client.clone()), watcher::Config::default())
        .shutdown_on_signal()
        .run(reconcile::consumer::reconcile, reconcile::retry_later, ctx)
        .for_each(|_| async {});
    // Only the holder of the leader lease reconciles; /metrics and /healthz answer meanwhile.
    let identity = cli.identity.unwrap_or_else(|| format!("shardline-operator-{}", std::process::id()));
    let elector = leader::Elector::new(client.clone(), &cli.leader_election_namespace, "shardline-operator", &identity);
    tokio::select! {
        () = elector.acquire() => {}
        () = shutdown_signal() => {
            http.abort();
            return Ok(());
        }
    }
    tracing::info!(%identity, "shardline-operator leads; reconciling");
    let lost = tokio::select! {
        _ = async { tokio::join!(streams, consumers) } => false,
        () = elector.keep() => true,
    };
    http.abort();
    if lost {
        anyhow::bail!("leadership lost; exiting so that at most one operator reconciles");
    }
    tracing::info!("shardline-operator stopped");
    Ok(())
}

async fn shutdown_signal() {
    let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
