//! The batching proxy: merges concurrent inference requests to one model into one upstream
//! call, for servers without a native batcher.
//!
//! - V1 (`/v1/models/{m}:predict`): `instances` are concatenated; `predictions` are split
//!   back by each request's instance count.
//! - V2 (`/v2/models/{m}[/versions/{v}]/infer`): inputs are concatenated on dim 0; every
//!   output whose dim 0 is the batch size is split back by rows; each response keeps the
//!   request's `id`, only the outputs it asked for, and the binary/JSON encoding it asked
//!   for.
//!
//! Requests batch together only when they can: same path, same input names, datatypes and
//! trailing dimensions, same parameters. Anything else (a body that does not decode, a rank-0
//! input, a request larger than `max_batch_size`) passes through unbatched. A batch closes
//! when it reaches `max_batch_size` rows or its first request has waited `max_latency`.
//!
//! Like the server's own batcher, this is a cloneable handle over a bounded channel to one
//! task that owns the pending batches; each request carries a oneshot for its reply.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use oxserve_protocol::rest::{self, ResponseEncoding};
use oxserve_protocol::{InferRequest, InferResponse, Parameter, RequestedOutput, Tensor};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::{Error, Result};

/// Batching settings.
#[derive(Debug, Clone, Copy)]
pub struct BatcherConfig {
    /// Rows (V1 instances, V2 dim-0 entries) per upstream call at most.
    pub max_batch_size: usize,
    /// How long the first request of a batch waits for others.
    pub max_latency: Duration,
    /// How long a request waits for its batched reply before a 504.
    pub timeout: Duration,
}

impl Default for BatcherConfig {
    /// KServe's `maxBatchSize` 32, but a 5 ms latency rather than its 5 s, and a 60 s timeout.
    fn default() -> BatcherConfig {
        BatcherConfig {
            max_batch_size: 32,
            max_latency: Duration::from_millis(5),
            timeout: Duration::from_secs(60),
        }
    }
}

/// A complete HTTP response produced for one request.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: String,
    /// `Inference-Header-Content-Length`, for V2 bodies with binary data.
    pub header_length: Option<usize>,
    /// The body.
    pub body: Bytes,
}

impl Reply {
    fn error(status: u16, msg: &str) -> Reply {
        Reply {
            status,
            content_type: "application/json".into(),
            header_length: None,
            body: Bytes::from(serde_json::json!({ "error": msg }).to_string()),
        }
    }
}

/// The protocol of an inference path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `/v1/models/{m}:predict`
    V1,
    /// `/v2/models/{m}[/versions/{v}]/infer`
    V2,
}

/// The protocol and model of an inference path, or `None` for other paths.
pub fn classify(path: &str) -> Option<(Protocol, String)> {
    if let Some(rest) = path.strip_prefix("/v1/models/") {
        let model = rest.strip_suffix(":predict")?;
        return (!model.is_empty() && !model.contains('/'))
            .then(|| (Protocol::V1, model.to_owned()));
    }
    let rest = path.strip_prefix("/v2/models/")?.strip_suffix("/infer")?;
    let model = match rest.split_once("/versions/") {
        Some((m, v)) if !v.is_empty() && !v.contains('/') => m,
        Some(_) => return None,
        None => rest,
    };
    (!model.is_empty() && !model.contains('/')).then(|| (Protocol::V2, model.to_owned()))
}

/// Sends merged requests upstream: `(path, content_type, header_length, body)` → reply.
pub type Upstream = std::sync::Arc<
    dyn Fn(
            String,
            String,
            Option<usize>,
            Bytes,
        ) -> futures::future::BoxFuture<'static, Result<Reply>>
        + Send
        + Sync,
>;

/// A decoded request waiting for a batch.
enum Item {
    V1 { instances: Vec<serde_json::Value>, rest: serde_json::Map<String, serde_json::Value> },
    V2 { req: InferRequest },
}

impl Item {
    fn rows(&self) -> usize {
        match self {
            Item::V1 { instances, .. } => instances.len(),
            Item::V2 { req } => {
                req.inputs.first().and_then(|t| t.shape.first()).map_or(0, |&d| d.max(0) as usize)
            }
        }
    }
}

struct Job {
    item: Item,
    reply: oneshot::Sender<Reply>,
}

struct Pending {
    path: String,
    jobs: Vec<Job>,
    rows: usize,
    deadline: Instant,
}

/// Handle to the batching task.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<(String, String, Job)>,
    config: BatcherConfig,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").field("config", &self.config).finish_non_exhaustive()
    }
}

/// The outcome of [`Batcher::submit`].
#[derive(Debug)]
pub enum Submitted {
    /// The batched reply.
    Reply(Reply),
    /// This request cannot be batched: send it as it is.
    PassThrough,
}

impl Batcher {
    /// Starts the batching task; merged requests go through `upstream`.
    pub fn start(config: BatcherConfig, upstream: Upstream) -> Result<Batcher> {
        if config.max_batch_size == 0 {
            return Err(Error::Invalid("max batch size must be at least 1".into()));
        }
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(run(config, rx, upstream));
        Ok(Batcher { tx, config })
    }

    /// Queues one inference request (`header_length` from `Inference-Header-Content-Length`).
    pub async fn submit(
        &self,
        path: &str,
        header_length: Option<usize>,
        body: &Bytes,
    ) -> Submitted {
        let Some((protocol, _)) = classify(path) else { return Submitted::PassThrough };
        let Some((key, item)) = decode(protocol, header_length, body) else {
            return Submitted::PassThrough;
        };
        if item.rows() == 0 || item.rows() > self.config.max_batch_size {
            return Submitted::PassThrough;
        }
        let (reply, rx) = oneshot::channel();
        if self.tx.send((path.to_owned(), key, Job { item, reply })).await.is_err() {
            return Submitted::Reply(Reply::error(503, "batcher stopped"));
        }
        match tokio::time::timeout(self.config.timeout, rx).await {
            Ok(Ok(r)) => Submitted::Reply(r),
            Ok(Err(_)) => Submitted::Reply(Reply::error(500, "batch dropped")),
            Err(_) => {
                Submitted::Reply(Reply::error(504, "timed out waiting for the batched request"))
            }
        }
    }
}

/// The compatibility key and decoded item, or `None` when the request cannot batch.
fn decode(protocol: Protocol, header_length: Option<usize>, body: &[u8]) -> Option<(String, Item)> {
    match protocol {
        Protocol::V1 => {
            let serde_json::Value::Object(mut obj) = serde_json::from_slice(body).ok()? else {
                return None;
            };
            let serde_json::Value::Array(instances) = obj.remove("instances")? else { return None };
            let key = format!("v1|{}", serde_json::Value::Object(obj.clone()));
            Some((key, Item::V1 { instances, rest: obj }))
        }
        Protocol::V2 => {
            let req = rest::decode_request(body, header_length).ok()?;
            if req.inputs.is_empty() {
                return None;
            }
            let rows = *req.inputs[0].shape.first()?;
            let mut sig = String::from("v2|");
            for t in &req.inputs {
                // Every input must be batched on dim 0 with the same row count.
                if t.shape.first() != Some(&rows) {
                    return None;
                }
                sig.push_str(&format!("{}:{}:{:?};", t.name, t.data.datatype(), &t.shape[1..]));
            }
            let mut params = req.parameters.clone();
            params.remove("binary_data_output");
            sig.push_str(&serde_json::to_string(&params).ok()?);
            Some((sig, Item::V2 { req }))
        }
    }
}

async fn run(
    config: BatcherConfig,
    mut rx: mpsc::Receiver<(String, String, Job)>,
    upstream: Upstream,
) {
    let mut pending: HashMap<String, Pending> = HashMap::new();
    loop {
        let next_deadline = pending.values().map(|p| p.deadline).min();
        let sleep = async {
            match next_deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            msg = rx.recv() => {
                let Some((path, key, job)) = msg else { break };
                let rows = job.item.rows();
                // A request that would overflow the open batch closes it first.
                if pending.get(&key).is_some_and(|p| p.rows + rows > config.max_batch_size)
                    && let Some(full) = pending.remove(&key)
                {
                    tokio::spawn(execute(full, upstream.clone()));
                }
                let p = pending.entry(key.clone()).or_insert_with(|| Pending {
                    path,
                    jobs: Vec::new(),
                    rows: 0,
                    deadline: Instant::now() + config.max_latency,
                });
                p.rows += rows;
                p.jobs.push(job);
                if p.rows >= config.max_batch_size && let Some(full) = pending.remove(&key) {
                    tokio::spawn(execute(full, upstream.clone()));
                }
            }
            () = sleep => {
                let now = Instant::now();
                let due: Vec<String> = pending.iter().filter(|(_, p)| p.deadline <= now).map(|(k, _)| k.clone()).collect();
                for k in due {
                    if let Some(p) = pending.remove(&k) {
                        tokio::spawn(execute(p, upstream.clone()));
                    }
                }
            }
        }
    }
    for (_, p) in pending.drain() {
        tokio::spawn(execute(p, upstream.clone()));
    }
}

async fn execute(batch: Pending, upstream: Upstream) {
    let Pending { path, jobs, rows, .. } = batch;
    let (items, replies): (Vec<Item>, Vec<oneshot::Sender<Reply>>) =
        jobs.into_iter().map(|j| (j.item, j.reply)).unzip();
    tracing::debug!(path = %path, requests = items.len(), rows, "batch");
    let results = match &items[0] {
        Item::V1 { .. } => execute_v1(&path, items, upstream).await,
        Item::V2 { .. } => execute_v2(&path, items, rows, upstream).await,
    };
    match results {
        Ok(rs) => {
            for (tx, r) in replies.into_iter().zip(rs) {
                let _ = tx.send(r);
            }
        }
        Err(r) => {
            for tx in replies {
                let _ = tx.send(r.clone());
            }
        }
    }
}

async fn execute_v1(path: &str, items: Vec<Item>, upstream: Upstream) -> Result<Vec<Reply>, Reply> {
    let mut counts = Vec::with_capacity(items.len());
    let mut all = Vec::new();
    let mut rest = serde_json::Map::new();
    for item in items {
        if let Item::V1 { instances, rest: r } = item {
            counts.push(instances.len());
            all.extend(instances);
            rest = r;
        }
    }
    rest.insert("instances".into(), serde_json::Value::Array(all));
    let body = Bytes::from(serde_json::Value::Object(rest).to_string());
    let reply = upstream(path.to_owned(), "application/json".into(), None, body)
        .await
        .map_err(|e| Reply::error(502, &format!("upstream: {e}")))?;
    if reply.status != 200 {
        return Err(reply);
    }
    let mut obj: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&reply.body)
        .map_err(|e| {
        Reply::error(502, &format!("upstream response is not a JSON object: {e}"))
    })?;
    let Some(serde_json::Value::Array(preds)) = obj.remove("predictions") else {
        return Err(Reply::error(502, "upstream response has no \"predictions\" array"));
    };
    let total: usize = counts.iter().sum();
    if preds.len() != total {
        return Err(Reply::error(
            502,
            &format!("upstream returned {} predictions for {total} instances", preds.len()),
        ));
    }
    let mut it = preds.into_iter();
    Ok(counts
        .into_iter()
        .map(|n| {
            let mut o = obj.clone();
            o.insert("predictions".into(), serde_json::Value::Array(it.by_ref().take(n).collect()));
            Reply {
                status: 200,
                content_type: "application/json".into(),
                header_length: None,
                body: Bytes::from(serde_json::Value::Object(o).to_string()),
            }
        })
        .collect())
}

/// Merges V2 requests of one compatibility key into one.
pub(crate) fn merge_v2(reqs: &[&InferRequest]) -> Result<InferRequest, String> {
    let first = reqs[0];
    let mut inputs: Vec<Tensor> = first.inputs.clone();
    for r in &reqs[1..] {
        for (acc, t) in inputs.iter_mut().zip(&r.inputs) {
            acc.data.extend_from(&t.data).map_err(|e| e.to_string())?;
            acc.shape[0] += t.shape[0];
        }
    }
    for t in &mut inputs {
        t.parameters.remove("binary_data_size");
    }
    // All outputs if any request wants all; else the union of what they asked for.
    let outputs = if reqs.iter().any(|r| r.outputs.is_empty()) {
        Vec::new()
    } else {
        let mut names: Vec<String> =
            reqs.iter().flat_map(|r| r.outputs.iter().map(|o| o.name.clone())).collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|name| RequestedOutput { name, parameters: Default::default() })
            .collect()
    };
    let mut parameters = first.parameters.clone();
    // The merged response comes back as binary data: cheapest to decode and split.
    parameters.insert("binary_data_output".into(), Parameter::Bool(true));
    Ok(InferRequest { id: None, parameters, inputs, outputs })
}

/// Splits a merged V2 response back into one response per request (by `rows`).
pub(crate) fn split_v2(
    resp: &InferResponse,
    reqs: &[&InferRequest],
    total: usize,
) -> Result<Vec<InferResponse>, String> {
    let mut out = Vec::with_capacity(reqs.len());
    let mut offset = 0usize;
    for req in reqs {
        let rows = req.inputs[0].shape[0] as usize;
        let mut outputs = Vec::new();
        for t in &resp.outputs {
            if !req.outputs.is_empty() && !req.outputs.iter().any(|o| o.name == t.name) {
                continue;
            }
            let mut t2 = t.clone();
            if t.shape.first().is_some_and(|&d| d as usize == total) && total > 0 {
                let per_row = t.data.len() / total;
                t2.data = t.data.slice(offset * per_row..(offset + rows) * per_row);
                t2.shape[0] = rows as i64;
            } else {
                return Err(format!(
                    "output {:?} has shape {:?}, not batched on dim 0 of {total}",
                    t.name, t.shape
                ));
            }
            t2.parameters.remove("binary_data_size");
            // As a server does, an output carries the parameters it was requested with.
            t2.parameters.remove("binary_data");
            if let Some(o) = req.outputs.iter().find(|o| o.name == t.name) {
                t2.parameters.extend(o.parameters.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            outputs.push(t2);
        }
        offset += rows;
        out.push(InferResponse {
            model_name: resp.model_name.clone(),
            model_version: resp.model_version.clone(),
            id: req.id.clone(),
            parameters: resp.parameters.clone(),
            outputs,
        });
    }
    Ok(out)
}

async fn execute_v2(
    path: &str,
    items: Vec<Item>,
    rows: usize,
    upstream: Upstream,
) -> Result<Vec<Reply>, Reply> {
    let reqs: Vec<InferRequest> = items
        .into_iter()
        .filter_map(|i| if let Item::V2 { req } = i { Some(req) } else { None })
        .collect();
    let refs: Vec<&InferRequest> = reqs.iter().collect();
    let merged = merge_v2(&refs).map_err(|e| Reply::error(400, &e))?;
    let enc = rest::encode_request(&merged, true);
    let ct =
        if enc.header_length.is_some() { "application/octet-stream" } else { "application/json" };
    let reply = upstream(path.to_owned(), ct.into(), enc.header_length, Bytes::from(enc.body))
        .await
        .map_err(|e| Reply::error(502, &format!("upstream: {e}")))?;
    if reply.status != 200 {
        return Err(reply);
    }
    let resp = rest::decode_response(&reply.body, reply.header_length)
        .map_err(|e| Reply::error(502, &format!("upstream response: {e}")))?;
    let parts = split_v2(&resp, &refs, rows).map_err(|e| Reply::error(502, &e))?;
    Ok(parts
        .iter()
        .zip(&reqs)
        .map(|(p, req)| {
            let enc = rest::encode_response(p, &ResponseEncoding::from_request(req));
            Reply {
                status: 200,
                content_type: if enc.header_length.is_some() {
                    "application/octet-stream"
                } else {
                    "application/json"
                }
                .into(),
                header_length: enc.header_length,
                body: Bytes::from(enc.body),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxserve_protocol::TensorData;

    #[test]
    fn classifies_inference_paths() {
        assert_eq!(classify("/v1/models/m:predict"), Some((Protocol::V1, "m".into())));
        assert_eq!(classify("/v2/models/m/infer"), Some((Protocol::V2, "m".into())));
        assert_eq!(classify("/v2/models/m/versions/2/infer"), Some((Protocol::V2, "m".into())));
        for p in [
            "/v2/models/m",
            "/v2/models//infer",
            "/v1/models/m:explain",
            "/v2/models/a/b/infer",
            "/v2/health/ready",
        ] {
            assert_eq!(classify(p), None, "{p}");
        }
    }

    fn req(id: &str, rows: usize, outputs: &[&str]) -> InferRequest {
        InferRequest {
            id: Some(id.into()),
            inputs: vec![Tensor::new(
                "x",
                vec![rows as i64, 2],
                TensorData::Fp32((0..rows * 2).map(|i| i as f32 + rows as f32 * 100.0).collect()),
            )],
            outputs: outputs
                .iter()
                .map(|n| RequestedOutput { name: (*n).into(), parameters: Default::default() })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn merge_then_split_round_trips_rows_and_outputs() {
        let (a, b) = (req("a", 1, &["y"]), req("b", 3, &[]));
        let merged = merge_v2(&[&a, &b]).unwrap();
        assert_eq!(merged.inputs[0].shape, vec![4, 2]);
        assert!(merged.outputs.is_empty(), "b wants every output");
        // An identity-like model: y = x, z = row sums.
        let x = match &merged.inputs[0].data {
            TensorData::Fp32(v) => v.clone(),
            _ => unreachable!(),
        };
        let resp = InferResponse {
            model_name: "m".into(),
            outputs: vec![
                Tensor::new("y", vec![4, 2], TensorData::Fp32(x.clone())),
                Tensor::new(
                    "z",
                    vec![4],
                    TensorData::Fp32(x.chunks(2).map(|c| c[0] + c[1]).collect()),
                ),
            ],
            ..Default::default()
        };
        let parts = split_v2(&resp, &[&a, &b], 4).unwrap();
        assert_eq!(parts[0].id.as_deref(), Some("a"));
        assert_eq!(parts[0].outputs.len(), 1, "a asked for y only");
        assert_eq!(parts[0].outputs[0].data, a.inputs[0].data);
        assert_eq!(parts[1].outputs.len(), 2);
        assert_eq!(parts[1].outputs[0].data, b.inputs[0].data);
        assert_eq!(parts[1].outputs[1].shape, vec![3]);
    }

    #[test]
    fn unbatched_outputs_are_an_error_not_a_panic() {
        let a = req("a", 1, &[]);
        let resp = InferResponse {
            model_name: "m".into(),
            outputs: vec![Tensor::new("s", vec![1], TensorData::Fp32(vec![1.0]))],
            ..Default::default()
        };
        assert!(split_v2(&resp, &[&a, &a], 2).is_err());
    }

    #[test]
    fn incompatible_requests_get_different_keys() {
        let k = |shape: &str, data: &str| {
            let body = format!(
                r#"{{"inputs":[{{"name":"x","datatype":"FP32","shape":{shape},"data":{data}}}]}}"#
            );
            decode(Protocol::V2, None, body.as_bytes()).map(|(k, _)| k)
        };
        assert!(k("[2,2]", "[1,2,3,4]").is_some());
        assert_eq!(k("[2,2]", "[1,2,3,4]"), k("[1,2]", "[5,6]"), "rows may differ");
        assert_ne!(k("[2,2]", "[1,2,3,4]"), k("[1,4]", "[1,2,3,4]"), "trailing dims may not");
        assert!(decode(Protocol::V2, None, b"{not json").is_none());
        assert!(decode(Protocol::V1, None, br#"{"inputs":[1]}"#).is_none());
        let (k1, _) = decode(Protocol::V1, None, br#"{"instances":[1,2]}"#).unwrap();
        let (k2, _) = decode(Protocol::V1, None, br#"{"instances":[3]}"#).unwrap();
        assert_eq!(k1, k2);
    }
}
