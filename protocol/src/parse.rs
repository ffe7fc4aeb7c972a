//! The head parser: the command line and header lines of one frame.
//!
//! The streaming decoder only hands over a head it has already found complete and within the
//! limits, together with where each of its lines ends, so the parser never sees partial input
//! and never searches for a line end again. Grammar (STOMP 1.2, "Augmented BNF"):
//!
//! ```text
//! frame   = command EOL *( header EOL ) EOL *OCTET NULL *( EOL )
//! header  = header-name ":" header-value
//! EOL     = [CR] LF
//! ```
//!
//! The first colon of a line splits it, so a value may hold colons of its own. Well-known names
//! and values are static strings and cost nothing; other short names and values are copied; long
//! ones that need no unescaping share the read buffer (see `SHARE_OVER`).

use std::borrow::Cow;

use bytes::{Buf, Bytes, BytesMut};
use bytestring::ByteString;

use crate::header::names;
use crate::scan;
use crate::{Command, DecodeError, Escaping, Header, Headers, Version};

/// The parsed head of a frame.
#[derive(Debug)]
pub(crate) struct Head {
    pub command: Command,
    pub headers: Headers,
    pub content_length: Option<usize>,
}

/// One complete line of a head, as the decoder's scan found it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line {
    /// The index of the LF ending the line.
    pub end: usize,
    /// Whether the line holds a backslash (so may need unescaping).
    pub backslash: bool,
}

/// Names and values up to this many bytes are copied out of the read buffer; longer ones share
/// it. A small allocation is cheaper than the atomic reference count a shared slice costs, both
/// when taken and when dropped (measured: about 8 ns against 14 ns a value).
const SHARE_OVER: usize = 128;

/// Parses the head at the front of `buf` and removes it from `buf`, through its blank line.
///
/// `lines` holds each line before the blank line (the command line first); `head_len` is the
/// head's length through the blank line's LF.
pub(crate) fn take_head(
    buf: &mut BytesMut,
    lines: &[Line],
    head_len: usize,
    version: Version,
) -> Result<Head, DecodeError> {
    let Some((command_line, header_lines)) = lines.split_first() else {
        return Err(DecodeError::UnknownCommand(String::new()));
    };
    let command_bytes = strip_cr(&buf[..command_line.end]);
    let command = Command::from_bytes(command_bytes).ok_or_else(|| {
        DecodeError::UnknownCommand(String::from_utf8_lossy(command_bytes).into_owned())
    })?;
    let escaping = Escaping::for_frame(command, version);
    let mut longest = 0;
    let mut previous_end = command_line.end;
    for line in header_lines {
        longest = longest.max(line.end - previous_end - 1);
        previous_end = line.end;
    }
    let (headers, content_length) = if longest > SHARE_OVER {
        let shared = buf.split_to(head_len).freeze();
        headers(
            &shared,
            Some(&shared),
            command_line.end,
            header_lines,
            escaping,
        )?
    } else {
        let parsed = headers(
            &buf[..head_len],
            None,
            command_line.end,
            header_lines,
            escaping,
        )?;
        buf.advance(head_len);
        parsed
    };
    Ok(Head {
        command,
        headers,
        content_length,
    })
}

/// Parses the header lines of `head` (the command line ends at `command_end`). `shared`, when
/// given, is `head` itself as shared memory, for long names and values.
fn headers(
    head: &[u8],
    shared: Option<&Bytes>,
    command_end: usize,
    lines: &[Line],
    escaping: Escaping,
) -> Result<(Headers, Option<usize>), DecodeError> {
    let mut headers = Vec::with_capacity(lines.len());
    let mut content_length = None;
    let mut line_start = command_end + 1;
    for line in lines {
        let raw = strip_cr(&head[line_start..line.end]);
        line_start = line.end + 1;
        headers.push(header(
            raw,
            line.backslash,
            escaping,
            shared,
            &mut content_length,
        )?);
    }
    Ok((Headers::from(headers), content_length))
}

/// Parses one header line (without its line end).
#[inline(always)]
fn header(
    raw: &[u8],
    backslash: bool,
    escaping: Escaping,
    shared: Option<&Bytes>,
    content_length: &mut Option<usize>,
) -> Result<Header, DecodeError> {
    let colon = match scan::find(b':', raw) {
        Some(colon) if colon > 0 => colon,
        _ => {
            return Err(DecodeError::MalformedHeader(
                String::from_utf8_lossy(raw).into_owned(),
            ))
        }
    };
    let escaping = if backslash { escaping } else { Escaping::None };
    let name = text(&raw[..colon], escaping, shared, true)?;
    let value = text(&raw[colon + 1..], escaping, shared, false)?;
    if content_length.is_none() && &*name == names::CONTENT_LENGTH {
        *content_length = Some(parse_content_length(&value)?);
    }
    Ok(Header { name, value })
}

/// A raw name or value, unescaped and checked to be UTF-8.
#[inline(always)]
fn text(
    raw: &[u8],
    escaping: Escaping,
    shared: Option<&Bytes>,
    is_name: bool,
) -> Result<ByteString, DecodeError> {
    if raw.is_empty() {
        return Ok(ByteString::new());
    }
    let raw = if escaping == Escaping::None {
        raw
    } else {
        match escaping.unescape(raw)? {
            Cow::Borrowed(raw) => raw,
            Cow::Owned(unescaped) => {
                return ByteString::try_from(unescaped).map_err(|_| DecodeError::InvalidUtf8)
            }
        }
    };
    let well_known = if is_name {
        well_known_name(raw)
    } else {
        well_known_value(raw)
    };
    if let Some(text) = well_known {
        return Ok(ByteString::from_static(text));
    }
    match shared {
        Some(shared) if raw.len() > SHARE_OVER => ByteString::try_from(shared.slice_ref(raw)),
        _ => ByteString::try_from(raw),
    }
    .map_err(|_| DecodeError::InvalidUtf8)
}

/// A static copy of a common header name, so decoding it costs no allocation.
fn well_known_name(name: &[u8]) -> Option<&'static str> {
    Some(match name {
        b"accept-version" => names::ACCEPT_VERSION,
        b"ack" => names::ACK,
        b"content-length" => names::CONTENT_LENGTH,
        b"content-type" => names::CONTENT_TYPE,
        b"destination" => names::DESTINATION,
        b"heart-beat" => names::HEART_BEAT,
        b"host" => names::HOST,
        b"id" => names::ID,
        b"login" => names::LOGIN,
        b"message" => names::MESSAGE,
        b"message-id" => names::MESSAGE_ID,
        b"passcode" => names::PASSCODE,
        b"receipt" => names::RECEIPT,
        b"receipt-id" => names::RECEIPT_ID,
        b"server" => names::SERVER,
        b"session" => names::SESSION,
        b"subscription" => names::SUBSCRIPTION,
        b"transaction" => names::TRANSACTION,
        b"version" => names::VERSION,
        b"user-name" => names::USER_NAME,
        // Common broker and JMS-style headers.
        b"persistent" => "persistent",
        b"priority" => "priority",
        b"expires" => "expires",
        b"reply-to" => "reply-to",
        b"correlation-id" => "correlation-id",
        b"redelivered" => "redelivered",
        b"timestamp" => "timestamp",
        _ => return None,
    })
}

/// A static copy of a common header value (ack modes, flags, content types, versions), so
/// decoding it costs no allocation.
fn well_known_value(value: &[u8]) -> Option<&'static str> {
    Some(match value {
        b"0" => "0",
        b"true" => "true",
        b"false" => "false",
        b"auto" => "auto",
        b"client" => "client",
        b"client-individual" => "client-individual",
        b"text/plain" => "text/plain",
        b"text/plain;charset=utf-8" => "text/plain;charset=utf-8",
        b"application/json" => "application/json",
        b"application/json;charset=utf-8" => "application/json;charset=utf-8",
        b"application/octet-stream" => "application/octet-stream",
        b"0,0" => "0,0",
        b"1.0" => "1.0",
        b"1.1" => "1.1",
        b"1.2" => "1.2",
        b"1.0,1.1,1.2" => "1.0,1.1,1.2",
        _ => return None,
    })
}

/// A line without the CR of a CRLF line end.
fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn parse_content_length(value: &str) -> Result<usize, DecodeError> {
    // Some clients pad the value; digits only, no sign.
    let digits = value.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DecodeError::InvalidContentLength(value.to_owned()));
    }
    // A length past `usize::MAX` is over any body limit: it saturates, and the caller reports
    // `BodyTooLarge`.
    Ok(digits.bytes().fold(0usize, |n, digit| {
        n.saturating_mul(10)
            .saturating_add(usize::from(digit - b'0'))
    }))
}
