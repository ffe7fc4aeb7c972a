//! The streaming decoder: finds where a frame ends, under limits, then parses it.
//!
//! Bytes arrive in any split. The decoder skips heart-beat EOLs between frames, scans for the
//! blank line that ends the head (checking every line against the limits as it goes, noting
//! where each line ends, and remembering how far it scanned so slow input is never rescanned),
//! parses the head once from those line ends, then takes the body by `content-length` or up to
//! the first NUL. The head (which the headers are views of) and the body are split off the read
//! buffer without a copy.

use bytes::{Buf, Bytes, BytesMut};

use crate::parse::{self, Head, Line};
use crate::scan;
use crate::{DecodeError, Decoded, Frame, Limits, Version};

/// A streaming STOMP decoder for one connection.
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    version: Version,
    state: State,
    /// While in the head: each complete line (the command line first). Kept between frames so
    /// its memory is reused.
    lines: Vec<Line>,
}

#[derive(Debug)]
enum State {
    /// Between frames: EOLs here are heart-beats.
    Idle,
    /// Inside the head. `scanned`: bytes already searched for a line end (the complete lines
    /// are in `Decoder::lines`); `backslash`: whether the unfinished line holds a backslash.
    Head { scanned: usize, backslash: bool },
    /// Head parsed, waiting for the body. `scanned`: bytes already searched for the NUL.
    Body { head: Head, scanned: usize },
    /// An error was returned: the stream is out of sync. Every later call returns the same
    /// error (rather than reading on from a position that no longer means anything).
    Failed(DecodeError),
}

impl Decoder {
    /// A decoder with the given limits, reading STOMP 1.0 until told otherwise.
    pub fn new(limits: Limits) -> Self {
        Decoder {
            limits,
            version: Version::V1_0,
            state: State::Idle,
            lines: Vec::new(),
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
    /// removed from `buf`. After an error the stream is out of sync and must be closed; every
    /// later call returns the same error.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, DecodeError> {
        let result = self.decode_inner(buf);
        if let Err(error) = &result {
            self.state = State::Failed(error.clone());
        }
        result
    }

    fn decode_inner(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, DecodeError> {
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
                        self.lines.clear();
                        self.state = State::Head {
                            scanned: 0,
                            backslash: false,
                        };
                    }
                },
                State::Head { scanned, backslash } => {
                    let Some(head_len) =
                        scan_head(&self.limits, buf, scanned, backslash, &mut self.lines)?
                    else {
                        return Ok(None);
                    };
                    let head = parse::take_head(buf, &self.lines, head_len, self.version)?;
                    if let Some(len) = head.content_length {
                        if len > self.limits.max_body_len {
                            return Err(DecodeError::BodyTooLarge {
                                limit: self.limits.max_body_len,
                            });
                        }
                    }
                    // Usually the body is there already: no need to go through `State::Body`.
                    let mut scanned = 0;
                    let Some(body) = take_body(&self.limits, &head, &mut scanned, buf)? else {
                        self.state = State::Body { head, scanned };
                        return Ok(None);
                    };
                    self.state = State::Idle;
                    return Ok(Some(Decoded::Frame(Frame {
                        command: head.command,
                        headers: head.headers,
                        body,
                    })));
                }
                State::Failed(error) => return Err(error.clone()),
                State::Body { head, scanned } => {
                    let Some(body) = take_body(&self.limits, head, scanned, buf)? else {
                        return Ok(None);
                    };
                    let frame = Frame {
                        command: head.command,
                        headers: std::mem::take(&mut head.headers),
                        body,
                    };
                    self.state = State::Idle;
                    return Ok(Some(Decoded::Frame(frame)));
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
    /// head then ends there, and the frame has an empty body). A frame with a non-zero
    /// `content-length`, whether its head is complete or not, is left alone, waiting for the
    /// rest: a client may split a frame across messages.
    ///
    /// Call it in a loop, like `decode`, until it returns `Ok(None)`.
    pub fn decode_end_of_message(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<Decoded>, DecodeError> {
        if let Some(item) = self.decode(buf)? {
            return Ok(Some(item));
        }
        if matches!(self.state, State::Head { .. }) && buf.ends_with(b"\n") {
            // End the head here, unless it declares a body still to come: then the frame is
            // left waiting, untouched, as a client may split a frame across messages. (Rare
            // path: the head is copied to look at it first.)
            if self.declares_body(buf) {
                return Ok(None);
            }
            buf.extend_from_slice(b"\n");
            if let Some(item) = self.decode(buf)? {
                return Ok(Some(item));
            }
        }
        match &self.state {
            State::Body { head, .. } if matches!(head.content_length, None | Some(0)) => {
                buf.extend_from_slice(b"\0");
                self.decode(buf)
            }
            _ => Ok(None),
        }
    }

    /// True when the unfinished head in `buf` (ending with a LF), ended by a blank line, would
    /// parse and declare a non-empty body.
    fn declares_body(&self, buf: &BytesMut) -> bool {
        let mut probe = BytesMut::with_capacity(buf.len() + 1);
        probe.extend_from_slice(buf);
        let lines: Vec<Line> = memchr::memchr_iter(b'\n', &probe)
            .map(|end| Line {
                end,
                backslash: true,
            })
            .collect();
        probe.extend_from_slice(b"\n");
        let head_len = probe.len();
        parse::take_head(&mut probe, &lines, head_len, self.version)
            .is_ok_and(|head| head.content_length.is_some_and(|len| len > 0))
    }
}

/// Takes the body of the frame `head` begins off the front of `buf`, with its NUL, once it is
/// all there. `scanned`: bytes already searched for the NUL (no `content-length`).
fn take_body(
    limits: &Limits,
    head: &Head,
    scanned: &mut usize,
    buf: &mut BytesMut,
) -> Result<Option<Bytes>, DecodeError> {
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
        None => {
            let from = (*scanned).min(buf.len());
            match memchr::memchr(0, &buf[from..]) {
                Some(offset) => from + offset,
                None => {
                    if buf.len() > limits.max_body_len {
                        return Err(DecodeError::BodyTooLarge {
                            limit: limits.max_body_len,
                        });
                    }
                    *scanned = buf.len();
                    return Ok(None);
                }
            }
        }
    };
    if body_len > limits.max_body_len {
        return Err(DecodeError::BodyTooLarge {
            limit: limits.max_body_len,
        });
    }
    let body = if body_len == 0 {
        Bytes::new()
    } else {
        buf.split_to(body_len).freeze()
    };
    buf.advance(1);
    Ok(Some(body))
}

/// Scans `buf` for the blank line ending a head, resuming at `scanned`, and notes every
/// complete line in `lines`. Returns the head's length (through the blank line) once found.
/// Checks each line against the limits as soon as it is seen, and the unfinished last line as
/// soon as it is too long to be valid.
fn scan_head(
    limits: &Limits,
    buf: &[u8],
    scanned: &mut usize,
    backslash: &mut bool,
    lines: &mut Vec<Line>,
) -> Result<Option<usize>, DecodeError> {
    if *scanned > buf.len() {
        // The caller swapped the buffer under us: start the head over.
        *scanned = 0;
        *backslash = false;
        lines.clear();
    }
    let line_limit = |lines: usize| {
        if lines == 0 {
            limits.max_command_len
        } else {
            limits.max_header_line_len
        }
    };
    let mut line_start = lines.last().map_or(0, |line| line.end + 1);
    while let Some(offset) = scan::find2(b'\n', b'\\', &buf[*scanned..]) {
        let end = *scanned + offset;
        *scanned = end + 1;
        if buf[end] == b'\\' {
            *backslash = true;
            continue;
        }
        let line = &buf[line_start..end];
        let line_len = line.len() - usize::from(line.ends_with(b"\r"));
        let count = lines.len();
        if line_len == 0 && count > 0 {
            return Ok(Some(end + 1));
        }
        check_line(limits, line_len, count, line_limit(count))?;
        lines.push(Line {
            end,
            backslash: std::mem::take(backslash),
        });
        line_start = end + 1;
    }
    *scanned = buf.len();
    // The unfinished line may still gain a CR before its LF, hence the +1.
    let partial = buf.len() - line_start;
    let count = lines.len();
    if partial > line_limit(count) + 1 {
        check_line(limits, partial, count, line_limit(count))?;
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
