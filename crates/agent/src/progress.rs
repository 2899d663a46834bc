//! Download progress: a redrawn bar when stderr is a terminal, structured log lines
//! (every 10 %) otherwise, and an optional callback for embedders.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// A bar on a terminal, log lines otherwise.
    #[default]
    Auto,
    /// Log lines only.
    Log,
    /// Nothing.
    Off,
}

/// Called with `(bytes_done, bytes_total)` as a download advances.
pub type ProgressCallback = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Progress of one pull.
pub(crate) struct Progress {
    uri: String,
    total: u64,
    done: AtomicU64,
    /// Last reported tenth (log mode) or drawn percent (bar mode).
    last_step: AtomicU64,
    bar: bool,
    log: bool,
    callback: Option<ProgressCallback>,
}

impl Progress {
    pub(crate) fn new(
        uri: &str,
        total: u64,
        mode: ProgressMode,
        callback: Option<ProgressCallback>,
    ) -> Progress {
        let bar = mode == ProgressMode::Auto && std::io::stderr().is_terminal();
        let log = !bar && mode != ProgressMode::Off;
        if log {
            tracing::info!(uri, total_bytes = total, "download started");
        }
        Progress {
            uri: uri.to_owned(),
            total,
            done: AtomicU64::new(0),
            last_step: AtomicU64::new(u64::MAX),
            bar,
            log,
            callback,
        }
    }

    pub(crate) fn advance(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(cb) = &self.callback {
            cb(done, self.total);
        }
        let pct = (done.saturating_mul(100)).checked_div(self.total).unwrap_or(100).min(100);
        if self.bar {
            if self.last_step.swap(pct, Ordering::Relaxed) != pct {
                let filled = (pct / 4) as usize;
                let mut err = std::io::stderr().lock();
                let _ = write!(
                    err,
                    "\r[{}{}] {pct:>3}% {}/{} {}",
                    "#".repeat(filled),
                    " ".repeat(25 - filled),
                    human(done),
                    human(self.total),
                    self.uri
                );
                let _ = err.flush();
            }
        } else if self.log {
            let tenth = pct / 10;
            if self.last_step.swap(tenth, Ordering::Relaxed) != tenth && tenth < 10 && tenth > 0 {
                tracing::info!(uri = %self.uri, done_bytes = done, total_bytes = self.total, percent = tenth * 10, "downloading");
            }
        }
    }

    pub(crate) fn finish(&self, ok: bool) {
        let done = self.done.load(Ordering::Relaxed);
        if self.bar {
            eprintln!();
        }
        if self.log || self.bar {
            if ok {
                tracing::info!(uri = %self.uri, bytes = done, "download complete");
            } else {
                tracing::warn!(uri = %self.uri, bytes = done, total_bytes = self.total, "download failed");
            }
        }
    }
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{bytes} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_sees_cumulative_bytes() {
        let seen = Arc::new(parking_lot_free::Seen::default());
        let s = seen.clone();
        let p = Progress::new("u", 10, ProgressMode::Off, Some(Arc::new(move |d, t| s.push(d, t))));
        p.advance(3);
        p.advance(7);
        assert_eq!(seen.get(), vec![(3, 10), (10, 10)]);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(5), "5 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 * 1024 * 1024), "3.0 MiB");
    }

    mod parking_lot_free {
        #[derive(Default)]
        pub struct Seen(std::sync::Mutex<Vec<(u64, u64)>>);
        impl Seen {
            pub fn push(&self, d: u64, t: u64) {
                self.0.lock().unwrap().push((d, t));
            }
            pub fn get(&self) -> Vec<(u64, u64)> {
                self.0.lock().unwrap().clone()
            }
        }
    }
}
