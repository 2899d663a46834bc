//! Load tools for the oxserve benchmarks (`cargo xtask bench server`).
//!
//! Two binaries live here: `oxserve-grpc-load`, a closed-loop gRPC load driver for the V2
//! `ModelInfer` RPC, and `oxserve-bare`, a ceiling server that answers V2 REST and gRPC
//! inference with fixed bytes captured from oxserve, so a run can say how much of the
//! transport's capacity the real server keeps. This library holds what both share and what
//! is worth a unit test: the request they send, duration parsing and the latency summary.

pub mod chart;
pub mod duration;
pub mod request;
pub mod summary;
