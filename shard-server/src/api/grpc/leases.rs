//! `shardline.v1.Leases`: the lease table over gRPC.

use std::sync::Arc;

use shardline_proto::v1 as pb;
use shardline_proto::v1::leases_client::LeasesClient;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::peers::Peers;

use super::{from_error, invalid};
use crate::lease::{wire, Lease, LeaseChange};
use crate::node::Node;

/// The service over a node.
#[derive(Debug, Clone)]
pub struct LeasesService {
    node: Arc<Node>,
}

impl LeasesService {
    /// Serves `node`.
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }

    async fn update(
        &self,
        request: pb::UpdateLeaseRequest,
        change: LeaseChange,
    ) -> Result<Response<pb::Lease>, Status> {
        if request.owner.is_empty() {
            return Err(invalid("owner must be set"));
        }
        let lease: Lease = self
            .off_workers(move |node| {
                node.update_lease(
                    &request.application,
                    &request.stream_name,
                    &request.shard_id,
                    request.expected_counter,
                    change,
                )
            })
            .await?;
        Ok(Response::new(pb::Lease::from(&lease)))
    }

    /// Runs a lease-table call (a synced write under the table's lock) on the blocking pool, so
    /// a burst of lease calls waits there and never holds the async workers that serve
    /// everything else.
    async fn off_workers<T: Send + 'static>(
        &self,
        call: impl FnOnce(&Node) -> crate::Result<T> + Send + 'static,
    ) -> Result<T, Status> {
        let node = self.node.clone();
        tokio::task::spawn_blocking(move || call(&node))
            .await
            .map_err(|err| Status::internal(err.to_string()))?
            .map_err(from_error)
    }
}

impl LeasesService {
    /// The home server of stream `stream` when the lease table is kept elsewhere.
    fn home(&self, stream: &str, metadata: &tonic::metadata::MetadataMap) -> Result<Option<Channel>, Status> {
        super::forward_to(&self.node, self.node.home_route(stream), metadata)
    }
}

#[tonic::async_trait]
impl pb::leases_server::Leases for LeasesService {
    async fn list_leases(
        &self,
        request: Request<pb::ListLeasesRequest>,
    ) -> Result<Response<pb::ListLeasesResponse>, Status> {
        let home = self.home(&request.get_ref().stream_name, request.metadata())?;
        if let Some(channel) = home {
            return LeasesClient::new(channel).list_leases(Peers::request(request.into_inner())).await;
        }
        let request = request.into_inner();
        let initial = match request.initial_position.as_ref() {
            Some(position) => wire::checkpoint(position).ok_or_else(|| invalid("initial_position has no kind"))?,
            None => crate::lease::Checkpoint::TrimHorizon,
        };
        let leases =
            self.off_workers(move |node| node.leases(&request.application, &request.stream_name, &initial)).await?;
        Ok(Response::new(pb::ListLeasesResponse { leases: leases.iter().map(pb::Lease::from).collect() }))
    }

    async fn take_lease(&self, request: Request<pb::UpdateLeaseRequest>) -> Result<Response<pb::Lease>, Status> {
        if let Some(channel) = self.home(&request.get_ref().stream_name, request.metadata())? {
            return LeasesClient::new(channel).take_lease(Peers::request(request.into_inner())).await;
        }
        let request = request.into_inner();
        let owner = request.owner.clone();
        self.update(request, LeaseChange::Take { owner }).await
    }

    async fn renew_lease(&self, request: Request<pb::UpdateLeaseRequest>) -> Result<Response<pb::Lease>, Status> {
        if let Some(channel) = self.home(&request.get_ref().stream_name, request.metadata())? {
            return LeasesClient::new(channel).renew_lease(Peers::request(request.into_inner())).await;
        }
        let request = request.into_inner();
        let owner = request.owner.clone();
        self.update(request, LeaseChange::Renew { owner }).await
    }

    async fn evict_lease(&self, request: Request<pb::UpdateLeaseRequest>) -> Result<Response<pb::Lease>, Status> {
        if let Some(channel) = self.home(&request.get_ref().stream_name, request.metadata())? {
            return LeasesClient::new(channel).evict_lease(Peers::request(request.into_inner())).await;
        }
        let request = request.into_inner();
        let owner = request.owner.clone();
        self.update(request, LeaseChange::Evict { owner }).await
    }

    async fn checkpoint(&self, request: Request<pb::CheckpointRequest>) -> Result<Response<pb::Lease>, Status> {
        let stream = request.get_ref().lease.as_ref().map(|l| l.stream_name.clone()).unwrap_or_default();
        if let Some(channel) = self.home(&stream, request.metadata())? {
            return LeasesClient::new(channel).checkpoint(Peers::request(request.into_inner())).await;
        }
        let request = request.into_inner();
        let lease = request.lease.ok_or_else(|| invalid("lease must be set"))?;
        let message = request.checkpoint.ok_or_else(|| invalid("checkpoint must be set"))?;
        let checkpoint = wire::checkpoint(&message).ok_or_else(|| invalid("checkpoint has no kind"))?;
        let owner = lease.owner.clone();
        self.update(
            lease,
            LeaseChange::Checkpoint { owner, checkpoint, sub_sequence_number: message.sub_sequence_number },
        )
        .await
    }

    async fn delete_application(
        &self,
        request: Request<pb::DeleteApplicationRequest>,
    ) -> Result<Response<pb::DeleteApplicationResponse>, Status> {
        let application = request.into_inner().application;
        let deleted = self.off_workers(move |node| node.delete_application(&application)).await?;
        Ok(Response::new(pb::DeleteApplicationResponse { deleted: u32::try_from(deleted).unwrap_or(u32::MAX) }))
    }
}
