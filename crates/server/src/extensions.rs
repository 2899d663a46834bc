//! The extensions' answers built from the core — model configuration, statistics and the
//! repository index — in the protocol crate's types, which both frontends encode (REST as
//! JSON, gRPC through the `From` conversions).

use std::sync::atomic::Ordering::Relaxed;

use oxserve_protocol::extensions::{
    BatchStats, BatchingSettings, DurationStat, ExplainStats, InferStats, ModelConfig,
    ModelIndexEntry, ModelStats, RepositoryIndexRequest, RepositoryLoadRequest, StatisticsResponse,
};

use crate::core::{Core, ModelVersion};
use crate::error::Result;
use crate::stats;

/// The model configuration of one served version.
pub fn model_config(served: &ModelVersion) -> ModelConfig {
    let batching = (served.max_batch_size() > 0).then(|| BatchingSettings {
        max_batch_size: u32::try_from(served.settings.max_batch_size).unwrap_or(u32::MAX),
        preferred_batch_sizes: served
            .settings
            .preferred_batch_sizes
            .iter()
            .map(|&s| u32::try_from(s).unwrap_or(u32::MAX))
            .collect(),
        max_queue_delay: served.settings.max_batch_time,
    });
    ModelConfig::from_metadata(&served.metadata, batching.as_ref())
}

/// Statistics of every loaded version, of every version of `model`, or of one version.
pub fn statistics(
    core: &Core,
    model: Option<&str>,
    version: Option<&str>,
) -> Result<StatisticsResponse> {
    let mut model_stats = Vec::new();
    match model {
        Some(name) => {
            match version {
                Some(_) => {
                    let served = core.version(name, version)?;
                    model_stats.push(version_stats(&served));
                }
                None => {
                    // Resolve through `version` so unknown models answer 404.
                    core.version(name, None)?;
                    let entry = core.entries().into_iter().find(|e| e.name == name);
                    for v in entry.iter().flat_map(|e| e.versions.values()) {
                        model_stats.push(version_stats(v));
                    }
                }
            }
        }
        None => {
            for entry in core.entries() {
                model_stats.extend(entry.versions.values().map(|v| version_stats(v)));
            }
        }
    }
    Ok(StatisticsResponse { model_stats })
}

fn duration(d: &stats::DurationStat) -> DurationStat {
    let (count, ns) = d.snapshot();
    DurationStat { count, ns }
}

fn version_stats(v: &ModelVersion) -> ModelStats {
    let s = &v.stats;
    ModelStats {
        name: v.name.clone(),
        version: v.version.clone(),
        last_inference: s.last_inference_ms.load(Relaxed),
        inference_count: s.inference_count.load(Relaxed),
        execution_count: s.execution_count.load(Relaxed),
        inference_stats: InferStats {
            success: duration(&s.success),
            fail: duration(&s.fail),
            queue: duration(&s.queue),
            compute_infer: duration(&s.compute_infer),
            ..Default::default()
        },
        batch_stats: s
            .batch_snapshot()
            .into_iter()
            .map(|(batch_size, count, ns)| BatchStats {
                batch_size,
                compute_infer: DurationStat { count, ns },
                ..Default::default()
            })
            .collect(),
        explain_stats: {
            let (success, fail) = (duration(&s.explain_success), duration(&s.explain_fail));
            (success.count + fail.count > 0).then_some(ExplainStats { success, fail })
        },
    }
}

/// The repository index, optionally only ready models.
pub fn repository_index(core: &Core, ready_only: bool) -> Vec<ModelIndexEntry> {
    let mut index = core.index();
    if ready_only {
        index.retain(|e| e.state == Some(oxserve_protocol::extensions::ModelState::Ready));
    }
    index
}

/// Parses a REST index request body; returns whether only ready models are wanted.
pub fn parse_index_request(body: &[u8]) -> Result<bool> {
    Ok(RepositoryIndexRequest::from_body(body)?.ready_only())
}

/// Parses (and so validates) a REST load or unload request body.
pub fn parse_load_request(body: &[u8]) -> Result<()> {
    RepositoryLoadRequest::from_body(body)?;
    Ok(())
}
