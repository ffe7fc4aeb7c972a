//! Uploads over STOMP: a SEND to `/app/uploads` whose body is the file (up to the frame
//! limit) and whose `filename` header names it. The RECEIPT carries the upload's id, size and
//! SHA-256; a refusal goes to the sender's `/user/queue/errors` as `UPLOAD_REJECTED`, as a
//! refused job submission does, and the session goes on. With `auto-extract:<profiles>` the
//! upload starts an `extract` job (or finds the one that already ran on the same content),
//! whose id the RECEIPT carries too.

use std::sync::Arc;

use serde_json::json;
use stompede_protocol::Headers;

use super::{UploadError, Uploads};
use crate::broker::app::{AppFuture, AppHandler, AppReply, AppRequest};
use crate::broker::Broker;
use crate::jobs::WeakJobEngine;

/// The destination STOMP clients upload to.
pub const DESTINATION: &str = "/app/uploads";

/// The header that starts an extraction of the upload.
const AUTO_EXTRACT: &str = "auto-extract";

/// The uploads as the broker sees them, with the engine that auto-extraction submits to.
struct Mounted {
    uploads: Uploads,
    jobs: WeakJobEngine,
}

impl Uploads {
    /// Takes SENDs to [`DESTINATION`] on `broker`; `jobs` runs auto-extractions.
    pub(crate) fn mount(&self, broker: &Broker, jobs: WeakJobEngine) {
        broker.mount_app(
            DESTINATION,
            Arc::new(Mounted {
                uploads: self.clone(),
                jobs,
            }),
        );
    }
}

impl Mounted {
    async fn store_frame(&self, request: &AppRequest) -> Result<AppReply, (String, String)> {
        let refused = |error: UploadError| (code_of(&error).to_owned(), reason_of(&error));
        let name = request
            .headers
            .get("filename")
            .ok_or_else(|| refused(UploadError::BadName(String::new())))?;
        let extract = request.headers.get(AUTO_EXTRACT);
        // Checked before a byte is stored: a refused request leaves nothing behind.
        let engine = match extract {
            Some(_) => Some(self.jobs.upgrade().ok_or_else(|| {
                (
                    "unavailable".to_owned(),
                    "this server runs no jobs: auto-extract is not available".to_owned(),
                )
            })?),
            None => None,
        };
        let mut incoming = self
            .uploads
            .begin(&request.user, name)
            .await
            .map_err(refused)?;
        incoming.write(&request.body).await.map_err(refused)?;
        let info = incoming.finish().await.map_err(refused)?;
        tracing::info!(user = %request.user, upload = %info.id, size = info.size, "upload stored over STOMP");
        let mut receipt_headers = vec![
            ("upload-id".into(), info.id.clone()),
            ("upload-size".into(), info.size.to_string()),
            ("upload-sha256".into(), info.sha256.clone()),
            ("upload-content-type".into(), info.content_type.clone()),
        ];
        if let (Some(engine), Some(profiles)) = (engine, extract) {
            match engine
                .extract_upload(
                    &request.user,
                    &request.address,
                    &info.id,
                    &info.sha256,
                    profiles,
                )
                .await
            {
                Ok((job, reused)) => {
                    receipt_headers.push(("job-id".into(), job.id));
                    receipt_headers.push(("job-reused".into(), reused.to_string()));
                }
                Err(rejection) => {
                    self.uploads.remove(&info).await;
                    return Err((rejection.code.to_owned(), rejection.reason));
                }
            }
        }
        Ok(AppReply {
            receipt_headers,
            refused: false,
        })
    }
}

impl AppHandler for Mounted {
    fn handle(&self, request: AppRequest) -> AppFuture {
        let mounted = Mounted {
            uploads: self.uploads.clone(),
            jobs: self.jobs.clone(),
        };
        Box::pin(async move {
            if &*request.destination != DESTINATION {
                return Err(crate::broker::app::AppError::new(format!(
                    "no such destination {}: upload with a SEND to {DESTINATION}",
                    request.destination
                )));
            }
            match mounted.store_frame(&request).await {
                Ok(reply) => Ok(reply),
                Err((code, reason)) => {
                    reject(&request, &code, &reason).await;
                    Ok(AppReply::refused())
                }
            }
        })
    }
}

fn code_of(error: &UploadError) -> &'static str {
    match error {
        UploadError::TooLarge { .. } => "too_large",
        UploadError::BadName(_) => "bad_name",
        _ => "storage_failure",
    }
}

fn reason_of(error: &UploadError) -> String {
    match error {
        UploadError::BadName(name) if name.is_empty() => {
            "name the file with a filename header".to_owned()
        }
        other => other.to_string(),
    }
}

/// Tells the sender why its upload was refused, on its `/user/queue/errors`.
async fn reject(request: &AppRequest, code: &str, reason: &str) {
    let receipt = request.headers.get("receipt");
    let mut headers = Headers::new();
    headers.push("content-type", "application/json");
    headers.push("event", "UPLOAD_REJECTED");
    if let Some(receipt) = receipt {
        headers.push("receipt-id", receipt);
    }
    let body = json!({
        "event": "UPLOAD_REJECTED",
        "code": code,
        "reason": reason,
        "receiptId": receipt,
        "timestamp": crate::clock::now_ms(),
    });
    let destination = format!("/user/{}/queue/errors", request.user);
    let message =
        request
            .broker
            .message(destination.into(), &headers, body.to_string().into(), true);
    if let Err(error) = request.broker.publish_as_server(message).await {
        tracing::warn!(%error, "UPLOAD_REJECTED not delivered");
    }
}
