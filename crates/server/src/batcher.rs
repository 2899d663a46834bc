//! A per-model dynamic batcher on V2 tensors.
//!
//! A [`Batcher`] is a cheap, cloneable handle over a bounded channel to one task that owns
//! the model's queue. Each request carries a oneshot reply. Compatible requests (same
//! input names in order, datatypes, non-batch dimensions and request parameters) are
//! concatenated along dimension 0 and run as one [`Model::infer`] call on a blocking
//! thread; every output is split back so each request receives exactly its own rows and
//! the outputs it asked for.
//!
//! A batch closes when its rows reach [`BatcherConfig::max_batch_size`] or one of the
//! preferred sizes, or [`BatcherConfig::max_queue_delay`] after its first request arrived,
//! whichever comes first. With no delay (the default) the batcher runs whatever is queued
//! when an execution slot is free, so requests that arrive while a batch runs are batched
//! together, without ever waiting.
//!
//! Admission is bounded: beyond [`BatcherConfig::max_queue_size`] waiting requests, new
//! ones fail at once with [`Error::Unavailable`] (503). A request still queued at its
//! deadline is answered [`Error::Timeout`]; a request whose caller went away is dropped
//! without running.

mod exec;
mod queue;
mod task;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use oxserve_protocol::{InferRequest, Tensor};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::model::Model;

use self::queue::{Entry, Policy, Signature};
use self::task::{Message, Pending, Task};

/// Most messages the channel buffers; admission is bounded by `max_queue_size` anyway.
const MAX_CHANNEL_CAPACITY: usize = 1 << 16;

/// How a [`Batcher`] forms and runs batches.
#[derive(Debug, Clone, PartialEq)]
pub struct BatcherConfig {
    /// Most rows (dimension 0) per batch; values below 1 count as 1. A single request
    /// with more rows runs alone.
    pub max_batch_size: usize,
    /// How long a batch may wait for more requests after its first one arrived.
    /// `Duration::ZERO` (the default) adds no delay: run what is queued now.
    pub max_queue_delay: Duration,
    /// Row counts at which a batch closes early, before the delay ends.
    pub preferred_batch_sizes: Vec<usize>,
    /// Most requests waiting in the queue; more are rejected with 503 (so 0 rejects
    /// every request).
    pub max_queue_size: usize,
    /// Most batches executing at once; values below 1 count as 1.
    pub parallelism: usize,
}

impl Default for BatcherConfig {
    fn default() -> Self {
        BatcherConfig {
            max_batch_size: 32,
            max_queue_delay: Duration::ZERO,
            preferred_batch_sizes: Vec::new(),
            max_queue_size: 1024,
            parallelism: 1,
        }
    }
}

/// How a request was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchInfo {
    /// From the request's arrival to the start of its batch.
    pub queue_time: Duration,
    /// How long the batch took to run (model call, merging and splitting).
    pub compute_time: Duration,
    /// Rows in the executed batch.
    pub batch_size: usize,
}

/// State shared by the handles and the task.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The model's name, for messages.
    pub name: Arc<str>,
    /// Requests admitted and not yet taken into a batch (or answered).
    pub queued: AtomicUsize,
    /// Set by [`Batcher::shutdown`]: no new requests.
    pub closed: AtomicBool,
    pub max_queue_size: usize,
}

/// A handle to a model's batcher task; clone it freely.
#[derive(Debug, Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Message>,
    shared: Arc<Shared>,
    done: watch::Receiver<bool>,
}

impl Batcher {
    /// Starts the batcher task for `model` on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, like [`tokio::spawn`].
    pub fn spawn(model: Arc<dyn Model>, config: BatcherConfig) -> Batcher {
        let shared = Arc::new(Shared {
            name: Arc::from(model.metadata().name.as_str()),
            queued: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            max_queue_size: config.max_queue_size,
        });
        // Room for every admitted request plus a few shutdown messages.
        let capacity = config.max_queue_size.clamp(1, MAX_CHANNEL_CAPACITY) + 4;
        let (tx, rx) = mpsc::channel(capacity);
        let (done_tx, done) = watch::channel(false);
        let task = Task {
            model,
            shared: Arc::clone(&shared),
            policy: Policy {
                max_batch_size: config.max_batch_size.max(1),
                max_queue_delay: config.max_queue_delay,
                preferred_batch_sizes: config.preferred_batch_sizes,
            },
            parallelism: config.parallelism.max(1),
            rx,
            done: done_tx,
        };
        tokio::spawn(task.run());
        Batcher { tx, shared, done }
    }

    /// Queues `request`, waits for its batch and returns its own outputs (those it asked
    /// for, or all) with how it was served.
    ///
    /// Fails with 400 when the request cannot be batched (no inputs, a rank-0 input,
    /// inputs disagreeing on dimension 0), 503 when the queue is full or the batcher is
    /// shutting down, 504 when it is still queued after `timeout`, and with the model's
    /// error otherwise. Dropping the future withdraws a request that has not started.
    pub async fn infer(
        &self,
        request: InferRequest,
        timeout: Option<Duration>,
    ) -> Result<(Vec<Tensor>, BatchInfo)> {
        let arrived = Instant::now();
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(self.shutting_down());
        }
        let (signature, rows) = Signature::of(&request)?;
        self.admit()?;
        let (reply, answer) = oneshot::channel();
        let entry = Entry {
            signature,
            rows,
            arrived,
            deadline: timeout.and_then(|t| arrived.checked_add(t)),
            payload: Pending { request, reply },
        };
        if let Err(e) = self.tx.try_send(Message::Request(entry)) {
            self.shared.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(match e {
                mpsc::error::TrySendError::Full(_) => self.queue_full(),
                mpsc::error::TrySendError::Closed(_) => self.shutting_down(),
            });
        }
        answer.await.map_err(|_| {
            Error::Unavailable(format!("model \"{}\": batcher stopped", self.shared.name))
        })?
    }

    /// Requests admitted and waiting for a batch.
    pub fn queue_len(&self) -> usize {
        self.shared.queued.load(Ordering::Acquire)
    }

    /// Stops accepting requests (new calls fail with 503), runs everything already queued
    /// without further delay, waits for the batches in flight, then returns. Calling it
    /// again, from any clone, waits for the same end.
    pub async fn shutdown(&self) {
        self.shared.closed.store(true, Ordering::Release);
        // Fails only when the task has already ended.
        let _ = self.tx.send(Message::Shutdown).await;
        let mut done = self.done.clone();
        // An error means the task dropped its sender: it has ended too.
        let _ = done.wait_for(|finished| *finished).await;
    }

    /// Counts one more waiting request, unless the queue is full.
    fn admit(&self) -> Result<()> {
        let max = self.shared.max_queue_size;
        self.shared
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .map(drop)
            .map_err(|_| self.queue_full())
    }

    fn queue_full(&self) -> Error {
        Error::Unavailable(format!(
            "model \"{}\": queue is full ({} requests waiting)",
            self.shared.name,
            self.queue_len()
        ))
    }

    fn shutting_down(&self) -> Error {
        Error::Unavailable(format!("model \"{}\": batcher is shutting down", self.shared.name))
    }
}
