//! `GET /api/jobs/{id}/pages/{page}`: a picture of one page of an OCR job's input, to read the
//! recognised text beside the page it came from.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::caller::Caller;
use super::problem::Problem;
use crate::context::ServerContext;
use crate::processors::input::{ImportDir, Input};
use crate::processors::ocr::preview::{page_picture, PreviewError};

/// `GET /api/jobs/{id}/pages/{page}`.
pub(crate) async fn page(
    State(ctx): State<Arc<ServerContext>>,
    caller: Caller,
    Path((id, page)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let job = super::jobs::visible_job(&ctx, &caller, &id).await?;
    if job.job_type != "ocr" {
        return Err(Problem::not_found(format!("job {id} reads no pages")));
    }
    let number: u32 = page
        .trim_end_matches(".png")
        .parse()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| Problem::bad_request("invalid_parameter", "pages are numbered from 1"))?;
    let missing = |e: crate::jobs::JobError| Problem::new(StatusCode::GONE, "expired", e.message);
    let input = Input::from_params(&job.params, "file", "upload").map_err(missing)?;
    let path = ImportDir::new(ctx.config.import_dir())
        .with_uploads(ctx.config.uploads_dir())
        .open(&input, &job.owner)
        .map_err(missing)?;
    let password = job.params.get("password").and_then(|p| p.as_str());
    match page_picture(&path, number, password, "pdftoppm").await {
        Ok(picture) => Ok((
            [
                (header::CONTENT_TYPE, picture.content_type),
                (header::CACHE_CONTROL, "private, max-age=3600"),
            ],
            picture.bytes,
        )
            .into_response()),
        Err(error @ PreviewError::NoPage(_)) => Err(Problem::not_found(error.to_string())),
        Err(error @ PreviewError::Unsupported(_)) => Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_format",
            error.to_string(),
        )),
        Err(error @ PreviewError::Failed(_)) => Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "render_failed",
            error.to_string(),
        )),
    }
}
