//! [`Acceptor`]: a bound TCP listener that hands out connections, plain or after their TLS
//! handshake, with the same `accept()` shape as `TcpListener` so every accept loop (hyper,
//! `axum::serve`) takes either.
//!
//! Handshakes run in tasks of their own, never in the accept loop: a client that opens a
//! connection and sends nothing cannot stall the others. Each is bounded in time
//! ([`HANDSHAKE_TIMEOUT`]) and their number is bounded ([`MAX_HANDSHAKES`]; beyond it the
//! listener stops accepting and connections wait in the kernel's backlog). A client that
//! speaks plain HTTP to a TLS port gets `400` and `{"error": …}` telling it to use
//! `https://`, then the connection closes; the port keeps serving.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client has to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once, per listener.
pub const MAX_HANDSHAKES: usize = 1024;
/// The first byte of a TLS record carrying a handshake.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// A listener for plain TCP or TLS connections.
pub enum Acceptor {
    /// Connections as accepted.
    Plain(TcpListener),
    /// Connections after a completed TLS handshake.
    Tls(TlsListener),
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Acceptor::Plain(l) => f.debug_tuple("Plain").field(&l.local_addr().ok()).finish(),
            Acceptor::Tls(l) => f.debug_tuple("Tls").field(&l.local).finish(),
        }
    }
}

impl Acceptor {
    /// Plain TCP when `tls` is `None`, else TLS with that config. Call within a Tokio
    /// runtime: TLS starts the task that accepts and shakes hands.
    pub fn new(listener: TcpListener, tls: Option<Arc<ServerConfig>>) -> io::Result<Acceptor> {
        Ok(match tls {
            None => Acceptor::Plain(listener),
            Some(config) => Acceptor::Tls(TlsListener::new(listener, config)?),
        })
    }

    /// Whether connections are TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Acceptor::Tls(_))
    }

    /// `https` or `http`, for the URLs a process prints.
    pub fn scheme(&self) -> &'static str {
        if self.is_tls() { "https" } else { "http" }
    }

    /// The next connection, with `TCP_NODELAY` set (small responses must not wait for
    /// Nagle's algorithm). Errors are those of `accept(2)` (out of descriptors and the
    /// like): the caller backs off and calls again.
    pub async fn accept(&mut self) -> io::Result<(Stream, SocketAddr)> {
        match self {
            Acceptor::Plain(listener) => {
                let (tcp, addr) = listener.accept().await?;
                let _ = tcp.set_nodelay(true);
                Ok((Stream::Plain(tcp), addr))
            }
            Acceptor::Tls(listener) => match listener.ready.recv().await {
                Some(Ok((tls, addr))) => Ok((Stream::Tls(Box::new(tls)), addr)),
                Some(Err(e)) => Err(e),
                None => Err(io::Error::other("the TLS accept task has ended")),
            },
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Acceptor::Plain(l) => l.local_addr(),
            Acceptor::Tls(l) => Ok(l.local),
        }
    }
}

impl axum::serve::Listener for Acceptor {
    type Io = Stream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Stream, SocketAddr) {
        loop {
            match Acceptor::accept(self).await {
                Ok(a) => return a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Acceptor::local_addr(self)
    }
}

type Ready = io::Result<(TlsStream<TcpStream>, SocketAddr)>;

/// TLS connections whose handshake completed, from a task that owns the TCP listener. The
/// task ends when this is dropped.
pub struct TlsListener {
    ready: mpsc::Receiver<Ready>,
    local: SocketAddr,
}

impl TlsListener {
    fn new(listener: TcpListener, config: Arc<ServerConfig>) -> io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(accept_tls(listener, TlsAcceptor::from(config), tx));
        Ok(TlsListener { ready, local })
    }
}

async fn accept_tls(listener: TcpListener, acceptor: TlsAcceptor, tx: mpsc::Sender<Ready>) {
    let limit = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = tx.closed() => return,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = tx.closed() => return,
        };
        let (tcp, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors and the like: the consumer logs it and backs off.
                if tx.send(Err(e)).await.is_err() {
                    return;
                }
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&acceptor, tcp)).await {
                Ok(Ok(Some(tls))) => {
                    let _ = tx.send(Ok((tls, addr))).await;
                }
                Ok(Ok(None)) => tracing::debug!(%addr, "plain HTTP on a TLS port: answered 400"),
                Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
            }
        });
    }
}

/// The handshake, or `None` when the client spoke plain HTTP (it was told so).
async fn handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
) -> io::Result<Option<TlsStream<TcpStream>>> {
    let mut first = [0u8; 1];
    if tcp.peek(&mut first).await? == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed before the handshake"));
    }
    if first[0] != TLS_HANDSHAKE_RECORD {
        if first[0].is_ascii_uppercase() {
            // An HTTP method (or h2's `PRI`): answer in HTTP so the client says why.
            refuse_plain_http(tcp).await?;
            return Ok(None);
        }
        return Err(io::Error::new(io::ErrorKind::InvalidData, "not a TLS handshake"));
    }
    acceptor.accept(tcp).await.map(Some)
}

async fn refuse_plain_http(mut tcp: TcpStream) -> io::Result<()> {
    let body = r#"{"error": "this port speaks TLS: use https://"}"#;
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(response.as_bytes()).await?;
    tcp.shutdown().await
}

/// An accepted connection.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stream::Plain(_) => "Stream::Plain",
            Stream::Tls(_) => "Stream::Tls",
        })
    }
}

impl Stream {
    /// Whether this is a TLS connection.
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// The TCP connection underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        }
    }

    /// Sets `TCP_NODELAY` on the connection underneath.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.tcp().set_nodelay(nodelay)
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp().peer_addr()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
