//! Drives the server with NVIDIA's Python `tritonclient` (HTTP JSON, HTTP binary data and
//! gRPC) against the fixture models. Needs the Python client venv that `cargo xtask test`
//! creates and passes as `OXSERVE_TEST_PYTHON`.

use std::process::Command;

use crate::support::{Server, fixtures};

#[test]
#[ignore = "needs the tritonclient venv; run by cargo xtask test"]
fn tritonclient_http_binary_and_grpc() {
    let python = std::env::var("OXSERVE_TEST_PYTHON").expect(
        "OXSERVE_TEST_PYTHON must name a python with tritonclient (cargo xtask test sets it)",
    );
    let server = Server::start(&fixtures().join("models"), &[]);
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/tritonclient_test.py");
    let status = Command::new(python)
        .arg(script)
        .args(["--http", server.rest.trim_start_matches("http://"), "--grpc", &server.grpc])
        .arg("--fixtures")
        .arg(fixtures())
        .status()
        .expect("run python");
    assert!(status.success(), "tritonclient checks failed");
    assert!(server.stop(), "server did not shut down cleanly");
}
