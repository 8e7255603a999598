//! The `shard-server` binary.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use shard_server::api::kinesis::RequestLimits;
use shard_server::credential::{InternalToken, STANDALONE_TOKEN_FILE};
use shard_server::server::{ConnectionLimits, Listeners, ServeOptions};
use shard_server::{server, telemetry, Config, Node};

/// Request bodies, decoded records and journal groups are large, short-lived and freed on
/// other threads than the ones that made them: mimalloc keeps such memory for reuse where the
/// system allocator returns it to the kernel and takes page faults to get it back.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Address of the internal gRPC services (`Cluster`, `Admin`: the operator's calls). Every
    /// call must carry the internal token.
    #[arg(long, env = "SHARDLINE_INTERNAL_LISTEN", default_value = "127.0.0.1:4569")]
    internal_listen: String,
    /// File holding the internal token (at least 32 characters; the operator mounts its
    /// Secret). Required with `--cluster`; a standalone server without it creates one in the
    /// data directory (`internal-token`, mode 0600).
    #[arg(long, env = "SHARDLINE_INTERNAL_TOKEN_FILE")]
    internal_token_file: Option<PathBuf>,
    /// Connections open at once per listener, idle ones included; at the cap the connection
    /// quiet the longest is closed to make room.
    #[arg(long, env = "SHARDLINE_MAX_CONNECTIONS", default_value_t = ConnectionLimits::default().max_connections)]
    max_connections: usize,
    /// Requests processed at once (bodies read, answers pending); more wait.
    #[arg(long, env = "SHARDLINE_MAX_IN_FLIGHT", default_value_t = RequestLimits::default().max_in_flight)]
    max_in_flight: usize,
    /// Milliseconds a new connection has to show its HTTP version, and an HTTP/1 request (or
    /// the next one on a kept-alive connection) its headers.
    #[arg(long, env = "SHARDLINE_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    header_timeout_ms: u64,
    /// Milliseconds a request body has to arrive once its headers have (then
    /// RequestTimeoutException, which SDKs retry).
    #[arg(long, env = "SHARDLINE_BODY_TIMEOUT_MS", default_value_t = 60_000)]
    body_timeout_ms: u64,
    /// MiB of request bodies held at once (received, not yet answered); a request whose body
    /// finds no room waits for it (within the body timeout).
    #[arg(long, env = "SHARDLINE_REQUEST_BUFFER_MIB", default_value_t = RequestLimits::default().body_buffer_bytes >> 20)]
    request_buffer_mib: usize,
    /// Let pages of any origin call the Kinesis endpoint from a browser (CORS headers and
    /// preflight answers, as the service sends them). Until signatures are verified, any page
    /// a user opens could then write to the streams the user's browser reaches.
    #[arg(long, env = "SHARDLINE_CORS")]
    cors: bool,
    /// Milliseconds shutdown waits for open requests and subscriptions before closing their
    /// connections.
    #[arg(long, env = "SHARDLINE_DRAIN_TIMEOUT_MS", default_value_t = 20_000)]
    drain_timeout_ms: u64,
    /// Subscriptions (SubscribeToShard and gRPC Subscribe) open at once on this server.
    #[arg(long, env = "SHARDLINE_MAX_SUBSCRIPTIONS", default_value_t = shard_server::config::DEFAULT_MAX_SUBSCRIPTIONS)]
    max_subscriptions: usize,
    /// MiB of events all subscriptions together may hold read but not yet taken by their
    /// clients; a subscription whose client is slow waits for room.
    #[arg(long, env = "SHARDLINE_SUBSCRIPTION_BUFFER_MIB", default_value_t = shard_server::config::DEFAULT_SUBSCRIPTION_BUFFER_MIB)]
    subscription_buffer_mib: usize,
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
    config.max_subscriptions = cli.max_subscriptions.max(1);
    config.subscription_buffer_bytes = cli.subscription_buffer_mib.max(1).saturating_mul(1 << 20);
    let connections = ConnectionLimits {
        max_connections: open_files_for(cli.max_connections.max(1)),
        header_timeout: Duration::from_millis(cli.header_timeout_ms.max(1)),
        drain_timeout: Duration::from_millis(cli.drain_timeout_ms),
    };
    let requests = RequestLimits {
        max_in_flight: cli.max_in_flight.max(1),
        body_timeout: Duration::from_millis(cli.body_timeout_ms.max(1)),
        body_buffer_bytes: cli.request_buffer_mib.saturating_mul(1 << 20),
        cors: cli.cors,
    };

    let given_token = match (&cli.internal_token_file, cli.cluster) {
        (Some(path), _) => Some(InternalToken::read(path)?),
        (None, true) => bail!(
            "--cluster needs --internal-token-file: the token the operator calls this server's internal services with"
        ),
        (None, false) => None,
    };
    // Servers of a cluster present the same token to each other (Raft on the internal port).
    config.peer_bearer = given_token.as_ref().filter(|_| cli.cluster).map(InternalToken::bearer);
    let node = Node::open(config).with_context(|| format!("opening {}", cli.data_dir.display()))?;
    let token = match given_token {
        Some(token) => token,
        None => InternalToken::read_or_create(&cli.data_dir.join(STANDALONE_TOKEN_FILE))?,
    };
    let bind = |address: String| async move {
        tokio::net::TcpListener::bind(&address).await.with_context(|| format!("binding {address}"))
    };
    let listeners = Listeners {
        kinesis: bind(cli.listen.clone()).await?,
        internal: bind(cli.internal_listen.clone()).await?,
        metrics: bind(cli.metrics_listen.clone()).await?,
    };
    let address = listeners.kinesis.local_addr()?;
    let internal_address = listeners.internal.local_addr()?;
    let metrics_address = listeners.metrics.local_addr()?;
    // These three lines are the only things on stdout: scripts and tests read them.
    println!("shard-server listening on http://{address}");
    println!("shard-server metrics on http://{metrics_address}/metrics");
    println!("shard-server internal on http://{internal_address}");
    let mode = if cli.cluster { "cluster" } else { "standalone" };
    tracing::info!(%address, %internal_address, %metrics_address, mode, server_id = ?cli.server_id, data_dir = %cli.data_dir.display(), "shard-server started");
    server::run(listeners, node, ServeOptions { connections, requests, token }, shutdown_signal()).await;
    tracing::info!("shard-server stopped");
    Ok(())
}

/// Raises the open-file limit to what `connections` per listener need (three listeners, plus
/// RocksDB's files), as far as the hard limit allows; the connection cap shrinks to fit if not.
fn open_files_for(connections: usize) -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource};
    const RESERVED: u64 = 1024;
    let wanted = (connections as u64).saturating_mul(3).saturating_add(RESERVED);
    let mut limit = getrlimit(Resource::Nofile);
    let current = limit.current.unwrap_or(u64::MAX);
    if current < wanted {
        limit.current = Some(limit.maximum.map_or(wanted, |max| max.min(wanted)));
        if let Err(err) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(cause = %err, "cannot raise the open-file limit");
        }
    }
    let granted = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    let fits = usize::try_from(granted.saturating_sub(RESERVED) / 3).unwrap_or(usize::MAX).max(1);
    if fits < connections {
        tracing::warn!(wanted = connections, granted = fits, "open-file limit too low: fewer connections per listener");
    }
    fits.min(connections)
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
