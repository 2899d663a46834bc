//! `oxserve up`: the whole platform in one foreground process — the control plane
//! ([`oxserve_controller::platform`]) over the local backend (replicas as child processes,
//! state in `--state-dir`), the router with its activator, the KPA, and the api port.
//!
//! The api port serves the stored objects as JSON at Kubernetes-shaped paths:
//! `/apis/{group}/{version}/namespaces/{ns}/{inferenceservices|trainedmodels|servingruntimes}[/{name}]`
//! and the cluster-scoped `/apis/{group}/v1alpha1/clusterservingruntimes[/{name}]`
//! (GET list/get, PUT create-or-replace with a YAML or JSON body, DELETE), any of the three
//! API groups, plus `…/inferenceservices/{name}/revisions` and `…/{name}/logs` (oxserve's
//! own) and a status page at `/`. Errors are `{"error": "…"}` with a 4xx status.
//!
//! A service with a transformer gets a loopback listener of its own on the router
//! ([`ChainListeners`]): the transformer's `--predictor_host`, where every request goes to
//! the service's predictor.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use oxserve_api::{ApiGroup, Kind, Resource};
use oxserve_controller::autoscaler::AutoscalerConfig;
use oxserve_controller::local::state::{StateStore, write_atomic};
use oxserve_controller::local::{LocalBackend, LocalConfig};
use oxserve_controller::platform::{ObjectKind, Platform, PlatformConfig, PredictorHosts};
use oxserve_router::{Listeners, Router, RouterConfig, serve, serve_internal, serve_pinned};
use serde::Deserialize;
use serde_json::{Value, json};

/// The file in the state dir that names the api URL of the `up` holding it.
pub const API_FILE: &str = "api";
/// The default state directory.
pub const DEFAULT_STATE_DIR: &str = ".oxserve/state";

#[derive(clap::Args)]
pub struct Args {
    /// Where objects, revisions, the model cache and replica logs live (default
    /// `.oxserve/state`, or `state-dir` from the config file).
    #[arg(long, env = "OXSERVE_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Address to bind (loopback by default).
    #[arg(long, env = "OXSERVE_HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// The router's REST port (0 picks a free port).
    #[arg(long, env = "OXSERVE_HTTP_PORT", default_value_t = 8080)]
    http_port: u16,
    /// The router's gRPC port (0 picks a free port).
    #[arg(long, env = "OXSERVE_GRPC_PORT", default_value_t = 8081)]
    grpc_port: u16,
    /// The api port (0 picks a free port).
    #[arg(long, env = "OXSERVE_API_PORT", default_value_t = 9000)]
    api_port: u16,
    /// platform.yaml: `domain`, `autoscaler:` (Knative's config-autoscaler keys),
    /// `activator:` (`queue-depth`, `timeout`), `state-dir`.
    #[arg(long, env = "OXSERVE_CONFIG")]
    config: Option<PathBuf>,
    /// The `oxserve` binary replicas run (default: this one).
    #[arg(long, env = "OXSERVE_SERVER_BIN")]
    server_bin: Option<PathBuf>,
    /// Worker threads (default: one per core).
    #[arg(long, env = "OXSERVE_THREADS")]
    threads: Option<usize>,
    /// TLS for the router's REST and gRPC ports and the api port.
    #[command(flatten)]
    tls: crate::security::TlsArgs,
    /// Bearer tokens for the router's ports (health checks stay open).
    #[command(flatten)]
    auth: crate::security::AuthArgs,
    /// Bearer tokens for the api port, one per line, re-read when the file changes: apply,
    /// delete and every other request need `Authorization: Bearer TOKEN` (`oxserve apply
    /// --token`, `OXSERVE_TOKEN`).
    #[arg(long, env = "OXSERVE_API_TOKEN_FILE")]
    api_token_file: Option<PathBuf>,
    /// With --api-token-file: GET and HEAD on the api port need no token (get, describe,
    /// logs and the status page stay open; apply and delete do not).
    #[arg(long, env = "OXSERVE_API_READ_OPEN", requires = "api_token_file")]
    api_read_open: bool,
}

/// platform.yaml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct PlatformFile {
    domain: Option<String>,
    autoscaler: Option<serde_yaml_ng::Value>,
    activator: Option<ActivatorFile>,
    state_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ActivatorFile {
    queue_depth: Option<usize>,
    timeout: Option<serde_yaml_ng::Value>,
}

fn read_config(path: &Path) -> Result<(PlatformFile, AutoscalerConfig)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: PlatformFile =
        serde_yaml_ng::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let autoscaler = match &file.autoscaler {
        None => AutoscalerConfig::default(),
        Some(v) => AutoscalerConfig::from_yaml_value(v.clone())
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
    };
    Ok((file, autoscaler))
}

pub fn run(args: Args) -> Result<()> {
    let Args {
        state_dir,
        host,
        http_port,
        grpc_port,
        api_port,
        config,
        server_bin,
        threads,
        tls,
        auth,
        api_token_file,
        api_read_open,
    } = args;
    let tls = tls.config()?;
    let router_tokens = auth.open()?;
    let api_tokens = crate::security::open_tokens(api_token_file.as_ref(), "--api-token-file")?;
    if !host.is_loopback() && api_tokens.is_none() {
        eprintln!(
            "warning: the api port binds {host}, not loopback, and has no --api-token-file: \
             anyone who can reach it can apply and delete"
        );
    }
    let (file, autoscaler) = match &config {
        Some(path) => read_config(path)?,
        None => (PlatformFile::default(), AutoscalerConfig::default()),
    };
    let PlatformFile { domain, autoscaler: _, activator, state_dir: file_state_dir } = file;
    let state_dir =
        state_dir.or(file_state_dir).unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
    // Replicas run in their own directories and links point into the state dir: every path
    // derived from it must not depend on the working directory.
    let state_dir = std::path::absolute(&state_dir)
        .with_context(|| format!("state dir {}", state_dir.display()))?;
    let domain = domain.unwrap_or_else(|| "example.com".to_owned());
    let ActivatorFile { queue_depth, timeout } = activator.unwrap_or_default();
    if timeout.is_some() {
        tracing::warn!(
            "activator.timeout is not acted on yet: requests wait up to the revision's timeout"
        );
    }
    let server_bin = match server_bin {
        Some(b) => b,
        None => std::env::current_exe().context("locating the oxserve binary")?,
    };
    let store = StateStore::open(&state_dir)?;

    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(n) = threads {
        runtime.worker_threads(n.max(1));
    }
    let runtime = runtime.build().context("starting the async runtime")?;
    runtime.block_on(async move {
        let bind = |port: u16, what: &'static str| async move {
            tokio::net::TcpListener::bind(SocketAddr::new(host, port))
                .await
                .with_context(|| format!("binding {what} port {host}:{port}"))
        };
        let http = bind(http_port, "REST").await?;
        let grpc = bind(grpc_port, "gRPC").await?;
        let api = bind(api_port, "api").await?;
        let (http_addr, grpc_addr, api_addr) =
            (http.local_addr()?, grpc.local_addr()?, api.local_addr()?);

        let mut local = LocalConfig::new(server_bin);
        local.pvc_root = state_dir.join("pvc");
        let backend = LocalBackend::new(&store, local);
        let state_path = store.dir().to_owned();
        // The platform's own components (explainers) reach the predictor through the
        // router; when its ports need TLS or a token they get a plain loopback listener.
        let secured = tls.is_some() || router_tokens.is_some();
        let internal = if secured {
            Some(
                tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
                    .await
                    .context("binding the router's internal port")?,
            )
        } else {
            None
        };
        let router_http = match &internal {
            Some(l) => l.local_addr()?,
            None => http_addr,
        };
        let mut router_config = RouterConfig {
            domain: domain.clone(),
            tls: tls.clone(),
            auth: crate::security::layer(router_tokens, oxserve_security::OpenPaths::HEALTH),
            ..RouterConfig::default()
        };
        if let Some(q) = queue_depth {
            router_config.queue_depth = q;
        }
        let (router, mut events) = Router::new(router_config);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let chains = ChainListeners {
            router: router.clone(),
            domain: domain.clone(),
            host,
            stop: stop_rx.clone(),
            bound: std::sync::Mutex::new(std::collections::HashMap::new()),
        };
        let config = PlatformConfig {
            domain,
            autoscaler,
            router_http: Some(router_http.to_string()),
            predictor_hosts: Some(Arc::new(chains)),
        };
        let (platform, mut routes) = Platform::open(store, Arc::new(backend.clone()), config)?;

        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        // Every new route table goes to the router.
        let r = router.clone();
        tokio::spawn(async move {
            loop {
                let table = routes.borrow_and_update().clone();
                if let Err(e) = r.update(&table) {
                    tracing::warn!(error = %e, "the router refused a route table");
                }
                if routes.changed().await.is_err() {
                    return;
                }
            }
        });
        // The router's samples and activations go to the autoscaler.
        let p = platform.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                p.record(event).await;
            }
        });
        let p = platform.clone();
        let changes = backend.changes();
        let loop_task = tokio::spawn({
            let stopped = stopped();
            async move { p.run(Some(changes), stopped).await }
        });
        if let Some(internal) = internal {
            tokio::spawn(serve_internal(internal, router.clone(), stopped()));
        }
        let router_task =
            tokio::spawn(serve(Listeners { http, grpc: Some(grpc) }, router, stopped()));
        let api_state = ApiState { platform: platform.clone(), state_dir: state_path.clone() };
        let api_open = oxserve_security::OpenPaths { health: false, reads: api_read_open };
        let api_app = api_router(api_state).layer(crate::security::layer(api_tokens, api_open));
        let api = oxserve_security::Acceptor::new(api, tls.clone())?;
        let api_task = tokio::spawn({
            let stopped = stopped();
            async move { axum::serve(api, api_app).with_graceful_shutdown(stopped).await }
        });
        let scheme = crate::security::scheme(&tls);
        write_atomic(&state_path.join(API_FILE), format!("{scheme}://{api_addr}\n").as_bytes())?;
        // One machine-readable line on stdout so scripts and tests can find the ports.
        println!(
            "oxserve up rest={scheme}://{http_addr} grpc={grpc_addr} api={scheme}://{api_addr}"
        );

        shutdown_signal().await;
        tracing::info!("stopping");
        let _ = stop_tx.send(true);
        let _ = loop_task.await;
        backend.shutdown().await;
        let _ = std::fs::remove_file(state_path.join(API_FILE));
        let _ = router_task.await;
        let _ = api_task.await;
        tracing::info!("stopped");
        Ok(())
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// One router listener per service with a transformer, bound on first use: whatever Host
/// the transformer sends there, its requests go to `NAME-predictor.NS.DOMAIN`, the
/// service's predictor, through the same split, activator and metrics as every request.
/// This keeps KServe's `--predictor_host` contract (a plain `host:port`) with stock
/// transformers, which send the predictor host they were given as their Host header.
struct ChainListeners {
    router: Router,
    domain: String,
    host: IpAddr,
    stop: tokio::sync::watch::Receiver<bool>,
    bound: std::sync::Mutex<std::collections::HashMap<(String, String), String>>,
}

impl std::fmt::Debug for ChainListeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainListeners").field("domain", &self.domain).finish_non_exhaustive()
    }
}

impl PredictorHosts for ChainListeners {
    fn predictor_host(&self, namespace: &str, name: &str) -> Result<String, String> {
        let mut bound = self.bound.lock().unwrap_or_else(|p| p.into_inner());
        let key = (namespace.to_owned(), name.to_owned());
        if let Some(addr) = bound.get(&key) {
            return Ok(addr.clone());
        }
        let fail = |e: std::io::Error| {
            format!("binding the predictor listener of {namespace}/{name}: {e}")
        };
        let std_listener =
            std::net::TcpListener::bind(SocketAddr::new(self.host, 0)).map_err(fail)?;
        std_listener.set_nonblocking(true).map_err(fail)?;
        let addr = std_listener.local_addr().map_err(fail)?;
        let listener = tokio::net::TcpListener::from_std(std_listener).map_err(fail)?;
        let pinned = format!("{name}-predictor.{namespace}.{}", self.domain);
        let mut stop = self.stop.clone();
        tokio::spawn(serve_pinned(listener, self.router.clone(), pinned, async move {
            let _ = stop.wait_for(|s| *s).await;
        }));
        let addr = addr.to_string();
        bound.insert(key, addr.clone());
        Ok(addr)
    }
}

#[derive(Clone)]
struct ApiState {
    platform: Platform,
    state_dir: PathBuf,
}

fn api_router(state: ApiState) -> axum::Router {
    axum::Router::new()
        .route("/", get(status_page))
        .route("/apis/{group}/{version}/{plural}", get(list_all))
        .route(
            "/apis/{group}/{version}/{plural}/{name}",
            get(get_cluster).put(put_cluster).delete(delete_cluster),
        )
        .route("/apis/{group}/{version}/namespaces/{ns}/{plural}", get(list))
        .route(
            "/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}",
            get(get_one).put(put_one).delete(delete_one),
        )
        .route("/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}/{sub}", get(sub_resource))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such api path".into()) })
        .with_state(state)
}

fn error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// The kind a `{group}/{version}/{plural}` names.
fn resolve(group: &str, version: &str, plural: &str) -> Result<ObjectKind, Box<Response>> {
    if ApiGroup::from_name(group).is_none() {
        return Err(Box::new(error(
            StatusCode::NOT_FOUND,
            format!("api group {group:?} is not served here"),
        )));
    }
    match (plural, version) {
        ("inferenceservices", "v1beta1") => Ok(ObjectKind::InferenceService),
        ("trainedmodels", "v1alpha1") => Ok(ObjectKind::TrainedModel),
        ("servingruntimes", "v1alpha1") => Ok(ObjectKind::ServingRuntime),
        ("clusterservingruntimes", "v1alpha1") => Ok(ObjectKind::ClusterServingRuntime),
        (
            "inferenceservices" | "trainedmodels" | "servingruntimes" | "clusterservingruntimes",
            _,
        ) => Err(Box::new(error(
            StatusCode::NOT_FOUND,
            format!("{plural} are not served at version {version}"),
        ))),
        _ => Err(Box::new(error(
            StatusCode::NOT_FOUND,
            format!("resource {plural:?} is not served here"),
        ))),
    }
}

fn list_of(kind: ObjectKind, group: &str, items: Vec<Value>) -> Response {
    let (list_kind, version) = match kind {
        ObjectKind::InferenceService => ("InferenceServiceList", "v1beta1"),
        ObjectKind::TrainedModel => ("TrainedModelList", "v1alpha1"),
        ObjectKind::ServingRuntime => ("ServingRuntimeList", "v1alpha1"),
        ObjectKind::ClusterServingRuntime => ("ClusterServingRuntimeList", "v1alpha1"),
    };
    axum::Json(
        json!({"apiVersion": format!("{group}/{version}"), "kind": list_kind, "items": items}),
    )
    .into_response()
}

async fn list_all(
    State(s): State<ApiState>,
    UrlPath((group, version, plural)): UrlPath<(String, String, String)>,
) -> Response {
    match resolve(&group, &version, &plural) {
        Ok(kind) => list_of(kind, &group, s.platform.list(kind, None).await),
        Err(r) => *r,
    }
}

async fn list(
    State(s): State<ApiState>,
    UrlPath((group, version, ns, plural)): UrlPath<(String, String, String, String)>,
) -> Response {
    match resolve(&group, &version, &plural) {
        Ok(kind) if kind.cluster_scoped() => cluster_scoped(&group, &plural),
        Ok(kind) => list_of(kind, &group, s.platform.list(kind, Some(&ns)).await),
        Err(r) => *r,
    }
}

/// A cluster-scoped kind asked for under a namespace.
fn cluster_scoped(group: &str, plural: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("{plural} are cluster-scoped: use /apis/{group}/v1alpha1/{plural}[/NAME]"),
    )
}

/// The kind a cluster path (`/apis/{group}/{version}/{plural}/{name}`) names.
fn resolve_cluster(group: &str, version: &str, plural: &str) -> Result<ObjectKind, Box<Response>> {
    match resolve(group, version, plural)? {
        k if k.cluster_scoped() => Ok(k),
        _ => Err(Box::new(error(
            StatusCode::NOT_FOUND,
            format!(
                "{plural} are namespaced: use /apis/{group}/{version}/namespaces/NS/{plural}/NAME"
            ),
        ))),
    }
}

async fn get_cluster(
    State(s): State<ApiState>,
    UrlPath((group, version, plural, name)): UrlPath<(String, String, String, String)>,
) -> Response {
    match resolve_cluster(&group, &version, &plural) {
        Ok(kind) => get_kind(&s, kind, "", &name).await,
        Err(r) => *r,
    }
}

async fn put_cluster(
    State(s): State<ApiState>,
    UrlPath((group, version, plural, name)): UrlPath<(String, String, String, String)>,
    body: String,
) -> Response {
    match resolve_cluster(&group, &version, &plural) {
        Ok(kind) => put_kind(&s, kind, &plural, "", &name, &body).await,
        Err(r) => *r,
    }
}

async fn delete_cluster(
    State(s): State<ApiState>,
    UrlPath((group, version, plural, name)): UrlPath<(String, String, String, String)>,
) -> Response {
    match resolve_cluster(&group, &version, &plural) {
        Ok(kind) => delete_kind(&s, kind, &plural, "", &name).await,
        Err(r) => *r,
    }
}

/// `ns/name`, or `name` for cluster-scoped objects.
fn object_path(ns: &str, name: &str) -> String {
    if ns.is_empty() { name.to_owned() } else { format!("{ns}/{name}") }
}

fn kind_word(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::InferenceService => "inferenceservice",
        ObjectKind::TrainedModel => "trainedmodel",
        ObjectKind::ServingRuntime => "servingruntime",
        ObjectKind::ClusterServingRuntime => "clusterservingruntime",
    }
}

async fn get_one(
    State(s): State<ApiState>,
    UrlPath((group, version, ns, plural, name)): UrlPath<(String, String, String, String, String)>,
) -> Response {
    match resolve(&group, &version, &plural) {
        Ok(kind) if kind.cluster_scoped() => cluster_scoped(&group, &plural),
        Ok(kind) => get_kind(&s, kind, &ns, &name).await,
        Err(r) => *r,
    }
}

async fn get_kind(s: &ApiState, kind: ObjectKind, ns: &str, name: &str) -> Response {
    match s.platform.get(kind, ns, name).await {
        Some(v) => axum::Json(v).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("{} {} not found", kind_word(kind), object_path(ns, name)),
        ),
    }
}

async fn put_one(
    State(s): State<ApiState>,
    UrlPath((group, version, ns, plural, name)): UrlPath<(String, String, String, String, String)>,
    body: String,
) -> Response {
    match resolve(&group, &version, &plural) {
        Ok(kind) if kind.cluster_scoped() => cluster_scoped(&group, &plural),
        Ok(kind) => put_kind(&s, kind, &plural, &ns, &name, &body).await,
        Err(r) => *r,
    }
}

async fn put_kind(
    s: &ApiState,
    kind: ObjectKind,
    plural: &str,
    ns: &str,
    name: &str,
    body: &str,
) -> Response {
    let resources = match oxserve_api::parse(body, "request") {
        Ok(r) => r,
        Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    };
    let [resource] = resources.as_slice() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("the body must hold one object, it holds {}", resources.len()),
        );
    };
    let expected = match kind {
        ObjectKind::InferenceService => Kind::InferenceService,
        ObjectKind::TrainedModel => Kind::TrainedModel,
        ObjectKind::ServingRuntime => Kind::ServingRuntime,
        ObjectKind::ClusterServingRuntime => Kind::ClusterServingRuntime,
    };
    if resource.kind() != expected {
        return error(
            StatusCode::BAD_REQUEST,
            format!("kind: {} cannot be put at {plural}", resource.kind().as_str()),
        );
    }
    if resource.name() != name {
        return error(
            StatusCode::BAD_REQUEST,
            format!("metadata.name: {:?} does not match the path's {name:?}", resource.name()),
        );
    }
    if let Some(object_ns) = resource.namespace().filter(|n| *n != ns && !kind.cluster_scoped()) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("metadata.namespace: {object_ns:?} does not match the path's {ns:?}"),
        );
    }
    let mut value = Resource::to_value(resource);
    if let Some(m) = value.get_mut("metadata").and_then(Value::as_object_mut)
        && !kind.cluster_scoped()
    {
        m.insert("namespace".into(), Value::from(ns));
    }
    match s.platform.apply(kind, value).await {
        Ok(applied) => {
            let object = s.platform.get(kind, ns, name).await.unwrap_or(Value::Null);
            let status = if applied == oxserve_controller::platform::Applied::Created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let mut r = (status, axum::Json(object)).into_response();
            r.headers_mut().insert("x-oxserve-apply", HeaderValue::from_static(applied.as_str()));
            r
        }
        Err(e) => error(apply_error_status(&e), e.to_string()),
    }
}

/// 422 for an object that cannot be applied as it is; 500 when keeping it failed (a full
/// disk, an unwritable state dir): the object was fine, the server was not, and the stored
/// state is what it was before.
fn apply_error_status(e: &oxserve_controller::platform::Error) -> StatusCode {
    use oxserve_controller::backend::Error as Backend;
    use oxserve_controller::platform::Error as Platform;
    match e {
        Platform::Backend(Backend::Io { .. } | Backend::Json { .. } | Backend::Locked(_)) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

async fn delete_one(
    State(s): State<ApiState>,
    UrlPath((group, version, ns, plural, name)): UrlPath<(String, String, String, String, String)>,
) -> Response {
    match resolve(&group, &version, &plural) {
        Ok(kind) if kind.cluster_scoped() => cluster_scoped(&group, &plural),
        Ok(kind) => delete_kind(&s, kind, &plural, &ns, &name).await,
        Err(r) => *r,
    }
}

async fn delete_kind(
    s: &ApiState,
    kind: ObjectKind,
    plural: &str,
    ns: &str,
    name: &str,
) -> Response {
    match s.platform.delete(kind, ns, name).await {
        Ok(true) => axum::Json(json!({"kind": "Status", "status": "Success",
            "details": {"name": name, "kind": plural}}))
        .into_response(),
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            format!("{} {} not found", kind_word(kind), object_path(ns, name)),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Deserialize)]
struct LogQuery {
    component: Option<String>,
    revision: Option<String>,
}

async fn sub_resource(
    State(s): State<ApiState>,
    UrlPath((group, version, ns, plural, name, sub)): UrlPath<(
        String,
        String,
        String,
        String,
        String,
        String,
    )>,
    Query(q): Query<LogQuery>,
) -> Response {
    match resolve(&group, &version, &plural) {
        Ok(ObjectKind::InferenceService) => {}
        Ok(_) => return error(StatusCode::NOT_FOUND, format!("{plural} have no {sub}")),
        Err(r) => return *r,
    }
    let Some(revisions) = s.platform.revisions(&ns, &name).await else {
        return error(StatusCode::NOT_FOUND, format!("inferenceservice {ns}/{name} not found"));
    };
    match sub.as_str() {
        "revisions" => axum::Json(revisions).into_response(),
        "logs" => {
            let component = q.component.as_deref().unwrap_or("predictor");
            let revision = match q.revision {
                Some(r) => r,
                None => match revisions.iter().rev().find(|r| r.component.as_str() == component) {
                    Some(r) => r.name.clone(),
                    None => {
                        return error(
                            StatusCode::NOT_FOUND,
                            format!("{ns}/{name} has no {component} revision"),
                        );
                    }
                },
            };
            if !revisions.iter().any(|r| r.name == revision) {
                return error(
                    StatusCode::NOT_FOUND,
                    format!("{ns}/{name} has no revision {revision}"),
                );
            }
            logs_text(&s.state_dir.join("logs").join(&revision)).into_response()
        }
        other => error(StatusCode::NOT_FOUND, format!("no sub-resource {other:?}")),
    }
}

/// Every replica log of a revision, each headed by its replica.
fn logs_text(dir: &Path) -> String {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut out = String::new();
    for f in files {
        let replica = f.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("==> replica {replica} <==\n"));
        out.push_str(&String::from_utf8_lossy(&std::fs::read(&f).unwrap_or_default()));
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

async fn status_page(State(s): State<ApiState>) -> Html<String> {
    let mut html = String::from(
        "<!doctype html><meta charset=utf-8><title>oxserve</title>\
         <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}</style><h1>oxserve</h1>",
    );
    let services = s.platform.list(ObjectKind::InferenceService, None).await;
    if services.is_empty() {
        html.push_str(
            "<p>No InferenceServices. Apply one with <code>oxserve apply -f FILE</code>.</p>",
        );
    }
    for svc in services {
        let ns = svc.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default");
        let name = svc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        let url = svc.pointer("/status/url").and_then(Value::as_str).unwrap_or("");
        html.push_str(&format!("<h2>{}/{}</h2><p>{}</p>", escape(ns), escape(name), escape(url)));
        html.push_str("<table><tr><th>revision</th><th>state</th><th>traffic</th><th>replicas</th><th>detail</th></tr>");
        for r in s.platform.revisions(ns, name).await.unwrap_or_default() {
            let detail = r.reason.clone().or(r.progress.clone()).unwrap_or_default();
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{} %{}</td><td>{}/{}</td><td>{}</td></tr>",
                escape(&r.name),
                r.state,
                r.traffic,
                if r.tags.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", escape(&r.tags.join(", ")))
                },
                r.ready_replicas,
                r.desired_replicas,
                escape(&detail)
            ));
        }
        html.push_str("</table><table><tr><th>condition</th><th>status</th><th>reason</th><th>message</th></tr>");
        let conditions = svc
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for c in conditions {
            let f = |k: &str| escape(c.get(k).and_then(Value::as_str).unwrap_or(""));
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                f("type"),
                f("status"),
                f("reason"),
                f("message")
            ));
        }
        html.push_str("</table>");
    }
    let trained = s.platform.list(ObjectKind::TrainedModel, None).await;
    if !trained.is_empty() {
        html.push_str("<h2>TrainedModels</h2><table><tr><th>name</th><th>inferenceservice</th><th>url</th><th>ready</th><th>message</th></tr>");
    }
    for tm in &trained {
        let f = |p: &str| escape(tm.pointer(p).and_then(Value::as_str).unwrap_or(""));
        let ready = tm
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|all| all.iter().find(|c| c["type"] == "Ready"))
            .cloned()
            .unwrap_or_default();
        let c = |k: &str| escape(ready.get(k).and_then(Value::as_str).unwrap_or(""));
        html.push_str(&format!(
            "<tr><td>{}/{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            f("/metadata/namespace"),
            f("/metadata/name"),
            f("/spec/inferenceService"),
            f("/status/url"),
            c("status"),
            c("message")
        ));
    }
    if !trained.is_empty() {
        html.push_str("</table>");
    }
    Html(html)
}
