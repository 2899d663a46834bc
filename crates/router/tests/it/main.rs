//! Integration tests of the router against real `oxserve serve` replicas (in-process, on
//! loopback ports): routing over every transport, the weighted split, table changes under
//! load, scale from zero, transformer chaining, error answers and the slow-client bounds.

mod activation;
mod limits;
mod routing;
mod split;
mod support;
