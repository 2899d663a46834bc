//! The oxserve model server: a model repository, runtimes, a per-model batcher and REST +
//! gRPC frontends over one inference core.

pub mod accept;
pub mod admission;
pub mod batcher;
pub mod core;
pub mod error;
pub mod explain;
pub mod extensions;
pub mod grpc;
pub mod metrics;
pub mod model;
pub mod repository;
pub mod rest;
pub mod runtimes;
pub mod serve;
pub mod settings;
pub mod stats;
pub mod validate;

pub use error::{Error, Result};
pub use model::Model;
