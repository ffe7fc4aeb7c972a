//! Sending requests: `xhr_send` (a JSON array of messages as the body) and `jsonp_send` (the
//! same array in a form field `d`, or as the raw body). The answer waits until the
//! application has room for the messages, which paces a client that sends faster than its
//! session reads: sockjs-client sends one request at a time.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

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
    let body = axum::body::to_bytes(body, endpoint.options.max_message_bytes)
        .await
        .map_err(|_| {
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")],
                "Payload too large.",
            )
                .into_response()
        })?;
    let payload = match sender {
        Sender::Xhr => body.to_vec(),
        Sender::Jsonp => form_payload(request, &body),
    };
    let messages = frames::parse_array(&payload).map_err(payload_error)?;
    let Some(session) = endpoint.registry.get(session_id) else {
        return Err((
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")],
            "404 Error: Session not found\n",
        )
            .into_response());
    };
    session.receive(messages).await;
    Ok(())
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
    (
        StatusCode::INTERNAL_SERVER_ERROR,
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
