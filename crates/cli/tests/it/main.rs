//! Integration tests of the `oxserve` binary: real processes on ephemeral loopback ports.

mod apply;
mod faults;
mod python;
mod router;
mod security;
mod serve;
mod support;
mod up;
mod up_apply;
mod up_models;
