//! Starting and stopping `oxserve serve` child processes for tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running `oxserve serve` process, stopped (SIGTERM by PID) when dropped.
pub struct Server {
    child: Child,
    pub rest: String,
    pub grpc: String,
}

/// The repository of bundled fixture models.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

impl Server {
    /// Starts `oxserve serve <repository> <extra args>` on ephemeral ports and waits for its
    /// "listening" line (printed once the models are loaded and the ports bound).
    pub fn start(repository: &Path, extra: &[&str]) -> Server {
        Server::start_with_env(repository, extra, &[])
    }

    /// Like [`Server::start`], with extra environment variables for the server process.
    pub fn start_with_env(repository: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_oxserve"));
        command
            .arg("serve")
            .arg(repository)
            .args(["--http-port", "0", "--grpc-port", "0"])
            .args(extra)
            .stdout(Stdio::piped())
            .env("OXSERVE_LOG", "warn");
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn oxserve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = lines.next().expect("oxserve exited before listening").expect("read stdout");
        let addrs = line
            .strip_prefix("oxserve listening ")
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        let mut rest = String::new();
        let mut grpc = String::new();
        for part in addrs.split_whitespace() {
            if let Some(v) = part.strip_prefix("rest=") {
                rest = v.to_owned();
            } else if let Some(v) = part.strip_prefix("grpc=") {
                grpc = v.to_owned();
            }
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, rest, grpc }
    }

    /// Sends SIGTERM and waits; returns whether the process exited successfully.
    pub fn stop(mut self) -> bool {
        self.terminate()
    }

    fn terminate(&mut self) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }

    /// The child's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.terminate();
        }
    }
}

/// A running `oxserve up` on ephemeral ports, stopped (SIGTERM by PID) when dropped.
pub struct Up {
    child: Child,
    pub rest: String,
    pub grpc: String,
    pub api: String,
}

impl Up {
    /// Starts `oxserve up --state-dir STATE [--config CONFIG]` and waits for its line.
    pub fn start(state: &Path, config: Option<&Path>) -> Up {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_oxserve"));
        cmd.arg("up")
            .arg("--state-dir")
            .arg(state)
            .args(["--http-port", "0", "--grpc-port", "0", "--api-port", "0"])
            .env("OXSERVE_LOG", "warn")
            .stdout(Stdio::piped());
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        let mut child = cmd.spawn().expect("spawn oxserve up");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = lines.next().expect("oxserve up exited before its line").expect("read stdout");
        let field = |k: &str| {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(k))
                .unwrap_or_else(|| panic!("no {k} in {line:?}"))
                .to_owned()
        };
        assert!(line.starts_with("oxserve up rest=http://"), "{line}");
        assert!(line.contains(" grpc=127.0.0.1:"), "{line}");
        let (rest, grpc, api) = (field("rest="), field("grpc="), field("api="));
        std::thread::spawn(move || for _ in lines {});
        Up { child, rest, grpc, api }
    }

    /// The process id of `oxserve up`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The api URL of a `serving.kserve.io/v1beta1` InferenceService in `default`.
    pub fn isvc_url(&self, name: &str) -> String {
        self.object_url("serving.kserve.io/v1beta1", "inferenceservices", name)
    }

    /// Waits for `oxserve up` to exit after it was killed from outside.
    pub fn wait_exited(&mut self) {
        self.child.wait().expect("wait for oxserve up");
    }

    /// The api URL of a namespaced object: `GROUP/VERSION`, plural and name.
    pub fn object_url(&self, group_version: &str, plural: &str, name: &str) -> String {
        format!("{}/apis/{group_version}/namespaces/default/{plural}/{name}", self.api)
    }

    /// SIGTERM; whether it exited 0.
    pub fn stop(mut self) -> bool {
        self.terminate()
    }

    fn terminate(&mut self) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.terminate();
        }
    }
}
