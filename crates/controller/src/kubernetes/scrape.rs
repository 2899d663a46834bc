//! The router pods' `/metrics` as the KPA's input.
//!
//! The router exports, per revision, `oxserve_router_request_duration_seconds` (a histogram:
//! `_count` and `_sum`), `oxserve_router_queue_depth` and `oxserve_router_activations_total`.
//! Between two scrapes `Δt` apart, a revision's requests are the growth of `_count` and its
//! time-weighted average concurrency is, by Little's law, the growth of `_sum` over `Δt`,
//! plus the requests queued now; a growing activation counter or a queue is an activation.
//! Counters are summed over every router pod.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::metrics::{RevisionSample, RouterEvent};

/// Per-revision totals of one scrape (summed over the router pods).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    pub count: f64,
    pub sum: f64,
    pub queued: f64,
    pub activations: f64,
}

/// The `revision` label of a sample line's label set, if any.
fn revision_label(labels: &str) -> Option<&str> {
    labels.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == "revision").then(|| v.trim().trim_matches('"'))
    })
}

/// Adds the per-revision values of one Prometheus text exposition to `into`.
pub fn parse(text: &str, into: &mut HashMap<String, Totals>) {
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let Ok(value) = value.trim().parse::<f64>() else { continue };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let Some(revision) = revision_label(labels) else { continue };
        let t = into.entry(revision.to_owned()).or_default();
        match name {
            "oxserve_router_request_duration_seconds_count" => t.count += value,
            "oxserve_router_request_duration_seconds_sum" => t.sum += value,
            "oxserve_router_queue_depth" => t.queued += value,
            "oxserve_router_activations_total" => t.activations += value,
            _ => {}
        }
    }
}

/// The events between scrape `before` and scrape `after`, `interval` apart, ending `at`.
/// A revision new in `after` counts from zero; a counter that went down (a router pod
/// restarted) counts from zero too.
pub fn events(
    before: &HashMap<String, Totals>,
    after: &HashMap<String, Totals>,
    interval: Duration,
    at: Instant,
) -> Vec<RouterEvent> {
    let secs = interval.as_secs_f64().max(f64::EPSILON);
    let mut out = Vec::new();
    let mut names: Vec<&String> = after.keys().collect();
    names.sort();
    for revision in names {
        let now = &after[revision];
        let zero = Totals::default();
        let prev = before.get(revision).unwrap_or(&zero);
        let delta = |a: f64, b: f64| if a >= b { a - b } else { a };
        let requests = delta(now.count, prev.count);
        let busy = delta(now.sum, prev.sum);
        let activations = delta(now.activations, prev.activations);
        if activations > 0.0 || now.queued > 0.0 {
            out.push(RouterEvent::Activation {
                revision: revision.clone(),
                at,
                queued: now.queued as usize,
            });
        }
        out.push(RouterEvent::Sample(RevisionSample {
            revision: revision.clone(),
            at,
            interval,
            average_concurrency: busy / secs + now.queued,
            requests: requests as u64,
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP x\n\
oxserve_router_request_duration_seconds_count{revision=\"iris-predictor-00001\",code=\"200\"} 10\n\
oxserve_router_request_duration_seconds_sum{revision=\"iris-predictor-00001\",code=\"200\"} 4.0\n\
oxserve_router_queue_depth{revision=\"iris-predictor-00002\"} 3\n\
oxserve_router_dropped_events_total 1\n";

    #[test]
    fn littles_law_over_two_scrapes() {
        let mut before = HashMap::new();
        parse(TEXT, &mut before);
        let mut after = HashMap::new();
        parse(&TEXT.replace(" 10\n", " 30\n").replace(" 4.0\n", " 8.0\n"), &mut after);
        let at = Instant::now();
        let events = events(&before, &after, Duration::from_secs(2), at);
        let RouterEvent::Sample(s) = &events[0] else { panic!("{events:?}") };
        assert_eq!((s.revision.as_str(), s.requests), ("iris-predictor-00001", 20));
        assert!((s.average_concurrency - 2.0).abs() < 1e-9);
        assert!(matches!(&events[1], RouterEvent::Activation { queued: 3, .. }));
    }
}
