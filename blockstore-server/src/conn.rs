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

use crate::guard::Peer;
use axum::serve::Listener;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

/// `app` with the connection's peer address attached to each request ([`Peer`]), which
/// the admin routes of a store without tokens check.
#[derive(Clone)]
struct WithPeer {
    app: Router,
    peer: Peer,
}

impl<B> tower_service::Service<axum::http::Request<B>> for WithPeer
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = <Router as tower_service::Service<axum::http::Request<B>>>::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        tower_service::Service::<axum::http::Request<B>>::poll_ready(&mut self.app, cx)
    }

    fn call(&mut self, mut req: axum::http::Request<B>) -> Self::Future {
        req.extensions_mut().insert(self.peer);
        tower_service::Service::call(&mut self.app, req)
    }
}

/// Serves `app` on every connection `listener` yields until `shutdown` completes.
pub(crate) async fn serve<L: Listener<Addr = SocketAddr>>(
    mut listener: L,
    app: Router,
    head_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
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
        let svc = WithPeer {
            app: app.clone(),
            peer: Peer(peer),
        };
        let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(svc));
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
