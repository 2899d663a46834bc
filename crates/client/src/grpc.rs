//! The V2 gRPC client (Triton's `inference.GRPCInferenceService`): health, metadata,
//! inference with typed or raw tensor contents, streaming inference and the repository,
//! statistics and configuration extensions, over one tonic channel.
//!
//! A status the server sent becomes [`Error::Server`] with its numeric code and message; a
//! status tonic made up because the connection failed becomes [`Error::Transport`].

use oxserve_protocol::extensions::repository::index_from_proto;
use oxserve_protocol::extensions::{ModelConfig, ModelIndexEntry, StatisticsResponse};
use oxserve_protocol::grpc::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use oxserve_protocol::grpc::{decode_infer_response, encode_infer_request, inference as pb};
use oxserve_protocol::{InferRequest, InferResponse, ModelMetadata, ProtocolError, ServerMetadata};
use tonic::transport::{Channel, Endpoint};

use crate::error::{Error, Result, error_chain};

/// Largest response message accepted. tonic's default (4 MiB) is smaller than many
/// inference results; this bounds memory against a misbehaving server instead.
pub const MAX_RESPONSE_BYTES: usize = 1 << 30;

/// A client for one V2 gRPC endpoint. Cloning is cheap and clones share the channel (one
/// HTTP/2 connection, requests multiplexed).
#[derive(Debug, Clone)]
pub struct GrpcClient {
    inner: GrpcInferenceServiceClient<Channel>,
}

impl GrpcClient {
    /// Connects to `addr` (`"http://127.0.0.1:8081"`, or `"127.0.0.1:8081"`, which means
    /// `http://`). Fails when the connection cannot be made now; later calls reconnect on
    /// their own if the connection drops.
    pub async fn connect(addr: &str) -> Result<GrpcClient> {
        let uri = if addr.contains("://") { addr.to_owned() } else { format!("http://{addr}") };
        let endpoint = Endpoint::from_shared(uri)
            .map_err(|e| {
                Error::InvalidArgument(format!("address \"{addr}\": {}", error_chain(&e)))
            })?
            .tcp_nodelay(true);
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| Error::Transport(format!("connecting to {addr}: {}", error_chain(&e))))?;
        Ok(GrpcClient::from_channel(channel))
    }

    /// A client over an existing channel (e.g. one with TLS or timeouts configured).
    pub fn from_channel(channel: Channel) -> GrpcClient {
        let inner = GrpcInferenceServiceClient::new(channel)
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
            .max_encoding_message_size(usize::MAX);
        GrpcClient { inner }
    }

    /// `ServerLive`.
    pub async fn server_live(&self) -> Result<bool> {
        let resp =
            self.client().server_live(pb::ServerLiveRequest {}).await.map_err(status_error)?;
        Ok(resp.into_inner().live)
    }

    /// `ServerReady`.
    pub async fn server_ready(&self) -> Result<bool> {
        let resp =
            self.client().server_ready(pb::ServerReadyRequest {}).await.map_err(status_error)?;
        Ok(resp.into_inner().ready)
    }

    /// `ServerMetadata`.
    pub async fn server_metadata(&self) -> Result<ServerMetadata> {
        let resp = self
            .client()
            .server_metadata(pb::ServerMetadataRequest {})
            .await
            .map_err(status_error)?;
        Ok(resp.into_inner().into())
    }

    /// `ModelMetadata` of `model` (and `version`, else the server's choice). The protobuf
    /// message has no parameters, so `parameters` is always `None`.
    pub async fn model_metadata(
        &self,
        model: &str,
        version: Option<&str>,
    ) -> Result<ModelMetadata> {
        let req = pb::ModelMetadataRequest {
            name: model.to_owned(),
            version: version.unwrap_or_default().to_owned(),
        };
        let resp = self.client().model_metadata(req).await.map_err(status_error)?;
        resp.into_inner().try_into().map_err(|e| decode_error("model metadata", e))
    }

    /// `ModelReady`. An unknown model is whatever the server answers for it (oxserve:
    /// [`Error::Server`] with `NOT_FOUND`).
    pub async fn model_ready(&self, model: &str, version: Option<&str>) -> Result<bool> {
        let req = pb::ModelReadyRequest {
            name: model.to_owned(),
            version: version.unwrap_or_default().to_owned(),
        };
        let resp = self.client().model_ready(req).await.map_err(status_error)?;
        Ok(resp.into_inner().ready)
    }

    /// `ModelInfer`. With `raw`, inputs travel in `raw_input_contents` (and oxserve answers
    /// in `raw_output_contents`); without it, in the typed contents fields, except FP16/BF16
    /// inputs, which are always raw.
    pub async fn infer(
        &self,
        model: &str,
        version: Option<&str>,
        request: &InferRequest,
        raw: bool,
    ) -> Result<InferResponse> {
        let msg = encode_infer_request(model, version.unwrap_or_default(), request, raw);
        let resp = self.client().model_infer(msg).await.map_err(status_error)?;
        decode_infer_response(resp.into_inner()).map_err(|e| decode_error("inference response", e))
    }

    /// `ModelStreamInfer`: sends every request on one stream and returns one result per
    /// request, in order. A request the server refused is an `Err` in its slot (the stream
    /// carries only a message, so its status is `UNKNOWN`) and the others still count; the
    /// outer `Err` is for the stream as a whole (it could not be opened, it broke, or it
    /// answered a different number of responses than requests).
    pub async fn infer_stream(
        &self,
        model: &str,
        version: Option<&str>,
        requests: Vec<InferRequest>,
        raw: bool,
    ) -> Result<Vec<Result<InferResponse>>> {
        let expected = requests.len();
        let version = version.unwrap_or_default();
        let messages: Vec<pb::ModelInferRequest> =
            requests.iter().map(|r| encode_infer_request(model, version, r, raw)).collect();
        drop(requests);
        let resp = self
            .client()
            .model_stream_infer(tokio_stream::iter(messages))
            .await
            .map_err(status_error)?;
        let mut inbound = resp.into_inner();
        let mut results = Vec::with_capacity(expected);
        while let Some(msg) = inbound.message().await.map_err(status_error)? {
            if results.len() == expected {
                return Err(Error::Decode(format!(
                    "stream answered more responses than the {expected} requests sent"
                )));
            }
            results.push(stream_item(msg));
        }
        if results.len() < expected {
            return Err(Error::Decode(format!(
                "stream ended after {} of {expected} responses",
                results.len()
            )));
        }
        Ok(results)
    }

    /// `ModelConfig` of `model` (and `version`, else the server's choice).
    pub async fn model_config(&self, model: &str, version: Option<&str>) -> Result<ModelConfig> {
        let req = pb::ModelConfigRequest {
            name: model.to_owned(),
            version: version.unwrap_or_default().to_owned(),
        };
        let resp = self.client().model_config(req).await.map_err(status_error)?;
        let config = resp
            .into_inner()
            .config
            .ok_or_else(|| Error::Decode("model config: the response has no config".into()))?;
        config.try_into().map_err(|e| decode_error("model config", e))
    }

    /// `ModelStatistics` of one model (all its versions) or, with `None`, of every model.
    pub async fn model_statistics(&self, model: Option<&str>) -> Result<StatisticsResponse> {
        let req = pb::ModelStatisticsRequest {
            name: model.unwrap_or_default().to_owned(),
            version: String::new(),
        };
        let resp = self.client().model_statistics(req).await.map_err(status_error)?;
        Ok(resp.into_inner().into())
    }

    /// `RepositoryIndex`: every model the server knows, with its state.
    pub async fn repository_index(&self) -> Result<Vec<ModelIndexEntry>> {
        let req = pb::RepositoryIndexRequest { repository_name: String::new(), ready: false };
        let resp = self.client().repository_index(req).await.map_err(status_error)?;
        index_from_proto(resp.into_inner()).map_err(|e| decode_error("repository index", e))
    }

    /// `RepositoryModelLoad`: loads (or reloads) `name`; returns once the server answered.
    pub async fn load_model(&self, name: &str) -> Result<()> {
        let req = pb::RepositoryModelLoadRequest {
            repository_name: String::new(),
            model_name: name.to_owned(),
            parameters: Default::default(),
        };
        self.client().repository_model_load(req).await.map_err(status_error)?;
        Ok(())
    }

    /// `RepositoryModelUnload`.
    pub async fn unload_model(&self, name: &str) -> Result<()> {
        let req = pb::RepositoryModelUnloadRequest {
            repository_name: String::new(),
            model_name: name.to_owned(),
            parameters: Default::default(),
        };
        self.client().repository_model_unload(req).await.map_err(status_error)?;
        Ok(())
    }

    /// The generated client's methods take `&mut self`; a clone shares the channel.
    fn client(&self) -> GrpcInferenceServiceClient<Channel> {
        self.inner.clone()
    }
}

/// One answer of a `ModelStreamInfer` stream.
fn stream_item(msg: pb::ModelStreamInferResponse) -> Result<InferResponse> {
    if !msg.error_message.is_empty() {
        return Err(Error::Server {
            status: grpc_code(tonic::Code::Unknown),
            message: msg.error_message,
        });
    }
    let resp = msg.infer_response.ok_or_else(|| {
        Error::Decode("stream response has neither an error message nor a response".into())
    })?;
    decode_infer_response(resp).map_err(|e| decode_error("inference response", e))
}

/// A status from the server is [`Error::Server`]; tonic attaches the underlying error as the
/// source when it made the status up itself because the connection failed.
fn status_error(status: tonic::Status) -> Error {
    if std::error::Error::source(&status).is_some() {
        Error::Transport(error_chain(&status))
    } else {
        Error::Server { status: grpc_code(status.code()), message: status.message().to_owned() }
    }
}

fn grpc_code(code: tonic::Code) -> u16 {
    // Codes are 0..=16; `Unknown` (2) is the protocol's own fallback.
    u16::try_from(i32::from(code)).unwrap_or(2)
}

fn decode_error(what: &str, e: ProtocolError) -> Error {
    Error::Decode(format!("{what}: {}", e.message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_statuses_keep_code_and_message() {
        let e = status_error(tonic::Status::not_found("model \"x\" not found"));
        assert_eq!(e, Error::Server { status: 5, message: "model \"x\" not found".into() });
    }

    #[test]
    fn statuses_with_a_cause_are_transport_errors() {
        let cause: Box<dyn std::error::Error + Send + Sync> =
            Box::new(std::io::Error::other("connection refused"));
        let e = status_error(tonic::Status::from_error(cause));
        match e {
            Error::Transport(msg) => assert!(msg.contains("connection refused"), "{msg}"),
            other => panic!("expected a transport error, got {other:?}"),
        }
    }

    #[test]
    fn stream_items() {
        let e = stream_item(pb::ModelStreamInferResponse {
            error_message: "input \"x\": bad".into(),
            infer_response: None,
        });
        assert_eq!(e, Err(Error::Server { status: 2, message: "input \"x\": bad".into() }));
        let e = stream_item(pb::ModelStreamInferResponse::default());
        assert!(matches!(e, Err(Error::Decode(_))));
    }

    #[tokio::test]
    async fn bad_addresses() {
        assert!(matches!(
            GrpcClient::connect("http://exa mple:1").await,
            Err(Error::InvalidArgument(_))
        ));
    }
}
