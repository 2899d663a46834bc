//! Statistics extension: cumulative per-model (per-version) counters and durations.
//!
//! REST: `GET /v2/models[/{m}[/versions/{v}]]/stats` answers a [`StatisticsResponse`];
//! gRPC: `ModelStatistics`. Unknown JSON fields (Triton's `response_stats`, `memory_usage`)
//! are ignored when parsing so other servers' answers can be read.

use serde::{Deserialize, Serialize};

use crate::grpc::inference;

/// A count and the cumulative duration of those occurrences, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurationStat {
    pub count: u64,
    pub ns: u64,
}

impl DurationStat {
    /// Adds one occurrence lasting `ns` nanoseconds (saturating).
    pub fn record(&mut self, ns: u64) {
        self.count = self.count.saturating_add(1);
        self.ns = self.ns.saturating_add(ns);
    }
}

/// Aggregate request statistics of a model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InferStats {
    #[serde(default)]
    pub success: DurationStat,
    #[serde(default)]
    pub fail: DurationStat,
    #[serde(default)]
    pub queue: DurationStat,
    #[serde(default)]
    pub compute_input: DurationStat,
    #[serde(default)]
    pub compute_infer: DurationStat,
    #[serde(default)]
    pub compute_output: DurationStat,
    #[serde(default)]
    pub cache_hit: DurationStat,
    #[serde(default)]
    pub cache_miss: DurationStat,
}

/// Statistics of executions with one batch size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchStats {
    pub batch_size: u64,
    #[serde(default)]
    pub compute_input: DurationStat,
    #[serde(default)]
    pub compute_infer: DurationStat,
    #[serde(default)]
    pub compute_output: DurationStat,
}

/// Statistics of one model version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelStats {
    pub name: String,
    /// Empty for servers without versions.
    #[serde(default)]
    pub version: String,
    /// Milliseconds since the epoch of the last request, 0 if none.
    #[serde(default)]
    pub last_inference: u64,
    /// Successful inferences, counting each batch element.
    #[serde(default)]
    pub inference_count: u64,
    /// Model executions (one per batch).
    #[serde(default)]
    pub execution_count: u64,
    #[serde(default)]
    pub inference_stats: InferStats,
    #[serde(default)]
    pub batch_stats: Vec<BatchStats>,
    /// oxserve's explanation requests (REST only; absent until a version is explained, and
    /// from servers without the `explain` extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explain_stats: Option<ExplainStats>,
}

/// Explanation requests of a model version, counted apart from inferences.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplainStats {
    #[serde(default)]
    pub success: DurationStat,
    #[serde(default)]
    pub fail: DurationStat,
}

/// `{"model_stats": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatisticsResponse {
    pub model_stats: Vec<ModelStats>,
}

impl From<DurationStat> for inference::StatisticDuration {
    fn from(d: DurationStat) -> Self {
        inference::StatisticDuration { count: d.count, ns: d.ns }
    }
}

impl From<inference::StatisticDuration> for DurationStat {
    fn from(d: inference::StatisticDuration) -> Self {
        DurationStat { count: d.count, ns: d.ns }
    }
}

/// An absent protobuf duration reads as zero.
fn dur(d: Option<inference::StatisticDuration>) -> DurationStat {
    d.map(Into::into).unwrap_or_default()
}

impl From<InferStats> for inference::InferStatistics {
    fn from(s: InferStats) -> Self {
        inference::InferStatistics {
            success: Some(s.success.into()),
            fail: Some(s.fail.into()),
            queue: Some(s.queue.into()),
            compute_input: Some(s.compute_input.into()),
            compute_infer: Some(s.compute_infer.into()),
            compute_output: Some(s.compute_output.into()),
            cache_hit: Some(s.cache_hit.into()),
            cache_miss: Some(s.cache_miss.into()),
        }
    }
}

impl From<inference::InferStatistics> for InferStats {
    fn from(s: inference::InferStatistics) -> Self {
        InferStats {
            success: dur(s.success),
            fail: dur(s.fail),
            queue: dur(s.queue),
            compute_input: dur(s.compute_input),
            compute_infer: dur(s.compute_infer),
            compute_output: dur(s.compute_output),
            cache_hit: dur(s.cache_hit),
            cache_miss: dur(s.cache_miss),
        }
    }
}

impl From<BatchStats> for inference::InferBatchStatistics {
    fn from(b: BatchStats) -> Self {
        inference::InferBatchStatistics {
            batch_size: b.batch_size,
            compute_input: Some(b.compute_input.into()),
            compute_infer: Some(b.compute_infer.into()),
            compute_output: Some(b.compute_output.into()),
        }
    }
}

impl From<inference::InferBatchStatistics> for BatchStats {
    fn from(b: inference::InferBatchStatistics) -> Self {
        BatchStats {
            batch_size: b.batch_size,
            compute_input: dur(b.compute_input),
            compute_infer: dur(b.compute_infer),
            compute_output: dur(b.compute_output),
        }
    }
}

impl From<ModelStats> for inference::ModelStatistics {
    fn from(m: ModelStats) -> Self {
        inference::ModelStatistics {
            name: m.name,
            version: m.version,
            last_inference: m.last_inference,
            inference_count: m.inference_count,
            execution_count: m.execution_count,
            inference_stats: Some(m.inference_stats.into()),
            batch_stats: m.batch_stats.into_iter().map(Into::into).collect(),
            memory_usage: Vec::new(),
            response_stats: Default::default(),
        }
    }
}

impl From<inference::ModelStatistics> for ModelStats {
    fn from(m: inference::ModelStatistics) -> Self {
        ModelStats {
            name: m.name,
            version: m.version,
            last_inference: m.last_inference,
            inference_count: m.inference_count,
            execution_count: m.execution_count,
            inference_stats: m.inference_stats.map(Into::into).unwrap_or_default(),
            batch_stats: m.batch_stats.into_iter().map(Into::into).collect(),
            explain_stats: None,
        }
    }
}

impl From<StatisticsResponse> for inference::ModelStatisticsResponse {
    fn from(r: StatisticsResponse) -> Self {
        inference::ModelStatisticsResponse {
            model_stats: r.model_stats.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<inference::ModelStatisticsResponse> for StatisticsResponse {
    fn from(r: inference::ModelStatisticsResponse) -> Self {
        StatisticsResponse { model_stats: r.model_stats.into_iter().map(Into::into).collect() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d(count: u64, ns: u64) -> DurationStat {
        DurationStat { count, ns }
    }

    fn sample() -> StatisticsResponse {
        StatisticsResponse {
            model_stats: vec![ModelStats {
                name: "m".into(),
                version: "1".into(),
                last_inference: 1_700_000_000_000,
                inference_count: 12,
                execution_count: 3,
                inference_stats: InferStats {
                    success: d(3, 3000),
                    fail: d(1, 10),
                    queue: d(3, 300),
                    compute_input: d(3, 30),
                    compute_infer: d(3, 2000),
                    compute_output: d(3, 40),
                    cache_hit: d(0, 0),
                    cache_miss: d(0, 0),
                },
                batch_stats: vec![BatchStats {
                    batch_size: 4,
                    compute_input: d(3, 30),
                    compute_infer: d(3, 2000),
                    compute_output: d(3, 40),
                }],
                explain_stats: None,
            }],
        }
    }

    #[test]
    fn json_shape() {
        let z = json!({"count": 0, "ns": 0});
        assert_eq!(
            serde_json::to_value(sample()).unwrap(),
            json!({"model_stats": [{
                "name": "m",
                "version": "1",
                "last_inference": 1_700_000_000_000u64,
                "inference_count": 12,
                "execution_count": 3,
                "inference_stats": {
                    "success": {"count": 3, "ns": 3000},
                    "fail": {"count": 1, "ns": 10},
                    "queue": {"count": 3, "ns": 300},
                    "compute_input": {"count": 3, "ns": 30},
                    "compute_infer": {"count": 3, "ns": 2000},
                    "compute_output": {"count": 3, "ns": 40},
                    "cache_hit": z,
                    "cache_miss": z
                },
                "batch_stats": [{
                    "batch_size": 4,
                    "compute_input": {"count": 3, "ns": 30},
                    "compute_infer": {"count": 3, "ns": 2000},
                    "compute_output": {"count": 3, "ns": 40}
                }]
            }]})
        );
    }

    #[test]
    fn parses_triton_answers_with_extra_fields() {
        let v = json!({"model_stats": [{
            "name": "t", "version": "2", "last_inference": 5, "inference_count": 1,
            "execution_count": 1,
            "inference_stats": {"success": {"count": 1, "ns": 9}},
            "response_stats": {}, "batch_stats": [], "memory_usage": []
        }]});
        let r: StatisticsResponse = serde_json::from_value(v).unwrap();
        assert_eq!(r.model_stats[0].inference_stats.success, d(1, 9));
        assert_eq!(r.model_stats[0].inference_stats.queue, d(0, 0));
    }

    #[test]
    fn proto_round_trip() {
        let proto = inference::ModelStatisticsResponse::from(sample());
        let s = &proto.model_stats[0];
        assert_eq!(
            s.inference_stats.as_ref().and_then(|i| i.fail),
            Some(inference::StatisticDuration { count: 1, ns: 10 })
        );
        assert_eq!(s.batch_stats[0].batch_size, 4);
        assert_eq!(StatisticsResponse::from(proto), sample());
        // Absent sub-messages read as zeros.
        let bare = inference::ModelStatistics { name: "x".into(), ..Default::default() };
        assert_eq!(ModelStats::from(bare).inference_stats, InferStats::default());
    }

    #[test]
    fn record_saturates() {
        let mut s = d(u64::MAX, u64::MAX - 1);
        s.record(5);
        assert_eq!(s, d(u64::MAX, u64::MAX));
        let mut s = DurationStat::default();
        s.record(7);
        assert_eq!(s, d(1, 7));
    }
}
