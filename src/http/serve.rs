//! The connection loop: what `axum::serve` does, plus the bounds a server
//! left on a wall for weeks needs against clients that never finish.
//!
//! - a header-read timeout (hyper's, which needs a timer `axum::serve` does
//!   not give it): a client trickling a header line every few seconds is
//!   cut off, and so is a kept-alive connection idle past it;
//! - a write-stall timeout: a response the client stops reading is
//!   abandoned, so a slow reader cannot hold the server's resources;
//! - a global connection limit: past it a new connection is answered 503
//!   with `Retry-After` and closed, before the process runs out of file
//!   descriptors (after which nothing, `/healthz` included, can answer).
//!
//! Every request carries the client's address (`ConnectInfo`), which the
//! per-client bounds (event streams) count by.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{extract::ConnectInfo, Router};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
    time::{sleep, Sleep},
};
use tower::ServiceExt;

/// The bounds of the connection loop.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// How long requests in flight may finish after a shutdown signal; event
/// streams never finish by themselves, so the wait must end.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serve `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.idle_timeout))
        .keep_alive_timeout(limits.header_timeout);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors or the like: the error is the
                    // listener's, not a client's; wait instead of spinning.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            tokio::spawn(refuse(stream, limits.max_connections));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(StallGuard::new(
            stream,
            limits.header_timeout,
            limits.idle_timeout,
        ));
        let router = router.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
            let mut request = request.map(axum::body::Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let builder = Arc::clone(&builder);
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let connection = builder.serve_connection_with_upgrades(io, service);
            if let Err(e) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(error = %e, client = %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("connections still open after the grace period are closed");
    }
    Ok(())
}

/// Most connections answered "starting" at once.
const STARTING_ANSWERS: usize = 256;

/// Answer every connection with 503 "starting" until `ready` fires, then
/// give the listener back. Loading a large layer into memory takes
/// seconds: meanwhile a health check or a map asking for a tile gets a
/// clear "starting, retry in 1 s" instead of a connection that hangs in the
/// backlog (or an empty tile that would be wrong).
pub async fn answer_starting(
    listener: TcpListener,
    mut ready: tokio::sync::oneshot::Receiver<()>,
) -> TcpListener {
    // Each answer holds its connection for at most 2 s; past this many at
    // once a new connection is closed unanswered rather than piling up
    // tasks and descriptors while the server is not even serving.
    let answering = Arc::new(Semaphore::new(STARTING_ANSWERS));
    loop {
        tokio::select! {
            biased;
            _ = &mut ready => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    if let Ok(permit) = answering.clone().try_acquire_owned() {
                        tokio::spawn(async move {
                            starting(stream).await;
                            drop(permit);
                        });
                    }
                }
                // A failed accept (out of descriptors) must not spin.
                Err(_) => sleep(Duration::from_millis(50)).await,
            },
        }
    }
    listener
}

/// The answer of [`answer_starting`]: the request head is read first (at
/// most 8 KiB, 1 s), so closing does not reset a connection whose request
/// is still unread and the client sees the answer.
async fn starting(mut stream: TcpStream) {
    use tokio::io::AsyncReadExt;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let mut head = Vec::with_capacity(1024);
        let mut block = [0u8; 1024];
        while head.len() < 8 * 1024 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut block).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&block[..n]),
            }
        }
    })
    .await;
    let body = "{\"type\":\"about:blank\",\"title\":\"Service Unavailable\",\"status\":503,\
                \"state\":\"starting\",\
                \"detail\":\"onemap is starting: the layers are loading into memory; retry shortly\"}";
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
         retry-after: 1\r\ncache-control: no-store\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Answer a connection over the limit with a 503 problem and close it.
/// Bounded in time: a client that does not read it is dropped.
async fn refuse(mut stream: TcpStream, limit: usize) {
    let body = format!(
        "{{\"type\":\"about:blank\",\"title\":\"Service Unavailable\",\"status\":503,\
         \"detail\":\"the server holds its limit of {limit} open connections; retry shortly\"}}"
    );
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// A TCP stream whose writes fail once they have made no progress for the
/// idle timeout: the client stopped reading (or vanished without a FIN), and
/// whatever the response holds (a pooled connection, a cursor, memory) is
/// released instead of waiting for TCP's own timeout of many minutes.
/// Its reads fail when a new connection sends nothing within the header
/// timeout: hyper's own header timer starts only at the first byte.
struct StallGuard {
    inner: TcpStream,
    timeout: Duration,
    stalled_since: Option<Pin<Box<Sleep>>>,
    first_byte: Option<Pin<Box<Sleep>>>,
}

impl StallGuard {
    fn new(inner: TcpStream, header_timeout: Duration, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            stalled_since: None,
            first_byte: Some(Box::pin(sleep(header_timeout))),
        }
    }

    /// On a pending write: arm the timer, or fail when it has run out.
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let timeout = self.timeout;
        let timer = self
            .stalled_since
            .get_or_insert_with(|| Box::pin(sleep(timeout)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading the response",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progressed(&mut self) {
        self.stalled_since = None;
    }
}

impl AsyncRead for StallGuard {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        match (&read, self.first_byte.as_mut()) {
            (Poll::Pending, Some(deadline)) => match deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client sent no request",
                ))),
                Poll::Pending => Poll::Pending,
            },
            (Poll::Ready(Ok(())), Some(_)) if buf.filled().len() > before => {
                self.first_byte = None;
                read
            }
            _ => read,
        }
    }
}

impl AsyncWrite for StallGuard {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Pending => self.stalled(cx),
            ready => {
                self.progressed();
                ready
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => self.stalled(cx),
            ready => {
                self.progressed();
                ready
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod starting_tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn ask(addr: std::net::SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).await.expect("connects");
        let req = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("writes");
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
            .await
            .expect("answered within 5 s")
            .expect("reads");
        out
    }

    #[tokio::test]
    async fn while_starting_every_request_is_a_503_to_retry_then_the_listener_returns() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("an address");
        let (ready, wait) = tokio::sync::oneshot::channel();
        let starting = tokio::spawn(answer_starting(listener, wait));
        for path in ["/healthz", "/tiles/rescue_teams/8/213/103.mvt"] {
            let answer = ask(addr, path).await;
            assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
            assert!(answer.contains("retry-after: 1"), "{answer}");
            assert!(answer.contains("application/problem+json"), "{answer}");
            assert!(answer.contains("\"state\":\"starting\""), "{answer}");
        }
        ready.send(()).expect("the responder waits");
        let listener = starting.await.expect("the responder ends");
        // The same socket, now for the real server: a new connection is
        // accepted by whoever holds it next, not answered "starting".
        let client = tokio::spawn(async move { TcpStream::connect(addr).await.is_ok() });
        let accepted = tokio::time::timeout(Duration::from_secs(5), listener.accept()).await;
        assert!(matches!(accepted, Ok(Ok(_))));
        assert!(client.await.unwrap_or(false));
    }
}
