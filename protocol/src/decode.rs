//! The streaming decoder: finds where a frame ends, under limits, then parses it.
//!
//! Bytes arrive in any split. The decoder skips heart-beat EOLs between frames, scans for the
//! blank line that ends the head (checking every line against the limits as it goes, and
//! remembering how far it scanned so slow input is never rescanned), parses the head once, then
//! takes the body by `content-length` or up to the first NUL. Body bytes are split off the
//! read buffer without a copy.

use bytes::{Buf, BytesMut};

use crate::parse::{self, Head};
use crate::{DecodeError, Decoded, Frame, Limits, Version};

/// A streaming STOMP decoder for one connection.
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    version: Version,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Between frames: EOLs here are heart-beats.
    Idle,
    /// Inside the head. `scanned`: bytes already searched for a line end; `line_start`: where
    /// the current line begins; `lines`: complete lines so far (the command line included).
    Head {
        scanned: usize,
        line_start: usize,
        lines: usize,
    },
    /// Head parsed, waiting for the body. `scanned`: bytes already searched for the NUL.
    Body { head: HeadParts, scanned: usize },
}

#[derive(Debug)]
struct HeadParts {
    command: crate::Command,
    headers: crate::Headers,
    content_length: Option<usize>,
}

impl From<Head> for HeadParts {
    fn from(head: Head) -> Self {
        HeadParts {
            command: head.command,
            headers: head.headers,
            content_length: head.content_length,
        }
    }
}

impl Decoder {
    /// A decoder with the given limits, reading STOMP 1.0 until told otherwise.
    pub fn new(limits: Limits) -> Self {
        Decoder {
            limits,
            version: Version::V1_0,
            state: State::Idle,
        }
    }

    /// Sets the negotiated version, which decides how header values are unescaped.
    pub fn set_version(&mut self, version: Version) {
        self.version = version;
    }

    /// The version in force.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// True when no partial frame is buffered.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle)
    }

    /// Takes the next heart-beat or frame from `buf`.
    ///
    /// `Ok(None)` means more bytes are needed; call again after reading more. Consumed bytes are
    /// removed from `buf`. After an error the stream is out of sync and must be closed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, DecodeError> {
        loop {
            match &mut self.state {
                State::Idle => match buf.first() {
                    None => return Ok(None),
                    Some(b'\n') => {
                        buf.advance(1);
                        return Ok(Some(Decoded::HeartBeat));
                    }
                    Some(b'\r') if buf.len() < 2 => return Ok(None),
                    Some(b'\r') if buf[1] == b'\n' => {
                        buf.advance(2);
                        return Ok(Some(Decoded::HeartBeat));
                    }
                    Some(_) => {
                        self.state = State::Head {
                            scanned: 0,
                            line_start: 0,
                            lines: 0,
                        }
                    }
                },
                State::Head {
                    scanned,
                    line_start,
                    lines,
                } => {
                    let Some(head_len) = scan_head(&self.limits, buf, scanned, line_start, lines)?
                    else {
                        return Ok(None);
                    };
                    let head_bytes = buf.split_to(head_len).freeze();
                    let head = parse::head(&head_bytes, self.version)?;
                    if let Some(len) = head.content_length {
                        if len > self.limits.max_body_len {
                            return Err(DecodeError::BodyTooLarge {
                                limit: self.limits.max_body_len,
                            });
                        }
                    }
                    self.state = State::Body {
                        head: head.into(),
                        scanned: 0,
                    };
                }
                State::Body { head, scanned } => {
                    let body_len = match head.content_length {
                        Some(len) => {
                            if buf.len() <= len {
                                return Ok(None);
                            }
                            if buf[len] != 0 {
                                return Err(DecodeError::MissingNul(len));
                            }
                            len
                        }
                        None => match memchr::memchr(0, &buf[*scanned..]) {
                            Some(offset) => *scanned + offset,
                            None => {
                                if buf.len() > self.limits.max_body_len {
                                    return Err(DecodeError::BodyTooLarge {
                                        limit: self.limits.max_body_len,
                                    });
                                }
                                *scanned = buf.len();
                                return Ok(None);
                            }
                        },
                    };
                    if body_len > self.limits.max_body_len {
                        return Err(DecodeError::BodyTooLarge {
                            limit: self.limits.max_body_len,
                        });
                    }
                    let body = buf.split_to(body_len).freeze();
                    buf.advance(1);
                    let State::Body { head, .. } = std::mem::replace(&mut self.state, State::Idle)
                    else {
                        unreachable!("matched State::Body above");
                    };
                    return Ok(Some(Decoded::Frame(Frame {
                        command: head.command,
                        headers: head.headers,
                        body,
                    })));
                }
            }
        }
    }

    /// Like [`decode`](Self::decode), for a transport that has just delivered the end of a
    /// message (a WebSocket message): the leniency for hand-typed frames (wscat), where the
    /// end of the message stands for a missing final NUL.
    ///
    /// It applies when the buffered frame has a complete head and no `content-length` (its body
    /// then ends with the message), or when the message ends at a line end inside the head (the
    /// head then ends there, with no body). A frame with a `content-length` still waiting for
    /// its body is left alone: a client may split a frame across messages.
    pub fn decode_end_of_message(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<Decoded>, DecodeError> {
        if let Some(item) = self.decode(buf)? {
            return Ok(Some(item));
        }
        match &self.state {
            State::Head { .. } if buf.ends_with(b"\n") => buf.extend_from_slice(b"\n\0"),
            State::Body { head, .. } if head.content_length.is_none() => {
                buf.extend_from_slice(b"\0")
            }
            _ => return Ok(None),
        }
        self.decode(buf)
    }
}

/// Scans `buf` for the blank line ending a head, resuming at `scanned`. Returns the head's
/// length (through the blank line) once found. Checks each line against the limits as soon as
/// it is seen, and the unfinished last line as soon as it is too long to be valid.
fn scan_head(
    limits: &Limits,
    buf: &[u8],
    scanned: &mut usize,
    line_start: &mut usize,
    lines: &mut usize,
) -> Result<Option<usize>, DecodeError> {
    let line_limit = |lines: usize| {
        if lines == 0 {
            limits.max_command_len
        } else {
            limits.max_header_line_len
        }
    };
    while let Some(offset) = memchr::memchr(b'\n', &buf[*scanned..]) {
        let end = *scanned + offset;
        *scanned = end + 1;
        let line = &buf[*line_start..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() && *lines > 0 {
            return Ok(Some(end + 1));
        }
        check_line(limits, line.len(), *lines, line_limit(*lines))?;
        *lines += 1;
        *line_start = end + 1;
    }
    *scanned = buf.len();
    // The unfinished line may still gain a CR before its LF, hence the +1.
    let partial = buf.len() - *line_start;
    if partial > line_limit(*lines) + 1 {
        check_line(limits, partial, *lines, line_limit(*lines))?;
    }
    Ok(None)
}

fn check_line(limits: &Limits, len: usize, lines: usize, limit: usize) -> Result<(), DecodeError> {
    if lines == 0 {
        if len > limit {
            return Err(DecodeError::CommandTooLong { limit });
        }
    } else {
        if lines > limits.max_headers {
            return Err(DecodeError::TooManyHeaders {
                limit: limits.max_headers,
            });
        }
        if len > limit {
            return Err(DecodeError::HeaderLineTooLong { limit });
        }
    }
    Ok(())
}
