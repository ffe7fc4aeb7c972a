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
//! The first colon of a line splits it, so a value may hold colons of its own.
//!
//! A decoded frame's headers are spans of its head (see `Headers`). The head is parsed in three
//! passes, the last two nearly free for common frames:
//!
//! 1. read-only: find each colon, check escapes and `content-length`, note the spans;
//! 2. only when a line holds an escape: unescape those names and values in place (the head is
//!    still in the read buffer, which the decoder owns), blanking the bytes they no longer use;
//! 3. split the head off the read buffer and check it is UTF-8 in one go (equivalent to
//!    checking every name and value: the rest is ASCII, and unescaping turns ASCII into ASCII).
//!
//! Pass 1 stops at the first error of any kind; the error reported is then worked out again,
//! line by line, on the untouched head (`first_error`), so that it is the one a plain
//! line-by-line parser would give.

use std::borrow::Cow;

use bytes::BytesMut;
use bytestring::ByteString;

use crate::header::{names, Entry, Span};
use crate::scan;
use crate::{Command, DecodeError, Escaping, Headers, Version};

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
    let head = &buf[..head_len];
    let (mut entries, content_length, escaped) =
        spans(head, command_line.end, header_lines, escaping)
            .map_err(|found| first_error(head, command_line.end, header_lines, escaping, found))?;
    if escaped {
        unescape_in_place(&mut buf[..head_len], &mut entries, escaping)?;
    }
    let head = ByteString::try_from(buf.split_to(head_len).freeze())
        .map_err(|_| DecodeError::InvalidUtf8)?;
    Ok(Head {
        command,
        headers: Headers::from_head(head, entries),
        content_length,
    })
}

/// Pass 1: the spans of every header line of `head` (the command line ends at
/// `command_end`), the first `content-length`, and whether any line needs unescaping. Checks
/// everything but UTF-8.
#[inline(always)]
fn spans(
    head: &[u8],
    command_end: usize,
    lines: &[Line],
    escaping: Escaping,
) -> Result<(Vec<Entry>, Option<usize>, bool), DecodeError> {
    let mut entries = Vec::with_capacity(lines.len());
    let mut content_length = None;
    let mut escaped = false;
    let mut start = command_end + 1;
    for line in lines {
        let raw = strip_cr(&head[start..line.end]);
        let colon = match scan::find(b':', raw) {
            Some(colon) if colon > 0 => colon,
            _ => return Err(DecodeError::MalformedHeader(String::new())),
        };
        let name = Span {
            start,
            end: start + colon,
        };
        let value = Span {
            start: name.end + 1,
            end: start + raw.len(),
        };
        let unescape = line.backslash && escaping != Escaping::None;
        if unescape {
            escaping.check(&raw[..colon])?;
            escaping.check(&raw[colon + 1..])?;
            escaped = true;
        }
        // Unescaping cannot make a name `content-length` (escapes stand for `\`, LF, `:`, CR),
        // nor change one that is.
        if content_length.is_none() && &raw[..colon] == names::CONTENT_LENGTH.as_bytes() {
            let value = &raw[colon + 1..];
            content_length = Some(if unescape {
                parse_content_length_bytes(&escaping.unescape(value)?)?
            } else {
                parse_content_length_bytes(value)?
            });
        }
        entries.push(Entry { name, value });
        start = line.end + 1;
    }
    Ok((entries, content_length, escaped))
}

/// Pass 2: unescapes every name and value of `entries` that holds a backslash, in place, and
/// shortens its span. The bytes a shorter text frees become spaces, so the head stays UTF-8
/// exactly when it was.
#[cold]
fn unescape_in_place(
    head: &mut [u8],
    entries: &mut [Entry],
    escaping: Escaping,
) -> Result<(), DecodeError> {
    for entry in entries {
        for span in [&mut entry.name, &mut entry.value] {
            let text = &mut head[span.start..span.end];
            if memchr::memchr(b'\\', text).is_some() {
                let len = escaping.unescape_in_place(text)?;
                text[len..].fill(b' ');
                span.end = span.start + len;
            }
        }
    }
    Ok(())
}

/// The error a line-by-line parser reports for `head`, which pass 1 found wrong (`found`):
/// the first line with a missing colon, a bad escape, a name or value that is not UTF-8, or a
/// bad first `content-length`, checked in that order within a line.
#[cold]
#[inline(never)]
fn first_error(
    head: &[u8],
    command_end: usize,
    lines: &[Line],
    escaping: Escaping,
    found: DecodeError,
) -> DecodeError {
    let mut start = command_end + 1;
    let mut content_length = false;
    for line in lines {
        let raw = strip_cr(&head[start..line.end]);
        start = line.end + 1;
        let colon = match scan::find(b':', raw) {
            Some(colon) if colon > 0 => colon,
            _ => return DecodeError::MalformedHeader(String::from_utf8_lossy(raw).into_owned()),
        };
        let escaping = if line.backslash {
            escaping
        } else {
            Escaping::None
        };
        let name = match text(&raw[..colon], escaping) {
            Ok(name) => name,
            Err(error) => return error,
        };
        let value = match text(&raw[colon + 1..], escaping) {
            Ok(value) => value,
            Err(error) => return error,
        };
        if !content_length && name == names::CONTENT_LENGTH {
            content_length = true;
            if let Err(error) = parse_content_length(&value) {
                return error;
            }
        }
    }
    found
}

/// A raw name or value, unescaped and checked to be UTF-8.
fn text(raw: &[u8], escaping: Escaping) -> Result<Cow<'_, str>, DecodeError> {
    match escaping.unescape(raw)? {
        Cow::Borrowed(raw) => std::str::from_utf8(raw).map(Cow::Borrowed).ok(),
        Cow::Owned(unescaped) => String::from_utf8(unescaped).map(Cow::Owned).ok(),
    }
    .ok_or(DecodeError::InvalidUtf8)
}

/// A line without the CR of a CRLF line end.
fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Parses a raw `content-length` value: plain digits at once, anything else (padding) as
/// text.
#[inline(always)]
fn parse_content_length_bytes(value: &[u8]) -> Result<usize, DecodeError> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        let value = std::str::from_utf8(value).map_err(|_| DecodeError::InvalidUtf8)?;
        return parse_content_length(value);
    }
    // At most 19 digits: no overflow in a u64.
    let n = value
        .iter()
        .fold(0u64, |n, digit| n * 10 + u64::from(digit - b'0'));
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
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
