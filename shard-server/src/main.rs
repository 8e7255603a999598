//! The `shard-server` binary.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use shard_server::{server, telemetry, Config, Node};

/// Shardline shard-server: Kinesis Data Streams on your own machines.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Run every shard and the stream catalog in this one process.
    #[arg(long, env = "SHARDLINE_STANDALONE", conflicts_with = "cluster")]
    standalone: bool,
    /// Serve the shards the Shardline operator assigns (over gRPC) and forward requests for
    /// other servers' shards to them.
    #[arg(long, env = "SHARDLINE_CLUSTER", requires = "server_id")]
    cluster: bool,
    /// This server's id in the cluster: its pod name.
    #[arg(long, env = "SHARDLINE_SERVER_ID")]
    server_id: Option<String>,
    /// Directory for the RocksDB data (created if missing).
    #[arg(long, env = "SHARDLINE_DATA_DIR", default_value = "./shardline-data")]
    data_dir: PathBuf,
    /// Address of the Kinesis HTTP endpoint (port 0 picks a free port).
    #[arg(long, env = "SHARDLINE_LISTEN", default_value = "127.0.0.1:4567")]
    listen: String,
    /// Address of the Prometheus `/metrics` endpoint (port 0 picks a free port).
    #[arg(long, env = "SHARDLINE_METRICS_LISTEN", default_value = "127.0.0.1:9464")]
    metrics_listen: String,
    /// AWS region written into stream ARNs.
    #[arg(long, env = "SHARDLINE_REGION", default_value = "us-east-1")]
    region: String,
    /// 12-digit account id written into stream ARNs.
    #[arg(long, env = "SHARDLINE_ACCOUNT_ID", default_value = "000000000000")]
    account_id: String,
    /// Total shards allowed across all streams.
    #[arg(long, env = "SHARDLINE_SHARD_LIMIT", default_value_t = shard_server::config::DEFAULT_SHARD_LIMIT)]
    shard_limit: u32,
    /// Lifetime of shard iterators in seconds (Kinesis: 300).
    #[arg(long, env = "SHARDLINE_ITERATOR_TTL_SECS", default_value_t = 300)]
    iterator_ttl_secs: u64,
    /// Milliseconds a stream stays CREATING or DELETING.
    #[arg(long, env = "SHARDLINE_STREAM_TRANSITION_MS", default_value_t = 500)]
    stream_transition_ms: u64,
    /// Enforce Kinesis' per-shard throughput limits (1 MiB/s and 1,000 records/s in, 2 MiB/s
    /// and 5 reads/s out) on every stream that does not set its own switch.
    #[arg(long, env = "SHARDLINE_THROUGHPUT_LIMITS")]
    throughput_limits: bool,
    /// Seconds one SubscribeToShard call lasts (Kinesis: 300).
    #[arg(long, env = "SHARDLINE_SUBSCRIPTION_LIFETIME_SECS", default_value_t = 300)]
    subscription_lifetime_secs: u64,
    /// Milliseconds a call to another shard-server (a forwarded request) may take before the
    /// client gets a retryable error.
    #[arg(long, env = "SHARDLINE_PEER_TIMEOUT_MS", default_value_t = shard_server::config::DEFAULT_PEER_TIMEOUT_MS)]
    peer_timeout_ms: u64,
    /// Seconds between passes deleting expired records from disk.
    #[arg(long, env = "SHARDLINE_RETENTION_CHECK_SECS", default_value_t = 60)]
    retention_check_secs: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init();
    if !cli.standalone && !cli.cluster {
        bail!("choose a mode: `--standalone` runs every shard in this process; `--cluster --server-id POD` serves what the Shardline operator assigns");
    }
    if cli.account_id.len() != 12 || !cli.account_id.bytes().all(|b| b.is_ascii_digit()) {
        bail!("--account-id must be 12 digits, got {:?}", cli.account_id);
    }
    let mut config = Config::new(&cli.data_dir);
    config.region = cli.region;
    config.account_id = cli.account_id;
    config.shard_limit = cli.shard_limit;
    config.throughput_limits = cli.throughput_limits;
    config.subscription_lifetime = Duration::from_secs(cli.subscription_lifetime_secs.max(1));
    config.iterator_ttl = Duration::from_secs(cli.iterator_ttl_secs);
    config.stream_transition = Duration::from_millis(cli.stream_transition_ms);
    config.retention_check_interval = Duration::from_secs(cli.retention_check_secs.max(1));
    config.cluster_id = if cli.cluster { cli.server_id.clone() } else { None };
    config.peer_timeout = Duration::from_millis(cli.peer_timeout_ms.max(1));

    let node = Node::open(config).with_context(|| format!("opening {}", cli.data_dir.display()))?;
    let listener =
        tokio::net::TcpListener::bind(&cli.listen).await.with_context(|| format!("binding {}", cli.listen))?;
    let metrics_listener = tokio::net::TcpListener::bind(&cli.metrics_listen)
        .await
        .with_context(|| format!("binding {}", cli.metrics_listen))?;
    let address = listener.local_addr()?;
    let metrics_address = metrics_listener.local_addr()?;
    // These two lines are the only things on stdout: scripts and tests read them.
    println!("shard-server listening on http://{address}");
    println!("shard-server metrics on http://{metrics_address}/metrics");
    let mode = if cli.cluster { "cluster" } else { "standalone" };
    tracing::info!(%address, %metrics_address, mode, server_id = ?cli.server_id, data_dir = %cli.data_dir.display(), "shard-server started");
    let stop = tokio_util::sync::CancellationToken::new();
    let metrics = tokio::spawn(server::run_metrics(metrics_listener, node.clone(), stop.clone().cancelled_owned()));
    server::run(listener, node, shutdown_signal()).await?;
    stop.cancel();
    metrics.await??;
    tracing::info!("shard-server stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(err) => {
                tracing::warn!(cause = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    tracing::info!("shutdown requested");
}
