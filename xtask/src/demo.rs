//! `cargo xtask demo`: builds `oxserve`, serves the bundled example models
//! (`fixtures/models`) and shows real inferences over REST and gRPC with the URLs to call.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

#[derive(clap::Args)]
pub struct Args {
    /// REST port.
    #[arg(long, default_value_t = 8080)]
    http_port: u16,
    /// gRPC port.
    #[arg(long, default_value_t = 8081)]
    grpc_port: u16,
    /// Exit after the example requests instead of serving until Ctrl-C.
    #[arg(long)]
    once: bool,
}

/// Stops the server when the demo ends, however it ends.
struct ServerGuard(Child);

impl Drop for ServerGuard {
    fn drop(&mut self) {
        // SIGTERM by PID for a graceful drain, then reap.
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let _ = self.0.wait();
    }
}

pub fn run(sh: &Shell, args: Args) -> Result<()> {
    let Args { http_port, grpc_port, once } = args;
    let lib = crate::onnxruntime::ensure(sh)?;
    cmd!(sh, "cargo build --release -p oxserve-cli").run().context("building oxserve")?;
    let root = crate::project_root();
    let oxserve = root.join("target/release/oxserve");
    let models = root.join("fixtures/models");
    let (http_port, grpc_port) = (http_port.to_string(), grpc_port.to_string());
    let mut child = Command::new(&oxserve)
        .args(["serve".as_ref(), models.as_os_str()])
        .args(["--http-port", &http_port, "--grpc-port", &grpc_port])
        .env("OXSERVE_ONNXRUNTIME_LIB", &lib)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting oxserve")?;
    let stdout = child.stdout.take().context("server stdout")?;
    let guard = ServerGuard(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let Some(addrs) = line.trim().strip_prefix("oxserve listening ") else {
        bail!("oxserve did not start (see its log above)");
    };
    let mut rest = "";
    let mut grpc = "";
    for part in addrs.split_whitespace() {
        if let Some(v) = part.strip_prefix("rest=") {
            rest = v;
        } else if let Some(v) = part.strip_prefix("grpc=") {
            grpc = v;
        }
    }
    let rest = rest.to_owned();
    let grpc = grpc.to_owned();

    println!("\n== oxserve is serving fixtures/models ==");
    println!(
        "REST  {rest}   (V2: /v2, /v2/models/<name>, /v2/models/<name>/infer; V1: /v1/models/<name>:predict)"
    );
    println!("gRPC  {grpc}   (inference.GRPCInferenceService)");
    println!("metrics {rest}/metrics\n");
    let request = r#"{"id":"demo-1","inputs":[{"name":"float_input","shape":[2,4],"datatype":"FP32","data":[[5.1,3.5,1.4,0.2],[6.7,3.0,5.2,2.3]]}]}"#;
    println!("REST: POST {rest}/v2/models/iris-lr/infer   (oxserve infer iris-lr --url {rest})");
    println!("  try it yourself: curl -s {rest}/v2/models/iris-lr/infer -d '{request}'");
    let out = cmd!(sh, "{oxserve} infer iris-lr --url {rest} --data {request}").read()?;
    println!("{out}\n");
    println!("gRPC: ModelInfer on {grpc}   (oxserve infer iris-lr --grpc {grpc}, same request)");
    let out = cmd!(sh, "{oxserve} infer iris-lr --grpc {grpc} --data {request}").read()?;
    println!("{out}\n");
    let xgb = r#"{"inputs":[{"name":"input-0","shape":[1,10],"datatype":"FP32","data":[0.5,-1.2,null,0.3,2.0,0.0,-0.7,1.1,null,0.4]}]}"#;
    println!("REST: POST {rest}/v2/models/xgb-binary/infer   (null = missing value)");
    println!("  try it yourself: curl -s {rest}/v2/models/xgb-binary/infer -d '{xgb}'");
    let out = cmd!(sh, "{oxserve} infer xgb-binary --url {rest} --data {xgb}").read()?;
    println!("{out}\n");
    if once {
        drop(guard);
        return Ok(());
    }
    println!("Serving until Ctrl-C. Try: curl {rest}/v2/models/mlp");
    let mut guard = guard;
    guard.0.wait()?;
    Ok(())
}
