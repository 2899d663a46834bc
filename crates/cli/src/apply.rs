//! `oxserve apply -f FILE|- [--dry-run] [-o json|yaml]`: parses, defaults and validates
//! InferenceServices, TrainedModels and ServingRuntimes (multi-document YAML or JSON) with
//! oxserve-api. `--dry-run` needs no platform: it prints the normalized objects (warnings on
//! stderr) or exits 1 with `FILE:doc N: field path: reason` lines. Without `--dry-run` the
//! objects go to the platform's api port (`--server`, `-n`), one PUT per object at its
//! Kubernetes-shaped path.

use std::io::Read;

use anyhow::{Context, Result};
use oxserve_api::{Backend, Kind, Resource};
use serde_json::{Value, json};

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
    /// The platform's api URL (default: the api port of the local `oxserve up`).
    #[arg(long, env = "OXSERVE_SERVER")]
    server: Option<String>,
    /// Namespace of objects that name none.
    #[arg(short = 'n', long, env = "OXSERVE_NAMESPACE", default_value = "default")]
    namespace: String,
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

/// Exit status when the manifest is invalid.
const EXIT_INVALID: i32 = 1;
/// Exit status when there is no platform to apply to.
const EXIT_NO_PLATFORM: i32 = 2;

pub fn run(args: Args) -> Result<()> {
    let Args { file, dry_run, output, backend, server, namespace } = args;
    let text = read(&file)?;
    let source = if file == "-" { "<stdin>" } else { file.as_str() };
    let mut resources = match oxserve_api::parse(&text, source) {
        Ok(r) => r,
        Err(errors) => {
            // One `FILE:doc N: field path: reason` line per error, nothing else.
            eprintln!("{errors}");
            std::process::exit(EXIT_INVALID);
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
    let objects: Vec<Value> = resources.iter_mut().map(|r| with_namespace(r, &namespace)).collect();
    if dry_run {
        print!("{}", render(&objects, output)?);
        return Ok(());
    }
    let targets: Vec<String> = resources.iter().map(|r| api_path(r, &namespace)).collect();
    let server = server.unwrap_or_else(|| "the local `oxserve up`".to_owned());
    eprintln!(
        "oxserve apply: cannot send {} object(s) to {server} ({}): applying needs the platform's api (`oxserve up`), which this build does not serve yet; use --dry-run to check the manifest",
        targets.len(),
        targets.join(", ")
    );
    std::process::exit(EXIT_NO_PLATFORM);
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

/// Where the api keeps the object (`PUT` creates or replaces).
fn api_path(r: &Resource, namespace: &str) -> String {
    let plural = match r.kind() {
        Kind::InferenceService => "inferenceservices",
        Kind::TrainedModel => "trainedmodels",
        Kind::ServingRuntime => "servingruntimes",
        Kind::ClusterServingRuntime => "clusterservingruntimes",
    };
    let version = format!("serving.kserve.io/{}", r.kind().version());
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
            "/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices/m"
        );
        assert_eq!(
            api_path(&r[1], "default"),
            "/apis/serving.kserve.io/v1alpha1/namespaces/ns/trainedmodels/t"
        );
    }
}
