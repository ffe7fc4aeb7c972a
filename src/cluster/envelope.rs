//! A message as it travels between nodes: one NATS payload holding the origin node, the key
//! it was routed under, the destination its recipients see, the sender's headers and the body.
//!
//! Length-prefixed binary rather than NATS headers: STOMP header values may hold any text
//! (line feeds and colons included, once unescaped), which NATS's HTTP-like headers cannot
//! carry, and one payload keeps the message whole. Every length is checked against what is
//! left before it is used, so a malformed payload is refused, never read past.

use bytes::{BufMut, Bytes, BytesMut};
use stompede_protocol::Headers;

use crate::broker::message::Message;

/// The format's first byte; another value is a payload of another version, refused.
const VERSION: u8 = 1;

/// Flag bit: the sender used a text frame.
const TEXT: u8 = 1;

/// A message from another node, decoded.
#[derive(Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The node that published it (`--node-name`).
    pub origin: String,
    /// The key it was routed under there (a topic, or a user's own key).
    pub key: String,
    /// The destination its recipients see.
    pub destination: String,
    /// The sender's headers.
    pub headers: Headers,
    /// The body.
    pub body: Bytes,
    /// Sent as a text frame.
    pub text: bool,
}

/// Why a payload was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Not this format's version.
    #[error("unknown envelope version {0}")]
    Version(u8),
    /// A length past the end of the payload.
    #[error("truncated envelope")]
    Truncated,
    /// A name that is not UTF-8.
    #[error("envelope text is not UTF-8")]
    Utf8,
    /// A field too long for its length prefix.
    #[error("envelope field too long")]
    TooLong,
}

/// Encodes `message`, routed under `key` on node `origin`.
pub fn encode(origin: &str, key: &str, message: &Message) -> Result<Bytes, EnvelopeError> {
    let headers: usize = message
        .headers
        .iter()
        .map(|h| 6 + h.name.len() + h.value.len())
        .sum();
    let mut out = BytesMut::with_capacity(
        16 + origin.len() + key.len() + message.destination.len() + headers + message.body.len(),
    );
    out.put_u8(VERSION);
    put_short(&mut out, origin)?;
    put_short(&mut out, key)?;
    put_short(&mut out, &message.destination)?;
    out.put_u8(if message.text { TEXT } else { 0 });
    let count = u16::try_from(message.headers.len()).map_err(|_| EnvelopeError::TooLong)?;
    out.put_u16(count);
    for header in &message.headers {
        put_short(&mut out, header.name)?;
        let len = u32::try_from(header.value.len()).map_err(|_| EnvelopeError::TooLong)?;
        out.put_u32(len);
        out.put_slice(header.value.as_bytes());
    }
    out.put_slice(&message.body);
    Ok(out.freeze())
}

/// Decodes a payload; the body is a slice of it (no copy).
pub fn decode(payload: &Bytes) -> Result<Envelope, EnvelopeError> {
    let mut reader = Reader { payload, at: 0 };
    let version = reader.u8()?;
    if version != VERSION {
        return Err(EnvelopeError::Version(version));
    }
    let origin = reader.short()?;
    let key = reader.short()?;
    let destination = reader.short()?;
    let text = reader.u8()? & TEXT != 0;
    let count = reader.u16()?;
    let mut headers = Headers::with_capacity(usize::from(count));
    for _ in 0..count {
        let name = reader.short()?;
        let len = reader.u32()? as usize;
        let value = reader.text(len)?;
        headers.push(name, value);
    }
    let body = payload.slice(reader.at..);
    Ok(Envelope {
        origin: origin.to_owned(),
        key: key.to_owned(),
        destination: destination.to_owned(),
        headers,
        body,
        text,
    })
}

fn put_short(out: &mut BytesMut, text: &str) -> Result<(), EnvelopeError> {
    let len = u16::try_from(text.len()).map_err(|_| EnvelopeError::TooLong)?;
    out.put_u16(len);
    out.put_slice(text.as_bytes());
    Ok(())
}

/// Reads a payload front to back, never past its end.
struct Reader<'a> {
    payload: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], EnvelopeError> {
        let end = self.at.checked_add(n).ok_or(EnvelopeError::Truncated)?;
        let bytes = self
            .payload
            .get(self.at..end)
            .ok_or(EnvelopeError::Truncated)?;
        self.at = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, EnvelopeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, EnvelopeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, EnvelopeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn text(&mut self, len: usize) -> Result<&'a str, EnvelopeError> {
        std::str::from_utf8(self.take(len)?).map_err(|_| EnvelopeError::Utf8)
    }

    fn short(&mut self) -> Result<&'a str, EnvelopeError> {
        let len = self.u16()?;
        self.text(usize::from(len))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn message() -> Message {
        let mut headers = Headers::new();
        headers.push("content-type", "text/plain");
        headers.push("x-odd", "a:b\nc\\d");
        Message::new(
            "1-1".into(),
            "/user/queue/progress".into(),
            &headers,
            Bytes::from_static(b"body\0with nul"),
            true,
        )
    }

    #[test]
    fn round_trip() {
        let message = message();
        let payload = encode("node-a", "/user/bob/queue/progress", &message).unwrap();
        let envelope = decode(&payload).unwrap();
        assert_eq!(envelope.origin, "node-a");
        assert_eq!(envelope.key, "/user/bob/queue/progress");
        assert_eq!(envelope.destination, "/user/queue/progress");
        assert_eq!(envelope.headers, message.headers);
        assert_eq!(envelope.body, message.body);
        assert!(envelope.text);
    }

    #[test]
    fn every_truncation_is_refused_not_read_past() {
        let payload = encode("node-a", "/topic/a", &message()).unwrap();
        // Cut anywhere before the body starts: refused (the body may be cut: it has no length).
        let body_starts = payload.len() - message().body.len();
        for cut in 0..body_starts {
            assert!(decode(&payload.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut other = payload.to_vec();
        other[0] = 9;
        assert_eq!(decode(&Bytes::from(other)), Err(EnvelopeError::Version(9)));
    }
}
