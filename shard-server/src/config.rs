//! Settings of one shard-server process.

use std::path::PathBuf;
use std::time::Duration;

use crate::iterator::ITERATOR_TTL_MS;

/// Default deadline of a call to another shard-server, in milliseconds.
pub const DEFAULT_PEER_TIMEOUT_MS: u64 = 5_000;

/// Default cap on subscriptions open at once on one server.
pub const DEFAULT_MAX_SUBSCRIPTIONS: usize = 1_000;
/// Default MiB of events read for subscriptions and not yet taken by their clients.
pub const DEFAULT_SUBSCRIPTION_BUFFER_MIB: usize = 256;

/// Kinesis' default number of shards an account may hold in a region.
pub const DEFAULT_SHARD_LIMIT: u32 = 500;

/// What a shard-server needs to open its data plane.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where RocksDB keeps its files.
    pub data_dir: PathBuf,
    /// Region written into ARNs.
    pub region: String,
    /// Account id written into ARNs and messages (12 digits).
    pub account_id: String,
    /// How long shard iterators stay valid.
    pub iterator_ttl: Duration,
    /// How long a stream stays CREATING (or DELETING) before the transition completes.
    pub stream_transition: Duration,
    /// How often expired records are deleted from disk.
    pub retention_check_interval: Duration,
    /// Total shards allowed across all streams (DescribeLimits' ShardLimit).
    pub shard_limit: u32,
    /// Whether streams enforce per-shard throughput limits unless they say otherwise.
    pub throughput_limits: bool,
    /// How long one SubscribeToShard call lasts (Kinesis: 5 minutes).
    pub subscription_lifetime: Duration,
    /// This server's id in cluster mode (its pod name); `None` when standalone.
    pub cluster_id: Option<String>,
    /// How long a call to another server may take before the client gets a retryable error.
    pub peer_timeout: Duration,
    /// Subscriptions open at once (SubscribeToShard and gRPC Subscribe together).
    pub max_subscriptions: usize,
    /// Bytes of events read for subscriptions and not yet taken by their clients, in all.
    pub subscription_buffer_bytes: usize,
    /// What this server presents to its peers' internal ports (Raft); replicated shards need
    /// it (cluster mode always has it: the internal token).
    pub peer_bearer: Option<crate::credential::PeerBearer>,
}

impl Config {
    /// Defaults for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            iterator_ttl: Duration::from_millis(ITERATOR_TTL_MS),
            stream_transition: Duration::from_millis(500),
            retention_check_interval: Duration::from_secs(60),
            shard_limit: DEFAULT_SHARD_LIMIT,
            throughput_limits: false,
            subscription_lifetime: Duration::from_secs(300),
            cluster_id: None,
            peer_timeout: Duration::from_millis(DEFAULT_PEER_TIMEOUT_MS),
            max_subscriptions: DEFAULT_MAX_SUBSCRIPTIONS,
            subscription_buffer_bytes: DEFAULT_SUBSCRIPTION_BUFFER_MIB << 20,
            peer_bearer: None,
        }
    }
}
