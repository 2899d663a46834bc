//! Integration tests of oxserve-security: real listeners on 127.0.0.1, certificates made
//! at test time, clients speaking raw HTTP/1.1 over rustls.

mod auth;
mod certs;
mod support;
mod tls;
