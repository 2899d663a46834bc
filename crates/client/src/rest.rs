//! The V2 REST client: health, metadata, inference (JSON or the binary tensor data
//! extension) and the repository, statistics and configuration extensions, over one
//! `reqwest` connection pool.
//!
//! Health and readiness are judged by status code, as the protocol says. Every other
//! non-2xx answer becomes [`Error::Server`] with the server's `{"error": …}` message, or the
//! body text when the body is not that JSON.

use oxserve_protocol::extensions::{ModelConfig, ModelIndexEntry, StatisticsResponse};
use oxserve_protocol::rest::{self, INFERENCE_HEADER_CONTENT_LENGTH};
use oxserve_protocol::{InferRequest, InferResponse, ModelMetadata, ServerMetadata};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{StatusCode, Url};

use crate::binary::encode_binary_request;
use crate::error::{Error, Result, error_chain};

/// Longest body text quoted in an error message when the body is not `{"error": …}`.
const MAX_QUOTED_BODY: usize = 512;

/// A client for one V2 REST endpoint. Cloning is cheap and clones share the connection
/// pool.
#[derive(Debug, Clone)]
pub struct RestClient {
    http: reqwest::Client,
    base: Url,
}

impl RestClient {
    /// A client for the server at `base_url` (`"http://host:8080"`, a path prefix such as
    /// `"http://gateway/svc"`, or `"host:8080"`, which means `http://`). Nothing is sent
    /// until the first call.
    pub fn new(base_url: &str) -> Result<RestClient> {
        let with_scheme = if base_url.contains("://") {
            base_url.to_owned()
        } else {
            format!("http://{base_url}")
        };
        let mut base = Url::parse(&with_scheme)
            .map_err(|e| Error::InvalidArgument(format!("base url \"{base_url}\": {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(Error::InvalidArgument(format!(
                "base url \"{base_url}\": scheme must be http or https, not {}",
                base.scheme()
            )));
        }
        // Query and fragment would end up on every request; they are never meant.
        base.set_query(None);
        base.set_fragment(None);
        let http =
            reqwest::Client::builder().build().map_err(|e| Error::Transport(error_chain(&e)))?;
        Ok(RestClient { http, base })
    }

    /// The base URL requests are sent under.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// `GET /v2/health/live`: true on a 2xx answer, false on any other status.
    pub async fn server_live(&self) -> Result<bool> {
        let resp = self.send(self.http.get(self.url(&["v2", "health", "live"]))).await?;
        Ok(resp.status().is_success())
    }

    /// `GET /v2/health/ready`: true on a 2xx answer, false on any other status.
    pub async fn server_ready(&self) -> Result<bool> {
        let resp = self.send(self.http.get(self.url(&["v2", "health", "ready"]))).await?;
        Ok(resp.status().is_success())
    }

    /// `GET /v2`: server name, version and extensions.
    pub async fn server_metadata(&self) -> Result<ServerMetadata> {
        let body = self.get_ok(self.url(&["v2"])).await?;
        decode_json(&body, "server metadata")
    }

    /// `GET /v2/models/{model}[/versions/{version}]`.
    pub async fn model_metadata(
        &self,
        model: &str,
        version: Option<&str>,
    ) -> Result<ModelMetadata> {
        let body = self.get_ok(self.model_url(model, version, None)).await?;
        decode_json(&body, "model metadata")
    }

    /// `GET /v2/models/{model}[/versions/{version}]/ready`: true on a 2xx answer. A 404 (an
    /// unknown model or version) is [`Error::Server`], so a typo is not mistaken for "not
    /// ready yet"; any other status means not ready.
    pub async fn model_ready(&self, model: &str, version: Option<&str>) -> Result<bool> {
        let resp = self.send(self.http.get(self.model_url(model, version, Some("ready")))).await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(true);
        }
        if status == StatusCode::NOT_FOUND {
            let body = resp.bytes().await.map_err(|e| Error::Transport(error_chain(&e)))?;
            return Err(server_error(status, &body));
        }
        Ok(false)
    }

    /// `POST /v2/models/{model}[/versions/{version}]/infer`.
    ///
    /// With `binary`, every input travels as binary tensor data and the request parameter
    /// `binary_data_output` asks for every output the same way (outputs that set their own
    /// `binary_data` parameter keep it). Without it the body is JSON, except for inputs JSON
    /// cannot carry (FP16, BF16, non-UTF-8 BYTES), which always go binary.
    pub async fn infer(
        &self,
        model: &str,
        version: Option<&str>,
        request: &InferRequest,
        binary: bool,
    ) -> Result<InferResponse> {
        let encoded = if binary {
            encode_binary_request(request)
        } else {
            rest::encode_request(request, false)
        };
        let mut builder = self.http.post(self.model_url(model, version, Some("infer")));
        builder = match encoded.header_length {
            Some(n) => builder
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(INFERENCE_HEADER_CONTENT_LENGTH, n),
            None => builder.header(CONTENT_TYPE, "application/json"),
        };
        let resp = self.send(builder.body(encoded.body)).await?;
        let (headers, body) = ok_body(resp).await?;
        let header_length = response_header_length(&headers)?;
        rest::decode_response(&body, header_length)
            .map_err(|e| Error::Decode(format!("inference response: {}", e.message)))
    }

    /// `GET /v2/models/{model}[/versions/{version}]/config`: the model configuration.
    pub async fn model_config(&self, model: &str, version: Option<&str>) -> Result<ModelConfig> {
        let body = self.get_ok(self.model_url(model, version, Some("config"))).await?;
        decode_json(&body, "model config")
    }

    /// `GET /v2/models[/{model}]/stats`: statistics of one model (all its versions) or of
    /// every model.
    pub async fn model_statistics(&self, model: Option<&str>) -> Result<StatisticsResponse> {
        let url = match model {
            Some(m) => self.model_url(m, None, Some("stats")),
            None => self.url(&["v2", "models", "stats"]),
        };
        let body = self.get_ok(url).await?;
        decode_json(&body, "statistics")
    }

    /// `POST /v2/repository/index`: every model the server knows, with its state.
    pub async fn repository_index(&self) -> Result<Vec<ModelIndexEntry>> {
        let builder = self
            .http
            .post(self.url(&["v2", "repository", "index"]))
            .header(CONTENT_TYPE, "application/json")
            .body("{}");
        let (_, body) = ok_body(self.send(builder).await?).await?;
        decode_json(&body, "repository index")
    }

    /// `POST /v2/repository/models/{name}/load`: loads (or reloads) `name`; returns once the
    /// server answered, i.e. when the model is ready or failed to load.
    pub async fn load_model(&self, name: &str) -> Result<()> {
        self.repository_action(name, "load").await
    }

    /// `POST /v2/repository/models/{name}/unload`.
    pub async fn unload_model(&self, name: &str) -> Result<()> {
        self.repository_action(name, "unload").await
    }

    async fn repository_action(&self, name: &str, action: &str) -> Result<()> {
        let builder = self
            .http
            .post(self.url(&["v2", "repository", "models", name, action]))
            .header(CONTENT_TYPE, "application/json")
            .body("{}");
        ok_body(self.send(builder).await?).await?;
        Ok(())
    }

    /// `base` with `segments` appended, each percent-encoded as one path segment.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        // `new` only accepts http(s) URLs, which always have path segments.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// `/v2/models/{model}[/versions/{version}][/{tail}]`.
    fn model_url(&self, model: &str, version: Option<&str>, tail: Option<&str>) -> Url {
        let mut segments = vec!["v2", "models", model];
        if let Some(v) = version {
            segments.extend(["versions", v]);
        }
        segments.extend(tail);
        self.url(&segments)
    }

    async fn send(&self, builder: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        builder.send().await.map_err(|e| Error::Transport(error_chain(&e)))
    }

    async fn get_ok(&self, url: Url) -> Result<bytes::Bytes> {
        let (_, body) = ok_body(self.send(self.http.get(url)).await?).await?;
        Ok(body)
    }
}

/// The headers and body of a 2xx answer, or [`Error::Server`].
async fn ok_body(resp: reqwest::Response) -> Result<(HeaderMap, bytes::Bytes)> {
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.map_err(|e| Error::Transport(error_chain(&e)))?;
    if status.is_success() { Ok((headers, body)) } else { Err(server_error(status, &body)) }
}

/// The error for a non-2xx answer: the `{"error": …}` message when the body is that JSON,
/// else the (shortened) body text, else the status's reason phrase.
fn server_error(status: StatusCode, body: &[u8]) -> Error {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: serde_json::Value,
    }
    let message = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error: serde_json::Value::String(s) }) => s,
        Ok(ErrorBody { error }) => error.to_string(),
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                let reason = status.canonical_reason().unwrap_or("unknown status");
                format!("{} (empty body)", reason.to_lowercase())
            } else {
                shorten(text, MAX_QUOTED_BODY)
            }
        }
    };
    Error::Server { status: status.as_u16(), message }
}

/// `text` cut to at most `max` bytes on a character boundary, with `…` when cut.
fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The `Inference-Header-Content-Length` of a response, when it has one.
fn response_header_length(headers: &HeaderMap) -> Result<Option<usize>> {
    let Some(v) = headers.get(INFERENCE_HEADER_CONTENT_LENGTH) else { return Ok(None) };
    parse_header_length(v).map(Some)
}

fn parse_header_length(v: &HeaderValue) -> Result<usize> {
    v.to_str().ok().and_then(|s| s.trim().parse().ok()).ok_or_else(|| {
        Error::Decode(format!(
            "{INFERENCE_HEADER_CONTENT_LENGTH} is not a non-negative integer: {v:?}"
        ))
    })
}

fn decode_json<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| Error::Decode(format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let c = RestClient::new("127.0.0.1:8080").unwrap();
        assert_eq!(
            c.url(&["v2", "health", "live"]).as_str(),
            "http://127.0.0.1:8080/v2/health/live"
        );
        let c = RestClient::new("http://gw/prefix/").unwrap();
        assert_eq!(c.url(&["v2"]).as_str(), "http://gw/prefix/v2");
        let c = RestClient::new("https://gw/prefix?x=1").unwrap();
        assert_eq!(c.url(&["v2"]).as_str(), "https://gw/prefix/v2");
        assert!(matches!(RestClient::new("ftp://host"), Err(Error::InvalidArgument(_))));
        assert!(matches!(RestClient::new("http://"), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn model_urls_encode_segments() {
        let c = RestClient::new("http://h:1").unwrap();
        assert_eq!(
            c.model_url("a/b c", Some("2"), Some("infer")).as_str(),
            "http://h:1/v2/models/a%2Fb%20c/versions/2/infer"
        );
        assert_eq!(c.model_url("m", None, None).as_str(), "http://h:1/v2/models/m");
    }

    #[test]
    fn server_errors_from_any_body() {
        let e = server_error(StatusCode::NOT_FOUND, br#"{"error":"model \"x\" not found"}"#);
        assert_eq!(e, Error::Server { status: 404, message: "model \"x\" not found".into() });
        let e = server_error(StatusCode::BAD_GATEWAY, b"<html>upstream down</html>\n");
        assert_eq!(e, Error::Server { status: 502, message: "<html>upstream down</html>".into() });
        let e = server_error(StatusCode::SERVICE_UNAVAILABLE, b"");
        assert_eq!(
            e,
            Error::Server { status: 503, message: "service unavailable (empty body)".into() }
        );
        let e = server_error(StatusCode::BAD_REQUEST, br#"{"error":{"code":3}}"#);
        assert_eq!(e, Error::Server { status: 400, message: r#"{"code":3}"#.into() });
        let long = "é".repeat(400);
        let Error::Server { message, .. } =
            server_error(StatusCode::INTERNAL_SERVER_ERROR, long.as_bytes())
        else {
            panic!("expected a server error");
        };
        assert!(message.ends_with('…') && message.len() <= MAX_QUOTED_BODY + '…'.len_utf8());
    }

    #[test]
    fn header_length_values() {
        assert_eq!(parse_header_length(&HeaderValue::from_static(" 12 ")).unwrap(), 12);
        assert!(matches!(
            parse_header_length(&HeaderValue::from_static("-1")),
            Err(Error::Decode(_))
        ));
    }
}
