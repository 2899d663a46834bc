//! Leader election over a `coordination.k8s.io/v1` Lease, so two controller replicas never
//! reconcile at once.
//!
//! A replica holds the lease while it renews it within `leaseDurationSeconds`; another takes
//! it only once the holder's `renewTime` is older than that. Every write is a replace with
//! the lease's `resourceVersion`, so two replicas racing for an expired lease cannot both
//! win: the loser gets a 409 conflict and stays a follower.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

/// What one election attempt decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Election {
    /// This replica holds the lease until at least the next renewal.
    Leader,
    /// Another replica (`holder`) holds it.
    Follower { holder: String },
}

/// Whether `lease` may be taken by `identity` at `now`: it is unheld, ours, or expired.
pub fn can_acquire(lease: &LeaseSpec, identity: &str, now: Timestamp) -> bool {
    match lease.holder_identity.as_deref() {
        None | Some("") => true,
        Some(h) if h == identity => true,
        Some(_) => {
            let duration = i64::from(lease.lease_duration_seconds.unwrap_or(15));
            match &lease.renew_time {
                None => true,
                Some(MicroTime(renewed)) => now.as_second() - renewed.as_second() > duration,
            }
        }
    }
}

/// The Lease `name` in `namespace` contested by `identity`.
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

impl LeaderElector {
    pub fn new(api: Api<Lease>, name: &str, identity: &str, duration: Duration) -> LeaderElector {
        LeaderElector { api, name: name.into(), identity: identity.into(), duration }
    }

    /// One attempt: create, renew or take over the lease, or see who holds it.
    pub async fn try_acquire(&self) -> Result<Election, kube::Error> {
        let now = Timestamp::now();
        let fresh = |transitions: i32, acquire: Option<MicroTime>| LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration.as_secs() as i32),
            acquire_time: acquire.or(Some(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        };
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.name.clone()), ..ObjectMeta::default() },
                spec: Some(fresh(0, None)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Election::Leader),
                Err(kube::Error::Api(e)) if e.is_conflict() => {
                    Ok(Election::Follower { holder: String::new() })
                }
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        if !can_acquire(&spec, &self.identity, now) {
            return Ok(Election::Follower { holder: spec.holder_identity.unwrap_or_default() });
        }
        let ours = spec.holder_identity.as_deref() == Some(&self.identity);
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!ours);
        lease.spec = Some(fresh(transitions, if ours { spec.acquire_time } else { None }));
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(Election::Leader),
            Err(kube::Error::Api(e)) if e.is_conflict() => {
                Ok(Election::Follower { holder: spec.holder_identity.unwrap_or_default() })
            }
            Err(e) => Err(e),
        }
    }

    /// Waits until this replica leads (retrying every third of the lease duration; an API
    /// error is logged and retried the same way).
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire().await {
                Ok(Election::Leader) => return,
                Ok(Election::Follower { holder }) => tracing::debug!(%holder, "following"),
                Err(e) => tracing::warn!(error = %e, "leader election failed; retrying"),
            }
            tokio::time::sleep(self.duration / 3).await;
        }
    }

    /// The renewal period.
    pub fn renew_every(&self) -> Duration {
        self.duration / 3
    }

    /// Waits for the lease, then runs `work` while renewing it every [`Self::renew_every`].
    /// Returns when `work` ends, or with [`Lost`] as soon as another replica holds the lease
    /// or no renewal has succeeded for a whole lease duration (the API server unreachable):
    /// the caller must stop reconciling then (the process exits and its Deployment restarts
    /// it as a follower).
    pub async fn lead<F: std::future::Future<Output = ()>>(&self, work: F) -> Result<(), Lost> {
        self.acquire().await;
        tracing::info!(identity = %self.identity, lease = %self.name, "leading");
        let mut renewed = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(self.renew_every());
        tick.tick().await;
        tokio::pin!(work);
        loop {
            tokio::select! {
                () = &mut work => return Ok(()),
                _ = tick.tick() => match self.try_acquire().await {
                    Ok(Election::Leader) => renewed = tokio::time::Instant::now(),
                    Ok(Election::Follower { holder }) => {
                        return Err(Lost { reason: format!("held by {holder:?}"), holder: Some(holder) });
                    }
                    Err(e) if renewed.elapsed() >= self.duration => {
                        return Err(Lost { holder: None, reason: format!("not renewed for {:?}: {e}", self.duration) });
                    }
                    Err(e) => tracing::warn!(error = %e, "lease renewal failed; retrying"),
                },
            }
        }
    }
}

/// Leadership was lost.
#[derive(Debug, thiserror::Error)]
#[error("lost the leader lease: {reason}")]
pub struct Lost {
    /// The replica now holding the lease, when known.
    pub holder: Option<String>,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_held_lease_is_taken_only_once_expired() {
        let now = Timestamp::from_second(1_000).unwrap();
        assert!(!can_acquire(&spec("a", 990), "b", now));
        assert!(can_acquire(&spec("a", 984), "b", now));
        assert!(can_acquire(&spec("b", 990), "b", now));
        assert!(can_acquire(&LeaseSpec::default(), "b", now));
    }
}
