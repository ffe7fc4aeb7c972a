//! Sending requests: `xhr_send` (a JSON array of messages as the body) and `jsonp_send` (the
//! same array in a form field `d`, or as the raw body). The answer waits until the
//! application has room for the messages, which paces a client that sends faster than its
//! session reads: sockjs-client sends one request at a time.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::frames::{self, PayloadError};
use super::{cors, Endpoint};

/// How the messages came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// `POST .../xhr_send`.
    Xhr,
    /// `POST .../jsonp_send`.
    Jsonp,
}

/// Answers a sending request for session `session_id`.
pub async fn respond(
    endpoint: &Arc<Endpoint>,
    session_id: &str,
    sender: Sender,
    request: &HeaderMap,
    body: Body,
) -> Response {
    let mut response = match receive(endpoint, session_id, sender, request, body).await {
        Ok(()) => match sender {
            Sender::Xhr => {
                // Firefox takes a 204 without a content type for XML and complains.
                let mut response = StatusCode::NO_CONTENT.into_response();
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=UTF-8"),
                );
                response
            }
            Sender::Jsonp => {
                ([(header::CONTENT_TYPE, "text/plain; charset=UTF-8")], "ok").into_response()
            }
        },
        Err(response) => response,
    };
    let headers = response.headers_mut();
    cors::jsessionid(endpoint.options.jsessionid, request, headers);
    cors::no_cache(headers);
    if sender == Sender::Xhr {
        cors::xhr_cors(request, headers);
    }
    response
}

async fn receive(
    endpoint: &Arc<Endpoint>,
    session_id: &str,
    sender: Sender,
    request: &HeaderMap,
    body: Body,
) -> Result<(), Response> {
    // The session first, and its turn: the body is read and decoded only by the one
    // sending request the session serves at a time.
    let Some(session) = endpoint.registry.get(session_id) else {
        return Err((
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")],
            "404 Error: Session not found\n",
        )
            .into_response());
    };
    let turn = session.sending().await.map_err(|_| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")],
            "Another send in progress.",
        )
            .into_response()
    })?;
    let body = read_body(body, request, max_request_bytes(&endpoint.options)).await?;
    let payload = match sender {
        Sender::Xhr => body,
        Sender::Jsonp => form_payload(request, &body),
    };
    let messages =
        frames::parse_array(&payload, endpoint.options.max_message_bytes).map_err(payload_error)?;
    if turn.is_some() {
        session.receive(messages).await;
    }
    Ok(())
}

/// The largest sending request: sockjs-client joins every message queued while its last
/// send was in flight into one request, with no cap of its own, and drops the session when
/// a send fails. Room for one message of the largest size, or for four times what a session
/// holds for its client (what a busy client queues while its sends are paced).
fn max_request_bytes(options: &super::Options) -> usize {
    options
        .max_message_bytes
        .max(options.max_pending_bytes.saturating_mul(4))
}

/// The body of a sending request, at most `max` bytes: 413 past that (before reading, when
/// the request says its length), 400 when the body cannot be read (the client went away).
async fn read_body(body: Body, request: &HeaderMap, max: usize) -> Result<Vec<u8>, Response> {
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")],
            "Payload too large.",
        )
            .into_response()
    };
    let declared = request
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        return Err(too_large());
    }
    let mut data = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return Err((
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")],
                "Broken request body.",
            )
                .into_response());
        };
        if data.len().saturating_add(chunk.len()) > max {
            return Err(too_large());
        }
        data.extend_from_slice(&chunk);
    }
    Ok(data)
}

/// The JSON text of a `jsonp_send`: the form field `d` of a form body, else the body itself.
fn form_payload(request: &HeaderMap, body: &[u8]) -> Vec<u8> {
    let form = request
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return body.to_vec();
    }
    form_urlencoded::parse(body)
        .find(|(name, _)| name == "d")
        .map(|(_, value)| value.into_owned().into_bytes())
        .unwrap_or_default()
}

fn payload_error(error: PayloadError) -> Response {
    let status = match error {
        PayloadError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        PayloadError::Expected | PayloadError::BrokenJson => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")],
        error.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonp_payloads_come_from_the_form_or_the_body() {
        let mut headers = HeaderMap::new();
        assert_eq!(form_payload(&headers, b"[\"a\"]"), b"[\"a\"]");
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        assert_eq!(form_payload(&headers, b"d=%5B%22x%22%5D"), b"[\"x\"]");
        assert_eq!(form_payload(&headers, b"p=p"), b"");
    }
}
