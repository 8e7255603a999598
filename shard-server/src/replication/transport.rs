//! Raft messages between servers over gRPC (`shardline.v1.Raft/Exchange` on the internal
//! port, with the internal token): one long-lived client stream from this server to each peer,
//! opened when the first message for that peer is sent and opened again after it breaks.
//! Sending never blocks the store loop: a batch a peer's link cannot take is dropped, and
//! Raft sends again what matters (heartbeats, appends from the last acknowledged index).

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use protobuf::Message as _;
use shardline_proto::v1 as pb;
use shardline_proto::v1::raft_client::RaftClient;
use tokio::sync::mpsc;
use tonic::transport::Endpoint;

use super::{Envelope, GroupId, Transport};

/// Batches waiting for one peer's link (most are small; at most 64 × 8 MiB).
const LINK_QUEUE: usize = 64;
/// Pause before opening a broken link again.
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);
/// How often a link is pinged and how long the answer may take: a peer that stops answering
/// (stopped, cut off) ends its link within about this long.
const LINK_KEEP_ALIVE: Duration = Duration::from_secs(1);
/// Most bytes of messages in one batch on the wire.
const MAX_BATCH_BYTES: usize = 8 << 20;
/// Largest batch a server accepts.
pub const MAX_DECODED_BATCH: usize = 2 * MAX_BATCH_BYTES;

/// One peer: its internal address and the queue its link task drains.
struct Link {
    address: String,
    queue: mpsc::Sender<pb::RaftBatch>,
}

/// The gRPC transport of one server.
pub struct GrpcTransport {
    me: u64,
    incarnation: u64,
    links: RwLock<HashMap<u64, Link>>,
    bearer: String,
}

impl std::fmt::Debug for GrpcTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcTransport").finish_non_exhaustive()
    }
}

impl GrpcTransport {
    /// The transport of the server with Raft id `me`, whose calls present `bearer` (the
    /// `authorization` value: `Bearer TOKEN`).
    pub fn new(me: u64, bearer: String) -> Self {
        Self { me, incarnation: rand::random::<u64>() | 1, links: RwLock::new(HashMap::new()), bearer }
    }

    /// Makes `address` (internal `host:port`) the way to the server with Raft id `id`. Must
    /// be called within a Tokio runtime: the link is a task on it.
    pub fn set_peer(&self, id: u64, address: &str) {
        let mut links = self.links.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if links.get(&id).is_some_and(|link| link.address == address && !link.queue.is_closed()) {
            return;
        }
        let (queue, receiver) = mpsc::channel(LINK_QUEUE);
        tokio::spawn(run_link(address.to_owned(), self.bearer.clone(), receiver));
        // The old link (if any) ends when its queue's sender is dropped here.
        links.insert(id, Link { address: address.to_owned(), queue });
    }
}

impl Transport for GrpcTransport {
    fn send(&self, to: u64, envelopes: Vec<Envelope>) {
        let links = self.links.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(link) = links.get(&to) else {
            tracing::debug!(to, "no address for a Raft peer; messages dropped");
            return;
        };
        let ping = envelopes.is_empty();
        let header = pb::RaftBatch { from: self.me, incarnation: self.incarnation, ..Default::default() };
        let mut batch = header.clone();
        let mut bytes = 0;
        for envelope in envelopes {
            let message = match envelope.message.write_to_bytes() {
                Ok(message) => message,
                Err(err) => {
                    tracing::warn!(cause = %err, "a Raft message could not be encoded");
                    continue;
                }
            };
            bytes += message.len();
            batch.envelopes.push(pb::RaftEnvelope {
                stream_name: envelope.group.stream,
                shard: envelope.group.shard,
                message,
            });
            if bytes >= MAX_BATCH_BYTES {
                let full = std::mem::replace(&mut batch, header.clone());
                let _ = link.queue.try_send(full);
                bytes = 0;
            }
        }
        if ping || !batch.envelopes.is_empty() {
            let _ = link.queue.try_send(batch);
        }
    }
}

/// Who sent a batch: its Raft id and its incarnation (random per process start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sender {
    /// Raft id.
    pub id: u64,
    /// Incarnation.
    pub incarnation: u64,
}

/// Decodes a batch a peer sent: its sender and its messages.
pub fn decode(batch: pb::RaftBatch) -> Result<(Sender, Vec<Envelope>), protobuf::ProtobufError> {
    let envelopes = batch
        .envelopes
        .into_iter()
        .map(|e| {
            let message = raft::prelude::Message::parse_from_bytes(&e.message)?;
            Ok(Envelope { group: GroupId { stream: e.stream_name, shard: e.shard }, message })
        })
        .collect::<Result<_, protobuf::ProtobufError>>()?;
    Ok((Sender { id: batch.from, incarnation: batch.incarnation }, envelopes))
}

/// Carries batches from `queue` to the peer at `address` until the queue closes.
async fn run_link(address: String, bearer: String, mut queue: mpsc::Receiver<pb::RaftBatch>) {
    let Ok(endpoint) = Endpoint::from_shared(format!("http://{address}")) else {
        tracing::warn!(%address, "not a usable peer address; Raft messages to it are dropped");
        return;
    };
    let endpoint = endpoint
        .connect_timeout(LINK_KEEP_ALIVE * 2)
        .http2_keep_alive_interval(LINK_KEEP_ALIVE)
        .keep_alive_timeout(LINK_KEEP_ALIVE)
        .keep_alive_while_idle(true)
        .tcp_nodelay(true);
    let Ok(authorization) = tonic::metadata::MetadataValue::try_from(bearer.as_str()) else {
        tracing::warn!("the internal token is not a valid header value; Raft links stay closed");
        return;
    };
    loop {
        // Connect when there is something to send.
        let Some(first) = queue.recv().await else { return };
        let (forward, stream_queue) = mpsc::channel::<pb::RaftBatch>(64);
        let _ = forward.try_send(first);
        let stream = futures_util::stream::unfold(stream_queue, |mut q| async move { q.recv().await.map(|b| (b, q)) });
        let mut request = tonic::Request::new(stream);
        request.metadata_mut().insert(shardline_proto::auth::AUTHORIZATION, authorization.clone());
        let mut client = RaftClient::new(endpoint.connect_lazy());
        let mut call = tokio::spawn(async move { client.exchange(request).await });
        loop {
            tokio::select! {
                batch = queue.recv() => match batch {
                    Some(batch) => {
                        if forward.send(batch).await.is_err() {
                            break;
                        }
                    }
                    None => {
                        call.abort();
                        return;
                    }
                },
                ended = &mut call => {
                    if let Ok(Err(status)) = ended {
                        tracing::debug!(%address, %status, "Raft link ended");
                    }
                    break;
                }
            }
        }
        call.abort();
        tokio::time::sleep(RECONNECT_PAUSE).await;
        // What queued while the link was down is stale; Raft sends what is still needed.
        while queue.try_recv().is_ok() {}
    }
}
