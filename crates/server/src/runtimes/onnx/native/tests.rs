//! Tests of the native evaluator against ONNX Runtime on models built here.
