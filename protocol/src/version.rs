//! Protocol versions and their negotiation.

use std::fmt;

/// A STOMP protocol version. Ordered, so the highest common version is a `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Version {
    /// STOMP 1.0: no header escaping, no NACK, no heart-beats.
    #[default]
    V1_0,
    /// STOMP 1.1: escaping of `\\`, `\n`, `\c`; NACK; heart-beats.
    V1_1,
    /// STOMP 1.2: adds `\r` escaping, CRLF line endings and the `ack` id header.
    V1_2,
}

impl Version {
    /// Every version, oldest first.
    pub const ALL: [Version; 3] = [Version::V1_0, Version::V1_1, Version::V1_2];

    /// The version as written in `accept-version` and `version` headers.
    pub const fn as_str(self) -> &'static str {
        match self {
            Version::V1_0 => "1.0",
            Version::V1_1 => "1.1",
            Version::V1_2 => "1.2",
        }
    }

    /// Parses `1.0`, `1.1` or `1.2`.
    pub fn parse(s: &str) -> Option<Version> {
        match s.trim() {
            "1.0" => Some(Version::V1_0),
            "1.1" => Some(Version::V1_1),
            "1.2" => Some(Version::V1_2),
            _ => None,
        }
    }

    /// The highest version in a client's `accept-version` list that we support.
    ///
    /// An absent header means 1.0 (STOMP 1.2, "Protocol Negotiation"). A present header that
    /// names no version we speak gives `None`: the server must answer with an ERROR.
    pub fn negotiate(accept_version: Option<&str>) -> Option<Version> {
        match accept_version {
            None => Some(Version::V1_0),
            Some(list) => list.split(',').filter_map(Version::parse).max(),
        }
    }

    /// The WebSocket subprotocol name for this version (`v12.stomp`, ...).
    pub const fn subprotocol(self) -> &'static str {
        match self {
            Version::V1_0 => "v10.stomp",
            Version::V1_1 => "v11.stomp",
            Version::V1_2 => "v12.stomp",
        }
    }

    /// The version a WebSocket subprotocol name stands for.
    pub fn from_subprotocol(name: &str) -> Option<Version> {
        match name.trim() {
            "v10.stomp" => Some(Version::V1_0),
            "v11.stomp" => Some(Version::V1_1),
            "v12.stomp" => Some(Version::V1_2),
            _ => None,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
