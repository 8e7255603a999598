//! Shardline's Rust client: a KPL-like [`producer`] (aggregation, batching, retries), a
//! KCL-like [`consumer`] worker (leases in the shard-servers, failover, balancing,
//! checkpoints), and the Kinesis connection helper.

pub mod consumer;
pub mod kinesis;
pub mod producer;
