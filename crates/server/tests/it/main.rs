//! Integration tests of the server library: the explanation endpoints over the real REST
//! router and a real gRPC server on loopback, and (ignored, run by `cargo xtask test`)
//! KernelSHAP against the `shap` package; every overload and slow-client bound.

mod explain;
mod limits;
mod python;
mod repository;
mod support;
