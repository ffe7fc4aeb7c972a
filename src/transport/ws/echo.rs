//! A WebSocket echo server on the broker's own WebSocket code, without STOMP: every text and
//! binary message comes back as it came, with the broker's framing, UTF-8 checks, limits,
//! ping answers and closing handshake. It exists for conformance suites:
//! `examples/ws_echo.rs` serves it to the Autobahn test suite's fuzzing client
//! (`scripts/autobahn.sh`; the results are in RELIABILITY.md).
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
//! stompede::ws_echo::serve(listener, stompede::ws_echo::Options::default()).await
//! # }
//! ```

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWrite;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::upgrade::{accept_key, switching_protocols};
use super::{ReadOptions, Shared, WsSink, WsSource};
use crate::transport::socket::ReadSide;
use crate::transport::FrameSink;

/// How the echo server reads.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Largest message, in bytes, of any number of fragments; a larger one fails the
    /// connection with close code 1009. The broker's default: 16 MiB.
    pub max_message: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_message: crate::Config::default().max_body_len,
        }
    }
}

/// Longest wait, once the server has failed a connection and sent its close frame, for the
/// peer's close frame (the broker's sessions wait as long).
const LINGER: Duration = Duration::from_secs(2);

/// Serves WebSocket echo on every path of `listener`'s address until accepting fails; each
/// connection on a task of its own.
pub async fn serve(listener: TcpListener, options: Options) -> io::Result<()> {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                crate::transport::accept_failed(&error).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream, options));
    }
}

/// Answers one connection's opening handshake and echoes on it.
async fn connection(stream: TcpStream, options: Options) {
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let mut request = request.map(Body::new);
        let response = match accept_key(&request) {
            Err(refusal) => *refusal,
            Ok(accept) => match request
                .extensions_mut()
                .remove::<hyper::upgrade::OnUpgrade>()
            {
                None => (
                    axum::http::StatusCode::BAD_REQUEST,
                    "this connection cannot be upgraded\n",
                )
                    .into_response(),
                Some(on_upgrade) => {
                    tokio::spawn(async move {
                        if let Ok(upgraded) = on_upgrade.await {
                            upgraded_connection(upgraded, options).await;
                        }
                    });
                    switching_protocols(&accept, None)
                }
            },
        };
        async move { Ok::<Response, Infallible>(response) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
}

/// Echoes on an upgraded connection: on the socket's own halves when it is a TCP stream.
async fn upgraded_connection(upgraded: hyper::upgrade::Upgraded, options: Options) {
    match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => {
            let (read, write) = parts.io.into_inner().into_split();
            echo(read, write, parts.read_buf, options).await;
        }
        Err(upgraded) => {
            let (read, write) = tokio::io::split(TokioIo::new(upgraded));
            echo(read, write, Bytes::new(), options).await;
        }
    }
}

/// Reads messages and hands them to a writer task that sends them back, as a session's reader
/// and writer share a connection: the writer also sends the pongs and the close frame the
/// reader leaves it.
async fn echo<R, W>(read: R, write: W, already_read: Bytes, options: Options)
where
    R: ReadSide + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let shared = Arc::new(Shared::default());
    let read_options = ReadOptions {
        lenient: false,
        max_message: options.max_message,
        paced_receive_buffer: 0,
    };
    let mut source = WsSource::new(read, already_read, shared.clone(), read_options);
    let sink = WsSink {
        write,
        shared,
        transport: "websocket",
    };
    // One message waits while the previous one is written: memory stays within two messages.
    let (tx, rx) = mpsc::channel(1);
    let writer = tokio::spawn(write_back(sink, rx));
    let failed = loop {
        match source.next_message().await {
            Ok(Some((text, payload))) => {
                if tx.send((text, payload.freeze())).await.is_err() {
                    break false;
                }
            }
            Ok(None) => break false,
            // The reader failed the connection (section 7.1.7): its close code waits in
            // `shared` for the writer.
            Err(error) => break error.kind() == io::ErrorKind::InvalidData,
        }
    };
    drop(tx);
    let _ = writer.await;
    if failed {
        // The close frame is out and the write side shut: read on until the peer's close
        // frame, so that closing does not reset a connection whose peer has unread input.
        let _ = tokio::time::timeout(
            LINGER,
            crate::transport::FrameSource::discard_input(&mut source),
        )
        .await;
    }
}

/// Sends each message back as one frame, the pongs owed as they come, then the close frame.
async fn write_back<W>(mut sink: WsSink<W>, mut rx: mpsc::Receiver<(bool, Bytes)>)
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    loop {
        let written = tokio::select! {
            // Control first: a pong owed for a ping that came before a message's last
            // fragment goes out before that message (Autobahn 5.6).
            biased;
            () = sink.control() => {
                let mut buf = BytesMut::new();
                sink.take_control(&mut buf);
                sink.write_all(&buf).await
            }
            message = rx.recv() => match message {
                Some((text, payload)) => {
                    let mut head = BytesMut::new();
                    let start = sink.begin_frame(&mut head, payload.len());
                    sink.end_frame(&mut head, start, text, payload.len());
                    let mut parts = [io::IoSlice::new(&head), io::IoSlice::new(&payload)];
                    sink.write_all_vectored(&mut parts).await
                }
                None => break,
            },
        };
        if written.is_err() {
            return;
        }
    }
    sink.close().await;
}
