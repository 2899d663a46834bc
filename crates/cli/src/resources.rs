//! `oxserve get|describe|delete|logs`: the platform's objects through its api port, printed
//! as kubectl prints KServe's.
//!
//! The api is `--server URL` (`OXSERVE_SERVER`), else the one the `oxserve up` holding the
//! state dir (`--state-dir`, `OXSERVE_STATE_DIR`, default `.oxserve/state`) wrote into its
//! `api` file, else `http://127.0.0.1:9000`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::up::{API_FILE, DEFAULT_STATE_DIR};

/// Where the api is and which namespace.
#[derive(clap::Args)]
pub struct Target {
    /// The platform's api URL (default: the api of the `oxserve up` on the state dir).
    #[arg(long, env = "OXSERVE_SERVER")]
    server: Option<String>,
    /// The state dir whose `oxserve up` to talk to.
    #[arg(long, env = "OXSERVE_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// The namespace.
    #[arg(short = 'n', long, env = "OXSERVE_NAMESPACE", default_value = "default")]
    namespace: String,
    /// The token and the certificates to trust (an https:// api).
    #[command(flatten)]
    client: crate::security::ClientArgs,
}

/// What to get.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Type {
    /// InferenceServices.
    #[value(alias = "inferenceservice", alias = "inferenceservices")]
    Isvc,
    /// TrainedModels.
    #[value(alias = "trainedmodel", alias = "trainedmodels")]
    Tm,
    /// Revisions of InferenceServices.
    #[value(alias = "revision", alias = "rev")]
    Revisions,
}

/// What can be described or deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ObjectType {
    #[value(alias = "inferenceservice", alias = "inferenceservices")]
    Isvc,
    #[value(alias = "trainedmodel", alias = "trainedmodels")]
    Tm,
}

/// Only InferenceServices have logs and descriptions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ServiceType {
    #[value(alias = "inferenceservice", alias = "inferenceservices")]
    Isvc,
}

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Wide,
    Yaml,
    Json,
}

#[derive(clap::Args)]
pub struct GetArgs {
    /// isvc, tm or revisions.
    #[arg(value_enum)]
    resource: Type,
    /// One object (for revisions: the InferenceService whose revisions to show).
    name: Option<String>,
    /// wide, yaml or json (default: a table).
    #[arg(short = 'o', long, env = "OXSERVE_OUTPUT", value_enum)]
    output: Option<Output>,
    #[command(flatten)]
    target: Target,
}

#[derive(clap::Args)]
pub struct DescribeArgs {
    #[arg(value_enum)]
    resource: ServiceType,
    name: String,
    #[command(flatten)]
    target: Target,
}

#[derive(clap::Args)]
pub struct DeleteArgs {
    #[arg(value_enum)]
    resource: ObjectType,
    name: String,
    #[command(flatten)]
    target: Target,
}

#[derive(clap::Args)]
pub struct LogsArgs {
    #[arg(value_enum)]
    resource: ServiceType,
    name: String,
    /// predictor, transformer or explainer.
    #[arg(long, env = "OXSERVE_COMPONENT", default_value = "predictor")]
    component: String,
    /// One revision (default: the component's latest).
    #[arg(long, env = "OXSERVE_REVISION")]
    revision: Option<String>,
    #[command(flatten)]
    target: Target,
}

/// A client of the platform's api, shared by `apply` and the resource commands.
pub(crate) struct Api {
    pub(crate) base: String,
    pub(crate) namespace: String,
    pub(crate) client: reqwest::Client,
}

impl Api {
    /// The api of `--server`, else of the `oxserve up` on the state dir, else the default.
    pub(crate) fn new(target: Target) -> Result<Api> {
        let Target { server, state_dir, namespace, client } = target;
        let base = match server {
            Some(s) => s,
            None => {
                let dir = state_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
                match std::fs::read_to_string(dir.join(API_FILE)) {
                    Ok(s) => s.trim().to_owned(),
                    Err(_) => "http://127.0.0.1:9000".to_owned(),
                }
            }
        };
        let client = client.client()?;
        Ok(Api { base: base.trim_end_matches('/').to_owned(), namespace, client })
    }

    fn path(&self, kind: ObjectType, name: Option<&str>) -> String {
        let (group, plural) = match kind {
            ObjectType::Isvc => ("serving.kserve.io/v1beta1", "inferenceservices"),
            ObjectType::Tm => ("serving.kserve.io/v1alpha1", "trainedmodels"),
        };
        let mut p = format!("{}/apis/{group}/namespaces/{}/{plural}", self.base, self.namespace);
        if let Some(n) = name {
            p.push('/');
            p.push_str(n);
        }
        p
    }

    pub(crate) async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let r = req.send().await.with_context(|| {
            format!("cannot reach the platform at {} (is `oxserve up` running?)", self.base)
        })?;
        if r.status().is_success() {
            return Ok(r);
        }
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or(text);
        bail!("{message} ({status}){}", crate::security::hint(status))
    }

    pub(crate) async fn json(&self, url: String) -> Result<Value> {
        Ok(self.send(self.client.get(url)).await?.json().await?)
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub fn get(args: GetArgs) -> Result<()> {
    let GetArgs { resource, name, output, target } = args;
    let api = Api::new(target)?;
    runtime()?.block_on(async move {
        let out = match resource {
            Type::Isvc | Type::Tm => {
                let kind = if resource == Type::Isvc { ObjectType::Isvc } else { ObjectType::Tm };
                let items = match &name {
                    Some(n) => vec![api.json(api.path(kind, Some(n))).await?],
                    None => items(api.json(api.path(kind, None)).await?),
                };
                if items.is_empty() && output.is_none_or(|o| o == Output::Wide) {
                    eprintln!("No resources found in {} namespace.", api.namespace);
                    return Ok(());
                }
                match output {
                    Some(Output::Json) => json_out(name.is_some(), items),
                    Some(Output::Yaml) => yaml_out(name.is_some(), items)?,
                    Some(Output::Wide) | None => match kind {
                        ObjectType::Isvc => isvc_table(&items, output == Some(Output::Wide)),
                        ObjectType::Tm => tm_table(&items),
                    },
                }
            }
            Type::Revisions => {
                let services: Vec<String> = match &name {
                    Some(n) => vec![n.clone()],
                    None => items(api.json(api.path(ObjectType::Isvc, None)).await?)
                        .iter()
                        .filter_map(|v| {
                            v.pointer("/metadata/name").and_then(Value::as_str).map(str::to_owned)
                        })
                        .collect(),
                };
                let mut rows = Vec::new();
                for svc in services {
                    let revs = api
                        .json(format!("{}/revisions", api.path(ObjectType::Isvc, Some(&svc))))
                        .await?;
                    for mut r in items_array(revs) {
                        if let Some(m) = r.as_object_mut() {
                            m.insert("service".into(), Value::from(svc.clone()));
                        }
                        rows.push(r);
                    }
                }
                if rows.is_empty() && output.is_none_or(|o| o == Output::Wide) {
                    eprintln!("No resources found in {} namespace.", api.namespace);
                    return Ok(());
                }
                match output {
                    Some(Output::Json) => json_out(false, rows),
                    Some(Output::Yaml) => yaml_out(false, rows)?,
                    Some(Output::Wide) | None => {
                        revisions_table(&rows, output == Some(Output::Wide))
                    }
                }
            }
        };
        print!("{out}");
        Ok(())
    })
}

fn items(list: Value) -> Vec<Value> {
    list.get("items").cloned().map(items_array).unwrap_or_default()
}

fn items_array(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        _ => Vec::new(),
    }
}

fn list_value(one: bool, mut items: Vec<Value>) -> Value {
    if one && items.len() == 1 {
        items.remove(0)
    } else {
        serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items})
    }
}

fn json_out(one: bool, items: Vec<Value>) -> String {
    let mut s = serde_json::to_string_pretty(&list_value(one, items)).unwrap_or_default();
    s.push('\n');
    s
}

fn yaml_out(one: bool, items: Vec<Value>) -> Result<String> {
    Ok(serde_yaml_ng::to_string(&list_value(one, items))?)
}

/// Columns padded as kubectl pads them: three spaces after the widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}   ", w = widths[i]));
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn condition(v: &Value, type_: &str) -> String {
    v.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c.get("type").and_then(Value::as_str) == Some(type_)))
        .and_then(|c| c.get("status").and_then(Value::as_str))
        .unwrap_or("Unknown")
        .to_owned()
}

/// kubectl's AGE: `45s`, `12m`, `5h`, `3d`.
fn age(since: &str) -> String {
    let Ok(t) = since.parse::<oxserve_controller::revision::Timestamp>() else {
        return "<unknown>".into();
    };
    let now = oxserve_controller::revision::Timestamp::from_system(std::time::SystemTime::now());
    let s = now.unix().saturating_sub(t.unix());
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

fn isvc_table(items: &[Value], wide: bool) -> String {
    let mut header = vec![
        "NAME",
        "URL",
        "READY",
        "PREV",
        "LATEST",
        "PREVROLLEDOUTREVISION",
        "LATESTREADYREVISION",
        "AGE",
    ];
    if wide {
        header.push("LATESTCREATEDREVISION");
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|v| {
            let entry = if v.pointer("/spec/transformer").is_some_and(|t| !t.is_null()) {
                "transformer"
            } else {
                "predictor"
            };
            let traffic = v
                .pointer(&format!("/status/components/{entry}/traffic"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let find = |f: &dyn Fn(&Value) -> bool| traffic.iter().find(|t| f(t)).cloned();
            let prev = find(&|t| t.get("tag").and_then(Value::as_str) == Some("prev"));
            let latest = find(&|t| t.get("latestRevision").and_then(Value::as_bool) == Some(true));
            let percent = |t: &Option<Value>| {
                t.as_ref()
                    .and_then(|t| t.get("percent"))
                    .and_then(Value::as_u64)
                    .map(|p| p.to_string())
                    .unwrap_or_default()
            };
            let mut row = vec![
                str_at(v, "/metadata/name").to_owned(),
                str_at(v, "/status/url").to_owned(),
                condition(v, "Ready"),
                percent(&prev),
                percent(&latest),
                prev.as_ref()
                    .and_then(|t| t.get("revisionName"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                str_at(v, &format!("/status/components/{entry}/latestReadyRevision")).to_owned(),
                age(str_at(v, "/metadata/creationTimestamp")),
            ];
            if wide {
                row.push(
                    str_at(v, &format!("/status/components/{entry}/latestCreatedRevision"))
                        .to_owned(),
                );
            }
            row
        })
        .collect();
    table(&header, &rows)
}

fn tm_table(items: &[Value]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|v| {
            vec![
                str_at(v, "/metadata/name").to_owned(),
                str_at(v, "/spec/inferenceService").to_owned(),
                str_at(v, "/status/url").to_owned(),
                condition(v, "Ready"),
                age(str_at(v, "/metadata/creationTimestamp")),
            ]
        })
        .collect();
    table(&["NAME", "INFERENCESERVICE", "URL", "READY", "AGE"], &rows)
}

fn revisions_table(rows: &[Value], wide: bool) -> String {
    let mut header = vec!["NAME", "SERVICE", "COMPONENT", "READY", "REPLICAS", "TRAFFIC", "AGE"];
    if wide {
        header.extend(["STATE", "TAGS", "REASON"]);
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let state = str_at(r, "/state");
            let ready = match state {
                "Ready" => "True",
                "Failed" => "False",
                _ => "Unknown",
            };
            let n = |k: &str| r.get(k).and_then(Value::as_u64).unwrap_or(0);
            let mut row = vec![
                str_at(r, "/name").to_owned(),
                str_at(r, "/service").to_owned(),
                str_at(r, "/component").to_owned(),
                ready.to_owned(),
                format!("{}/{}", n("readyReplicas"), n("desiredReplicas")),
                format!("{}%", n("traffic")),
                age(str_at(r, "/created")),
            ];
            if wide {
                let tags: Vec<&str> = r
                    .get("tags")
                    .and_then(Value::as_array)
                    .map(|t| t.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                row.push(state.to_owned());
                row.push(tags.join(","));
                let reason =
                    r.get("reason").or(r.get("progress")).and_then(Value::as_str).unwrap_or("");
                row.push(reason.to_owned());
            }
            row
        })
        .collect();
    table(&header, &cells)
}

pub fn describe(args: DescribeArgs) -> Result<()> {
    let DescribeArgs { resource: ServiceType::Isvc, name, target } = args;
    let api = Api::new(target)?;
    runtime()?.block_on(async move {
        let v = api.json(api.path(ObjectType::Isvc, Some(&name))).await?;
        let revs = items_array(
            api.json(format!("{}/revisions", api.path(ObjectType::Isvc, Some(&name)))).await?,
        );
        let mut out = String::new();
        out.push_str(&format!("Name:         {}\n", str_at(&v, "/metadata/name")));
        out.push_str(&format!("Namespace:    {}\n", str_at(&v, "/metadata/namespace")));
        out.push_str(&format!("API Version:  {}\n", str_at(&v, "/apiVersion")));
        out.push_str(&format!("Created:      {}\n", str_at(&v, "/metadata/creationTimestamp")));
        out.push_str(&format!("URL:          {}\n", str_at(&v, "/status/url")));
        out.push_str("Conditions:\n");
        let conditions =
            v.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
        let rows: Vec<Vec<String>> = conditions
            .iter()
            .map(|c| {
                ["type", "status", "lastTransitionTime", "reason", "message"]
                    .iter()
                    .map(|k| c.get(*k).and_then(Value::as_str).unwrap_or("").to_owned())
                    .collect()
            })
            .collect();
        for line in
            table(&["TYPE", "STATUS", "LAST TRANSITION", "REASON", "MESSAGE"], &rows).lines()
        {
            out.push_str(&format!("  {line}\n"));
        }
        if let Some(components) = v.pointer("/status/components").and_then(Value::as_object) {
            out.push_str("Components:\n");
            for (component, c) in components {
                out.push_str(&format!("  {component}:\n"));
                for (label, key) in [
                    ("Latest Created Revision", "latestCreatedRevision"),
                    ("Latest Ready Revision", "latestReadyRevision"),
                    ("Latest Rolled-out Revision", "latestRolledoutRevision"),
                    ("Previous Rolled-out Revision", "previousRolledoutRevision"),
                ] {
                    if let Some(r) = c.get(key).and_then(Value::as_str) {
                        out.push_str(&format!("    {label}: {r}\n"));
                    }
                }
                for t in c.get("traffic").and_then(Value::as_array).cloned().unwrap_or_default() {
                    let tag = t
                        .get("tag")
                        .and_then(Value::as_str)
                        .map(|t| format!(" (tag {t})"))
                        .unwrap_or_default();
                    out.push_str(&format!(
                        "    Traffic: {} {}%{tag}\n",
                        str_at(&t, "/revisionName"),
                        t.get("percent").and_then(Value::as_u64).unwrap_or(0)
                    ));
                }
            }
        }
        out.push_str("Revisions:\n");
        for r in &revs {
            let n = |k: &str| r.get(k).and_then(Value::as_u64).unwrap_or(0);
            out.push_str(&format!(
                "  {}  {}  traffic {}%  replicas {}/{}",
                str_at(r, "/name"),
                str_at(r, "/state"),
                n("traffic"),
                n("readyReplicas"),
                n("desiredReplicas")
            ));
            if let Some(p) = r.get("progress").and_then(Value::as_str) {
                out.push_str(&format!("  ({p})"));
            }
            out.push('\n');
            if let Some(reason) = r.get("reason").and_then(Value::as_str) {
                out.push_str(&format!("    Reason: {reason}\n"));
            }
        }
        print!("{out}");
        Ok(())
    })
}

pub fn delete(args: DeleteArgs) -> Result<()> {
    let DeleteArgs { resource, name, target } = args;
    let api = Api::new(target)?;
    runtime()?.block_on(async move {
        api.send(api.client.delete(api.path(resource, Some(&name)))).await?;
        let what = match resource {
            ObjectType::Isvc => "inferenceservice.serving.kserve.io",
            ObjectType::Tm => "trainedmodel.serving.kserve.io",
        };
        println!("{what} \"{name}\" deleted");
        Ok(())
    })
}

pub fn logs(args: LogsArgs) -> Result<()> {
    let LogsArgs { resource: ServiceType::Isvc, name, component, revision, target } = args;
    let api = Api::new(target)?;
    runtime()?.block_on(async move {
        if !["predictor", "transformer", "explainer"].contains(&component.as_str()) {
            bail!("--component {component:?}: expected predictor, transformer or explainer");
        }
        let mut url =
            format!("{}/logs?component={component}", api.path(ObjectType::Isvc, Some(&name)));
        if let Some(r) = &revision {
            oxserve_controller::local::state::check_name("--revision", r)?;
            url.push_str(&format!("&revision={r}"));
        }
        let text = api.send(api.client.get(url)).await?.text().await?;
        print!("{text}");
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_pad_like_kubectl() {
        let t = table(
            &["NAME", "READY"],
            &[vec!["iris".into(), "True".into()], vec!["a-long-name".into(), "".into()]],
        );
        assert_eq!(t, "NAME          READY\niris          True\na-long-name\n");
    }

    #[test]
    fn isvc_rows_show_kserves_columns_from_the_status() {
        let v = serde_json::json!({
            "metadata": {"name": "iris", "creationTimestamp": "2000-01-01T00:00:00Z"},
            "status": {"url": "http://iris.default.example.com",
                "conditions": [{"type": "Ready", "status": "True"}],
                "components": {"predictor": {"latestReadyRevision": "iris-predictor-00002",
                    "traffic": [
                        {"tag": "latest", "revisionName": "iris-predictor-00002", "latestRevision": true, "percent": 10},
                        {"tag": "prev", "revisionName": "iris-predictor-00001", "latestRevision": false, "percent": 90}]}}}
        });
        let t = isvc_table(&[v], false);
        let mut lines = t.lines();
        let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(
            header,
            [
                "NAME",
                "URL",
                "READY",
                "PREV",
                "LATEST",
                "PREVROLLEDOUTREVISION",
                "LATESTREADYREVISION",
                "AGE"
            ]
        );
        let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(
            row[..7],
            [
                "iris",
                "http://iris.default.example.com",
                "True",
                "90",
                "10",
                "iris-predictor-00001",
                "iris-predictor-00002"
            ]
        );
        assert!(row[7].ends_with('d'), "{row:?}");
    }
}
