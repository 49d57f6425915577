//! Connections: the accept loop, per-connection time limits and graceful
//! shutdown with a deadline.
//!
//! Each limit bounds what one slow or hostile client can hold:
//! - headers must arrive within `header` (hyper's header read timeout, which
//!   also closes a kept-alive connection idle for that long);
//! - a connection whose client accepts no response bytes for `write` is
//!   closed ([`StallLimit`]), which ends a stalled export and frees its slot;
//! - after the shutdown signal, open connections get `shutdown` to finish,
//!   then the node stops anyway: acknowledged votes are already durable.
//!
//! Request bodies have their own deadline in [`crate::extract::JsonBody`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::time::Sleep;

/// The time limits of every connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) header: Duration,
    pub(crate) write: Duration,
    pub(crate) shutdown: Duration,
}

/// Serves `router` on `listener` until `shutdown` completes, then waits at
/// most `limits.shutdown` for open connections.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);

    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                accept_failed(e).await;
                continue;
            }
        };
        // Small JSON replies should not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);

        let io = TokioIo::new(StallLimit::new(stream, limits.write));
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(builder.serve_connection(io, service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(conn = %peer, error = %e, "connection closed with an error");
            }
        });
    }

    // Stop accepting before waiting: a new client gets "connection refused".
    drop(listener);
    let open = graceful.count();
    tracing::debug!(conns = open, "waiting for open connections");
    if tokio::time::timeout(limits.shutdown, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            deadline_secs = limits.shutdown.as_secs(),
            "connections still open at the shutdown deadline are cut off"
        );
    }
}

/// A failed accept: a client that gave up is nothing; anything else (out
/// of file descriptors, say) is logged and slowed down so it does not spin.
async fn accept_failed(error: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::warn!(%error, "accept failed; new connections wait a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// A stream whose writes fail with `TimedOut` once the peer has accepted no
/// bytes for `limit`: hyper then drops the connection and, with it, the
/// response body it was sending.
pub(crate) struct StallLimit<S> {
    inner: S,
    limit: Duration,
    /// Armed when a write first returns `Pending`; cleared by any progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> StallLimit<S> {
    pub(crate) fn new(inner: S, limit: Duration) -> Self {
        StallLimit {
            inner,
            limit,
            stalled: None,
        }
    }

    fn after<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                let message = format!("client accepted no data for {} s", limit.as_secs());
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, message)))
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallLimit<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallLimit<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.after(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.after(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.after(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.after(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn a_reader_that_never_reads_times_the_writer_out() {
        let (near, _far) = tokio::io::duplex(1024);
        let mut stream = StallLimit::new(near, Duration::from_millis(200));
        let chunk = vec![0u8; 4096];

        let written = tokio::time::timeout(Duration::from_secs(5), stream.write_all(&chunk)).await;

        let error = written.expect("the stall limit fires first").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn a_slow_but_steady_reader_is_not_cut_off() {
        let (near, mut far) = tokio::io::duplex(1024);
        let mut stream = StallLimit::new(near, Duration::from_millis(300));
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let mut total = 0;
            while total < 8192 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                total += tokio::io::AsyncReadExt::read(&mut far, &mut buf)
                    .await
                    .unwrap();
            }
        });

        stream.write_all(&[1u8; 8192]).await.unwrap();

        reader.await.unwrap();
    }
}
