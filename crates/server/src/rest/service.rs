//! The REST frontend as the one tower service the HTTP server calls: `POST` on an inference
//! route is recognised here and handled directly, every other request goes through the
//! axum [`Router`].
//!
//! Inference is nearly all of the traffic, and the generic router costs it more than the
//! rest of the framework does (a route tree walk, the path parameters stored in the request's
//! extensions and deserialized again, the handler's future boxed). The inference routes are
//! two fixed patterns, so they are matched with a few string operations instead. Only
//! paths whose answer cannot differ take this way: both segments non-empty and free of `%`
//! (the router percent-decodes path parameters); anything else, including every other
//! method on these paths, is left to the router, which stays the single definition of the
//! API and answers exactly as before.

use std::convert::Infallible;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::Request;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use tower::Service;

use super::{RestState, infer_model, router};

/// The REST frontend: inference routes first, the [`Router`] for the rest.
#[derive(Clone)]
pub struct RestService {
    router: Router,
    state: RestState,
}

/// The REST frontend over `state` (what `serve` runs; [`router`] alone answers the same).
pub fn service(state: RestState) -> RestService {
    RestService { router: router(state.clone()), state }
}

type BoxedResponse = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl Service<Request> for RestService {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxedResponse;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The router is always ready, and so are the inference routes.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> BoxedResponse {
        let route = match *request.method() {
            Method::POST => InferRoute::parse(request.uri().path()),
            _ => None,
        };
        let Some(route) = route else {
            return Box::pin(self.router.call(request));
        };
        let state = self.state.clone();
        let (parts, body) = request.into_parts();
        Box::pin(async move {
            let path = parts.uri.path();
            let (model, version) = route.segments(path);
            let answer = infer_model(&state, model, version, &parts.headers, body).await;
            Ok(answer.into_response())
        })
    }
}

/// Where the model (and version) segments of an inference path are.
#[derive(Debug, Clone, PartialEq, Eq)]
struct InferRoute {
    model: Range<usize>,
    version: Option<Range<usize>>,
}

const PREFIX: &str = "/v2/models/";
const SUFFIX: &str = "/infer";
const VERSIONS: &str = "/versions/";

impl InferRoute {
    /// `/v2/models/{model}/infer` or `/v2/models/{model}/versions/{version}/infer`, with
    /// segments the router would pass on unchanged; `None` for every other path.
    fn parse(path: &str) -> Option<InferRoute> {
        let inner = path.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
        let start = PREFIX.len();
        let (model, version) = match inner.find('/') {
            None => (start..start + inner.len(), None),
            Some(slash) => {
                let rest = inner.get(slash..)?.strip_prefix(VERSIONS)?;
                let v = start + slash + VERSIONS.len();
                (start..start + slash, Some(v..v + rest.len()))
            }
        };
        let plain = |r: &Range<usize>| {
            path.get(r.clone())
                .is_some_and(|s| !s.is_empty() && !s.bytes().any(|b| b == b'/' || b == b'%'))
        };
        if !plain(&model) || !version.as_ref().is_none_or(plain) {
            return None;
        }
        Some(InferRoute { model, version })
    }

    /// The model and version names in `path` (the path this route was parsed from).
    fn segments<'p>(&self, path: &'p str) -> (&'p str, Option<&'p str>) {
        let model = path.get(self.model.clone()).unwrap_or_default();
        let version = self.version.clone().and_then(|v| path.get(v));
        (model, version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(path: &str) -> Option<(String, Option<String>)> {
        let route = InferRoute::parse(path)?;
        let (m, v) = route.segments(path);
        Some((m.to_owned(), v.map(str::to_owned)))
    }

    #[test]
    fn matches_both_inference_routes() {
        assert_eq!(names("/v2/models/iris/infer"), Some(("iris".into(), None)));
        assert_eq!(
            names("/v2/models/iris-lr/versions/12/infer"),
            Some(("iris-lr".into(), Some("12".into())))
        );
        // Names that look like the fixed parts are still names.
        assert_eq!(names("/v2/models/versions/infer"), Some(("versions".into(), None)));
        assert_eq!(names("/v2/models/infer/infer"), Some(("infer".into(), None)));
        assert_eq!(
            names("/v2/models/m/versions/infer/infer"),
            Some(("m".into(), Some("infer".into())))
        );
    }

    #[test]
    fn leaves_every_other_path_to_the_router() {
        for path in [
            "/v2/models/infer",
            "/v2/models//infer",
            "/v2/models/m/versions//infer",
            "/v2/models/m/infer/",
            "/v2/models/m/versions/1/2/infer",
            "/v2/models/m/x/infer",
            "/v2/models/m/versions/1",
            "/v2/models/m%2Fx/infer",
            "/v2/models/m/versions/%31/infer",
            "/v2/models/m/ready",
            "/v2//models/m/infer",
            "/v1/models/m:predict",
            "",
            "/",
        ] {
            assert_eq!(InferRoute::parse(path), None, "{path}");
        }
    }

    /// The fast path and the router answer every request alike: status, content type and
    /// body, on inference routes, near-misses the fast path leaves to the router, and errors.
    #[tokio::test]
    async fn answers_exactly_as_the_router_does() {
        use axum::body::Body;
        use http_body_util::BodyExt;
        use tower::ServiceExt;

        let repo = tempfile::tempdir().unwrap();
        let model = repo.path().join("xgb-binary");
        std::fs::create_dir(&model).unwrap();
        let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/models/xgb-binary");
        std::fs::copy(format!("{fixture}/model.json"), model.join("model.json")).unwrap();
        let repository = crate::repository::Repository::open(repo.path()).unwrap();
        let core =
            std::sync::Arc::new(crate::core::Core::new(Default::default(), Some(repository)));
        core.load_all().await;
        let version = core.version("xgb-binary", None).unwrap().version.clone();
        let state = RestState { max_body_bytes: 4096, ..RestState::new(core) };

        let row = "[0.5,1.5,-2.0,3.25,0.0,1.0,2.0,-1.0,0.25,4.0]";
        let good = format!(
            r#"{{"id":"r1","inputs":[{{"name":"input-0","shape":[1,10],"datatype":"FP32","data":{row}}}]}}"#
        );
        let cases: Vec<(&str, String, String)> = vec![
            ("POST", "/v2/models/xgb-binary/infer".into(), good.clone()),
            ("POST", format!("/v2/models/xgb-binary/versions/{version}/infer"), good.clone()),
            ("POST", "/v2/models/xgb-binary/versions/999/infer".into(), good.clone()),
            ("POST", "/v2/models/xgb%2Dbinary/infer".into(), good.clone()),
            ("POST", "/v2/models/nope/infer".into(), good.clone()),
            ("POST", "/v2/models//infer".into(), good.clone()),
            ("POST", "/v2/models/xgb-binary/infer/".into(), good.clone()),
            ("POST", "/v2/models/xgb-binary/infer".into(), "{not json".into()),
            ("POST", "/v2/models/xgb-binary/infer".into(), "x".repeat(5000)),
            ("GET", "/v2/models/xgb-binary/infer".into(), String::new()),
            ("PUT", "/v2/models/xgb-binary/infer".into(), good.clone()),
            ("GET", "/v2/models/xgb-binary".into(), String::new()),
        ];
        for (method, path, body) in cases {
            let request = || {
                Request::builder()
                    .method(method)
                    .uri(path.as_str())
                    .header("content-type", "application/json")
                    .body(Body::from(body.clone()))
                    .unwrap()
            };
            let by_router = router(state.clone()).oneshot(request()).await.unwrap();
            let by_service = service(state.clone()).oneshot(request()).await.unwrap();
            let what = format!("{method} {path}");
            assert_eq!(by_service.status(), by_router.status(), "{what}");
            assert_eq!(
                by_service.headers().get("content-type"),
                by_router.headers().get("content-type"),
                "{what}"
            );
            let a = by_router.into_body().collect().await.unwrap().to_bytes();
            let b = by_service.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(a, b, "{what}");
            assert!(!a.is_empty() || method != "POST", "{what}: an answer with a body");
        }
    }
}
