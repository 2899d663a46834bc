//! The batcher's background task. Requests run their batches themselves when they can;
//! the task covers the cases where no request is there to do it: a batch whose delay ends
//! (timed with [`clock::sleep_until`], below the timer's millisecond granularity), requests
//! left queued when an execution slot is given back, and draining the queue on shutdown.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;

use super::clock;
use super::state::{Next, Shared};

/// Runs until the batcher is closed (shut down, or every handle dropped) and everything
/// queued and executing has been answered, then reports it on `done`.
pub(crate) async fn run(shared: Arc<Shared>, done: watch::Sender<bool>) {
    loop {
        // Registered before looking at the queue, so a wake-up in between is not lost.
        let woken = shared.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        match shared.take(Instant::now()) {
            Next::Run(batch) => {
                shared.run(batch);
                // Let the requests just answered go out before the next batch.
                tokio::task::yield_now().await;
            }
            Next::WaitUntil(t) => {
                tokio::select! {
                    () = clock::sleep_until(t) => {}
                    () = &mut woken => {}
                }
            }
            Next::Idle => woken.await,
            Next::Finished => break,
        }
    }
    let _ = done.send(true);
}
