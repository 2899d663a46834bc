//! The compiled route table: the control plane's [`RouteTable`] turned into the lookups the
//! request path needs (host → component or tagged revision, model name → entry component)
//! with one [`Splitter`] per component. A table is immutable; the router swaps a whole new
//! one in (`ArcSwap`), so a request sees one table from start to end.

use std::collections::HashMap;
use std::sync::Arc;

use oxserve_controller::routes::{ComponentRoute, RouteTable, ServiceRoute};
use oxserve_controller::split::Splitter;

use crate::activator::Revision;

/// One component with its weighted revisions.
pub(crate) struct Component {
    pub service: String,
    pub component: String,
    pub splitter: Splitter,
    pub revisions: Vec<Arc<Revision>>,
}

impl Component {
    /// The next revision by weight; `None` when every weight is zero.
    pub fn pick(&self) -> Option<&Arc<Revision>> {
        self.splitter.pick().map(|i| &self.revisions[i])
    }
}

/// Where a host sends requests.
#[derive(Clone)]
pub(crate) enum Target {
    Component(Arc<Component>),
    Revision(Arc<Revision>),
}

/// The request path's view of one route table.
#[derive(Default)]
pub(crate) struct Compiled {
    pub hosts: HashMap<String, Target>,
    pub models: HashMap<String, Arc<Component>>,
}

impl Compiled {
    /// Builds the lookups; `revision` returns the live state of a named revision (kept
    /// across tables) already updated with the target's settings.
    pub fn build(
        table: &RouteTable,
        domain: &str,
        mut revision: impl FnMut(&ServiceRoute, &ComponentRoute, usize) -> Arc<Revision>,
    ) -> Compiled {
        let mut compiled = Compiled::default();
        for service in &table.services {
            let mut component = |route: &ComponentRoute| {
                let revisions: Vec<_> =
                    (0..route.targets.len()).map(|i| revision(service, route, i)).collect();
                let weights: Vec<u32> = route.targets.iter().map(|t| t.weight).collect();
                Arc::new(Component {
                    service: service.name.clone(),
                    component: route.component.clone(),
                    splitter: Splitter::new(&weights),
                    revisions,
                })
            };
            let entry = component(&service.entry);
            let predictor = service.predictor.as_ref().map(&mut component);
            let mut service_hosts: Vec<String> =
                service.hosts.iter().map(|h| normalize_host(h)).collect();
            service_hosts.push(format!("{}.{}.{}", service.name, service.namespace, domain));
            service_hosts.dedup();
            for host in &service_hosts {
                compiled.hosts.insert(host.clone(), Target::Component(entry.clone()));
            }
            // Tag hosts reach one revision alone: `latest-NAME.NS.domain`.
            for (route, component) in std::iter::once((&service.entry, &entry))
                .chain(service.predictor.iter().zip(predictor.iter()))
            {
                for (target, revision) in route.targets.iter().zip(&component.revisions) {
                    if let Some(tag) = &target.tag {
                        for host in &service_hosts {
                            compiled
                                .hosts
                                .entry(format!("{tag}-{host}"))
                                .or_insert_with(|| Target::Revision(revision.clone()));
                        }
                    }
                }
            }
            if !service.entry.host.is_empty() {
                compiled
                    .hosts
                    .insert(normalize_host(&service.entry.host), Target::Component(entry.clone()));
            }
            if let (Some(route), Some(predictor)) = (&service.predictor, &predictor) {
                let host = if route.host.is_empty() {
                    format!("{}-predictor.{}.{}", service.name, service.namespace, domain)
                } else {
                    normalize_host(&route.host)
                };
                compiled.hosts.insert(host, Target::Component(predictor.clone()));
            }
            compiled.models.insert(service.name.clone(), entry.clone());
            for model in &service.models {
                compiled.models.insert(model.clone(), entry.clone());
            }
        }
        compiled
    }
}

/// Host names compare lower-case and without the port.
pub(crate) fn normalize_host(host: &str) -> String {
    strip_port(host).to_ascii_lowercase()
}

pub(crate) fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(h, _)| &h[1..]);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_drop_the_port_and_case() {
        assert_eq!(normalize_host("Iris.Default.example.com:8080"), "iris.default.example.com");
        assert_eq!(normalize_host("[::1]:80"), "::1");
        assert_eq!(normalize_host("localhost"), "localhost");
    }
}
