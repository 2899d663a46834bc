//! oxserve-agent: the pieces that run beside a model server, as a sidecar (`oxserve agent`)
//! or as a library.
//!
//! - [`puller`]: fetches a model from a storage URI (`s3://`, `gs://`, Azure, `http(s)://`,
//!   `file://`, `pvc://`) into a local directory through a shared, content-keyed cache.
//! - [`logger`]: ships inference requests and responses as CloudEvents to an HTTP sink.
//! - [`batcher`]: merges concurrent V1/V2 inference requests into one upstream call.
//! - [`proxy`]: the HTTP front that puts the logger and batcher in front of any server.
//! - [`watcher`]: reconciles a server's loaded models with a models config file.

pub mod archive;
pub mod batcher;
mod error;
pub mod logger;
pub mod progress;
pub mod proxy;
pub mod puller;
pub mod storage;
pub mod watcher;

pub use error::{Error, Result};
