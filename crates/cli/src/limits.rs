//! The overload and slow-client flags `oxserve serve` and `oxserve router` share: open
//! connections, request head size, head and body read timeouts; and the server's per-model
//! admission bounds.

use std::time::Duration;

use anyhow::{Result, anyhow};
use oxserve_server::accept::{ConnectionLimits, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HEADER_BYTES};
use oxserve_server::admission::{AdmissionLimits, DEFAULT_MAX_INFLIGHT, DEFAULT_MAX_QUEUE};

/// Connection-level bounds.
#[derive(clap::Args, Debug, Clone)]
pub struct ConnectionArgs {
    /// Open connections at most (all ports together); beyond it new connections wait in
    /// the listen backlog until one closes.
    #[arg(long, env = "OXSERVE_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Largest request head (request line and headers) in bytes, at least 8192; beyond it
    /// HTTP/1 answers 431.
    #[arg(long, env = "OXSERVE_MAX_HEADER_BYTES", default_value_t = DEFAULT_MAX_HEADER_BYTES)]
    pub max_header_bytes: usize,
    /// Seconds a client has to send a complete request head before the connection is closed.
    #[arg(long, env = "OXSERVE_HEADER_READ_TIMEOUT", default_value_t = 10.0)]
    pub header_read_timeout: f64,
    /// Seconds a request body may take to arrive in full (408 and the connection closed
    /// beyond it).
    #[arg(long, env = "OXSERVE_BODY_READ_TIMEOUT", default_value_t = 60.0)]
    pub body_read_timeout: f64,
}

impl ConnectionArgs {
    /// The connection limits and the body read timeout, checked.
    pub fn resolve(&self) -> Result<(ConnectionLimits, Duration)> {
        let ConnectionArgs {
            max_connections,
            max_header_bytes,
            header_read_timeout,
            body_read_timeout,
        } = self.clone();
        if max_connections == 0 {
            return Err(anyhow!("--max-connections must be at least 1"));
        }
        if max_header_bytes < 8192 {
            return Err(anyhow!(
                "--max-header-bytes must be at least 8192, got {max_header_bytes}"
            ));
        }
        let limits = ConnectionLimits {
            max_connections,
            max_header_bytes,
            header_read_timeout: seconds("--header-read-timeout", header_read_timeout)?,
        };
        Ok((limits, seconds("--body-read-timeout", body_read_timeout)?))
    }
}

/// Per-model admission bounds of `oxserve serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct AdmissionArgs {
    /// Requests one model version works on at once (body read, queueing, inference).
    #[arg(long, env = "OXSERVE_MAX_INFLIGHT_PER_MODEL", default_value_t = DEFAULT_MAX_INFLIGHT)]
    pub max_inflight_per_model: usize,
    /// Requests that may wait for one of those slots; beyond it requests are shed with 503
    /// and `Retry-After` (gRPC UNAVAILABLE).
    #[arg(long, env = "OXSERVE_MAX_QUEUE_PER_MODEL", default_value_t = DEFAULT_MAX_QUEUE)]
    pub max_queue_per_model: usize,
}

impl AdmissionArgs {
    /// The admission limits, checked.
    pub fn resolve(&self) -> Result<AdmissionLimits> {
        let AdmissionArgs { max_inflight_per_model, max_queue_per_model } = self.clone();
        if max_inflight_per_model == 0 {
            return Err(anyhow!("--max-inflight-per-model must be at least 1"));
        }
        Ok(AdmissionLimits { max_inflight: max_inflight_per_model, max_queue: max_queue_per_model })
    }
}

/// A positive, finite number of seconds.
fn seconds(flag: &str, value: f64) -> Result<Duration> {
    if value <= 0.0 {
        return Err(anyhow!("{flag} must be a positive number of seconds, got {value}"));
    }
    Duration::try_from_secs_f64(value)
        .map_err(|_| anyhow!("{flag} must be a positive number of seconds, got {value}"))
}
