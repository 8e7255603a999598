//! The `shardline.v1` gRPC front (tonic): record traffic and stream administration for the
//! client crate and the operator, on the same port as the Kinesis HTTP API and over the same
//! node and errors. A failure's gRPC status carries the Kinesis error type in the
//! `x-shardline-error` metadata entry, so both fronts report a failure the same way.

pub mod admin;
pub mod cluster;
pub mod leases;
pub mod records;

use std::sync::Arc;

use axum::Router;
use shardline_proto::v1::admin_server::AdminServer;
use shardline_proto::v1::cluster_server::ClusterServer;
use shardline_proto::v1::leases_server::LeasesServer;
use shardline_proto::v1::records_server::RecordsServer;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::api::kinesis::error::{ApiError, ErrorCode};
use crate::error::Error;
use crate::node::{next_hop, Hop, Node};
use crate::peers::FORWARDED;
use crate::placement::Route;

/// Metadata key holding the Kinesis error type of a failed call.
pub const ERROR_TYPE_METADATA: &str = "x-shardline-error";

/// Adds the gRPC services to `router` at their `/shardline.v1.<Service>/<Method>` paths.
pub fn routes(router: Router, node: Arc<Node>) -> Router {
    router
        .route_service(
            "/shardline.v1.Records/{*method}",
            RecordsServer::new(records::RecordsService::new(node.clone())),
        )
        .route_service("/shardline.v1.Admin/{*method}", AdminServer::new(admin::AdminService::new(node.clone())))
        .route_service("/shardline.v1.Leases/{*method}", LeasesServer::new(leases::LeasesService::new(node.clone())))
        .route_service("/shardline.v1.Cluster/{*method}", ClusterServer::new(cluster::ClusterService::new(node)))
}

/// The gRPC status of a Kinesis-level error.
pub fn status(err: ApiError) -> Status {
    let code = match err.code {
        ErrorCode::Serialization | ErrorCode::Validation | ErrorCode::InvalidArgument => Code::InvalidArgument,
        ErrorCode::UnknownOperation => Code::Unimplemented,
        ErrorCode::ResourceNotFound => Code::NotFound,
        ErrorCode::ResourceInUse => Code::FailedPrecondition,
        ErrorCode::LimitExceeded | ErrorCode::ProvisionedThroughputExceeded => Code::ResourceExhausted,
        ErrorCode::ExpiredIterator | ErrorCode::ExpiredNextToken => Code::OutOfRange,
        ErrorCode::DryRunOperation | ErrorCode::LeaseConflict => Code::Aborted,
        ErrorCode::RequestTooLarge => Code::ResourceExhausted,
        ErrorCode::InternalFailure => Code::Internal,
        ErrorCode::AccessDenied => Code::PermissionDenied,
        ErrorCode::Unavailable => Code::Unavailable,
    };
    let mut status = Status::new(code, err.message);
    if let Ok(value) = err.code.wire().0.parse() {
        status.metadata_mut().insert(ERROR_TYPE_METADATA, value);
    }
    status
}

/// The gRPC status of a data-plane error.
pub fn from_error(err: Error) -> Status {
    status(ApiError::from(err))
}

/// A `ValidationException`-shaped status for a bad field.
pub fn invalid(message: impl Into<String>) -> Status {
    status(ApiError::new(ErrorCode::Validation, message.into()))
}

/// Whether a call came from a client or was forwarded by another server.
pub fn hop(metadata: &MetadataMap) -> Hop {
    if metadata.contains_key(FORWARDED) {
        Hop::Forwarded
    } else {
        Hop::Client
    }
}

/// A channel to the server a call must go to, or `None` to serve it here (see [`next_hop`]).
pub fn forward_to(node: &Node, route: Route, metadata: &MetadataMap) -> Result<Option<Channel>, Status> {
    match next_hop(route, hop(metadata)).map_err(from_error)? {
        None => Ok(None),
        Some(address) => node.peers().channel(&address).map(Some).map_err(from_error),
    }
}
