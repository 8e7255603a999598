//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several operator replicas
//! exactly one reconciles. The holder renews the lease every third of its duration; another
//! replica takes it only once it has not been renewed for the whole duration. A leader that
//! cannot renew in time stops (the process exits and is restarted) rather than risk two leaders.
//! Every write is a compare-and-swap on the Lease's resourceVersion.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ObjectMeta, PostParams};

/// How long a lease lasts without renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);

/// One replica's claim on the lease `name` in `namespace`.
#[derive(Clone)]
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
}

/// Whether `lease` may be taken by `identity` at `now`: free, ours, or expired.
pub fn takeable(lease: &LeaseSpec, identity: &str, now: Timestamp) -> bool {
    let holder = lease.holder_identity.as_deref().unwrap_or_default();
    if holder.is_empty() || holder == identity {
        return true;
    }
    let duration = SignedDuration::from_secs(i64::from(lease.lease_duration_seconds.unwrap_or(0)));
    lease.renew_time.as_ref().is_none_or(|renewed| renewed.0 + duration < now)
}

impl Elector {
    /// A claim as `identity` on the lease `name` in `namespace`.
    pub fn new(client: kube::Client, namespace: &str, name: &str, identity: &str) -> Self {
        Self { api: Api::namespaced(client, namespace), name: name.to_owned(), identity: identity.to_owned() }
    }

    fn spec(&self, now: Timestamp, previous: Option<&LeaseSpec>) -> LeaseSpec {
        let ours = previous.and_then(|p| p.holder_identity.as_deref()) == Some(self.identity.as_str());
        let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(i32::try_from(LEASE_DURATION.as_secs()).unwrap_or(15)),
            acquire_time: if ours { previous.and_then(|p| p.acquire_time.clone()) } else { Some(MicroTime(now)) },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if ours { transitions } else { transitions + 1 }),
            ..LeaseSpec::default()
        }
    }

    /// Takes or renews the lease; true when this replica holds it now.
    pub async fn try_acquire(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        match self.api.get_opt(&self.name).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta { name: Some(self.name.clone()), ..ObjectMeta::default() },
                    spec: Some(self.spec(now, None)),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                    Err(err) => Err(err),
                }
            }
            Some(mut lease) => {
                let current = lease.spec.clone().unwrap_or_default();
                if !takeable(&current, &self.identity, now) {
                    return Ok(false);
                }
                lease.spec = Some(self.spec(now, Some(&current)));
                // resourceVersion is kept: a concurrent writer makes this a 409, not a second leader.
                match self.api.replace(&self.name, &PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                    Err(err) => Err(err),
                }
            }
        }
    }

    /// Waits until this replica holds the lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire().await {
                Ok(true) => return,
                Ok(false) => tracing::info!(lease = %self.name, "another operator leads; waiting"),
                Err(err) => tracing::warn!(lease = %self.name, cause = %err, "cannot read the leader lease"),
            }
            tokio::time::sleep(LEASE_DURATION / 5).await;
        }
    }

    /// Renews the lease until a renewal fails for longer than the lease lasts; returns then.
    pub async fn keep(&self) {
        let mut last_renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(LEASE_DURATION / 3).await;
            // A renewal that hangs (an apiserver that stopped answering) counts as failed:
            // the lease's end must be noticed before the others may take it.
            match tokio::time::timeout(LEASE_DURATION / 3, self.try_acquire()).await {
                Ok(Ok(true)) => last_renewed = tokio::time::Instant::now(),
                Ok(Ok(false)) => {
                    tracing::error!(lease = %self.name, "leadership lost to another operator");
                    return;
                }
                Ok(Err(err)) => tracing::warn!(lease = %self.name, cause = %err, "cannot renew the leader lease"),
                Err(_) => tracing::warn!(lease = %self.name, "renewing the leader lease timed out"),
            }
            // Stop before the lease can expire for the others.
            if last_renewed.elapsed() > LEASE_DURATION * 2 / 3 {
                tracing::error!(lease = %self.name, "leader lease not renewed in time");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_takeable_when_free_ours_or_expired() {
        let now = Timestamp::from_second(1_000).expect("time");
        let held = |by: &str, renewed: i64| LeaseSpec {
            holder_identity: Some(by.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(Timestamp::from_second(renewed).expect("time"))),
            ..LeaseSpec::default()
        };
        assert!(takeable(&LeaseSpec::default(), "a", now));
        assert!(takeable(&held("a", 999), "a", now));
        assert!(!takeable(&held("b", 990), "a", now), "renewed 10 s ago, lasts 15 s");
        assert!(takeable(&held("b", 980), "a", now), "expired");
    }
}
