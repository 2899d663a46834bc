//! `cargo xtask demo`: builds `oxserve` and walks through the platform on this machine with
//! the bundled models (`fixtures/models`): `oxserve up` on a temporary state dir and
//! ephemeral ports, a v1beta1 InferenceService of the scikit-learn iris model (ONNX) applied
//! with `oxserve apply --wait`, inferences through the router over REST (V2 and V1, by Host
//! header) and gRPC, a second version rolled out as a 10 % canary with the split counted
//! from 200 requests by their `x-oxserve-revision`, the promotion, the scale to zero and the
//! cold start's first answer with its latency. Every step prints the command a user would
//! type to repeat it. `up` is stopped by PID at the end (or on Ctrl-C without `--once`),
//! and it is started with a parent-death signal, so a demo killed by a signal of its own
//! (SIGTERM, SIGKILL) takes `up` and its replicas down with it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use xshell::{Shell, cmd};

#[derive(clap::Args)]
pub struct Args {
    /// The router's REST port (0: a free one).
    #[arg(long, default_value_t = 0)]
    http_port: u16,
    /// The router's gRPC port (0: a free one).
    #[arg(long, default_value_t = 0)]
    grpc_port: u16,
    /// Exit after the walkthrough instead of leaving the platform up until Ctrl-C.
    #[arg(long)]
    once: bool,
    /// Build and run the debug binary (faster to build, slower to serve).
    #[arg(long)]
    debug: bool,
}

/// Stops `oxserve up` (SIGTERM by PID, which stops its replicas) when the demo ends, however
/// it ends, and removes the temporary state dir.
struct UpGuard {
    child: Child,
    dir: PathBuf,
}

impl Drop for UpGuard {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// platform.yaml with short autoscaler windows, so the scale to zero comes within seconds.
const PLATFORM_YAML: &str = "autoscaler:\n  stable-window: 6s\n  scale-to-zero-grace-period: 1s\n";

const V2_REQUEST: &str = r#"{"inputs":[{"name":"float_input","shape":[2,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2,6.7,3.0,5.2,2.3]}]}"#;
const V1_REQUEST: &str = r#"{"instances":[[5.1,3.5,1.4,0.2],[6.7,3.0,5.2,2.3]]}"#;
const HOST: &str = "iris.default.example.com";

fn manifest(model_dir: &Path, canary: Option<u32>) -> String {
    let canary = canary.map(|p| format!("    canaryTrafficPercent: {p}\n")).unwrap_or_default();
    format!(
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: iris\nspec:\n  predictor:\n    minReplicas: 0\n{canary}    model:\n      modelFormat:\n        name: onnx\n      storageUri: file://{}\n",
        model_dir.display()
    )
}

pub fn run(sh: &Shell, args: Args) -> Result<()> {
    let Args { http_port, grpc_port, once, debug } = args;
    let lib = crate::onnxruntime::ensure(sh)?;
    let root = crate::project_root();
    let oxserve = if debug {
        cmd!(sh, "cargo build -p oxserve-cli").run().context("building oxserve")?;
        crate::target_dir().join("debug/oxserve")
    } else {
        cmd!(sh, "cargo build --release -p oxserve-cli").run().context("building oxserve")?;
        crate::target_dir().join("release/oxserve")
    };
    let dir = std::env::temp_dir().join(format!("oxserve-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let state = dir.join("state");
    let config = dir.join("platform.yaml");
    std::fs::write(&config, PLATFORM_YAML)?;
    let models = root.join("fixtures/models");
    let v1 = dir.join("iris.yaml");
    let v2 = dir.join("iris-v2.yaml");
    std::fs::write(&v1, manifest(&models.join("iris-lr"), None))?;
    std::fs::write(&v2, manifest(&models.join("iris-rf"), Some(10)))?;
    let promoted = dir.join("iris-v2-promoted.yaml");
    std::fs::write(&promoted, manifest(&models.join("iris-rf"), None))?;

    step("The platform on this machine", &format!("cat {}", config.display()));
    print!("{PLATFORM_YAML}");
    let (http_port, grpc_port) = (http_port.to_string(), grpc_port.to_string());
    println!(
        "$ oxserve up --state-dir {} --config {} --http-port {http_port} --grpc-port {grpc_port} --api-port 0 &",
        state.display(),
        config.display()
    );
    let mut up = Command::new(&oxserve);
    up.arg("up")
        .arg("--state-dir")
        .arg(&state)
        .arg("--config")
        .arg(&config)
        .args(["--http-port", &http_port, "--grpc-port", &grpc_port, "--api-port", "0"])
        .env("OXSERVE_ONNXRUNTIME_LIB", &lib)
        .env("OXSERVE_LOG", "warn")
        .stdout(Stdio::piped());
    // SAFETY: `prctl` is async-signal-safe and the closure touches nothing else.
    unsafe {
        use std::os::unix::process::CommandExt;
        up.pre_exec(|| {
            // `up` gets SIGTERM (and stops its replicas) when this process dies.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let mut child = up.spawn().context("starting oxserve up")?;
    let stdout = child.stdout.take().context("up's stdout")?;
    let guard = UpGuard { child, dir: dir.clone() };
    let mut lines = BufReader::new(stdout).lines();
    let line = match lines.next() {
        Some(Ok(l)) => l,
        _ => bail!("oxserve up did not start (see its log above)"),
    };
    println!("{line}");
    std::thread::spawn(move || for _ in lines {});
    let field = |k: &str| -> Result<String> {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(k))
            .map(str::to_owned)
            .with_context(|| format!("no {k} in {line:?}"))
    };
    let rest = field("rest=")?;
    let grpc = field("grpc=")?;
    let api = field("api=")?;
    let rest_addr = rest.trim_start_matches("http://").to_owned();
    let api_addr = api.trim_start_matches("http://").to_owned();
    let ox = |args: &[&str]| -> Result<(bool, String)> {
        println!("$ oxserve {}", args.join(" "));
        let out = Command::new(&oxserve)
            .args(args)
            .arg("--state-dir")
            .arg(&state)
            .output()
            .context("running oxserve")?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        print!("{text}");
        Ok((out.status.success(), text))
    };
    println!(
        "(`oxserve` is {}; the commands below run with `--state-dir {}` appended, or after `export OXSERVE_STATE_DIR={1}`)",
        oxserve.display(),
        state.display()
    );

    step(
        "An InferenceService: scikit-learn's iris classifier as ONNX",
        &format!("cat {}", v1.display()),
    );
    print!("{}", std::fs::read_to_string(&v1)?);
    let started = Instant::now();
    let (ok, _) = ox(&["apply", "-f", &v1.to_string_lossy(), "--wait"])?;
    if !ok {
        bail!("iris did not become ready");
    }
    println!("(applied to ready in {:.1}s)", started.elapsed().as_secs_f64());
    ox(&["get", "isvc"])?;

    step("Inference through the router, by Host header", "");
    let url = format!("{rest}/v2/models/iris/infer");
    println!("$ curl -si -H 'Host: {HOST}' {url} -d '{V2_REQUEST}'");
    let r = post(&rest_addr, HOST, "/v2/models/iris/infer", V2_REQUEST)?;
    show(&r);
    let url = format!("{rest}/v1/models/iris:predict");
    println!("$ curl -si -H 'Host: {HOST}' {url} -d '{V1_REQUEST}'");
    let r = post(&rest_addr, HOST, "/v1/models/iris:predict", V1_REQUEST)?;
    show(&r);
    println!("gRPC picks the service by the model name in the request (or the :authority):");
    let data = V2_REQUEST;
    let out = cmd!(sh, "{oxserve} infer iris --grpc {grpc} --data {data}").quiet().read()?;
    println!("$ oxserve infer iris --grpc {grpc} --data '{V2_REQUEST}'\n{out}");

    step("A second version as a 10 % canary", &format!("cat {}", v2.display()));
    print!("{}", std::fs::read_to_string(&v2)?);
    let (ok, _) = ox(&["apply", "-f", &v2.to_string_lossy(), "--wait"])?;
    if !ok {
        bail!("the canary did not become ready");
    }
    ox(&["get", "isvc"])?;
    println!(
        "$ for i in $(seq 200); do curl -s -o /dev/null -D - -H 'Host: {HOST}' {rest}/v2/models/iris/infer -d '{V2_REQUEST}' | grep -i x-oxserve-revision; done | sort | uniq -c"
    );
    let counts = split(&rest_addr, 200)?;
    for (revision, n) in &counts {
        println!("{n:>7} x-oxserve-revision: {revision}   ({:.1} %)", *n as f64 / 2.0);
    }
    let canary = counts.get("iris-predictor-00002").copied().unwrap_or(0);
    println!("canary share {:.1} % of 200 requests (set: 10 %)", canary as f64 / 2.0);

    step(
        "Promote: drop canaryTrafficPercent",
        &format!("diff {} {}", v2.display(), promoted.display()),
    );
    println!("<     canaryTrafficPercent: 10");
    let (ok, _) = ox(&["apply", "-f", &promoted.to_string_lossy(), "--wait"])?;
    if !ok {
        bail!("the promotion did not become ready");
    }
    ox(&["get", "isvc"])?;
    let counts = split(&rest_addr, 20)?;
    println!("20 requests: {counts:?}");

    step("Scale to zero (minReplicas: 0; 6 s stable window, 1 s grace)", "");
    let idle = Instant::now();
    let deadline = idle + Duration::from_secs(90);
    loop {
        let body = get(
            &api_addr,
            "/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices/iris/revisions",
        )?;
        let revs: Vec<Value> = serde_json::from_str(&body).context("revisions")?;
        if revs.iter().all(|r| r["readyReplicas"] == 0 && r["desiredReplicas"] == 0) {
            break;
        }
        if Instant::now() > deadline {
            bail!("iris did not scale to zero within 90 s: {body}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    println!("(no replica after {:.1}s idle)", idle.elapsed().as_secs_f64());
    ox(&["get", "revisions", "iris"])?;

    step("The cold start: the activator holds the request while a replica starts", "");
    println!("$ time curl -si -H 'Host: {HOST}' {rest}/v2/models/iris/infer -d '{V2_REQUEST}'");
    let t = Instant::now();
    let r = post(&rest_addr, HOST, "/v2/models/iris/infer", V2_REQUEST)?;
    let cold = t.elapsed();
    show(&r);
    println!("first answer from zero in {:.0} ms", cold.as_secs_f64() * 1000.0);
    let t = Instant::now();
    post(&rest_addr, HOST, "/v2/models/iris/infer", V2_REQUEST)?;
    println!("the next one in {:.1} ms", t.elapsed().as_secs_f64() * 1000.0);

    println!("\nStatus page: {api}/   docs: docs/platform.md");
    if once {
        drop(guard);
        return Ok(());
    }
    println!("The platform stays up until Ctrl-C (state in {}).", state.display());
    let mut guard = guard;
    guard.child.wait()?;
    Ok(())
}

fn step(title: &str, command: &str) {
    println!("\n== {title} ==");
    if !command.is_empty() {
        println!("$ {command}");
    }
}

/// One HTTP/1.1 response: status line, headers (lowercase names), body.
struct Response {
    status: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

fn show(r: &Response) {
    println!("{}", r.status);
    if let Some(rev) = r.header("x-oxserve-revision") {
        println!("x-oxserve-revision: {rev}");
    }
    println!("\n{}", r.body);
}

/// A request on a fresh connection (`Connection: close`): enough for a demo, and no HTTP
/// client crate in xtask.
fn request(addr: &str, method: &str, host: &str, path: &str, body: &str) -> Result<Response> {
    let mut s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").context("a malformed HTTP response")?;
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect::<Vec<_>>();
    let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v == "chunked");
    let body = if chunked { dechunk(body) } else { body.to_owned() };
    Ok(Response { status, headers, body })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn post(addr: &str, host: &str, path: &str, body: &str) -> Result<Response> {
    let r = request(addr, "POST", host, path, body)?;
    if !r.status.contains(" 200 ") {
        bail!("POST {path}: {} {}", r.status, r.body);
    }
    Ok(r)
}

fn get(addr: &str, path: &str) -> Result<String> {
    let r = request(addr, "GET", addr, path, "")?;
    if !r.status.contains(" 200 ") {
        bail!("GET {path}: {} {}", r.status, r.body);
    }
    Ok(r.body)
}

/// Sends `n` requests by Host; counts the answering revisions.
fn split(rest_addr: &str, n: usize) -> Result<BTreeMap<String, usize>> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let r = post(rest_addr, HOST, "/v2/models/iris/infer", V2_REQUEST)?;
        let revision = r.header("x-oxserve-revision").unwrap_or("(none)").to_owned();
        *counts.entry(revision).or_default() += 1;
    }
    Ok(counts)
}
