//! placeholder: onnx runtime
