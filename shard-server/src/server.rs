//! Serving: the HTTP listener in front of a [`Node`], with a cap on in-flight requests and a
//! graceful shutdown that finishes in-flight requests, then background work, then the appender.

use std::future::Future;
use std::sync::Arc;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tower::limit::GlobalConcurrencyLimitLayer;

use axum::extract::State;
use axum::http::header;
use axum::routing::get;
use axum::Router;

use crate::node::Node;
use crate::{api, metrics};

/// Content type of the metrics text.
const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Requests processed at once; more wait for a slot.
pub const MAX_IN_FLIGHT_REQUESTS: usize = 4096;

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

/// Serves the metrics endpoint on `listener` until `shutdown` resolves.
pub async fn run_metrics(
    listener: TcpListener,
    node: Arc<Node>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, metrics_router(node)).with_graceful_shutdown(shutdown).await
}

/// Serves the Kinesis API on `listener` until `shutdown` resolves, then closes `node`.
pub async fn run(
    listener: TcpListener,
    node: Arc<Node>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = api::kinesis::router(node.clone()).layer(GlobalConcurrencyLimitLayer::new(MAX_IN_FLIGHT_REQUESTS));
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::warn!(cause = %err, "cannot set TCP_NODELAY");
        }
    });
    // Open subscriptions never finish on their own: end them as soon as shutdown begins, so
    // the graceful drain only waits for ordinary requests.
    let stopping = node.clone();
    let shutdown = async move {
        shutdown.await;
        stopping.stop_background();
    };
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    node.close().await;
    served
}
