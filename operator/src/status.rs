//! Building a `Stream`'s status from what the shard-servers report: phase, conditions, open
//! shard count, shard map with the serving server (and, for replicated shards, their replicas
//! and leader), the under-replicated count. Pure: the reconciler writes the result with
//! server-side apply.

use shardline_proto::v1 as pb;

use crate::crd::condition::{self, Condition};
use crate::crd::stream::{Phase, ShardStatus, StreamStatus};

/// What one reconcile pass observed.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    /// The newest layout the shard-servers hold, once the stream exists on them.
    pub layout: Option<&'a pb::StreamLayout>,
    /// What the Ready shard-servers report (their replicas' leaders and configurations).
    pub states: &'a [pb::ClusterStateResponse],
    /// Shard-server pods that are Ready, out of those wanted.
    pub ready_servers: usize,
    /// Shard-server pods wanted.
    pub wanted_servers: usize,
    /// The shard count the spec asks for.
    pub wanted_shards: u32,
    /// Remaining UpdateShardCount steps (empty when none).
    pub plan: Vec<u32>,
    /// The resource is being deleted.
    pub deleting: bool,
    /// Why the last step failed, when it did.
    pub failure: Option<String>,
    /// The resource's generation.
    pub generation: Option<i64>,
    /// Now, RFC 3339.
    pub now: &'a str,
    /// The Kinesis endpoint (client Service).
    pub endpoint: String,
    /// The label selector of the stream's pods.
    pub selector: String,
}

fn condition(kind: &str, status: bool, reason: &str, message: String, observed: &Observed<'_>) -> Condition {
    Condition {
        kind: kind.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: reason.into(),
        message,
        last_transition_time: observed.now.into(),
        observed_generation: observed.generation,
    }
}

fn shard_id(index: u32) -> String {
    format!("shardId-{index:012}")
}

/// The leader of replicated shard `index` most of its reporting replicas name.
fn leader_of(states: &[pb::ClusterStateResponse], index: u32) -> Option<String> {
    let mut votes: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for replica in states.iter().flat_map(|s| &s.replicas).filter(|r| r.index == index && !r.leader.is_empty()) {
        *votes.entry(replica.leader.as_str()).or_default() += 1;
    }
    votes.into_iter().max_by_key(|(_, n)| *n).map(|(leader, _)| leader.to_owned())
}

/// True when replicated shard `shard` has fewer live replicas than its set names: one of its
/// servers does not report (not Ready), or a reporting replica's configuration is not the set
/// yet (a change under way).
fn under_replicated(states: &[pb::ClusterStateResponse], shard: &pb::ShardLayout) -> bool {
    let wanted: std::collections::BTreeSet<&String> = shard.replicas.iter().collect();
    let reporting: Vec<&pb::ReplicaState> =
        states.iter().flat_map(|s| &s.replicas).filter(|r| r.index == shard.index).collect();
    let up = shard.replicas.iter().all(|id| states.iter().any(|s| &s.server_id == id));
    let configured = reporting
        .iter()
        .all(|r| r.learners.is_empty() && r.voters.iter().collect::<std::collections::BTreeSet<_>>() == wanted);
    !(up && configured)
}

/// The next status, given the previous one (whose condition times are kept when unchanged).
pub fn build(previous: Option<&StreamStatus>, observed: &Observed<'_>) -> StreamStatus {
    let mut conditions = previous.map(|p| p.conditions.clone()).unwrap_or_default();
    let shard_map: Vec<ShardStatus> = observed
        .layout
        .map(|layout| {
            layout
                .shards
                .iter()
                .map(|s| ShardStatus {
                    id: shard_id(s.index),
                    starting_hash_key: s.starting_hash_key.clone(),
                    ending_hash_key: s.ending_hash_key.clone(),
                    state: if s.ending_counter.is_some() { "closed" } else { "open" }.into(),
                    parents: s.parent.iter().chain(s.adjacent_parent.iter()).map(|p| shard_id(*p)).collect(),
                    server: (!s.owner.is_empty()).then(|| s.owner.clone()),
                    replicas: s.replicas.clone(),
                    leader: if s.replicas.is_empty() { None } else { leader_of(observed.states, s.index) },
                })
                .collect()
        })
        .unwrap_or_default();
    let under_replicated = observed.layout.map_or(0, |layout| {
        let shards = layout.shards.iter().filter(|s| s.ending_counter.is_none() && !s.replicas.is_empty());
        u32::try_from(shards.filter(|s| under_replicated(observed.states, s)).count()).unwrap_or(u32::MAX)
    });
    let open = u32::try_from(shard_map.iter().filter(|s| s.state == "open").count()).unwrap_or(u32::MAX);
    let servers_ready = observed.ready_servers >= observed.wanted_servers && observed.wanted_servers > 0;
    let frozen = observed.layout.is_some_and(|l| l.frozen);
    let resharding = observed.layout.is_some() && (open != observed.wanted_shards || frozen);
    let phase = match observed.layout {
        _ if observed.deleting => Phase::Deleting,
        // The stream could not be created: the user has to look (see Degraded).
        None if observed.failure.is_some() => Phase::Failed,
        None => Phase::Creating,
        Some(_) if resharding => Phase::Updating,
        Some(_) => Phase::Active,
    };
    let ready = servers_ready && phase == Phase::Active;
    let ready_message = format!(
        "{}/{} shard-servers ready; {open} of {} shards open",
        observed.ready_servers, observed.wanted_servers, observed.wanted_shards
    );
    let ready_reason = if ready {
        "StreamActive"
    } else if servers_ready {
        "StreamNotActive"
    } else {
        "ServersNotReady"
    };
    condition::set(&mut conditions, condition("Ready", ready, ready_reason, ready_message, observed));
    let reshard_message = match observed.plan.as_slice() {
        [] => format!("{open} open shards, {} wanted", observed.wanted_shards),
        steps => format!("{open} open shards, {} wanted; steps {steps:?}", observed.wanted_shards),
    };
    let reshard_reason = if resharding { "Resharding" } else { "ShardCountReached" };
    condition::set(&mut conditions, condition("Resharding", resharding, reshard_reason, reshard_message, observed));
    let missing = observed.ready_servers < observed.wanted_servers && observed.ready_servers > 0;
    let (degraded, degraded_reason, degraded_message) = match &observed.failure {
        Some(failure) => (true, "StepFailed", failure.clone()),
        None if missing => (
            true,
            "ServersMissing",
            format!("{} of {} shard-servers ready", observed.ready_servers, observed.wanted_servers),
        ),
        None => (
            false,
            "AllServersReady",
            format!("{} of {} shard-servers ready", observed.ready_servers, observed.wanted_servers),
        ),
    };
    condition::set(&mut conditions, condition("Degraded", degraded, degraded_reason, degraded_message, observed));
    StreamStatus {
        phase: Some(phase),
        conditions,
        observed_generation: observed.generation,
        shards: open,
        selector: Some(observed.selector.clone()),
        shard_map,
        endpoint: Some(observed.endpoint.clone()),
        epoch: observed.layout.map(|l| l.epoch),
        retention_hours: observed.layout.map(|l| l.retention_hours),
        reshard_plan: observed.plan.clone(),
        under_replicated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(open: usize, closed: usize, frozen: bool) -> pb::StreamLayout {
        pb::StreamLayout { frozen, ..crate::fixtures::layout(3, open, closed, &[("s-0-0", "10.0.0.1:4567")]) }
    }

    fn observed<'a>(layout: Option<&'a pb::StreamLayout>, ready: usize, wanted: u32, now: &'a str) -> Observed<'a> {
        Observed {
            layout,
            states: &[],
            ready_servers: ready,
            wanted_servers: 3,
            wanted_shards: wanted,
            plan: Vec::new(),
            deleting: false,
            failure: None,
            generation: Some(2),
            now,
            endpoint: "http://s.default.svc:4567".into(),
            selector: "app.kubernetes.io/instance=s".into(),
        }
    }

    fn get<'a>(status: &'a StreamStatus, kind: &str) -> &'a Condition {
        status.conditions.iter().find(|c| c.kind == kind).expect("condition")
    }

    #[test]
    fn phases_and_conditions_follow_the_servers_and_the_shard_count() {
        let creating = build(None, &observed(None, 0, 4, "t1"));
        assert_eq!(creating.phase, Some(Phase::Creating));
        let mut refused = observed(None, 3, 4, "t1");
        refused.failure = Some("shard-server s-0-0 refused Assign".into());
        assert_eq!(build(None, &refused).phase, Some(Phase::Failed));
        assert_eq!(get(&creating, "Ready").status, "False");

        let l = layout(4, 0, false);
        let active = build(Some(&creating), &observed(Some(&l), 3, 4, "t2"));
        assert_eq!(active.phase, Some(Phase::Active));
        assert_eq!((active.shards, active.epoch), (4, Some(3)));
        assert_eq!(get(&active, "Ready").status, "True");
        assert_eq!(get(&active, "Ready").last_transition_time, "t2");
        assert_eq!(active.shard_map[0].server.as_deref(), Some("s-0-0"));

        let l = layout(4, 2, false);
        let mut scaling_observed = observed(Some(&l), 2, 8, "t3");
        scaling_observed.plan = vec![8];
        let scaling = build(Some(&active), &scaling_observed);
        assert_eq!(scaling.phase, Some(Phase::Updating));
        assert_eq!(get(&scaling, "Resharding").status, "True");
        assert_eq!(get(&scaling, "Degraded").status, "True");
        assert_eq!(scaling.shard_map.iter().filter(|s| s.state == "closed").count(), 2);
        assert_eq!(scaling.shard_map[2].parents, vec!["shardId-000000000000".to_owned()]);
        assert_eq!(scaling.reshard_plan, vec![8]);

        let again = build(Some(&scaling), &observed(Some(&l), 2, 8, "t4"));
        assert_eq!(get(&again, "Resharding").last_transition_time, "t3", "unchanged status keeps its time");

        let frozen = layout(4, 0, true);
        assert_eq!(build(None, &observed(Some(&frozen), 3, 4, "t5")).phase, Some(Phase::Updating));
        let mut failing = observed(Some(&frozen), 3, 4, "t6");
        failing.failure = Some("shard-server s-1-0 refused Freeze".into());
        assert_eq!(get(&build(None, &failing), "Degraded").reason, "StepFailed");
    }

    #[test]
    fn replicated_shards_show_their_replicas_leader_and_whether_they_are_under_replicated() {
        let mut l = layout(2, 0, false);
        let set: Vec<String> = ["s-0-0", "s-1-0", "s-2-0"].map(String::from).to_vec();
        for shard in &mut l.shards {
            shard.replicas.clone_from(&set);
        }
        let replica = |index: u32, voters: &[String]| pb::ReplicaState {
            index,
            leader: "s-1-0".into(),
            last_counter: 0,
            voters: voters.to_vec(),
            learners: Vec::new(),
            appended_bytes: 0,
            last_arrival_ms: 0,
        };
        let state = |id: &str, replicas: Vec<pb::ReplicaState>| pb::ClusterStateResponse {
            server_id: id.into(),
            layout: None,
            owned: Vec::new(),
            replicas,
        };
        let all = [
            state("s-0-0", vec![replica(0, &set), replica(1, &set)]),
            state("s-1-0", vec![replica(0, &set), replica(1, &set)]),
            state("s-2-0", vec![replica(0, &set), replica(1, &set[..2])]),
        ];
        let mut seen = observed(Some(&l), 3, 2, "t1");
        seen.states = &all;
        let status = build(None, &seen);
        assert_eq!(status.shard_map[0].replicas, set);
        assert_eq!(status.shard_map[0].leader.as_deref(), Some("s-1-0"));
        assert_eq!(status.under_replicated, 1, "shard 1 is reconfiguring on s-2-0");
        // A server that does not report leaves every shard it holds under-replicated.
        seen.states = &all[..2];
        assert_eq!(build(None, &seen).under_replicated, 2);
    }
}
