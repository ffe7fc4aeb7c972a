//! nom parsers over the head of one frame (command line, header lines, blank line).
//!
//! The streaming decoder only hands over a head it has already found complete and within the
//! limits, so these parsers never see partial input. Grammar (STOMP 1.2, "Augmented BNF"):
//!
//! ```text
//! frame   = command EOL *( header EOL ) EOL *OCTET NULL *( EOL )
//! header  = header-name ":" header-value
//! EOL     = [CR] LF
//! ```

use bytes::Bytes;
use bytestring::ByteString;
use nom::bytes::complete::{tag, take_till, take_till1};
use nom::combinator::rest;
use nom::sequence::{separated_pair, terminated};
use nom::{IResult, Parser};

use crate::header::names;
use crate::{Command, DecodeError, Escaping, Headers, Version};

/// The parsed head of a frame.
pub(crate) struct Head {
    pub command: Command,
    pub headers: Headers,
    pub content_length: Option<usize>,
}

/// `EOL = [CR] LF`: one line, without its line ending.
fn line(input: &[u8]) -> IResult<&[u8], &[u8]> {
    let (rest, line) = terminated(take_till(|b| b == b'\n'), tag(&b"\n"[..])).parse(input)?;
    Ok((rest, line.strip_suffix(b"\r").unwrap_or(line)))
}

/// `header = header-name ":" header-value`; the first colon splits, so a 1.0 value may hold
/// colons of its own.
fn header(input: &[u8]) -> IResult<&[u8], (&[u8], &[u8])> {
    separated_pair(take_till1(|b| b == b':'), tag(&b":"[..]), rest).parse(input)
}

/// Parses a complete head: `head` runs from the command line through the blank line.
pub(crate) fn head(head: &Bytes, version: Version) -> Result<Head, DecodeError> {
    let (mut input, command_line) =
        line(head).map_err(|_| DecodeError::UnknownCommand(String::new()))?;
    let command = Command::from_bytes(command_line).ok_or_else(|| {
        DecodeError::UnknownCommand(String::from_utf8_lossy(command_line).into_owned())
    })?;
    let escaping = Escaping::for_frame(command, version);
    let mut headers = Headers::with_capacity(8);
    let mut content_length = None;
    loop {
        let (after, raw) = line(input).map_err(|_| DecodeError::MalformedHeader(String::new()))?;
        input = after;
        if raw.is_empty() {
            break;
        }
        let (_, (raw_name, raw_value)) =
            header(raw).map_err(|_: nom::Err<nom::error::Error<&[u8]>>| {
                DecodeError::MalformedHeader(String::from_utf8_lossy(raw).into_owned())
            })?;
        let name = text(head, escaping.unescape(raw_name)?)?;
        let value = text(head, escaping.unescape(raw_value)?)?;
        if content_length.is_none() && &*name == names::CONTENT_LENGTH {
            content_length = Some(parse_content_length(&value)?);
        }
        headers.push(name, value);
    }
    Ok(Head {
        command,
        headers,
        content_length,
    })
}

/// Turns a (possibly unescaped) slice into validated UTF-8, sharing `head`'s memory when the
/// slice is a borrowed part of it.
fn text(head: &Bytes, part: std::borrow::Cow<'_, [u8]>) -> Result<ByteString, DecodeError> {
    let bytes = match part {
        std::borrow::Cow::Borrowed(slice) => head.slice_ref(slice),
        std::borrow::Cow::Owned(vec) => Bytes::from(vec),
    };
    ByteString::try_from(bytes).map_err(|_| DecodeError::InvalidUtf8)
}

fn parse_content_length(value: &str) -> Result<usize, DecodeError> {
    // Some clients pad the value; digits only, no sign.
    let digits = value.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DecodeError::InvalidContentLength(value.to_owned()));
    }
    digits
        .parse()
        .map_err(|_| DecodeError::InvalidContentLength(value.to_owned()))
}
