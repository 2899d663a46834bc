//! The inference core both frontends share: the registry of loaded models, load/unload,
//! request validation, dispatch (directly or through the batcher), metrics and statistics.
//!
//! Reads are lock-free: the registry is an immutable map behind an [`ArcSwap`], replaced
//! whole by load and unload (which are serialised by an async mutex), so the request path
//! never waits on an administrative operation.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;
use oxserve_protocol::extensions::{ModelIndexEntry, ModelState as IndexState};
use oxserve_protocol::{InferRequest, InferResponse, ModelMetadata, ServerMetadata, Tensor};

use crate::admission::{Admission, AdmissionLimits, Admitted};
use crate::batcher::{Batcher, BatcherConfig};
use crate::error::{Error, Result};
use crate::explain::kernel::KernelExplainer;
use crate::explain::{Attributions, Method};
use crate::metrics::{Metrics, ModelMetrics, Protocol};
use crate::model::Model;
use crate::repository::{ModelLocation, Repository};
use crate::settings::{ExplainerKind, ModelSettings};
use crate::stats::ModelStats;
use crate::validate::{select_outputs, validate_request};

/// Extensions of the protocol this server implements, as advertised in server metadata.
pub const EXTENSIONS: &[&str] =
    &["binary_tensor_data", "model_repository", "statistics", "model_configuration", "explain"];

/// The explainer a model version answers `explain` with.
enum VersionExplainer {
    /// The model's own exact explainer (TreeSHAP).
    Exact,
    /// KernelSHAP from the settings.
    Kernel(Arc<KernelExplainer>),
    /// None configured, or one that could not be built: why, for the 400.
    Unavailable(String),
}

/// An explanation with the prediction it explains.
#[derive(Debug, Clone)]
pub struct Explained {
    /// The prediction (the requested outputs) followed by the explanation's tensors
    /// (`<output>_attributions`, `expected_value`, and `margin` for tree models).
    pub response: InferResponse,
    pub attributions: Attributions,
}

/// Lifecycle of a model in the registry.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelState {
    Loading,
    Ready,
    /// Explicitly unloaded; does not count against server readiness.
    Unloaded,
    /// Loading failed, with the reason.
    Failed(String),
}

impl ModelState {
    /// The state as the repository extension reports it.
    pub fn wire_state(&self) -> IndexState {
        match self {
            ModelState::Loading => IndexState::Loading,
            ModelState::Ready => IndexState::Ready,
            ModelState::Unloaded | ModelState::Failed(_) => IndexState::Unavailable,
        }
    }

    /// Why the model is not ready, if it isn't.
    pub fn reason(&self) -> Option<&str> {
        match self {
            ModelState::Unloaded => Some("unloaded"),
            ModelState::Failed(reason) => Some(reason),
            _ => None,
        }
    }
}

/// One loaded version of a model, ready to serve.
pub struct ModelVersion {
    pub name: String,
    pub version: String,
    /// What clients see: the runtime's metadata, overridden by settings, under the served name.
    pub metadata: ModelMetadata,
    pub settings: ModelSettings,
    pub stats: Arc<ModelStats>,
    model: Arc<dyn Model>,
    batcher: Option<Batcher>,
    metrics: ModelMetrics,
    explainer: VersionExplainer,
    admission: Admission,
}

impl ModelVersion {
    /// Takes one of this version's in-flight slots, waiting in its bounded queue when all
    /// are busy; a full queue sheds the request (503, counted in `requests_shed`). The
    /// frontends hold the slot from before the body is read until the response is built.
    pub async fn admit(&self) -> Result<Admitted> {
        let admitted = self.admission.admit(&self.name).await;
        if admitted.is_err() {
            self.metrics.observe_shed();
        }
        admitted
    }

    /// Runs one inference request end to end on this version and records its metrics and
    /// statistics ([`Core::infer`] after looking the version up).
    pub async fn infer(&self, request: InferRequest, protocol: Protocol) -> Result<InferResponse> {
        let start = Instant::now();
        let in_flight = self.metrics.in_flight();
        let result = self.run(request).await;
        drop(in_flight);
        let elapsed = start.elapsed();
        self.metrics.observe_request(
            protocol,
            result.as_ref().map(|_| ()).map_err(Error::code),
            elapsed,
        );
        self.stats.record_request(result.is_ok(), elapsed);
        if let Err(e) = &result {
            tracing::debug!(model = %self.name, error = %e, "inference failed");
        }
        result
    }

    async fn run(&self, request: InferRequest) -> Result<InferResponse> {
        let mut request = self.model.preprocess(request)?;
        validate_request(&self.metadata, &request)?;
        let id = request.id.take();
        let outputs = match &self.batcher {
            Some(batcher) => self.run_batched(batcher, request).await?,
            None => self.run_unbatched(request)?,
        };
        let outputs = self.model.postprocess(outputs)?;
        Ok(InferResponse {
            model_name: self.name.clone(),
            model_version: Some(self.version.clone()),
            id,
            parameters: Default::default(),
            outputs,
        })
    }

    /// Without a batcher the model runs on the request's own worker thread.
    fn run_unbatched(&self, request: InferRequest) -> Result<Vec<Tensor>> {
        let wanted = request.outputs.clone();
        let outputs = self.model.infer(request)?;
        select_outputs(&wanted, outputs, &self.name)
    }

    /// With a batcher, concurrent requests are combined into one execution (the batcher
    /// selects each request's outputs).
    async fn run_batched(&self, batcher: &Batcher, request: InferRequest) -> Result<Vec<Tensor>> {
        // Boxed: the batcher's future is large, and without the box every request's future
        // would carry its space, batched or not.
        let batched = Box::pin(batcher.infer(request, self.settings.timeout));
        let (outputs, info) = batched.await?;
        self.metrics.observe_batch(info.queue_time, info.batch_size);
        self.stats.queue.record(info.queue_time);
        Ok(outputs)
    }

    /// Explains one request end to end: the prediction as [`ModelVersion::infer`] makes it
    /// (validation, batching, hooks, output selection) plus the explanation, counted in the
    /// explanation metrics and statistics, not the inference ones. Request parameters
    /// `nsamples` and `seed` override KernelSHAP's settings.
    pub async fn explain(&self, request: InferRequest, protocol: Protocol) -> Result<Explained> {
        let start = Instant::now();
        let in_flight = self.metrics.in_flight();
        let result = self.run_explain(request).await;
        drop(in_flight);
        let elapsed = start.elapsed();
        self.metrics.observe_explain(
            protocol,
            result.as_ref().map(|_| ()).map_err(Error::code),
            elapsed,
        );
        self.stats.record_explain(result.is_ok(), elapsed);
        if let Err(e) = &result {
            tracing::debug!(model = %self.name, error = %e, "explanation failed");
        }
        result
    }

    async fn run_explain(&self, request: InferRequest) -> Result<Explained> {
        if let VersionExplainer::Unavailable(why) = &self.explainer {
            return Err(Error::invalid(format!(
                "model \"{}\" cannot be explained: {why}",
                self.name
            )));
        }
        let mut request = self.model.preprocess(request)?;
        validate_request(&self.metadata, &request)?;
        let count = |key: &str| -> Result<Option<u64>> {
            match request.parameters.get(key) {
                None => Ok(None),
                Some(p) => {
                    p.as_u64().filter(|&n| n > 0 || key == "seed").map(Some).ok_or_else(|| {
                        Error::invalid(format!("parameter \"{key}\" must be a positive integer"))
                    })
                }
            }
        };
        let nsamples = count("nsamples")?.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        let seed = count("seed")?;
        let id = request.id.take();
        let mut explained_request = request.clone();
        explained_request.outputs.clear();
        let outputs = match &self.batcher {
            Some(batcher) => self.run_batched(batcher, request).await?,
            None => self.run_unbatched(request)?,
        };
        let mut outputs = self.model.postprocess(outputs)?;
        let attributions = match &self.explainer {
            VersionExplainer::Exact => {
                let model = &self.model;
                std::panic::catch_unwind(AssertUnwindSafe(|| {
                    model
                        .exact_explainer()
                        .ok_or_else(|| Error::invalid("the model has no exact explainer"))?
                        .explain(&explained_request)
                }))
                .unwrap_or_else(|_| Err(Error::runtime(&self.name, "the explainer panicked")))?
            }
            VersionExplainer::Kernel(kernel) => {
                let (kernel, model) = (kernel.clone(), self.model.clone());
                let max_batch = self.max_batch_size();
                // Many coalitions: off the request's worker thread.
                tokio::task::spawn_blocking(move || {
                    kernel.explain(&*model, &explained_request, max_batch, nsamples, seed)
                })
                .await
                .map_err(|e| Error::runtime(&self.name, format!("explainer task failed: {e}")))??
            }
            VersionExplainer::Unavailable(_) => unreachable!("answered above"),
        };
        outputs.extend(attributions.tensors(attributions.method == Method::TreeShap));
        let mut parameters = oxserve_protocol::Parameters::new();
        parameters.insert(
            "explainer".to_owned(),
            oxserve_protocol::Parameter::String(attributions.method.label().to_owned()),
        );
        Ok(Explained {
            response: InferResponse {
                model_name: self.name.clone(),
                model_version: Some(self.version.clone()),
                id,
                parameters,
                outputs,
            },
            attributions,
        })
    }

    /// The `max_batch_size` the model configuration reports (0: no batching).
    pub fn max_batch_size(&self) -> usize {
        if self.batcher.is_some() { self.settings.max_batch_size } else { 0 }
    }
}

/// A model name in the registry with its state and loaded versions.
pub struct ModelEntry {
    pub name: String,
    pub state: ModelState,
    /// Loaded versions by version name.
    pub versions: BTreeMap<String, Arc<ModelVersion>>,
    /// The version used when a request names none (the highest).
    pub default_version: Option<String>,
}

/// Names and settings of the server itself.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub server_name: String,
    pub server_version: String,
    /// In-flight and queue bounds of every model version.
    pub admission: AdmissionLimits,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            server_name: "oxserve".into(),
            server_version: env!("CARGO_PKG_VERSION").into(),
            admission: AdmissionLimits::default(),
        }
    }
}

type Registry = BTreeMap<String, Arc<ModelEntry>>;

/// The inference core: the registry of models and everything done with them.
pub struct Core {
    config: CoreConfig,
    repository: Option<Repository>,
    models: ArcSwap<Registry>,
    admin: tokio::sync::Mutex<()>,
    metrics: Metrics,
    started: AtomicBool,
    shutting_down: AtomicBool,
}

impl Core {
    /// A core serving models from `repository` (nothing is loaded until [`Core::load_all`]).
    pub fn new(config: CoreConfig, repository: Option<Repository>) -> Core {
        Core {
            config,
            repository,
            models: ArcSwap::from_pointee(Registry::new()),
            admin: tokio::sync::Mutex::new(()),
            metrics: Metrics::new(),
            started: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
        }
    }

    /// The metric registry.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Server metadata with the extensions implemented.
    pub fn server_metadata(&self) -> ServerMetadata {
        ServerMetadata {
            name: self.config.server_name.clone(),
            version: self.config.server_version.clone(),
            extensions: EXTENSIONS.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// Live until shutdown begins.
    pub fn is_live(&self) -> bool {
        !self.shutting_down.load(Ordering::Relaxed)
    }

    /// Ready when start-up loading finished and every model that should serve is ready.
    pub fn is_ready(&self) -> bool {
        self.started.load(Ordering::Relaxed)
            && self.is_live()
            && self
                .models
                .load()
                .values()
                .all(|m| matches!(m.state, ModelState::Ready | ModelState::Unloaded))
    }

    /// A snapshot of the registry.
    pub fn entries(&self) -> Vec<Arc<ModelEntry>> {
        self.models.load().values().cloned().collect()
    }

    /// The served version `version` (or the default) of `model`.
    pub fn version(&self, model: &str, version: Option<&str>) -> Result<Arc<ModelVersion>> {
        let models = self.models.load();
        let entry = models
            .get(model)
            .ok_or_else(|| Error::not_found(format!("model \"{model}\" not found")))?;
        let version_name = match version {
            Some(v) => v,
            None => entry.default_version.as_deref().ok_or_else(|| not_ready(entry))?,
        };
        match entry.versions.get(version_name) {
            Some(v) => Ok(v.clone()),
            None if entry.versions.is_empty() => Err(not_ready(entry)),
            None => Err(Error::not_found(format!(
                "model \"{model}\" has no version \"{version_name}\""
            ))),
        }
    }

    /// Whether `model` (and `version`, if given) is ready; unknown → not found.
    pub fn model_ready(&self, model: &str, version: Option<&str>) -> Result<bool> {
        match self.version(model, version) {
            Ok(_) => Ok(true),
            Err(e) if e.code() == oxserve_protocol::ErrorCode::Unavailable => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Runs one inference request end to end and records its metrics and statistics.
    pub async fn infer(
        &self,
        model: &str,
        version: Option<&str>,
        request: InferRequest,
        protocol: Protocol,
    ) -> Result<InferResponse> {
        let served = self.version(model, version)?;
        served.infer(request, protocol).await
    }

    /// Loads every model of the repository; failures are recorded per model, not fatal.
    pub async fn load_all(&self) {
        if let Some(repo) = self.repository.clone() {
            for found in repo.scan() {
                match found {
                    Ok(location) => {
                        let name = location.name.clone();
                        if let Err(e) = self.load_location(location).await {
                            tracing::error!(model = %name, error = %e, "model failed to load");
                        }
                    }
                    Err(e) => {
                        let name = match &e {
                            Error::Load { model, .. } => model.clone(),
                            _ => "?".into(),
                        };
                        tracing::error!(model = %name, error = %e, "model failed to load");
                        let _guard = self.admin.lock().await;
                        self.put(failed_entry(&name, &e));
                    }
                }
            }
        }
        self.started.store(true, Ordering::Relaxed);
        self.metrics.set_models_loaded(self.loaded_version_count());
    }

    /// (Re)loads `name` from the repository; the old versions serve until the new are ready.
    pub async fn load(&self, name: &str) -> Result<()> {
        let repo = self
            .repository
            .as_ref()
            .ok_or_else(|| Error::not_found("this server has no model repository"))?;
        let location = repo.locate(name)?;
        self.load_location(location).await
    }

    async fn load_location(&self, location: ModelLocation) -> Result<()> {
        let _guard = self.admin.lock().await;
        let name = location.name.clone();
        let previous = self.models.load().get(&name).cloned();
        if previous.as_ref().is_none_or(|p| p.versions.is_empty()) {
            self.put(Arc::new(ModelEntry {
                name: name.clone(),
                state: ModelState::Loading,
                versions: BTreeMap::new(),
                default_version: None,
            }));
        }
        let loaded = tokio::task::spawn_blocking(move || {
            let mut models = Vec::new();
            for v in &location.versions {
                let model = crate::runtimes::load(&location.name, v, &location.settings)?;
                models.push((v.version.clone(), model));
            }
            Ok::<_, Error>((location, models))
        })
        .await
        .map_err(|e| Error::load(&name, format!("loader task failed: {e}")))
        .and_then(|r| r);
        let result = match loaded {
            Ok((location, models)) => {
                let versions: Vec<String> = models.iter().map(|(v, _)| v.clone()).collect();
                let mut built = BTreeMap::new();
                let mut error = None;
                for (version, model) in models {
                    match self.build_version(&name, &version, &versions, model, &location.settings)
                    {
                        Ok(v) => {
                            built.insert(version, Arc::new(v));
                        }
                        Err(e) => error = Some(e),
                    }
                }
                match error {
                    Some(e) => Err(e),
                    None => {
                        let default_version = location.versions.last().map(|v| v.version.clone());
                        self.put(Arc::new(ModelEntry {
                            name: name.clone(),
                            state: ModelState::Ready,
                            versions: built,
                            default_version,
                        }));
                        tracing::info!(model = %name, versions = ?versions, "model ready");
                        Ok(())
                    }
                }
            }
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            match previous {
                // A failed reload keeps the previous versions serving.
                Some(p) if !p.versions.is_empty() => self.put(p),
                _ => self.put(failed_entry(&name, e)),
            }
        } else if let Some(p) = previous {
            drain(&p).await;
        }
        self.metrics.set_models_loaded(self.loaded_version_count());
        result
    }

    /// Serves a model implemented in Rust (a custom [`Model`]) as `name`, version `version`.
    pub async fn add_model(
        &self,
        name: &str,
        version: &str,
        model: Arc<dyn Model>,
        settings: ModelSettings,
    ) -> Result<()> {
        let _guard = self.admin.lock().await;
        let served = self.build_version(name, version, &[version.to_owned()], model, &settings)?;
        self.put(Arc::new(ModelEntry {
            name: name.to_owned(),
            state: ModelState::Ready,
            versions: BTreeMap::from([(version.to_owned(), Arc::new(served))]),
            default_version: Some(version.to_owned()),
        }));
        self.metrics.set_models_loaded(self.loaded_version_count());
        Ok(())
    }

    /// Unloads `name`: new requests get 404, requests in flight finish.
    pub async fn unload(&self, name: &str) -> Result<()> {
        let _guard = self.admin.lock().await;
        let previous = self
            .models
            .load()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("model \"{name}\" not found")))?;
        self.put(Arc::new(ModelEntry {
            name: name.to_owned(),
            state: ModelState::Unloaded,
            versions: BTreeMap::new(),
            default_version: None,
        }));
        drain(&previous).await;
        self.metrics.set_models_loaded(self.loaded_version_count());
        tracing::info!(model = %name, "model unloaded");
        Ok(())
    }

    /// Every model of the repository and the registry with its state, sorted by name and
    /// version; models on disk that were never loaded are listed as unavailable.
    pub fn index(&self) -> Vec<ModelIndexEntry> {
        let models = self.models.load();
        let mut rows = Vec::new();
        for entry in models.values() {
            let state = Some(entry.state.wire_state());
            if entry.versions.is_empty() {
                let reason = entry.state.reason().map(str::to_owned);
                rows.push(ModelIndexEntry {
                    name: entry.name.clone(),
                    version: None,
                    state,
                    reason,
                });
            }
            for v in entry.versions.keys() {
                let version = Some(v.clone());
                rows.push(ModelIndexEntry {
                    name: entry.name.clone(),
                    version,
                    state,
                    reason: None,
                });
            }
        }
        if let Some(repo) = &self.repository {
            for location in repo.scan().into_iter().flatten() {
                if !models.contains_key(&location.name) {
                    rows.push(ModelIndexEntry {
                        name: location.name,
                        version: None,
                        state: Some(IndexState::Unavailable),
                        reason: Some("unloaded".into()),
                    });
                }
            }
        }
        rows.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        rows
    }

    /// Stops accepting work and drains every batcher.
    pub async fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
        for entry in self.entries() {
            drain(&entry).await;
        }
    }

    fn build_version(
        &self,
        name: &str,
        version: &str,
        all_versions: &[String],
        model: Arc<dyn Model>,
        settings: &ModelSettings,
    ) -> Result<ModelVersion> {
        let mut metadata = model.metadata().clone();
        metadata.name = name.to_owned();
        metadata.versions = all_versions.to_vec();
        if let Some(inputs) = &settings.inputs {
            override_metadata(name, "input", &mut metadata.inputs, inputs)?;
        }
        if let Some(outputs) = &settings.outputs {
            override_metadata(name, "output", &mut metadata.outputs, outputs)?;
        }
        let stats = Arc::new(ModelStats::default());
        let instrumented: Arc<dyn Model> = Arc::new(Instrumented {
            inner: model.clone(),
            stats: stats.clone(),
            name: name.to_owned(),
        });
        let batcher = settings.batching().then(|| {
            Batcher::spawn(
                instrumented.clone(),
                BatcherConfig {
                    max_batch_size: settings.max_batch_size,
                    max_queue_delay: settings.max_batch_time,
                    preferred_batch_sizes: settings.preferred_batch_sizes.clone(),
                    max_queue_size: settings.max_queue_size,
                    parallelism: 1,
                },
            )
        });
        let explainer = version_explainer(name, &metadata, &*model, settings);
        Ok(ModelVersion {
            name: name.to_owned(),
            version: version.to_owned(),
            metadata,
            settings: settings.clone(),
            stats,
            model: instrumented,
            batcher,
            metrics: self.metrics.for_model(name, version),
            explainer,
            admission: Admission::new(self.config.admission),
        })
    }

    fn put(&self, entry: Arc<ModelEntry>) {
        let mut next = Registry::clone(&self.models.load());
        next.insert(entry.name.clone(), entry);
        self.models.store(Arc::new(next));
    }

    fn loaded_version_count(&self) -> usize {
        self.models.load().values().map(|e| e.versions.len()).sum()
    }
}

/// The explainer of a version: KernelSHAP when the settings ask for it, else the model's
/// own. A KernelSHAP explainer that cannot be built (its background unreadable or of the
/// wrong width) does not keep the model from serving; explanations answer why.
fn version_explainer(
    name: &str,
    metadata: &ModelMetadata,
    model: &dyn Model,
    settings: &ModelSettings,
) -> VersionExplainer {
    let exact = model.exact_explainer().is_some();
    match &settings.explainer {
        Some(e) if e.kind == ExplainerKind::KernelShap => match KernelExplainer::new(e, metadata) {
            Ok(k) => VersionExplainer::Kernel(Arc::new(k)),
            Err(why) => {
                tracing::warn!(model = %name, error = %why, "the explainer cannot be built");
                VersionExplainer::Unavailable(why)
            }
        },
        _ if exact => VersionExplainer::Exact,
        Some(_) => VersionExplainer::Unavailable(
            "explainer.type \"treeshap\" needs a tree model (xgboost or lightgbm)".into(),
        ),
        None => VersionExplainer::Unavailable(
            "no explainer is configured (set \"explainer\" with type \"kernelshap\" and a background in model-settings.json)".into(),
        ),
    }
}

fn not_ready(entry: &ModelEntry) -> Error {
    let why = entry.state.reason().unwrap_or("loading");
    Error::Unavailable(format!("model \"{}\" is not ready: {why}", entry.name))
}

fn failed_entry(name: &str, e: &Error) -> Arc<ModelEntry> {
    Arc::new(ModelEntry {
        name: name.to_owned(),
        state: ModelState::Failed(e.to_string()),
        versions: BTreeMap::new(),
        default_version: None,
    })
}

async fn drain(entry: &ModelEntry) {
    for v in entry.versions.values() {
        if let Some(b) = &v.batcher {
            b.shutdown().await;
        }
    }
}

/// Replaces metadata entries by name; settings may only describe tensors the model has.
fn override_metadata(
    model: &str,
    kind: &str,
    actual: &mut [oxserve_protocol::TensorMetadata],
    wanted: &[oxserve_protocol::TensorMetadata],
) -> Result<()> {
    for w in wanted {
        let slot = actual.iter_mut().find(|a| a.name == w.name).ok_or_else(|| {
            Error::load(
                model,
                format!("model-settings.json: the model has no {kind} \"{}\"", w.name),
            )
        })?;
        *slot = w.clone();
    }
    Ok(())
}

/// Wraps a model to time its executions and catch its panics.
struct Instrumented {
    inner: Arc<dyn Model>,
    stats: Arc<ModelStats>,
    name: String,
}

impl Model for Instrumented {
    fn metadata(&self) -> &ModelMetadata {
        self.inner.metadata()
    }

    fn infer(&self, request: InferRequest) -> Result<Vec<Tensor>> {
        let rows = request.inputs.first().and_then(|t| t.shape.first()).copied().unwrap_or(1);
        let start = Instant::now();
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.infer(request)))
            .unwrap_or_else(|_| Err(Error::runtime(&self.name, "the model panicked")));
        self.stats.record_execution(usize::try_from(rows).unwrap_or(0), start.elapsed());
        result
    }

    fn preprocess(&self, request: InferRequest) -> Result<InferRequest> {
        self.inner.preprocess(request)
    }

    fn postprocess(&self, outputs: Vec<Tensor>) -> Result<Vec<Tensor>> {
        self.inner.postprocess(outputs)
    }

    fn memory_bytes(&self) -> u64 {
        self.inner.memory_bytes()
    }

    fn exact_explainer(&self) -> Option<&dyn crate::explain::ExactExplainer> {
        self.inner.exact_explainer()
    }
}
