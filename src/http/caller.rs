//! Who is calling: HTTP Basic credentials checked against the same users as STOMP logins, or
//! a bearer token issued to one of them (`POST /api/tokens`).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use base64::Engine;

use super::problem::Problem;
use crate::auth::AuthError;
use crate::context::ServerContext;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The user name.
    pub user: String,
    /// May see and touch every job and upload.
    pub admin: bool,
    /// Authenticated by a bearer token rather than a password.
    pub by_token: bool,
    /// Where the request came from (its IP), for the audit log.
    pub address: String,
}

fn unauthorised(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
}

impl FromRequestParts<Arc<ServerContext>> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &Arc<ServerContext>,
    ) -> Result<Caller, Problem> {
        // A script that handles its own login (the dashboard) says so; the browser's own
        // password dialog must not pop up over it.
        let scripted = parts.headers.contains_key("x-requested-with");
        identify(parts, ctx).await.map_err(|problem| {
            if scripted {
                problem.without_challenge()
            } else {
                problem
            }
        })
    }
}

/// The caller named by the request's credentials.
async fn identify(parts: &Parts, ctx: &Arc<ServerContext>) -> Result<Caller, Problem> {
    // The peer, as our listener records it; an embedding application's server may not.
    let address = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |info| info.0.ip().to_string());
    let credentials = match parts.headers.get(header::AUTHORIZATION) {
        None => None,
        Some(value) => {
            let value = value
                .to_str()
                .map_err(|_| unauthorised("the Authorization header is not text"))?;
            if let Some(token) = value.strip_prefix("Bearer ") {
                let user = ctx
                    .tokens
                    .verify(token.trim(), crate::clock::now_ms())
                    .ok_or_else(|| unauthorised("the bearer token is invalid or expired"))?;
                let admin = ctx.jobs.as_ref().is_some_and(|jobs| jobs.is_admin(&user));
                return Ok(Caller {
                    user,
                    admin,
                    by_token: true,
                    address,
                });
            }
            let encoded = value
                .strip_prefix("Basic ")
                .ok_or_else(|| unauthorised("use HTTP Basic authentication or a bearer token"))?;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| unauthorised("the Basic credentials do not decode"))?;
            let (login, passcode) = decoded
                .split_once(':')
                .map(|(l, p)| (l.to_owned(), p.to_owned()))
                .unwrap_or((decoded, String::new()));
            Some((login, passcode))
        }
    };
    let (login, passcode) = match &credentials {
        Some((l, p)) => (Some(l.as_str()), Some(p.as_str())),
        None => (None, None),
    };
    let user = ctx
        .auth
        .authenticate(login, passcode, &address, || "anonymous".to_owned())
        .await
        .map_err(|error| match error {
            AuthError::BadCredentials => unauthorised("wrong or missing credentials"),
            AuthError::TooManyFailures { retry_after_s } => Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_failed_logins",
                error.to_string(),
            )
            .retry_after(retry_after_s),
        })?;
    let admin = ctx.jobs.as_ref().is_some_and(|jobs| jobs.is_admin(&user));
    Ok(Caller {
        user,
        admin,
        by_token: false,
        address,
    })
}
