//! Shardline's Rust client. The producer and consumer worker arrive with the client issue;
//! today it holds the Kinesis connection helper that `shardctl` uses.

pub mod kinesis;
