//! `POST /api/tokens`: a bearer token for a user who logged in with a password, so that a page
//! or a script need not keep the password.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use super::caller::Caller;
use super::problem::Problem;
use crate::context::ServerContext;

/// Issues a token valid for `api-token-ttl-ms`. Only a password login may ask: a token cannot
/// extend itself.
pub(crate) async fn issue(
    State(ctx): State<Arc<ServerContext>>,
    caller: Caller,
) -> Result<impl IntoResponse, Problem> {
    if caller.by_token {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "log in with a password to get a new token",
        ));
    }
    let ttl = ctx.config.api_token_ttl_ms;
    let expires_at = crate::clock::now_ms().saturating_add(ttl);
    let token = ctx.tokens.issue(&caller.user, expires_at);
    ctx.audit.record(
        &caller.user,
        &caller.address,
        "token.issue",
        crate::audit::Outcome::Ok,
        json!({ "expiresAt": expires_at }),
    );
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "token": token,
            "tokenType": "Bearer",
            "expiresAt": expires_at,
            "expiresIn": ttl / 1000,
        })),
    ))
}
