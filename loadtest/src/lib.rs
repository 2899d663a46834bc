//! Load tools for the oxserve benchmarks (`cargo xtask bench server`).
//!
//! Two binaries live here: `oxserve-grpc-load`, a closed-loop gRPC load driver for the V2
//! `ModelInfer` RPC, and `oxserve-bare`, a ceiling server that answers V2 REST and gRPC
//! inference with fixed bytes captured from oxserve, so a run can say how much of the
//! transport's capacity the real server keeps. This library holds what both share and what
//! is worth a unit test: the request they send, duration parsing and the latency summary.
//!
//! It also holds the pure half of `cargo xtask loadtest`: the scenarios' manifests and
//! judgement ([`scenario`]), what a run records ([`record`]), the open-loop schedule
//! ([`openloop`]), the arithmetic over samples ([`analysis`]), a Prometheus text reader
//! ([`prom`]), the criteria ([`verdict`]) and the reports ([`report`]). The driver that puts
//! load on a platform is the `oxserve-loadtest` binary, built only with the `goose` feature.

pub mod analysis;
pub mod chart;
pub mod duration;
pub mod openloop;
pub mod prom;
pub mod record;
pub mod report;
pub mod request;
pub mod scenario;
pub mod summary;
pub mod verdict;
