//! The seam between the reconcile loop and where replicas run: the [`Backend`] trait and
//! the backend-neutral description of one revision's workload ([`RevisionSpec`]).
//!
//! A backend is told which revisions exist ([`Backend::ensure_revision`]), how many replicas
//! each should have ([`Backend::scale`]) and which to forget ([`Backend::delete_revision`]);
//! it reports what actually runs ([`Backend::replica_status`], [`Backend::revision_status`]).
//! A predictor revision can also be told which TrainedModels its replicas load beside their
//! own model ([`Backend::set_models`], reported by [`Backend::model_status`]); a backend
//! without multi-model support keeps the default methods.
//! Every call is idempotent, so the loop can repeat its whole desired state on every pass.
//! The local backend ([`crate::local`]) runs replicas as child processes; a Kubernetes
//! backend maps the same calls onto Deployments.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything a backend can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A revision spec the backend cannot run (e.g. an image without a command locally).
    #[error("revision {revision}: {reason}")]
    Unsupported { revision: String, reason: String },
    /// A name that cannot be used as asked.
    #[error("{0}")]
    Invalid(String),
    /// The backend could not do it now (its API unreachable or failing); the caller
    /// retries, the revision is not at fault.
    #[error("revision {revision}: {reason}")]
    Unavailable { revision: String, reason: String },
    /// The revision is not known to the backend.
    #[error("revision {0} is not known")]
    UnknownRevision(String),
    /// The revision was ensured before with a different spec; revisions are immutable.
    #[error("revision {0} already exists with a different spec (revisions are immutable)")]
    Changed(String),
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The state directory is held by another process.
    #[error("{0}")]
    Locked(String),
    /// A stored object could not be read or written as JSON.
    #[error("{}: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// The backend's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

/// One revision's workload: immutable, as the revision it describes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionSpec {
    /// `NAME-predictor-00001`.
    pub revision: String,
    /// The InferenceService.
    pub service: String,
    pub namespace: String,
    /// `predictor`, `transformer` or `explainer`.
    pub component: String,
    /// The model name the replica serves and readiness is checked on
    /// (`/v2/models/{model_name}/ready`); KServe names it after the service.
    pub model_name: String,
    /// What runs.
    pub runner: Runner,
    /// Where the model files come from; empty when the workload needs none.
    #[serde(default)]
    pub sources: Vec<ModelSource>,
    /// Extra environment for every replica (the container's `env`).
    #[serde(default)]
    pub env: Vec<EnvVar>,
    /// The component's `batcher`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batcher: Option<BatcherSpec>,
    /// The component's `logger`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logger: Option<LoggerSpec>,
    /// The built-in server's `explainer` settings (`model-settings.json`), from an oxserve
    /// explainer the predictor serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explainer: Option<serde_json::Value>,
}

/// The process a replica runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Runner {
    /// The built-in model server (`oxserve serve MODEL_DIR`), for the model formats it
    /// serves; `args` (the container's `args`) are appended to its command line.
    Server {
        #[serde(default)]
        args: Vec<String>,
    },
    /// A custom container or an external ServingRuntime's container. Locally `command` +
    /// `args` run as a process, with `PORT` set and `--http_port=PORT` appended (KServe's
    /// contract), plus `--predictor_host=HOST` for a transformer; a backend that runs
    /// images uses `image`.
    Container {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image: Option<String>,
        #[serde(default)]
        command: Vec<String>,
        #[serde(default)]
        args: Vec<String>,
        /// Where a transformer reaches its predictor (`host:port`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        predictor_host: Option<String>,
    },
}

/// Where model files come from: one `storageUri` or one entry of `storageUris`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelSource {
    /// `s3://`, `gs://`, `az://`, `http(s)://`, `file://`, `pvc://` or a local path.
    pub uri: String,
    /// Where the files land, relative to the model directory (`storageUris[].mountPath`
    /// with KServe's `/mnt/models` prefix removed); empty for the directory itself.
    #[serde(default)]
    pub path: String,
}

/// One environment variable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

/// KServe's component `batcher`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatcherSpec {
    /// Rows per batch (KServe's default 32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_batch_size: Option<u32>,
    /// Longest a request waits for its batch to fill, in milliseconds (KServe's default 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency: Option<u32>,
    /// Seconds a request may wait in the batcher.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u32>,
}

impl BatcherSpec {
    /// KServe's defaults for an unset `maxBatchSize`.
    pub const DEFAULT_MAX_BATCH_SIZE: u32 = 32;
    /// KServe's defaults for an unset `maxLatency` (milliseconds).
    pub const DEFAULT_MAX_LATENCY_MS: u32 = 500;
}

/// KServe's component `logger`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoggerSpec {
    /// The CloudEvents sink.
    pub url: String,
    /// `all`, `request` or `response`.
    #[serde(default = "default_log_mode")]
    pub mode: String,
    /// The CloudEvents `endpoint` extension: `default` or `canary`, as the revision was
    /// rolled out.
    #[serde(default)]
    pub endpoint: String,
}

fn default_log_mode() -> String {
    "all".to_owned()
}

/// Where a revision is in its life.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "phase")]
pub enum RevisionPhase {
    /// Fetching model files: `done` of `total` bytes (`total` 0 while unknown).
    Pulling { done: u64, total: u64 },
    /// Files in place; replicas may run, none is ready yet.
    Loading,
    /// At least one replica is ready (or none is wanted and the revision can start).
    Ready,
    /// The revision cannot run: the model never loads, the pull failed, the spec is refused.
    Failed { reason: String },
}

impl RevisionPhase {
    /// A one-line progress text: `pulling 42 %`, `loading`, `ready`, `failed: …`.
    pub fn progress_line(&self) -> String {
        match self {
            RevisionPhase::Pulling { done, total } if *total > 0 => {
                format!("pulling {} %", done.saturating_mul(100) / total)
            }
            RevisionPhase::Pulling { done, .. } => format!("pulling {done} bytes"),
            RevisionPhase::Loading => "loading".to_owned(),
            RevisionPhase::Ready => "ready".to_owned(),
            RevisionPhase::Failed { reason } => format!("failed: {reason}"),
        }
    }
}

/// What one replica is doing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    /// Stable within the revision (`0`, `1`, …).
    pub id: String,
    /// The process id while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// `http://127.0.0.1:PORT` once the process listens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// `127.0.0.1:PORT` of its gRPC port, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<String>,
    /// The model is ready on it.
    pub ready: bool,
    /// How many times it was restarted after exiting.
    pub restarts: u32,
    /// Why it last exited (exit status and the last log lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<String>,
    /// Its captured stdout and stderr.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<PathBuf>,
}

/// A revision's phase and replicas together.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionStatus {
    pub revision: String,
    #[serde(flatten)]
    pub phase: RevisionPhase,
    /// Replicas asked for.
    pub desired: u32,
    pub replicas: Vec<ReplicaStatus>,
}

impl RevisionStatus {
    /// Replicas whose model is ready.
    pub fn ready_replicas(&self) -> usize {
        self.replicas.iter().filter(|r| r.ready).count()
    }
}

/// One TrainedModel a revision's replicas load beside their own model, through the
/// server's repository API (KServe's `models.json` entry).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelAssignment {
    /// The TrainedModel's name: the served model name.
    pub name: String,
    pub storage_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework: Option<String>,
    /// As written (`256Mi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

/// One TrainedModel across a revision's running replicas.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelLoadStatus {
    pub name: String,
    /// Replicas (with their own model ready) that serve it.
    pub loaded: u32,
    /// Replicas with their own model ready.
    pub replicas: u32,
    /// The last failure to pull or load it, on any replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Milliseconds since the epoch of its last inference on any replica (0: never).
    #[serde(default)]
    pub last_used_ms: u64,
}

/// Where revisions run. Every method is idempotent.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    /// Makes the revision known (pulling its model when it has one) with no replicas until
    /// [`Backend::scale`] asks for some. Ensuring an existing revision with the same spec
    /// does nothing; with another spec it is [`Error::Changed`].
    async fn ensure_revision(&self, spec: &RevisionSpec) -> Result<()>;
    /// Asks for `replicas` replicas of the revision (0 stops them all).
    async fn scale(&self, revision: &str, replicas: u32) -> Result<()>;
    /// Stops the revision's replicas and forgets it; unknown revisions are no error.
    async fn delete_revision(&self, revision: &str) -> Result<()>;
    /// The revision's replicas as they are now.
    async fn replica_status(&self, revision: &str) -> Result<Vec<ReplicaStatus>>;
    /// The revision's phase and replicas.
    async fn revision_status(&self, revision: &str) -> Result<RevisionStatus>;
    /// The TrainedModels every replica of the revision should serve beside its own model
    /// (the whole list; models left out are unloaded), now and in replicas started later.
    async fn set_models(&self, revision: &str, models: &[ModelAssignment]) -> Result<()> {
        let _ = models;
        Err(Error::Unsupported {
            revision: revision.to_owned(),
            reason: "this backend does not load TrainedModels".to_owned(),
        })
    }
    /// Each model given to [`Backend::set_models`] as the revision's replicas serve it.
    async fn model_status(&self, revision: &str) -> Result<Vec<ModelLoadStatus>> {
        let _ = revision;
        Ok(Vec::new())
    }
}
