//! The network fronts over a [`crate::node::Node`]: the Kinesis-compatible HTTP API and the
//! `shardline.v1` gRPC services.

pub mod grpc;
pub mod kinesis;
