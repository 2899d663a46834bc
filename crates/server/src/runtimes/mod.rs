//! Model runtimes, chosen by the file format found in a model directory.

pub mod lightgbm;
pub mod onnx;
pub mod xgboost;
