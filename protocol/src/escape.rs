//! Header value escaping (STOMP 1.2, "Value Encoding"; 1.1 has the same rules without `\r`).

use std::borrow::Cow;

use crate::{Command, DecodeError, Version};

/// How a frame's header names and values are escaped on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escaping {
    /// No escaping: STOMP 1.0, and CONNECT/CONNECTED frames in every version. A raw newline
    /// cannot be carried, so the encoder writes it as a space (and a colon in a name as `_`).
    None,
    /// STOMP 1.1: `\\`, `\n`, `\c`.
    V11,
    /// STOMP 1.2: `\\`, `\n`, `\c`, `\r`.
    V12,
}

impl Escaping {
    /// The escaping a frame with `command` uses under `version`.
    pub const fn for_frame(command: Command, version: Version) -> Escaping {
        if command.is_unescaped() {
            return Escaping::None;
        }
        match version {
            Version::V1_0 => Escaping::None,
            Version::V1_1 => Escaping::V11,
            Version::V1_2 => Escaping::V12,
        }
    }

    /// Decodes escape sequences in a raw header name or value.
    pub fn unescape(self, raw: &[u8]) -> Result<Cow<'_, [u8]>, DecodeError> {
        if self == Escaping::None || memchr::memchr(b'\\', raw).is_none() {
            return Ok(Cow::Borrowed(raw));
        }
        let mut out = Vec::with_capacity(raw.len());
        let mut bytes = raw.iter();
        while let Some(&b) = bytes.next() {
            if b != b'\\' {
                out.push(b);
                continue;
            }
            match bytes.next() {
                Some(b'\\') => out.push(b'\\'),
                Some(b'n') => out.push(b'\n'),
                Some(b'c') => out.push(b':'),
                Some(b'r') if self == Escaping::V12 => out.push(b'\r'),
                Some(&other) => {
                    return Err(DecodeError::InvalidEscape(format!(
                        "\\{}",
                        char::from(other).escape_default()
                    )))
                }
                None => return Err(DecodeError::InvalidEscape("\\".to_owned())),
            }
        }
        Ok(Cow::Owned(out))
    }

    /// Appends `text` to `dst`, escaped. `is_name` marks a header name, where a colon cannot be
    /// carried unescaped.
    pub fn write(self, dst: &mut bytes::BytesMut, text: &str, is_name: bool) {
        let needs_work = |b: u8| matches!(b, b'\\' | b'\n' | b'\r' | b':');
        let raw = text.as_bytes();
        if !raw.iter().any(|&b| needs_work(b)) {
            dst.extend_from_slice(raw);
            return;
        }
        for &b in raw {
            match (self, b) {
                (Escaping::None, b'\n' | b'\r') => dst.extend_from_slice(b" "),
                (Escaping::None, b':') if is_name => dst.extend_from_slice(b"_"),
                (Escaping::None, _) => dst.extend_from_slice(&[b]),
                (_, b'\\') => dst.extend_from_slice(b"\\\\"),
                (_, b'\n') => dst.extend_from_slice(b"\\n"),
                (_, b':') => dst.extend_from_slice(b"\\c"),
                (Escaping::V12, b'\r') => dst.extend_from_slice(b"\\r"),
                // 1.1 has no escape for CR; a raw CR before the line end would read as CRLF.
                (Escaping::V11, b'\r') => dst.extend_from_slice(b" "),
                (_, other) => dst.extend_from_slice(&[other]),
            }
        }
    }
}
