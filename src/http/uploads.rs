//! `POST /api/uploads` (multipart with a `file` part, or a raw body named by
//! `Content-Disposition`) and `GET /api/uploads/{id}`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use futures::StreamExt;

use super::caller::Caller;
use super::problem::Problem;
use crate::context::ServerContext;
use crate::uploads::{Incoming, UploadError, UploadInfo};

/// The answer to a refused or failed upload.
pub(super) fn problem(error: UploadError) -> Problem {
    match error {
        UploadError::OffsetMismatch { .. } => {
            Problem::new(StatusCode::CONFLICT, "offset_mismatch", error.to_string())
        }
        UploadError::PastLength { .. } => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "past_length",
            error.to_string(),
        ),
        // 423, as tus servers answer a second writer.
        UploadError::Busy(_) => Problem::new(StatusCode::LOCKED, "busy", error.to_string()),
        UploadError::TooLarge { .. } => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            error.to_string(),
        ),
        UploadError::BadName(_) => Problem::bad_request("bad_name", error.to_string()),
        UploadError::Interrupted(_) => Problem::bad_request("interrupted", error.to_string()),
        UploadError::NotFound(_) => Problem::not_found(error.to_string()),
        // A full disk is the client's to wait out (507, RFC 4918), a read-only one the
        // server's (503): both name the cause.
        UploadError::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => Problem::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient_storage",
            format!(
                "storing the upload failed: {}",
                crate::store::describe_io(&io)
            ),
        ),
        UploadError::Io(io) if io.kind() == std::io::ErrorKind::ReadOnlyFilesystem => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            format!(
                "storing the upload failed: {}",
                crate::store::describe_io(&io)
            ),
        ),
        UploadError::Io(_) | UploadError::Id(_) => Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage_failure",
            error.to_string(),
        ),
    }
}

/// Stores a multipart file part as an upload of `caller`'s, streamed as it arrives.
async fn store_part(
    ctx: &ServerContext,
    caller: &Caller,
    field: axum::extract::multipart::Field<'_>,
    part: &str,
) -> Result<UploadInfo, Problem> {
    let name = field.file_name().map(str::to_owned).ok_or_else(|| {
        Problem::bad_request("bad_name", format!("the {part} part has no file name"))
    })?;
    let incoming = ctx
        .uploads
        .begin(&caller.user, &name)
        .await
        .map_err(problem)?;
    let chunks = futures::stream::unfold(field, |mut field| async move {
        match field.chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), field)),
            Ok(None) => None,
            Err(error) => Some((Err(error.body_text()), field)),
        }
    });
    fill(incoming, Box::pin(chunks), malformed).await
}

/// Most bytes of one text field of a multipart form (the body limit is off for the files).
const MAX_FIELD_BYTES: usize = 64 * 1024;

/// A text field's value, refused past [`MAX_FIELD_BYTES`] rather than held whole.
async fn field_text(
    mut field: axum::extract::multipart::Field<'_>,
    name: &str,
) -> Result<String, Problem> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| malformed(e.body_text()))? {
        if bytes.len() + chunk.len() > MAX_FIELD_BYTES {
            return Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("field {name} is longer than {MAX_FIELD_BYTES} bytes"),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| {
        Problem::bad_request("invalid_parameter", format!("field {name} is not UTF-8"))
    })
}

fn malformed(why: String) -> Problem {
    Problem::bad_request("malformed_multipart", why)
}

/// What the client sees of an upload (the owner is the caller).
fn public(info: &UploadInfo) -> serde_json::Value {
    serde_json::json!({
        "id": info.id,
        "name": info.name,
        "size": info.size,
        "sha256": info.sha256,
        "contentType": info.content_type,
    })
}

/// The file name of `Content-Disposition: attachment; filename="..."` (UTF-8 bytes as clients
/// send them), or of its RFC 8187 form `filename*=UTF-8''percent-encoded`, which wins.
fn disposition_name(headers: &HeaderMap) -> Option<String> {
    let value = String::from_utf8(
        headers
            .get(header::CONTENT_DISPOSITION)?
            .as_bytes()
            .to_vec(),
    )
    .ok()?;
    let mut plain = None;
    for part in value.split(';').map(str::trim) {
        if let Some(encoded) = part.strip_prefix("filename*=") {
            let (charset, rest) = encoded.split_once('\'')?;
            let (_language, encoded) = rest.split_once('\'')?;
            if charset.eq_ignore_ascii_case("utf-8") {
                return percent_decode(encoded);
            }
        } else if let Some(name) = part.strip_prefix("filename=") {
            plain = Some(name.trim_matches('"').to_owned());
        }
    }
    plain
}

/// `%XX` escapes decoded, as UTF-8; `None` when malformed.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Writes every chunk of `stream` to `incoming`; on any failure nothing is left behind. A
/// stream error is the body's fault: `broken` names it.
async fn fill<S, E>(
    mut incoming: Incoming,
    mut stream: S,
    broken: fn(String) -> Problem,
) -> Result<UploadInfo, Problem>
where
    S: futures::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    while let Some(chunk) = stream.next().await {
        let failed = match chunk {
            Ok(chunk) => incoming.write(&chunk).await.err().map(problem),
            Err(error) => Some(broken(error.to_string())),
        };
        if let Some(problem) = failed {
            incoming.abandon();
            return Err(problem);
        }
    }
    incoming.finish().await.map_err(problem)
}

/// The profiles an upload asks to extract with: the `Auto-Extract` header or the
/// `autoExtract` query parameter.
fn auto_extract(request: &Request) -> Option<String> {
    let header = request
        .headers()
        .get("auto-extract")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    header.or_else(|| {
        form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes())
            .find(|(name, _)| name == "autoExtract")
            .map(|(_, value)| value.into_owned())
    })
}

/// `POST /api/uploads`.
pub(crate) async fn create(
    State(ctx): State<Arc<ServerContext>>,
    caller: Caller,
    request: Request,
) -> Result<impl IntoResponse, Problem> {
    let extract = auto_extract(&request);
    // Checked before a byte is stored: a refused request leaves nothing behind.
    let engine = match extract {
        Some(_) => Some(super::jobs::engine(&ctx)?),
        None => None,
    };
    let limit = ctx.uploads.max_bytes();
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit.saturating_add(64 * 1024)) {
        // Refused before a byte is read (a multipart body carries a little more than its file).
        return Err(problem(UploadError::TooLarge { limit }));
    }
    let is_multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let info = if is_multipart {
        let mut multipart = Multipart::from_request(request, &ctx)
            .await
            .map_err(|e| malformed(e.body_text()))?;
        let mut stored = None;
        loop {
            let field = multipart
                .next_field()
                .await
                .map_err(|e| malformed(e.body_text()))?;
            let Some(field) = field else { break };
            if field.name() != Some("file") || stored.is_some() {
                continue;
            }
            stored = Some(store_part(&ctx, &caller, field, "file").await?);
        }
        stored.ok_or_else(|| {
            Problem::bad_request("missing_file", "the multipart body has no part named file")
        })?
    } else {
        let name = disposition_name(request.headers()).ok_or_else(|| {
            Problem::bad_request(
                "bad_name",
                "name the file: Content-Disposition: attachment; filename=\"...\" \
                 (or send multipart/form-data with a file part)",
            )
        })?;
        let incoming = ctx
            .uploads
            .begin(&caller.user, &name)
            .await
            .map_err(problem)?;
        let body: Body = request.into_body();
        fill(incoming, body.into_data_stream(), |why| {
            problem(UploadError::Interrupted(why))
        })
        .await?
    };
    tracing::info!(user = %caller.user, upload = %info.id, size = info.size, "upload stored");
    let mut answer = public(&info);
    if let (Some(engine), Some(profiles)) = (engine, extract) {
        match engine
            .extract_upload(
                &caller.user,
                &caller.address,
                &info.id,
                &info.sha256,
                &profiles,
            )
            .await
        {
            Ok((job, reused)) => {
                answer["job"] = serde_json::json!({
                    "id": job.id,
                    "status": job.status,
                    "reused": reused,
                    "links": super::jobs::links(&job.id),
                });
            }
            Err(rejection) => {
                ctx.uploads.remove(&info).await;
                return Err(super::jobs::refused(rejection));
            }
        }
    }
    Ok((StatusCode::CREATED, Json(answer)))
}

/// `GET /api/uploads/{id}`.
pub(crate) async fn get(
    State(ctx): State<Arc<ServerContext>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    let info = ctx
        .uploads
        .get(&id, &caller.user, caller.admin)
        .map_err(problem)?;
    Ok(Json(public(&info)))
}

/// `POST /api/reconciliations`: the two files and the keys in one multipart request (parts
/// `boFile` and `partnerFile`, and text fields named like the `reconcile` parameters: `boKey`,
/// `partnerKey`, `delimiter`, ...), as an upload-and-prepare form sends them. Stores both
/// files as uploads, then submits the job: `202` as `POST /api/jobs` answers.
pub(crate) async fn reconciliation(
    State(ctx): State<Arc<ServerContext>>,
    caller: Caller,
    request: Request,
) -> Result<axum::response::Response, Problem> {
    let mut stored: Vec<UploadInfo> = Vec::new();
    let outcome = prepare(&ctx, &caller, request, &mut stored).await;
    if outcome.is_err() {
        // A half-made request leaves no uploads behind.
        for info in &stored {
            ctx.uploads.remove(info).await;
        }
    }
    outcome
}

async fn prepare(
    ctx: &Arc<ServerContext>,
    caller: &Caller,
    request: Request,
    stored: &mut Vec<UploadInfo>,
) -> Result<axum::response::Response, Problem> {
    let mut multipart = Multipart::from_request(request, ctx)
        .await
        .map_err(|e| malformed(e.body_text()))?;
    let mut params = serde_json::Map::new();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| malformed(e.body_text()))?
    {
        let Some(name) = field.name().map(str::to_owned) else {
            continue;
        };
        match name.as_str() {
            "boFile" | "partnerFile" => {
                let info = store_part(ctx, caller, field, &name).await?;
                let key = if name == "boFile" {
                    "boUpload"
                } else {
                    "partnerUpload"
                };
                params.insert(key.into(), serde_json::json!(info.id));
                stored.push(info);
            }
            _ => {
                let text = field_text(field, &name).await?;
                // Lists (composite keys, compared columns) may be sent as JSON.
                let value = match serde_json::from_str::<serde_json::Value>(&text) {
                    Ok(value @ (serde_json::Value::Array(_) | serde_json::Value::Object(_))) => {
                        value
                    }
                    Ok(serde_json::Value::Bool(b)) => serde_json::json!(b),
                    Ok(serde_json::Value::Number(n)) => serde_json::json!(n),
                    _ => serde_json::json!(text),
                };
                params.insert(name, value);
            }
        }
    }
    for part in ["boUpload", "partnerUpload"] {
        if !params.contains_key(part) {
            let file = if part == "boUpload" {
                "boFile"
            } else {
                "partnerFile"
            };
            return Err(Problem::bad_request(
                "missing_file",
                format!("the request has no {file} part"),
            ));
        }
    }
    let submission = serde_json::json!({ "type": "reconcile", "params": params });
    let submission: super::jobs::Submission = serde_json::from_value(submission)
        .map_err(|e| Problem::bad_request("invalid_parameter", e.to_string()))?;
    let accepted = super::jobs::submit(ctx, caller, submission).await?;
    tracing::info!(user = %caller.user, files = stored.len(), "reconciliation prepared");
    Ok(accepted.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_come_from_either_form_of_content_disposition() {
        let name = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::CONTENT_DISPOSITION,
                axum::http::HeaderValue::from_bytes(value.as_bytes()).unwrap(),
            );
            disposition_name(&headers)
        };
        assert_eq!(
            name("attachment; filename=\"a b.csv\"").as_deref(),
            Some("a b.csv")
        );
        assert_eq!(
            name("attachment; filename=relevé.csv").as_deref(),
            Some("relevé.csv")
        );
        assert_eq!(
            name("attachment; filename=\"x.csv\"; filename*=UTF-8''relev%C3%A9.csv").as_deref(),
            Some("relevé.csv")
        );
        assert_eq!(name("attachment").as_deref(), None);
    }
}
