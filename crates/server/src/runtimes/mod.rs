//! Model runtimes, chosen by the file format found in a model directory.

pub mod lightgbm;
pub mod onnx;
pub(crate) mod tree;
mod ubjson;
pub mod xgboost;

use std::sync::Arc;

use crate::error::Result;
use crate::model::Model;
use crate::repository::{ModelFormat, VersionFile};
use crate::settings::ModelSettings;

/// Loads one model version with the runtime its file format calls for. Blocking.
pub fn load(name: &str, file: &VersionFile, settings: &ModelSettings) -> Result<Arc<dyn Model>> {
    let path = file.file.as_path();
    Ok(match file.format {
        ModelFormat::Onnx => {
            let defaults = onnx::OnnxOptions::default();
            let options = onnx::OnnxOptions {
                intra_op_threads: settings.intra_op_threads.unwrap_or(defaults.intra_op_threads),
                sessions: settings.sessions.unwrap_or(defaults.sessions),
                native: settings.onnx_native.unwrap_or(defaults.native),
            };
            Arc::new(onnx::load(name, path, &options)?)
        }
        ModelFormat::Xgboost => Arc::new(xgboost::XgboostModel::load(name, path)?),
        ModelFormat::Lightgbm => Arc::new(lightgbm::LightgbmModel::load(name, path)?),
    })
}
