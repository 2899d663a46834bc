//! `oxserve-overload`: drives a V2 REST server past its capacity and reports how it copes.
//!
//! Three phases against one model, each with the same mix of tiny and large request bodies
//! (`--large-share` of the requests carry the `--large` body):
//! 1. **unloaded**: one request at a time, for the reference latencies;
//! 2. **capacity**: `--capacity-concurrency` requests in flight (closed loop), for the
//!    throughput the server sustains;
//! 3. **overload**: open loop at `--factor` × that throughput, every request sent on
//!    schedule whatever the answers (up to `--max-outstanding` in flight).
//!
//! Meanwhile the server's resident memory (`VmRSS` of `--pid`) is sampled every 100 ms.
//! The run ends with one line of JSON on stdout: per phase the requests by outcome
//! (`ok`, `shed` for 503/429, `other` statuses, connection `errors`, `not_sent`), the
//! latencies of the accepted (200) requests per body class, the throughput and the peak
//! RSS; and whether the process was still alive at the end.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use oxserve_loadtest::duration::parse_duration;
use oxserve_loadtest::summary::new_histogram;
use parking_lot::Mutex;

#[derive(Parser)]
#[command(name = "oxserve-overload", version)]
struct Args {
    /// The inference URL, e.g. http://127.0.0.1:8080/v2/models/m/infer.
    #[arg(long)]
    url: String,
    /// File with the tiny request body.
    #[arg(long)]
    tiny: PathBuf,
    /// File with the large request body.
    #[arg(long)]
    large: PathBuf,
    /// Share of requests that carry the large body (0–1).
    #[arg(long, default_value_t = 0.05)]
    large_share: f64,
    /// PID of the server, whose RSS is sampled.
    #[arg(long)]
    pid: u32,
    /// Duration of each phase.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Requests in flight while capacity is measured.
    #[arg(long, default_value_t = 4)]
    capacity_concurrency: usize,
    /// Offered load in the overload phase, as a multiple of the measured capacity.
    #[arg(long, default_value_t = 5.0)]
    factor: f64,
    /// Requests in flight at most in the overload phase (beyond: counted as not sent).
    #[arg(long, default_value_t = 4096)]
    max_outstanding: usize,
    /// Worker threads of the driver.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// What one phase saw.
struct Phase {
    ok: AtomicU64,
    shed: AtomicU64,
    other: AtomicU64,
    errors: AtomicU64,
    not_sent: AtomicU64,
    tiny: Mutex<Histogram<u64>>,
    large: Mutex<Histogram<u64>>,
    all: Mutex<Histogram<u64>>,
}

impl Phase {
    fn new() -> Phase {
        Phase {
            ok: AtomicU64::new(0),
            shed: AtomicU64::new(0),
            other: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            not_sent: AtomicU64::new(0),
            tiny: Mutex::new(new_histogram()),
            large: Mutex::new(new_histogram()),
            all: Mutex::new(new_histogram()),
        }
    }

    fn record(&self, large: bool, outcome: Result<u16, ()>, elapsed: Duration) {
        match outcome {
            Ok(200) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX).max(1);
                let class = if large { &self.large } else { &self.tiny };
                let _ = class.lock().record(us);
                let _ = self.all.lock().record(us);
            }
            Ok(503 | 429) => {
                self.shed.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {
                self.other.fetch_add(1, Ordering::Relaxed);
            }
            Err(()) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn to_json(&self, elapsed: Duration, peak_rss_bytes: u64) -> serde_json::Value {
        let q = |h: &Histogram<u64>| {
            serde_json::json!({
                "count": h.len(),
                "p50_us": h.value_at_quantile(0.5),
                "p99_us": h.value_at_quantile(0.99),
                "max_us": h.max(),
            })
        };
        let ok = self.ok.load(Ordering::Relaxed);
        serde_json::json!({
            "ok": ok,
            "shed": self.shed.load(Ordering::Relaxed),
            "other": self.other.load(Ordering::Relaxed),
            "errors": self.errors.load(Ordering::Relaxed),
            "not_sent": self.not_sent.load(Ordering::Relaxed),
            "ok_rps": ok as f64 / elapsed.as_secs_f64(),
            "elapsed_s": elapsed.as_secs_f64(),
            "tiny": q(&self.tiny.lock()),
            "large": q(&self.large.lock()),
            "all": q(&self.all.lock()),
            "peak_rss_bytes": peak_rss_bytes,
        })
    }
}

/// The bodies and the mix.
struct Mix {
    url: hyper::Uri,
    tiny: Bytes,
    large: Bytes,
    /// Every `every`-th request is large (a deterministic mix).
    every: u64,
    counter: AtomicU64,
}

impl Mix {
    fn next(&self) -> (bool, Bytes) {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let large = self.every > 0 && n % self.every == self.every - 1;
        (large, if large { self.large.clone() } else { self.tiny.clone() })
    }
}

async fn send(client: &HttpClient, mix: &Mix, phase: &Phase) {
    let (large, body) = mix.next();
    let request = hyper::Request::post(mix.url.clone())
        .header("content-type", "application/json")
        .body(Full::new(body))
        .expect("a valid request");
    let start = Instant::now();
    let outcome = match client.request(request).await {
        Ok(response) => {
            let status = response.status().as_u16();
            match response.into_body().collect().await {
                Ok(_) => Ok(status),
                Err(_) => Err(()),
            }
        }
        Err(_) => Err(()),
    };
    phase.record(large, outcome, start.elapsed());
}

/// `VmRSS` of `pid` in bytes, or `None` once the process is gone.
fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Samples the RSS every 100 ms into the current phase's peak.
fn start_sampler(
    pid: u32,
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if let Some(bytes) = rss(pid) {
                peak.fetch_max(bytes, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

async fn closed_loop(
    client: &HttpClient,
    mix: &Arc<Mix>,
    concurrency: usize,
    duration: Duration,
) -> (Arc<Phase>, Duration) {
    let phase = Arc::new(Phase::new());
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (client, mix, phase) = (client.clone(), mix.clone(), phase.clone());
            tokio::spawn(async move {
                while start.elapsed() < duration {
                    send(&client, &mix, &phase).await;
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    (phase, start.elapsed())
}

async fn open_loop(
    client: &HttpClient,
    mix: &Arc<Mix>,
    rate: f64,
    duration: Duration,
    max_outstanding: usize,
) -> (Arc<Phase>, Duration) {
    let phase = Arc::new(Phase::new());
    let outstanding = Arc::new(AtomicUsize::new(0));
    let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let start = Instant::now();
    let mut sent: u64 = 0;
    while start.elapsed() < duration {
        // Catch up on schedule: every request due by now is sent now.
        let due = (start.elapsed().as_secs_f64() / interval.as_secs_f64()) as u64;
        while sent < due {
            sent += 1;
            if outstanding.load(Ordering::Relaxed) >= max_outstanding {
                phase.not_sent.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            outstanding.fetch_add(1, Ordering::Relaxed);
            let (client, mix, phase, outstanding) =
                (client.clone(), mix.clone(), phase.clone(), outstanding.clone());
            tokio::spawn(async move {
                send(&client, &mix, &phase).await;
                outstanding.fetch_sub(1, Ordering::Relaxed);
            });
        }
        tokio::time::sleep(interval.min(Duration::from_millis(1))).await;
    }
    let elapsed = start.elapsed();
    // The answers still on their way count in this phase (bounded: a hung server must not
    // hang the report).
    let drained = Instant::now();
    while outstanding.load(Ordering::Relaxed) > 0 && drained.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (phase, elapsed)
}

fn main() -> Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let Args {
        url,
        tiny,
        large,
        large_share,
        pid,
        duration,
        capacity_concurrency,
        factor,
        max_outstanding,
        threads: _,
    } = args;
    ensure!((0.0..=1.0).contains(&large_share), "--large-share must be within 0 and 1");
    ensure!(factor > 0.0, "--factor must be positive");
    let read = |p: &PathBuf| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let mix = Arc::new(Mix {
        url: url.parse().context("--url")?,
        tiny: Bytes::from(read(&tiny)?),
        large: Bytes::from(read(&large)?),
        every: if large_share > 0.0 { (1.0 / large_share).round() as u64 } else { 0 },
        counter: AtomicU64::new(0),
    });
    let client: HttpClient =
        Client::builder(TokioExecutor::new()).pool_max_idle_per_host(max_outstanding).build_http();
    let idle_rss = rss(pid).context("the server process is not running")?;
    let peak = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = start_sampler(pid, peak.clone(), stop.clone());

    // Warm-up: connections, allocator, caches.
    let _ = closed_loop(&client, &mix, 1, Duration::from_secs(1)).await;
    peak.store(0, Ordering::Relaxed);
    let (unloaded, t) = closed_loop(&client, &mix, 1, duration).await;
    let unloaded = unloaded.to_json(t, peak.swap(0, Ordering::Relaxed));
    let (capacity, t) = closed_loop(&client, &mix, capacity_concurrency, duration).await;
    let capacity_rps = capacity.ok.load(Ordering::Relaxed) as f64 / t.as_secs_f64();
    let capacity = capacity.to_json(t, peak.swap(0, Ordering::Relaxed));
    let rate = capacity_rps * factor;
    let (overload, t) = open_loop(&client, &mix, rate, duration, max_outstanding).await;
    let overload = overload.to_json(t, peak.swap(0, Ordering::Relaxed));
    // After the overload: the server still answers.
    let (after, t) = closed_loop(&client, &mix, 1, Duration::from_secs(1)).await;
    let after = after.to_json(t, peak.load(Ordering::Relaxed));
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let alive = rss(pid).is_some();
    let report = serde_json::json!({
        "idle_rss_bytes": idle_rss,
        "capacity_rps": capacity_rps,
        "offered_rps": rate,
        "unloaded": unloaded,
        "capacity": capacity,
        "overload": overload,
        "after": after,
        "alive": alive,
    });
    println!("{report}");
    Ok(())
}
