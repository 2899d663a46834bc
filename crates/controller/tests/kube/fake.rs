//! A fake Kubernetes API server behind kube's `Client`, on a `tower_test::mock::pair`: an
//! in-memory object store keyed by path that answers GET, LIST (with `labelSelector`),
//! POST, PUT (with the `resourceVersion` precondition), server-side apply and merge PATCH
//! (status too) and DELETE like an API server does, records every request for the test to
//! verify the scenario, and fails the requests a test asks it to fail.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    /// The path without the query.
    pub path: String,
    pub query: String,
    pub body: Value,
}

impl Seen {
    /// `"PATCH /api/v1/…"`.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// A failure to inject: the next `times` requests with `method` whose path ends with
/// `path_suffix` get `code`.
struct Fault {
    method: Method,
    path_suffix: String,
    code: u16,
    times: usize,
}

#[derive(Default)]
struct Inner {
    objects: BTreeMap<String, Value>,
    seen: Vec<Seen>,
    faults: Vec<Fault>,
    version: u64,
}

/// The fake API server's state, shared with the test.
#[derive(Clone, Default)]
pub struct ApiServer {
    inner: Arc<Mutex<Inner>>,
}

impl ApiServer {
    /// A client talking to a new fake server (served by a spawned task).
    pub fn start() -> (Client, ApiServer) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let server = ApiServer::default();
        let serving = server.clone();
        tokio::spawn(async move {
            while let Some((request, reply)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let bytes = body.collect_bytes().await.unwrap_or_default();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let (code, answer) = serving.answer(
                    parts.method,
                    parts.uri.path(),
                    parts.uri.query().unwrap_or_default(),
                    body,
                );
                let response = Response::builder()
                    .status(code)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&answer).expect("json")))
                    .expect("a response");
                reply.send_response(response);
            }
        });
        (Client::new(service, "default"), server)
    }

    /// Stores `object` at `path` (e.g. a pod the test plays the kubelet for).
    pub fn put(&self, path: &str, mut object: Value) {
        let mut inner = self.inner.lock().unwrap();
        inner.version += 1;
        object["metadata"]["resourceVersion"] = json!(inner.version.to_string());
        inner.objects.insert(path.to_owned(), object);
    }

    /// The object at `path`, if any.
    pub fn get(&self, path: &str) -> Option<Value> {
        self.inner.lock().unwrap().objects.get(path).cloned()
    }

    /// The requests so far, and forgets them.
    pub fn take_seen(&self) -> Vec<Seen> {
        std::mem::take(&mut self.inner.lock().unwrap().seen)
    }

    /// Answers the next `times` `method` requests whose path ends with `path_suffix` with
    /// status `code`.
    pub fn fail(&self, method: Method, path_suffix: &str, code: u16, times: usize) {
        self.inner.lock().unwrap().faults.push(Fault {
            method,
            path_suffix: path_suffix.to_owned(),
            code,
            times,
        });
    }

    fn answer(&self, method: Method, path: &str, query: &str, body: Value) -> (StatusCode, Value) {
        let mut inner = self.inner.lock().unwrap();
        inner.seen.push(Seen {
            method: method.clone(),
            path: path.to_owned(),
            query: query.to_owned(),
            body: body.clone(),
        });
        if let Some(f) = inner
            .faults
            .iter_mut()
            .find(|f| f.times > 0 && f.method == method && path.ends_with(&f.path_suffix))
        {
            f.times -= 1;
            let code = f.code;
            return status(code, "injected failure");
        }
        let (object_path, subresource) = match path.strip_suffix("/status") {
            Some(p) => (p.to_owned(), Some("status")),
            None => match path.strip_suffix("/scale") {
                Some(p) => (p.to_owned(), Some("scale")),
                None => (path.to_owned(), None),
            },
        };
        match method {
            Method::GET if inner.objects.contains_key(&object_path) => {
                (StatusCode::OK, inner.objects[&object_path].clone())
            }
            Method::GET if is_collection(path) => (StatusCode::OK, list(&inner, path, query)),
            Method::GET => status(404, "not found"),
            Method::POST => {
                let name = body.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
                let key = format!("{path}/{name}");
                if inner.objects.contains_key(&key) {
                    return status(409, "already exists");
                }
                (StatusCode::CREATED, store(&mut inner, key, body))
            }
            Method::PUT => {
                let Some(current) = inner.objects.get(&object_path) else {
                    return status(404, "not found");
                };
                let want = body.pointer("/metadata/resourceVersion");
                if want.is_some() && want != current.pointer("/metadata/resourceVersion") {
                    return status(409, "the object has been modified");
                }
                (StatusCode::OK, store(&mut inner, object_path, body))
            }
            Method::PATCH => {
                let apply = query.contains("fieldManager") && query.contains("force");
                let current = inner.objects.get(&object_path).cloned();
                if current.is_none() && !apply {
                    return status(404, "not found");
                }
                let mut object = current.unwrap_or_else(|| json!({}));
                let want = body.pointer("/metadata/resourceVersion").cloned();
                if want.is_some() && want.as_ref() != object.pointer("/metadata/resourceVersion") {
                    return status(409, "the object has been modified");
                }
                match subresource {
                    Some("status") => merge(&mut object["status"], &body["status"]),
                    Some(_) => merge(&mut object["spec"], &body["spec"]),
                    None => merge(&mut object, &body),
                }
                let stored = store(&mut inner, object_path, object);
                if subresource == Some("scale") {
                    let replicas = stored.pointer("/spec/replicas").cloned();
                    return (
                        StatusCode::OK,
                        json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
                        "metadata": stored["metadata"], "spec": {"replicas": replicas}}),
                    );
                }
                (StatusCode::OK, stored)
            }
            Method::DELETE => match inner.objects.remove(&object_path) {
                Some(object) => (StatusCode::OK, object),
                None => status(404, "not found"),
            },
            _ => status(405, "method not allowed"),
        }
    }
}

/// Whether `path` names a collection (`…/namespaces/NS/PLURAL` or `…/PLURAL`).
fn is_collection(path: &str) -> bool {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match parts.first() {
        Some(&"api") => &parts[2..],
        Some(&"apis") => &parts[3..],
        _ => return false,
    };
    matches!(rest, [_] | ["namespaces", _, _])
}

fn list(inner: &Inner, path: &str, query: &str) -> Value {
    let selector =
        query.split('&').find_map(|kv| kv.strip_prefix("labelSelector=")).map(percent_decode);
    let (prefix, plural) = path.rsplit_once('/').unwrap_or_default();
    let cluster_wide = !path.contains("/namespaces/");
    let items: Vec<Value> = inner
        .objects
        .iter()
        .filter(|(k, _)| {
            let Some((collection, _name)) = k.rsplit_once('/') else { return false };
            if cluster_wide {
                // `/apis/G/V/PLURAL` lists `/apis/G/V/namespaces/*/PLURAL/*` too.
                collection == path
                    || collection.ends_with(&format!("/{plural}"))
                        && collection.starts_with(&format!("{prefix}/namespaces/"))
                        && collection.matches('/').count() == path.matches('/').count() + 2
            } else {
                collection == path
            }
        })
        .map(|(_, v)| v)
        .filter(|v| match &selector {
            None => true,
            Some(sel) => sel.split(',').all(|kv| {
                let (k, want) = kv.split_once('=').unwrap_or((kv, ""));
                v.pointer("/metadata/labels").and_then(|l| l.get(k)).and_then(Value::as_str)
                    == Some(want)
            }),
        })
        .cloned()
        .collect();
    json!({"apiVersion": "v1", "kind": "List",
           "metadata": {"resourceVersion": inner.version.to_string()}, "items": items})
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%' && i + 2 < bytes.len() + 1 && i + 3 <= bytes.len())
            .then(|| u8::from_str_radix(&s[i + 1..i + 3], 16).ok())
            .flatten();
        match hex {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn store(inner: &mut Inner, key: String, mut object: Value) -> Value {
    inner.version += 1;
    object["metadata"]["resourceVersion"] = json!(inner.version.to_string());
    if object.pointer("/metadata/uid").is_none() {
        object["metadata"]["uid"] = json!(format!("uid-{}", inner.version));
    }
    inner.objects.insert(key, object.clone());
    object
}

/// JSON merge patch (RFC 7386): objects merge, `null` deletes, anything else replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = json!({});
            }
            let map = target.as_object_mut().expect("an object");
            for (k, v) in fields {
                if v.is_null() {
                    map.remove(k);
                } else {
                    merge(map.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn status(code: u16, message: &str) -> (StatusCode, Value) {
    let reason = match code {
        404 => "NotFound",
        409 => "Conflict",
        422 => "Invalid",
        403 => "Forbidden",
        _ => "InternalError",
    };
    (
        StatusCode::from_u16(code).expect("a status code"),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}
