//! Raw HTTP for the REST cases: requests are built byte for byte and responses are kept as
//! status, headers and body, so the suite judges exactly what the server sent.

use bytes::Bytes;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::catalog::{Checked, Stop};
use crate::context::Ctx;

/// A response as received.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// What was requested, e.g. `POST /v2/models/m/infer` (for messages).
    pub what: String,
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl HttpResponse {
    /// The body as JSON, or a failure quoting the body.
    pub fn json(&self) -> Result<Value, Stop> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Stop::Fail(format!(
                "{} answered {} with a body that is not JSON ({e}): {}",
                self.what,
                self.status,
                self.snippet()
            ))
        })
    }

    /// The first 200 characters of the body, for messages.
    pub fn snippet(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let mut s: String = text.chars().take(200).collect();
        if text.chars().count() > 200 {
            s.push('…');
        }
        s
    }

    /// A header value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Fails unless the status is `want`.
    pub fn expect_status(&self, want: u16) -> Checked {
        if self.status != want {
            return Err(Stop::Fail(format!(
                "{} answered {} (expected {want}): {}",
                self.what,
                self.status,
                self.snippet()
            )));
        }
        Ok(())
    }

    /// Fails unless this is a 2xx response whose body is JSON; returns the JSON.
    pub fn ok_json(&self) -> Result<Value, Stop> {
        self.expect_status(200)?;
        self.json()
    }

    /// Fails unless this is an error response as the protocol defines it: a 4xx status and a
    /// JSON object body with an `"error"` string.
    pub fn expect_client_error(&self) -> Checked {
        if !(400..500).contains(&self.status) {
            return Err(Stop::Fail(format!(
                "{} answered {} (expected a 4xx error status): {}",
                self.what,
                self.status,
                self.snippet()
            )));
        }
        self.expect_error_body()
    }

    /// Fails unless the body is `{"error": "<string>", …}`.
    pub fn expect_error_body(&self) -> Checked {
        let v = serde_json::from_slice::<Value>(&self.body).map_err(|_| {
            Stop::Fail(format!(
                "{} answered {} with a body that is not a JSON error object: {}",
                self.what,
                self.status,
                self.snippet()
            ))
        })?;
        match v.get("error") {
            Some(Value::String(_)) => Ok(()),
            _ => Err(Stop::Fail(format!(
                "{} answered {} without an \"error\" string in the body: {}",
                self.what,
                self.status,
                self.snippet()
            ))),
        }
    }
}

impl Ctx {
    async fn send(&self, what: String, req: reqwest::RequestBuilder) -> Result<HttpResponse, Stop> {
        let resp =
            req.send().await.map_err(|e| Stop::Fail(format!("{what}: request failed: {e}")))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| Stop::Fail(format!("{what}: reading the body failed: {e}")))?;
        Ok(HttpResponse { what, status, headers, body })
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<HttpResponse, Stop> {
        self.send(format!("GET {path}"), self.http.get(self.url(path))).await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<HttpResponse, Stop> {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        self.post_bytes(path, bytes, &[("content-type", "application/json".to_owned())]).await
    }

    /// `POST path` with raw bytes and extra headers.
    pub async fn post_bytes(
        &self,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, String)],
    ) -> Result<HttpResponse, Stop> {
        let mut req = self.http.post(self.url(path)).body(body);
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        self.send(format!("POST {path}"), req).await
    }
}
