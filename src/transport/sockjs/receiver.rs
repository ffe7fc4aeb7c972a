//! Receiving requests: the HTTP responses that carry a session's frames to its client, for
//! every transport but WebSocket. Streaming transports (`xhr_streaming`, `eventsource`,
//! `htmlfile`) keep their response open until it has carried the response limit, then end it
//! and the client opens the next one; polling transports (`xhr`, `jsonp`) end theirs after one
//! frame.
//!
//! A response's body is a stream that asks the session for its next frame only when hyper
//! asks for the next chunk, so a client that reads slowly holds at most one frame in the
//! server besides what its session queues (which is bounded). A body dropped before it ended
//! means the client went away.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::connection::Connection;
use super::frames::{self, Wrapping};
use super::session::{Attach, Outgoing, Session};
use super::{cors, Endpoint};
use crate::transport::http::DropConnection;

/// The receiving transports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// `POST .../xhr`: one frame per request.
    XhrPolling,
    /// `POST .../xhr_streaming`.
    XhrStreaming,
    /// `GET .../eventsource`.
    EventSource,
    /// `GET .../htmlfile?c=callback`.
    HtmlFile(String),
    /// `GET .../jsonp?c=callback`: one frame per request.
    Jsonp(String),
}

impl Transport {
    fn wrapping(&self) -> Wrapping {
        match self {
            Transport::XhrPolling | Transport::XhrStreaming => Wrapping::Line,
            Transport::EventSource => Wrapping::EventSource,
            Transport::HtmlFile(_) => Wrapping::HtmlFile,
            Transport::Jsonp(callback) => Wrapping::Jsonp(callback.clone()),
        }
    }

    fn content_type(&self) -> &'static str {
        match self {
            Transport::XhrPolling | Transport::XhrStreaming | Transport::Jsonp(_) => {
                "application/javascript; charset=UTF-8"
            }
            Transport::EventSource => "text/event-stream",
            Transport::HtmlFile(_) => "text/html; charset=UTF-8",
        }
    }

    /// What a streaming response starts with, before any frame: 2 KiB for XHR streaming
    /// (Internet Explorer shows nothing of a response before its first 2 KiB), a newline for
    /// EventSource (Opera needs it), and the page that calls the parent's callback for
    /// htmlfile (padded past 1 KiB, which Safari reads before it runs anything).
    fn prelude(&self) -> Option<Bytes> {
        match self {
            Transport::XhrStreaming => {
                let mut prelude = vec![b'h'; 2048];
                prelude.push(b'\n');
                Some(Bytes::from(prelude))
            }
            Transport::EventSource => Some(Bytes::from_static(b"\r\n")),
            Transport::HtmlFile(callback) => Some(Bytes::from(htmlfile_page(callback))),
            Transport::XhrPolling | Transport::Jsonp(_) => None,
        }
    }

    /// Polling transports end their response after one frame.
    fn polls(&self) -> bool {
        matches!(self, Transport::XhrPolling | Transport::Jsonp(_))
    }
}

/// The htmlfile transport's page (its callback already checked by `frames::valid_callback`).
fn htmlfile_page(callback: &str) -> String {
    let mut page = format!(
        r#"
<!doctype html>
<html><head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
</head><body><h2>Don't panic!</h2>
  <script>
    document.domain = document.domain;
    var c = parent.{callback};
    c.start();
    function p(d) {{c.message(d);}};
    window.onload = function() {{c.stop();}};
  </script>
"#
    );
    let padded = 1024 + 13;
    if page.len() < padded {
        page.push_str(&" ".repeat(padded - page.len()));
    }
    page.push_str("\r\n\r\n");
    page
}

/// Answers a receiving request for session `session_id` (created when it does not exist).
pub fn respond(
    endpoint: &Arc<Endpoint>,
    session_id: &str,
    transport: Transport,
    request: &HeaderMap,
    peer: String,
) -> Response {
    let Ok((session, from_client)) = endpoint
        .registry
        .get_or_create(session_id, &endpoint.timing)
    else {
        // Full: a client retries, or falls back, as for any server error.
        let mut response = (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")],
            "Too many sessions.",
        )
            .into_response();
        let headers = response.headers_mut();
        cors::no_cache(headers);
        if matches!(transport, Transport::XhrPolling | Transport::XhrStreaming) {
            cors::xhr_cors(request, headers);
        }
        return response;
    };
    let limit = if transport.polls() {
        1
    } else {
        endpoint.options.response_limit.max(1)
    };
    let mut receiver = Receiver {
        session: session.clone(),
        id: None,
        wrapping: transport.wrapping(),
        ready: VecDeque::new(),
        sent: 0,
        limit,
        ending: false,
        shutdown: endpoint.options.shutdown.clone(),
        ended: None,
    };
    // The kill switch: once the session is over, the connection is dropped if this response
    // is still going (hyper stopped polling it because its client stopped reading).
    let ended = CancellationToken::new();
    let drop_connection = DropConnection {
        when: session.over_token(),
        unless: ended.clone(),
    };
    receiver.ended = Some(ended.drop_guard());
    if let Some(prelude) = transport.prelude() {
        receiver.ready.push_back(prelude);
    }
    match session.attach(transport.polls()) {
        Attach::Opened(id) => {
            receiver.id = Some(id);
            receiver.push_frame(frames::OPEN);
        }
        Attach::Attached(id) => receiver.id = Some(id),
        Attach::Busy => {
            receiver.push_frame(&frames::another_connection());
            receiver.ending = true;
        }
        Attach::Closed { pending, frame } => {
            if !pending.is_empty() {
                let bytes = pending.iter().map(Bytes::len).sum();
                receiver.push_frame(&frames::messages(&pending, bytes));
            }
            if let Some(frame) = frame {
                receiver.push_frame(&frame);
            }
            receiver.ending = true;
        }
    }
    let attached = receiver.id.is_some();
    // The request that created the session starts the application on it, once the session
    // is open (whichever receiving request opened it).
    if let Some(from_client) = from_client {
        endpoint
            .service
            .open(Connection::new(session, from_client, peer));
    }

    let body = futures::stream::unfold(receiver, |mut receiver| async move {
        let chunk = receiver.next_chunk().await?;
        Some((Ok::<_, Infallible>(chunk), receiver))
    });
    let mut response = Response::new(Body::from_stream(body));
    if attached {
        // Only a response that waits on the session: one that answers `Busy` or a closed
        // session is short and ends by itself, even when the session is already over.
        response.extensions_mut().insert(drop_connection);
    }
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(transport.content_type()),
    );
    cors::jsessionid(endpoint.options.jsessionid, request, headers);
    cors::no_cache(headers);
    match transport {
        Transport::XhrPolling | Transport::XhrStreaming => cors::xhr_cors(request, headers),
        Transport::EventSource => cors::eventsource_cors(request, headers),
        Transport::Jsonp(_) => {
            // A JSONP answer is script: never sniffed as anything else (SWF JSONP exploit).
            headers.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
        }
        Transport::HtmlFile(_) => {}
    }
    response
}

/// One receiving response: its chunks, produced as hyper asks for them.
struct Receiver {
    session: Arc<Session>,
    /// The receiver number while attached to the session.
    id: Option<u64>,
    wrapping: Wrapping,
    /// Chunks to send before asking the session for more.
    ready: VecDeque<Bytes>,
    /// Frame bytes sent (the prelude not counted).
    sent: usize,
    /// Frame bytes after which the response ends.
    limit: usize,
    /// Ends once `ready` is sent.
    ending: bool,
    shutdown: CancellationToken,
    /// Cancels the kill switch's watch when the response ends (the receiver is dropped).
    ended: Option<DropGuard>,
}

impl Receiver {
    /// Queues `frame`, wrapped; once the response has carried its limit, it ends after it.
    fn push_frame(&mut self, frame: &str) {
        self.push_chunk(Bytes::from(self.wrapping.wrap(frame)));
    }

    /// Queues a chunk already wrapped.
    fn push_chunk(&mut self, chunk: Bytes) {
        self.sent += chunk.len();
        if self.sent >= self.limit {
            self.ending = true;
        }
        self.ready.push_back(chunk);
    }

    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(chunk) = self.ready.pop_front() {
            return Some(chunk);
        }
        let id = match self.id {
            Some(id) if !self.ending => id,
            _ => {
                self.finish();
                return None;
            }
        };
        match self.session.next(id, &self.shutdown).await {
            Outgoing::Messages(messages, bytes) => {
                let chunk = self.wrapping.messages(&messages, bytes);
                self.push_chunk(chunk);
            }
            Outgoing::Heartbeat => self.push_frame(frames::HEARTBEAT),
            Outgoing::Close(code, reason) => {
                self.push_frame(&frames::close(code, &reason));
                self.ending = true;
            }
            Outgoing::End => {
                self.finish();
                return None;
            }
        }
        self.ready.pop_front()
    }

    /// The response ended as it should: the session waits for the next receiving request.
    fn finish(&mut self) {
        if let Some(id) = self.id.take() {
            self.session.detach(id, false);
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // Dropped while attached: hyper let go of the body before its end, so the client
        // closed the connection.
        if let Some(id) = self.id.take() {
            self.session.detach(id, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_htmlfile_page_calls_the_callback_and_passes_one_kib() {
        let page = htmlfile_page("callback");
        assert!(page.contains("var c = parent.callback;"));
        assert!(page.len() > 1024);
        assert!(page.ends_with("\r\n\r\n"));
        assert_eq!(
            Transport::XhrStreaming.prelude().map(|p| p.len()),
            Some(2049)
        );
    }
}
