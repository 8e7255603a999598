//! `shardline.v1.Raft`: Raft messages from the other servers of the cluster (internal port,
//! internal token). Each peer keeps one `Exchange` stream open and sends batches on it; they
//! go to the store loop in order, and a slow loop slows the stream (HTTP/2 flow control)
//! rather than buffering without bound.

use std::sync::Arc;

use shardline_proto::v1 as pb;
use tonic::{Request, Response, Status, Streaming};

use crate::node::Node;
use crate::replication;

/// The service over a node.
#[derive(Debug, Clone)]
pub struct RaftService {
    node: Arc<Node>,
}

impl RaftService {
    /// Serves `node`.
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

#[tonic::async_trait]
impl pb::raft_server::Raft for RaftService {
    async fn exchange(
        &self,
        request: Request<Streaming<pb::RaftBatch>>,
    ) -> Result<Response<pb::RaftExchangeResponse>, Status> {
        let Some(replicator) = self.node.replicator() else {
            return Err(Status::failed_precondition(
                "this shard-server holds no replicated shards (it is not in cluster mode)",
            ));
        };
        let mut batches = request.into_inner();
        while let Some(batch) = batches.message().await? {
            let (from, envelopes) = replication::decode(batch)
                .map_err(|err| Status::invalid_argument(format!("a Raft message does not decode: {err}")))?;
            if replicator.deliver(from, envelopes).await.is_err() {
                return Err(Status::unavailable("this server's replication has stopped"));
            }
        }
        Ok(Response::new(pb::RaftExchangeResponse {}))
    }
}
