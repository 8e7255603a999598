//! The `shardline.v1` gRPC front (tonic) over the same node and errors as the Kinesis API:
//! record traffic (`Records`) and the lease table (`Leases`) on the Kinesis port, for
//! applications; stream administration (`Admin`) and the operator's calls (`Cluster`) on the
//! internal port only, each call checked against the internal token. A failure's gRPC status carries the Kinesis error type in the
//! `x-shardline-error` metadata entry, so both fronts report a failure the same way.

pub mod admin;
pub mod cluster;
pub mod leases;
pub mod raft;
pub mod records;

use std::sync::Arc;

use axum::routing::any;
use axum::Router;
use shardline_proto::v1::admin_server::AdminServer;
use shardline_proto::v1::cluster_server::ClusterServer;
use shardline_proto::v1::leases_server::LeasesServer;
use shardline_proto::v1::raft_server::RaftServer;
use shardline_proto::v1::records_server::RecordsServer;
use tokio::sync::Semaphore;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::ServiceBuilder;

use crate::api::kinesis::error::{ApiError, ErrorCode};
use crate::credential::InternalToken;
use crate::error::Error;
use crate::node::{next_hop, Hop, Node};
use crate::peers::FORWARDED;
use crate::placement::Route;

/// Metadata key holding the Kinesis error type of a failed call.
pub const ERROR_TYPE_METADATA: &str = "x-shardline-error";

/// Adds the public gRPC services (`Records`, `Leases`) to `router` at their
/// `/shardline.v1.<Service>/<Method>` paths, sharing the Kinesis API's in-flight limit. The
/// internal services answer there that they are served elsewhere.
pub fn routes(router: Router, node: Arc<Node>, in_flight: Arc<Semaphore>) -> Router {
    let limit = GlobalConcurrencyLimitLayer::with_semaphore(in_flight);
    let elsewhere = |service: &'static str| {
        any(move || async move {
            Status::unimplemented(format!("{service} is served on the internal port (--internal-listen) only"))
                .into_http::<axum::body::Body>()
        })
    };
    router
        .route_service(
            "/shardline.v1.Records/{*method}",
            ServiceBuilder::new()
                .layer(limit.clone())
                .service(RecordsServer::new(records::RecordsService::new(node.clone()))),
        )
        .route_service(
            "/shardline.v1.Leases/{*method}",
            ServiceBuilder::new().layer(limit).service(LeasesServer::new(leases::LeasesService::new(node))),
        )
        .route("/shardline.v1.Admin/{*method}", elsewhere("shardline.v1.Admin"))
        .route("/shardline.v1.Cluster/{*method}", elsewhere("shardline.v1.Cluster"))
        .route("/shardline.v1.Raft/{*method}", elsewhere("shardline.v1.Raft"))
}

/// The internal listener's routes: `Admin`, `Cluster` and `Raft`, every call checked against
/// `token`.
pub fn internal_router(node: Arc<Node>, token: InternalToken) -> Router {
    let admin_token = token.clone();
    let cluster_token = token.clone();
    Router::new()
        .route_service(
            "/shardline.v1.Admin/{*method}",
            AdminServer::with_interceptor(admin::AdminService::new(node.clone()), move |request| {
                admin_token.check(request)
            }),
        )
        .route_service(
            "/shardline.v1.Cluster/{*method}",
            ClusterServer::with_interceptor(cluster::ClusterService::new(node.clone()), move |request| {
                cluster_token.check(request)
            }),
        )
        .route_service(
            "/shardline.v1.Raft/{*method}",
            tonic::service::interceptor::InterceptedService::new(
                RaftServer::new(raft::RaftService::new(node))
                    .max_decoding_message_size(crate::replication::MAX_DECODED_BATCH),
                move |request| token.check(request),
            ),
        )
        .fallback(|| async {
            Status::unimplemented("the internal port serves shardline.v1.Admin, Cluster and Raft")
                .into_http::<axum::body::Body>()
        })
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
        ErrorCode::RequestTimeout => Code::DeadlineExceeded,
        ErrorCode::InternalFailure => Code::Internal,
        ErrorCode::AccessDenied => Code::PermissionDenied,
        ErrorCode::Unavailable => Code::Unavailable,
        ErrorCode::MissingAuthenticationToken | ErrorCode::IncompleteSignature | ErrorCode::InvalidSignature => {
            Code::Unauthenticated
        }
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
