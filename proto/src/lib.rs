//! The `shardline.v1` protocol shared by the shard-server, the operator and the client.

pub mod auth;
pub mod sequence;

/// Version 1 of the protocol: records and admin services.
#[allow(missing_docs, clippy::all)]
pub mod v1 {
    tonic::include_proto!("shardline.v1");
}
