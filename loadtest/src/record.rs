//! What a scenario measures: one [`Sample`] per request and one [`Tick`] per poll of the
//! platform, collected by a cloneable [`Recorder`] that the load tasks and the poller share.
//!
//! Times are milliseconds since the recorder's start. A request's time is its *intended*
//! start (the open-loop schedule's slot, or the send time in a closed loop) and its latency
//! runs from that instant, so a stalled server shows up as latency instead of as requests
//! that were never sent (coordinated omission).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// The wire protocol of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Rest,
    Grpc,
}

/// One request: when it was meant to start, how long it took, how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Intended start, ms since the run began.
    pub t_ms: f64,
    /// From the intended start to the end of the response, µs.
    pub latency_us: u64,
    /// HTTP status; for gRPC 200 when OK, else the gRPC code + 1000; 0: no response at all
    /// (connection error or client timeout).
    pub status: u16,
    /// The `x-oxserve-revision` response header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    pub protocol: Protocol,
    /// The model called when a scenario spreads requests over several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

impl Sample {
    /// A 2xx answer.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The time the response ended, ms since the run began.
    pub fn end_ms(&self) -> f64 {
        self.t_ms + self.latency_us as f64 / 1000.0
    }
}

/// The status recorded for a gRPC code (`0` OK becomes 200).
pub fn grpc_status(code: i32) -> u16 {
    if code == 0 { 200 } else { 1000 + code as u16 }
}

/// One revision as the platform's api reported it at a tick.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RevisionTick {
    pub name: String,
    pub ready: u32,
    pub desired: u32,
    pub traffic: u32,
    /// The KPA's stable-window average of its scaling metric (requests in flight at the
    /// router, revision total) at its last decision, where the api reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kpa_stable: Option<f64>,
    /// The panic-window average, likewise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kpa_panic: Option<f64>,
}

/// One poll of the platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tick {
    pub t_ms: f64,
    pub revisions: Vec<RevisionTick>,
    /// Requests the load generator had in flight.
    pub in_flight: i64,
    /// The router's activator queue depth (`oxserve_router_queue_depth`, summed).
    pub queue_depth: i64,
}

impl Tick {
    /// Ready replicas over every revision.
    pub fn ready(&self) -> u32 {
        self.revisions.iter().map(|r| r.ready).sum()
    }

    /// Desired replicas over every revision.
    pub fn desired(&self) -> u32 {
        self.revisions.iter().map(|r| r.desired).sum()
    }

    /// The KPA's stable-window average summed over the revisions that report one; `None`
    /// when none does (a platform whose api does not show it).
    pub fn kpa_stable(&self) -> Option<f64> {
        let v: Vec<f64> = self.revisions.iter().filter_map(|r| r.kpa_stable).collect();
        (!v.is_empty()).then(|| v.iter().sum())
    }

    /// The panic-window average, likewise.
    pub fn kpa_panic(&self) -> Option<f64> {
        let v: Vec<f64> = self.revisions.iter().filter_map(|r| r.kpa_panic).collect();
        (!v.is_empty()).then(|| v.iter().sum())
    }
}

/// A mark on the timeline: a load step, an apply, a replica kill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub t_ms: f64,
    pub what: String,
}

#[derive(Default)]
struct Inner {
    samples: Vec<Sample>,
    ticks: Vec<Tick>,
    events: Vec<Event>,
}

/// Shared by every load task and the poller; cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    start: Instant,
    in_flight: Arc<AtomicI64>,
    inner: Arc<Mutex<Inner>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Recorder {
        Recorder { start: Instant::now(), in_flight: Arc::default(), inner: Arc::default() }
    }

    /// The instant time 0 stands for.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Milliseconds from the start to `at`.
    pub fn ms(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.start).as_secs_f64() * 1000.0
    }

    /// Milliseconds from the start to now.
    pub fn now_ms(&self) -> f64 {
        self.ms(Instant::now())
    }

    /// Counts a request in flight until the guard drops.
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.in_flight.clone())
    }

    /// Requests in flight now.
    pub fn in_flight_now(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn sample(&self, sample: Sample) {
        self.inner.lock().samples.push(sample);
    }

    pub fn tick(&self, tick: Tick) {
        self.inner.lock().ticks.push(tick);
    }

    /// Marks `what` at the current time.
    pub fn event(&self, what: impl Into<String>) {
        let event = Event { t_ms: self.now_ms(), what: what.into() };
        self.inner.lock().events.push(event);
    }

    /// Everything recorded so far, samples sorted by intended start.
    pub fn snapshot(&self) -> (Vec<Sample>, Vec<Tick>, Vec<Event>) {
        let inner = self.inner.lock();
        let mut samples = inner.samples.clone();
        samples.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
        (samples, inner.ticks.clone(), inner.events.clone())
    }
}

/// A request in flight; decrements the count when dropped.
pub struct InFlight(Arc<AtomicI64>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_counts_until_dropped() {
        let r = Recorder::new();
        let a = r.in_flight();
        let b = r.in_flight();
        assert_eq!(r.in_flight_now(), 2);
        drop(a);
        assert_eq!(r.in_flight_now(), 1);
        drop(b);
        assert_eq!(r.in_flight_now(), 0);
    }

    #[test]
    fn snapshot_sorts_by_intended_start() {
        let r = Recorder::new();
        for t in [30.0, 10.0, 20.0] {
            r.sample(Sample {
                t_ms: t,
                latency_us: 1000,
                status: 200,
                revision: None,
                protocol: Protocol::Rest,
                model: None,
            });
        }
        let (samples, _, _) = r.snapshot();
        let times: Vec<f64> = samples.iter().map(|s| s.t_ms).collect();
        assert_eq!(times, [10.0, 20.0, 30.0]);
        assert_eq!(samples[0].end_ms(), 11.0);
    }

    #[test]
    fn grpc_codes() {
        assert_eq!(grpc_status(0), 200);
        assert_eq!(grpc_status(14), 1014);
    }
}
