//! The JSON schemas of the kinds (schemars), walked to list the field names valid at a path
//! (the candidates of a did-you-mean).

use std::sync::OnceLock;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use crate::isvc::InferenceService;
use crate::parse::Segment;
use crate::resource::Kind;
use crate::runtime::{ClusterServingRuntime, ServingRuntime};
use crate::trained_model::TrainedModel;

fn root(kind: Kind) -> &'static Value {
    static SCHEMAS: OnceLock<[Value; 4]> = OnceLock::new();
    let all = SCHEMAS.get_or_init(|| {
        [
            schemars::schema_for!(InferenceService).to_value(),
            schemars::schema_for!(TrainedModel).to_value(),
            schemars::schema_for!(ServingRuntime).to_value(),
            schemars::schema_for!(ClusterServingRuntime).to_value(),
        ]
    });
    match kind {
        Kind::InferenceService => &all[0],
        Kind::TrainedModel => &all[1],
        Kind::ServingRuntime => &all[2],
        Kind::ClusterServingRuntime => &all[3],
    }
}

fn metadata() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| schemars::schema_for!(ObjectMeta).to_value())
}

/// The field names an object at `path` (below the document root) may have.
pub(crate) fn field_names(kind: Kind, path: &[Segment]) -> Vec<String> {
    let (doc, rest) = match path.first() {
        Some(Segment::Key(k)) if k == "metadata" => (metadata(), &path[1..]),
        _ => (root(kind), path),
    };
    let mut nodes = vec![doc];
    for seg in rest {
        nodes = nodes.into_iter().flat_map(|n| children(doc, n, seg)).collect();
    }
    let mut names: Vec<String> = nodes.into_iter().flat_map(|n| properties(doc, n)).collect();
    if path.is_empty() {
        names.extend(["apiVersion", "kind", "metadata"].map(String::from));
    }
    names.sort();
    names.dedup();
    names
}

/// `node` with `$ref`s followed and `anyOf`/`oneOf`/`allOf` members expanded.
fn expand<'a>(doc: &'a Value, node: &'a Value) -> Vec<&'a Value> {
    let mut out = Vec::new();
    let mut stack = vec![node];
    while let Some(n) = stack.pop() {
        if let Some(r) = n.get("$ref").and_then(Value::as_str)
            && let Some(target) = r.strip_prefix('#').and_then(|p| doc.pointer(p))
        {
            stack.push(target);
        }
        for key in ["anyOf", "oneOf", "allOf"] {
            if let Some(Value::Array(items)) = n.get(key) {
                stack.extend(items);
            }
        }
        out.push(n);
    }
    out
}

fn children<'a>(doc: &'a Value, node: &'a Value, seg: &Segment) -> Vec<&'a Value> {
    expand(doc, node)
        .into_iter()
        .filter_map(|n| match seg {
            Segment::Index(_) => n.get("items"),
            Segment::Key(k) => n
                .get("properties")
                .and_then(|p| p.get(k))
                .or_else(|| n.get("additionalProperties").filter(|a| a.is_object())),
        })
        .collect()
}

fn properties(doc: &Value, node: &Value) -> Vec<String> {
    expand(doc, node)
        .into_iter()
        .filter_map(|n| n.get("properties").and_then(Value::as_object))
        .flat_map(|p| p.keys().cloned())
        .collect()
}
