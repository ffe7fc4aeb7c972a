//! Resumable uploads over HTTP: the tus 1.0.0 core protocol with its `creation`,
//! `termination` and `expiration` extensions, so that any tus client library uploads a large
//! file over a flaky network and goes on where it stopped.
//!
//! - `OPTIONS /api/uploads/tus`: what the server supports (no credentials needed).
//! - `POST /api/uploads/tus` with `Upload-Length` and `Upload-Metadata: filename <base64>`:
//!   `201` and the upload's URL in `Location`.
//! - `HEAD /api/uploads/tus/{id}`: `Upload-Offset`, the bytes stored.
//! - `PATCH /api/uploads/tus/{id}` with `Upload-Offset` and an
//!   `application/offset+octet-stream` body: `204` and the new `Upload-Offset`.
//! - `DELETE /api/uploads/tus/{id}`: removes it.
//!
//! Once its last byte is in, the upload is an ordinary one with the same id
//! (`GET /api/uploads/{id}`, and job parameters that take an upload id).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::caller::Caller;
use super::problem::Problem;
use super::uploads::problem;
use crate::context::ServerContext;
use crate::uploads::Progress;

const TUS_VERSION: &str = "1.0.0";
const TUS_RESUMABLE: HeaderName = HeaderName::from_static("tus-resumable");
const UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
const UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");
const UPLOAD_METADATA: HeaderName = HeaderName::from_static("upload-metadata");
const UPLOAD_EXPIRES: HeaderName = HeaderName::from_static("upload-expires");

/// A tus answer: every one of them, errors included, says `Tus-Resumable`.
fn tus(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(TUS_RESUMABLE, HeaderValue::from_static(TUS_VERSION));
    response
}

/// Runs a tus request's handler and marks its answer, whichever it is.
fn answer(result: Result<Response, Problem>) -> Response {
    tus(result.unwrap_or_else(IntoResponse::into_response))
}

/// Requests other than `OPTIONS` must name the protocol version they speak.
fn check_version(headers: &HeaderMap) -> Result<(), Problem> {
    match headers.get(&TUS_RESUMABLE) {
        Some(v) if v == TUS_VERSION => Ok(()),
        _ => Err(Problem::new(
            StatusCode::PRECONDITION_FAILED,
            "unsupported_version",
            format!("send Tus-Resumable: {TUS_VERSION}, the protocol version this server speaks"),
        )),
    }
}

/// A header holding a non-negative integer; `None` when absent.
fn number(headers: &HeaderMap, name: &HeaderName) -> Result<Option<u64>, Problem> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| {
                    Problem::bad_request(
                        "invalid_header",
                        format!("{name} must be a non-negative integer"),
                    )
                })
        })
        .transpose()
}

/// The `filename` of `Upload-Metadata` (`key base64value` pairs separated by commas).
fn metadata_name(headers: &HeaderMap) -> Result<String, Problem> {
    let missing = || {
        Problem::bad_request(
            "bad_name",
            "name the file: Upload-Metadata: filename <the name in base64>",
        )
    };
    let metadata = headers
        .get(&UPLOAD_METADATA)
        .ok_or_else(missing)?
        .to_str()
        .map_err(|_| missing())?;
    for pair in metadata.split(',') {
        let mut words = pair.trim().splitn(2, ' ');
        if words.next() == Some("filename") {
            let encoded = words.next().unwrap_or("").trim();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|_| {
                    Problem::bad_request("invalid_header", "Upload-Metadata: bad base64")
                })?;
            return String::from_utf8(bytes).map_err(|_| {
                Problem::bad_request("bad_name", "the file name in Upload-Metadata is not UTF-8")
            });
        }
    }
    Err(missing())
}

/// When an upload created at `created_at` expires, as an HTTP date.
fn expires(ctx: &ServerContext, created_at: u64) -> Option<HeaderValue> {
    let at = std::time::UNIX_EPOCH
        + std::time::Duration::from_millis(created_at.saturating_add(ctx.config.job_retention_ms));
    HeaderValue::from_str(&httpdate::fmt_http_date(at)).ok()
}

/// Where `progress` stands, in tus headers.
fn state_headers(ctx: &ServerContext, progress: &Progress, response: &mut Response) {
    let (offset, _) = progress.offset_and_length();
    let headers = response.headers_mut();
    headers.insert(UPLOAD_OFFSET, HeaderValue::from(offset));
    if let Some(at) = expires(ctx, progress.created_at()) {
        headers.insert(UPLOAD_EXPIRES, at);
    }
}

/// `OPTIONS /api/uploads/tus`.
pub(crate) async fn options(State(ctx): State<Arc<ServerContext>>) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert("tus-version", HeaderValue::from_static(TUS_VERSION));
    headers.insert(
        "tus-extension",
        HeaderValue::from_static("creation,termination,expiration"),
    );
    headers.insert("tus-max-size", HeaderValue::from(ctx.uploads.max_bytes()));
    tus(response)
}

/// `POST /api/uploads/tus`.
pub(crate) async fn create(
    State(ctx): State<Arc<ServerContext>>,
    caller: Result<Caller, Problem>,
    headers: HeaderMap,
) -> Response {
    answer(
        async {
            let caller = caller?;
            check_version(&headers)?;
            let length = number(&headers, &UPLOAD_LENGTH)?.ok_or_else(|| {
                Problem::bad_request(
                    "invalid_header",
                    "send Upload-Length: this server does not take deferred lengths",
                )
            })?;
            let name = metadata_name(&headers)?;
            let progress = ctx
                .uploads
                .create_resumable(&caller.user, &name, length)
                .await
                .map_err(problem)?;
            let id = match &progress {
                Progress::Partial { upload, .. } => upload.id.clone(),
                Progress::Complete(info) => info.id.clone(),
            };
            tracing::info!(user = %caller.user, upload = %id, length, "resumable upload created");
            let mut response = StatusCode::CREATED.into_response();
            state_headers(&ctx, &progress, &mut response);
            let location = HeaderValue::from_str(&format!("/api/uploads/tus/{id}"))
                .map_err(|e| Problem::bad_request("invalid_header", e.to_string()))?;
            response.headers_mut().insert(header::LOCATION, location);
            Ok(response)
        }
        .await,
    )
}

/// Upload `id` for an authenticated caller speaking our version of the protocol.
async fn find(
    ctx: &ServerContext,
    caller: Result<Caller, Problem>,
    id: &str,
    headers: &HeaderMap,
) -> Result<(Caller, Progress), Problem> {
    let caller = caller?;
    check_version(headers)?;
    let progress = ctx
        .uploads
        .resumable(id, &caller.user, caller.admin)
        .await
        .map_err(problem)?;
    Ok((caller, progress))
}

/// `HEAD /api/uploads/tus/{id}`.
pub(crate) async fn head(
    State(ctx): State<Arc<ServerContext>>,
    caller: Result<Caller, Problem>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    answer(
        async {
            let (_, progress) = find(&ctx, caller, &id, &headers).await?;
            let mut response = StatusCode::OK.into_response();
            state_headers(&ctx, &progress, &mut response);
            let (_, length) = progress.offset_and_length();
            let headers = response.headers_mut();
            headers.insert(UPLOAD_LENGTH, HeaderValue::from(length));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(response)
        }
        .await,
    )
}

/// `PATCH /api/uploads/tus/{id}`.
pub(crate) async fn patch(
    State(ctx): State<Arc<ServerContext>>,
    caller: Result<Caller, Problem>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    answer(
        async {
            let (caller, progress) = find(&ctx, caller, &id, request.headers()).await?;
            let headers = request.headers();
            let octets = headers
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v == "application/offset+octet-stream");
            if !octets {
                return Err(Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send the bytes as Content-Type: application/offset+octet-stream",
                ));
            }
            let offset = number(headers, &UPLOAD_OFFSET)?.ok_or_else(|| {
                Problem::bad_request("invalid_header", "send Upload-Offset")
            })?;
            let progress = match progress {
                Progress::Partial { upload, .. } => {
                    let body: Body = request.into_body();
                    ctx.uploads
                        .append(upload, offset, body.into_data_stream())
                        .await
                        .map_err(problem)?
                }
                // Its last answer was lost: the client is told where it stands.
                done @ Progress::Complete(_) if offset == done.offset_and_length().0 => done,
                done => {
                    return Err(problem(crate::uploads::UploadError::OffsetMismatch {
                        expected: done.offset_and_length().0,
                        given: offset,
                    }))
                }
            };
            if let Progress::Complete(info) = &progress {
                tracing::info!(user = %caller.user, upload = %info.id, size = info.size, "resumable upload complete");
            }
            let mut response = StatusCode::NO_CONTENT.into_response();
            state_headers(&ctx, &progress, &mut response);
            Ok(response)
        }
        .await,
    )
}

/// `DELETE /api/uploads/tus/{id}`.
pub(crate) async fn delete(
    State(ctx): State<Arc<ServerContext>>,
    caller: Result<Caller, Problem>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    answer(
        async {
            let (_, progress) = find(&ctx, caller, &id, &headers).await?;
            ctx.uploads.terminate(&progress).await.map_err(problem)?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_file_name_comes_from_upload_metadata() {
        let mut headers = HeaderMap::new();
        headers.insert(
            UPLOAD_METADATA,
            HeaderValue::from_static("filetype dGV4dC9jc3Y=,filename cmVsZXbDqS5jc3Y=,empty"),
        );
        assert_eq!(metadata_name(&headers).unwrap(), "relevé.csv");
        headers.insert(
            UPLOAD_METADATA,
            HeaderValue::from_static("filetype dGV4dC9jc3Y="),
        );
        assert!(metadata_name(&headers).is_err());
    }
}
