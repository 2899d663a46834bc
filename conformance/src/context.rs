//! What the suite learns about the server before any case runs: its REST base URL and gRPC
//! channel, the extensions it advertises, the model under test and which reference models
//! it serves.
//!
//! Discovery never fails on a misbehaving server: what could not be learned is left empty and
//! the cases that depend on it say so (the case that checks that endpoint fails on its own).

use std::collections::BTreeMap;
use std::time::Duration;

use oxserve_protocol::DataType;
use oxserve_protocol::grpc::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use serde_json::{Value, json};
use tonic::transport::{Channel, Endpoint};

use crate::catalog::Stop;
use crate::error::{Error, Result};
use crate::reference;

/// Where the server is and what to test.
#[derive(Debug, Clone)]
pub struct Target {
    /// REST base URL, e.g. `http://127.0.0.1:8000`.
    pub rest: String,
    /// gRPC address `HOST:PORT`; gRPC cases are skipped without it.
    pub grpc: Option<String>,
    /// The model under test; without it the suite picks one from the repository index.
    pub model: Option<String>,
    /// The model the explain extension's cases explain; without it the first model that
    /// answers `/explain` (see [`crate::cases::explain`]).
    pub explain_model: Option<String>,
    /// Limit for one request.
    pub request_timeout: Duration,
}

impl Target {
    /// A target with the default request timeout (10 s).
    pub fn new(rest: impl Into<String>) -> Target {
        Target {
            rest: rest.into(),
            grpc: None,
            model: None,
            explain_model: None,
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// Name, datatype and shape of a model input or output as the server declared them.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    /// Tensor name.
    pub name: String,
    /// Datatype, when the server named a valid one.
    pub datatype: Option<DataType>,
    /// The datatype string as sent.
    pub datatype_name: String,
    /// Shape; `-1` for variable dimensions.
    pub shape: Vec<i64>,
}

/// A model's metadata as the server declared it over REST.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// Model name.
    pub name: String,
    /// The first version the server listed, if any.
    pub version: Option<String>,
    /// Inputs.
    pub inputs: Vec<TensorSpec>,
    /// Outputs.
    pub outputs: Vec<TensorSpec>,
}

impl ModelInfo {
    /// Parses a model metadata JSON body leniently (the metadata cases judge its shape).
    pub fn from_json(v: &Value) -> Option<ModelInfo> {
        let specs = |key: &str| -> Option<Vec<TensorSpec>> {
            v.get(key)?
                .as_array()?
                .iter()
                .map(|t| {
                    let datatype_name = t.get("datatype")?.as_str()?.to_owned();
                    Some(TensorSpec {
                        name: t.get("name")?.as_str()?.to_owned(),
                        datatype: datatype_name.parse().ok(),
                        datatype_name,
                        shape: t
                            .get("shape")?
                            .as_array()?
                            .iter()
                            .map(Value::as_i64)
                            .collect::<Option<Vec<_>>>()?,
                    })
                })
                .collect()
        };
        Some(ModelInfo {
            name: v.get("name")?.as_str()?.to_owned(),
            version: v
                .get("versions")
                .and_then(Value::as_array)
                .and_then(|vs| vs.first())
                .and_then(Value::as_str)
                .map(str::to_owned),
            inputs: specs("inputs")?,
            outputs: specs("outputs").unwrap_or_default(),
        })
    }
}

/// Everything a check may use.
pub struct Ctx {
    /// The target as given.
    pub target: Target,
    /// REST base URL without a trailing slash.
    pub rest: String,
    /// The HTTP client.
    pub http: reqwest::Client,
    grpc: Option<Channel>,
    /// Extensions from `GET /v2`, when it answered with a list.
    pub extensions: Option<Vec<String>>,
    /// Name of the model under test.
    pub model_name: String,
    /// Its metadata, when `GET /v2/models/{name}` answered usably.
    pub model: Option<ModelInfo>,
    /// Reference models the server serves and reports ready, by name.
    pub reference: BTreeMap<String, ModelInfo>,
    /// What discovery noticed (shown in reports).
    pub notes: Vec<String>,
    /// The model the explain cases use, found by the first of them that runs (or why there
    /// is none).
    pub explain_model: tokio::sync::OnceCell<Result<ModelInfo, String>>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("rest", &self.rest).field("model", &self.model_name).finish()
    }
}

impl Ctx {
    /// Learns what the server offers. Fails only on unusable arguments or when no model to
    /// test was given and none can be discovered.
    pub async fn discover(target: Target) -> Result<Ctx> {
        let rest = target.rest.trim_end_matches('/').to_owned();
        if !(rest.starts_with("http://") || rest.starts_with("https://")) {
            return Err(Error::Target(format!("REST URL \"{rest}\" must start with http://")));
        }
        // A fresh connection per request: a server that drops a connection after an error
        // response must not make the next, unrelated case fail on a stale pooled socket.
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(target.request_timeout)
            .build()
            .map_err(|e| Error::Target(format!("building the HTTP client: {e}")))?;
        let grpc = match &target.grpc {
            None => None,
            Some(addr) => {
                let uri =
                    if addr.contains("://") { addr.clone() } else { format!("http://{addr}") };
                let endpoint = Endpoint::from_shared(uri)
                    .map_err(|e| Error::Target(format!("gRPC address \"{addr}\": {e}")))?
                    .timeout(target.request_timeout)
                    .connect_timeout(target.request_timeout);
                Some(endpoint.connect_lazy())
            }
        };
        let mut ctx = Ctx {
            rest,
            http,
            grpc,
            extensions: None,
            model_name: String::new(),
            model: None,
            reference: BTreeMap::new(),
            notes: Vec::new(),
            explain_model: tokio::sync::OnceCell::new(),
            target,
        };
        ctx.extensions = match ctx.get_json("/v2").await {
            Some(v) => v
                .get("extensions")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect::<Vec<_>>()),
            None => None,
        };
        if ctx.extensions.is_none() {
            ctx.notes.push("GET /v2 gave no extension list: no extension is tested".into());
        }
        for name in reference::names() {
            if let Some(info) = ctx.ready_model(&name).await {
                ctx.reference.insert(name, info);
            }
        }
        ctx.model_name = match ctx.target.model.clone() {
            Some(m) => m,
            None => ctx.pick_model().await?,
        };
        ctx.model = ctx
            .get_json(&format!("/v2/models/{}", ctx.model_name))
            .await
            .and_then(|v| ModelInfo::from_json(&v));
        if ctx.model.is_none() {
            ctx.notes.push(format!(
                "metadata of model \"{}\" is unusable: cases that need it are skipped",
                ctx.model_name
            ));
        }
        Ok(ctx)
    }

    /// The model's metadata if it answers and reports ready.
    pub(crate) async fn ready_model(&self, name: &str) -> Option<ModelInfo> {
        let ready = self.http.get(self.url(&format!("/v2/models/{name}/ready"))).send().await;
        if ready.ok()?.status().as_u16() != 200 {
            return None;
        }
        ModelInfo::from_json(&self.get_json(&format!("/v2/models/{name}")).await?)
    }

    /// The names of the models the repository index lists as READY, sorted (empty when the
    /// server has no usable index).
    pub(crate) async fn ready_index_names(&self) -> Vec<String> {
        let index = self
            .http
            .post(self.url("/v2/repository/index"))
            .json(&json!({}))
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success());
        let mut names = Vec::new();
        if let Some(resp) = index
            && let Ok(Value::Array(rows)) = resp.json::<Value>().await
        {
            for row in rows {
                let ready = row.get("state").and_then(Value::as_str) == Some("READY");
                if let (true, Some(name)) = (ready, row.get("name").and_then(Value::as_str)) {
                    names.push(name.to_owned());
                }
            }
        }
        names.sort();
        names
    }

    /// Picks the first ready model of the repository index that is not a reference model,
    /// else the add-sub reference model.
    async fn pick_model(&self) -> Result<String> {
        let names = self.ready_index_names().await;
        if let Some(name) = names.iter().find(|n| !reference::names().contains(n)) {
            return Ok(name.clone());
        }
        if self.reference.contains_key(reference::ADD_SUB) {
            return Ok(reference::ADD_SUB.to_owned());
        }
        Err(Error::NoModel(
            "pass --model NAME (the server has no usable repository index to pick one from)".into(),
        ))
    }

    async fn get_json(&self, path: &str) -> Option<Value> {
        let resp = self.http.get(self.url(path)).send().await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        resp.json().await.ok()
    }

    /// `base + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.rest)
    }

    /// True when `GET /v2` listed `extension`.
    pub fn advertises(&self, extension: &str) -> bool {
        self.extensions.as_ref().is_some_and(|e| e.iter().any(|x| x == extension))
    }

    /// The model under test's metadata, or a skip when it is unusable.
    pub fn model(&self) -> Result<&ModelInfo, Stop> {
        self.model.as_ref().ok_or_else(|| {
            Stop::Skip(format!(
                "metadata of model \"{}\" is unusable (see the metadata cases)",
                self.model_name
            ))
        })
    }

    /// A reference model's metadata, or a skip when the server does not serve it.
    pub fn reference_model(&self, name: &str) -> Result<&ModelInfo, Stop> {
        self.reference.get(name).ok_or_else(|| {
            Stop::Skip(format!("reference model \"{name}\" is not loaded on the server"))
        })
    }

    /// A gRPC client, or a skip when no gRPC address was given.
    pub fn grpc(&self) -> Result<GrpcInferenceServiceClient<Channel>, Stop> {
        match &self.grpc {
            Some(ch) => {
                Ok(GrpcInferenceServiceClient::new(ch.clone()).max_decoding_message_size(64 << 20))
            }
            None => Err(Stop::Skip("no gRPC address given (--grpc HOST:PORT)".into())),
        }
    }
}
