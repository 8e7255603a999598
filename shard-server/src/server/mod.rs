//! Serving: the three listeners in front of a [`Node`] and a graceful shutdown that finishes
//! in-flight requests (within the drain timeout), then background work, then the appender.
//!
//! | listener | serves | who calls it |
//! |---|---|---|
//! | Kinesis (`--listen`) | the Kinesis API, `GET /health`, gRPC `Records` and `Leases` | applications |
//! | internal (`--internal-listen`) | gRPC `Cluster` and `Admin`, with the internal token | the operator |
//! | metrics (`--metrics-listen`) | `GET /metrics`, `GET /health` | Prometheus, probes |

pub mod connections;

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use self::connections::ConnectionLimits;
use crate::api::kinesis::RequestLimits;
use crate::credential::InternalToken;
use crate::node::Node;
use crate::{api, metrics};

/// Content type of the metrics text.
const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The bound listeners of one server.
#[derive(Debug)]
pub struct Listeners {
    /// The Kinesis API (and the public gRPC services).
    pub kinesis: TcpListener,
    /// The internal gRPC services.
    pub internal: TcpListener,
    /// `/metrics` and `/health`.
    pub metrics: TcpListener,
}

/// How the listeners treat connections and requests.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Connection cap and deadlines, per listener.
    pub connections: ConnectionLimits,
    /// Request admission on the Kinesis listener.
    pub requests: RequestLimits,
    /// The token internal calls must present.
    pub token: InternalToken,
}

/// The metrics endpoint: `GET /metrics` (OpenMetrics text) and `GET /health`.
pub fn metrics_router(node: Arc<Node>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(node): State<Arc<Node>>| async move {
                let dir = node.config().data_dir.clone();
                let size = tokio::task::spawn_blocking(move || metrics::dir_size(&dir)).await.unwrap_or_default();
                node.metrics().set_disk_bytes(size);
                ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], node.metrics().encode())
            }),
        )
        .route("/health", get(|| async { "ok" }))
        .with_state(node)
}

/// Serves every listener until `shutdown` resolves, then drains them and closes `node`.
pub async fn run(
    listeners: Listeners,
    node: Arc<Node>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let stop = CancellationToken::new();
    let limits = options.connections;
    let kinesis = api::kinesis::router(node.clone(), options.requests);
    let internal = api::grpc::internal_router(node.clone(), options.token);
    let served = futures_util::future::join3(
        connections::serve(listeners.kinesis, kinesis, limits, stop.clone().cancelled_owned()),
        connections::serve(listeners.internal, internal, limits, stop.clone().cancelled_owned()),
        connections::serve(listeners.metrics, metrics_router(node.clone()), limits, stop.clone().cancelled_owned()),
    );
    // Open subscriptions never finish on their own: end them as soon as shutdown begins, so
    // the drain only waits for ordinary requests.
    let stopping = node.clone();
    let signal = async move {
        shutdown.await;
        // While Raft still flows (the internal port drains below).
        stopping.hand_over_leadership().await;
        stopping.stop_background();
        stop.cancel();
    };
    futures_util::future::join(served, signal).await;
    node.close().await;
}
