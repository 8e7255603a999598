//! Shardline's shard-server: Kinesis Data Streams semantics on RocksDB.
//!
//! [`node::Node`] is the data plane (catalog, durable appends, reads, retention); [`api`]
//! holds the network fronts; [`server::run`] serves them.

pub mod api;
pub mod append;
pub mod clock;
pub mod config;
pub mod consumer;
pub mod credential;
pub mod data_dir;
pub mod error;
pub mod hash_range;
pub mod iterator;
pub mod journal;
pub mod lease;
pub mod metrics;
pub mod monitoring;
pub mod node;
pub mod peers;
pub mod placement;
pub mod raft_log;
pub mod replication;
pub mod reshard;
pub mod retention;
pub use shardline_proto::sequence;
pub mod server;
pub mod shard;
pub mod store;
pub mod stream;
pub mod tags;
pub mod telemetry;
pub mod throttle;

pub use config::Config;
pub use error::{Error, Result};
pub use node::Node;
