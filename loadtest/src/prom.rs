//! A reader of the Prometheus / OpenMetrics text format, enough for the router's and the
//! server's `/metrics`: metric lines `name{label="v",…} value`, comments skipped.

use std::collections::BTreeMap;

/// One metric line.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every metric line of `text`; lines that do not parse are skipped.
pub fn parse(text: &str) -> Vec<Metric> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Metric> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let close = line.rfind('}')?;
            (&line[..open], parse_labels(&line[open + 1..close])?, &line[close + 1..])
        }
        None => {
            let (name, rest) = line.split_once(char::is_whitespace)?;
            (name, BTreeMap::new(), rest)
        }
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Metric { name: name.to_owned(), labels, value })
}

fn parse_labels(text: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let after = after.strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        labels.insert(key.trim().to_owned(), value);
        rest = after[end + 1..].trim_start().trim_start_matches(',').trim_start();
    }
    Some(labels)
}

/// The sum of the values of `name` whose labels include every `(key, value)` of `filter`.
pub fn sum(metrics: &[Metric], name: &str, filter: &[(&str, &str)]) -> f64 {
    metrics
        .iter()
        .filter(|m| m.name == name)
        .filter(|m| filter.iter().all(|(k, v)| m.labels.get(*k).map(String::as_str) == Some(*v)))
        .map(|m| m.value)
        .sum()
}

/// The cumulative buckets `(le, count)` of histogram `name` (the `_bucket` lines), summed
/// over the label sets matching `filter`, in increasing `le`.
pub fn buckets(metrics: &[Metric], name: &str, filter: &[(&str, &str)]) -> Vec<(f64, f64)> {
    let bucket = format!("{name}_bucket");
    let mut by_le: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for m in metrics.iter().filter(|m| m.name == bucket) {
        if !filter.iter().all(|(k, v)| m.labels.get(*k).map(String::as_str) == Some(*v)) {
            continue;
        }
        let Some(le) = m.labels.get("le").and_then(|v| match v.as_str() {
            "+Inf" => Some(f64::INFINITY),
            v => v.parse::<f64>().ok(),
        }) else {
            continue;
        };
        // Order by the float's bits: every `le` here is non-negative.
        by_le.entry(le.to_bits()).or_insert((le, 0.0)).1 += m.value;
    }
    by_le.into_values().collect()
}

/// Per-bucket counts (not cumulative) from cumulative `buckets`.
pub fn per_bucket(buckets: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut previous = 0.0;
    buckets
        .iter()
        .map(|&(le, cumulative)| {
            let n = cumulative - previous;
            previous = cumulative;
            (le, n)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP oxserve_router_queue_depth Requests waiting
# TYPE oxserve_router_queue_depth gauge
oxserve_router_queue_depth{service="a",revision="a-predictor-00001"} 3
oxserve_router_queue_depth{service="b",revision="b-predictor-00001"} 4
oxserve_batch_size_bucket{model="mlp",version="1",le="1.0"} 10
oxserve_batch_size_bucket{model="mlp",version="1",le="2.0"} 15
oxserve_batch_size_bucket{model="mlp",version="1",le="+Inf"} 16
oxserve_batch_size_sum{model="mlp",version="1"} 30.0
oxserve_up 1
odd{label="with \"quote\", comma"} 2 1700000000
# EOF
"#;

    #[test]
    fn sums_over_labels() {
        let m = parse(TEXT);
        assert_eq!(sum(&m, "oxserve_router_queue_depth", &[]), 7.0);
        assert_eq!(sum(&m, "oxserve_router_queue_depth", &[("service", "b")]), 4.0);
        assert_eq!(sum(&m, "oxserve_up", &[]), 1.0);
        assert_eq!(m.last().unwrap().labels["label"], r#"with "quote", comma"#);
        assert_eq!(m.last().unwrap().value, 2.0);
    }

    #[test]
    fn histogram_buckets() {
        let m = parse(TEXT);
        let b = buckets(&m, "oxserve_batch_size", &[("model", "mlp")]);
        assert_eq!(b, vec![(1.0, 10.0), (2.0, 15.0), (f64::INFINITY, 16.0)]);
        assert_eq!(per_bucket(&b), vec![(1.0, 10.0), (2.0, 5.0), (f64::INFINITY, 1.0)]);
    }

    #[test]
    fn skips_garbage() {
        assert!(parse("not a metric\nx{a=\"1\" 2\n").is_empty());
    }
}
