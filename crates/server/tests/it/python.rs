//! KernelSHAP against the `shap` package: the Python script explains the same served model
//! with `shap.KernelExplainer` over the same background, calling the server's `/infer`, and
//! compares with the server's `/explain`. Needs the Python test venv (`cargo xtask test`
//! creates it and passes it as `OXSERVE_TEST_PYTHON`).

use std::process::Command;

use crate::support;

#[test]
#[ignore = "needs the Python test venv (cargo xtask test runs it)"]
fn kernelshap_agrees_with_shap_kernel_explainer() {
    let python = std::env::var("OXSERVE_TEST_PYTHON")
        .expect("OXSERVE_TEST_PYTHON must name a python with shap (cargo xtask test sets it)");
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let repo = support::repository();
    let (http, stop) = runtime.block_on(async {
        let (core, _) = support::core(repo.path()).await;
        let (http, _, stop) = support::start(core).await;
        (http, stop)
    });
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/kernelshap_test.py");
    let status = Command::new(python)
        .arg(script)
        .args(["--url", &format!("http://{http}"), "--model", "mlp"])
        .arg("--background")
        .arg(repo.path().join("mlp/background.json"))
        .status()
        .expect("run python");
    let _ = stop.send(());
    assert!(status.success(), "the shap comparison failed");
}
