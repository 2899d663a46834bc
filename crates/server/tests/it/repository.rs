//! The repository API cannot be made to read outside what the operator put in the model
//! repository: names that are paths (plain or percent-encoded) and settings that name a
//! file outside the model are refused with a clear error, and the server keeps serving.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use oxserve_server::core::{Core, CoreConfig};
use oxserve_server::repository::Repository;
use oxserve_server::rest::{self, RestState};
use serde_json::Value;
use tower::ServiceExt;

use crate::support::fixtures;

const BODY: &str = r#"{"inputs":[{"name":"input-0","shape":[1,10],"datatype":"FP32","data":[0.5,1.5,-2.0,3.25,0.0,1.0,2.0,-1.0,0.25,4.0]}]}"#;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// `tmp/repo/` with one real model (`good`), `linked`, a symlink the operator made to a model
/// directory beside the repository, and `climbs`, whose settings name a background file
/// outside it.
fn repo_with_escapes(tmp: &Path) -> std::path::PathBuf {
    let model = fixtures().join("models/xgb-binary");
    let repo = tmp.join("repo");
    copy_dir(&model, &repo.join("good"));
    copy_dir(&model, &tmp.join("secret"));
    std::os::unix::fs::symlink(tmp.join("secret"), repo.join("linked")).unwrap();
    copy_dir(&model, &repo.join("climbs"));
    std::fs::write(
        repo.join("climbs/model-settings.json"),
        br#"{"explainer":{"type":"kernelshap","background":{"file":"../../secret/model.json"}}}"#,
    )
    .unwrap();
    // A symlink that stays inside is fine.
    std::os::unix::fs::symlink(repo.join("good"), repo.join("alias")).unwrap();
    repo
}

async fn call(router: &axum::Router, method: &str, path: &str, body: &str) -> (u16, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn load(router: &axum::Router, name: &str) -> (u16, Value) {
    call(router, "POST", &format!("/v2/repository/models/{name}/load"), "").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_by_name_cannot_leave_the_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo_with_escapes(tmp.path());
    let core = Arc::new(Core::new(CoreConfig::default(), Some(Repository::open(&repo).unwrap())));
    let router = rest::router(RestState::new(core));

    assert_eq!(load(&router, "good").await.0, 200);
    assert_eq!(load(&router, "alias").await.0, 200, "a symlink inside is followed");
    assert_eq!(load(&router, "linked").await.0, 200, "a model directory the operator linked in");

    // Percent-encoded separators and dots reach the handler decoded.
    for (name, want) in [
        ("..", 400),
        ("%2e%2e", 400),
        ("%2E%2E%2Fsecret", 400),
        ("..%2Fsecret", 400),
        ("%2Ftmp%2Fsecret", 400),
        ("good%2F..%2F..%2Fsecret", 400),
        ("climbs", 400),
        ("secret", 404),
    ] {
        let (status, body) = load(&router, name).await;
        assert_eq!(status, want, "{name}: {body}");
        let error = body["error"].as_str().unwrap_or_else(|| panic!("{name}: {body}"));
        match want {
            400 if name == "climbs" => {
                assert!(error.contains("outside the model directory"), "{name}: {error}")
            }
            400 => assert!(error.contains("a model name cannot be"), "{name}: {error}"),
            _ => assert!(error.contains("is not in the repository"), "{name}: {error}"),
        }
    }

    // The server keeps serving the model it has, and lists nothing from outside.
    let (status, body) = call(&router, "POST", "/v2/models/good/infer", BODY).await;
    assert_eq!(status, 200, "{body}");
    let (status, index) = call(&router, "POST", "/v2/repository/index", "{}").await;
    assert_eq!(status, 200);
    assert!(!index.to_string().contains("secret"), "{index}");
}
