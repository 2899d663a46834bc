//! The platform under test: a local `oxserve up` this process starts (and stops by PID), or
//! an already running one given by its router and api URLs; its api (PUT of manifests,
//! revisions), the router's `/metrics`, the poller that records a [`Tick`] per interval, and
//! for local targets the replica processes (PIDs, RSS, ports from their logs).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use oxserve_loadtest::prom;
use oxserve_loadtest::record::{Recorder, RevisionTick, Tick};
use oxserve_loadtest::scenario::isvc_path;
use serde_json::Value;

/// A platform to drive.
pub struct Platform {
    /// The router's REST base URL.
    pub rest: String,
    /// The router's gRPC address (host:port).
    pub grpc: Option<String>,
    pub api: String,
    pub http: reqwest::Client,
    local: Option<Local>,
}

struct Local {
    child: Child,
    state: PathBuf,
    _dir: tempdir::Dir,
}

mod tempdir {
    //! A temporary directory removed on drop.
    use std::path::{Path, PathBuf};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new(prefix: &str) -> std::io::Result<Dir> {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let path =
                std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
            std::fs::create_dir_all(&path)?;
            Ok(Dir(path))
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Platform {
    /// Starts `oxserve up` on a fresh state dir with `platform_yaml`.
    pub fn start_local(oxserve: &Path, platform_yaml: &str) -> Result<Platform> {
        let dir = tempdir::Dir::new("oxserve-loadtest")?;
        let config = dir.path().join("platform.yaml");
        std::fs::write(&config, platform_yaml)?;
        let state = dir.path().join("state");
        let mut cmd = Command::new(oxserve);
        die_with_parent(&mut cmd);
        let mut child = cmd
            .arg("up")
            .arg("--state-dir")
            .arg(&state)
            .args(["--http-port", "0", "--grpc-port", "0", "--api-port", "0"])
            .arg("--config")
            .arg(&config)
            .env("OXSERVE_LOG", std::env::var("OXSERVE_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {} up", oxserve.display()))?;
        let stdout = child.stdout.take().context("stdout of oxserve up")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = match lines.next() {
            Some(Ok(line)) => line,
            _ => {
                let status = child.wait()?;
                bail!("oxserve up exited ({status}) before printing its ports");
            }
        };
        std::thread::spawn(move || for _ in lines {});
        let field =
            |k: &str| line.split_whitespace().find_map(|f| f.strip_prefix(k)).map(str::to_owned);
        let (Some(rest), Some(grpc), Some(api)) = (field("rest="), field("grpc="), field("api="))
        else {
            bail!("unexpected first line of oxserve up: {line:?}");
        };
        eprintln!("loadtest: oxserve up (pid {}) {line}", child.id());
        Ok(Platform {
            rest,
            grpc: Some(grpc),
            api,
            http: client()?,
            local: Some(Local { child, state, _dir: dir }),
        })
    }

    /// A platform that is already running.
    pub fn remote(rest: String, grpc: Option<String>, api: String) -> Result<Platform> {
        Ok(Platform { rest, grpc, api, http: client()?, local: None })
    }

    pub fn is_local(&self) -> bool {
        self.local.is_some()
    }

    /// PUTs a manifest at `path` (an api path); fails with the api's error.
    pub async fn put(&self, path: &str, yaml: &str) -> Result<()> {
        let r = self.http.put(format!("{}{path}", self.api)).body(yaml.to_owned()).send().await?;
        let status = r.status();
        if !status.is_success() {
            bail!("PUT {path}: {status}: {}", r.text().await.unwrap_or_default());
        }
        Ok(())
    }

    /// The revisions of a service as the api reports them.
    pub async fn revisions(&self, service: &str) -> Result<Vec<RevisionTick>> {
        fetch_revisions(&self.http, &self.api, service).await
    }

    /// Polls `service`'s revisions until `cond` holds, for `within` at most.
    pub async fn wait_for(
        &self,
        service: &str,
        what: &str,
        within: Duration,
        cond: impl Fn(&[RevisionTick]) -> bool,
    ) -> Result<Vec<RevisionTick>> {
        let deadline = Instant::now() + within;
        loop {
            let revs = self.revisions(service).await.unwrap_or_default();
            if cond(&revs) {
                return Ok(revs);
            }
            if Instant::now() > deadline {
                bail!("{service}: {what} not reached within {within:?}; revisions: {revs:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Records a tick for `services` every `every` until `stop` turns true.
    pub fn poll(
        &self,
        services: Vec<String>,
        every: Duration,
        recorder: Recorder,
    ) -> (tokio::sync::watch::Sender<bool>, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        let me =
            PollTarget { rest: self.rest.clone(), api: self.api.clone(), http: self.http.clone() };
        let task = tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = interval.tick() => {}
                    _ = rx.changed() => return,
                }
                let mut revisions = Vec::new();
                for s in &services {
                    if let Ok(revs) = fetch_revisions(&me.http, &me.api, s).await {
                        revisions.extend(revs);
                    }
                }
                let queue_depth = match me.http.get(format!("{}/metrics", me.rest)).send().await {
                    Ok(r) => match r.text().await {
                        Ok(text) => {
                            prom::sum(&prom::parse(&text), "oxserve_router_queue_depth", &[]) as i64
                        }
                        Err(_) => 0,
                    },
                    Err(_) => 0,
                };
                // Stamped when the answers are in: under a burst the router answers late.
                let t_ms = recorder.now_ms();
                recorder.tick(Tick {
                    t_ms,
                    revisions,
                    in_flight: recorder.in_flight_now(),
                    queue_depth,
                });
            }
        });
        (tx, task)
    }

    /// The PIDs of the local replicas (children of `oxserve up` running `serve`).
    pub fn replica_pids(&self) -> Vec<u32> {
        let Some(local) = &self.local else { return Vec::new() };
        let parent = local.child.id().to_string();
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
            let Some((_, rest)) = stat.rsplit_once(')') else { continue };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            if fields.first() == Some(&"Z") || fields.get(1) != Some(&parent.as_str()) {
                continue;
            }
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if cmdline.split(|b| *b == 0).any(|a| a == b"serve") {
                out.push(pid);
            }
        }
        out
    }

    /// The summed RSS of the local replicas, bytes.
    pub fn replicas_rss(&self) -> Option<u64> {
        self.local.as_ref()?;
        let mut total = 0;
        for pid in self.replica_pids() {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let kb = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0);
            total += kb * 1024;
        }
        Some(total)
    }

    /// The REST URLs of a revision's local replicas, from the `oxserve listening rest=…`
    /// line of their logs (`STATE/logs/REVISION/N.log`).
    pub fn replica_urls(&self, revision: &str) -> Vec<String> {
        let Some(local) = &self.local else { return Vec::new() };
        let dir = local.state.join("logs").join(revision);
        let mut urls = Vec::new();
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            // The last start in the log is the live one.
            if let Some(url) = text
                .lines()
                .filter_map(|l| l.split_whitespace().find_map(|f| f.strip_prefix("rest=")))
                .next_back()
            {
                urls.push(url.to_owned());
            }
        }
        urls
    }

    /// Stops a local platform (SIGTERM, then SIGKILL after 20 s), by PID.
    pub fn stop(&mut self) {
        if let Some(mut local) = self.local.take() {
            let pid = local.child.id();
            signal(pid, "-TERM");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = local.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            signal(pid, "-KILL");
            let _ = local.child.wait();
        }
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.stop();
    }
}

struct PollTarget {
    rest: String,
    api: String,
    http: reqwest::Client,
}

/// The revisions of `service` from the api at `api`.
async fn fetch_revisions(
    http: &reqwest::Client,
    api: &str,
    service: &str,
) -> Result<Vec<RevisionTick>> {
    let url = format!("{api}{}/revisions", isvc_path("default", service));
    let r = http.get(&url).send().await?;
    if !r.status().is_success() {
        bail!("GET {url}: {}", r.status());
    }
    let revs: Vec<Value> = r.json().await?;
    Ok(revs
        .iter()
        .map(|v| RevisionTick {
            name: v["name"].as_str().unwrap_or_default().to_owned(),
            ready: v["readyReplicas"].as_u64().unwrap_or(0) as u32,
            desired: v["desiredReplicas"].as_u64().unwrap_or(0) as u32,
            traffic: v["traffic"].as_u64().unwrap_or(0) as u32,
            kpa_stable: v.pointer("/autoscaler/stableValue").and_then(Value::as_f64),
            kpa_panic: v.pointer("/autoscaler/panicValue").and_then(Value::as_f64),
        })
        .collect())
}

/// Makes the child get SIGTERM when this process dies, however it dies (a signal, a panic
/// that aborts, `kill -9`), so an `oxserve up` (and through its own `PR_SET_PDEATHSIG`, its
/// replicas) never outlives the driver. The signal follows the thread that forks: local
/// platforms are started from the main thread (the runtime's `block_on`), which lives as long
/// as the process.
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (prctl, getppid, _exit); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The driver may have died before prctl took effect.
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// Sends `sig` (`-TERM`, `-KILL`) to one process.
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
}

fn client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the api client")
}
