//! `cargo xtask kind up|load|e2e|down`: the Kubernetes workflow on a local kind cluster
//! (what `.github/workflows/kind-e2e.yml` runs; needs docker, kind and kubectl on PATH).
//!
//! - `up`: creates the `oxserve` cluster from `kind/cluster.yaml` (kept if it exists) and
//!   applies `kind/` (CRDs of both groups, RBAC, the router, the controller, the routes
//!   ConfigMap) with `kubectl apply -k`;
//! - `load`: builds the one `oxserve` image (`Dockerfile`) as `oxserve:dev`, loads it into
//!   the cluster's nodes and restarts the controller and router on it;
//! - `e2e`: waits for both to roll out, then runs the cluster tests of oxserve-controller
//!   (`tests/kube`, the `#[ignore = "needs a kind cluster"]` ones) against the cluster;
//! - `logs`: the cluster's objects and the controller's and router's logs (the workflow's
//!   step on failure);
//! - `down`: deletes the cluster;
//! - `check`: the tier that needs no cluster: the `kube` tests of oxserve-controller (the
//!   desired state, the reconciler and leader election against a fake API server, the
//!   manifests) and clippy with the `kubernetes` feature. Not part of `cargo xtask test`,
//!   since kube's client build costs minutes; `ci.yml` runs it as its own job.

use anyhow::{Context, Result};
use xshell::{Shell, cmd};

/// The cluster's name (its kubectl context is `kind-oxserve`).
pub const CLUSTER: &str = "oxserve";
/// The image the manifests in `kind/install` run.
pub const IMAGE: &str = "oxserve:dev";

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Step,
}

#[derive(clap::Subcommand)]
enum Step {
    /// Create the kind cluster and install the CRDs, RBAC, router and controller.
    Up,
    /// Build the oxserve image and load it into the cluster.
    Load,
    /// Run the cluster tests (the ignored tests of oxserve-controller's `kube` suite).
    E2e,
    /// Print the cluster's objects and the controller's and router's logs.
    Logs,
    /// Delete the kind cluster.
    Down,
    /// Run the tests that need no cluster (fake API server, snapshots, manifests) and clippy.
    Check,
}

pub fn run(sh: &Shell, args: Args) -> Result<()> {
    let Args { command } = args;
    let context = format!("kind-{CLUSTER}");
    match command {
        Step::Up => {
            let clusters = cmd!(sh, "kind get clusters").read().context("running kind")?;
            if !clusters.lines().any(|c| c.trim() == CLUSTER) {
                cmd!(
                    sh,
                    "kind create cluster --name {CLUSTER} --config kind/cluster.yaml --wait 120s"
                )
                .run()
                .context("creating the kind cluster")?;
            }
            cmd!(sh, "kubectl --context {context} apply --server-side -k kind/")
                .run()
                .context("installing kind/")?;
            cmd!(sh, "kubectl --context {context} wait --for condition=Established --timeout 60s crd --all")
                .run()?;
        }
        Step::Load => {
            cmd!(sh, "docker build -t {IMAGE} .").run().context("building the image")?;
            cmd!(sh, "kind load docker-image {IMAGE} --name {CLUSTER}")
                .run()
                .context("loading the image into the cluster")?;
            cmd!(sh, "kubectl --context {context} -n oxserve-system rollout restart deployment/oxserve-controller deployment/oxserve-router")
                .run()?;
        }
        Step::E2e => {
            cmd!(sh, "kubectl --context {context} -n oxserve-system rollout status deployment/oxserve-controller deployment/oxserve-router --timeout 180s")
                .run()
                .context("the controller or the router did not roll out")?;
            let _ctx = sh.push_env("OXSERVE_KUBE_CONTEXT", &context);
            cmd!(sh, "cargo test -p oxserve-controller --features kubernetes --test kube -- --ignored --test-threads 1")
                .run()
                .context("cluster tests failed")?;
        }
        Step::Check => {
            cmd!(sh, "cargo test -p oxserve-controller --features kubernetes --test kube")
                .run()
                .context("kubernetes tests failed")?;
            cmd!(sh, "cargo clippy -p oxserve-controller -p oxserve-cli --features kubernetes --all-targets -- -D warnings")
                .run()
                .context("clippy with the kubernetes feature")?;
        }
        Step::Logs => {
            // Diagnostics: each command's failure is printed, not fatal.
            let ns = "oxserve-system";
            for args in [
                vec!["get", "all,cm,lease,isvc", "-A", "-o", "wide"],
                vec![
                    "-n",
                    ns,
                    "logs",
                    "deployment/oxserve-controller",
                    "--all-containers",
                    "--tail",
                    "300",
                ],
                vec!["-n", ns, "logs", "deployment/oxserve-router", "--tail", "300"],
            ] {
                if let Err(e) = cmd!(sh, "kubectl --context {context} {args...}").run() {
                    eprintln!("xtask: {e}");
                }
            }
        }
        Step::Down => {
            cmd!(sh, "kind delete cluster --name {CLUSTER}")
                .run()
                .context("deleting the cluster")?;
        }
    }
    Ok(())
}
