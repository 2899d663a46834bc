//! One replica: a child process supervised from start to stop.
//!
//! A replica of the built-in server is `oxserve serve MODEL_DIR --http-port 0 --grpc-port 0`
//! (the binary itself, no shell); its ports come from the one line it prints on stdout
//! (`oxserve listening rest=http://… grpc=…`). A container replica runs its `command` +
//! `args` with a port chosen here, passed as `PORT` and `--http_port=PORT`. Every child:
//!
//! - gets `PR_SET_PDEATHSIG(SIGKILL)`, so it dies with the process that started it even
//!   after a `kill -9`. The signal follows the *thread* that forked, so replicas must be
//!   spawned from long-lived runtime worker threads (never from `spawn_blocking`);
//! - has stdout and stderr appended to its log file, one per replica, a marker line before
//!   each start;
//! - is ready when its model is: `GET /v2/models/{m}/ready` answers 200 (for containers,
//!   `GET /v1/models/{m}` with `"ready": true` counts too), polled;
//! - is restarted with exponential back-off when it exits, the exit status and the last log
//!   lines kept as the reason. A replica that exits `max_start_failures` times in a row
//!   without becoming ready, does not become ready within `ready_timeout`, or (built-in
//!   server) comes up with its model not loaded, fails the whole revision with that reason;
//! - is stopped by PID: SIGTERM, then SIGKILL after `stop_grace`;
//! - of the built-in server for a predictor, serves a repository of its own,
//!   `REV/replicas/N/`, that holds the revision's model (a link to `REV/model`) and its
//!   TrainedModels: once the replica's own model is ready, and before the replica is marked
//!   ready (so before it takes traffic), the agent's multi-model [`Watcher`] pulls every
//!   model of `REV/models.json` through the shared cache and loads it with the repository
//!   API; it then keeps polling the file, loading and unloading as it changes, until the
//!   replica stops. The repository is emptied before each start so nothing stale loads;
//! - with a `logger` (or, for containers, a `batcher`), is fronted by the agent's proxy
//!   ([`oxserve_agent::proxy`]) in this process, on its own loopback port, which is then the
//!   replica's advertised `http` address (gRPC goes to the server directly).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use oxserve_agent::batcher::BatcherConfig;
use oxserve_agent::logger::{LoggerConfig, PayloadLogger};
use oxserve_agent::progress::ProgressMode;
use oxserve_agent::proxy::ProxyState;
use oxserve_agent::puller::{Puller, PullerConfig};
use oxserve_agent::watcher::{ModelStates, Watcher, WatcherConfig};

use crate::backend::ReplicaStatus;

/// How replicas are run and judged.
#[derive(Clone, Debug)]
pub struct SupervisorConfig {
    /// The `oxserve` binary replicas of the built-in server run.
    pub server_bin: PathBuf,
    /// How long a started replica may take to have its model ready.
    pub ready_timeout: Duration,
    /// Consecutive exits without ever becoming ready that fail the revision.
    pub max_start_failures: u32,
    /// The first restart delay; doubled after each exit up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// How long a replica has between SIGTERM and SIGKILL.
    pub stop_grace: Duration,
    /// How often readiness is polled.
    pub poll_interval: Duration,
}

impl SupervisorConfig {
    /// Defaults around `server_bin`: 120 s to ready, 3 failed starts, 0.5 s → 30 s back-off,
    /// 10 s stop grace, readiness polled every 100 ms.
    pub fn new(server_bin: impl Into<PathBuf>) -> SupervisorConfig {
        SupervisorConfig {
            server_bin: server_bin.into(),
            ready_timeout: Duration::from_secs(120),
            max_start_failures: 3,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            stop_grace: Duration::from_secs(10),
            poll_interval: Duration::from_millis(100),
        }
    }
}

/// What every replica of a revision runs.
#[derive(Clone, Debug)]
pub struct Launch {
    pub program: PathBuf,
    /// Arguments; for containers `--http_port=PORT` is appended per start.
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub kind: LaunchKind,
    /// The model whose readiness makes the replica ready.
    pub model_name: String,
    /// Where replica `N`'s log goes: `logs_dir/N.log`.
    pub logs_dir: PathBuf,
    /// The agent's proxy in front of each replica, when the revision logs payloads or
    /// batches through the agent.
    pub front: Option<Front>,
    /// TrainedModels beside the revision's model (built-in server predictors).
    pub multi_model: Option<MultiModel>,
}

/// Where a built-in server replica's TrainedModels live and come from.
#[derive(Clone, Debug)]
pub struct MultiModel {
    /// Replica `N` serves the repository `replicas_dir/N`.
    pub replicas_dir: PathBuf,
    /// The revision's own model directory, linked into each replica's repository under the
    /// served model name.
    pub model_dir: PathBuf,
    /// The agent watcher's `models.json`: what to load.
    pub config_file: PathBuf,
    /// The shared pull cache and where `pvc://` resolves.
    pub cache_dir: PathBuf,
    pub pvc_root: PathBuf,
    /// How often the watcher reads the file.
    pub interval: Duration,
}

impl MultiModel {
    /// Empties replica `id`'s repository and links the revision's model into it.
    fn prepare(&self, id: u32, model_name: &str) -> Result<PathBuf, String> {
        let repo = self.replicas_dir.join(id.to_string());
        let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
        match std::fs::remove_dir_all(&repo) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&repo, e)),
        }
        std::fs::create_dir_all(&repo).map_err(|e| io(&repo, e))?;
        let link = repo.join(model_name);
        // Absolute, so the link resolves whatever the working directory.
        let target = std::fs::canonicalize(&self.model_dir).map_err(|e| io(&self.model_dir, e))?;
        std::os::unix::fs::symlink(&target, &link).map_err(|e| io(&link, e))?;
        Ok(repo)
    }

    /// Loads the models of the config file into the replica at `http` (whose repository is
    /// `repo`), then keeps them in line with the file until the guard is dropped.
    async fn start(&self, http: &str, repo: &Path) -> Result<(ModelStates, WatchGuard), String> {
        let mut config = PullerConfig::new(&self.cache_dir);
        config.pvc_root = self.pvc_root.clone();
        config.progress = ProgressMode::Log;
        let puller = Puller::new(config).map_err(|e| format!("opening the model cache: {e}"))?;
        let mut watcher = Watcher::new(
            WatcherConfig {
                config_file: self.config_file.clone(),
                model_dir: repo.to_owned(),
                server: http.to_owned(),
                interval: self.interval,
            },
            puller,
        )
        .map_err(|e| format!("starting the model watcher: {e}"))?;
        // Per-model failures are kept in the states; an unreadable file is retried.
        if let Err(e) = watcher.reconcile_once().await {
            tracing::warn!(error = %e, "trained models");
        }
        let states = watcher.states();
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(watcher.run(stopped));
        Ok((states, WatchGuard { _stop: stop }))
    }
}

/// A running watcher; dropping it stops it.
struct WatchGuard {
    _stop: watch::Sender<bool>,
}

/// What the in-process agent proxy in front of a replica does.
#[derive(Clone, Debug)]
pub struct Front {
    /// The payload logger (its `spill_path` is replaced per replica).
    pub logger: Option<LoggerConfig>,
    /// The agent's batcher (for containers; the built-in server batches natively).
    pub batcher: Option<BatcherConfig>,
}

/// Largest request body the front accepts, as `oxserve agent`'s default.
const FRONT_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// A running front; dropping it shuts the proxy down (the logger then flushes).
struct FrontGuard {
    _stop: oneshot::Sender<()>,
}

/// Starts the agent proxy to `upstream` on a free loopback port; returns its URL.
async fn start_front(
    front: &Front,
    upstream: &str,
    logs_dir: &Path,
    id: u32,
) -> Result<(String, FrontGuard), String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("binding the payload logger's port: {e}"))?;
    let addr = listener.local_addr().map_err(|e| format!("payload logger port: {e}"))?;
    let logger = match &front.logger {
        None => None,
        Some(c) => {
            let mut c = c.clone();
            c.spill_path = logs_dir.join(format!("{id}.spill.jsonl"));
            Some(PayloadLogger::start(c).map_err(|e| format!("starting the payload logger: {e}"))?)
        }
    };
    let state = ProxyState::new(upstream, logger, front.batcher, None, FRONT_MAX_BODY_BYTES)
        .map_err(|e| format!("starting the agent proxy: {e}"))?;
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        if let Err(e) = oxserve_agent::proxy::serve(listener, state, async move {
            let _ = stopped.await;
        })
        .await
        {
            tracing::warn!(error = %e, "agent proxy stopped");
        }
    });
    Ok((format!("http://{addr}"), FrontGuard { _stop: stop }))
}

/// How a replica's endpoint is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LaunchKind {
    /// The built-in server: ports read from its stdout line; its model is loaded by then.
    Server,
    /// A custom container: a port chosen here, passed as `PORT` and `--http_port`.
    Container,
}

/// A revision's state that its replicas and the backend share.
#[derive(Debug, Default)]
pub struct RevisionShared {
    /// Set once, by the first fatal failure.
    pub failed: Option<String>,
    /// Some replica has had its model ready at some point.
    pub ever_ready: bool,
    /// Replicas by id, as they are now.
    pub replicas: BTreeMap<u32, ReplicaStatus>,
    /// Per ready replica: its TrainedModels as its watcher reports them.
    pub models: BTreeMap<u32, ModelStates>,
}

/// What a replica task needs.
#[derive(Clone)]
pub struct ReplicaCtx {
    pub config: Arc<SupervisorConfig>,
    pub launch: Arc<Launch>,
    pub shared: Arc<Mutex<RevisionShared>>,
    pub client: reqwest::Client,
    /// Bumped on every status change (the backend's change feed).
    pub changed: Arc<watch::Sender<u64>>,
    /// Set to true when the revision fails.
    pub failed: Arc<watch::Sender<bool>>,
}

impl ReplicaCtx {
    fn update(&self, id: u32, f: impl FnOnce(&mut ReplicaStatus)) {
        {
            let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(r) = shared.replicas.get_mut(&id) {
                f(r);
                if r.ready {
                    shared.ever_ready = true;
                }
            }
        }
        self.changed.send_modify(|n| *n += 1);
    }

    fn fail(&self, reason: String) {
        {
            let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            if shared.failed.is_none() {
                tracing::warn!(model = %self.launch.model_name, %reason, "revision failed");
                shared.failed = Some(reason);
            }
        }
        self.failed.send_replace(true);
        self.changed.send_modify(|n| *n += 1);
    }

    fn is_failed(&self) -> bool {
        *self.failed.borrow()
    }
}

/// The log file of replica `id`.
pub fn log_path(logs_dir: &Path, id: u32) -> PathBuf {
    logs_dir.join(format!("{id}.log"))
}

enum Outcome {
    /// Asked to stop; the process is gone.
    Stopped,
    /// The revision cannot run; the process is gone.
    Fatal(String),
    /// The process exited by itself.
    Exited { was_ready: bool, description: String },
}

/// Runs replica `id` until `stop` turns true (or its sender is dropped) or the revision
/// fails; restarts it whenever it exits.
pub async fn run_replica(ctx: ReplicaCtx, id: u32, mut stop: watch::Receiver<bool>) {
    let log = log_path(&ctx.launch.logs_dir, id);
    {
        let mut shared = ctx.shared.lock().unwrap_or_else(|p| p.into_inner());
        shared.replicas.insert(
            id,
            ReplicaStatus {
                id: id.to_string(),
                pid: None,
                http: None,
                grpc: None,
                ready: false,
                restarts: 0,
                last_exit: None,
                log: Some(log.clone()),
            },
        );
    }
    let mut backoff = ctx.config.backoff_initial;
    let mut failures = 0u32;
    let mut attempt = 0u32;
    while !*stop.borrow() && !ctx.is_failed() {
        match attempt_once(&ctx, id, attempt, &log, &mut stop).await {
            Outcome::Stopped => break,
            Outcome::Fatal(reason) => {
                ctx.fail(reason);
                break;
            }
            Outcome::Exited { was_ready, description } => {
                tracing::warn!(model = %ctx.launch.model_name, replica = id, %description, "replica exited");
                ctx.shared.lock().unwrap_or_else(|p| p.into_inner()).models.remove(&id);
                ctx.update(id, |r| {
                    r.pid = None;
                    r.http = None;
                    r.grpc = None;
                    r.ready = false;
                    r.restarts += 1;
                    r.last_exit = Some(description.clone());
                });
                if was_ready {
                    failures = 0;
                    backoff = ctx.config.backoff_initial;
                } else {
                    failures += 1;
                    if failures >= ctx.config.max_start_failures {
                        ctx.fail(format!(
                            "replica {id} exited {failures} times without becoming ready; last: {description}"
                        ));
                        break;
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stopped(&mut stop) => break,
                }
                backoff = (backoff * 2).min(ctx.config.backoff_max);
            }
        }
        attempt += 1;
    }
    {
        let mut shared = ctx.shared.lock().unwrap_or_else(|p| p.into_inner());
        shared.replicas.remove(&id);
        shared.models.remove(&id);
    }
    ctx.changed.send_modify(|n| *n += 1);
}

/// Resolves once `stop` is true or its sender is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// `oxserve up`'s security settings, which its replicas must not inherit.
const REPLICA_UNSET_ENV: [&str; 6] = [
    "OXSERVE_TLS_CERT",
    "OXSERVE_TLS_KEY",
    "OXSERVE_TLS_CLIENT_CA",
    "OXSERVE_AUTH_TOKEN_FILE",
    "OXSERVE_API_TOKEN_FILE",
    "OXSERVE_API_READ_OPEN",
];

async fn attempt_once(
    ctx: &ReplicaCtx,
    id: u32,
    attempt: u32,
    log: &Path,
    stop: &mut watch::Receiver<bool>,
) -> Outcome {
    let launch = &ctx.launch;
    let open_log = || {
        std::fs::create_dir_all(&launch.logs_dir)?;
        std::fs::OpenOptions::new().create(true).append(true).open(log)
    };
    let mut log_file = match open_log() {
        Ok(f) => f,
        Err(e) => return Outcome::Fatal(format!("opening replica log {}: {e}", log.display())),
    };
    let _ = writeln!(log_file, "{MARKER} starting replica {id} (start {})", attempt + 1);
    let mut cmd = Command::new(&launch.program);
    let repo = match &launch.multi_model {
        None => None,
        Some(m) => match m.prepare(id, &launch.model_name) {
            Ok(repo) => Some(repo),
            Err(e) => return Outcome::Fatal(format!("replica {id} repository: {e}")),
        },
    };
    match &repo {
        // The server serves the replica's repository instead of the model directory.
        Some(repo) => {
            let model_dir = launch.multi_model.as_ref().map(|m| m.model_dir.as_os_str());
            cmd.args(launch.args.iter().map(|a| {
                if Some(std::ffi::OsStr::new(a)) == model_dir {
                    repo.as_os_str().to_owned()
                } else {
                    a.into()
                }
            }));
        }
        None => {
            cmd.args(&launch.args);
        }
    }
    let container_port = match launch.kind {
        LaunchKind::Server => None,
        LaunchKind::Container => match free_port() {
            Ok(p) => Some(p),
            Err(e) => return Outcome::Fatal(format!("choosing a port: {e}")),
        },
    };
    if let Some(port) = container_port {
        cmd.arg(format!("--http_port={port}")).env("PORT", port.to_string());
    }
    // Replicas listen on loopback for the router alone, plain and without tokens: `up`'s
    // own TLS and token settings must not reach them through the environment.
    for var in REPLICA_UNSET_ENV {
        cmd.env_remove(var);
    }
    cmd.envs(launch.env.iter().map(|(k, v)| (k, v)))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let stderr = match log_file.try_clone() {
        Ok(f) => f,
        Err(e) => return Outcome::Fatal(format!("replica log {}: {e}", log.display())),
    };
    cmd.stderr(Stdio::from(stderr));
    match launch.kind {
        LaunchKind::Server => cmd.stdout(Stdio::piped()),
        LaunchKind::Container => match log_file.try_clone() {
            Ok(f) => cmd.stdout(Stdio::from(f)),
            Err(e) => return Outcome::Fatal(format!("replica log {}: {e}", log.display())),
        },
    };
    die_with_parent(&mut cmd);
    let started = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Outcome::Fatal(format!("starting {}: {e}", launch.program.display())),
    };
    let pid = child.id();
    ctx.update(id, |r| r.pid = pid);
    let deadline = started + ctx.config.ready_timeout;

    // Where it listens.
    let (http, grpc) = match container_port {
        Some(port) => (format!("http://127.0.0.1:{port}"), None),
        None => {
            let (tx, rx) = oneshot::channel();
            let Some(stdout) = child.stdout.take() else {
                return Outcome::Fatal("replica stdout was not captured".into());
            };
            tokio::spawn(forward_stdout(stdout, log_file, tx));
            tokio::select! {
                line = rx => match line {
                    Ok(line) => match parse_listening(&line) {
                        Some(ports) => ports,
                        None => {
                            terminate(&mut child, ctx.config.stop_grace).await;
                            return Outcome::Fatal(format!("unexpected first line from the server: {line}"));
                        }
                    },
                    // Stdout closed without the line: the process is exiting.
                    Err(_) => return exited(&mut child, log, false).await,
                },
                _ = tokio::time::sleep_until(deadline) => {
                    terminate(&mut child, ctx.config.stop_grace).await;
                    return Outcome::Fatal(not_ready_in_time(ctx, log));
                }
                _ = stopped(stop) => {
                    terminate(&mut child, ctx.config.stop_grace).await;
                    return Outcome::Stopped;
                }
            }
        }
    };
    // The agent's proxy, when there is one, is where traffic enters; readiness is still
    // checked on the process itself.
    let (entry, _front) = match &launch.front {
        None => (http.clone(), None),
        Some(front) => match start_front(front, &http, &launch.logs_dir, id).await {
            Ok((url, guard)) => (url, Some(guard)),
            Err(reason) => {
                terminate(&mut child, ctx.config.stop_grace).await;
                return Outcome::Fatal(reason);
            }
        },
    };
    // With TrainedModels the router learns the address only once they are loaded, so no
    // request reaches the replica before (it would poll the model ready by itself).
    if launch.multi_model.is_none() {
        ctx.update(id, |r| {
            r.http = Some(entry.clone());
            r.grpc = grpc.clone();
        });
    }

    // Until its model is ready.
    loop {
        match check_ready(&ctx.client, &http, &launch.model_name).await {
            Ok(()) => break,
            Err(detail) if launch.kind == LaunchKind::Server && !detail.connect => {
                // The server prints its line after loading every model, so a model that is
                // not ready now never will be.
                let reason = load_failure(&ctx.client, &http, &launch.model_name).await;
                terminate(&mut child, ctx.config.stop_grace).await;
                return Outcome::Fatal(reason);
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(ctx.config.poll_interval) => {}
            status = child.wait() => return describe_exit(status, log, false),
            _ = tokio::time::sleep_until(deadline) => {
                terminate(&mut child, ctx.config.stop_grace).await;
                return Outcome::Fatal(not_ready_in_time(ctx, log));
            }
            _ = stopped(stop) => {
                terminate(&mut child, ctx.config.stop_grace).await;
                return Outcome::Stopped;
            }
        }
    }
    // Its TrainedModels, before it takes traffic.
    let _models = match (&launch.multi_model, &repo) {
        (Some(m), Some(repo)) => match m.start(&http, repo).await {
            Ok((states, guard)) => {
                ctx.shared.lock().unwrap_or_else(|p| p.into_inner()).models.insert(id, states);
                Some(guard)
            }
            Err(reason) => {
                terminate(&mut child, ctx.config.stop_grace).await;
                return Outcome::Fatal(reason);
            }
        },
        _ => None,
    };
    tracing::info!(model = %launch.model_name, replica = id, pid = ?pid, %http, "replica ready");
    ctx.update(id, |r| {
        r.http = Some(entry.clone());
        r.grpc = grpc.clone();
        r.ready = true;
    });

    tokio::select! {
        status = child.wait() => describe_exit(status, log, true),
        _ = stopped(stop) => {
            ctx.update(id, |r| r.ready = false);
            terminate(&mut child, ctx.config.stop_grace).await;
            Outcome::Stopped
        }
    }
}

fn not_ready_in_time(ctx: &ReplicaCtx, log: &Path) -> String {
    let mut reason = format!(
        "model {} was not ready within {} s",
        ctx.launch.model_name,
        ctx.config.ready_timeout.as_secs_f64()
    );
    let tail = last_log_lines(log, 5);
    if !tail.is_empty() {
        reason.push_str("; last log lines: ");
        reason.push_str(&tail);
    }
    reason
}

const MARKER: &str = "--- oxserve:";

/// Copies the server's stdout into its log, handing the `oxserve listening` line over.
async fn forward_stdout(
    stdout: tokio::process::ChildStdout,
    mut log: std::fs::File,
    tx: oneshot::Sender<String>,
) {
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut tx = Some(tx);
    while let Ok(Some(line)) = lines.next_line().await {
        let _ = writeln!(log, "{line}");
        if let Some(tx) = tx.take_if(|_| line.starts_with("oxserve listening ")) {
            let _ = tx.send(line);
        }
    }
}

/// `oxserve listening rest=http://127.0.0.1:1234 grpc=127.0.0.1:1235` → the two addresses.
pub fn parse_listening(line: &str) -> Option<(String, Option<String>)> {
    let rest = line.strip_prefix("oxserve listening ")?;
    let mut http = None;
    let mut grpc = None;
    for field in rest.split_whitespace() {
        if let Some(v) = field.strip_prefix("rest=") {
            http = Some(v.to_owned());
        } else if let Some(v) = field.strip_prefix("grpc=") {
            grpc = Some(v.to_owned());
        }
    }
    Some((http?, grpc))
}

struct NotReady {
    /// The process did not answer at all.
    connect: bool,
}

async fn check_ready(client: &reqwest::Client, http: &str, model: &str) -> Result<(), NotReady> {
    let v2 = client.get(format!("{http}/v2/models/{model}/ready")).send().await;
    match v2 {
        Ok(r) if r.status() == reqwest::StatusCode::OK => return Ok(()),
        Ok(_) => {}
        Err(_) => return Err(NotReady { connect: true }),
    }
    // KServe's V1 model status, for containers that only speak V1.
    if let Ok(r) = client.get(format!("{http}/v1/models/{model}")).send().await
        && r.status() == reqwest::StatusCode::OK
        && let Ok(v) = r.json::<serde_json::Value>().await
        && v.get("ready").and_then(|r| r.as_bool()) == Some(true)
    {
        return Ok(());
    }
    Err(NotReady { connect: false })
}

/// Why the built-in server does not serve `model`, from its repository index.
async fn load_failure(client: &reqwest::Client, http: &str, model: &str) -> String {
    let index = async {
        client
            .post(format!("{http}/v2/repository/index"))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .ok()?
            .json::<Vec<serde_json::Value>>()
            .await
            .ok()
    }
    .await;
    let Some(index) = index else {
        return format!("model {model} did not load (its repository index could not be read)");
    };
    let names: Vec<&str> = index.iter().filter_map(|e| e.get("name")?.as_str()).collect();
    match index.iter().find(|e| e.get("name").and_then(|n| n.as_str()) == Some(model)) {
        Some(e) => {
            let state = e.get("state").and_then(|s| s.as_str()).unwrap_or("UNAVAILABLE");
            match e.get("reason").and_then(|r| r.as_str()) {
                Some(reason) => format!("model {model} failed to load ({state}): {reason}"),
                None => format!("model {model} failed to load ({state})"),
            }
        }
        None if names.is_empty() => format!("model {model}: no model found in the model directory"),
        None => {
            format!("model {model} is not in the model directory (found: {})", names.join(", "))
        }
    }
}

async fn exited(child: &mut Child, log: &Path, was_ready: bool) -> Outcome {
    let status = child.wait().await;
    describe_exit(status, log, was_ready)
}

fn describe_exit(status: std::io::Result<ExitStatus>, log: &Path, was_ready: bool) -> Outcome {
    let mut description = match status {
        Ok(s) => exit_text(s),
        Err(e) => format!("waiting for the process failed: {e}"),
    };
    let tail = last_log_lines(log, 5);
    if !tail.is_empty() {
        description.push_str("; last log lines: ");
        description.push_str(&tail);
    }
    Outcome::Exited { was_ready, description }
}

/// `exit code 1` or `killed by signal 9`.
pub fn exit_text(s: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => format!("{s}"),
    }
}

/// The last `n` non-empty lines the latest start wrote to `log`, joined by ` | `, escape
/// sequences removed.
pub fn last_log_lines(log: &Path, n: usize) -> String {
    let Ok(bytes) = std::fs::read(log) else { return String::new() };
    let start = bytes.len().saturating_sub(64 * 1024);
    let text = String::from_utf8_lossy(&bytes[start..]);
    let latest = match text.rfind(MARKER) {
        Some(i) => &text[i..],
        None => &text[..],
    };
    let lines: Vec<String> = latest
        .lines()
        .filter(|l| !l.starts_with(MARKER))
        .map(strip_ansi)
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ … final byte in @..~
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// SIGTERM, then SIGKILL after `grace`; reaps the process.
async fn terminate(child: &mut Child, grace: Duration) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: kill(2) on the PID of a child this process has not reaped yet, so the PID
        // cannot have been reused.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        if tokio::time::timeout(grace, child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = child.kill().await;
}

/// Makes the child receive SIGKILL when this process dies.
fn die_with_parent(cmd: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (prctl, getppid, _exit); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_line_gives_both_ports() {
        assert_eq!(
            parse_listening("oxserve listening rest=http://127.0.0.1:4000 grpc=127.0.0.1:4001"),
            Some(("http://127.0.0.1:4000".into(), Some("127.0.0.1:4001".into())))
        );
        assert_eq!(
            parse_listening("oxserve listening rest=http://127.0.0.1:4000"),
            Some(("http://127.0.0.1:4000".into(), None))
        );
        assert_eq!(parse_listening("oxserve listening grpc=127.0.0.1:1"), None);
        assert_eq!(parse_listening("hello"), None);
    }

    #[test]
    fn the_tail_is_the_latest_start_without_colours() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        std::fs::write(
            &log,
            format!(
                "{MARKER} starting replica 0 (start 1)\nold failure\n{MARKER} starting replica 0 (start 2)\n\
                 \u{1b}[2mline a\u{1b}[0m\n\nline b\nline c\n"
            ),
        )
        .unwrap();
        assert_eq!(last_log_lines(&log, 2), "line b | line c");
        assert_eq!(last_log_lines(&log, 10), "line a | line b | line c");
        assert_eq!(last_log_lines(&dir.path().join("missing.log"), 3), "");
    }

    #[tokio::test]
    async fn a_child_exiting_is_described_by_code_and_signal() {
        let s = Command::new("/bin/sh").args(["-c", "exit 3"]).status().await.unwrap();
        assert_eq!(exit_text(s), "exit code 3");
        let s = Command::new("/bin/sh").args(["-c", "kill -9 $$"]).status().await.unwrap();
        assert_eq!(exit_text(s), "killed by signal 9");
    }
}
