//! Integration tests of oxserve-agent against real servers on loopback: an S3-compatible
//! server (moto, from the venv `cargo xtask test` prepares), HTTP file servers and sinks.

mod faults;
mod http_pull;
mod logger;
mod proxy;
mod s3;
mod support;
mod watcher;
