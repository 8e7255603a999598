//! What one reconcile pass of a `Stream` does next, decided from what its shard-servers report.
//! Pure and level-triggered: the servers' persisted layouts (each with the stream's epoch) are
//! the state, so an operator restarted at any point of a change decides the same next step.

use std::collections::BTreeMap;

use shardline_proto::v1 as pb;

use crate::fleet::internal_address;
use crate::placement::{self, Server};
use crate::reshard;

/// A shard-server pod that is Ready, with its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Pod name (the server id).
    pub id: String,
    /// `ip:port` of its endpoint.
    pub address: String,
    /// Zone it runs in ("" without zones).
    pub zone: String,
}

/// What the spec asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// Stream name.
    pub stream: String,
    /// Open shards.
    pub shards: u32,
    /// Retention in hours.
    pub retention_hours: u32,
    /// Per-stream throughput-limit switch (`None`: the servers' default).
    pub throughput_limits: Option<bool>,
    /// Copies of each shard a new stream gets (capped at the number of servers).
    pub replication_factor: u32,
}

/// The next step.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create the stream: assign this first layout to every server.
    Create(pb::StreamLayout),
    /// Assign `layout` to the servers named in `to`.
    Assign {
        /// The layout.
        layout: pb::StreamLayout,
        /// Server ids.
        to: Vec<String>,
        /// Why, for events and logs.
        reason: &'static str,
    },
    /// Run one UpdateShardCount step: freeze every server at `epoch`, reshard on the home
    /// server to `target`, assign the result to the others.
    Reshard {
        /// The epoch every server is at.
        epoch: u64,
        /// Open shards after the step.
        target: u32,
        /// The whole plan, this step first.
        plan: Vec<u32>,
    },
    /// Nothing to do.
    Steady,
}

/// Open shards of a layout.
pub fn open_shards(layout: &pb::StreamLayout) -> u32 {
    u32::try_from(layout.shards.iter().filter(|s| s.ending_counter.is_none()).count()).unwrap_or(u32::MAX)
}

/// The newest layout any server holds.
pub fn latest(states: &[pb::ClusterStateResponse]) -> Option<&pb::StreamLayout> {
    states.iter().filter_map(|s| s.layout.as_ref()).max_by_key(|l| l.epoch)
}

fn next_epoch(layout: &pb::StreamLayout) -> pb::StreamLayout {
    pb::StreamLayout { epoch: layout.epoch + 1, ..layout.clone() }
}

/// Decides the next step for a stream whose wanted servers are all `members` (all Ready), given
/// every member's reported state.
pub fn decide(desired: &Desired, members: &[Member], states: &[pb::ClusterStateResponse], now_ms: u64) -> Action {
    let all: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
    let Some(latest) = latest(states) else {
        let servers: Vec<Server> =
            members.iter().map(|m| Server { name: m.id.clone(), zone: m.zone.clone() }).collect();
        let shard_names: Vec<String> = (0..desired.shards).map(|i| format!("{i:012}")).collect();
        let placed = placement::place(&shard_names, &servers, &BTreeMap::new());
        // Each shard's replicas: its owner and the servers after it, which sit in other zones.
        let factor = desired.replication_factor.clamp(1, u32::try_from(members.len()).unwrap_or(u32::MAX));
        return Action::Create(pb::StreamLayout {
            stream_name: desired.stream.clone(),
            epoch: 1,
            frozen: false,
            servers: members
                .iter()
                .map(|m| pb::ClusterServer {
                    id: m.id.clone(),
                    address: m.address.clone(),
                    internal_address: if factor > 1 { internal_address(&m.address) } else { String::new() },
                })
                .collect(),
            shards: Vec::new(),
            retention_hours: desired.retention_hours,
            throughput_limits: desired.throughput_limits,
            created_at_ms: now_ms,
            initial_shard_count: desired.shards,
            initial_owners: shard_names.iter().map(|s| placed.get(s).cloned().unwrap_or_default()).collect(),
            initial_replication_factor: factor,
        });
    };
    // Membership: addresses move when pods restart; servers added later join (they own nothing
    // until a reshard places children on them). A server is never dropped: it holds records.
    // A replicated stream's servers carry Raft on their internal addresses.
    let replicated = latest.shards.iter().any(|s| !s.replicas.is_empty());
    let mut servers = latest.servers.clone();
    for member in members {
        let internal = if replicated { internal_address(&member.address) } else { String::new() };
        match servers.iter_mut().find(|s| s.id == member.id) {
            Some(server) => {
                server.address.clone_from(&member.address);
                if replicated {
                    server.internal_address = internal;
                }
            }
            None => servers.push(pb::ClusterServer {
                id: member.id.clone(),
                address: member.address.clone(),
                internal_address: internal,
            }),
        }
    }
    if servers != latest.servers {
        let layout = pb::StreamLayout { servers, ..next_epoch(latest) };
        return Action::Assign { layout, to: all, reason: "ServersChanged" };
    }
    let behind: Vec<String> = states
        .iter()
        .filter(|s| s.layout.as_ref().is_none_or(|l| l.epoch < latest.epoch))
        .map(|s| s.server_id.clone())
        .collect();
    if !behind.is_empty() {
        return Action::Assign { layout: latest.clone(), to: behind, reason: "CatchUp" };
    }
    let open = open_shards(latest);
    if open != desired.shards {
        let plan = reshard::plan(open, desired.shards);
        if let Some(&target) = plan.first() {
            return Action::Reshard { epoch: latest.epoch, target, plan };
        }
    }
    if states.iter().any(|s| s.layout.as_ref().is_some_and(|l| l.frozen)) {
        let layout = pb::StreamLayout { frozen: false, ..next_epoch(latest) };
        return Action::Assign { layout, to: all, reason: "Unfrozen" };
    }
    if latest.retention_hours != desired.retention_hours || latest.throughput_limits != desired.throughput_limits {
        let layout = pb::StreamLayout {
            retention_hours: desired.retention_hours,
            throughput_limits: desired.throughput_limits,
            ..next_epoch(latest)
        };
        return Action::Assign { layout, to: all, reason: "SettingsChanged" };
    }
    Action::Steady
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: usize) -> Vec<Member> {
        (0..n)
            .map(|i| Member { id: format!("s-{i}-0"), address: format!("10.0.0.{i}:4567"), zone: format!("z{i}") })
            .collect()
    }

    fn desired(shards: u32) -> Desired {
        Desired { stream: "s".into(), shards, retention_hours: 24, throughput_limits: None, replication_factor: 1 }
    }

    fn state(id: &str, layout: Option<pb::StreamLayout>) -> pb::ClusterStateResponse {
        pb::ClusterStateResponse { server_id: id.into(), layout, owned: Vec::new(), replicas: Vec::new() }
    }

    fn layout(epoch: u64, open: usize, closed: usize, members: &[Member]) -> pb::StreamLayout {
        let servers: Vec<(&str, &str)> = members.iter().map(|m| (m.id.as_str(), m.address.as_str())).collect();
        crate::fixtures::layout(epoch, open, closed, &servers)
    }

    #[test]
    fn a_new_stream_is_created_with_shards_spread_over_servers() {
        let m = members(2);
        let action = decide(&desired(4), &m, &[state("s-0-0", None), state("s-1-0", None)], 7);
        let Action::Create(layout) = action else { panic!("expected Create, got {action:?}") };
        assert_eq!((layout.epoch, layout.initial_shard_count, layout.created_at_ms), (1, 4, 7));
        let on_first = layout.initial_owners.iter().filter(|o| *o == "s-0-0").count();
        assert_eq!(on_first, 2);
    }

    #[test]
    fn a_replicated_stream_is_created_with_internal_addresses_and_a_capped_factor() {
        let m = members(2);
        let wanted = Desired { replication_factor: 3, ..desired(4) };
        let Action::Create(layout) = decide(&wanted, &m, &[state("s-0-0", None), state("s-1-0", None)], 7) else {
            panic!("expected Create")
        };
        assert_eq!(layout.initial_replication_factor, 2, "capped at the number of servers");
        assert_eq!(layout.servers[1].internal_address, "10.0.0.1:4569");
    }

    #[test]
    fn laggards_catch_up_before_anything_else() {
        let m = members(2);
        let l2 = layout(2, 4, 0, &m);
        let states = [state("s-0-0", Some(l2.clone())), state("s-1-0", Some(layout(1, 4, 0, &m)))];
        assert_eq!(
            decide(&desired(8), &m, &states, 0),
            Action::Assign { layout: l2, to: vec!["s-1-0".into()], reason: "CatchUp" }
        );
    }

    #[test]
    fn a_shard_count_change_reshards_one_step_at_a_time_then_unfreezes() {
        let m = members(2);
        let l = layout(3, 8, 4, &m);
        let states = [state("s-0-0", Some(l.clone())), state("s-1-0", Some(l.clone()))];
        assert_eq!(decide(&desired(3), &m, &states, 0), Action::Reshard { epoch: 3, target: 4, plan: vec![4, 3] });
        // Frozen by an operator that stopped, and the spec went back: writes resume.
        let frozen = pb::StreamLayout { frozen: true, ..l.clone() };
        let states = [state("s-0-0", Some(frozen.clone())), state("s-1-0", Some(frozen))];
        let Action::Assign { layout, to, reason } = decide(&desired(8), &m, &states, 0) else { panic!("assign") };
        assert_eq!((layout.epoch, layout.frozen, to.len(), reason), (4, false, 2, "Unfrozen"));
    }

    #[test]
    fn settings_and_addresses_move_to_the_next_epoch() {
        let m = members(2);
        let l = layout(1, 2, 0, &m);
        let states = [state("s-0-0", Some(l.clone())), state("s-1-0", Some(l.clone()))];
        let mut wanted = desired(2);
        wanted.retention_hours = 48;
        let Action::Assign { layout, reason, .. } = decide(&wanted, &m, &states, 0) else { panic!("assign") };
        assert_eq!((layout.epoch, layout.retention_hours, reason), (2, 48, "SettingsChanged"));
        let mut moved = m.clone();
        moved[1].address = "10.0.9.9:4567".into();
        let Action::Assign { layout, reason, .. } = decide(&desired(2), &moved, &states, 0) else { panic!("assign") };
        assert_eq!((layout.servers[1].address.as_str(), reason), ("10.0.9.9:4567", "ServersChanged"));
        assert_eq!(decide(&desired(2), &m, &states, 0), Action::Steady);
    }
}
