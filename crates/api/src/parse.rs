//! From text to [`Resource`]s: multi-document YAML or JSON → `serde_json::Value` → the retired
//! shapes refused → typed (type errors with their path) → every input field checked against
//! the re-serialized object (unknown fields named, with a did-you-mean) → defaults →
//! validation.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{FieldError, ParseError, ParseErrors};
use crate::resource::{ApiGroup, Kind, Resource};
use crate::{defaults, schema, validate};

/// Parses every document of `text` (multi-document YAML, or one or more JSON values; a
/// `kind: List` expands to its `items`), defaults and validates each object. `source` names
/// the text in errors (`FILE:doc N: field path: reason`). All documents are checked; any
/// error fails the whole text.
pub fn parse(text: &str, source: &str) -> Result<Vec<Resource>, ParseErrors> {
    let mut resources = Vec::new();
    let mut errors = Vec::new();
    let docs = match documents(text) {
        Ok(docs) => docs,
        Err((doc, reason)) => {
            return Err(ParseErrors(vec![ParseError {
                source: source.to_owned(),
                doc,
                error: FieldError::new("", reason),
            }]));
        }
    };
    for (doc, value) in docs {
        for (prefix, item) in expand_list(value) {
            match parse_value(item) {
                Ok(resource) => resources.push(resource),
                Err(errs) => errors.extend(errs.into_iter().map(|mut e| {
                    e.path = join(&prefix, &e.path);
                    ParseError { source: source.to_owned(), doc, error: e }
                })),
            }
        }
    }
    if errors.is_empty() { Ok(resources) } else { Err(ParseErrors(errors)) }
}

/// Splits `text` into documents with their 1-based numbers; empty YAML documents are skipped
/// (but counted). On a syntax error, the document number and the parser's message.
fn documents(text: &str) -> Result<Vec<(usize, Value)>, (usize, String)> {
    let trimmed = text.trim_start();
    let mut docs = Vec::new();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        for (i, value) in serde_json::Deserializer::from_str(text).into_iter::<Value>().enumerate()
        {
            let value = value.map_err(|e| (i + 1, format!("invalid JSON: {e}")))?;
            match value {
                Value::Array(items) => docs.extend(items.into_iter().map(|v| (i + 1, v))),
                other => docs.push((i + 1, other)),
            }
        }
        return Ok(docs);
    }
    for (i, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(de).map_err(|e| (i + 1, format!("invalid YAML: {e}")))?;
        if !value.is_null() {
            docs.push((i + 1, value));
        }
    }
    Ok(docs)
}

/// A `kind: List` as its items (with their path prefix), anything else as itself.
fn expand_list(value: Value) -> Vec<(String, Value)> {
    let is_list = value.get("kind").and_then(Value::as_str) == Some("List")
        && value.get("items").is_some_and(Value::is_array);
    if !is_list {
        return vec![(String::new(), value)];
    }
    let Value::Object(mut map) = value else { unreachable!("checked above") };
    let Some(Value::Array(items)) = map.remove("items") else { unreachable!("checked above") };
    items.into_iter().enumerate().map(|(i, item)| (format!("items[{i}]"), item)).collect()
}

fn join(prefix: &str, path: &str) -> String {
    match (prefix.is_empty(), path.is_empty()) {
        (true, _) => path.to_owned(),
        (false, true) => prefix.to_owned(),
        (false, false) => format!("{prefix}.{path}"),
    }
}

/// Parses, defaults and validates one object.
pub(crate) fn parse_value(value: Value) -> Result<Resource, Vec<FieldError>> {
    let Value::Object(map) = &value else {
        return Err(vec![FieldError::new(
            "",
            format!("expected an object, got {}", type_name(&value)),
        )]);
    };
    let (group, kind) = api_version_and_kind(map)?;
    if kind == Kind::InferenceService {
        refuse_retired(map)?;
    }
    let mut resource = match kind {
        Kind::InferenceService => {
            Resource::InferenceService { group, object: Box::new(typed(&value, kind)?) }
        }
        Kind::TrainedModel => {
            Resource::TrainedModel { group, object: Box::new(typed(&value, kind)?) }
        }
        Kind::ServingRuntime => {
            Resource::ServingRuntime { group, object: Box::new(typed(&value, kind)?) }
        }
        Kind::ClusterServingRuntime => {
            Resource::ClusterServingRuntime { group, object: Box::new(typed(&value, kind)?) }
        }
    };
    defaults::default_resource(&mut resource);
    let errors = validate::validate_resource(&resource);
    if errors.is_empty() { Ok(resource) } else { Err(errors) }
}

fn api_version_and_kind(map: &Map<String, Value>) -> Result<(ApiGroup, Kind), Vec<FieldError>> {
    let Some(api_version) = map.get("apiVersion") else {
        return Err(vec![FieldError::new(
            "apiVersion",
            "required, e.g. serving.kserve.io/v1beta1",
        )]);
    };
    let Some(api_version) = api_version.as_str() else {
        return Err(vec![FieldError::new(
            "apiVersion",
            format!("expected a string, got {}", type_name(api_version)),
        )]);
    };
    let kind_value = map.get("kind").ok_or_else(|| vec![FieldError::new("kind", "required")])?;
    let kind_name = kind_value.as_str().ok_or_else(|| {
        vec![FieldError::new("kind", format!("expected a string, got {}", type_name(kind_value)))]
    })?;
    let kind = Kind::from_name(kind_name).ok_or_else(|| {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        let hint = did_you_mean(kind_name, &names)
            .map(|s| format!(", did you mean {s}"))
            .unwrap_or_default();
        vec![FieldError::new(
            "kind",
            format!("unknown kind \"{kind_name}\", expected one of {}{hint}", names.join(", ")),
        )]
    })?;
    let (group_name, version) = api_version.split_once('/').unwrap_or((api_version, ""));
    let group = ApiGroup::from_name(group_name).ok_or_else(|| {
        vec![FieldError::new(
            "apiVersion",
            format!(
                "unknown group \"{group_name}\", expected serving.kserve.io, serving.kubeflow.org or serving.oxserve.dev"
            ),
        )]
    })?;
    if kind == Kind::InferenceService && version == "v1alpha2" {
        return Err(vec![FieldError::new(
            "apiVersion",
            format!(
                "{api_version} is retired: write apiVersion serving.kserve.io/v1beta1 and move spec.default.predictor.<framework> to spec.predictor.<framework> (spec.canary.predictor becomes a new spec.predictor with canaryTrafficPercent)"
            ),
        )]);
    }
    if version != kind.version() {
        return Err(vec![FieldError::new(
            "apiVersion",
            format!(
                "{kind_name} is served as {group_name}/{}, got version \"{version}\"",
                kind.version()
            ),
        )]);
    }
    if group == ApiGroup::Kubeflow
        && matches!(kind, Kind::ServingRuntime | Kind::ClusterServingRuntime)
    {
        return Err(vec![FieldError::new(
            "apiVersion",
            format!(
                "{kind_name} was never in serving.kubeflow.org: write apiVersion serving.kserve.io/v1alpha1"
            ),
        )]);
    }
    Ok((group, kind))
}

/// The v1alpha2 `spec.default` shape and the removed alibi explainer, refused with what to
/// write instead.
fn refuse_retired(map: &Map<String, Value>) -> Result<(), Vec<FieldError>> {
    let Some(spec) = map.get("spec").and_then(Value::as_object) else { return Ok(()) };
    let mut errors = Vec::new();
    if spec.contains_key("default") {
        errors.push(FieldError::new(
            "spec.default",
            "the v1alpha2 shape is retired: move spec.default.predictor.<framework> to spec.predictor.<framework> (and spec.default.transformer / explainer to spec.transformer / spec.explainer)",
        ));
    }
    if spec.get("canary").is_some_and(Value::is_object) {
        errors.push(FieldError::new(
            "spec.canary",
            "the v1alpha2 canary is retired: put the new model in spec.predictor and set spec.predictor.canaryTrafficPercent (the previous revision keeps the rest); spec.canary is now a list of named predictors",
        ));
    }
    if spec.get("canaryTrafficPercent").is_some() && spec.contains_key("default") {
        errors.push(FieldError::new(
            "spec.canaryTrafficPercent",
            "the v1alpha2 canaryTrafficPercent is retired: set spec.predictor.canaryTrafficPercent",
        ));
    }
    if let Some(explainer) = spec.get("explainer").and_then(Value::as_object) {
        if explainer.contains_key("alibi") {
            errors.push(FieldError::new(
                "spec.explainer.alibi",
                "the alibi explainer was removed from KServe: use explainer.art or a custom explainer container, or with apiVersion serving.oxserve.dev/v1beta1 oxserve's own explainer (explainer.type: kernelshap or treeshap)",
            ));
        }
        if explainer.contains_key("aix") {
            errors.push(FieldError::new(
                "spec.explainer.aix",
                "the aix explainer was removed from KServe: use explainer.art or a custom explainer container, or with apiVersion serving.oxserve.dev/v1beta1 oxserve's own explainer (explainer.type: kernelshap or treeshap)",
            ));
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// Deserializes `value` as `T`, then checks that every field of the input survived the
/// round trip (k8s-openapi types ignore unknown fields, and so would ours without this).
fn typed<T: DeserializeOwned + Serialize>(value: &Value, kind: Kind) -> Result<T, Vec<FieldError>> {
    let object: T = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = format_path(e.path());
        vec![FieldError::new(path, e.into_inner().to_string())]
    })?;
    let back = serde_json::to_value(&object).expect("resource types serialize to JSON");
    let mut errors = Vec::new();
    unknown_fields(value, &back, &mut Vec::new(), kind, &mut errors);
    if errors.is_empty() { Ok(object) } else { Err(errors) }
}

/// A path segment while walking a value.
#[derive(Clone, Debug)]
pub(crate) enum Segment {
    Key(String),
    Index(usize),
}

pub(crate) fn path_string(segments: &[Segment]) -> String {
    let mut out = String::new();
    for s in segments {
        match s {
            Segment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn format_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment as S;
    let segments: Vec<Segment> = path
        .iter()
        .filter_map(|s| match s {
            S::Map { key } => Some(Segment::Key(key.clone())),
            S::Seq { index } => Some(Segment::Index(*index)),
            S::Enum { variant } => Some(Segment::Key(variant.clone())),
            S::Unknown => None,
        })
        .collect();
    path_string(&segments)
}

/// Records every non-null field of `input` that `output` lacks.
fn unknown_fields(
    input: &Value,
    output: &Value,
    at: &mut Vec<Segment>,
    kind: Kind,
    errors: &mut Vec<FieldError>,
) {
    match (input, output) {
        (Value::Object(inp), Value::Object(out)) => {
            for (key, value) in inp {
                if value.is_null() {
                    continue;
                }
                // apiVersion and kind were checked already; the typed object writes its own.
                if at.is_empty() && (key == "apiVersion" || key == "kind") {
                    continue;
                }
                at.push(Segment::Key(key.clone()));
                match out.get(key) {
                    Some(o) => unknown_fields(value, o, at, kind, errors),
                    None => {
                        let known = schema::field_names(kind, &at[..at.len() - 1]);
                        let known: Vec<&str> = known.iter().map(String::as_str).collect();
                        let hint = did_you_mean(key, &known)
                            .map(|s| format!(", did you mean {s}"))
                            .unwrap_or_default();
                        errors
                            .push(FieldError::new(path_string(at), format!("unknown field{hint}")));
                    }
                }
                at.pop();
            }
        }
        (Value::Array(inp), Value::Array(out)) => {
            for (i, (a, b)) in inp.iter().zip(out).enumerate() {
                at.push(Segment::Index(i));
                unknown_fields(a, b, at, kind, errors);
                at.pop();
            }
        }
        _ => {}
    }
}

/// The closest of `candidates` to `word` (Levenshtein, case-insensitive), if close enough to
/// be a likely typo.
pub(crate) fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = word.to_lowercase();
    candidates
        .iter()
        .map(|c| (levenshtein(&lower, &c.to_lowercase()), *c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance counting an adjacent transposition as one edit (optimal string alignment).
fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean_finds_typos_only() {
        assert_eq!(
            did_you_mean("storageUrl", &["storageUri", "storage", "runtimeVersion"]),
            Some("storageUri")
        );
        assert_eq!(
            did_you_mean("minreplicas", &["minReplicas", "maxReplicas"]),
            Some("minReplicas")
        );
        assert_eq!(did_you_mean("colour", &["storageUri", "runtime"]), None);
    }

    #[test]
    fn levenshtein_distances() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("same", "same"), 0);
        assert_eq!(levenshtein("paht", "path"), 1);
    }
}
