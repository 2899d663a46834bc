//! Prometheus metrics: per-model request counts by outcome, latency, queue time and batch
//! size, and explanations counted apart from inferences (`explain_requests`,
//! `explain_duration_seconds`), requests shed by admission (`requests_shed`), encoded for
//! `GET /metrics`.
//!
//! Label lookups hash and allocate, so each loaded model version resolves its handles once
//! ([`Metrics::for_model`]) and the request path only touches atomics.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use oxserve_protocol::ErrorCode;

/// Which frontend a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Rest,
    Grpc,
    V1,
}

impl Protocol {
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Rest => "rest",
            Protocol::Grpc => "grpc",
            Protocol::V1 => "v1",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    model: String,
    version: String,
    protocol: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ModelLabels {
    model: String,
    version: String,
}

type HistogramFamily = Family<ModelLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 50 µs … ~26 s, doubling.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
}

fn batch_size_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 12))
}

/// The server's metric registry.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    queue: HistogramFamily,
    batch_size: HistogramFamily,
    in_flight: Family<ModelLabels, Gauge>,
    models_loaded: Gauge,
    explain_requests: Family<RequestLabels, Counter>,
    explain_latency: HistogramFamily,
    shed: Family<ShedLabels, Counter>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ShedLabels {
    model: String,
    version: String,
    reason: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("oxserve");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = HistogramFamily::new_with_constructor(latency_histogram as fn() -> Histogram);
        let queue = HistogramFamily::new_with_constructor(latency_histogram as fn() -> Histogram);
        let batch_size =
            HistogramFamily::new_with_constructor(batch_size_histogram as fn() -> Histogram);
        let in_flight = Family::<ModelLabels, Gauge>::default();
        let models_loaded = Gauge::default();
        registry.register(
            "inference_requests",
            "Inference requests by model, protocol and outcome",
            requests.clone(),
        );
        registry.register(
            "inference_duration_seconds",
            "Time from decoded request to response, per model",
            latency.clone(),
        );
        registry.register(
            "queue_duration_seconds",
            "Time requests waited in the batcher queue",
            queue.clone(),
        );
        registry.register("batch_size", "Rows per executed batch", batch_size.clone());
        registry.register(
            "inflight_requests",
            "Requests a model is working on or has queued",
            in_flight.clone(),
        );
        registry.register(
            "models_loaded",
            "Model versions currently loaded",
            models_loaded.clone(),
        );
        let explain_requests = Family::<RequestLabels, Counter>::default();
        let explain_latency =
            HistogramFamily::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "explain_requests",
            "Explanation requests by model, protocol and outcome (not counted as inference requests)",
            explain_requests.clone(),
        );
        registry.register(
            "explain_duration_seconds",
            "Time from decoded explanation request to response, per model",
            explain_latency.clone(),
        );
        let shed = Family::<ShedLabels, Counter>::default();
        registry.register(
            "requests_shed",
            "Requests refused with 503 before any work because the model's in-flight slots and queue were full",
            shed.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            queue,
            batch_size,
            in_flight,
            models_loaded,
            explain_requests,
            explain_latency,
            shed,
        }
    }

    /// Resolves the handles one model version uses on the request path.
    pub fn for_model(&self, model: &str, version: &str) -> ModelMetrics {
        let labels = ModelLabels { model: model.to_owned(), version: version.to_owned() };
        let success = |protocol: Protocol| {
            self.requests.get_or_create_owned(&RequestLabels {
                model: model.to_owned(),
                version: version.to_owned(),
                protocol: protocol.label(),
                outcome: "success",
            })
        };
        ModelMetrics {
            model: model.to_owned(),
            version: version.to_owned(),
            success_rest: success(Protocol::Rest),
            success_grpc: success(Protocol::Grpc),
            success_v1: success(Protocol::V1),
            requests: self.requests.clone(),
            latency: self.latency.get_or_create_owned(&labels),
            queue: self.queue.get_or_create_owned(&labels),
            batch_size: self.batch_size.get_or_create_owned(&labels),
            in_flight: self.in_flight.get_or_create_owned(&labels),
            explain_requests: self.explain_requests.clone(),
            explain_latency: self.explain_latency.get_or_create_owned(&labels),
            shed_queue_full: self.shed.get_or_create_owned(&ShedLabels {
                model: model.to_owned(),
                version: version.to_owned(),
                reason: "queue_full",
            }),
        }
    }

    /// Sets the number of loaded model versions.
    pub fn set_models_loaded(&self, n: usize) {
        self.models_loaded.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Pre-resolved metric handles of one model version.
#[derive(Clone)]
pub struct ModelMetrics {
    model: String,
    version: String,
    success_rest: Counter,
    success_grpc: Counter,
    success_v1: Counter,
    requests: Family<RequestLabels, Counter>,
    latency: Histogram,
    queue: Histogram,
    batch_size: Histogram,
    in_flight: Gauge,
    explain_requests: Family<RequestLabels, Counter>,
    explain_latency: Histogram,
    shed_queue_full: Counter,
}

/// Counts a request as in flight until dropped.
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl ModelMetrics {
    /// Marks one request in flight for as long as the guard lives.
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// Counts one request and its latency.
    pub fn observe_request(
        &self,
        protocol: Protocol,
        outcome: Result<(), ErrorCode>,
        elapsed: Duration,
    ) {
        match outcome {
            Ok(()) => {
                match protocol {
                    Protocol::Rest => self.success_rest.inc(),
                    Protocol::Grpc => self.success_grpc.inc(),
                    Protocol::V1 => self.success_v1.inc(),
                };
            }
            Err(code) => {
                self.requests
                    .get_or_create(&RequestLabels {
                        model: self.model.clone(),
                        version: self.version.clone(),
                        protocol: protocol.label(),
                        outcome: code.label(),
                    })
                    .inc();
            }
        }
        self.latency.observe(elapsed.as_secs_f64());
    }

    /// Counts one explanation request and its latency (explanations are off the hot path,
    /// so the label lookup per call is fine).
    pub fn observe_explain(
        &self,
        protocol: Protocol,
        outcome: Result<(), ErrorCode>,
        elapsed: Duration,
    ) {
        self.explain_requests
            .get_or_create(&RequestLabels {
                model: self.model.clone(),
                version: self.version.clone(),
                protocol: protocol.label(),
                outcome: outcome.err().map_or("success", ErrorCode::label),
            })
            .inc();
        self.explain_latency.observe(elapsed.as_secs_f64());
    }

    /// Counts one request shed because the model's slots and queue were full.
    pub fn observe_shed(&self) {
        self.shed_queue_full.inc();
    }

    /// Records one batched execution as seen by one request.
    pub fn observe_batch(&self, queue_time: Duration, batch_size: usize) {
        self.queue.observe(queue_time.as_secs_f64());
        self.batch_size.observe(batch_size as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_outcomes_per_model() {
        let metrics = Metrics::new();
        let m = metrics.for_model("iris", "1");
        m.observe_request(Protocol::Rest, Ok(()), Duration::from_millis(1));
        m.observe_request(
            Protocol::Grpc,
            Err(ErrorCode::InvalidArgument),
            Duration::from_millis(1),
        );
        m.observe_batch(Duration::from_micros(10), 4);
        m.observe_shed();
        let guard = m.in_flight();
        assert!(
            metrics.encode().contains(r#"oxserve_inflight_requests{model="iris",version="1"} 1"#)
        );
        drop(guard);
        metrics.set_models_loaded(1);
        let text = metrics.encode();
        assert!(text.contains(
            r#"oxserve_inference_requests_total{model="iris",version="1",protocol="rest",outcome="success"} 1"#
        ), "{text}");
        assert!(text.contains(r#"protocol="grpc",outcome="invalid_argument"} 1"#), "{text}");
        assert!(text.contains(r#"oxserve_batch_size_count{model="iris",version="1"} 1"#), "{text}");
        assert!(text.contains("oxserve_models_loaded 1"), "{text}");
        assert!(
            text.contains(
                r#"oxserve_requests_shed_total{model="iris",version="1",reason="queue_full"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"oxserve_inflight_requests{model="iris",version="1"} 0"#),
            "{text}"
        );
        assert!(!text.contains("oxserve_explain_requests_total{"), "{text}");
    }

    #[test]
    fn explanations_are_counted_apart_from_inferences() {
        let metrics = Metrics::new();
        let m = metrics.for_model("trees", "1");
        m.observe_explain(Protocol::Rest, Ok(()), Duration::from_millis(1));
        m.observe_explain(Protocol::V1, Err(ErrorCode::InvalidArgument), Duration::from_millis(1));
        let text = metrics.encode();
        assert!(text.contains(
            r#"oxserve_explain_requests_total{model="trees",version="1",protocol="rest",outcome="success"} 1"#
        ), "{text}");
        assert!(text.contains(r#"protocol="v1",outcome="invalid_argument"} 1"#), "{text}");
        assert!(
            text.contains(r#"oxserve_explain_duration_seconds_count{model="trees",version="1"} 2"#),
            "{text}"
        );
        assert!(
            !text.contains(r#"oxserve_inference_requests_total{model="trees",version="1",protocol="rest",outcome="success"} 1"#),
            "{text}"
        );
    }
}
