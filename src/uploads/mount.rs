//! Uploads over STOMP: a SEND to `/app/uploads` whose body is the file (up to the frame
//! limit) and whose `filename` header names it. The RECEIPT carries the upload's id, size and
//! SHA-256; a refusal goes to the sender's `/user/queue/errors` as `UPLOAD_REJECTED`, as a
//! refused job submission does, and the session goes on.

use std::sync::Arc;

use serde_json::json;
use stompede_protocol::Headers;

use super::{UploadError, Uploads};
use crate::broker::app::{AppFuture, AppHandler, AppReply, AppRequest};
use crate::broker::Broker;

/// The destination STOMP clients upload to.
pub const DESTINATION: &str = "/app/uploads";

impl Uploads {
    /// Takes SENDs to [`DESTINATION`] on `broker`.
    pub(crate) fn mount(&self, broker: &Broker) {
        broker.mount_app(DESTINATION, Arc::new(self.clone()));
    }

    async fn store_frame(&self, request: &AppRequest) -> Result<AppReply, UploadError> {
        let name = request
            .headers
            .get("filename")
            .ok_or_else(|| UploadError::BadName(String::new()))?;
        let mut incoming = self.begin(&request.user, name).await?;
        incoming.write(&request.body).await?;
        let info = incoming.finish().await?;
        tracing::info!(user = %request.user, upload = %info.id, size = info.size, "upload stored over STOMP");
        Ok(AppReply {
            receipt_headers: vec![
                ("upload-id".into(), info.id),
                ("upload-size".into(), info.size.to_string()),
                ("upload-sha256".into(), info.sha256),
                ("upload-content-type".into(), info.content_type),
            ],
            refused: false,
        })
    }
}

impl AppHandler for Uploads {
    fn handle(&self, request: AppRequest) -> AppFuture {
        let uploads = self.clone();
        Box::pin(async move {
            if &*request.destination != DESTINATION {
                return Err(crate::broker::app::AppError::new(format!(
                    "no such destination {}: upload with a SEND to {DESTINATION}",
                    request.destination
                )));
            }
            match uploads.store_frame(&request).await {
                Ok(reply) => Ok(reply),
                Err(error) => {
                    reject(&request, &error).await;
                    Ok(AppReply::refused())
                }
            }
        })
    }
}

/// Tells the sender why its upload was refused, on its `/user/queue/errors`.
async fn reject(request: &AppRequest, error: &UploadError) {
    let code = match error {
        UploadError::TooLarge { .. } => "too_large",
        UploadError::BadName(_) => "bad_name",
        _ => "storage_failure",
    };
    let reason = match error {
        UploadError::BadName(name) if name.is_empty() => {
            "name the file with a filename header".to_owned()
        }
        other => other.to_string(),
    };
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
