//! The activator: per-revision replica state, admission and buffering.
//!
//! A request at a revision takes a [`Permit`] on one ready replica with a free slot (least
//! requests in flight, ties broken round-robin; `containerConcurrency` is a hard limit per
//! replica). When none is free it waits in the revision's bounded queue (beyond
//! `queue-depth`: 503). When the revision has no ready replica at all, the autoscaler is told
//! at once (`RouterEvent::Activation`) and a poller asks the replicas the table lists but
//! the router has not yet seen ready whether the *model* is ready (V2
//! `/v2/models/{m}/ready`, else V1 `/v1/models/{m}`), every few milliseconds, while requests
//! wait. Waiters are woken by a `Notify` whenever a replica becomes ready, a slot frees, the
//! table changes or the revision is removed (then they are routed again).
//!
//! Everything here is also what the autoscaler reads: requests in flight per revision (queued
//! ones included) and their time-weighted average over each sampling interval.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::uri::Authority;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::metrics::RevisionMetrics;

/// One revision's live state; it outlives route-table changes that keep the revision.
pub(crate) struct Revision {
    pub name: String,
    pub service: String,
    settings: ArcSwap<Settings>,
    queued: AtomicUsize,
    in_flight: AtomicUsize,
    notify: Notify,
    removed: AtomicBool,
    polling: AtomicBool,
    last_activation: Mutex<Option<Instant>>,
    stats: Mutex<Stats>,
    round_robin: AtomicUsize,
    pub metrics: RevisionMetrics,
    /// The `x-oxserve-revision` value, made once.
    pub header: http::HeaderValue,
}

/// What the route table says about a revision.
pub(crate) struct Settings {
    pub replicas: Vec<Arc<Replica>>,
    pub container_concurrency: u32,
    pub timeout: Duration,
    /// The model whose readiness gates activation.
    pub model: String,
}

/// One replica of a revision.
pub(crate) struct Replica {
    pub id: String,
    /// The REST base URL as the table gave it.
    pub url: String,
    pub http: Authority,
    pub grpc: Option<Authority>,
    ready: AtomicBool,
    in_flight: AtomicU32,
}

impl Replica {
    pub fn new(
        id: String,
        url: String,
        http: Authority,
        grpc: Option<Authority>,
        ready: bool,
    ) -> Replica {
        Replica { id, url, http, grpc, ready: AtomicBool::new(ready), in_flight: AtomicU32::new(0) }
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    fn try_take(&self, limit: u32) -> bool {
        if limit == 0 {
            self.in_flight.fetch_add(1, Ordering::AcqRel);
            return true;
        }
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1))
            .is_ok()
    }
}

/// Why a request could not take a replica.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The revision left the route table while the request waited: route it again.
    Removed,
    /// The queue is at `queue-depth`.
    QueueFull(usize),
}

/// A request's slot on one replica, released when the response has been sent.
pub(crate) struct Permit {
    pub replica: Arc<Replica>,
    revision: Arc<Revision>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.replica.in_flight.fetch_sub(1, Ordering::AcqRel);
        if self.revision.queued.load(Ordering::Acquire) > 0 {
            self.revision.notify.notify_waiters();
        }
    }
}

/// Counts a request as in flight at its revision (from arrival, queue included, to the end
/// of its response).
pub(crate) struct InFlight {
    revision: Arc<Revision>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.revision.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.revision.stats.lock().change(Instant::now(), -1);
    }
}

struct Queued<'a>(&'a Revision);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        let n = self.0.queued.fetch_sub(1, Ordering::AcqRel) - 1;
        self.0.metrics.queue_depth.set(n as i64);
    }
}

/// What the activator needs from the router to wake a revision.
pub(crate) trait Waker: Send + Sync + 'static {
    /// Tell the autoscaler the revision has requests and no ready replica.
    fn activation(&self, revision: &str, queued: usize);
    /// Whether `replica` reports `model` ready.
    fn check_ready(
        &self,
        replica: Arc<Replica>,
        model: String,
    ) -> futures::future::BoxFuture<'static, bool>;
    fn poll_interval(&self) -> Duration;
    fn queue_depth(&self) -> usize;
}

impl Revision {
    pub fn new(
        name: String,
        service: String,
        settings: Settings,
        metrics: RevisionMetrics,
    ) -> Revision {
        Revision {
            service,
            settings: ArcSwap::from_pointee(settings),
            queued: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            notify: Notify::new(),
            removed: AtomicBool::new(false),
            polling: AtomicBool::new(false),
            last_activation: Mutex::new(None),
            stats: Mutex::new(Stats::new(Instant::now())),
            round_robin: AtomicUsize::new(0),
            metrics,
            header: http::HeaderValue::from_str(&name)
                .unwrap_or_else(|_| http::HeaderValue::from_static("invalid-name")),
            name,
        }
    }

    pub fn settings(&self) -> arc_swap::Guard<Arc<Settings>> {
        self.settings.load()
    }

    /// A new table's view of the revision; waiters look again.
    pub fn set_settings(&self, settings: Settings) {
        self.settings.store(Arc::new(settings));
        self.notify.notify_waiters();
    }

    /// The revision left the table: its waiters are routed again.
    pub fn remove(&self) {
        self.removed.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Counts a request that has arrived at this revision.
    pub fn arrive(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let mut stats = self.stats.lock();
        stats.change(Instant::now(), 1);
        stats.requests += 1;
        InFlight { revision: self.clone() }
    }

    /// The time-weighted average concurrency and the request count since the last sample.
    pub fn sample(&self, now: Instant) -> (Duration, f64, u64) {
        self.stats.lock().take(now)
    }

    /// A slot on a ready replica now, if one is free (never `exclude`).
    fn try_acquire(self: &Arc<Self>, exclude: Option<&Arc<Replica>>) -> Option<Permit> {
        let settings = self.settings.load();
        let replicas = &settings.replicas;
        let n = replicas.len();
        if n == 0 {
            return None;
        }
        let start = self.round_robin.fetch_add(1, Ordering::Relaxed);
        // Least requests in flight first; try the others if its slot is taken meanwhile.
        let mut order: Vec<(u32, usize)> = (0..n)
            .map(|k| (start + k) % n)
            .filter(|&i| {
                replicas[i].is_ready() && exclude.is_none_or(|e| !Arc::ptr_eq(e, &replicas[i]))
            })
            .map(|i| (replicas[i].in_flight.load(Ordering::Acquire), i))
            .collect();
        order.sort_by_key(|&(load, _)| load);
        for (_, i) in order {
            if replicas[i].try_take(settings.container_concurrency) {
                return Some(Permit { replica: replicas[i].clone(), revision: self.clone() });
            }
        }
        None
    }

    fn has_ready(&self) -> bool {
        self.settings.load().replicas.iter().any(|r| r.is_ready())
    }

    /// Waits for a slot on a ready replica (the caller bounds the wait with the revision's
    /// timeout by dropping this future).
    pub async fn acquire(
        self: &Arc<Self>,
        waker: &Arc<dyn Waker>,
        exclude: Option<&Arc<Replica>>,
    ) -> Result<Permit, Refused> {
        let mut queued: Option<Queued<'_>> = None;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_removed() {
                return Err(Refused::Removed);
            }
            if let Some(permit) = self.try_acquire(exclude) {
                return Ok(permit);
            }
            if queued.is_none() {
                let depth = waker.queue_depth();
                let before = self.queued.fetch_add(1, Ordering::AcqRel);
                if before >= depth {
                    self.queued.fetch_sub(1, Ordering::AcqRel);
                    self.metrics.rejected.inc();
                    return Err(Refused::QueueFull(depth));
                }
                self.metrics.queue_depth.set(before as i64 + 1);
                queued = Some(Queued(self));
            }
            if !self.has_ready() {
                self.activate(waker);
            }
            if self.settings.load().replicas.iter().any(|r| !r.is_ready()) {
                self.start_polling(waker);
            }
            notified.await;
        }
    }

    /// Tells the autoscaler, at most once per poll interval (every request that finds no
    /// ready replica would otherwise send its own event).
    fn activate(&self, waker: &Arc<dyn Waker>) {
        let now = Instant::now();
        {
            let mut last = self.last_activation.lock();
            if last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(1)) {
                return;
            }
            *last = Some(now);
        }
        self.metrics.activations.inc();
        waker.activation(&self.name, self.queued());
    }

    /// One poller per revision while requests wait and some replica is not known ready.
    fn start_polling(self: &Arc<Self>, waker: &Arc<dyn Waker>) {
        if self.polling.swap(true, Ordering::AcqRel) {
            return;
        }
        let revision = self.clone();
        let waker = waker.clone();
        tokio::spawn(async move {
            loop {
                let settings = revision.settings.load_full();
                let pending: Vec<_> =
                    settings.replicas.iter().filter(|r| !r.is_ready()).cloned().collect();
                if pending.is_empty() || revision.queued() == 0 || revision.is_removed() {
                    revision.polling.store(false, Ordering::Release);
                    // A request may have queued between the check and the store.
                    let again = revision.queued() > 0
                        && !revision.is_removed()
                        && revision.settings.load().replicas.iter().any(|r| !r.is_ready());
                    if again && !revision.polling.swap(true, Ordering::AcqRel) {
                        continue;
                    }
                    return;
                }
                let checks = pending.iter().map(|r| {
                    let r = r.clone();
                    let check = waker.check_ready(r.clone(), settings.model.clone());
                    async move { (r, check.await) }
                });
                let mut woke = false;
                for (replica, ready) in futures::future::join_all(checks).await {
                    if ready {
                        tracing::info!(revision = %revision.name, replica = %replica.id, "replica ready");
                        replica.set_ready(true);
                        woke = true;
                    }
                }
                if woke {
                    revision.notify.notify_waiters();
                } else {
                    tokio::time::sleep(waker.poll_interval()).await;
                }
            }
        });
    }

    /// A replica refused a connection or died: stop sending it requests until it reports
    /// ready again (or the table says so).
    pub fn replica_failed(&self, replica: &Replica) {
        if replica.is_ready() {
            tracing::warn!(revision = %self.name, replica = %replica.id, url = %replica.url, "replica failed: out of rotation until ready again");
        }
        replica.set_ready(false);
    }
}

/// Knative queue-proxy's time-weighted concurrency: the integral of requests in flight over
/// the interval, divided by its length.
#[derive(Debug)]
pub(crate) struct Stats {
    current: u64,
    /// Request-seconds accumulated since `window_start`.
    area: f64,
    last: Instant,
    window_start: Instant,
    pub requests: u64,
}

impl Stats {
    pub fn new(now: Instant) -> Stats {
        Stats { current: 0, area: 0.0, last: now, window_start: now, requests: 0 }
    }

    pub fn change(&mut self, now: Instant, delta: i64) {
        self.advance(now);
        self.current = self.current.saturating_add_signed(delta);
    }

    fn advance(&mut self, now: Instant) {
        if now > self.last {
            self.area += self.current as f64 * (now - self.last).as_secs_f64();
            self.last = now;
        }
    }

    /// (interval, average concurrency, requests) since the last call; starts a new interval.
    pub fn take(&mut self, now: Instant) -> (Duration, f64, u64) {
        self.advance(now);
        let interval = now.saturating_duration_since(self.window_start);
        let average = if interval.is_zero() {
            self.current as f64
        } else {
            self.area / interval.as_secs_f64()
        };
        let requests = std::mem::take(&mut self.requests);
        self.area = 0.0;
        self.window_start = now;
        (interval, average, requests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_is_time_weighted() {
        let t0 = Instant::now();
        let mut s = Stats::new(t0);
        // One request for the whole second, a second one for its last quarter.
        s.change(t0, 1);
        s.change(t0 + Duration::from_millis(750), 1);
        let (interval, average, _) = s.take(t0 + Duration::from_secs(1));
        assert_eq!(interval, Duration::from_secs(1));
        assert!((average - 1.25).abs() < 1e-9, "{average}");
        // Both still in flight through the next second.
        let (_, average, _) = s.take(t0 + Duration::from_secs(2));
        assert!((average - 2.0).abs() < 1e-9, "{average}");
        s.change(t0 + Duration::from_millis(2500), -2);
        let (_, average, _) = s.take(t0 + Duration::from_secs(3));
        assert!((average - 1.0).abs() < 1e-9, "{average}");
    }

    #[test]
    fn container_concurrency_is_a_hard_limit() {
        let r =
            Replica::new("a".into(), "http://x".into(), Authority::from_static("x:1"), None, true);
        assert!(r.try_take(2));
        assert!(r.try_take(2));
        assert!(!r.try_take(2));
        assert!(r.try_take(0), "0 is unlimited");
    }
}
