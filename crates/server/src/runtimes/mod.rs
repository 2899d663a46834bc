//! Model runtimes, chosen by the file format found in a model directory.

pub mod lightgbm;
pub mod onnx;
mod tree;
pub mod xgboost;
mod ubjson;

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::model::Model;
use crate::repository::{ModelFormat, VersionFile};
use crate::settings::ModelSettings;

/// Loads one model version with the runtime its file format calls for. Blocking.
pub fn load(name: &str, file: &VersionFile, settings: &ModelSettings) -> Result<Arc<dyn Model>> {
    let _ = settings;
    match file.format {
        ModelFormat::Onnx | ModelFormat::Xgboost | ModelFormat::Lightgbm => Err(Error::load(
            name,
            format!("no runtime for {:?} yet", file.format),
        )),
    }
}
