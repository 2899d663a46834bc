//! What the router reads of a gRPC request: the method from the path and, for methods that
//! name a model, field 1 (`model_name` / `name`) of the first message, found by a tiny
//! protobuf field scan over the bytes as they arrive. The bytes themselves are forwarded
//! untouched. Also the router's own answers to the server-level methods.

use bytes::{BufMut, Bytes, BytesMut};
use http::Response;

use crate::body::Body;
use crate::error::RouteError;

/// The service every V2 gRPC method belongs to.
pub const SERVICE_PREFIX: &str = "/inference.GRPCInferenceService/";

/// What a gRPC method needs from the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `ServerLive`, `ServerReady`, `ServerMetadata`: answered by the router itself when no
    /// host names a service.
    Server(ServerMethod),
    /// A method whose first message carries the model name in field 1 (`ModelInfer`,
    /// `ModelStreamInfer`, `ModelMetadata`, `ModelReady`, `ModelConfig`,
    /// `ModelStatistics`).
    Model,
    /// Anything else: routable by host only.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerMethod {
    Live,
    Ready,
    Metadata,
}

/// Classifies a request path.
pub fn method(path: &str) -> Method {
    match path.strip_prefix(SERVICE_PREFIX) {
        Some("ServerLive") => Method::Server(ServerMethod::Live),
        Some("ServerReady") => Method::Server(ServerMethod::Ready),
        Some("ServerMetadata") => Method::Server(ServerMethod::Metadata),
        Some(
            "ModelInfer" | "ModelStreamInfer" | "ModelMetadata" | "ModelReady" | "ModelConfig"
            | "ModelStatistics",
        ) => Method::Model,
        _ => Method::Other,
    }
}

/// The result of scanning the bytes of a gRPC body read so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    /// Field 1 of the first message.
    Found(String),
    /// The bytes so far end before the answer.
    NeedMore,
}

/// Scans `buf` (the start of a gRPC request body: 5-byte frame header, then the message)
/// for field 1 of the first message. `max` bounds the message length.
pub fn scan(buf: &[u8], max: usize) -> Result<Scan, RouteError> {
    if buf.len() < 5 {
        return Ok(Scan::NeedMore);
    }
    match buf[0] {
        0 => {}
        1 => {
            return Err(RouteError::BadRequest(
                "grpc message is compressed: the router cannot read its model name; send the service's host instead".into(),
            ));
        }
        flag => {
            return Err(RouteError::BadRequest(format!(
                "malformed grpc frame: compressed flag {flag}, expected 0 or 1"
            )));
        }
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len > max {
        return Err(RouteError::PayloadTooLarge(format!(
            "grpc message of {len} bytes is over the limit of {max} bytes"
        )));
    }
    let end = buf.len().min(5 + len);
    let message = &buf[5..end];
    let complete = buf.len() >= 5 + len;
    let mut at = 0;
    while at < message.len() {
        let Some((tag, n)) = varint(&message[at..]) else {
            return need_more(complete, "a field tag");
        };
        at += n;
        let field = tag >> 3;
        match tag & 7 {
            0 => match varint(&message[at..]) {
                Some((_, n)) => at += n,
                None => return need_more(complete, "a varint field"),
            },
            1 => at += 8,
            5 => at += 4,
            2 => {
                let Some((l, n)) = varint(&message[at..]) else {
                    return need_more(complete, "a field length");
                };
                at += n;
                let l = l as usize;
                if field == 1 {
                    if message.len() < at + l {
                        return need_more(complete, "the model name");
                    }
                    return match std::str::from_utf8(&message[at..at + l]) {
                        Ok(name) => Ok(Scan::Found(name.to_owned())),
                        Err(_) => Err(RouteError::BadRequest(
                            "malformed grpc message: model name (field 1) is not utf-8".into(),
                        )),
                    };
                }
                at = at.saturating_add(l);
            }
            wire => {
                return Err(RouteError::BadRequest(format!(
                    "malformed grpc message: field {field} has unknown wire type {wire}"
                )));
            }
        }
        if at > len {
            return Err(RouteError::BadRequest(
                "malformed grpc message: a field runs past the end of the message".into(),
            ));
        }
    }
    if complete {
        Err(RouteError::BadRequest(
            "grpc message has no model name (field 1): cannot route it without a service host"
                .into(),
        ))
    } else {
        Ok(Scan::NeedMore)
    }
}

fn need_more(complete: bool, what: &str) -> Result<Scan, RouteError> {
    if complete {
        Err(RouteError::BadRequest(format!("malformed grpc message: truncated in {what}")))
    } else {
        Ok(Scan::NeedMore)
    }
}

/// A protobuf varint and its length in bytes; `None` when `buf` ends inside it (or it is
/// longer than ten bytes, which the caller reports as truncated/malformed).
fn varint(buf: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in buf.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// The router's answer to a server-level method: `ServerLiveResponse{live}`,
/// `ServerReadyResponse{ready}` or `ServerMetadataResponse{name, version, extensions}`.
pub fn server_response(method: ServerMethod, ready: bool) -> Response<Body> {
    let mut message = BytesMut::new();
    match method {
        ServerMethod::Live => message.put_slice(&[0x08, 1]),
        ServerMethod::Ready => message.put_slice(&[0x08, u8::from(ready)]),
        ServerMethod::Metadata => {
            put_string(&mut message, 1, crate::SERVER_NAME);
            put_string(&mut message, 2, env!("CARGO_PKG_VERSION"));
        }
    }
    let mut frame = BytesMut::with_capacity(5 + message.len());
    frame.put_u8(0);
    frame.put_u32(message.len() as u32);
    frame.put_slice(&message);
    let trailers = {
        let mut t = http::HeaderMap::new();
        t.insert("grpc-status", http::HeaderValue::from_static("0"));
        t
    };
    let body = http_body_util::StreamBody::new(futures::stream::iter([
        Ok::<_, crate::body::BoxError>(hyper::body::Frame::data(frame.freeze())),
        Ok(hyper::body::Frame::trailers(trailers)),
    ]));
    let mut r = Response::new(crate::body::boxed(body));
    r.headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/grpc"));
    r
}

fn put_string(buf: &mut BytesMut, field: u8, s: &str) {
    buf.put_u8(field << 3 | 2);
    let mut len = s.len();
    while len >= 0x80 {
        buf.put_u8((len as u8) | 0x80);
        len >>= 7;
    }
    buf.put_u8(len as u8);
    buf.put_slice(s.as_bytes());
}

/// One gRPC frame around `message`, for tests and tools.
pub fn frame(message: &[u8]) -> Bytes {
    let mut f = BytesMut::with_capacity(5 + message.len());
    f.put_u8(0);
    f.put_u32(message.len() as u32);
    f.put_slice(message);
    f.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message_with_name(name: &str) -> Vec<u8> {
        let mut m = BytesMut::new();
        put_string(&mut m, 1, name);
        put_string(&mut m, 2, "1");
        m.to_vec()
    }

    #[test]
    fn finds_field_one_at_any_split_of_the_bytes() {
        let f = frame(&message_with_name("iris"));
        for cut in 0..f.len() {
            let got = scan(&f[..cut], 1 << 20).unwrap();
            let complete_name = cut >= 5 + 2 + 4;
            assert_eq!(got == Scan::Found("iris".into()), complete_name, "cut {cut}: {got:?}");
        }
    }

    #[test]
    fn skips_other_fields_before_field_one() {
        let mut m = BytesMut::new();
        m.put_slice(&[0x10, 0x96, 0x01]); // field 2, varint 150
        m.put_slice(&[0x1d, 1, 2, 3, 4]); // field 3, fixed32
        m.put_slice(&[0x21, 1, 2, 3, 4, 5, 6, 7, 8]); // field 4, fixed64
        put_string(&mut m, 5, "version");
        put_string(&mut m, 1, "a-model");
        assert_eq!(scan(&frame(&m), 1 << 20).unwrap(), Scan::Found("a-model".into()));
    }

    #[test]
    fn malformed_frames_are_clear_errors() {
        let name = message_with_name("iris");
        let mut compressed = frame(&name).to_vec();
        compressed[0] = 1;
        assert!(scan(&compressed, 100).unwrap_err().to_string().contains("compressed"));
        compressed[0] = 7;
        assert!(scan(&compressed, 100).unwrap_err().to_string().contains("compressed flag 7"));
        let big = frame(&name);
        assert!(matches!(scan(&big, 3), Err(RouteError::PayloadTooLarge(_))));
        // A message that is complete but carries no field 1.
        let mut m = BytesMut::new();
        put_string(&mut m, 2, "x");
        assert!(scan(&frame(&m), 100).unwrap_err().to_string().contains("no model name"));
        // Wire type 7 does not exist.
        assert!(scan(&frame(&[0x0f]), 100).unwrap_err().to_string().contains("wire type 7"));
        // A length that runs past the end of a complete message.
        assert!(
            scan(&frame(&[0x12, 0x7f, 0]), 100).unwrap_err().to_string().contains("past the end")
        );
        // Field 1 that is not utf-8.
        assert!(scan(&frame(&[0x0a, 1, 0xff]), 100).unwrap_err().to_string().contains("utf-8"));
    }

    #[test]
    fn methods_are_classified() {
        assert_eq!(method("/inference.GRPCInferenceService/ModelStreamInfer"), Method::Model);
        assert_eq!(
            method("/inference.GRPCInferenceService/ServerLive"),
            Method::Server(ServerMethod::Live)
        );
        assert_eq!(method("/other.Service/X"), Method::Other);
    }
}
