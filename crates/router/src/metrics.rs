//! The router's Prometheus metrics (`/metrics`): requests by revision and outcome, latency
//! histograms, activator queue depth, activations, rejections and split picks per revision.
//! Handles for one revision are resolved once when the revision first appears, so the
//! request path does not hash label sets.

use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RevisionLabels {
    service: String,
    revision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    revision: String,
    code: String,
}

/// The router's metric families.
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<OutcomeLabels, Counter>,
    latency: Family<RevisionLabels, Histogram, fn() -> Histogram>,
    queue_depth: Family<RevisionLabels, Gauge>,
    activations: Family<RevisionLabels, Counter>,
    rejected: Family<RevisionLabels, Counter>,
    split: Family<RevisionLabels, Counter>,
    unrouted: Family<OutcomeLabels, Counter>,
    dropped_events: Counter,
}

/// One revision's handles.
#[derive(Clone)]
pub(crate) struct RevisionMetrics {
    pub latency: Histogram,
    pub queue_depth: Gauge,
    pub activations: Counter,
    pub rejected: Counter,
    pub split: Counter,
}

fn latency_histogram() -> Histogram {
    // 50 µs to ~100 s: the router's own overhead up to cold starts and long inferences.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.00005, 2.0, 22))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("oxserve_router");
        let requests = Family::<OutcomeLabels, Counter>::default();
        let latency = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        let queue_depth = Family::<RevisionLabels, Gauge>::default();
        let activations = Family::<RevisionLabels, Counter>::default();
        let rejected = Family::<RevisionLabels, Counter>::default();
        let split = Family::<RevisionLabels, Counter>::default();
        let unrouted = Family::<OutcomeLabels, Counter>::default();
        let dropped_events = Counter::default();
        registry.register(
            "requests",
            "Routed requests by revision and response code",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from arrival to the replica's response headers (queueing included)",
            latency.clone(),
        );
        registry.register("queue_depth", "Requests waiting in the activator", queue_depth.clone());
        registry.register(
            "activations",
            "Times a revision with no ready replica was woken",
            activations.clone(),
        );
        registry.register(
            "queue_rejections",
            "Requests refused because the activator queue was full",
            rejected.clone(),
        );
        registry.register(
            "split_picks",
            "Requests the splitter sent to each revision",
            split.clone(),
        );
        registry.register(
            "unrouted_requests",
            "Requests answered without a revision, by reason",
            unrouted.clone(),
        );
        registry.register(
            "dropped_events",
            "Autoscaler events dropped because the channel was full",
            dropped_events.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            requests,
            latency,
            queue_depth,
            activations,
            rejected,
            split,
            unrouted,
            dropped_events,
        }
    }

    pub(crate) fn revision(&self, service: &str, revision: &str) -> RevisionMetrics {
        let labels = RevisionLabels { service: service.to_owned(), revision: revision.to_owned() };
        RevisionMetrics {
            latency: self.latency.get_or_create(&labels).clone(),
            queue_depth: self.queue_depth.get_or_create(&labels).clone(),
            activations: self.activations.get_or_create(&labels).clone(),
            rejected: self.rejected.get_or_create(&labels).clone(),
            split: self.split.get_or_create(&labels).clone(),
        }
    }

    pub(crate) fn request(&self, revision: &str, code: u16) {
        let labels = OutcomeLabels { revision: revision.to_owned(), code: code.to_string() };
        self.requests.get_or_create(&labels).inc();
    }

    pub(crate) fn unrouted(&self, reason: &str) {
        let labels = OutcomeLabels { revision: String::new(), code: reason.to_owned() };
        self.unrouted.get_or_create(&labels).inc();
    }

    pub(crate) fn dropped_event(&self) {
        self.dropped_events.inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry.lock());
        out
    }
}
