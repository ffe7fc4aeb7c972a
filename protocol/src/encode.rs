//! The encoder: frames to bytes, escaped for the version, with a true `content-length`.

use bytes::{BufMut, BytesMut};

use crate::header::names;
use crate::{Command, Escaping, Frame, Version};

/// Appends `frame` to `dst`, as STOMP `version`.
///
/// Any `content-length` header in `frame` is ignored and the real length written instead
/// (after the other headers), whenever [`writes_content_length`] says so: always for MESSAGE,
/// ERROR and SEND, and for any non-empty body. A reader then never has to hunt for the NUL,
/// and a body may hold NUL bytes.
pub fn encode(frame: &Frame, version: Version, dst: &mut BytesMut) {
    let escaping = Escaping::for_frame(frame.command, version);
    dst.reserve(encoded_len_estimate(frame));
    write_command(dst, frame.command);
    for (name, value) in frame.headers.raw() {
        if name != names::CONTENT_LENGTH.as_bytes() {
            write_raw_header(dst, escaping, name, value);
        }
    }
    if writes_content_length(frame) {
        write_content_length(dst, frame.body.len());
    }
    write_body(dst, &frame.body);
}

/// True when [`encode`] writes a `content-length` header for `frame`.
pub fn writes_content_length(frame: &Frame) -> bool {
    !frame.body.is_empty()
        || matches!(
            frame.command,
            Command::Message | Command::Error | Command::Send
        )
}

/// A capacity that holds the encoded frame unless its headers need escaping.
pub fn encoded_len_estimate(frame: &Frame) -> usize {
    let headers: usize = frame
        .headers
        .raw()
        .map(|(name, value)| name.len() + value.len() + 2)
        .sum();
    frame.command.as_str().len() + 1 + headers + 40 + frame.body.len() + 1
}

/// Writes the command line. Building block for encoders that assemble a frame from parts (a
/// broker writing per-subscriber headers around a shared body).
pub fn write_command(dst: &mut BytesMut, command: Command) {
    dst.extend_from_slice(command.as_str().as_bytes());
    dst.put_u8(b'\n');
}

/// Writes one header line, escaped.
pub fn write_header(dst: &mut BytesMut, escaping: Escaping, name: &str, value: &str) {
    write_raw_header(dst, escaping, name.as_bytes(), value.as_bytes());
}

fn write_raw_header(dst: &mut BytesMut, escaping: Escaping, name: &[u8], value: &[u8]) {
    escaping.write_bytes(dst, name, true);
    dst.put_u8(b':');
    escaping.write_bytes(dst, value, false);
    dst.put_u8(b'\n');
}

/// Writes `content-length:N`.
pub fn write_content_length(dst: &mut BytesMut, len: usize) {
    dst.extend_from_slice(b"content-length:");
    write_decimal(dst, len);
    dst.put_u8(b'\n');
}

/// Writes the blank line, the body and the final NUL.
pub fn write_body(dst: &mut BytesMut, body: &[u8]) {
    dst.put_u8(b'\n');
    dst.extend_from_slice(body);
    dst.put_u8(0);
}

/// Writes `n` in decimal without a temporary string.
pub fn write_decimal(dst: &mut BytesMut, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    dst.extend_from_slice(&digits[start..]);
}

/// Encodes a frame into a fresh buffer. Convenience for tests and cold paths.
pub fn to_bytes(frame: &Frame, version: Version) -> bytes::Bytes {
    let mut dst = BytesMut::new();
    encode(frame, version, &mut dst);
    dst.freeze()
}
