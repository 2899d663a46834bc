//! Integration tests of the server library: the explanation endpoints over the real REST
//! router and a real gRPC server on loopback, and (ignored, run by `cargo xtask test`)
//! KernelSHAP against the `shap` package.

mod explain;
mod python;
mod support;
