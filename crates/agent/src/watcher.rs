//! The multi-model watcher: keeps a server's loaded models equal to a models config file.
//!
//! The file (`models.json`, as KServe's TrainedModel controller writes it into a ConfigMap)
//! is a JSON list of `{"modelName", "modelSpec": {"storageUri", "framework", "memory"}}`;
//! the flat form `{"name", "storageUri", "framework", "memory"}` is accepted too. The file is
//! polled (a ConfigMap update is an atomic symlink swap, which polling sees reliably); on a
//! change, new and changed models are pulled into `<model_dir>/<name>` and loaded with the
//! V2 repository extension (`POST /v2/repository/models/{name}/load`), and removed ones are
//! unloaded and deleted. Failures are retried with exponential backoff; per-model state is
//! available through [`ModelStates`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::puller::Puller;
use crate::{Error, Result};

/// The config file's name inside the config directory.
pub const CONFIG_FILE: &str = "models.json";
/// Longest retry delay for a failing model.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// One model of the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// Model name (the server's model name and directory).
    pub name: String,
    /// Where to pull it from.
    pub storage_uri: String,
    /// Framework, as given (informational).
    pub framework: Option<String>,
    /// Memory, as given (informational).
    pub memory: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum WireModel {
    KServe(KServeModel),
    Flat(FlatModel),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KServeModel {
    model_name: String,
    model_spec: FlatSpec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FlatSpec {
    storage_uri: String,
    #[serde(default)]
    framework: Option<String>,
    #[serde(default)]
    memory: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FlatModel {
    name: String,
    storage_uri: String,
    #[serde(default)]
    framework: Option<String>,
    #[serde(default)]
    memory: Option<String>,
}

/// Parses and validates a models config.
pub fn parse_config(bytes: &[u8], path: &std::path::Path) -> Result<Vec<ModelSpec>> {
    let err = |reason: String| Error::Config { path: path.to_owned(), reason };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let wire: Vec<WireModel> = serde_json::from_slice(bytes).map_err(|e| err(e.to_string()))?;
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::with_capacity(wire.len());
    for (i, w) in wire.into_iter().enumerate() {
        let spec = match w {
            WireModel::KServe(k) => ModelSpec {
                name: k.model_name,
                storage_uri: k.model_spec.storage_uri,
                framework: k.model_spec.framework,
                memory: k.model_spec.memory,
            },
            WireModel::Flat(f) => ModelSpec {
                name: f.name,
                storage_uri: f.storage_uri,
                framework: f.framework,
                memory: f.memory,
            },
        };
        let valid = !spec.name.is_empty()
            && spec.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !spec.name.starts_with('.');
        if !valid {
            return Err(err(format!(
                "model {i}: name {:?} must be letters, digits, '-', '_' or '.'",
                spec.name
            )));
        }
        if !seen.insert(spec.name.clone()) {
            return Err(err(format!("model {i}: name {:?} appears twice", spec.name)));
        }
        out.push(spec);
    }
    Ok(out)
}

/// Where a model is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub enum Phase {
    /// Being downloaded.
    Pulling,
    /// Being loaded by the server.
    Loading,
    /// Served.
    Loaded,
    /// The last attempt failed; retried later.
    Failed,
}

/// The state of one model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelState {
    /// The URI this state is for.
    pub storage_uri: String,
    /// Phase.
    pub phase: Phase,
    /// The last error, when failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Failed attempts in a row.
    pub failures: u32,
}

/// Per-model state, shared between the watcher and whoever reports it.
#[derive(Debug, Clone, Default)]
pub struct ModelStates {
    inner: Arc<std::sync::Mutex<BTreeMap<String, ModelState>>>,
}

impl ModelStates {
    /// A JSON object of model name → state.
    pub fn snapshot(&self) -> serde_json::Value {
        serde_json::to_value(&*self.lock()).unwrap_or_default()
    }

    /// The state of one model.
    pub fn get(&self, name: &str) -> Option<ModelState> {
        self.lock().get(name).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ModelState>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, name: &str, state: ModelState) {
        self.lock().insert(name.to_owned(), state);
    }

    fn remove(&self, name: &str) {
        self.lock().remove(name);
    }
}

/// Watcher settings.
#[derive(Debug, Clone)]
pub struct WatcherConfig {
    /// The models config file.
    pub config_file: PathBuf,
    /// The server's model repository.
    pub model_dir: PathBuf,
    /// The server's REST base URL.
    pub server: String,
    /// Poll interval, also the first retry delay.
    pub interval: Duration,
}

/// The reconciler.
pub struct Watcher {
    config: WatcherConfig,
    puller: Arc<Puller>,
    client: reqwest::Client,
    states: ModelStates,
    /// When each failed model may be retried.
    retry_at: BTreeMap<String, Instant>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Watcher {
    /// A watcher pulling through `puller`.
    pub fn new(config: WatcherConfig, puller: Puller) -> Result<Watcher> {
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| Error::Http(format!("building the server client: {e}")))?;
        Ok(Watcher {
            config,
            puller: Arc::new(puller),
            client,
            states: ModelStates::default(),
            retry_at: BTreeMap::new(),
        })
    }

    /// The shared state report.
    pub fn states(&self) -> ModelStates {
        self.states.clone()
    }

    /// Reconciles every `interval` until `stop` turns true.
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut last_error: Option<String> = None;
        loop {
            match self.reconcile_once().await {
                Ok(()) => last_error = None,
                Err(e) => {
                    let msg = e.to_string();
                    if last_error.as_deref() != Some(&msg) {
                        tracing::error!(error = %msg, "models config");
                    }
                    last_error = Some(msg);
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.config.interval) => {}
                r = stop.changed() => if r.is_err() || *stop.borrow() { return },
            }
        }
    }

    /// Reads the config and does one pass of pulls, loads and unloads.
    pub async fn reconcile_once(&mut self) -> Result<()> {
        let path = &self.config.config_file;
        let desired = match std::fs::read(path) {
            Ok(bytes) => parse_config(&bytes, path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::Io { path: path.clone(), source: e }),
        };
        let current: Vec<String> = self.states.lock().keys().cloned().collect();
        for name in current {
            if !desired.iter().any(|m| m.name == name) {
                self.remove(&name).await;
            }
        }
        for spec in desired {
            let state = self.states.get(&spec.name);
            let up_to_date = state
                .as_ref()
                .is_some_and(|s| s.storage_uri == spec.storage_uri && s.phase == Phase::Loaded);
            let changed = state.as_ref().is_some_and(|s| s.storage_uri != spec.storage_uri);
            let waiting =
                !changed && self.retry_at.get(&spec.name).is_some_and(|t| *t > Instant::now());
            if up_to_date || waiting {
                continue;
            }
            let failures = if changed { 0 } else { state.map_or(0, |s| s.failures) };
            self.apply(&spec, failures).await;
        }
        Ok(())
    }

    async fn apply(&mut self, spec: &ModelSpec, failures: u32) {
        let set = |phase, error: Option<String>, failures| {
            self.states.set(
                &spec.name,
                ModelState { storage_uri: spec.storage_uri.clone(), phase, error, failures },
            )
        };
        set(Phase::Pulling, None, failures);
        let dest = self.config.model_dir.join(&spec.name);
        let result = async {
            self.puller.pull(&spec.storage_uri, &dest).await?;
            set(Phase::Loading, None, failures);
            self.repository_call(&spec.name, "load").await
        }
        .await;
        match result {
            Ok(()) => {
                tracing::info!(model = %spec.name, uri = %spec.storage_uri, "model loaded");
                self.retry_at.remove(&spec.name);
                set(Phase::Loaded, None, 0);
            }
            Err(e) => {
                let failures = failures + 1;
                let delay =
                    self.config.interval.saturating_mul(1 << failures.min(16)).min(MAX_BACKOFF);
                tracing::warn!(model = %spec.name, error = %e, retry_in = ?delay, "model failed");
                self.retry_at.insert(spec.name.clone(), Instant::now() + delay);
                set(Phase::Failed, Some(e.to_string()), failures);
            }
        }
    }

    async fn remove(&mut self, name: &str) {
        if let Err(e) = self.repository_call(name, "unload").await {
            tracing::warn!(model = %name, error = %e, "unload failed");
        }
        let dir = self.config.model_dir.join(name);
        if dir.exists()
            && let Err(e) = tokio::fs::remove_dir_all(&dir).await
        {
            tracing::warn!(model = %name, error = %e, "removing the model directory failed");
        }
        self.retry_at.remove(name);
        self.states.remove(name);
        tracing::info!(model = %name, "model removed");
    }

    async fn repository_call(&self, name: &str, action: &str) -> Result<()> {
        let url = format!(
            "{}/v2/repository/models/{name}/{action}",
            self.config.server.trim_end_matches('/')
        );
        let resp = self
            .client
            .post(&url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body("{}")
            .send()
            .await
            .map_err(|e| Error::Http(format!("{action} {name}: {e}")))?;
        if resp.status().is_success() {
            return Ok(());
        }
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        Err(Error::Http(format!("{action} {name}: server answered {status}: {body}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn parses_kserve_and_flat_forms() {
        let p = Path::new("models.json");
        let kserve = br#"[{"modelName":"a","modelSpec":{"storageUri":"s3://b/a","framework":"sklearn","memory":"1G"}}]"#;
        let flat = br#"[{"name":"a","storageUri":"s3://b/a","framework":"sklearn","memory":"1G"}]"#;
        assert_eq!(parse_config(kserve, p).unwrap(), parse_config(flat, p).unwrap());
        assert_eq!(parse_config(kserve, p).unwrap()[0].storage_uri, "s3://b/a");
        assert!(parse_config(b"  \n", p).unwrap().is_empty());
    }

    #[test]
    fn rejects_bad_configs() {
        let p = Path::new("models.json");
        for bad in [
            &br#"{"name":"a"}"#[..],
            br#"[{"name":"a","storageUri":"x","extra":1}]"#,
            br#"[{"name":"../a","storageUri":"x"}]"#,
            br#"[{"name":"a","storageUri":"x"},{"name":"a","storageUri":"y"}]"#,
            b"[",
        ] {
            let err = parse_config(bad, p).unwrap_err();
            assert!(err.to_string().starts_with("config models.json"), "{err}");
        }
    }
}
