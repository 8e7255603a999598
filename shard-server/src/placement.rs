//! Cluster placement: which shard-server holds each shard of a stream, as the operator last
//! assigned it. Kept inside the stream's definition, so it is persisted in the same fsync'd
//! batch as the shard map it describes. A standalone server has no placement: it owns
//! everything.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::stream::StreamDef;

/// A server of a stream's cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Stable id (the pod name).
    pub id: String,
    /// `host:port` of its endpoint.
    pub address: String,
    /// `host:port` of its internal endpoint (Raft between servers); empty when no shard of
    /// the stream is replicated.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub internal_address: String,
}

/// Where a stream's shards live, at one epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// Assignment epoch; only a newer one replaces it.
    pub epoch: u64,
    /// Writes are held (answered with a retryable error) while a reshard is prepared.
    pub frozen: bool,
    /// The stream's servers, in placement order.
    pub members: Vec<Member>,
    /// Shard index → id of the server holding it (for a replicated shard, its preferred
    /// leader).
    pub owners: BTreeMap<u32, String>,
    /// Shard index → ids of the servers holding its replicas, for replicated shards (each a
    /// Raft group of them); the first is the preferred leader.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub replicas: BTreeMap<u32, Vec<String>>,
    /// Shard index → ids of the servers its Raft group was founded with, for the replicated
    /// shards whose replicas are no longer their founders.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub founders: BTreeMap<u32, Vec<String>>,
}

/// Where a request for a shard goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// This server holds it.
    Local,
    /// Another server does, at this address.
    Remote(String),
    /// No server does: the layout gives the shard no owner (yet). Nobody serves it.
    Unowned,
}

impl Placement {
    /// The server holding shard `index`, or `None` when unassigned.
    pub fn owner(&self, index: u32) -> Option<&Member> {
        let id = self.owners.get(&index)?;
        self.members.iter().find(|m| &m.id == id)
    }

    /// The member with Raft id `id` (see [`crate::replication::raft_id`]).
    pub fn member_by_raft_id(&self, id: u64) -> Option<&Member> {
        self.members.iter().find(|m| crate::replication::raft_id(&m.id) == id)
    }

    /// The servers shard `index`'s Raft group was founded with (its replicas, unless they
    /// changed since).
    pub fn founders_of(&self, index: u32) -> &[String] {
        self.founders.get(&index).or_else(|| self.replicas.get(&index)).map_or(&[], Vec::as_slice)
    }

    /// The member with id `id`.
    pub fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    /// Where shard `index` is served, seen from server `me`; `None` when it has no owner.
    pub fn route(&self, index: u32, me: &str) -> Option<Route> {
        let owner = self.owner(index)?;
        Some(if owner.id == me { Route::Local } else { Route::Remote(owner.address.clone()) })
    }

    /// The stream's home server: the first member. It keeps the stream-wide state that must
    /// have one copy (lease table, consumers, tags, monitoring settings).
    pub fn home(&self) -> Option<&Member> {
        self.members.first()
    }

    /// Gives every shard of `def` without an owner the member holding the fewest open shards,
    /// ties going to the earlier member (members alternate zones, so ties spread over zones).
    /// An open shard whose parent is replicated gets the parent's replica set (spread over
    /// zones as the parent's was), turned by its index so that siblings prefer different
    /// leaders, and that leader as its owner. Deterministic: any server computing it from the
    /// same inputs gets the same answer.
    pub fn place_unowned(&mut self, def: &StreamDef) {
        // Parents come before their children (lower indexes), so a shard made and closed within
        // one UpdateShardCount hands its parent's set on to its own children; only open shards
        // become Raft groups (a shard closed at birth never holds a record).
        let mut inherited: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        let unowned: Vec<_> = def.shards.iter().filter(|s| !self.owners.contains_key(&s.index)).collect();
        for shard in unowned {
            let parent = shard.parent.and_then(|p| inherited.get(&p).or_else(|| self.replicas.get(&p)));
            let Some(mut replicas) = parent.cloned().filter(|set| !set.is_empty()) else { continue };
            let turn = shard.index as usize % replicas.len();
            replicas.rotate_left(turn);
            if shard.is_open() {
                self.owners.insert(shard.index, replicas[0].clone());
                self.replicas.insert(shard.index, replicas.clone());
            }
            inherited.insert(shard.index, replicas);
        }
        let mut load: BTreeMap<&str, usize> = self.members.iter().map(|m| (m.id.as_str(), 0)).collect();
        for shard in def.open_shards() {
            if let Some(n) = self.owners.get(&shard.index).and_then(|id| load.get_mut(id.as_str())) {
                *n += 1;
            }
        }
        let mut placed = Vec::new();
        for shard in &def.shards {
            if self.owners.contains_key(&shard.index) {
                continue;
            }
            let parent_owner = shard.parent.and_then(|p| self.owners.get(&p)).cloned();
            let owner = if shard.is_open() {
                let best = self.members.iter().enumerate().min_by_key(|(order, m)| (load[m.id.as_str()], *order));
                best.map(|(_, m)| m.id.clone())
            } else {
                // A shard closed within the change that made it never holds a record.
                parent_owner.or_else(|| self.members.first().map(|m| m.id.clone()))
            };
            if let Some(owner) = owner {
                if shard.is_open() {
                    if let Some(n) = load.get_mut(owner.as_str()) {
                        *n += 1;
                    }
                }
                placed.push((shard.index, owner));
            }
        }
        self.owners.extend(placed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash_range::HashRange;
    use crate::stream::ShardDef;

    fn shard(index: u32, open: bool) -> ShardDef {
        ShardDef {
            index,
            hash_range: HashRange::FULL,
            parent: None,
            adjacent_parent: None,
            created_at_ms: 0,
            ending_counter: (!open).then_some(3),
            closed_at_ms: (!open).then_some(1),
        }
    }

    fn placement(members: &[&str]) -> Placement {
        Placement {
            epoch: 1,
            frozen: false,
            members: members
                .iter()
                .map(|id| Member { id: (*id).into(), address: format!("{id}:4567"), internal_address: String::new() })
                .collect(),
            owners: BTreeMap::new(),
            replicas: BTreeMap::new(),
            founders: BTreeMap::new(),
        }
    }

    #[test]
    fn new_shards_go_to_the_least_loaded_members_in_order() {
        let mut def: StreamDef = serde_json::from_value(serde_json::json!({
            "id": 1, "name": "s", "status": "ACTIVE", "mode": "PROVISIONED", "retention_hours": 24,
            "created_at_ms": 0, "max_record_size_kib": 1024, "shards": [], "tags": {}
        }))
        .expect("def");
        def.shards = vec![shard(0, false), shard(1, true), shard(2, true), shard(3, true), shard(4, true)];
        let mut p = placement(&["a", "b", "c"]);
        p.owners.insert(0, "a".into());
        p.owners.insert(1, "a".into());
        p.place_unowned(&def);
        assert_eq!(p.owners.get(&2).map(String::as_str), Some("b"));
        assert_eq!(p.owners.get(&3).map(String::as_str), Some("c"));
        assert_eq!(p.owners.get(&4).map(String::as_str), Some("a"));
        assert_eq!(p.route(1, "a"), Some(Route::Local));
        assert_eq!(p.route(2, "a"), Some(Route::Remote("b:4567".into())));
        assert_eq!(p.route(9, "a"), None);
        assert_eq!(p.home().map(|m| m.id.as_str()), Some("a"));
    }
}
