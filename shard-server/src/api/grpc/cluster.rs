//! `shardline.v1.Cluster`: the operator's calls to a `--cluster` shard-server (Assign, State,
//! Freeze, Reshard, Release). Standalone servers refuse them.

use std::sync::Arc;

use shardline_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::{from_error, invalid};
use crate::node::Node;

/// The service over a node.
#[derive(Debug, Clone)]
pub struct ClusterService {
    node: Arc<Node>,
}

impl ClusterService {
    /// Serves `node`.
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

#[tonic::async_trait]
impl pb::cluster_server::Cluster for ClusterService {
    async fn assign(&self, request: Request<pb::AssignRequest>) -> Result<Response<pb::AssignResponse>, Status> {
        let layout = request.into_inner().layout.ok_or_else(|| invalid("layout must be set"))?;
        let layout = self.node.assign(layout).await.map_err(from_error)?;
        Ok(Response::new(pb::AssignResponse { layout: Some(layout) }))
    }

    async fn state(
        &self,
        request: Request<pb::ClusterStateRequest>,
    ) -> Result<Response<pb::ClusterStateResponse>, Status> {
        let state = self.node.cluster_state(&request.into_inner().stream_name).await.map_err(from_error)?;
        Ok(Response::new(state))
    }

    async fn freeze(&self, request: Request<pb::FreezeRequest>) -> Result<Response<pb::FreezeResponse>, Status> {
        let request = request.into_inner();
        let owned_open = self.node.freeze(&request.stream_name, request.epoch).await.map_err(from_error)?;
        Ok(Response::new(pb::FreezeResponse { owned_open }))
    }

    async fn reshard(
        &self,
        request: Request<pb::ClusterReshardRequest>,
    ) -> Result<Response<pb::ClusterReshardResponse>, Status> {
        let request = request.into_inner();
        let layout = self
            .node
            .cluster_reshard(
                &request.stream_name,
                request.epoch,
                request.target_shard_count,
                request.ending_counters.into_iter().collect(),
            )
            .await
            .map_err(from_error)?;
        Ok(Response::new(pb::ClusterReshardResponse { layout: Some(layout) }))
    }

    async fn release(&self, request: Request<pb::ReleaseRequest>) -> Result<Response<pb::ReleaseResponse>, Status> {
        let released = self.node.release(&request.into_inner().stream_name).await.map_err(from_error)?;
        Ok(Response::new(pb::ReleaseResponse { released }))
    }
}
