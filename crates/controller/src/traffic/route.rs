//! From a derived plan to the router's [`ServiceRoute`]: hosts, model names, and per
//! component the weighted revisions with their replicas and limits.

use std::collections::HashMap;

use crate::revision::{Component, Revision, ServiceRevisions};
use crate::routes::{
    ComponentRoute, DEFAULT_TIMEOUT_SECONDS, Replica, RevisionTarget, ServiceRoute,
};

use super::{Service, ServicePlan};

/// The route of `service` for the router.
///
/// - `hosts`: `NAME.NS.DOMAIN`; each component is also reached alone at its `host`
///   (`NAME-COMPONENT.NS.DOMAIN`), and tagged targets at `TAG-` before either.
/// - `models`: the service's name, then `trained_models` (TrainedModel names served
///   through this service), without repeats.
/// - `entry`: the transformer when the spec has one, else the predictor; `predictor` is set
///   when the entry is a transformer. An explainer has no place in the route table yet.
/// - targets: one per `traffic[]` entry of the plan, in its order, weight = percent (a 0 %
///   entry stays, so its tag still reaches it; the splitter never picks it). The same
///   revision may appear twice (a canary whose new revision is not ready yet: `latest` and
///   `prev` both on the serving one). Each carries the revision's `containerConcurrency`
///   and `timeout` (seconds, default 300) from its spec, the model name that gates
///   activation (the service's name) and `replicas[revision]` (empty when absent).
///   A component with no ready revision has no targets.
pub fn service_route(
    service: &Service<'_>,
    plan: &ServicePlan,
    revisions: &ServiceRevisions,
    replicas: &HashMap<String, Vec<Replica>>,
    trained_models: &[String],
) -> ServiceRoute {
    let component_route = |component: Component| -> Option<ComponentRoute> {
        let p = plan.components.get(&component)?;
        let targets = p
            .traffic
            .iter()
            .map(|t| {
                let revision = revisions.revision(&t.revision_name);
                RevisionTarget {
                    revision: t.revision_name.clone(),
                    weight: t.percent,
                    tag: t.tag.clone(),
                    model: Some(service.name.to_owned()),
                    container_concurrency: revision
                        .and_then(|r| spec_u64(r, "containerConcurrency"))
                        .map_or(0, clamp),
                    timeout_seconds: revision
                        .and_then(|r| spec_u64(r, "timeout"))
                        .unwrap_or(DEFAULT_TIMEOUT_SECONDS),
                    replicas: replicas.get(&t.revision_name).cloned().unwrap_or_default(),
                }
            })
            .collect();
        Some(ComponentRoute {
            component: component.as_str().to_owned(),
            host: service.component_host(component),
            targets,
        })
    };
    let predictor = component_route(Component::Predictor).unwrap_or_else(|| ComponentRoute {
        component: Component::Predictor.as_str().to_owned(),
        host: service.component_host(Component::Predictor),
        targets: Vec::new(),
    });
    let (entry, predictor) = match component_route(Component::Transformer) {
        Some(transformer) => (transformer, Some(predictor)),
        None => (predictor, None),
    };
    let mut models = vec![service.name.to_owned()];
    for m in trained_models {
        if !models.contains(m) {
            models.push(m.clone());
        }
    }
    ServiceRoute {
        name: service.name.to_owned(),
        namespace: service.namespace.to_owned(),
        hosts: vec![service.host()],
        models,
        entry,
        predictor,
    }
}

fn spec_u64(revision: &Revision, field: &str) -> Option<u64> {
    revision.spec.get(field).and_then(serde_json::Value::as_u64)
}

fn clamp(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}
