//! Forwarding to replicas: keep-alive connection pools (one HTTP/1.1 client for REST, one
//! HTTP/2 prior-knowledge client for gRPC), hop-by-hop headers removed, bodies streamed in
//! both directions, and the readiness probe the activator uses.

use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::body::Body;

/// The connection pools to replicas.
#[derive(Clone)]
pub(crate) struct Clients {
    http: Client<HttpConnector, Body>,
    grpc: Client<HttpConnector, Body>,
}

fn connector() -> HttpConnector {
    let mut c = HttpConnector::new();
    // Small requests and responses must not wait for Nagle's algorithm.
    c.set_nodelay(true);
    c.set_connect_timeout(Some(Duration::from_secs(5)));
    c
}

impl Clients {
    pub fn new() -> Clients {
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .build(connector());
        let grpc = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .http2_adaptive_window(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector());
        Clients { http, grpc }
    }

    /// Sends `request` (path and query as received) to the replica at `authority`.
    pub async fn send(
        &self,
        grpc: bool,
        authority: &Authority,
        mut request: Request<Body>,
    ) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        let path = request
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(authority.clone());
        parts.path_and_query = Some(path);
        *request.uri_mut() = Uri::from_parts(parts).expect("scheme, authority and path are set");
        strip_hop_by_hop(request.headers_mut());
        if grpc {
            *request.version_mut() = Version::HTTP_2;
            self.grpc.request(request).await
        } else {
            // Replicas are spoken to over pooled HTTP/1.1 whatever the client used.
            *request.version_mut() = Version::HTTP_11;
            request.headers_mut().remove(header::HOST);
            self.http.request(request).await
        }
    }

    /// Whether the replica reports `model` ready: V2 `/v2/models/{m}/ready`, or, where the
    /// server has no V2 route for it, V1 `/v1/models/{m}` answering 200.
    pub async fn model_ready(&self, authority: &Authority, model: &str) -> bool {
        let probe = |path: String| {
            let request = Request::get(path).body(crate::body::full(bytes::Bytes::new()));
            async move {
                let Ok(request) = request else { return None };
                let response = tokio::time::timeout(
                    Duration::from_secs(1),
                    self.send(false, authority, request),
                )
                .await;
                match response {
                    Ok(Ok(r)) => Some(r.status().as_u16()),
                    _ => None,
                }
            }
        };
        match probe(format!("/v2/models/{model}/ready")).await {
            Some(200) => true,
            Some(404 | 405 | 501) => probe(format!("/v1/models/{model}")).await == Some(200),
            _ => false,
        }
    }
}

static HOP_BY_HOP: [HeaderName; 5] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes the headers that describe one connection, not the message (RFC 9110 §7.6.1);
/// `te: trailers` stays, gRPC needs it.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if let Some(connection) = headers.get(header::CONNECTION).and_then(|v| v.to_str().ok()) {
        let named: Vec<HeaderName> =
            connection.split(',').filter_map(|n| HeaderName::try_from(n.trim()).ok()).collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if headers.get(header::TE).is_some_and(|v| v != "trailers") {
        headers.remove(header::TE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_te_trailers_stays() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "keep-alive, x-private".parse().unwrap());
        h.insert("x-private", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert(header::TE, "trailers".parse().unwrap());
        h.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        strip_hop_by_hop(&mut h);
        let mut names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(names, ["content-type", "te"]);
    }
}
