//! What a model's batcher shares between its handles, the requests waiting in it and its
//! background task: the queue, the number of batches executing, and the few moves every
//! party makes on them under one lock — enqueue, withdraw, take the next batch when an
//! execution slot is free, give the slot back.
//!
//! Whoever takes a batch runs it: the request that found the model idle (the leader), a
//! request whose arrival completed a batch, or the background task (a delay ended, a slot
//! came free while requests waited, shutdown). The slot is a guard, so it is given back
//! however the batch ends.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::Execution;
use super::exec::{self, Part, Reply};
use super::queue::{self, Entry, Plan, Policy};
use crate::error::Error;
use crate::model::Model;

/// A queued request's payload: its identity, the request itself and where to answer it.
#[derive(Debug)]
pub(crate) struct Pending {
    /// Unique within the batcher, so a waiter can find (and withdraw) its own entry.
    pub id: u64,
    pub request: oxserve_protocol::InferRequest,
    pub reply: Reply,
}

/// The mutable part, behind [`Shared::state`].
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Admitted requests not yet taken into a batch (or answered), oldest first.
    pub queue: VecDeque<Entry<Pending>>,
    /// Batches executing now, at most [`Shared::parallelism`].
    pub running: usize,
    /// No new requests; what is queued runs without further delay.
    pub closed: bool,
    next_id: u64,
}

/// Everything the handles, the waiting requests and the task share.
pub(crate) struct Shared {
    /// The model's name, for messages.
    pub name: Arc<str>,
    pub model: Arc<dyn Model>,
    pub policy: Policy,
    /// Most batches executing at once (at least 1).
    pub parallelism: usize,
    /// Most requests in the queue.
    pub max_queue_size: usize,
    pub execution: Execution,
    /// Set with `State::closed`, read without the lock to refuse early.
    pub closed: AtomicBool,
    pub state: Mutex<State>,
    /// Wakes the background task: a new head whose delay must be timed, a slot given back
    /// while requests wait, a withdrawn entry, shutdown.
    pub wake: Notify,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("name", &self.name)
            .field("policy", &self.policy)
            .field("parallelism", &self.parallelism)
            .field("execution", &self.execution)
            .finish_non_exhaustive()
    }
}

/// Why a request was not queued.
pub(crate) enum Refused {
    Closed,
    /// The queue holds this many requests already.
    Full(usize),
}

/// What the queue offers to whoever looks.
pub(crate) enum Next {
    /// A batch to run now; its slot is taken.
    Run(Batch),
    /// The head batch may still grow; look again at this instant (or when woken).
    WaitUntil(Instant),
    /// Nothing to run now: the queue is empty, or every slot is taken.
    Idle,
    /// Closed, empty and nothing executing: the batcher is done.
    Finished,
}

/// A batch taken from the queue, holding its execution slot.
pub(crate) struct Batch {
    parts: Vec<Part>,
    slot: Slot,
}

/// One execution slot; dropping it gives it back and wakes the task when work waits.
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.finish();
    }
}

impl Shared {
    /// Queues `entry` unless the batcher is closed or full. Returns its id and whether the
    /// caller should lead: no delay is configured and a slot is free, so it may take the
    /// batch itself.
    pub(crate) fn enqueue(&self, mut entry: Entry<Pending>) -> Result<(u64, bool), Refused> {
        let mut state = self.state.lock();
        if state.closed {
            return Err(Refused::Closed);
        }
        if state.queue.len() >= self.max_queue_size {
            return Err(Refused::Full(state.queue.len()));
        }
        let id = state.next_id;
        state.next_id += 1;
        entry.payload.id = id;
        state.queue.push_back(entry);
        let delayed = !self.policy.max_queue_delay.is_zero();
        let lead = !delayed && state.running < self.parallelism;
        let new_head = state.queue.len() == 1;
        drop(state);
        if delayed && new_head {
            // A new batch starts: the task times its delay.
            self.wake.notify_one();
        }
        Ok((id, lead))
    }

    /// Removes the entry `id` if it is still queued (not taken into a batch, not answered).
    pub(crate) fn withdraw(&self, id: u64) -> Option<Entry<Pending>> {
        let mut state = self.state.lock();
        let at = state.queue.iter().position(|e| e.payload.id == id)?;
        let entry = state.queue.remove(at);
        let others = !state.queue.is_empty();
        drop(state);
        if others {
            // The head (and so the plan) may have changed.
            self.wake.notify_one();
        }
        entry
    }

    /// Answers expired and drops abandoned entries, then takes the next batch if it should
    /// run now and a slot is free.
    pub(crate) fn take(self: &Arc<Self>, now: Instant) -> Next {
        let mut state = self.state.lock();
        self.sweep(&mut state.queue, now);
        if state.closed && state.queue.is_empty() && state.running == 0 {
            return Next::Finished;
        }
        if state.running >= self.parallelism {
            // The running batch's slot wakes the task when it is given back.
            return Next::Idle;
        }
        let n = match queue::plan(&state.queue, now, &self.policy, state.closed) {
            Plan::Run(n) => n.min(state.queue.len()),
            Plan::WaitUntil(t) => return Next::WaitUntil(t),
            Plan::Idle => return Next::Idle,
        };
        let parts: Vec<Part> = state
            .queue
            .drain(..n)
            .map(|entry| Part {
                request: entry.payload.request,
                rows: entry.rows,
                queue_time: now.saturating_duration_since(entry.arrived),
                reply: entry.payload.reply,
            })
            .collect();
        state.running += 1;
        let more = !state.queue.is_empty();
        drop(state);
        if more {
            // A new head: its delay starts counting, or it runs when a slot frees.
            self.wake.notify_one();
        }
        Next::Run(Batch { parts, slot: Slot(Arc::clone(self)) })
    }

    /// Runs `batch` as configured: here and now, or on the blocking pool. Either way the
    /// batch completes and answers all its requests even if the caller's future is dropped
    /// afterwards: inline execution has no await point, and a blocking-pool job runs to
    /// its end on its own.
    pub(crate) fn run(self: &Arc<Self>, batch: Batch) {
        match self.execution {
            Execution::Inline => self.execute(batch),
            Execution::BlockingPool => {
                let shared = Arc::clone(self);
                // Detached: the job answers through the replies and frees its slot itself.
                drop(tokio::task::spawn_blocking(move || shared.execute(batch)));
            }
        }
    }

    /// Stops accepting requests and wakes the task to drain the queue.
    pub(crate) fn close(&self) {
        self.state.lock().closed = true;
        self.closed.store(true, std::sync::atomic::Ordering::Release);
        self.wake.notify_one();
    }

    /// Requests waiting in the queue.
    pub(crate) fn queue_len(&self) -> usize {
        self.state.lock().queue.len()
    }

    fn execute(&self, batch: Batch) {
        let Batch { parts, slot } = batch;
        exec::execute(&*self.model, &self.name, parts);
        drop(slot);
    }

    /// Gives a slot back.
    fn finish(&self) {
        let mut state = self.state.lock();
        state.running = state.running.saturating_sub(1);
        let wake = state.closed || !state.queue.is_empty();
        drop(state);
        if wake {
            self.wake.notify_one();
        }
    }

    /// Drops entries whose caller went away and answers those past their deadline.
    fn sweep(&self, queue: &mut VecDeque<Entry<Pending>>, now: Instant) {
        queue::remove_where(queue, |e| e.payload.reply.is_closed());
        for entry in queue::take_expired(queue, now) {
            let error = self.timed_out(entry.arrived, now);
            let _ = entry.payload.reply.send(Err(error));
        }
    }

    /// The error of a request that waited in the queue from `arrived` until `now`.
    pub(crate) fn timed_out(&self, arrived: Instant, now: Instant) -> Error {
        let waited = now.saturating_duration_since(arrived);
        Error::Timeout(format!(
            "model \"{}\": request timed out after {} ms in the queue",
            self.name,
            waited.as_millis()
        ))
    }
}
