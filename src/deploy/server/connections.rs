//! The server's connections: accepting them up to a limit, closing the idle and the slow, and
//! a shutdown that ends in bounded time (docs/SECURITY.md, "Server").
//!
//! axum's own `serve` sets no timer, so hyper's header-read timeout never fires and an idle
//! keep-alive connection is held for ever; it also has no connection limit and waits without
//! bound for connections at shutdown. This loop drives hyper's HTTP/1 connections directly
//! (hyper-util's Tokio glue), with:
//! - **a connection limit**: beyond `max_connections` open connections a new one is answered
//!   `503` with a one-line JSON reason and closed at once;
//! - **a header timeout**: a connection that has not sent a whole request head within
//!   `header_timeout` of connecting, or of its previous answer (an idle keep-alive
//!   connection), is closed (hyper's `header_read_timeout` runs whenever a connection waits
//!   for a request head);
//! - **a bounded shutdown**: on the stop signal it stops accepting, asks every connection to
//!   close after its request in flight, and returns after at most `shutdown_grace`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// How connections are limited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnectionLimits {
    /// Open connections at most; more are answered 503 and closed.
    pub max_connections: usize,
    /// How long a connection may take to send a request head (from connecting, or from its
    /// previous answer) before it is closed.
    pub header_timeout: Duration,
    /// How long the shutdown waits for connections to finish.
    pub shutdown_grace: Duration,
}

/// How a serve loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// Connections still open when the grace period ran out (0: all closed in time).
    pub abandoned: usize,
}

/// Serve `app` on `listener` under `limits` until `shutdown` completes; then stop accepting,
/// let requests in flight finish and return within `limits.shutdown_grace`.
pub async fn serve_connections(
    listener: TcpListener,
    app: axum::Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Stopped {
    let open = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // out of file descriptors, or a connection reset before it was accepted: wait a
                // moment rather than spin, and go on serving the connections already open
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            tokio::spawn(refuse(stream, limits.max_connections));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // a client that goes away or times out is not an error of the server's
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    let max = limits.max_connections.max(1);
    match tokio::time::timeout(limits.shutdown_grace, graceful.shutdown()).await {
        Ok(()) => Stopped { abandoned: 0 },
        Err(_) => Stopped {
            abandoned: max - open.available_permits(),
        },
    }
}

/// Answer a connection beyond the limit with 503 and close it (the answer is small enough for
/// the socket's buffer; a client that does not read it is dropped after a second).
async fn refuse(mut stream: TcpStream, limit: usize) {
    let body = format!("{{\"error\":\"too many connections: the limit is {limit}, retry later\"}}");
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n",
        body.len()
    );
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}
