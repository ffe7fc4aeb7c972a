//! The CONNECT/STOMP frame: version negotiation, login, heart-beats, and the CONNECTED reply.

use stompede_protocol::{names, Command, Frame, Version};

use super::heartbeat::{self, HeartBeat};
use super::SessionError;
use crate::auth::{AuthError, Authenticator};
use crate::config::Config;

/// The outcome of a successful CONNECT.
#[derive(Debug)]
pub struct Accepted {
    /// The negotiated version.
    pub version: Version,
    /// The authenticated (or, in open mode, asserted) user.
    pub user: String,
    /// The heart-beat intervals.
    pub heartbeat: HeartBeat,
    /// The CONNECTED reply.
    pub connected: Frame,
}

/// Checks a CONNECT frame and builds the CONNECTED reply.
///
/// `hint` is the version a WebSocket subprotocol named; it stands in for a missing
/// `accept-version` header.
pub async fn accept(
    frame: &Frame,
    hint: Option<Version>,
    config: &Config,
    auth: &Authenticator,
    session_id: u64,
    peer: &str,
) -> Result<Accepted, SessionError> {
    if !matches!(frame.command, Command::Connect | Command::Stomp) {
        return Err(SessionError::new(
            format!("expected CONNECT, got {}", frame.command),
            "The first frame of a STOMP session must be CONNECT (or STOMP).",
        ));
    }
    let accept_version = frame.get(names::ACCEPT_VERSION);
    let version = match (accept_version, hint) {
        (None, Some(hint)) => hint,
        _ => Version::negotiate(accept_version).ok_or_else(|| {
            SessionError::new(
                "no supported protocol version",
                format!(
                    "accept-version {:?} names none of the versions this server speaks: 1.0, 1.1, 1.2.",
                    accept_version.unwrap_or_default()
                ),
            )
            .with_header(names::VERSION, "1.0,1.1,1.2")
        })?,
    };
    let client_beat = heartbeat::parse(frame.get(names::HEART_BEAT)).ok_or_else(|| {
        SessionError::new(
            "invalid heart-beat header",
            "heart-beat must be two comma-separated integers, e.g. heart-beat:10000,10000.",
        )
    })?;
    let user = auth
        .authenticate(
            frame.get(names::LOGIN),
            frame.get(names::PASSCODE),
            peer,
            || format!("anonymous-{session_id}"),
        )
        .await
        .map_err(|e| {
            let advice = match e {
                AuthError::BadCredentials => "Check the login and passcode headers.",
                AuthError::TooManyFailures { .. } => "Wait before trying again.",
            };
            SessionError::new(e.to_string(), advice)
        })?;
    let server_beat = (config.heartbeat_send_ms, config.heartbeat_receive_ms);
    let heartbeat = if version == Version::V1_0 {
        // 1.0 has no heart-beats.
        heartbeat::negotiate((0, 0), server_beat)
    } else {
        heartbeat::negotiate(client_beat, server_beat)
    };
    let mut connected = Frame::new(Command::Connected)
        .header(names::VERSION, version.as_str())
        .header(
            names::HEART_BEAT,
            format!(
                "{},{}",
                heartbeat.outgoing.map_or(0, |d| d.as_millis()),
                heartbeat.incoming.map_or(0, |d| d.as_millis())
            ),
        )
        .header(
            names::SERVER,
            concat!("stompede/", env!("CARGO_PKG_VERSION")),
        )
        .header(names::SESSION, session_id.to_string());
    if frame.get(names::LOGIN).is_some() || !auth.is_open() {
        connected = connected.header(names::USER_NAME, user.as_str());
    }
    Ok(Accepted {
        version,
        user,
        heartbeat,
        connected,
    })
}
