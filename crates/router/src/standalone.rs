//! Standalone mode: a routes file (`routes.yaml`) of services and weighted backend URLs,
//! turned into a [`RouteTable`], and the watcher that reloads it on change (or on demand,
//! e.g. SIGHUP). A file that does not parse or make sense is refused with its reason and
//! the table already serving stays.
//!
//! ```yaml
//! services:
//!   - name: iris
//!     namespace: default          # optional, default "default"
//!     hosts: [iris.example.com]   # optional; iris.default.<domain> always works
//!     models: [iris, iris-v2]     # optional, default [name]: model names routed here
//!     timeoutSeconds: 300         # optional
//!     backends:
//!       - url: http://127.0.0.1:9001
//!         grpc: 127.0.0.1:9002    # optional
//!         weight: 90
//!         revision: iris-1        # optional, default NAME-N; backends sharing one are its replicas
//!       - url: http://127.0.0.1:9003
//!         weight: 10
//!         revision: iris-2
//!         tag: latest             # optional: latest-iris.default.<domain> reaches it alone
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use oxserve_controller::routes::{
    ComponentRoute, DEFAULT_TIMEOUT_SECONDS, Replica, RevisionTarget, RouteTable, ServiceRoute,
};
use serde::Deserialize;

use crate::error::ConfigError;
use crate::router::Router;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RoutesFile {
    services: Vec<ServiceSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ServiceSpec {
    name: String,
    #[serde(default = "default_namespace")]
    namespace: String,
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    models: Vec<String>,
    #[serde(default)]
    timeout_seconds: Option<u64>,
    #[serde(default)]
    container_concurrency: u32,
    backends: Vec<BackendSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BackendSpec {
    url: String,
    #[serde(default)]
    grpc: Option<String>,
    #[serde(default = "default_weight")]
    weight: u32,
    #[serde(default)]
    revision: Option<String>,
    #[serde(default)]
    tag: Option<String>,
    /// The model whose readiness the router checks when the backend fails (default: the
    /// service's first model name).
    #[serde(default)]
    model: Option<String>,
}

fn default_namespace() -> String {
    "default".into()
}

fn default_weight() -> u32 {
    1
}

/// Parses a routes file's text (`origin` names it in errors).
///
/// A file holding a whole [`RouteTable`] (every service with an `entry`, as the Kubernetes
/// controller publishes it in the router's routes ConfigMap) is taken as it is.
pub fn parse(text: &str, origin: &str) -> Result<RouteTable, ConfigError> {
    let err = |reason: String| ConfigError::File { path: origin.to_owned(), reason };
    if let Ok(table) = serde_yaml_ng::from_str::<RouteTable>(text)
        && !table.services.is_empty()
    {
        return Ok(table);
    }
    let de = serde_yaml_ng::Deserializer::from_str(text);
    let file: RoutesFile = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." { err(inner.to_string()) } else { err(format!("{path}: {inner}")) }
    })?;
    let mut names = std::collections::HashSet::new();
    let mut services = Vec::with_capacity(file.services.len());
    for (i, s) in file.services.into_iter().enumerate() {
        let at = format!("services[{i}]");
        if s.name.is_empty() {
            return Err(err(format!("{at}.name: must not be empty")));
        }
        if !names.insert((s.name.clone(), s.namespace.clone())) {
            return Err(err(format!("{at}.name: service {:?} is listed twice", s.name)));
        }
        if s.backends.is_empty() {
            return Err(err(format!("{at}.backends: a service needs at least one backend")));
        }
        // Backends sharing a revision are its replicas; the revision's weight is theirs summed.
        let mut revisions: BTreeMap<String, (usize, RevisionTarget)> = BTreeMap::new();
        for (j, b) in s.backends.into_iter().enumerate() {
            let at = format!("{at}.backends[{j}]");
            let uri: http::Uri =
                b.url.parse().map_err(|e| err(format!("{at}.url: {:?}: {e}", b.url)))?;
            if uri.scheme_str() != Some("http") || uri.authority().is_none() {
                return Err(err(format!("{at}.url: {:?}: expected http://HOST:PORT", b.url)));
            }
            if let Some(g) = &b.grpc {
                g.parse::<http::uri::Authority>()
                    .map_err(|e| err(format!("{at}.grpc: {g:?}: expected HOST:PORT ({e})")))?;
            }
            let name = b.revision.clone().unwrap_or_else(|| format!("{}-{}", s.name, j + 1));
            let order = revisions.len();
            let entry = revisions.entry(name.clone()).or_insert_with(|| {
                (
                    order,
                    RevisionTarget {
                        revision: name.clone(),
                        weight: 0,
                        tag: None,
                        model: None,
                        container_concurrency: s.container_concurrency,
                        timeout_seconds: s.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS),
                        replicas: Vec::new(),
                    },
                )
            });
            let target = &mut entry.1;
            target.weight = target.weight.saturating_add(b.weight);
            if b.tag.is_some() {
                target.tag = b.tag;
            }
            if b.model.is_some() {
                target.model = b.model;
            }
            target.replicas.push(Replica {
                id: format!("{}-{}", name, target.replicas.len() + 1),
                http: b.url.trim_end_matches('/').to_owned(),
                grpc: b.grpc,
                // Backends are taken as ready until one fails; then the router checks the
                // model's readiness before sending it requests again.
                ready: true,
            });
        }
        let mut targets: Vec<_> = revisions.into_values().collect();
        targets.sort_by_key(|(order, _)| *order);
        if targets.iter().all(|(_, t)| t.weight == 0) {
            return Err(err(format!(
                "{at}.backends: every weight is 0, no backend would get traffic"
            )));
        }
        services.push(ServiceRoute {
            models: if s.models.is_empty() { vec![s.name.clone()] } else { s.models },
            name: s.name,
            namespace: s.namespace,
            hosts: s.hosts,
            entry: ComponentRoute {
                component: "predictor".into(),
                host: String::new(),
                targets: targets.into_iter().map(|(_, t)| t).collect(),
            },
            predictor: None,
        });
    }
    Ok(RouteTable { services })
}

/// Reads and parses a routes file.
pub fn load(path: &Path) -> Result<RouteTable, ConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::File { path: origin.clone(), reason: format!("reading: {e}") })?;
    parse(&text, &origin)
}

/// Keeps `router` on the routes file at `path`: re-reads it when its modification time or
/// length changes (checked every `interval`) and whenever `reload` is notified. Runs until
/// dropped.
pub async fn watch(
    path: PathBuf,
    router: Router,
    interval: Duration,
    reload: std::sync::Arc<tokio::sync::Notify>,
) {
    let mut seen = stamp(&path);
    loop {
        let forced = tokio::select! {
            _ = tokio::time::sleep(interval) => false,
            _ = reload.notified() => true,
        };
        let now = stamp(&path);
        if !forced && now == seen {
            continue;
        }
        seen = now;
        apply(&path, &router);
    }
}

/// Loads the file into the router; on failure logs the reason and keeps the current table.
pub fn apply(path: &Path, router: &Router) -> bool {
    match load(path).and_then(|table| router.update(&table).map(|()| table)) {
        Ok(table) => {
            tracing::info!(path = %path.display(), services = table.services.len(), "routes loaded");
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "routes refused, the previous routes keep serving");
            false
        }
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_map_to_revisions_and_replicas() {
        let t = parse(
            "services:\n- name: iris\n  backends:\n  - {url: 'http://127.0.0.1:9001', weight: 45, revision: iris-1}\n  - {url: 'http://127.0.0.1:9002', weight: 45, revision: iris-1}\n  - {url: 'http://127.0.0.1:9003/', weight: 10, revision: iris-2, tag: latest, grpc: '127.0.0.1:9004'}\n",
            "routes.yaml",
        )
        .unwrap();
        let s = &t.services[0];
        assert_eq!(s.namespace, "default");
        assert_eq!(s.models, ["iris"]);
        let targets = &s.entry.targets;
        assert_eq!(targets.len(), 2);
        assert_eq!(
            (targets[0].revision.as_str(), targets[0].weight, targets[0].replicas.len()),
            ("iris-1", 90, 2)
        );
        assert_eq!(targets[1].tag.as_deref(), Some("latest"));
        assert_eq!(targets[1].replicas[0].http, "http://127.0.0.1:9003");
        assert_eq!(targets[1].replicas[0].grpc.as_deref(), Some("127.0.0.1:9004"));
    }

    #[test]
    fn a_whole_route_table_is_taken_as_it_is() {
        let table = RouteTable {
            services: vec![ServiceRoute {
                name: "iris".into(),
                namespace: "ml".into(),
                hosts: vec!["iris.ml.example.com".into()],
                models: vec!["iris".into()],
                entry: ComponentRoute {
                    component: "predictor".into(),
                    host: "iris-predictor.ml.example.com".into(),
                    targets: vec![RevisionTarget {
                        revision: "iris-predictor-00001".into(),
                        weight: 100,
                        tag: None,
                        model: Some("iris".into()),
                        container_concurrency: 0,
                        timeout_seconds: DEFAULT_TIMEOUT_SECONDS,
                        replicas: vec![],
                    }],
                },
                predictor: None,
            }],
        };
        let text = serde_yaml_ng::to_string(&table).unwrap();
        assert_eq!(parse(&text, "routes.yaml").unwrap(), table);
    }

    #[test]
    fn bad_files_name_the_field() {
        let cases = [
            ("services:\n- name: a\n  backend: []\n", "services[0]: unknown field `backend`"),
            (
                "services:\n- name: a\n  backends:\n  - {url: 'http://x:1', wieght: 3}\n",
                "services[0].backends[0]: unknown field `wieght`",
            ),
            (
                "services:\n- name: a\n  backends:\n  - {url: 'ftp://x:1'}\n",
                "services[0].backends[0].url: \"ftp://x:1\": expected http://HOST:PORT",
            ),
            (
                "services:\n- name: a\n  backends: []\n",
                "services[0].backends: a service needs at least one backend",
            ),
            (
                "services:\n- name: a\n  backends:\n  - {url: 'http://x:1', weight: 0}\n",
                "every weight is 0",
            ),
            (
                "services:\n- name: a\n  backends:\n  - {url: 'http://x:1', weight: -1}\n",
                "services[0].backends[0].weight",
            ),
            (
                "services:\n- {name: a, backends: [{url: 'http://x:1'}]}\n- {name: a, backends: [{url: 'http://x:1'}]}\n",
                "services[1].name: service \"a\" is listed twice",
            ),
        ];
        for (text, want) in cases {
            let e = parse(text, "r.yaml").unwrap_err().to_string();
            assert!(e.starts_with("r.yaml: "), "{e}");
            assert!(e.contains(want), "{text:?}: got {e:?}, want {want:?}");
        }
    }
}
