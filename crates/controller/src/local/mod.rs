//! The local backend: replicas as `oxserve serve` child processes, state in a directory.
//!
//! - [`state`]: the state directory — objects and revisions as atomically written JSON
//!   files, and the lock that keeps a second `oxserve up` away.
//! - [`pull`]: a revision's model files, pulled through the shared cache and assembled into
//!   the directory its replicas serve.
//! - [`replica`]: one replica's process, from start through readiness, restarts and stop.
//! - [`LocalBackend`]: the [`Backend`] over those: one supervising task per revision that
//!   pulls, then keeps as many replicas running as [`Backend::scale`] asked for. A built-in
//!   server predictor's TrainedModels ([`Backend::set_models`]) are written to
//!   `STATE/revisions/REV/models.json`, which each replica's multi-model watcher follows
//!   (see [`replica`]).

pub mod pull;
pub mod replica;
pub mod state;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::backend::{
    Backend, BatcherSpec, Error, ModelAssignment, ModelLoadStatus, ReplicaStatus, Result,
    RevisionPhase, RevisionSpec, RevisionStatus, Runner,
};
use oxserve_agent::batcher::BatcherConfig;
use oxserve_agent::logger::LoggerConfig;
use pull::{KSERVE_MODEL_DIR, PullContext};
use replica::{
    Front, Launch, LaunchKind, MultiModel, ReplicaCtx, RevisionShared, SupervisorConfig,
};
use state::{StateStore, check_name};

/// How the local backend runs replicas.
#[derive(Clone, Debug)]
pub struct LocalConfig {
    /// Process supervision.
    pub supervisor: SupervisorConfig,
    /// Where `pvc://CLAIM/PATH` resolves.
    pub pvc_root: PathBuf,
    /// How often each replica's multi-model watcher reads its `models.json`.
    pub models_interval: Duration,
}

impl LocalConfig {
    /// Defaults around the `oxserve` binary replicas run; PVCs under `/mnt/pvc`; the
    /// TrainedModels file read every 500 ms.
    pub fn new(server_bin: impl Into<PathBuf>) -> LocalConfig {
        LocalConfig {
            supervisor: SupervisorConfig::new(server_bin),
            pvc_root: "/mnt/pvc".into(),
            models_interval: Duration::from_millis(500),
        }
    }
}

/// The watcher's config file in a revision's directory.
const MODELS_FILE: &str = "models.json";

/// Revisions as groups of local processes. Cheap to clone.
#[derive(Clone)]
pub struct LocalBackend {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LocalBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBackend")
            .field("state_dir", &self.inner.state_dir)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: Arc<SupervisorConfig>,
    pulls: PullContext,
    state_dir: PathBuf,
    revisions_dir: PathBuf,
    logs_dir: PathBuf,
    client: reqwest::Client,
    changed: Arc<watch::Sender<u64>>,
    revisions: Mutex<HashMap<String, Arc<Entry>>>,
    models_interval: Duration,
}

/// One known revision.
struct Entry {
    spec: RevisionSpec,
    /// Set while pulling: bytes done and total.
    pulling: Arc<Mutex<Option<(u64, u64)>>>,
    shared: Arc<Mutex<RevisionShared>>,
    desired: watch::Sender<u32>,
    task: Mutex<Option<JoinHandle<()>>>,
    /// The TrainedModels last given to [`Backend::set_models`].
    models: Mutex<Vec<ModelAssignment>>,
}

impl LocalBackend {
    /// A backend keeping its files in `state`'s directory.
    pub fn new(state: &StateStore, config: LocalConfig) -> LocalBackend {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .no_proxy()
            .build()
            .unwrap_or_default();
        LocalBackend {
            inner: Arc::new(Inner {
                config: Arc::new(config.supervisor),
                pulls: PullContext { cache_dir: state.cache_dir(), pvc_root: config.pvc_root },
                state_dir: state.dir().to_owned(),
                revisions_dir: state.revisions_dir(),
                logs_dir: state.logs_dir(),
                client,
                changed: Arc::new(watch::channel(0).0),
                revisions: Mutex::new(HashMap::new()),
                models_interval: config.models_interval,
            }),
        }
    }

    /// A counter bumped on every change of any revision's status (a replica started, became
    /// ready, exited; a pull advanced; a revision failed), for whoever wants to react.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    /// The log file of a revision's replica (`STATE/logs/REVISION/N.log`), whether or not
    /// it exists.
    pub fn log_path(&self, revision: &str, replica: u32) -> PathBuf {
        replica::log_path(&self.inner.logs_dir.join(revision), replica)
    }

    /// Every revision this backend knows.
    pub fn revisions(&self) -> Vec<String> {
        let mut v: Vec<String> = self.inner.lock().keys().cloned().collect();
        v.sort();
        v
    }

    /// Stops every replica of every revision (as on shutdown), keeping the revisions' files.
    pub async fn shutdown(&self) {
        let entries: Vec<Arc<Entry>> = self.inner.lock().drain().map(|(_, e)| e).collect();
        for e in &entries {
            e.desired.send_replace(0);
        }
        for e in entries {
            let task = e.task.lock().unwrap_or_else(|p| p.into_inner()).take();
            drop(e);
            if let Some(t) = task {
                let _ = t.await;
            }
        }
    }

    fn entry(&self, revision: &str) -> Result<Arc<Entry>> {
        self.inner
            .lock()
            .get(revision)
            .cloned()
            .ok_or_else(|| Error::UnknownRevision(revision.to_owned()))
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Entry>>> {
        self.revisions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }
}

/// Why the local backend cannot run `spec`, if it cannot.
fn refusal(spec: &RevisionSpec) -> Option<String> {
    match &spec.runner {
        Runner::Container { command, image, .. } if command.is_empty() => Some(match image {
            Some(image) => format!(
                "container image {image} has no command: the local backend runs a container's \
                 command and args as a local process, not images"
            ),
            None => "container has neither image nor command".to_owned(),
        }),
        _ => None,
    }
}

#[async_trait::async_trait]
impl Backend for LocalBackend {
    async fn ensure_revision(&self, spec: &RevisionSpec) -> Result<()> {
        check_name("revision", &spec.revision)?;
        let entry = {
            let mut map = self.inner.lock();
            if let Some(existing) = map.get(&spec.revision) {
                return if existing.spec == *spec {
                    Ok(())
                } else {
                    Err(Error::Changed(spec.revision.clone()))
                };
            }
            let entry = Arc::new(Entry {
                spec: spec.clone(),
                pulling: Arc::new(Mutex::new(None)),
                shared: Arc::new(Mutex::new(RevisionShared::default())),
                desired: watch::channel(0).0,
                task: Mutex::new(None),
                models: Mutex::new(Vec::new()),
            });
            map.insert(spec.revision.clone(), entry.clone());
            entry
        };
        if let Some(reason) = refusal(spec) {
            entry.shared.lock().unwrap_or_else(|p| p.into_inner()).failed = Some(reason);
            self.inner.bump();
            return Ok(());
        }
        let task = tokio::spawn(supervise(self.inner.clone(), entry.clone()));
        *entry.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        self.inner.bump();
        Ok(())
    }

    async fn scale(&self, revision: &str, replicas: u32) -> Result<()> {
        let entry = self.entry(revision)?;
        entry.desired.send_if_modified(|n| std::mem::replace(n, replicas) != replicas);
        Ok(())
    }

    async fn delete_revision(&self, revision: &str) -> Result<()> {
        let Some(entry) = self.inner.lock().remove(revision) else { return Ok(()) };
        entry.desired.send_replace(0);
        let task = entry.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = task {
            // Dropping the last sender tells the task to stop everything.
            drop(entry);
            let _ = t.await;
        }
        for dir in [self.inner.revisions_dir.join(revision), self.inner.logs_dir.join(revision)] {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::Io { path: dir, source: e }),
            }
        }
        self.inner.bump();
        Ok(())
    }

    async fn replica_status(&self, revision: &str) -> Result<Vec<ReplicaStatus>> {
        Ok(self.revision_status(revision).await?.replicas)
    }

    async fn revision_status(&self, revision: &str) -> Result<RevisionStatus> {
        let entry = self.entry(revision)?;
        let pulling = *entry.pulling.lock().unwrap_or_else(|p| p.into_inner());
        let shared = entry.shared.lock().unwrap_or_else(|p| p.into_inner());
        let replicas: Vec<ReplicaStatus> = shared.replicas.values().cloned().collect();
        let phase = if let Some(reason) = &shared.failed {
            RevisionPhase::Failed { reason: reason.clone() }
        } else if shared.ever_ready || replicas.iter().any(|r| r.ready) {
            RevisionPhase::Ready
        } else if let Some((done, total)) = pulling {
            RevisionPhase::Pulling { done, total }
        } else {
            RevisionPhase::Loading
        };
        Ok(RevisionStatus {
            revision: revision.to_owned(),
            phase,
            desired: *entry.desired.borrow(),
            replicas,
        })
    }

    async fn set_models(&self, revision: &str, models: &[ModelAssignment]) -> Result<()> {
        let entry = self.entry(revision)?;
        if !serves_trained_models(&entry.spec) {
            return Err(Error::Unsupported {
                revision: revision.to_owned(),
                reason: "only predictors of the built-in server load TrainedModels".to_owned(),
            });
        }
        {
            let mut current = entry.models.lock().unwrap_or_else(|p| p.into_inner());
            let path = self.inner.revisions_dir.join(revision).join(MODELS_FILE);
            if *current == models && path.exists() {
                return Ok(());
            }
            // KServe's models.json, as its TrainedModel controller writes the ConfigMap.
            let file: Vec<serde_json::Value> = models
                .iter()
                .map(|m| {
                    let mut spec = serde_json::json!({ "storageUri": m.storage_uri });
                    if let Some(f) = &m.framework {
                        spec["framework"] = f.clone().into();
                    }
                    if let Some(mem) = &m.memory {
                        spec["memory"] = mem.clone().into();
                    }
                    serde_json::json!({ "modelName": m.name, "modelSpec": spec })
                })
                .collect();
            let dir = self.inner.revisions_dir.join(revision);
            std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
            let bytes = serde_json::to_vec_pretty(&file)
                .map_err(|source| Error::Json { path: path.clone(), source })?;
            state::write_atomic(&path, &bytes)?;
            *current = models.to_vec();
        }
        self.inner.bump();
        Ok(())
    }

    async fn model_status(&self, revision: &str) -> Result<Vec<ModelLoadStatus>> {
        let entry = self.entry(revision)?;
        let models = entry.models.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if models.is_empty() {
            return Ok(Vec::new());
        }
        let (ready, states): (Vec<String>, Vec<oxserve_agent::watcher::ModelStates>) = {
            let shared = entry.shared.lock().unwrap_or_else(|p| p.into_inner());
            let ready: Vec<(u32, String)> = shared
                .replicas
                .iter()
                .filter(|(_, r)| r.ready)
                .filter_map(|(id, r)| Some((*id, r.http.clone()?)))
                .collect();
            let states =
                ready.iter().filter_map(|(id, _)| shared.models.get(id).cloned()).collect();
            (ready.into_iter().map(|(_, h)| h).collect(), states)
        };
        let mut last_used: HashMap<String, u64> = HashMap::new();
        for http in &ready {
            for (name, at) in last_inferences(&self.inner.client, http).await {
                let e = last_used.entry(name).or_default();
                *e = (*e).max(at);
            }
        }
        Ok(models
            .iter()
            .map(|m| {
                let mut status = ModelLoadStatus {
                    name: m.name.clone(),
                    replicas: ready.len() as u32,
                    last_used_ms: last_used.get(&m.name).copied().unwrap_or(0),
                    ..Default::default()
                };
                for s in &states {
                    match s.get(&m.name) {
                        Some(st) if st.storage_uri != m.storage_uri => {}
                        Some(st) if st.phase == oxserve_agent::watcher::Phase::Loaded => {
                            status.loaded += 1
                        }
                        Some(st) => status.error = st.error.clone().or(status.error),
                        None => {}
                    }
                }
                status
            })
            .collect())
    }
}

/// Whether the revision's replicas serve a repository that TrainedModels load into.
fn serves_trained_models(spec: &RevisionSpec) -> bool {
    matches!(spec.runner, Runner::Server { .. }) && spec.component == "predictor"
}

/// Per model, the last inference (ms since the epoch) the server at `http` reports in its
/// statistics; nothing when it does not answer.
async fn last_inferences(client: &reqwest::Client, http: &str) -> Vec<(String, u64)> {
    let url = format!("{}/v2/models/stats", http.trim_end_matches('/'));
    let Ok(resp) = client.get(&url).timeout(Duration::from_secs(1)).send().await else {
        return Vec::new();
    };
    let Ok(body) = resp.json::<serde_json::Value>().await else { return Vec::new() };
    body.get("model_stats")
        .and_then(serde_json::Value::as_array)
        .map(|all| {
            all.iter()
                .filter_map(|m| {
                    let name = m.get("name")?.as_str()?.to_owned();
                    let at = m.get("last_inference").and_then(serde_json::Value::as_u64)?;
                    Some((name, at))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A revision's life: pull, then keep `desired` replicas running until the revision fails
/// or is deleted (its `desired` sender dropped).
async fn supervise(inner: Arc<Inner>, entry: Arc<Entry>) {
    let spec = entry.spec.clone();
    let mut desired = entry.desired.subscribe();
    let shared = entry.shared.clone();
    let pulling = entry.pulling.clone();
    // Only the map holds the entry, so removing it drops `desired`'s sender.
    drop(entry);
    let fail = |reason: String| {
        tracing::warn!(revision = %spec.revision, %reason, "revision failed");
        shared.lock().unwrap_or_else(|p| p.into_inner()).failed = Some(reason);
        inner.bump();
    };

    let rev_dir = inner.revisions_dir.join(&spec.revision);
    *pulling.lock().unwrap_or_else(|p| p.into_inner()) = Some((0, 0));
    inner.bump();
    let progress: pull::OnProgress = {
        let (pulling, inner) = (pulling.clone(), inner.clone());
        Arc::new(move |done, total| {
            *pulling.lock().unwrap_or_else(|p| p.into_inner()) = Some((done, total));
            inner.bump();
        })
    };
    let prepared = tokio::select! {
        r = pull::prepare(&inner.pulls, &rev_dir, &spec.sources, progress) => r,
        _ = closed(&mut desired) => return,
    };
    *pulling.lock().unwrap_or_else(|p| p.into_inner()) = None;
    let model_dir = match prepared {
        Ok(d) => d,
        Err(reason) => return fail(reason),
    };
    if matches!(spec.runner, Runner::Server { .. })
        && let Err(reason) = pull::write_server_settings(
            &model_dir,
            &spec.model_name,
            spec.batcher.as_ref(),
            spec.explainer.as_ref(),
        )
    {
        return fail(reason);
    }
    let launch = launch_for(&inner, &spec, &model_dir);
    let failed = Arc::new(watch::channel(false).0);
    let ctx = ReplicaCtx {
        config: inner.config.clone(),
        launch: Arc::new(launch),
        shared: shared.clone(),
        client: inner.client.clone(),
        changed: inner.changed.clone(),
        failed: failed.clone(),
    };
    let mut failed_rx = failed.subscribe();
    let mut slots: std::collections::BTreeMap<u32, (watch::Sender<bool>, JoinHandle<()>)> =
        Default::default();
    inner.bump();
    loop {
        let want = if *failed_rx.borrow_and_update() { 0 } else { *desired.borrow_and_update() };
        slots.retain(|_, (_, task)| !task.is_finished());
        while (slots.len() as u32) < want {
            let id = (0..).find(|i| !slots.contains_key(i)).unwrap_or_default();
            let (stop_tx, stop_rx) = watch::channel(false);
            let task = tokio::spawn(replica::run_replica(ctx.clone(), id, stop_rx));
            slots.insert(id, (stop_tx, task));
        }
        stop_slots(&mut slots, want as usize).await;
        tokio::select! {
            r = desired.changed() => if r.is_err() { break },
            _ = failed_rx.changed() => {}
        }
    }
    stop_slots(&mut slots, 0).await;
}

/// Stops the highest-numbered replicas until `keep` are left, all at once.
async fn stop_slots(
    slots: &mut std::collections::BTreeMap<u32, (watch::Sender<bool>, JoinHandle<()>)>,
    keep: usize,
) {
    let mut stopping = Vec::new();
    while slots.len() > keep {
        let Some((_, (stop, task))) = slots.pop_last() else { break };
        stop.send_replace(true);
        stopping.push(task);
    }
    for t in stopping {
        let _ = t.await;
    }
}

/// Resolves when the sender side of `rx` is gone.
async fn closed(rx: &mut watch::Receiver<u32>) {
    while rx.changed().await.is_ok() {}
}

fn launch_for(inner: &Inner, spec: &RevisionSpec, model_dir: &std::path::Path) -> Launch {
    let model = model_dir.display().to_string();
    let env: Vec<(String, String)> = spec
        .env
        .iter()
        .map(|e| (e.name.clone(), e.value.replace(KSERVE_MODEL_DIR, &model)))
        .collect();
    let logs_dir = inner.logs_dir.join(&spec.revision);
    match &spec.runner {
        Runner::Server { args } => {
            let mut all = vec![
                "serve".to_owned(),
                model.clone(),
                "--host".into(),
                "127.0.0.1".into(),
                "--http-port".into(),
                "0".into(),
                "--grpc-port".into(),
                "0".into(),
            ];
            all.extend(args.iter().cloned());
            Launch {
                program: inner.config.server_bin.clone(),
                args: all,
                env,
                kind: LaunchKind::Server,
                model_name: spec.model_name.clone(),
                logs_dir,
                // The server batches natively (model-settings.json).
                front: front_for(spec, false),
                multi_model: serves_trained_models(spec).then(|| {
                    let rev_dir = inner.revisions_dir.join(&spec.revision);
                    MultiModel {
                        replicas_dir: rev_dir.join("replicas"),
                        model_dir: model_dir.to_owned(),
                        config_file: rev_dir.join(MODELS_FILE),
                        cache_dir: inner.pulls.cache_dir.clone(),
                        pvc_root: inner.pulls.pvc_root.clone(),
                        interval: inner.models_interval,
                    }
                }),
            }
        }
        Runner::Container { command, args, predictor_host, .. } => {
            let mut all: Vec<String> = command[1..]
                .iter()
                .chain(args)
                .map(|a| a.replace(KSERVE_MODEL_DIR, &model))
                .collect();
            if let Some(host) = predictor_host {
                all.push(format!("--predictor_host={host}"));
            }
            Launch {
                program: PathBuf::from(&command[0]),
                args: all,
                env,
                kind: LaunchKind::Container,
                model_name: spec.model_name.clone(),
                logs_dir,
                front: front_for(spec, true),
                multi_model: None,
            }
        }
    }
}

/// The agent proxy a revision's replicas need: its logger, and the agent's batcher when the
/// workload does not batch by itself.
fn front_for(spec: &RevisionSpec, agent_batches: bool) -> Option<Front> {
    let logger = spec.logger.as_ref().map(|l| {
        let mut c = LoggerConfig::new(&l.url, PathBuf::new());
        // Validated by the API; an unknown mode logs everything rather than nothing.
        c.mode = l.mode.parse().unwrap_or_default();
        c.source = format!("http://localhost/{}/{}", spec.namespace, spec.revision);
        c.inference_service_name = spec.service.clone();
        c.namespace = spec.namespace.clone();
        c.component = spec.component.clone();
        c.endpoint = l.endpoint.clone();
        c
    });
    let batcher = spec.batcher.as_ref().filter(|_| agent_batches).map(|b| {
        let defaults = BatcherConfig::default();
        BatcherConfig {
            max_batch_size: b.max_batch_size.unwrap_or(BatcherSpec::DEFAULT_MAX_BATCH_SIZE)
                as usize,
            max_latency: Duration::from_millis(u64::from(
                b.max_latency.unwrap_or(BatcherSpec::DEFAULT_MAX_LATENCY_MS),
            )),
            timeout: b
                .timeout
                .map(|t| Duration::from_secs(u64::from(t)))
                .unwrap_or(defaults.timeout),
        }
    });
    (logger.is_some() || batcher.is_some()).then_some(Front { logger, batcher })
}
