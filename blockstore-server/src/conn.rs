//! The accept loop: each connection is served by hyper's HTTP/1.1 connection with a timer,
//! so a client that does not finish a request head within the head time-out is closed —
//! a head dribbled a byte at a time, a connection opened and left silent, and a keep-alive
//! connection left idle after its last reply (the timer restarts whenever the connection
//! waits for a new request). axum's own `serve` sets no timer, so none of these ever ended.
//! The time-out never runs while a request is being handled or its reply sent: those are
//! bounded by the request time limit (`middleware.rs`) and the client's own stall checks.
//!
//! Shutdown (SIGTERM, Ctrl-C) stops accepting, closes idle connections and lets requests in
//! flight finish.

use axum::serve::Listener;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::time::Duration;

/// Serves `app` on every connection `listener` yields until `shutdown` completes.
pub async fn serve<L: Listener>(
    mut listener: L,
    app: Router,
    head_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) where
    L::Addr: std::fmt::Debug,
{
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (io, peer) = tokio::select! {
            conn = listener.accept() => conn,
            () = &mut shutdown => break,
        };
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(head_timeout);
        let conn =
            builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(?peer, %e, "connection ended");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
