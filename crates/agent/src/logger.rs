//! The payload logger: inference requests and responses as CloudEvents (HTTP binary content
//! mode) to a sink URL.
//!
//! Events go through a bounded queue to one worker task that delivers them on a few lanes
//! at once. An event's lane is chosen by its `ce-id`, and each lane delivers in order, one
//! event at a time, so the request of a pair always reaches the sink before its response.
//! A failed delivery is retried with exponential backoff (a sink that is down stalls the
//! lanes, and the queue holds what arrives meanwhile: with the defaults an outage of about
//! a minute loses nothing, see [`LoggerConfig::retry_window`]); an answer that retrying
//! cannot change (a 4xx other than 408/429) is not retried. When the queue is full the
//! configured policy either drops the event (and counts it) or makes the caller wait. An
//! event that cannot be delivered after its retries is appended to a local spill file (JSON
//! lines) up to `spill_max_bytes`; past that it is counted as lost. On
//! [`PayloadLogger::shutdown`] every queued event is delivered or spilled. Every outcome is
//! counted ([`Counts`], and [`PayloadLogger::render_metrics`] for `/metrics`): none is
//! silently lost. Bodies are [`Bytes`], shared with the proxied request, never copied.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::{Error, Result};

/// CloudEvent type of a logged request.
pub const REQUEST_TYPE: &str = "org.kubeflow.serving.inference.request";
/// CloudEvent type of a logged response.
pub const RESPONSE_TYPE: &str = "org.kubeflow.serving.inference.response";
/// Delivery lanes, so deliveries in flight at once.
const LANES: usize = 4;

/// What is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogMode {
    /// Requests and responses.
    #[default]
    All,
    /// Requests only.
    Request,
    /// Responses only.
    Response,
}

impl std::str::FromStr for LogMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<LogMode> {
        match s {
            "all" => Ok(LogMode::All),
            "request" => Ok(LogMode::Request),
            "response" => Ok(LogMode::Response),
            _ => Err(Error::Invalid(format!("log mode {s:?}: expected all, request or response"))),
        }
    }
}

/// What happens when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Drop the event and count it (the request is not slowed down).
    #[default]
    Drop,
    /// Wait for room (the request waits: back-pressure up to the client).
    Block,
}

impl std::str::FromStr for Overflow {
    type Err = Error;
    fn from_str(s: &str) -> Result<Overflow> {
        match s {
            "drop" => Ok(Overflow::Drop),
            "block" => Ok(Overflow::Block),
            _ => Err(Error::Invalid(format!("overflow policy {s:?}: expected drop or block"))),
        }
    }
}

/// How the logger works.
#[derive(Debug, Clone)]
pub struct LoggerConfig {
    /// Where CloudEvents are POSTed.
    pub sink_url: String,
    /// What is logged.
    pub mode: LogMode,
    /// Events queued at most.
    pub queue_capacity: usize,
    /// What a full queue does.
    pub overflow: Overflow,
    /// Retries after a failed delivery.
    pub max_retries: u32,
    /// Retries per event once shutdown has started (bounds how long shutdown takes with a
    /// failing sink; after one event has used them up, the rest are spilled directly).
    pub drain_retries: u32,
    /// First retry delay (doubled each retry, up to `max_backoff`).
    pub initial_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// Per-delivery timeout.
    pub timeout: Duration,
    /// Where undeliverable events are appended (JSON lines).
    pub spill_path: PathBuf,
    /// The spill file's size at most; an event that would take it past is counted as lost.
    pub spill_max_bytes: u64,
    /// `ce-source`.
    pub source: String,
    /// Extension `inferenceservicename`.
    pub inference_service_name: String,
    /// Extension `namespace`.
    pub namespace: String,
    /// Extension `component`.
    pub component: String,
    /// Extension `endpoint`.
    pub endpoint: String,
}

impl LoggerConfig {
    /// Defaults for the other fields.
    pub fn new(sink_url: impl Into<String>, spill_path: impl Into<PathBuf>) -> LoggerConfig {
        LoggerConfig {
            sink_url: sink_url.into(),
            mode: LogMode::All,
            queue_capacity: 1024,
            overflow: Overflow::Drop,
            max_retries: 16,
            drain_retries: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            spill_path: spill_path.into(),
            spill_max_bytes: 64 << 20,
            source: "http://localhost/oxserve-agent".into(),
            inference_service_name: String::new(),
            namespace: String::new(),
            component: "predictor".into(),
            endpoint: String::new(),
        }
    }

    /// How long an event is retried before it is spilled: the sink outage the logger rides
    /// out with nothing spilled (the backoff delays summed; per-delivery timeouts add to it).
    pub fn retry_window(&self) -> Duration {
        let mut backoff = self.initial_backoff;
        let mut total = Duration::ZERO;
        for _ in 0..self.max_retries {
            total += backoff;
            backoff = (backoff * 2).min(self.max_backoff);
        }
        total
    }
}

/// Which half of an exchange an event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The inference request.
    Request,
    /// The inference response (or error).
    Response,
}

/// One payload to log.
#[derive(Debug, Clone)]
pub struct Event {
    /// `ce-id`, shared by a request and its response.
    pub id: String,
    /// Request or response.
    pub kind: EventKind,
    /// The model the request was for (empty if unknown).
    pub model: String,
    /// `Content-Type` of the payload.
    pub content_type: String,
    /// The payload.
    pub body: Bytes,
    /// HTTP status of a response.
    pub status: Option<u16>,
}

/// Delivery counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Events the sink accepted.
    pub sent: u64,
    /// Events that failed delivery after their retries (each is then spilled).
    pub failed: u64,
    /// Events dropped because the queue was full.
    pub dropped: u64,
    /// Events written to the spill file.
    pub spilled: u64,
    /// Events neither delivered nor spilled (the spill file was at its bound or could not be
    /// written).
    pub lost: u64,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    spilled: AtomicU64,
    lost: AtomicU64,
}

/// A cloneable handle to the logger's queue.
#[derive(Clone)]
pub struct PayloadLogger {
    tx: mpsc::Sender<Event>,
    mode: LogMode,
    overflow: Overflow,
    counters: Arc<Counters>,
    shutdown: Arc<tokio::sync::Notify>,
    worker: Arc<tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl std::fmt::Debug for PayloadLogger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayloadLogger")
            .field("mode", &self.mode)
            .field("counts", &self.counts())
            .finish()
    }
}

impl PayloadLogger {
    /// Starts the worker task (needs a Tokio runtime).
    pub fn start(config: LoggerConfig) -> Result<PayloadLogger> {
        url::Url::parse(&config.sink_url)
            .map_err(|e| Error::Invalid(format!("log url {:?}: {e}", config.sink_url)))?;
        if config.queue_capacity == 0 {
            return Err(Error::Invalid("log queue capacity must be at least 1".into()));
        }
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| Error::Http(format!("building the sink client: {e}")))?;
        let (tx, rx) = mpsc::channel(config.queue_capacity);
        let counters = Arc::new(Counters::default());
        let shutdown = Arc::new(tokio::sync::Notify::new());
        let worker = Worker {
            config: Arc::new(config.clone()),
            client,
            counters: counters.clone(),
            draining: Arc::new(AtomicBool::new(false)),
            sink_down: AtomicBool::new(false),
        };
        let handle = tokio::spawn(worker.run(rx, shutdown.clone()));
        Ok(PayloadLogger {
            tx,
            mode: config.mode,
            overflow: config.overflow,
            counters,
            shutdown,
            worker: Arc::new(tokio::sync::Mutex::new(Some(handle))),
        })
    }

    /// Whether requests are logged.
    pub fn logs_requests(&self) -> bool {
        self.mode != LogMode::Response
    }

    /// Whether responses are logged.
    pub fn logs_responses(&self) -> bool {
        self.mode != LogMode::Request
    }

    /// Queues an event (if the mode logs its kind), applying the overflow policy.
    pub async fn log(&self, event: Event) {
        let wanted = match event.kind {
            EventKind::Request => self.logs_requests(),
            EventKind::Response => self.logs_responses(),
        };
        if !wanted {
            return;
        }
        let sent = match self.overflow {
            Overflow::Block => self.tx.send(event).await.is_ok(),
            Overflow::Drop => self.tx.try_send(event).is_ok(),
        };
        if !sent {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counters so far.
    pub fn counts(&self) -> Counts {
        Counts {
            sent: self.counters.sent.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
            spilled: self.counters.spilled.load(Ordering::Relaxed),
            lost: self.counters.lost.load(Ordering::Relaxed),
        }
    }

    /// Events waiting in the queue.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// The counters in the Prometheus text format, for the agent's `/metrics`.
    pub fn render_metrics(&self) -> String {
        let c = self.counts();
        let mut out = String::from(
            "# HELP oxserve_agent_payload_log_events_total Payload log events by outcome: sent \
             (the sink took it), dropped (the queue was full), spilled (written to the spill \
             file after its retries), lost (neither: the spill file was full or unwritable).\n\
             # TYPE oxserve_agent_payload_log_events_total counter\n",
        );
        for (outcome, n) in
            [("sent", c.sent), ("dropped", c.dropped), ("spilled", c.spilled), ("lost", c.lost)]
        {
            out.push_str(&format!(
                "oxserve_agent_payload_log_events_total{{outcome=\"{outcome}\"}} {n}\n"
            ));
        }
        out.push_str(&format!(
            "# HELP oxserve_agent_payload_log_queued Payload log events waiting for delivery.\n\
             # TYPE oxserve_agent_payload_log_queued gauge\n\
             oxserve_agent_payload_log_queued {}\n",
            self.queued()
        ));
        out
    }

    /// Stops taking events, delivers (or spills) everything queued, and returns the final
    /// counts. Later [`log`](Self::log) calls count as dropped.
    pub async fn shutdown(&self) -> Counts {
        self.shutdown.notify_one();
        if let Some(handle) = self.worker.lock().await.take() {
            let _ = handle.await;
        }
        self.counts()
    }
}

struct Worker {
    config: Arc<LoggerConfig>,
    client: reqwest::Client,
    counters: Arc<Counters>,
    /// Set once shutdown starts: retries are then capped by `drain_retries`.
    draining: Arc<AtomicBool>,
    /// Set when an event failed all its retries while draining: the sink is deemed down and
    /// the remaining events go straight to the spill file.
    sink_down: AtomicBool,
}

impl Worker {
    async fn run(self, mut rx: mpsc::Receiver<Event>, shutdown: Arc<tokio::sync::Notify>) {
        let this = Arc::new(self);
        // Each lane takes one event at a time: while a lane's sink delivery is retried, the
        // events behind it wait in the queue, where the bound and the overflow policy apply.
        let (lane_txs, lane_rxs): (Vec<_>, Vec<_>) =
            (0..LANES).map(|_| mpsc::channel::<Event>(1)).unzip();
        // Forwards queued events to their lanes until shutdown, then closes the queue and
        // forwards what is left in it.
        let forward = {
            let this = this.clone();
            async move {
                loop {
                    tokio::select! {
                        biased;
                        () = shutdown.notified() => break,
                        ev = rx.recv() => match ev {
                            Some(ev) => {
                                if lane_txs[lane_of(&ev.id)].send(ev).await.is_err() { return; }
                            }
                            None => return,
                        },
                    }
                }
                this.draining.store(true, Ordering::SeqCst);
                rx.close();
                while let Some(ev) = rx.recv().await {
                    if lane_txs[lane_of(&ev.id)].send(ev).await.is_err() {
                        return;
                    }
                }
            }
        };
        let lanes = futures::future::join_all(lane_rxs.into_iter().map(|mut lane| {
            let this = this.clone();
            async move {
                while let Some(ev) = lane.recv().await {
                    this.deliver(ev).await;
                }
            }
        }));
        tokio::join!(forward, lanes);
    }

    async fn deliver(&self, ev: Event) {
        let c = &self.config;
        let mut backoff = c.initial_backoff;
        let mut attempt = 0;
        loop {
            match self.send(&ev).await {
                Ok(()) => {
                    self.counters.sent.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(Failure { error: e, permanent }) => {
                    let draining = self.draining.load(Ordering::SeqCst);
                    let limit =
                        if draining { c.max_retries.min(c.drain_retries) } else { c.max_retries };
                    if permanent
                        || attempt >= limit
                        || (draining && self.sink_down.load(Ordering::SeqCst))
                    {
                        tracing::warn!(id = %ev.id, error = %e, attempts = attempt + 1, "payload log delivery failed; spilling");
                        if draining && !permanent {
                            self.sink_down.store(true, Ordering::SeqCst);
                        }
                        self.counters.failed.fetch_add(1, Ordering::Relaxed);
                        self.spill(&ev);
                        return;
                    }
                    tracing::debug!(id = %ev.id, error = %e, "payload log delivery failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(c.max_backoff);
                    attempt += 1;
                }
            }
        }
    }

    async fn send(&self, ev: &Event) -> Result<(), Failure> {
        let c = &self.config;
        let mut req = self
            .client
            .post(&c.sink_url)
            .header("ce-specversion", "1.0")
            .header("ce-id", &ev.id)
            .header("ce-source", &c.source)
            .header("ce-type", event_type(ev.kind))
            .header("ce-time", rfc3339(SystemTime::now()))
            .header("ce-inferenceservicename", &c.inference_service_name)
            .header("ce-namespace", &c.namespace)
            .header("ce-component", &c.component)
            .header("ce-endpoint", &c.endpoint)
            .header(http::header::CONTENT_TYPE, &ev.content_type);
        if !ev.model.is_empty() {
            req = req.header("ce-modelid", &ev.model);
        }
        if let Some(s) = ev.status {
            req = req.header("ce-statuscode", s.to_string());
        }
        let resp = req
            .body(ev.body.clone())
            .send()
            .await
            .map_err(|e| Failure { error: Error::Http(e.to_string()), permanent: false })?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(Failure {
                error: Error::Http(format!("sink answered {status}")),
                permanent: permanent_refusal(status),
            })
        }
    }

    fn spill(&self, ev: &Event) {
        let c = &self.config;
        let line = spill_line(c, ev);
        let r = std::fs::OpenOptions::new().create(true).append(true).open(&c.spill_path).and_then(
            |mut f| {
                let len = f.metadata()?.len();
                if len + line.len() as u64 > c.spill_max_bytes {
                    return Err(std::io::Error::other(format!(
                        "the spill file is at its bound of {} bytes",
                        c.spill_max_bytes
                    )));
                }
                f.write_all(line.as_bytes())?;
                f.sync_data()
            },
        );
        match r {
            Ok(()) => {
                self.counters.spilled.fetch_add(1, Ordering::Relaxed);
            }
            // The one way an event is lost: it is counted and logged loudly with its id.
            Err(e) => {
                self.counters.lost.fetch_add(1, Ordering::Relaxed);
                tracing::error!(id = %ev.id, path = %c.spill_path.display(), error = %e, "payload log event lost: cannot write the spill file")
            }
        }
    }
}

/// A failed delivery, and whether retrying can help.
struct Failure {
    error: Error,
    permanent: bool,
}

/// A 4xx other than 408 (timeout) and 429 (too many requests): the sink refuses this event,
/// and sending it again would not change that.
fn permanent_refusal(status: http::StatusCode) -> bool {
    status.is_client_error()
        && status != http::StatusCode::REQUEST_TIMEOUT
        && status != http::StatusCode::TOO_MANY_REQUESTS
}

/// The lane of an event: both events of a pair share an id, so a lane and an order.
fn lane_of(id: &str) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    (h.finish() % LANES as u64) as usize
}

fn event_type(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Request => REQUEST_TYPE,
        EventKind::Response => RESPONSE_TYPE,
    }
}

/// One CloudEvent in structured JSON form, with the payload as `data` when it is JSON and
/// `data_base64` otherwise.
fn spill_line(c: &LoggerConfig, ev: &Event) -> String {
    let mut obj = serde_json::json!({
        "specversion": "1.0",
        "id": ev.id,
        "source": c.source,
        "type": event_type(ev.kind),
        "time": rfc3339(SystemTime::now()),
        "datacontenttype": ev.content_type,
        "inferenceservicename": c.inference_service_name,
        "namespace": c.namespace,
        "component": c.component,
        "endpoint": c.endpoint,
    });
    if !ev.model.is_empty() {
        obj["modelid"] = ev.model.clone().into();
    }
    if let Some(s) = ev.status {
        obj["statuscode"] = s.to_string().into();
    }
    match serde_json::from_slice::<serde_json::Value>(&ev.body) {
        Ok(v) if ev.content_type.contains("json") => obj["data"] = v,
        _ => obj["data_base64"] = base64(&ev.body).into(),
    }
    let mut s = obj.to_string();
    s.push('\n');
    s
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` in UTC.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_709_251_199_123);
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59.123Z");
    }

    #[test]
    fn base64_matches_rfc4648() {
        for (i, o) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")]
        {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn modes_and_policies_parse() {
        assert_eq!("request".parse::<LogMode>().unwrap(), LogMode::Request);
        assert!("everything".parse::<LogMode>().is_err());
        assert_eq!("block".parse::<Overflow>().unwrap(), Overflow::Block);
        assert!("spill".parse::<Overflow>().is_err());
    }

    #[test]
    fn spill_lines_carry_json_or_base64() {
        let c = LoggerConfig::new("http://127.0.0.1:1/", "/dev/null");
        let mut ev = Event {
            id: "1".into(),
            kind: EventKind::Response,
            model: "m".into(),
            content_type: "application/json".into(),
            body: Bytes::from_static(b"{\"a\":1}"),
            status: Some(500),
        };
        let v: serde_json::Value = serde_json::from_str(&spill_line(&c, &ev)).unwrap();
        assert_eq!(v["data"]["a"], 1);
        assert_eq!(v["type"], RESPONSE_TYPE);
        assert_eq!(v["statuscode"], "500");
        ev.content_type = "application/octet-stream".into();
        ev.body = Bytes::from_static(b"\xff\x00");
        let v: serde_json::Value = serde_json::from_str(&spill_line(&c, &ev)).unwrap();
        assert_eq!(v["data_base64"], "/wA=");
    }

    #[test]
    fn the_default_retries_ride_out_a_30_second_outage() {
        let c = LoggerConfig::new("http://127.0.0.1:1/", "/dev/null");
        let w = c.retry_window();
        assert!(w >= Duration::from_secs(30), "{w:?}");
        assert!(w <= Duration::from_secs(120), "{w:?}");
    }

    #[test]
    fn only_refusals_retrying_cannot_change_are_permanent() {
        use http::StatusCode as S;
        assert!(permanent_refusal(S::BAD_REQUEST));
        assert!(permanent_refusal(S::NOT_FOUND));
        assert!(!permanent_refusal(S::TOO_MANY_REQUESTS));
        assert!(!permanent_refusal(S::REQUEST_TIMEOUT));
        assert!(!permanent_refusal(S::SERVICE_UNAVAILABLE));
    }

    #[test]
    fn ids_spread_over_the_lanes() {
        assert!((0..100).all(|i| lane_of(&format!("id{i}")) < LANES));
        let lanes: std::collections::BTreeSet<_> =
            (0..100).map(|i| lane_of(&format!("id{i}"))).collect();
        assert!(lanes.len() > 1, "ids spread over the lanes");
    }

    #[tokio::test]
    async fn rejects_bad_config() {
        assert!(PayloadLogger::start(LoggerConfig::new("not a url", "/tmp/x")).is_err());
        let mut c = LoggerConfig::new("http://127.0.0.1:1/", "/tmp/x");
        c.queue_capacity = 0;
        assert!(PayloadLogger::start(c).is_err());
    }
}
