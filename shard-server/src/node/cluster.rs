//! Cluster mode on the node: installing the operator's layouts, freezing and resharding a
//! stream whose shards live on several servers, releasing it, and deciding where a request for
//! a shard is served.
//!
//! A reshard across servers runs as three calls from the operator: `Freeze` on every server
//! (in order with appends, each stops writing the stream and reports its open shards' final
//! counters), `Reshard` on one server (it applies UpdateShardCount with those counters and
//! places the children), then `Assign` of the resulting layout to the others. Every step is
//! persisted and idempotent, and each layout carries the stream's epoch, so an operator that
//! stops anywhere and starts again converges.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use shardline_proto::v1 as pb;

use super::{ConsumerView, Hop, Node};
use crate::api::kinesis::validate::is_stream_name;
use crate::consumer::{self, ConsumerDef};
use crate::error::{Error, Result};
use crate::hash_range::{parse_hash_key, HashRange};
use crate::placement::{Member, Placement, Route};
use crate::reshard::{self, Change};
use crate::stream::{
    ShardDef, Stream, StreamDef, StreamMode, StreamStatus, DEFAULT_MAX_RECORD_SIZE_KIB, MAX_RETENTION_HOURS,
    MIN_RETENTION_HOURS,
};

/// How long a Freeze waits for each replicated shard led here to be sealed (the operator's
/// calls time out after 10 s; a Freeze that fails is asked again).
const SEAL_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Where a request that came from `hop` and belongs at `route` goes next: `None` to serve it
/// here, the address to send it on to. A forwarded request is never sent on again: one that
/// belongs elsewhere fails with a retryable error.
pub fn next_hop(route: Route, hop: Hop) -> Result<Option<String>> {
    match (route, hop) {
        (Route::Local, _) => Ok(None),
        (Route::Unowned, _) => {
            Err(Error::Unavailable("The shard has no server in the stream's current layout; retry shortly.".into()))
        }
        (Route::Remote(address), Hop::Forwarded) => {
            Err(Error::Unavailable(format!("The request was forwarded here but belongs to {address}; retry shortly.")))
        }
        (Route::Remote(address), Hop::Client) => Ok(Some(address)),
    }
}

impl Node {
    /// This server's id in cluster mode.
    pub fn cluster_id(&self) -> Option<&str> {
        self.config.cluster_id.as_deref()
    }

    /// The error for a topology change asked of a cluster-mode server.
    pub(crate) fn managed_by_operator(&self, stream: &str, what: &str) -> Error {
        Error::ManagedByOperator(format!(
            "Stream {stream} under account {} is managed by the Shardline operator: {what} through its Stream resource.",
            self.config.account_id
        ))
    }

    /// Refuses a topology change (create, delete, reshard, retention, mode) in cluster mode.
    pub(crate) fn standalone_only(&self, stream: &str, what: &str) -> Result<()> {
        match self.cluster_id() {
            Some(_) => Err(self.managed_by_operator(stream, what)),
            None => Ok(()),
        }
    }

    /// Where shard `index` of `def` is served, seen from this server.
    pub(crate) fn route_in(&self, def: &StreamDef, index: u32) -> Route {
        match (self.cluster_id(), &def.placement) {
            (Some(me), Some(placement)) => match placement.replicas.get(&index) {
                Some(replicas) => self.replicated_route(&def.name, placement, replicas, index, me),
                None => placement.route(index, me).unwrap_or(Route::Unowned),
            },
            _ => Route::Local,
        }
    }

    /// Where requests for shard `index` of stream `name` are served. A stream this server does
    /// not know is answered here (not found).
    pub fn shard_route(&self, name: &str, index: u32) -> Route {
        match self.catalog.get(name) {
            Ok(stream) => self.route_in(&stream.def(), index),
            Err(_) => Route::Local,
        }
    }

    /// Where the stream-wide state of stream `name` (lease table, consumers, tags, monitoring)
    /// is kept: its home server.
    pub fn home_route(&self, name: &str) -> Route {
        let Ok(stream) = self.catalog.get(name) else { return Route::Local };
        let def = stream.def();
        match (self.cluster_id(), def.placement.as_ref().and_then(Placement::home)) {
            (Some(me), Some(home)) if home.id != me => Route::Remote(home.address.clone()),
            _ => Route::Local,
        }
    }

    /// The consumer `arn`, from the stream's home server when it is elsewhere: consumers are
    /// registered there, and a shard's owner asks before it serves SubscribeToShard.
    pub async fn consumer_anywhere(&self, arn: &str) -> Result<ConsumerView> {
        let parsed = consumer::parse_arn(arn);
        let stream = parsed.as_ref().and_then(|(stream_arn, ..)| stream_arn.rsplit_once(":stream/").map(|(_, n)| n));
        let Some(stream) = stream else { return self.consumer(Some(arn), None, None) };
        let Route::Remote(home) = self.home_route(stream) else { return self.consumer(Some(arn), None, None) };
        let body = serde_json::json!({ "ConsumerARN": arn });
        let described = self.peers.kinesis_call(&home, "DescribeStreamConsumer", &body).await?;
        let description = &described["ConsumerDescription"];
        let status = serde_json::from_value(description["ConsumerStatus"].clone())
            .map_err(|_| Error::Unavailable(format!("{home} described consumer {arn} without a status")))?;
        let created_s = parsed.as_ref().map_or(0, |(_, _, created_s)| *created_s);
        Ok(ConsumerView {
            consumer: ConsumerDef {
                name: description["ConsumerName"].as_str().unwrap_or_default().to_owned(),
                created_at_ms: created_s.saturating_mul(1000),
                status,
            },
            arn: arn.to_owned(),
            stream_name: stream.to_owned(),
            stream_arn: self.stream_arn(stream),
        })
    }

    /// The peer connections.
    pub fn peers(&self) -> &crate::peers::Peers {
        &self.peers
    }

    fn cluster_me(&self) -> Result<&str> {
        self.cluster_id().ok_or_else(|| {
            Error::InvalidArgument("This shard-server runs standalone; cluster calls need --cluster.".into())
        })
    }

    fn epoch_of(def: &StreamDef) -> u64 {
        def.placement.as_ref().map_or(0, |p| p.epoch)
    }

    /// Installs `layout` (creating the stream when new), in order with appends. An older epoch
    /// than the one held is refused; the same epoch is a no-op.
    pub async fn assign(self: &Arc<Self>, layout: pb::StreamLayout) -> Result<pb::StreamLayout> {
        self.cluster_me()?;
        let incoming = decode_layout(&layout, self.now_ms())?;
        let node = self.clone();
        let answer = Arc::new(Mutex::new(None));
        let slot = answer.clone();
        self.appender
            .barrier(move || {
                node.check_assigned_shard_limit(&incoming)?;
                let installed = match node.catalog.get(&incoming.name) {
                    Ok(stream) if !stream.is_deleted() => {
                        let current = Self::epoch_of(&stream.def());
                        let offered = Self::epoch_of(&incoming);
                        if offered < current {
                            return Err(Error::StaleEpoch { stream: incoming.name, offered, current });
                        }
                        if offered > current {
                            check_replica_changes(&stream.def(), &incoming)?;
                            node.catalog.update(&stream, |def| {
                                def.shards = incoming.shards;
                                def.retention_hours = incoming.retention_hours;
                                def.throughput_limits = incoming.throughput_limits;
                                def.placement = incoming.placement;
                                def.status = StreamStatus::Active;
                                Ok(())
                            })?;
                        }
                        stream
                    }
                    _ => node.catalog.install(incoming)?,
                };
                let layout = encode_layout(&installed.def());
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(layout);
                Ok(())
            })
            .await?;
        let layout = answer.lock().unwrap_or_else(|p| p.into_inner()).take();
        let layout = layout.ok_or(Error::WritePathClosed("the assignment produced no layout"))?;
        if let Ok(stream) = self.catalog.get(&layout.stream_name) {
            self.host_replicas(&stream).await?;
        }
        tracing::info!(stream = %layout.stream_name, epoch = layout.epoch, "layout assigned");
        Ok(layout)
    }

    /// Refuses a layout that would take this server's open shards (of every stream) past
    /// `--shard-limit`, as CreateStream and resharding are refused.
    fn check_assigned_shard_limit(&self, incoming: &StreamDef) -> Result<()> {
        let before = self.catalog.get(&incoming.name).map_or(0, |s| s.def().open_shards().count() as u64);
        let current = self.catalog.open_shard_count();
        let after = current - before.min(current) + incoming.open_shards().count() as u64;
        if after > u64::from(self.config.shard_limit) && after > current {
            return Err(Error::shard_limit(
                &self.config.account_id,
                &self.config.region,
                current,
                self.config.shard_limit,
                after - current,
            ));
        }
        Ok(())
    }

    /// The layout of stream `name` on this server and the progress of the shards it owns.
    pub async fn cluster_state(&self, name: &str) -> Result<pb::ClusterStateResponse> {
        let me = self.cluster_me()?.to_owned();
        let Ok(stream) = self.catalog.get(name) else {
            return Ok(pb::ClusterStateResponse { server_id: me, layout: None, ..Default::default() });
        };
        if stream.is_deleted() {
            return Ok(pb::ClusterStateResponse { server_id: me, layout: None, ..Default::default() });
        }
        let def = stream.def().clone();
        let owned = owned_shards(&stream, &def, &me, false);
        let replicas = self.replica_states(&stream, &def).await;
        Ok(pb::ClusterStateResponse { server_id: me, layout: Some(encode_layout(&def)), owned, replicas })
    }

    /// Stops writes to stream `name` on this server at epoch `epoch`, in order with appends, and
    /// reports the final counters of the open shards it owns, and of the open replicated shards
    /// it leads once each is sealed (a seal committed in the shard's Raft log: nothing is
    /// written to it after). Idempotent.
    pub async fn freeze(self: &Arc<Self>, name: &str, epoch: u64) -> Result<Vec<pb::ShardProgress>> {
        let me = self.cluster_me()?.to_owned();
        let stream = self.catalog.get(name)?;
        let node = self.clone();
        let target = stream.clone();
        let answer = Arc::new(Mutex::new(Vec::new()));
        let slot = answer.clone();
        self.appender
            .barrier(move || {
                let current = Self::epoch_of(&target.def());
                if current != epoch {
                    return Err(Error::StaleEpoch { stream: target.name.clone(), offered: epoch, current });
                }
                node.catalog.update(&target, |def| {
                    if let Some(placement) = def.placement.as_mut() {
                        placement.frozen = true;
                    }
                    Ok(())
                })?;
                let def = target.def().clone();
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = owned_shards(&target, &def, &me, true);
                Ok(())
            })
            .await?;
        let mut owned = std::mem::take(&mut *answer.lock().unwrap_or_else(|p| p.into_inner()));
        owned.extend(self.seal_led_shards(&stream, epoch, SEAL_WITHIN).await?);
        tracing::info!(stream = %stream.name, epoch, "stream frozen for a reshard");
        Ok(owned)
    }

    /// Applies UpdateShardCount to `target` open shards on the frozen stream at `epoch`, with
    /// every open shard ending at `endings`, places the children and returns the layout at
    /// `epoch + 1`. Asked again after it succeeded, it returns that layout.
    pub async fn cluster_reshard(
        self: &Arc<Self>,
        name: &str,
        epoch: u64,
        target: u32,
        endings: HashMap<u32, u64>,
    ) -> Result<pb::StreamLayout> {
        self.cluster_me()?;
        let stream = self.catalog.get(name)?;
        let node = self.clone();
        let subject = stream.clone();
        self.appender
            .barrier(move || {
                let (current, frozen) = {
                    let def = subject.def();
                    (Self::epoch_of(&def), def.placement.as_ref().is_some_and(|p| p.frozen))
                };
                if current == epoch + 1 {
                    return Ok(());
                }
                if current != epoch {
                    return Err(Error::StaleEpoch { stream: subject.name.clone(), offered: epoch, current });
                }
                if !frozen {
                    return Err(Error::InvalidArgument(format!(
                        "Stream {} must be frozen on every server before it is resharded.",
                        subject.name
                    )));
                }
                let now = node.now_ms();
                node.catalog.update(&subject, |def| {
                    if let Some(open) = def.open_shards().find(|s| !endings.contains_key(&s.index)) {
                        return Err(Error::InvalidArgument(format!(
                            "The final counter of {} is missing from the reshard request.",
                            open.id()
                        )));
                    }
                    // The operator, not an account quota, paces a cluster's scalings.
                    def.scalings_ms.clear();
                    reshard::validate(def, Change::Scale { target }, &node.config.account_id, now)?;
                    let ending = |index: u32| endings.get(&index).copied().unwrap_or(0);
                    reshard::apply(def, Change::Scale { target }, &ending, now);
                    let snapshot = def.clone();
                    if let Some(placement) = def.placement.as_mut() {
                        placement.place_unowned(&snapshot);
                        placement.epoch = epoch + 1;
                        placement.frozen = false;
                    }
                    Ok(())
                })
            })
            .await?;
        tracing::info!(stream = %stream.name, epoch = epoch + 1, target, "stream resharded");
        // Children of replicated shards are Raft groups founded by their replicas.
        self.host_replicas(&stream).await?;
        let layout = encode_layout(&stream.def());
        Ok(layout)
    }

    /// Deletes stream `name` and all its records from this server; false when it had none.
    pub async fn release(&self, name: &str) -> Result<bool> {
        self.cluster_me()?;
        let Ok(stream) = self.catalog.get(name) else { return Ok(false) };
        if let Some(replicator) = self.replicator() {
            replicator.unhost(name).await.map_err(Error::from)?;
        }
        self.erase(&stream).await?;
        tracing::info!(stream = %name, "stream released");
        Ok(true)
    }
}

/// The shards of `def` owned by `me` (only the open ones with `open_only`), with their logs'
/// progress.
fn owned_shards(stream: &Stream, def: &StreamDef, me: &str, open_only: bool) -> Vec<pb::ShardProgress> {
    let Some(placement) = &def.placement else { return Vec::new() };
    def.shards
        .iter()
        .filter(|s| (!open_only || s.is_open()) && !placement.replicas.contains_key(&s.index))
        .filter(|s| placement.owners.get(&s.index).is_some_and(|o| o == me))
        .map(|s| {
            let log = stream.log(s.index);
            pb::ShardProgress {
                index: s.index,
                last_counter: log.as_ref().map_or(0, |l| l.last_counter.load(Ordering::Acquire)),
                last_arrival_ms: log.as_ref().map_or(0, |l| l.last_arrival_ms.load(Ordering::Acquire)),
                appended_bytes: log.as_ref().map_or(0, |l| l.appended_bytes.load(Ordering::Relaxed)),
            }
        })
        .collect()
}

/// The wire form of a stream's definition and placement.
pub fn encode_layout(def: &StreamDef) -> pb::StreamLayout {
    let placement = def.placement.clone();
    let owners = placement.as_ref().map(|p| p.owners.clone()).unwrap_or_default();
    let replicas = placement.as_ref().map(|p| p.replicas.clone()).unwrap_or_default();
    let founders = placement.as_ref().map(|p| p.founders.clone()).unwrap_or_default();
    pb::StreamLayout {
        stream_name: def.name.clone(),
        epoch: placement.as_ref().map_or(0, |p| p.epoch),
        frozen: placement.as_ref().is_some_and(|p| p.frozen),
        servers: placement
            .map(|p| {
                p.members
                    .into_iter()
                    .map(|m| pb::ClusterServer { id: m.id, address: m.address, internal_address: m.internal_address })
                    .collect()
            })
            .unwrap_or_default(),
        shards: def
            .shards
            .iter()
            .map(|s| pb::ShardLayout {
                index: s.index,
                starting_hash_key: s.hash_range.start.to_string(),
                ending_hash_key: s.hash_range.end.to_string(),
                parent: s.parent,
                adjacent_parent: s.adjacent_parent,
                created_at_ms: s.created_at_ms,
                ending_counter: s.ending_counter,
                closed_at_ms: s.closed_at_ms,
                owner: owners.get(&s.index).cloned().unwrap_or_default(),
                replicas: replicas.get(&s.index).cloned().unwrap_or_default(),
                founders: founders.get(&s.index).cloned().unwrap_or_default(),
            })
            .collect(),
        retention_hours: def.retention_hours,
        throughput_limits: def.throughput_limits,
        created_at_ms: def.created_at_ms,
        initial_shard_count: 0,
        initial_owners: Vec::new(),
        initial_replication_factor: 0,
    }
}

/// A stream definition from a layout, checked field by field.
fn decode_layout(layout: &pb::StreamLayout, now_ms: u64) -> Result<StreamDef> {
    let invalid = |message: String| Err(Error::InvalidArgument(message));
    if !is_stream_name(&layout.stream_name) {
        return invalid(format!("'{}' is not a valid stream name.", layout.stream_name));
    }
    if layout.epoch == 0 {
        return invalid("A layout's epoch starts at 1.".into());
    }
    if !(MIN_RETENTION_HOURS..=MAX_RETENTION_HOURS).contains(&layout.retention_hours) {
        return invalid(format!(
            "Retention of {} hours is outside {MIN_RETENTION_HOURS}..={MAX_RETENTION_HOURS}.",
            layout.retention_hours
        ));
    }
    if layout.servers.is_empty() {
        return invalid("A layout names at least one server.".into());
    }
    let members: Vec<Member> = layout
        .servers
        .iter()
        .map(|s| Member { id: s.id.clone(), address: s.address.clone(), internal_address: s.internal_address.clone() })
        .collect();
    let created_at = if layout.created_at_ms == 0 { now_ms } else { layout.created_at_ms };
    let mut owners = BTreeMap::new();
    let mut replicas = BTreeMap::new();
    let mut founders = BTreeMap::new();
    let shards: Vec<ShardDef> = if layout.shards.is_empty() {
        let count = layout.initial_shard_count;
        if count == 0 || layout.initial_owners.len() != count as usize {
            return invalid(format!(
                "A new layout needs shards, or initial_shard_count ≥ 1 with one owner each (got {count} and {}).",
                layout.initial_owners.len()
            ));
        }
        owners.extend((0u32..).zip(layout.initial_owners.iter().cloned()));
        let factor = layout.initial_replication_factor as usize;
        if factor > members.len() {
            return invalid(format!(
                "A replication factor of {factor} needs at least {factor} servers; the layout names {}.",
                members.len()
            ));
        }
        if factor > 1 {
            for (index, owner) in (0u32..).zip(&layout.initial_owners) {
                let first = members.iter().position(|m| &m.id == owner).unwrap_or(0);
                let set: Vec<String> = (0..factor).map(|k| members[(first + k) % members.len()].id.clone()).collect();
                check_replicas(index, &set, &members)?;
                replicas.insert(index, set);
            }
        }
        ShardDef::roots(count, created_at)
    } else {
        let mut shards = Vec::with_capacity(layout.shards.len());
        for (position, shard) in layout.shards.iter().enumerate() {
            let (Some(start), Some(end)) =
                (parse_hash_key(&shard.starting_hash_key), parse_hash_key(&shard.ending_hash_key))
            else {
                return invalid(format!("Shard {} has a malformed hash key range.", shard.index));
            };
            if shard.index as usize != position || start > end {
                return invalid(format!("Shard {} is out of order or has an empty range.", shard.index));
            }
            shards.push(ShardDef {
                index: shard.index,
                hash_range: HashRange { start, end },
                parent: shard.parent,
                adjacent_parent: shard.adjacent_parent,
                created_at_ms: shard.created_at_ms,
                ending_counter: shard.ending_counter,
                closed_at_ms: shard.closed_at_ms,
            });
            if !shard.owner.is_empty() {
                owners.insert(shard.index, shard.owner.clone());
            }
            if !shard.replicas.is_empty() {
                check_replicas(shard.index, &shard.replicas, &members)?;
                owners.insert(shard.index, shard.replicas[0].clone());
                replicas.insert(shard.index, shard.replicas.clone());
                let named: std::collections::BTreeSet<&String> = shard.founders.iter().collect();
                if !named.is_empty() && named != shard.replicas.iter().collect() {
                    check_founders(shard.index, &shard.founders)?;
                    founders.insert(shard.index, shard.founders.clone());
                }
            } else if !shard.founders.is_empty() {
                return invalid(format!("Shard {} names founders but no replicas.", shard.index));
            }
        }
        shards
    };
    if let Some((index, owner)) = owners.iter().find(|(_, o)| !members.iter().any(|m| &m.id == *o)) {
        return invalid(format!("Shard {index} is owned by {owner}, which is not one of the stream's servers."));
    }
    Ok(StreamDef {
        id: 0,
        name: layout.stream_name.clone(),
        status: StreamStatus::Active,
        mode: StreamMode::Provisioned,
        retention_hours: layout.retention_hours,
        created_at_ms: created_at,
        max_record_size_kib: DEFAULT_MAX_RECORD_SIZE_KIB,
        shards,
        tags: BTreeMap::new(),
        scalings_ms: Vec::new(),
        shard_level_metrics: Default::default(),
        throughput_limits: layout.throughput_limits,
        consumers: Vec::new(),
        placement: Some(Placement { epoch: layout.epoch, frozen: layout.frozen, members, owners, replicas, founders }),
    })
}

/// Refuses a layout that makes an unreplicated shard replicated or the other way round (a
/// shard's log would change hands outside Raft), or that changes the founders of a replicated
/// shard that exists already: a new replica set is carried out by Raft configuration changes
/// from the founders' configuration, which every replica (a joining one too) must agree on.
fn check_replica_changes(current: &StreamDef, incoming: &StreamDef) -> Result<()> {
    let (Some(before), Some(after)) = (current.placement.as_ref(), incoming.placement.as_ref()) else { return Ok(()) };
    for shard in current.shards.iter().map(|s| s.index) {
        let (was, is) = (before.replicas.contains_key(&shard), after.replicas.contains_key(&shard));
        if was != is {
            return Err(Error::InvalidArgument(format!(
                "The layout makes shard {shard} of stream {} {}; changing whether an existing shard is replicated is not supported.",
                current.name,
                if is { "replicated" } else { "unreplicated" },
            )));
        }
        let as_set = |ids: &[String]| ids.iter().cloned().collect::<std::collections::BTreeSet<_>>();
        if was && as_set(before.founders_of(shard)) != as_set(after.founders_of(shard)) {
            return Err(Error::InvalidArgument(format!(
                "The layout changes the founders of shard {shard} of stream {} ({:?} to {:?}); a shard keeps the founders its group began with (send them in `founders` once its replicas differ).",
                current.name,
                before.founders_of(shard),
                after.founders_of(shard)
            )));
        }
    }
    Ok(())
}

/// Refuses founders that name a server twice or none.
fn check_founders(index: u32, founders: &[String]) -> Result<()> {
    for (n, id) in founders.iter().enumerate() {
        if id.is_empty() || founders[..n].contains(id) {
            return Err(Error::InvalidArgument(format!("Shard {index} names founder '{id}' twice or empty.")));
        }
    }
    Ok(())
}

/// Refuses a replica set that names a server twice, a server not of the stream, or (with more
/// than one replica) a server without an internal address to carry Raft to.
fn check_replicas(index: u32, replicas: &[String], members: &[Member]) -> Result<()> {
    for (n, id) in replicas.iter().enumerate() {
        let Some(member) = members.iter().find(|m| &m.id == id) else {
            return Err(Error::InvalidArgument(format!(
                "Shard {index} has a replica on {id}, which is not one of the stream's servers."
            )));
        };
        if replicas[..n].contains(id) {
            return Err(Error::InvalidArgument(format!("Shard {index} names {id} twice among its replicas.")));
        }
        if replicas.len() > 1 && member.internal_address.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "Server {id} holds a replica of shard {index} but has no internal address."
            )));
        }
    }
    Ok(())
}
