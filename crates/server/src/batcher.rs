//! A per-model dynamic batcher on V2 tensors.
//!
//! Compatible requests (same input names in order, datatypes, non-batch dimensions and
//! request parameters) are concatenated along dimension 0 and run as one [`Model::infer`]
//! call; every output is split back so each request receives exactly its own rows and the
//! outputs it asked for.
//!
//! A batch closes when its rows reach [`BatcherConfig::max_batch_size`] or one of the
//! preferred sizes, or [`BatcherConfig::max_queue_delay`] after its first request arrived,
//! whichever comes first. The delay is timed below the tokio timer's millisecond
//! granularity.
//!
//! There is no dispatcher in the request path. With no delay (the default), a request
//! that finds an execution slot free leads: it yields once, so that requests already
//! ready on its worker queue up behind it, then takes the queue and runs the batch itself,
//! inline on its worker thread like a call without the batcher, and answers the others.
//! Requests that arrive while every slot is taken (see [`BatcherConfig::parallelism`])
//! wait, and are batched together when a slot is given back. A request whose arrival
//! completes a batch runs it the same way; a small background task runs the batches whose
//! delay ends, those left queued when a slot is given back, and drains the queue on
//! shutdown. [`Execution::BlockingPool`] runs batches on tokio's blocking pool instead.
//!
//! Admission is bounded: beyond [`BatcherConfig::max_queue_size`] waiting requests, new
//! ones fail at once with [`Error::Unavailable`] (503). A request still queued at its
//! deadline is answered [`Error::Timeout`]; a request whose caller went away leaves the
//! queue without running. A batch, once taken, always completes and answers all its
//! requests, whichever of them goes away; a panic in the model fails that batch only.

mod clock;
mod exec;
mod queue;
mod state;
mod task;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use oxserve_protocol::{InferRequest, Tensor};
use parking_lot::Mutex;
use tokio::sync::oneshot::{self, error::TryRecvError};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::model::Model;

use self::queue::{Entry, Policy, Signature};
use self::state::{Next, Pending, Refused, Shared, State};

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

/// Where a batcher runs its batches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Execution {
    /// On the worker thread of whoever takes the batch, like a model call without the
    /// batcher: no thread hop, no wake-up. The default.
    #[default]
    Inline,
    /// On tokio's blocking pool, leaving the worker free to receive requests while the
    /// model runs.
    BlockingPool,
}

/// A handle to a model's batcher; clone it freely. Dropping the last clone shuts the
/// batcher down like [`Batcher::shutdown`], without waiting.
#[derive(Debug, Clone)]
pub struct Batcher {
    inner: Arc<Handle>,
}

/// What the clones of a [`Batcher`] share; closes the batcher when the last one goes.
#[derive(Debug)]
struct Handle {
    shared: Arc<Shared>,
    done: watch::Receiver<bool>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl Batcher {
    /// Starts a batcher for `model` on the current tokio runtime, running batches inline.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, like [`tokio::spawn`].
    pub fn spawn(model: Arc<dyn Model>, config: BatcherConfig) -> Batcher {
        Batcher::spawn_with(model, config, Execution::Inline)
    }

    /// Starts a batcher for `model` on the current tokio runtime, running batches as
    /// `execution` says.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, like [`tokio::spawn`].
    pub fn spawn_with(
        model: Arc<dyn Model>,
        config: BatcherConfig,
        execution: Execution,
    ) -> Batcher {
        let BatcherConfig {
            max_batch_size,
            max_queue_delay,
            preferred_batch_sizes,
            max_queue_size,
            parallelism,
        } = config;
        let shared = Arc::new(Shared {
            name: Arc::from(model.metadata().name.as_str()),
            model,
            policy: Policy {
                max_batch_size: max_batch_size.max(1),
                max_queue_delay,
                preferred_batch_sizes,
            },
            parallelism: parallelism.max(1),
            max_queue_size,
            execution,
            closed: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            wake: Notify::new(),
        });
        let (done_tx, done) = watch::channel(false);
        tokio::spawn(task::run(Arc::clone(&shared), done_tx));
        Batcher { inner: Arc::new(Handle { shared, done }) }
    }

    /// Queues `request`, waits for its batch and returns its own outputs (those it asked
    /// for, or all) with how it was served.
    ///
    /// Fails with 400 when the request cannot be batched (no inputs, a rank-0 input,
    /// inputs disagreeing on dimension 0), 503 when the queue is full or the batcher is
    /// shutting down, 504 when it is still queued after `timeout`, and with the model's
    /// error otherwise. Dropping the future withdraws a request that has not started; a
    /// batch already started completes for all its other requests.
    pub async fn infer(
        &self,
        request: InferRequest,
        timeout: Option<Duration>,
    ) -> Result<(Vec<Tensor>, BatchInfo)> {
        let arrived = Instant::now();
        let shared = &self.inner.shared;
        if shared.closed.load(Ordering::Acquire) {
            return Err(self.shutting_down());
        }
        let (signature, rows) = Signature::of(&request)?;
        let (reply, mut answer) = oneshot::channel();
        let deadline = timeout.and_then(|t| arrived.checked_add(t));
        let entry = Entry {
            signature,
            rows,
            arrived,
            deadline,
            payload: Pending { id: 0, request, reply },
        };
        let (id, lead) = shared.enqueue(entry).map_err(|refused| match refused {
            Refused::Closed => self.shutting_down(),
            Refused::Full(waiting) => self.queue_full(waiting),
        })?;
        // From here until it is answered, dropping this future withdraws the request.
        let mut queued = Withdraw { shared, id: Some(id) };
        if lead {
            // Let requests already ready on this worker queue up first and join the batch.
            tokio::task::yield_now().await;
        }
        // Run batches while one is ready and a slot is free (usually exactly one, holding
        // this request), until this request is answered.
        let answered = loop {
            match answer.try_recv() {
                Ok(answered) => break Some(answered),
                Err(TryRecvError::Closed) => break None,
                Err(TryRecvError::Empty) => {}
            }
            match shared.take(Instant::now()) {
                Next::Run(batch) => shared.run(batch),
                Next::WaitUntil(_) | Next::Idle | Next::Finished => break None,
            }
        };
        let answered = match answered {
            Some(answered) => Ok(answered),
            None => match deadline {
                None => (&mut answer).await,
                Some(deadline) => tokio::select! {
                    biased;
                    answered = &mut answer => answered,
                    () = tokio::time::sleep_until(deadline) => match queued.withdraw() {
                        Some(entry) => {
                            return Err(shared.timed_out(entry.arrived, Instant::now()));
                        }
                        // Already taken into a batch: that batch answers.
                        None => (&mut answer).await,
                    },
                },
            },
        };
        queued.id = None;
        answered.map_err(|_| self.stopped())?
    }

    /// Requests admitted and waiting for a batch.
    pub fn queue_len(&self) -> usize {
        self.inner.shared.queue_len()
    }

    /// Stops accepting requests (new calls fail with 503), runs everything already queued
    /// without further delay, waits for the batches in flight, then returns. Calling it
    /// again, from any clone, waits for the same end.
    pub async fn shutdown(&self) {
        self.inner.shared.close();
        let mut done = self.inner.done.clone();
        // An error means the task dropped its sender: it has ended too.
        let _ = done.wait_for(|finished| *finished).await;
    }

    fn queue_full(&self, waiting: usize) -> Error {
        Error::Unavailable(format!(
            "model \"{}\": queue is full ({waiting} requests waiting)",
            self.inner.shared.name
        ))
    }

    fn shutting_down(&self) -> Error {
        Error::Unavailable(format!(
            "model \"{}\": batcher is shutting down",
            self.inner.shared.name
        ))
    }

    fn stopped(&self) -> Error {
        Error::Unavailable(format!("model \"{}\": batcher stopped", self.inner.shared.name))
    }
}

/// A request's place in the queue, withdrawn if its caller goes away before it is taken.
struct Withdraw<'a> {
    shared: &'a Shared,
    /// `None` once the request has left the queue.
    id: Option<u64>,
}

impl Withdraw<'_> {
    /// Removes the request if it is still queued.
    fn withdraw(&mut self) -> Option<Entry<Pending>> {
        self.shared.withdraw(self.id.take()?)
    }
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        self.withdraw();
    }
}
