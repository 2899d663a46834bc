//! The [`Router`] handle: the current route table (swapped atomically), the live state of
//! every revision across tables, the event channel to the autoscaler and the connection
//! pools. Cheap to clone; the platform embeds it in-process and `serve` runs it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::uri::Authority;
use oxserve_controller::metrics::{RevisionSample, RouterEvent};
use oxserve_controller::routes::RouteTable;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::activator::{Replica, Revision, Settings, Waker};
use crate::config::RouterConfig;
use crate::error::ConfigError;
use crate::metrics::Metrics;
use crate::proxy::Clients;
use crate::table::Compiled;

/// The gateway and activator. Clones share everything.
#[derive(Clone)]
pub struct Router {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub config: RouterConfig,
    pub table: ArcSwap<Compiled>,
    /// Every revision of the current table, plus removed ones still answering requests.
    revisions: Mutex<HashMap<String, Arc<Revision>>>,
    events: mpsc::Sender<RouterEvent>,
    pub metrics: Metrics,
    pub clients: Clients,
    pub waker: Mutex<Option<Arc<dyn Waker>>>,
    loaded: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router").field("config", &self.shared.config).finish_non_exhaustive()
    }
}

impl Router {
    /// A router with an empty table, and the receiving end of its events (activations at
    /// once, samples every `sample_interval` while [`crate::serve`] runs).
    pub fn new(config: RouterConfig) -> (Router, mpsc::Receiver<RouterEvent>) {
        let (events, rx) = mpsc::channel(config.event_capacity.max(1));
        let shared = Arc::new(Shared {
            clients: Clients::new(),
            config,
            table: ArcSwap::from_pointee(Compiled::default()),
            revisions: Mutex::new(HashMap::new()),
            events,
            metrics: Metrics::new(),
            waker: Mutex::new(None),
            loaded: false.into(),
        });
        let waker: Arc<dyn Waker> = Arc::new(SharedWaker(Arc::downgrade(&shared)));
        *shared.waker.lock() = Some(waker);
        (Router { shared }, rx)
    }

    /// Swaps in a new table: requests already routed finish where they are, requests waiting
    /// at a revision the table drops are routed again, new requests see the new table. A table
    /// that does not make sense (a replica URL that does not parse, a revision named twice) is
    /// refused whole and the current one keeps serving.
    pub fn update(&self, table: &RouteTable) -> Result<(), ConfigError> {
        let mut settings: HashMap<&str, (Settings, &str)> = HashMap::new();
        for service in &table.services {
            let model_default = service.models.first().unwrap_or(&service.name);
            for component in std::iter::once(&service.entry).chain(service.predictor.as_ref()) {
                for target in &component.targets {
                    let mut replicas = Vec::with_capacity(target.replicas.len());
                    for replica in &target.replicas {
                        let http = parse_http(&replica.http).map_err(|reason| {
                            ConfigError::Invalid(format!(
                                "service {:?} revision {:?} replica {:?}: http {:?}: {reason}",
                                service.name, target.revision, replica.id, replica.http
                            ))
                        })?;
                        let grpc = match &replica.grpc {
                            None => None,
                            Some(g) => Some(g.trim_start_matches("http://").parse::<Authority>().map_err(|e| {
                                ConfigError::Invalid(format!(
                                    "service {:?} revision {:?} replica {:?}: grpc {g:?}: {e}",
                                    service.name, target.revision, replica.id
                                ))
                            })?),
                        };
                        replicas.push(Arc::new(Replica::new(
                            replica.id.clone(),
                            replica.http.clone(),
                            http,
                            grpc,
                            replica.ready,
                        )));
                    }
                    let s = Settings {
                        replicas,
                        container_concurrency: target.container_concurrency,
                        timeout: Duration::from_secs(target.timeout_seconds.max(1)),
                        model: target.model.clone().unwrap_or_else(|| model_default.clone()),
                    };
                    if settings.insert(&target.revision, (s, &service.name)).is_some() {
                        return Err(ConfigError::Invalid(format!(
                            "revision {:?} appears more than once in the table",
                            target.revision
                        )));
                    }
                }
            }
        }
        let shared = &self.shared;
        let mut revisions = shared.revisions.lock();
        let mut live: HashMap<String, Arc<Revision>> = HashMap::new();
        for (name, (mut s, service)) in settings {
            let revision = match revisions.get(name) {
                Some(existing) if !existing.is_removed() && existing.service == service => {
                    // Keep what the router knows of replicas that stay: readiness and load.
                    let old = existing.settings();
                    for replica in &mut s.replicas {
                        if let Some(o) = old.replicas.iter().find(|o| {
                            o.id == replica.id && o.url == replica.url && o.grpc == replica.grpc
                        }) {
                            if replica.is_ready() {
                                o.set_ready(true);
                            }
                            *replica = o.clone();
                        }
                    }
                    drop(old);
                    existing.set_settings(s);
                    existing.clone()
                }
                _ => Arc::new(Revision::new(
                    name.to_owned(),
                    service.to_owned(),
                    s,
                    shared.metrics.revision(service, name),
                )),
            };
            live.insert(name.to_owned(), revision);
        }
        let compiled = Compiled::build(table, &shared.config.domain, |_, route, i| {
            live[route.targets[i].revision.as_str()].clone()
        });
        shared.table.store(Arc::new(compiled));
        for (name, old) in revisions.iter() {
            if live.get(name).is_none_or(|new| !Arc::ptr_eq(new, old)) {
                old.remove();
            }
        }
        // Removed revisions stay listed while requests are still in flight there.
        revisions
            .retain(|name, r| !r.is_removed() || (r.in_flight() > 0 && !live.contains_key(name)));
        revisions.extend(live);
        shared.loaded.store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Requests in flight at `revision` now (queued in the activator included): the
    /// autoscaler never scales a revision to zero while this is above zero.
    pub fn in_flight(&self, revision: &str) -> usize {
        self.shared.revisions.lock().get(revision).map_or(0, |r| r.in_flight())
    }

    /// Requests waiting in the activator at `revision` now.
    pub fn queued(&self, revision: &str) -> usize {
        self.shared.revisions.lock().get(revision).map_or(0, |r| r.queued())
    }

    /// The Prometheus text the router serves on `/metrics`.
    pub fn metrics_text(&self) -> String {
        self.shared.metrics.encode()
    }

    /// Whether a table has been loaded (the router's own `/v2/health/ready`).
    pub fn is_ready(&self) -> bool {
        self.shared.loaded.load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) fn waker(&self) -> Arc<dyn Waker> {
        self.shared.waker.lock().clone().expect("set in Router::new")
    }

    /// Sends one sample per revision every `sample_interval` until the router is dropped.
    pub(crate) async fn run_sampler(self) {
        let mut tick = tokio::time::interval(self.shared.config.sample_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let now = Instant::now();
            let revisions: Vec<_> = {
                let mut all = self.shared.revisions.lock();
                all.retain(|_, r| !r.is_removed() || r.in_flight() > 0);
                all.values().cloned().collect()
            };
            for r in revisions {
                let (interval, average_concurrency, requests) = r.sample(now);
                self.shared.send(RouterEvent::Sample(RevisionSample {
                    revision: r.name.clone(),
                    at: now,
                    interval,
                    average_concurrency,
                    requests,
                }));
            }
        }
    }
}

impl Shared {
    fn send(&self, event: RouterEvent) {
        if self.events.try_send(event).is_err() {
            self.metrics.dropped_event();
        }
    }
}

/// `http://host:port` (a path, if any, is ignored).
fn parse_http(url: &str) -> Result<Authority, String> {
    let uri: http::Uri = url.parse().map_err(|e: http::uri::InvalidUri| e.to_string())?;
    if uri.scheme_str() != Some("http") {
        return Err("only http:// replicas are supported".into());
    }
    uri.authority().cloned().ok_or_else(|| "no host:port".into())
}

/// The activator's view of the router; weak, so a revision's poller does not keep a dropped
/// router alive.
struct SharedWaker(std::sync::Weak<Shared>);

impl Waker for SharedWaker {
    fn activation(&self, revision: &str, queued: usize) {
        if let Some(shared) = self.0.upgrade() {
            tracing::info!(%revision, queued, "activation: revision has no ready replica");
            shared.send(RouterEvent::Activation {
                revision: revision.to_owned(),
                at: Instant::now(),
                queued,
            });
        }
    }

    fn check_ready(
        &self,
        replica: Arc<Replica>,
        model: String,
    ) -> futures::future::BoxFuture<'static, bool> {
        let clients = self.0.upgrade().map(|s| s.clients.clone());
        Box::pin(async move {
            match clients {
                Some(clients) => clients.model_ready(&replica.http, &model).await,
                None => false,
            }
        })
    }

    fn poll_interval(&self) -> Duration {
        self.0.upgrade().map_or(Duration::from_millis(15), |s| s.config.readiness_poll_interval)
    }

    fn queue_depth(&self) -> usize {
        self.0.upgrade().map_or(0, |s| s.config.queue_depth)
    }
}
