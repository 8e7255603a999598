//! Serving: the HTTP listener in front of a [`Node`], with a cap on in-flight requests and a
//! graceful shutdown that finishes in-flight requests, then background work, then the appender.

use std::future::Future;
use std::sync::Arc;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tower::limit::GlobalConcurrencyLimitLayer;

use crate::api;
use crate::node::Node;

/// Requests processed at once; more wait for a slot.
pub const MAX_IN_FLIGHT_REQUESTS: usize = 4096;

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
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    node.close().await;
    served
}
