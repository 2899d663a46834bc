//! A sleep that ends close to its deadline, below the timer's millisecond granularity.
//!
//! tokio's timer works in whole milliseconds and rounds deadlines up, so a 500 µs
//! `sleep` ends 1–2 ms later. [`sleep_until`] sleeps on tokio's timer until about a
//! millisecond before the deadline, then hands the rest to one process-wide timer
//! thread, which waits on the kernel's high-resolution timer (a condition variable with a
//! timeout) and wakes the task. The worker stays free meanwhile: no spinning that would
//! burn its core or, on a busy machine, cost it its time slice.
//!
//! Whichever of the two timers fires first ends the wait, and only once tokio's clock has
//! reached the deadline; so a paused test clock (which the timer thread cannot see) still
//! decides when the wait ends.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

/// How early tokio's timer may be asked to wake us: its granularity.
const TIMER_GRANULARITY: Duration = Duration::from_millis(1);

/// Waits until `deadline` (on tokio's clock), ending within tens of microseconds after it
/// on the real clock.
pub(crate) async fn sleep_until(deadline: Instant) {
    if let Some(coarse) = deadline.checked_sub(TIMER_GRANULARITY)
        && Instant::now() < coarse
    {
        tokio::time::sleep_until(coarse).await;
    }
    if Instant::now() >= deadline {
        return;
    }
    tokio::select! {
        () = Precise::new(deadline.into_std()) => {}
        () = tokio::time::sleep_until(deadline) => return,
    }
    if Instant::now() < deadline {
        // The real clock passed the deadline, tokio's did not: it is paused (a test).
        tokio::time::sleep_until(deadline).await;
    }
}

/// A future ready at a real-clock instant, woken by the timer thread.
struct Precise {
    deadline: std::time::Instant,
    alarm: Option<Arc<Alarm>>,
}

/// One registration with the timer thread.
#[derive(Default)]
struct Alarm {
    fired: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Precise {
    fn new(deadline: std::time::Instant) -> Precise {
        Precise { deadline, alarm: None }
    }
}

impl Future for Precise {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if std::time::Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        let deadline = self.deadline;
        let alarm = self.alarm.get_or_insert_with(|| {
            let alarm = Arc::new(Alarm::default());
            TimerThread::get().register(deadline, Arc::clone(&alarm));
            alarm
        });
        *alarm.waker.lock().unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
        // Fired between the check above and storing the waker: it may have woken nobody.
        if alarm.fired.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

/// The process-wide timer thread and its alarms, earliest first. An alarm whose future
/// was dropped simply fires into nothing at its deadline.
struct TimerThread {
    alarms: Mutex<BinaryHeap<Reverse<Due>>>,
    changed: Condvar,
}

struct Due {
    at: std::time::Instant,
    alarm: Arc<Alarm>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

impl TimerThread {
    /// The timer thread, started on first use.
    fn get() -> &'static TimerThread {
        static THREAD: OnceLock<&'static TimerThread> = OnceLock::new();
        THREAD.get_or_init(|| {
            let timer: &'static TimerThread = Box::leak(Box::new(TimerThread {
                alarms: Mutex::new(BinaryHeap::new()),
                changed: Condvar::new(),
            }));
            let spawned =
                std::thread::Builder::new().name("oxserve-batch-timer".into()).spawn(|| {
                    timer.run();
                });
            if let Err(e) = spawned {
                // Without the thread, waits end on tokio's timer alone (a little late).
                tracing::warn!(error = %e, "cannot start the batch timer thread");
            }
            timer
        })
    }

    fn register(&self, at: std::time::Instant, alarm: Arc<Alarm>) {
        let mut alarms = self.alarms.lock().unwrap_or_else(PoisonError::into_inner);
        let earliest = alarms.peek().is_none_or(|Reverse(first)| at < first.at);
        alarms.push(Reverse(Due { at, alarm }));
        drop(alarms);
        if earliest {
            self.changed.notify_one();
        }
    }

    fn run(&self) {
        let mut alarms = self.alarms.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let now = std::time::Instant::now();
            while alarms.peek().is_some_and(|Reverse(first)| first.at <= now) {
                if let Some(Reverse(due)) = alarms.pop() {
                    due.alarm.fired.store(true, Ordering::Release);
                    let waker =
                        due.alarm.waker.lock().unwrap_or_else(PoisonError::into_inner).take();
                    if let Some(waker) = waker {
                        waker.wake();
                    }
                }
            }
            let timeout =
                alarms.peek().map(|Reverse(first)| first.at.saturating_duration_since(now));
            alarms = match timeout {
                None => self.changed.wait(alarms).unwrap_or_else(PoisonError::into_inner),
                Some(timeout) => {
                    let waited = self.changed.wait_timeout(alarms, timeout);
                    waited.unwrap_or_else(PoisonError::into_inner).0
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real clock. The upper bound only catches a wait of the wrong order (a timer
    /// tick or more) on a loaded machine.
    #[tokio::test]
    async fn ends_after_the_deadline_below_the_timer_granularity() {
        for micros in [100, 500, 1500] {
            let wait = Duration::from_micros(micros);
            let started = Instant::now();
            sleep_until(started + wait).await;
            let took = started.elapsed();
            assert!(took >= wait && took < wait + Duration::from_millis(50), "took {took:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn waits_on_a_paused_clock_too() {
        let started = Instant::now();
        sleep_until(started + Duration::from_micros(300)).await;
        assert!(started.elapsed() >= Duration::from_micros(300));
        sleep_until(started + Duration::from_millis(5)).await;
        assert!(started.elapsed() >= Duration::from_millis(5));
    }
}
