//! A worker's view of the lease table: leases it holds (with the counter every write of theirs
//! must present) and the pure choice of which leases to take or steal.

use std::collections::{BTreeMap, HashMap};

use shardline_proto::v1 as pb;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// True when a status is a lost compare-and-set.
pub(super) fn is_conflict(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::Aborted
        || status.metadata().get("x-shardline-error").and_then(|v| v.to_str().ok()) == Some("LeaseConflictException")
}

/// A lease this worker holds.
#[derive(Debug)]
pub(super) struct HeldLease {
    pub application: String,
    pub stream: String,
    pub shard_id: String,
    pub owner: String,
    /// The counter after this worker's last write; renewals and checkpoints serialise on it.
    pub counter: Mutex<u64>,
}

impl HeldLease {
    pub(super) fn request(&self, expected_counter: u64) -> pb::UpdateLeaseRequest {
        pb::UpdateLeaseRequest {
            application: self.application.clone(),
            stream_name: self.stream.clone(),
            shard_id: self.shard_id.clone(),
            expected_counter,
            owner: self.owner.clone(),
        }
    }
}

/// When each lease's counter last moved, as this worker observed it.
#[derive(Debug, Default)]
pub(super) struct Observations {
    seen: HashMap<String, (u64, Instant)>,
}

impl Observations {
    /// Records the listed counters; returns the leases whose holder stopped renewing for longer
    /// than `failover`, plus the unowned ones.
    pub(super) fn expired(&mut self, leases: &[pb::Lease], now: Instant, failover: std::time::Duration) -> Vec<String> {
        let mut expired = Vec::new();
        for lease in leases {
            let entry = self.seen.entry(lease.lease_key.clone()).or_insert((lease.lease_counter, now));
            if entry.0 != lease.lease_counter {
                *entry = (lease.lease_counter, now);
            }
            if lease.lease_owner.is_none() || now.duration_since(entry.1) > failover {
                expired.push(lease.lease_key.clone());
            }
        }
        expired
    }
}

fn is_done(lease: &pb::Lease) -> bool {
    lease.checkpoint.as_ref().is_some_and(|c| c.kind == i32::from(pb::checkpoint::Kind::ShardEnd))
}

/// Leases that may be processed now: not finished, and every parent finished (or gone).
pub(super) fn eligible(leases: &[pb::Lease]) -> Vec<&pb::Lease> {
    let by_key: HashMap<&str, &pb::Lease> = leases.iter().map(|l| (l.lease_key.as_str(), l)).collect();
    leases
        .iter()
        .filter(|l| !is_done(l))
        .filter(|l| l.parent_shard_ids.iter().all(|p| by_key.get(p.as_str()).is_none_or(|parent| is_done(parent))))
        .collect()
}

/// What a worker should take this round: free or expired eligible leases up to its fair share,
/// or else one lease stolen from the most loaded worker when that one holds more than the share.
pub(super) fn plan_takes(
    leases: &[pb::Lease],
    expired: &[String],
    me: &str,
    held: usize,
    max_leases: usize,
) -> Vec<pb::Lease> {
    let eligible = eligible(leases);
    let mut owners: BTreeMap<&str, usize> = BTreeMap::new();
    owners.insert(me, 0);
    for lease in &eligible {
        if let Some(owner) = lease.lease_owner.as_deref() {
            if !expired.contains(&lease.lease_key) {
                *owners.entry(owner).or_default() += 1;
            }
        }
    }
    let target = eligible.len().div_ceil(owners.len()).min(max_leases);
    if held >= target {
        return Vec::new();
    }
    let mut takes: Vec<pb::Lease> = eligible
        .iter()
        .filter(|l| l.lease_owner.as_deref() != Some(me) && expired.contains(&l.lease_key))
        .take(target - held)
        .map(|l| (*l).clone())
        .collect();
    if takes.is_empty() {
        let busiest = owners.iter().filter(|(owner, _)| **owner != me).max_by_key(|(_, count)| **count);
        if let Some((victim, count)) = busiest {
            if *count > target {
                takes.extend(eligible.iter().find(|l| l.lease_owner.as_deref() == Some(*victim)).map(|l| (*l).clone()));
            }
        }
    }
    takes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(key: &str, owner: Option<&str>) -> pb::Lease {
        pb::Lease { lease_key: key.into(), lease_owner: owner.map(str::to_owned), ..Default::default() }
    }

    #[test]
    fn takes_free_leases_up_to_the_fair_share_then_steals() {
        let leases: Vec<_> = (0..8).map(|i| lease(&format!("s{i}"), None)).collect();
        let all: Vec<String> = leases.iter().map(|l| l.lease_key.clone()).collect();
        assert_eq!(plan_takes(&leases, &all, "a", 0, usize::MAX).len(), 8, "alone, a takes all");
        let owned: Vec<_> = (0..8).map(|i| lease(&format!("s{i}"), Some(if i < 6 { "a" } else { "b" }))).collect();
        let steal = plan_takes(&owned, &[], "c", 0, usize::MAX);
        assert_eq!(steal.len(), 1, "c steals one from the busiest");
        assert_eq!(steal[0].lease_owner.as_deref(), Some("a"));
        let even: Vec<_> = (0..8).map(|i| lease(&format!("s{i}"), Some(["a", "b", "c"][i % 3]))).collect();
        assert!(plan_takes(&even, &[], "c", 2, usize::MAX).is_empty(), "3/3/2 is balanced");
    }

    #[test]
    fn children_wait_for_their_parents() {
        let mut parent = lease("p", None);
        let mut child = lease("c", None);
        child.parent_shard_ids = vec!["p".into()];
        assert_eq!(eligible(&[parent.clone(), child.clone()]).len(), 1);
        parent.checkpoint = Some(pb::Checkpoint { kind: pb::checkpoint::Kind::ShardEnd.into(), ..Default::default() });
        let leases = [parent, child];
        let ready = eligible(&leases);
        assert_eq!(ready.iter().map(|l| l.lease_key.as_str()).collect::<Vec<_>>(), vec!["c"]);
    }
}
