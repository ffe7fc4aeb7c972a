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
            out.push(if b == b'\\' {
                self.escaped(bytes.next().copied())?
            } else {
                b
            });
        }
        Ok(Cow::Owned(out))
    }

    /// Checks the escape sequences of a raw name or value without decoding them, so that a
    /// head is known to be valid before any of it is rewritten by [`unescape_in_place`].
    ///
    /// [`unescape_in_place`]: Self::unescape_in_place
    pub(crate) fn check(self, raw: &[u8]) -> Result<(), DecodeError> {
        if self == Escaping::None {
            return Ok(());
        }
        let mut from = 0;
        while let Some(at) = memchr::memchr(b'\\', &raw[from..]) {
            let at = from + at;
            self.escaped(raw.get(at + 1).copied())?;
            from = at + 2;
        }
        Ok(())
    }

    /// Decodes the escape sequences of `bytes` in place (a decoded sequence is shorter than its
    /// escape) and returns the decoded length; what follows it in `bytes` is left as it was.
    /// Run [`check`](Self::check) first: an undefined escape is an error here too, but
    /// `bytes` may then be half rewritten.
    pub(crate) fn unescape_in_place(self, bytes: &mut [u8]) -> Result<usize, DecodeError> {
        if self == Escaping::None {
            return Ok(bytes.len());
        }
        let (mut read, mut write) = (0, 0);
        while read < bytes.len() {
            let b = bytes[read];
            read += 1;
            bytes[write] = if b == b'\\' {
                read += 1;
                self.escaped(bytes.get(read - 1).copied())?
            } else {
                b
            };
            write += 1;
        }
        Ok(write)
    }

    /// The byte an escape stands for, given the byte after the backslash (`None`: the
    /// backslash ends the text).
    fn escaped(self, next: Option<u8>) -> Result<u8, DecodeError> {
        match next {
            Some(b'\\') => Ok(b'\\'),
            Some(b'n') => Ok(b'\n'),
            Some(b'c') => Ok(b':'),
            Some(b'r') if self == Escaping::V12 => Ok(b'\r'),
            Some(other) => Err(DecodeError::InvalidEscape(format!(
                "\\{}",
                char::from(other).escape_default()
            ))),
            None => Err(DecodeError::InvalidEscape("\\".to_owned())),
        }
    }

    /// Appends `text` to `dst`, escaped. `is_name` marks a header name, where a colon cannot be
    /// carried unescaped.
    pub fn write(self, dst: &mut bytes::BytesMut, text: &str, is_name: bool) {
        self.write_bytes(dst, text.as_bytes(), is_name);
    }

    /// [`write`](Self::write) for the bytes of a name or value (the encoder reads headers as
    /// bytes: no `char` boundary checks for text it only copies).
    pub(crate) fn write_bytes(self, dst: &mut bytes::BytesMut, raw: &[u8], is_name: bool) {
        // Most text needs no escaping: find that out a word at a time.
        if crate::scan::find_any([b'\\', b'\n', b'\r', b':'], raw).is_none() {
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
