//! The protocol extensions real clients use beyond the V2 core (model repository,
//! statistics, model configuration), in Triton's REST JSON shapes and with conversions to and
//! from the gRPC messages, so the REST and gRPC frontends answer from one source.

pub mod config;
pub mod repository;
pub mod statistics;

pub use config::{
    BatchingSettings, ConfigParameter, DynamicBatching, ModelConfig, ModelConfigInput,
    ModelConfigOutput,
};
pub use repository::{
    ModelIndexEntry, ModelState, RepositoryIndexRequest, RepositoryLoadRequest,
    RepositoryParameter, RepositoryUnloadRequest,
};
pub use statistics::{
    BatchStats, DurationStat, ExplainStats, InferStats, ModelStats, StatisticsResponse,
};
