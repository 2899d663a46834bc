//! Integration tests of the router against real `oxserve serve` replicas (in-process, on
//! loopback ports): routing over every transport, the weighted split, table changes under
//! load, scale from zero, transformer chaining and error answers.

mod activation;
mod routing;
mod split;
mod support;
