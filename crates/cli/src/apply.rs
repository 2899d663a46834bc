//! `oxserve apply -f FILE|- [--dry-run] [-o json|yaml] [--wait [--timeout 300s]]`: parses,
//! defaults and validates InferenceServices, TrainedModels and ServingRuntimes
//! (multi-document YAML or JSON) with oxserve-api, every document before any is sent.
//! `--dry-run` needs no platform: it prints the normalized objects (warnings on stderr).
//! A manifest error exits 1 with `FILE:doc N: field path: reason` lines and sends nothing.
//! Otherwise each object is PUT at its Kubernetes-shaped path on the platform's api (see
//! [`crate::resources`] for how the api is found) and reported in kubectl's words,
//! `inferenceservice.serving.kserve.io/NAME created|configured|unchanged`; an unreachable
//! platform exits 2. `--wait` then follows every applied InferenceService to Ready
//! ([`crate::wait`]).

use std::io::Read;
use std::time::Duration;

use anyhow::{Context, Result};
use oxserve_api::{Backend, Kind, Resource};
use serde_json::{Value, json};

use crate::resources::{Api, Target, runtime};
use crate::wait::{self, Outcome};

#[derive(clap::Args)]
pub struct Args {
    /// The manifest: a file, or `-` for stdin (multi-document YAML or JSON).
    #[arg(short = 'f', long = "filename", env = "OXSERVE_APPLY_FILE")]
    file: String,
    /// Parse, default and validate only, and print the normalized objects; needs no platform.
    #[arg(long, env = "OXSERVE_APPLY_DRY_RUN")]
    dry_run: bool,
    /// Output format of the normalized objects.
    #[arg(short = 'o', long, env = "OXSERVE_OUTPUT", default_value = "yaml")]
    output: Output,
    /// The backend whose unused fields are reported as warnings.
    #[arg(long, env = "OXSERVE_BACKEND", default_value = "local")]
    backend: BackendArg,
    /// Wait until every applied InferenceService is Ready (exits 1 with the revision's
    /// reason if it fails, or when `--timeout` passes).
    #[arg(long, env = "OXSERVE_APPLY_WAIT")]
    wait: bool,
    /// How long `--wait` waits: `300s`, `5m`, `1m30s`, `500ms` or plain seconds.
    #[arg(long, env = "OXSERVE_APPLY_TIMEOUT", default_value = "300s", value_parser = parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    target: Target,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    Json,
    Yaml,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum BackendArg {
    Local,
    Kubernetes,
}

/// Exit status when the manifest is invalid, the api refused an object or `--wait` failed.
const EXIT_FAILED: i32 = 1;
/// Exit status when there is no platform to apply to.
const EXIT_NO_PLATFORM: i32 = 2;

pub fn run(args: Args) -> Result<()> {
    let Args { file, dry_run, output, backend, wait, timeout, target } = args;
    let text = read(&file)?;
    let source = if file == "-" { "<stdin>" } else { file.as_str() };
    let resources = match oxserve_api::parse(&text, source) {
        Ok(r) => r,
        Err(errors) => {
            // One `FILE:doc N: field path: reason` line per error, nothing else.
            eprintln!("{errors}");
            std::process::exit(EXIT_FAILED);
        }
    };
    let backend = match backend {
        BackendArg::Local => Backend::Local,
        BackendArg::Kubernetes => Backend::Kubernetes,
    };
    for r in &resources {
        for w in oxserve_api::warnings(r, backend) {
            eprintln!("warning: {}/{}: {w}", r.kind().as_str().to_lowercase(), r.name());
        }
    }
    let api = Api::new(target)?;
    let objects: Vec<Value> = resources.iter().map(|r| with_namespace(r, &api.namespace)).collect();
    if dry_run {
        print!("{}", render(&objects, output)?);
        return Ok(());
    }
    let code = runtime()?.block_on(async move {
        let mut failed = false;
        let mut services = Vec::new();
        for (r, object) in resources.iter().zip(&objects) {
            let what = format!("{}/{}", object_word(r), r.name());
            match put(&api, &api_path(r, &api.namespace), object).await {
                Sent::Applied(outcome) => {
                    println!("{what} {outcome}");
                    if r.kind() == Kind::InferenceService {
                        let ns = r.namespace().unwrap_or(&api.namespace).to_owned();
                        services.push((ns, r.name().to_owned()));
                    }
                }
                Sent::Refused(message) => {
                    eprintln!("Error from server: {what}: {message}");
                    failed = true;
                }
                Sent::Unreachable(message) => {
                    eprintln!("oxserve apply: {message}");
                    return EXIT_NO_PLATFORM;
                }
            }
        }
        if wait && !services.is_empty() {
            match wait::ready(&api, &services, timeout).await {
                Outcome::Ready => {}
                Outcome::Failed => failed = true,
                Outcome::Unreachable(message) => {
                    eprintln!("oxserve apply: {message}");
                    return EXIT_NO_PLATFORM;
                }
            }
        }
        if failed { EXIT_FAILED } else { 0 }
    });
    if code != 0 {
        std::process::exit(code);
    }
    Ok(())
}

/// What became of one PUT.
enum Sent {
    /// `created`, `configured` or `unchanged`.
    Applied(String),
    /// The api answered with an error.
    Refused(String),
    /// Nothing answered.
    Unreachable(String),
}

async fn put(api: &Api, path: &str, object: &Value) -> Sent {
    let url = format!("{}{path}", api.base);
    let response = match api
        .client
        .put(&url)
        .header("content-type", "application/json")
        .body(object.to_string())
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => {
            return Sent::Unreachable(format!(
                "cannot reach the platform at {} (is `oxserve up` running?): {e}",
                api.base
            ));
        }
    };
    let status = response.status();
    let applied =
        response.headers().get("x-oxserve-apply").and_then(|v| v.to_str().ok()).map(str::to_owned);
    if status.is_success() {
        let outcome = applied.unwrap_or_else(|| {
            if status == reqwest::StatusCode::CREATED { "created" } else { "configured" }.to_owned()
        });
        return Sent::Applied(outcome);
    }
    let text = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or(text);
    Sent::Refused(format!("{message} ({status}){}", crate::security::hint(status)))
}

/// kubectl's `KIND.GROUP`, lowercase, with the group the manifest was written for.
fn object_word(r: &Resource) -> String {
    format!("{}.{}", r.kind().as_str().to_lowercase(), r.group().as_str())
}

/// `300s`, `5m`, `1m30s`, `1h`, `500ms` or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?}: expected a duration such as 300s, 5m, 1m30s or 500ms");
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|_| bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let (number, tail) = rest.split_at(digits);
        let value: f64 = number.parse().map_err(|_| bad())?;
        let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let scale = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += Duration::try_from_secs_f64(value * scale).map_err(|_| bad())?;
        rest = next;
    }
    if s.is_empty() { Err(bad()) } else { Ok(total) }
}

fn read(file: &str) -> Result<String> {
    if file == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("reading the manifest from stdin")?;
        Ok(s)
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {file}"))
    }
}

/// The object as it would be sent: namespaced kinds get `-n` when they name no namespace.
fn with_namespace(r: &Resource, namespace: &str) -> Value {
    let mut v = r.to_value();
    if r.kind() != Kind::ClusterServingRuntime && r.namespace().is_none() {
        v["metadata"]["namespace"] = json!(namespace);
    }
    v
}

/// Where the api keeps the object (`PUT` creates or replaces), under the manifest's group.
fn api_path(r: &Resource, namespace: &str) -> String {
    let plural = match r.kind() {
        Kind::InferenceService => "inferenceservices",
        Kind::TrainedModel => "trainedmodels",
        Kind::ServingRuntime => "servingruntimes",
        Kind::ClusterServingRuntime => "clusterservingruntimes",
    };
    let version = format!("{}/{}", r.group().as_str(), r.kind().version());
    match r.kind() {
        Kind::ClusterServingRuntime => format!("/apis/{version}/{plural}/{}", r.name()),
        _ => format!(
            "/apis/{version}/namespaces/{}/{plural}/{}",
            r.namespace().unwrap_or(namespace),
            r.name()
        ),
    }
}

/// One object as itself, several as a `List` (JSON) or as YAML documents.
fn render(objects: &[Value], output: Output) -> Result<String> {
    Ok(match output {
        Output::Json => {
            let v = match objects {
                [one] => one.clone(),
                many => json!({"apiVersion": "v1", "kind": "List", "items": many}),
            };
            format!("{}\n", serde_json::to_string_pretty(&v)?)
        }
        Output::Yaml => {
            let docs: Result<Vec<String>, _> =
                objects.iter().map(serde_yaml_ng::to_string).collect();
            docs?.join("---\n")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_are_kubernetes_shaped() {
        let text = "apiVersion: serving.kubeflow.org/v1beta1\nkind: InferenceService\nmetadata: {name: m}\nspec:\n  predictor:\n    onnx: {storageUri: gs://b/m}\n---\napiVersion: serving.kserve.io/v1alpha1\nkind: TrainedModel\nmetadata: {name: t, namespace: ns}\nspec: {inferenceService: m, model: {storageUri: gs://b/t, framework: onnx, memory: 1Gi}}\n";
        let r = oxserve_api::parse(text, "t").expect("parses");
        assert_eq!(
            api_path(&r[0], "default"),
            "/apis/serving.kubeflow.org/v1beta1/namespaces/default/inferenceservices/m"
        );
        assert_eq!(object_word(&r[0]), "inferenceservice.serving.kubeflow.org");
        assert_eq!(
            api_path(&r[1], "default"),
            "/apis/serving.kserve.io/v1alpha1/namespaces/ns/trainedmodels/t"
        );
        assert_eq!(object_word(&r[1]), "trainedmodel.serving.kserve.io");
    }

    #[test]
    fn durations_read_like_kubectl_timeouts() {
        let d = |s| parse_duration(s).map(|d| d.as_millis());
        assert_eq!(d("300s"), Ok(300_000));
        assert_eq!(d("5m"), Ok(300_000));
        assert_eq!(d("1m30s"), Ok(90_000));
        assert_eq!(d("500ms"), Ok(500));
        assert_eq!(d("2"), Ok(2000));
        assert_eq!(d("1h"), Ok(3_600_000));
        for bad in ["", "5x", "s", "-1", "1m30"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
