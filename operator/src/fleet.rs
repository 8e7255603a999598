//! The operator's calls to one stream's shard-servers (`shardline.v1.Cluster`), each with a
//! deadline so a stuck server fails the reconcile (which is retried) instead of hanging it.

use std::collections::HashMap;
use std::time::Duration;

use shardline_proto::auth::BearerToken;
use shardline_proto::v1 as pb;
use shardline_proto::v1::cluster_client::ClusterClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::children::INTERNAL_PORT;
use crate::decide::Member;

/// How long one call to a server may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A failed call to a shard-server.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The server could not be reached.
    #[error("cannot reach shard-server {server} at {address}: {source}")]
    Connect {
        /// Server id.
        server: String,
        /// Its address.
        address: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// The server refused or failed the call.
    #[error("shard-server {server} refused {call}: {status}")]
    Call {
        /// Server id.
        server: String,
        /// The call.
        call: &'static str,
        /// Its status.
        status: Box<tonic::Status>,
    },
    /// A reply lacked a field it must carry.
    #[error("shard-server {server} answered {call} without a layout")]
    Incomplete {
        /// Server id.
        server: String,
        /// The call.
        call: &'static str,
    },
}

/// A server's internal address: its advertised (Kinesis) address's host, on the internal port.
pub fn internal_address(address: &str) -> String {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    format!("{host}:{INTERNAL_PORT}")
}

/// The Ready servers of one stream, called on their internal port with the stream's token.
#[derive(Debug, Clone)]
pub struct Fleet {
    members: Vec<Member>,
    token: BearerToken,
}

impl Fleet {
    /// The fleet of `members`, called with `token`.
    pub fn new(members: Vec<Member>, token: BearerToken) -> Self {
        Self { members, token }
    }

    /// The members.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    async fn client(
        &self,
        member: &Member,
    ) -> Result<ClusterClient<InterceptedService<Channel, BearerToken>>, FleetError> {
        let address = internal_address(&member.address);
        let connect = |source| FleetError::Connect { server: member.id.clone(), address: address.clone(), source };
        let channel = Endpoint::from_shared(format!("http://{address}"))
            .map_err(connect)?
            .connect_timeout(Duration::from_secs(3))
            .timeout(CALL_TIMEOUT)
            .connect()
            .await
            .map_err(connect)?;
        Ok(ClusterClient::with_interceptor(channel, self.token.clone()))
    }

    fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    fn refused<'a>(member: &'a Member, call: &'static str) -> impl FnOnce(tonic::Status) -> FleetError + 'a {
        move |status| FleetError::Call { server: member.id.clone(), call, status: Box::new(status) }
    }

    /// Every member's state of `stream`.
    pub async fn states(&self, stream: &str) -> Result<Vec<pb::ClusterStateResponse>, FleetError> {
        let calls = self.members.iter().map(|member| async move {
            let request = pb::ClusterStateRequest { stream_name: stream.to_owned() };
            let answer = self.client(member).await?.state(request).await.map_err(Self::refused(member, "State"))?;
            let mut state = answer.into_inner();
            state.server_id.clone_from(&member.id);
            Ok(state)
        });
        futures_util::future::try_join_all(calls).await
    }

    /// Assigns `layout` to the members named in `to`.
    pub async fn assign(&self, layout: &pb::StreamLayout, to: &[String]) -> Result<(), FleetError> {
        let calls = to.iter().filter_map(|id| self.member(id)).map(|member| async move {
            let request = pb::AssignRequest { layout: Some(layout.clone()) };
            self.client(member).await?.assign(request).await.map_err(Self::refused(member, "Assign"))?;
            Ok::<_, FleetError>(())
        });
        futures_util::future::try_join_all(calls).await.map(|_| ())
    }

    /// Freezes `stream` on every member at `epoch`; the final counter of every open shard. A
    /// replicated shard is reported by the server leading it once sealed; two reports (a seal
    /// by an earlier leader, then one by the next) keep the higher counter, the later seal's.
    pub async fn freeze(&self, stream: &str, epoch: u64) -> Result<HashMap<u32, u64>, FleetError> {
        let calls = self.members.iter().map(|member| async move {
            let request = pb::FreezeRequest { stream_name: stream.to_owned(), epoch };
            let answer = self.client(member).await?.freeze(request).await.map_err(Self::refused(member, "Freeze"))?;
            Ok::<_, FleetError>(answer.into_inner().owned_open)
        });
        let frozen = futures_util::future::try_join_all(calls).await?;
        let mut endings: HashMap<u32, u64> = HashMap::new();
        for progress in frozen.into_iter().flatten() {
            let ending = endings.entry(progress.index).or_default();
            *ending = (*ending).max(progress.last_counter);
        }
        Ok(endings)
    }

    /// Reshards the frozen `stream` on member `home`; the layout at the next epoch.
    pub async fn reshard(
        &self,
        home: &Member,
        stream: &str,
        epoch: u64,
        target: u32,
        ending_counters: HashMap<u32, u64>,
    ) -> Result<pb::StreamLayout, FleetError> {
        let request = pb::ClusterReshardRequest {
            stream_name: stream.to_owned(),
            epoch,
            target_shard_count: target,
            ending_counters,
        };
        let answer = self.client(home).await?.reshard(request).await.map_err(Self::refused(home, "Reshard"))?;
        answer.into_inner().layout.ok_or(FleetError::Incomplete { server: home.id.clone(), call: "Reshard" })
    }

    /// Deletes `stream` and its data from every member.
    pub async fn release(&self, stream: &str) -> Result<(), FleetError> {
        let calls = self.members.iter().map(|member| async move {
            let request = pb::ReleaseRequest { stream_name: stream.to_owned() };
            self.client(member).await?.release(request).await.map_err(Self::refused(member, "Release"))?;
            Ok::<_, FleetError>(())
        });
        futures_util::future::try_join_all(calls).await.map(|_| ())
    }
}
