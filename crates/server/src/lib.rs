//! The oxserve model server: a model repository, runtimes, a per-model batcher and REST +
//! gRPC frontends over one inference core.

pub mod batcher;
pub mod error;
pub mod model;
pub mod runtimes;

pub use error::{Error, Result};
pub use model::Model;
