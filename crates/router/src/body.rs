//! The body types of the request path: one boxed body for requests and responses, a body
//! that replays bytes the router has already read (a gRPC message's first bytes) ahead of
//! the rest of the stream, a body that holds guards until a response has been sent, and a
//! body that must arrive in full within a time bound (slow clients cannot hold a replica).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

/// Errors a body can carry.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The one body type of the request path, boxed so every layer speaks the same type.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// A complete body from bytes.
pub fn full(bytes: Bytes) -> Body {
    http_body_util::Full::new(bytes).map_err(|never| match never {}).boxed_unsync()
}

/// Any body, boxed.
pub fn boxed<B>(body: B) -> Body
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// `prefix` (bytes already read from `rest`) followed by the rest of the stream.
pub struct Prefixed<B> {
    prefix: Option<Bytes>,
    rest: B,
}

impl<B> Prefixed<B> {
    pub fn new(prefix: Bytes, rest: B) -> Prefixed<B> {
        Prefixed { prefix: (!prefix.is_empty()).then_some(prefix), rest }
    }
}

impl<B> HttpBody for Prefixed<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let rest = self.rest.size_hint();
        let n = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        let mut hint = SizeHint::new();
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + n);
        }
        hint.set_lower(rest.lower() + n);
        hint
    }
}

/// A body that keeps `guard` alive until the body is finished or dropped: the request
/// counts as in flight (and holds its replica slot) until its response has been sent.
pub struct Guarded<B, G> {
    inner: B,
    guard: Option<G>,
}

impl<B, G> Guarded<B, G> {
    pub fn new(inner: B, guard: G) -> Guarded<B, G> {
        Guarded { inner, guard: Some(guard) }
    }
}

impl<B, G> HttpBody for Guarded<B, G>
where
    B: HttpBody<Data = Bytes> + Unpin,
    G: Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.guard = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The error a [`Deadline`] body ends with when the time runs out.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} s", .0.as_secs_f64())]
pub struct BodyTimedOut(pub std::time::Duration);

/// A body that must be read to its end within `limit` of its first poll (so time spent
/// waiting in the activator before anything reads the body does not count).
pub struct Deadline<B> {
    inner: B,
    limit: std::time::Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> Deadline<B> {
    pub fn new(inner: B, limit: std::time::Duration) -> Deadline<B> {
        Deadline { inner, limit, sleep: None }
    }
}

impl<B> HttpBody for Deadline<B>
where
    B: HttpBody<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let limit = self.limit;
        let sleep = self.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut(limit)))));
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn prefixed_replays_the_prefix_then_the_rest() {
        let body = Prefixed::new(
            Bytes::from_static(b"ab"),
            http_body_util::Full::new(Bytes::from_static(b"cd")),
        );
        assert_eq!(body.size_hint().exact(), Some(4));
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..], b"abcd");
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_body_ends_with_an_error_when_time_runs_out() {
        let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
        let stream = http_body_util::StreamBody::new(rx);
        let body = Deadline::new(boxed(stream), std::time::Duration::from_secs(5));
        tx.try_send(Ok(Frame::data(Bytes::from_static(b"a")))).unwrap();
        let Err(err) = body.collect().await else {
            panic!("the body never ends, so it must time out");
        };
        assert!(err.is::<BodyTimedOut>(), "{err}");
        drop(tx);
        let done =
            Deadline::new(full(Bytes::from_static(b"ok")), std::time::Duration::from_secs(5));
        assert_eq!(&done.collect().await.unwrap().to_bytes()[..], b"ok");
    }

    #[tokio::test]
    async fn guarded_drops_its_guard_at_the_end() {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        let body = Guarded::new(http_body_util::Full::new(Bytes::from_static(b"x")), tx);
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..], b"x");
        assert!(rx.recv().await.is_none(), "the guard was dropped with the finished body");
    }
}
