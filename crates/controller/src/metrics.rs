//! What the router reports to the autoscaler: per-revision samples once a second and
//! activations the moment a request finds no ready replica.

use std::time::{Duration, Instant};

/// One second (or `interval`) of one revision's traffic, as Knative's queue-proxy reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct RevisionSample {
    pub revision: String,
    /// When the interval ended.
    pub at: Instant,
    /// The length of the interval the sample covers.
    pub interval: Duration,
    /// Time-weighted average of requests in flight (queued in the activator included).
    pub average_concurrency: f64,
    /// Requests that arrived in the interval.
    pub requests: u64,
}

/// Events the router sends to the control plane.
#[derive(Clone, Debug, PartialEq)]
pub enum RouterEvent {
    /// A periodic sample.
    Sample(RevisionSample),
    /// A request arrived at a revision with no ready replica: scale it from zero now, not at
    /// the next autoscaler tick.
    Activation { revision: String, at: Instant, queued: usize },
}
