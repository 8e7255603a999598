//! One listener's connections: accepted with a cap that counts idle connections too, each
//! served by hyper with deadlines, and drained within a bounded time at shutdown.
//!
//! - **Cap.** At most `max_connections` are open. When a new one arrives at the cap, the
//!   connection that has gone longest without a byte in either direction is closed to make
//!   room: a flood of silent or stalled connections cannot lock out a client that talks (a
//!   `/health` probe), while subscriptions, which receive events, stay.
//! - **Deadlines.** A new connection must show which HTTP version it speaks within the header
//!   timeout; an HTTP/1 request's headers (and the next request's, on a kept-alive connection)
//!   must arrive within it; HTTP/2 peers must answer keep-alive pings. Request bodies have their
//!   own deadline, enforced where they are read (see `api::kinesis`).
//! - **Drain.** On shutdown the listener closes, every connection is asked to finish its
//!   current requests (HTTP/2: GOAWAY), and whatever is still open after the drain timeout is
//!   closed, whatever its client does.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The first bytes of every HTTP/2 connection.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// How often an idle HTTP/2 connection is pinged, and how long the answer may take.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(20);

/// How a listener treats its connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections open at once, idle ones included.
    pub max_connections: usize,
    /// Deadline for the HTTP version (a new connection) and for each HTTP/1 request's headers.
    pub header_timeout: Duration,
    /// How long shutdown waits for open connections before closing them.
    pub drain_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            header_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(20),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains (see the module docs).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let open = Arc::new(OpenConnections::new(limits.max_connections.max(1)));
    let tasks = TaskTracker::new();
    let draining = CancellationToken::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(err) => {
                // Out of file descriptors or a connection reset before accept: not fatal.
                tracing::warn!(cause = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(cause = %err, "cannot set TCP_NODELAY");
        }
        let admitted = open.admit();
        tasks.spawn(serve_connection(tcp, app.clone(), limits.header_timeout, admitted, draining.clone()));
    }
    drop(listener);
    draining.cancel();
    tasks.close();
    if tokio::time::timeout(limits.drain_timeout, tasks.wait()).await.is_err() {
        tracing::warn!(open = tasks.len(), "connections still open after the drain timeout: closing them");
        open.close_all();
        tasks.wait().await;
    }
}

/// The open connections of one listener, with when each last moved a byte.
struct OpenConnections {
    max: usize,
    started: Instant,
    next_id: AtomicU64,
    entries: Mutex<HashMap<u64, Entry>>,
}

struct Entry {
    last_active_ms: Arc<AtomicU64>,
    close: CancellationToken,
}

/// A connection's place among the open ones; dropping it frees the place.
struct Admitted {
    open: Arc<OpenConnections>,
    id: u64,
    last_active_ms: Arc<AtomicU64>,
    close: CancellationToken,
}

impl OpenConnections {
    fn new(max: usize) -> Self {
        Self { max, started: Instant::now(), next_id: AtomicU64::new(0), entries: Mutex::new(HashMap::new()) }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes room for a new connection (closing the quietest at the cap) and registers it.
    fn admit(self: &Arc<Self>) -> Admitted {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let last_active_ms = Arc::new(AtomicU64::new(self.now_ms()));
        let close = CancellationToken::new();
        let mut entries = self.lock();
        while entries.len() >= self.max {
            // Quiet the longest; of those quiet since the same millisecond, the oldest.
            let quietest = entries
                .iter()
                .min_by_key(|(id, e)| (e.last_active_ms.load(Ordering::Relaxed), **id))
                .map(|(id, _)| *id);
            let Some(quietest) = quietest.and_then(|id| entries.remove(&id)) else { break };
            quietest.close.cancel();
            tracing::debug!("connection cap reached: closed the connection quiet the longest");
        }
        entries.insert(id, Entry { last_active_ms: last_active_ms.clone(), close: close.clone() });
        Admitted { open: self.clone(), id, last_active_ms, close }
    }

    fn close_all(&self) {
        for entry in self.lock().values() {
            entry.close.cancel();
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.open.lock().remove(&self.id);
    }
}

async fn serve_connection(
    tcp: TcpStream,
    app: Router,
    header_timeout: Duration,
    admitted: Admitted,
    draining: CancellationToken,
) {
    let close = admitted.close.clone();
    let h2 = tokio::select! {
        sniffed = tokio::time::timeout(header_timeout, speaks_h2(&tcp)) => match sniffed {
            Ok(Ok(h2)) => h2,
            _ => return,
        },
        () = close.cancelled() => return,
        () = draining.cancelled() => return,
    };
    let io = TokioIo::new(Tracked { inner: tcp, admitted });
    let service = TowerToHyperService::new(app);
    if h2 {
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder.timer(TokioTimer::new()).keep_alive_interval(H2_KEEP_ALIVE).keep_alive_timeout(H2_KEEP_ALIVE);
        drive(builder.serve_connection(io, service), draining, close).await;
    } else {
        let mut builder = http1::Builder::new();
        builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
        drive(builder.serve_connection(io, service), draining, close).await;
    }
}

/// Runs a connection to its end; on `draining` lets it finish its requests; on `close` drops it.
async fn drive<C>(connection: C, draining: CancellationToken, close: CancellationToken)
where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
{
    tokio::pin!(connection);
    tokio::select! {
        done = connection.as_mut() => {
            if let Err(err) = done {
                tracing::debug!(cause = %err, "connection ended");
            }
            return;
        }
        () = draining.cancelled() => connection.as_mut().graceful_shutdown(),
        () = close.cancelled() => return,
    }
    tokio::select! {
        _ = connection.as_mut() => {}
        () = close.cancelled() => {}
    }
}

/// Whether the client opened with HTTP/2's preface (gRPC, prior knowledge) or speaks HTTP/1.
async fn speaks_h2(tcp: &TcpStream) -> io::Result<bool> {
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let n = tcp.peek(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if buf[..n] != H2_PREFACE[..n] {
            return Ok(false);
        }
        if n == H2_PREFACE.len() {
            return Ok(true);
        }
        // Part of the preface: peek sees the same bytes until more arrive.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A connection's socket that records when it last read or wrote a byte.
struct Tracked {
    inner: TcpStream,
    admitted: Admitted,
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.active();
        }
        polled
    }
}

impl Tracked {
    fn active(&self) {
        let now = self.admitted.open.now_ms();
        self.admitted.last_active_ms.store(now, Ordering::Relaxed);
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.active();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.active();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn at_the_cap_the_quietest_connection_makes_room() {
        let open = Arc::new(OpenConnections::new(2));
        let first = open.admit();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let second = open.admit();
        first.last_active_ms.store(open.now_ms() + 10, Ordering::Relaxed);
        let third = open.admit();
        assert!(!first.close.is_cancelled(), "the connection that spoke last stays");
        assert!(second.close.is_cancelled(), "the quietest one is closed");
        assert!(!third.close.is_cancelled());
        assert_eq!(open.lock().len(), 2);
        drop(third);
        assert_eq!(open.lock().len(), 1);
    }
}
