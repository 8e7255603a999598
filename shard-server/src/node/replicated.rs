//! Replicated shards on the node: which of a stream's shards this server holds a replica of
//! (the layout's replica sets), hosting their Raft groups in the store loop, routing a request
//! to the shard's leader, and putting records through it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use shardline_proto::v1 as pb;

use super::Node;
use crate::append::{Appended, Entry};
use crate::error::{Error, Result};
use crate::placement::{Placement, Route};
use crate::raft_log::JournalRaftLog;
use crate::replication::{self, GroupId, GrpcTransport, Hosting, ReplicationError, Replicator};
use crate::stream::{Stream, StreamDef};

/// A cluster server's replication: its store loop and its links to the other servers.
#[derive(Debug)]
pub struct Replication {
    replicator: Replicator,
    transport: Arc<GrpcTransport>,
}

impl Replication {
    /// Starts the store loop of server `me` over the node's journal and meta engine.
    pub fn start(
        me: &str,
        journal: Arc<crate::journal::Journal>,
        engine: Arc<dyn crate::store::KvEngine>,
        clock: Arc<dyn crate::clock::Clock>,
        bearer: &crate::credential::PeerBearer,
    ) -> std::io::Result<Self> {
        let id = replication::raft_id(me);
        let transport = Arc::new(GrpcTransport::new(id, bearer.header_value().to_owned()));
        let replicator = Replicator::start(id, journal, engine, clock, transport.clone())?;
        Ok(Self { replicator, transport })
    }
}

/// The replica set of shard `index` of `def`, when the shard is replicated.
pub fn replicas_of(def: &StreamDef, index: u32) -> Option<&[String]> {
    def.placement.as_ref()?.replicas.get(&index).map(Vec::as_slice)
}

impl Node {
    /// The store loop, on a cluster server.
    pub fn replicator(&self) -> Option<&Replicator> {
        self.replication.as_ref().map(|r| &r.replicator)
    }

    /// Where a request for replicated shard `index` goes, seen from server `me`: to the leader
    /// this server knows of; with none known, served here when this server holds a replica
    /// (its published records are committed ones), else sent to the first replica.
    pub(crate) fn replicated_route(
        &self,
        name: &str,
        placement: &Placement,
        replicas: &[String],
        index: u32,
        me: &str,
    ) -> Route {
        let group = GroupId { stream: name.to_owned(), shard: index };
        let leader = self.replicator().and_then(|r| r.leader_of(&group));
        if let Some(leader) = leader.and_then(|id| placement.member_by_raft_id(id)) {
            return if leader.id == me { Route::Local } else { Route::Remote(leader.address.clone()) };
        }
        if replicas.iter().any(|id| id == me) {
            return Route::Local;
        }
        match replicas.first().and_then(|id| placement.member(id)) {
            Some(first) => Route::Remote(first.address.clone()),
            None => Route::Unowned,
        }
    }

    /// Hosts the Raft group of every replicated shard of `stream` this server holds a replica
    /// of (a no-op for those hosted already) and gives every hosted group the layout's replica
    /// set to carry out, after telling the transport where the stream's servers are.
    pub(crate) async fn host_replicas(&self, stream: &Arc<Stream>) -> Result<()> {
        let mut first_failure = None;
        let (Some(replication), Some(me)) = (&self.replication, self.cluster_id()) else { return Ok(()) };
        let Some(placement) = stream.def().placement.clone() else { return Ok(()) };
        for member in placement.members.iter().filter(|m| m.id != me && !m.internal_address.is_empty()) {
            replication.transport.set_peer(replication::raft_id(&member.id), &member.internal_address);
        }
        for (&shard, replicas) in &placement.replicas {
            let founders = placement.founders_of(shard);
            let hosting = Hosting {
                id: GroupId { stream: stream.name.clone(), shard },
                stream: stream.clone(),
                replicas: replicas.iter().map(|id| replication::raft_id(id)).collect(),
                founders: founders.iter().map(|id| replication::raft_id(id)).collect(),
                campaign_if_new: founders.first().is_some_and(|first| first == me),
            };
            // One shard that cannot be hosted does not keep the others from being hosted.
            if let Err(err) = replication.replicator.host(hosting).await {
                tracing::error!(stream = %stream.name, shard, cause = %err, "replica not hosted");
                first_failure.get_or_insert(Error::from(err));
            }
        }
        first_failure.map_or(Ok(()), Err)
    }

    /// The replicas of `stream` this server hosts, with the leader and configuration each
    /// knows of.
    pub(crate) async fn replica_states(&self, stream: &Stream, def: &StreamDef) -> Vec<pb::ReplicaState> {
        let (Some(placement), Some(replicator)) = (&def.placement, self.replicator()) else { return Vec::new() };
        let name = |id: u64| placement.member_by_raft_id(id).map_or_else(|| format!("{id:016x}"), |m| m.id.clone());
        let mut states: Vec<pb::ReplicaState> = replicator
            .status()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|status| status.id.stream == def.name)
            .map(|status| {
                let log = stream.log(status.id.shard);
                pb::ReplicaState {
                    index: status.id.shard,
                    leader: status.leader.map(name).unwrap_or_default(),
                    last_counter: log.as_ref().map_or(0, |l| l.last_counter.load(Ordering::Acquire)),
                    appended_bytes: log.as_ref().map_or(0, |l| l.appended_bytes.load(Ordering::Relaxed)),
                    last_arrival_ms: log.as_ref().map_or(0, |l| l.last_arrival_ms.load(Ordering::Acquire)),
                    voters: status.voters.iter().map(|&id| name(id)).collect(),
                    learners: status.learners.iter().map(|&id| name(id)).collect(),
                }
            })
            .collect();
        states.sort_by_key(|state| state.index);
        states
    }

    /// Hosts the replicas of every stream this server holds (at start).
    pub(crate) fn resume_replication(self: &Arc<Self>) {
        if self.replication.is_none() {
            return;
        }
        let node = self.clone();
        self.tasks.spawn(async move {
            for stream in node.catalog.list() {
                if let Err(err) = node.host_replicas(&stream).await {
                    tracing::error!(stream = %stream.name, cause = %err, "replicas not hosted");
                }
            }
        });
    }

    /// Sets every replicated shard's published watermark back to its last committed record
    /// (run at open, before anything is served: the journal's tail may hold entries a leader
    /// will replace).
    pub(crate) fn publish_committed_at_open(&self, journal: &Arc<crate::journal::Journal>) -> Result<()> {
        let Some(me) = self.cluster_id() else { return Ok(()) };
        for stream in self.catalog.list() {
            let def = stream.def().clone();
            let Some(placement) = &def.placement else { continue };
            for (&shard, replicas) in &placement.replicas {
                let (true, Some(shard_log)) = (replicas.iter().any(|id| id == me), stream.log(shard)) else { continue };
                let key = crate::journal::ShardKey { stream: stream.id, shard };
                let log = JournalRaftLog::open(
                    journal.clone(),
                    self.engine.clone(),
                    self.clock.clone(),
                    key,
                    stream.retention_class(),
                )
                .map_err(|err| Error::from(ReplicationError::from(err)))?;
                replication::publish_committed(&log, &shard_log).map_err(Error::from)?;
            }
        }
        Ok(())
    }

    /// Puts `entries` into replicated shard `shard` of `stream` through its leader here,
    /// returning once a majority of its replicas has them durable.
    /// `routed_epoch` is the layout epoch the records were routed under: if the layout has
    /// moved on since (a reshard may have closed the shard), they are refused for the caller
    /// to route again.
    pub(crate) async fn put_replicated(
        &self,
        stream: &Stream,
        shard: u32,
        routed_epoch: u64,
        entries: Vec<Entry>,
    ) -> Result<Vec<Appended>> {
        let replicator = self.replicator().ok_or_else(|| {
            Error::Unavailable(format!(
                "Shard {shard} of stream {} is replicated but this server has no replication.",
                stream.name
            ))
        })?;
        {
            let def = stream.def();
            let placement = def.placement.as_ref();
            let open = def.shard(shard).is_some_and(|s| s.is_open());
            if placement.is_some_and(|p| p.frozen || p.epoch != routed_epoch) || !open {
                return Err(Error::Unavailable(format!(
                    "Stream {} is being resharded; retry the request shortly.",
                    stream.name
                )));
            }
        }
        let group = GroupId { stream: stream.name.clone(), shard };
        Ok(replicator.propose(group, routed_epoch, entries).await?)
    }

    /// Seals every open replicated shard of `stream` whose leader is here at layout `epoch`
    /// (see [`Replicator::seal`]), each within `within`: their last records, for a reshard.
    /// Shards led elsewhere are left to their leaders' servers.
    pub(crate) async fn seal_led_shards(
        &self,
        stream: &Stream,
        epoch: u64,
        within: std::time::Duration,
    ) -> Result<Vec<pb::ShardProgress>> {
        let Some(replicator) = self.replicator() else { return Ok(Vec::new()) };
        let def = stream.def().clone();
        let Some(placement) = &def.placement else { return Ok(Vec::new()) };
        let led: Vec<u32> = def
            .open_shards()
            .map(|s| s.index)
            .filter(|index| placement.replicas.contains_key(index))
            .filter(|&index| {
                let group = GroupId { stream: def.name.clone(), shard: index };
                replicator.leader_of(&group) == Some(replicator.me())
            })
            .collect();
        let name = &def.name;
        let seals = led.into_iter().map(|index| async move {
            let group = GroupId { stream: name.clone(), shard: index };
            let sealed = tokio::time::timeout(within, replicator.seal(group, epoch)).await;
            let (last_counter, last_arrival_ms) = match sealed {
                Ok(sealed) => sealed?,
                Err(_) => return Err(Error::Unavailable(format!("Shard {index} was not sealed within {within:?}."))),
            };
            Ok(pb::ShardProgress { index, last_counter, last_arrival_ms, appended_bytes: 0 })
        });
        futures_util::future::try_join_all(seals).await
    }
}
