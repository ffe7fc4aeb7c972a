//! The HTTP listener: WebSocket upgrades, the REST and admin routes, over HTTP/1.1.
//!
//! Served with hyper's HTTP/1 connection rather than `axum::serve`, whose protocol detection
//! wraps every connection in a private type: here an upgraded WebSocket connection gives its
//! `TcpStream` back (`Upgraded::downcast`), so the session reads and writes the socket without
//! hyper's layers in between, and flow control can bound its receive buffer.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tower_service::Service;

use crate::context::ServerContext;

/// Accepts connections until shutdown, each served on its own task.
pub async fn serve(listener: TcpListener, app: Router, ctx: Arc<ServerContext>) {
    loop {
        let accepted = tokio::select! {
            _ = ctx.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                super::socket::tune(&stream, ctx.config.tcp_receive_buffer);
                ctx.tracker
                    .spawn(connection(stream, peer, app.clone(), ctx.clone()));
            }
            Err(error) => super::accept_failed(&error).await,
        }
    }
}

/// Serves one connection's requests until it closes, is upgraded, or the server shuts down
/// (then the request in progress is finished first).
async fn connection(stream: TcpStream, peer: SocketAddr, app: Router, ctx: Arc<ServerContext>) {
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let mut app = app.clone();
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        async move {
            let ready: Result<(), Infallible> = std::future::poll_fn(|cx| {
                Service::<axum::extract::Request>::poll_ready(&mut app, cx)
            })
            .await;
            ready?;
            app.call(request).await
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // A bound on silent, idle and slow-header connections, each of which holds a descriptor.
    let header_timeout = ctx.config.http_header_timeout_ms;
    builder
        .timer(TokioTimer::new())
        .header_read_timeout((header_timeout > 0).then(|| Duration::from_millis(header_timeout)));
    let conn = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = ctx.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, "HTTP connection ended with an error");
    }
}
