//! The decoder's typed errors. Each says what was wrong in words a client author can act on;
//! the broker copies the message into an ERROR frame.

use thiserror::Error;

/// Why a byte stream is not a valid STOMP frame. Once returned, the stream is out of sync:
/// the connection should be answered with an ERROR frame and closed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The command line is longer than the limit.
    #[error("command line longer than {limit} bytes")]
    CommandTooLong {
        /// The configured limit.
        limit: usize,
    },
    /// The command is not one STOMP defines.
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    /// More header lines than the limit.
    #[error("more than {limit} header lines")]
    TooManyHeaders {
        /// The configured limit.
        limit: usize,
    },
    /// One header line is longer than the limit.
    #[error("header line longer than {limit} bytes")]
    HeaderLineTooLong {
        /// The configured limit.
        limit: usize,
    },
    /// The body (declared or read so far) is larger than the limit.
    #[error("body larger than {limit} bytes (frame size limit)")]
    BodyTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// A header line has no colon, or an empty name.
    #[error("malformed header line {0:?}: expected name:value")]
    MalformedHeader(String),
    /// A backslash followed by a character that is no defined escape (1.1 and 1.2), or a
    /// backslash ending a header. Holds the offending sequence.
    #[error("undefined escape sequence {0:?} in header (STOMP 1.1/1.2 define \\\\, \\n, \\c and, in 1.2, \\r)")]
    InvalidEscape(String),
    /// A header name or value is not valid UTF-8.
    #[error("header is not valid UTF-8")]
    InvalidUtf8,
    /// The `content-length` header is not a non-negative decimal integer.
    #[error("invalid content-length {0:?}")]
    InvalidContentLength(String),
    /// The byte after a `content-length` body is not the frame-ending NUL.
    #[error("frame not terminated by NUL after a content-length body of {0} bytes")]
    MissingNul(usize),
}

impl DecodeError {
    /// A short stable code naming the kind of error, for logs and metrics labels.
    pub const fn code(&self) -> &'static str {
        match self {
            DecodeError::CommandTooLong { .. } => "command_too_long",
            DecodeError::UnknownCommand(_) => "unknown_command",
            DecodeError::TooManyHeaders { .. } => "too_many_headers",
            DecodeError::HeaderLineTooLong { .. } => "header_line_too_long",
            DecodeError::BodyTooLarge { .. } => "body_too_large",
            DecodeError::MalformedHeader(_) => "malformed_header",
            DecodeError::InvalidEscape(_) => "invalid_escape",
            DecodeError::InvalidUtf8 => "invalid_utf8",
            DecodeError::InvalidContentLength(_) => "invalid_content_length",
            DecodeError::MissingNul(_) => "missing_nul",
        }
    }
}
