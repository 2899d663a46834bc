//! Per-model admission: at most `max_inflight` requests of one model version are worked on
//! at once, at most `max_queue` more wait for a turn, and anything beyond is shed at once
//! with [`Error::Unavailable`] (503 + `Retry-After` on REST, `UNAVAILABLE` on gRPC).
//!
//! Admission happens before a REST body is read, so a shed request costs its headers only,
//! and the memory the server holds in request bodies is bounded by
//! `(max_inflight + max_queue) × max_body_bytes` per model. A request is "in flight" from
//! admission until its response is built: body read, decode, queueing in the batcher,
//! inference and encode.
//!
//! Why UNAVAILABLE and not RESOURCE_EXHAUSTED on gRPC: UNAVAILABLE is the code gRPC
//! defines as transient and safe to retry with backoff, the one Triton answers when its
//! queue is full ("Exceeds maximum queue size"), and the one tritonclient's and gRPC's
//! retry policies retry; RESOURCE_EXHAUSTED is reserved here for a message that is too
//! large, which retrying cannot fix.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::Error;

/// Default in-flight requests per model version: far above what one model runs at once on
/// a CPU, so batches still fill and normal loads are never shed.
pub const DEFAULT_MAX_INFLIGHT: usize = 1024;
/// Default requests waiting for an in-flight slot per model version.
pub const DEFAULT_MAX_QUEUE: usize = 1024;
/// Seconds a shed client is asked to wait before retrying (`Retry-After`).
pub const RETRY_AFTER_SECS: u32 = 1;

/// The per-model bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Requests worked on at once (at least 1).
    pub max_inflight: usize,
    /// Requests waiting for a slot (0: shed as soon as every slot is taken).
    pub max_queue: usize,
}

impl Default for AdmissionLimits {
    fn default() -> Self {
        AdmissionLimits { max_inflight: DEFAULT_MAX_INFLIGHT, max_queue: DEFAULT_MAX_QUEUE }
    }
}

/// The admission gate of one model version.
pub struct Admission {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    limits: AdmissionLimits,
}

/// A request's in-flight slot; the slot is free again when this is dropped.
#[derive(Debug)]
pub struct Admitted(#[allow(dead_code)] OwnedSemaphorePermit);

/// Counts a waiting request until dropped (also when the waiting future is cancelled).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Admission {
        let limits = AdmissionLimits { max_inflight: limits.max_inflight.max(1), ..limits };
        Admission {
            slots: Arc::new(Semaphore::new(limits.max_inflight)),
            waiting: AtomicUsize::new(0),
            limits,
        }
    }

    /// The bounds this gate enforces.
    pub fn limits(&self) -> AdmissionLimits {
        self.limits
    }

    /// Requests waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Takes a slot, waiting in the queue when all are busy; sheds when the queue is full.
    pub async fn admit(&self, model: &str) -> Result<Admitted, Error> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(Admitted(permit));
        }
        let queued = self.waiting.fetch_add(1, Ordering::AcqRel);
        let _waiting = Waiting(&self.waiting);
        if queued >= self.limits.max_queue {
            return Err(Error::Unavailable(format!(
                "model \"{model}\" is overloaded: {} requests in flight and {} waiting (the limits); retry later",
                self.limits.max_inflight, self.limits.max_queue
            )));
        }
        // The semaphore is never closed, so acquiring only waits.
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Unavailable(format!("model \"{model}\" is shutting down")))?;
        Ok(Admitted(permit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn admits_up_to_the_slots_queues_up_to_the_queue_and_sheds_beyond() {
        let gate = Arc::new(Admission::new(AdmissionLimits { max_inflight: 2, max_queue: 1 }));
        let a = gate.admit("m").await.unwrap();
        let _b = gate.admit("m").await.unwrap();
        let queued = tokio::spawn({
            let gate = gate.clone();
            async move { gate.admit("m").await.map(drop) }
        });
        while gate.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        let shed = gate.admit("m").await.unwrap_err();
        assert_eq!(shed.code(), oxserve_protocol::ErrorCode::Unavailable);
        assert!(shed.to_string().contains("2 requests in flight and 1 waiting"), "{shed}");
        assert_eq!(gate.waiting(), 1, "the shed request left the queue as it was");
        drop(a);
        queued.await.unwrap().unwrap();
        assert_eq!(gate.waiting(), 0);
    }

    #[tokio::test]
    async fn a_cancelled_wait_leaves_the_queue() {
        let gate = Admission::new(AdmissionLimits { max_inflight: 1, max_queue: 1 });
        let _held = gate.admit("m").await.unwrap();
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(10), gate.admit("m")).await;
        assert!(waited.is_err(), "still waiting for the slot");
        assert_eq!(gate.waiting(), 0);
        // The queue has room again: this one waits instead of being shed.
        let again =
            tokio::time::timeout(std::time::Duration::from_millis(10), gate.admit("m")).await;
        assert!(again.is_err());
    }

    #[tokio::test]
    async fn no_queue_sheds_as_soon_as_the_slots_are_taken() {
        let gate = Admission::new(AdmissionLimits { max_inflight: 0, max_queue: 0 });
        assert_eq!(gate.limits().max_inflight, 1, "at least one slot");
        let _held = gate.admit("m").await.unwrap();
        assert!(gate.admit("m").await.is_err());
    }
}
