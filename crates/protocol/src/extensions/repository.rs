//! Model repository extension: index, load and unload.
//!
//! REST: `POST /v2/repository/index` with `{"ready": bool?}` answers an array of
//! [`ModelIndexEntry`]; `POST /v2/repository/models/{m}/load` and `…/unload` take an optional
//! `{"parameters": {…}}` body ([`RepositoryLoadRequest`]). gRPC: `RepositoryIndex`,
//! `RepositoryModelLoad`, `RepositoryModelUnload`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{ProtocolError, Result};
use crate::grpc::inference;
use crate::grpc::inference::model_repository_parameter::ParameterChoice;

/// Body of a repository index request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositoryIndexRequest {
    /// When true, only models ready for inference are listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
}

impl RepositoryIndexRequest {
    /// Parses a REST body; an empty body means "no filter".
    pub fn from_body(body: &[u8]) -> Result<RepositoryIndexRequest> {
        parse_optional_body(body, "repository index request")
    }

    /// Whether only ready models are wanted.
    pub fn ready_only(&self) -> bool {
        self.ready.unwrap_or(false)
    }
}

impl From<inference::RepositoryIndexRequest> for RepositoryIndexRequest {
    fn from(r: inference::RepositoryIndexRequest) -> Self {
        RepositoryIndexRequest { ready: r.ready.then_some(true) }
    }
}

/// The state of a model in the repository index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ModelState {
    /// Loaded and serving.
    Ready,
    /// Known but not loaded (never loaded, unloaded, or failed to load).
    Unavailable,
    /// Being loaded.
    Loading,
    /// Being unloaded.
    Unloading,
}

impl ModelState {
    /// The wire name, e.g. `"READY"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ModelState::Ready => "READY",
            ModelState::Unavailable => "UNAVAILABLE",
            ModelState::Loading => "LOADING",
            ModelState::Unloading => "UNLOADING",
        }
    }
}

impl fmt::Display for ModelState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ModelState {
    type Err = ProtocolError;

    fn from_str(s: &str) -> Result<ModelState> {
        [ModelState::Ready, ModelState::Unavailable, ModelState::Loading, ModelState::Unloading]
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| ProtocolError::invalid(format!("unknown model state \"{s}\"")))
    }
}

/// One entry of the repository index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelIndexEntry {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ModelState>,
    /// Why the model is in its state (e.g. the load error), when there is a reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl From<ModelIndexEntry> for inference::repository_index_response::ModelIndex {
    fn from(e: ModelIndexEntry) -> Self {
        inference::repository_index_response::ModelIndex {
            name: e.name,
            version: e.version.unwrap_or_default(),
            state: e.state.map(|s| s.as_str().to_owned()).unwrap_or_default(),
            reason: e.reason.unwrap_or_default(),
        }
    }
}

impl TryFrom<inference::repository_index_response::ModelIndex> for ModelIndexEntry {
    type Error = ProtocolError;

    fn try_from(m: inference::repository_index_response::ModelIndex) -> Result<Self> {
        let state = if m.state.is_empty() {
            None
        } else {
            Some(m.state.parse().map_err(|e: ProtocolError| {
                ProtocolError::invalid(format!("model index \"{}\": {}", m.name, e.message))
            })?)
        };
        Ok(ModelIndexEntry {
            name: m.name,
            version: non_empty(m.version),
            state,
            reason: non_empty(m.reason),
        })
    }
}

/// The gRPC index response for `entries`.
pub fn index_to_proto(entries: Vec<ModelIndexEntry>) -> inference::RepositoryIndexResponse {
    inference::RepositoryIndexResponse { models: entries.into_iter().map(Into::into).collect() }
}

/// The index entries of a gRPC index response.
pub fn index_from_proto(resp: inference::RepositoryIndexResponse) -> Result<Vec<ModelIndexEntry>> {
    resp.models.into_iter().map(TryInto::try_into).collect()
}

/// A load/unload parameter. REST carries JSON scalars (file contents for `file:…` keys
/// base64-encoded in a string, as Triton does); gRPC also has raw bytes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum RepositoryParameter {
    Bool(bool),
    Int64(i64),
    String(String),
    /// Only from gRPC `bytes_param`; has no JSON form.
    #[serde(skip)]
    Bytes(Bytes),
}

impl Serialize for RepositoryParameter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            RepositoryParameter::Bool(b) => s.serialize_bool(*b),
            RepositoryParameter::Int64(i) => s.serialize_i64(*i),
            RepositoryParameter::String(v) => s.serialize_str(v),
            RepositoryParameter::Bytes(_) => Err(serde::ser::Error::custom(
                "bytes repository parameters have no json form; send them base64-encoded as strings",
            )),
        }
    }
}

impl From<RepositoryParameter> for inference::ModelRepositoryParameter {
    fn from(p: RepositoryParameter) -> Self {
        let choice = match p {
            RepositoryParameter::Bool(b) => ParameterChoice::BoolParam(b),
            RepositoryParameter::Int64(i) => ParameterChoice::Int64Param(i),
            RepositoryParameter::String(s) => ParameterChoice::StringParam(s),
            RepositoryParameter::Bytes(b) => ParameterChoice::BytesParam(b),
        };
        inference::ModelRepositoryParameter { parameter_choice: Some(choice) }
    }
}

/// Body of a load or unload request; an absent or empty body means no parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositoryLoadRequest {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, RepositoryParameter>,
}

/// Unload requests have the same shape as load requests.
pub type RepositoryUnloadRequest = RepositoryLoadRequest;

impl RepositoryLoadRequest {
    /// Parses a REST body; empty (or whitespace-only) bodies are allowed.
    pub fn from_body(body: &[u8]) -> Result<RepositoryLoadRequest> {
        parse_optional_body(body, "repository load request")
    }

    /// Converts a gRPC parameters map; a parameter with no value is refused.
    pub fn from_proto(
        parameters: BTreeMap<String, inference::ModelRepositoryParameter>,
    ) -> Result<RepositoryLoadRequest> {
        let parameters = parameters
            .into_iter()
            .map(|(k, v)| {
                let p = match v.parameter_choice {
                    Some(ParameterChoice::BoolParam(b)) => RepositoryParameter::Bool(b),
                    Some(ParameterChoice::Int64Param(i)) => RepositoryParameter::Int64(i),
                    Some(ParameterChoice::StringParam(s)) => RepositoryParameter::String(s),
                    Some(ParameterChoice::BytesParam(b)) => RepositoryParameter::Bytes(b),
                    None => {
                        return Err(ProtocolError::invalid(format!(
                            "parameter \"{k}\" has no value"
                        )));
                    }
                };
                Ok((k, p))
            })
            .collect::<Result<_>>()?;
        Ok(RepositoryLoadRequest { parameters })
    }

    /// The gRPC parameters map.
    pub fn to_proto(&self) -> BTreeMap<String, inference::ModelRepositoryParameter> {
        self.parameters.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect()
    }
}

/// Parses an optional JSON body: empty or whitespace-only means `T::default()`.
fn parse_optional_body<T: Default + for<'de> Deserialize<'de>>(
    body: &[u8],
    what: &str,
) -> Result<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ProtocolError::invalid(format!("invalid {what} body: {e}")))
}

fn non_empty(s: String) -> Option<String> {
    if s.is_empty() { None } else { Some(s) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn index_json_shape() {
        let entries = vec![
            ModelIndexEntry {
                name: "a".into(),
                version: Some("1".into()),
                state: Some(ModelState::Ready),
                reason: None,
            },
            ModelIndexEntry {
                name: "b".into(),
                version: None,
                state: Some(ModelState::Unavailable),
                reason: Some("unloaded".into()),
            },
        ];
        assert_eq!(
            serde_json::to_value(&entries).unwrap(),
            json!([
                {"name": "a", "version": "1", "state": "READY"},
                {"name": "b", "state": "UNAVAILABLE", "reason": "unloaded"}
            ])
        );
        let back: Vec<ModelIndexEntry> =
            serde_json::from_value(json!([{"name": "c", "state": "LOADING"}])).unwrap();
        assert_eq!(back[0].state, Some(ModelState::Loading));
        assert_eq!(back[0].version, None);
    }

    #[test]
    fn index_proto_round_trip() {
        let entries = vec![
            ModelIndexEntry {
                name: "a".into(),
                version: Some("3".into()),
                state: Some(ModelState::Unloading),
                reason: Some("r".into()),
            },
            ModelIndexEntry { name: "b".into(), version: None, state: None, reason: None },
        ];
        let proto = index_to_proto(entries.clone());
        assert_eq!(proto.models[0].state, "UNLOADING");
        assert_eq!(proto.models[1].state, "");
        assert_eq!(index_from_proto(proto.clone()).unwrap(), entries);
        let mut bad = proto;
        bad.models[0].state = "BROKEN".into();
        assert_eq!(
            index_from_proto(bad).unwrap_err().message,
            "model index \"a\": unknown model state \"BROKEN\""
        );
    }

    #[test]
    fn index_request_bodies() {
        assert!(!RepositoryIndexRequest::from_body(b"").unwrap().ready_only());
        assert!(RepositoryIndexRequest::from_body(br#"{"ready": true}"#).unwrap().ready_only());
        assert!(!RepositoryIndexRequest::from_body(b"{}").unwrap().ready_only());
        let e = RepositoryIndexRequest::from_body(br#"{"ready": 1}"#).unwrap_err();
        assert!(e.message.starts_with("invalid repository index request body: "), "{}", e.message);
        let grpc =
            inference::RepositoryIndexRequest { repository_name: String::new(), ready: true };
        assert!(RepositoryIndexRequest::from(grpc).ready_only());
    }

    #[test]
    fn load_request_bodies_and_proto() {
        assert_eq!(
            RepositoryLoadRequest::from_body(b"").unwrap(),
            RepositoryLoadRequest::default()
        );
        assert_eq!(
            RepositoryLoadRequest::from_body(b" \n").unwrap(),
            RepositoryLoadRequest::default()
        );
        assert_eq!(
            RepositoryLoadRequest::from_body(b"{}").unwrap(),
            RepositoryLoadRequest::default()
        );
        let body = br#"{"parameters": {"config": "{\"max_batch_size\": 4}", "unload_dependents": true, "n": 2}}"#;
        let req = RepositoryLoadRequest::from_body(body).unwrap();
        assert_eq!(
            req.parameters["config"],
            RepositoryParameter::String("{\"max_batch_size\": 4}".into())
        );
        assert_eq!(req.parameters["unload_dependents"], RepositoryParameter::Bool(true));
        assert_eq!(req.parameters["n"], RepositoryParameter::Int64(2));
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            json!({"parameters": {"config": "{\"max_batch_size\": 4}", "unload_dependents": true, "n": 2}})
        );
        let e = RepositoryLoadRequest::from_body(b"{\"parameters\": [1]}").unwrap_err();
        assert!(e.message.starts_with("invalid repository load request body: "), "{}", e.message);

        let mut with_bytes = req.clone();
        with_bytes.parameters.insert(
            "file:1/model.onnx".into(),
            RepositoryParameter::Bytes(Bytes::from_static(b"\0onnx")),
        );
        let proto = with_bytes.to_proto();
        assert_eq!(
            proto["file:1/model.onnx"].parameter_choice,
            Some(ParameterChoice::BytesParam(Bytes::from_static(b"\0onnx")))
        );
        assert_eq!(RepositoryLoadRequest::from_proto(proto).unwrap(), with_bytes);
        assert!(
            serde_json::to_string(&with_bytes).unwrap_err().to_string().contains("no json form")
        );

        let empty = BTreeMap::from([(
            "x".to_owned(),
            inference::ModelRepositoryParameter { parameter_choice: None },
        )]);
        assert_eq!(
            RepositoryLoadRequest::from_proto(empty).unwrap_err().message,
            "parameter \"x\" has no value"
        );
    }
}
