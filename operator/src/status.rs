//! Building a `Stream`'s status from what the shard-servers report: phase, conditions, open
//! shard count, shard map with the serving server. Pure: the reconciler writes the result with
//! server-side apply.

use std::collections::BTreeMap;

use shardline_proto::v1 as pb;

use crate::crd::condition::{self, Condition};
use crate::crd::stream::{Phase, ShardStatus, StreamStatus};

/// What one reconcile pass observed.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    /// The stream as a shard-server describes it, when it exists there.
    pub description: Option<&'a pb::StreamDescription>,
    /// Shard id → server pod.
    pub placement: &'a BTreeMap<String, String>,
    /// Shard-server pods that are Ready, out of those wanted.
    pub ready_servers: usize,
    /// Shard-server pods wanted.
    pub wanted_servers: usize,
    /// The shard count the spec asks for.
    pub wanted_shards: u32,
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

/// The next status, given the previous one (whose condition times are kept when unchanged).
pub fn build(previous: Option<&StreamStatus>, observed: &Observed<'_>) -> StreamStatus {
    let mut conditions = previous.map(|p| p.conditions.clone()).unwrap_or_default();
    let shard_map: Vec<ShardStatus> = observed
        .description
        .map(|d| {
            d.shards
                .iter()
                .map(|s| ShardStatus {
                    id: s.shard_id.clone(),
                    starting_hash_key: s.starting_hash_key.clone(),
                    ending_hash_key: s.ending_hash_key.clone(),
                    state: if s.ending_sequence_number.is_some() { "closed" } else { "open" }.into(),
                    parents: s.parent_shard_id.iter().chain(s.adjacent_parent_shard_id.iter()).cloned().collect(),
                    server: observed.placement.get(&s.shard_id).cloned(),
                })
                .collect()
        })
        .unwrap_or_default();
    let open = u32::try_from(shard_map.iter().filter(|s| s.state == "open").count()).unwrap_or(u32::MAX);
    let server_status = observed.description.map(|d| pb::StreamStatus::try_from(d.status).unwrap_or_default());
    let servers_ready = observed.ready_servers >= observed.wanted_servers && observed.wanted_servers > 0;
    let resharding = open != observed.wanted_shards || server_status == Some(pb::StreamStatus::Updating);
    let phase = match server_status {
        None | Some(pb::StreamStatus::Creating | pb::StreamStatus::Unspecified) => Phase::Creating,
        Some(pb::StreamStatus::Deleting) => Phase::Deleting,
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
    let reshard_message = format!("{open} open shards, {} wanted", observed.wanted_shards);
    let reshard_reason = if resharding { "Resharding" } else { "ShardCountReached" };
    condition::set(&mut conditions, condition("Resharding", resharding, reshard_reason, reshard_message, observed));
    let degraded = observed.ready_servers < observed.wanted_servers && observed.ready_servers > 0;
    let degraded_message = format!("{} of {} shard-servers ready", observed.ready_servers, observed.wanted_servers);
    let degraded_reason = if degraded { "ServersMissing" } else { "AllServersReady" };
    condition::set(&mut conditions, condition("Degraded", degraded, degraded_reason, degraded_message, observed));
    StreamStatus {
        phase: Some(phase),
        conditions,
        observed_generation: observed.generation,
        shards: open,
        selector: Some(observed.selector.clone()),
        shard_map,
        endpoint: Some(observed.endpoint.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn description(status: pb::StreamStatus, open: usize, closed: usize) -> pb::StreamDescription {
        let shard = |i: usize, closed: bool| pb::Shard {
            shard_id: format!("shardId-{i:012}"),
            starting_hash_key: "0".into(),
            ending_hash_key: "1".into(),
            starting_sequence_number: "4".into(),
            ending_sequence_number: closed.then(|| "5".into()),
            parent_shard_id: None,
            adjacent_parent_shard_id: None,
        };
        pb::StreamDescription {
            stream_name: "s".into(),
            status: status.into(),
            shards: (0..closed)
                .map(|i| shard(i, true))
                .chain((closed..closed + open).map(|i| shard(i, false)))
                .collect(),
            ..Default::default()
        }
    }

    fn observed<'a>(
        d: Option<&'a pb::StreamDescription>,
        placement: &'a BTreeMap<String, String>,
        ready: usize,
        wanted: u32,
        now: &'a str,
    ) -> Observed<'a> {
        Observed {
            description: d,
            placement,
            ready_servers: ready,
            wanted_servers: 3,
            wanted_shards: wanted,
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
        let placement = BTreeMap::from([("shardId-000000000000".to_owned(), "s-0-0".to_owned())]);
        let creating = build(None, &observed(None, &placement, 0, 4, "t1"));
        assert_eq!(creating.phase, Some(Phase::Creating));
        assert_eq!(get(&creating, "Ready").status, "False");

        let d = description(pb::StreamStatus::Active, 4, 0);
        let active = build(Some(&creating), &observed(Some(&d), &placement, 3, 4, "t2"));
        assert_eq!(active.phase, Some(Phase::Active));
        assert_eq!(active.shards, 4);
        assert_eq!(get(&active, "Ready").status, "True");
        assert_eq!(get(&active, "Ready").last_transition_time, "t2");
        assert_eq!(active.shard_map[0].server.as_deref(), Some("s-0-0"));

        let d = description(pb::StreamStatus::Active, 4, 2);
        let scaling = build(Some(&active), &observed(Some(&d), &placement, 2, 8, "t3"));
        assert_eq!(scaling.phase, Some(Phase::Updating));
        assert_eq!(get(&scaling, "Resharding").status, "True");
        assert_eq!(get(&scaling, "Degraded").status, "True");
        assert_eq!(scaling.shard_map.iter().filter(|s| s.state == "closed").count(), 2);

        let again = build(Some(&scaling), &observed(Some(&d), &placement, 2, 8, "t4"));
        assert_eq!(get(&again, "Resharding").last_transition_time, "t3", "unchanged status keeps its time");
    }
}
