//! The batcher task: the single owner of a model's queue. It receives requests over the
//! bounded channel, answers timed-out and abandoned ones, forms batches with
//! [`queue::plan`](super::queue::plan) and runs at most `parallelism` of them at once on
//! blocking threads.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use oxserve_protocol::InferRequest;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};

use super::Shared;
use super::exec::{self, Part, Reply};
use super::queue::{self, Entry, Plan, Policy};
use crate::error::Error;
use crate::model::Model;

/// A queued request's payload: the request itself and where to answer it.
#[derive(Debug)]
pub(crate) struct Pending {
    pub request: InferRequest,
    pub reply: Reply,
}

/// What the handles send to the task.
#[derive(Debug)]
pub(crate) enum Message {
    /// A new request, already admitted (counted in `Shared::queued`).
    Request(Entry<Pending>),
    /// Stop accepting, finish everything, then end.
    Shutdown,
}

/// Everything the task needs besides its channel.
pub(crate) struct Task {
    pub model: Arc<dyn Model>,
    pub shared: Arc<Shared>,
    pub policy: Policy,
    pub parallelism: usize,
    pub rx: mpsc::Receiver<Message>,
    /// Set to `true` (and dropped) when the task ends.
    pub done: watch::Sender<bool>,
}

impl Task {
    /// Runs until shut down (or every handle is dropped) and everything queued and in
    /// flight has been answered.
    pub(crate) async fn run(mut self) {
        let mut queue: VecDeque<Entry<Pending>> = VecDeque::new();
        let mut running: JoinSet<()> = JoinSet::new();
        let mut receiving = true;
        let mut draining = false;
        loop {
            let now = Instant::now();
            self.sweep(&mut queue, now);
            let flush = draining || !receiving;
            let mut wake = None;
            while running.len() < self.parallelism {
                match queue::plan(&queue, now, &self.policy, flush) {
                    Plan::Run(n) => {
                        let n = n.min(queue.len());
                        let batch: Vec<Entry<Pending>> = queue.drain(..n).collect();
                        self.shared.queued.fetch_sub(batch.len(), Ordering::AcqRel);
                        self.dispatch(&mut running, batch, now);
                    }
                    Plan::WaitUntil(t) => {
                        wake = Some(t);
                        break;
                    }
                    Plan::Idle => break,
                }
            }
            wake = match (wake, queue::next_deadline(&queue)) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if !receiving && queue.is_empty() && running.is_empty() {
                break;
            }
            tokio::select! {
                message = self.rx.recv(), if receiving => match message {
                    Some(message) => {
                        self.accept(message, &mut queue, &mut draining);
                        // Take everything else already buffered before planning again.
                        while let Ok(message) = self.rx.try_recv() {
                            self.accept(message, &mut queue, &mut draining);
                        }
                    }
                    None => receiving = false,
                },
                Some(joined) = running.join_next(), if !running.is_empty() => {
                    if let Err(e) = joined {
                        tracing::error!(model = %self.shared.name, error = %e, "batch task failed");
                    }
                }
                () = sleep_until(wake.unwrap_or(now)), if wake.is_some() => {}
            }
        }
        let _ = self.done.send(true);
    }

    /// Handles one message from the handles.
    fn accept(
        &mut self,
        message: Message,
        queue: &mut VecDeque<Entry<Pending>>,
        draining: &mut bool,
    ) {
        match message {
            Message::Request(entry) => queue.push_back(entry),
            Message::Shutdown => {
                *draining = true;
                // Requests already buffered are still received and answered.
                self.rx.close();
            }
        }
    }

    /// Drops requests whose caller went away and answers those past their deadline.
    fn sweep(&self, queue: &mut VecDeque<Entry<Pending>>, now: Instant) {
        let abandoned = queue::remove_where(queue, |e| e.payload.reply.is_closed());
        self.shared.queued.fetch_sub(abandoned.len(), Ordering::AcqRel);
        let expired = queue::take_expired(queue, now);
        self.shared.queued.fetch_sub(expired.len(), Ordering::AcqRel);
        for entry in expired {
            let waited = now.saturating_duration_since(entry.arrived);
            let message = format!(
                "model \"{}\": request timed out after {} ms in the queue",
                self.shared.name,
                waited.as_millis()
            );
            let _ = entry.payload.reply.send(Err(Error::Timeout(message)));
        }
    }

    /// Starts one batch on a blocking thread.
    fn dispatch(&self, running: &mut JoinSet<()>, batch: Vec<Entry<Pending>>, now: Instant) {
        let parts: Vec<Part> = batch
            .into_iter()
            .map(|entry| Part {
                request: entry.payload.request,
                rows: entry.rows,
                queue_time: now.saturating_duration_since(entry.arrived),
                reply: entry.payload.reply,
            })
            .collect();
        let model = Arc::clone(&self.model);
        let name = Arc::clone(&self.shared.name);
        running.spawn_blocking(move || exec::execute(&*model, &name, parts));
    }
}
