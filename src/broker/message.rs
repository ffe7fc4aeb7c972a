//! A published message, encoded once per protocol version and shared by every recipient.

use std::sync::OnceLock;

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use stompede_protocol::{
    names, write_body, write_content_length, write_header, Command, Escaping, Headers, Version,
};

/// Headers a SEND carries that describe the SEND itself, not the message: they are not copied
/// onto the MESSAGE.
const SEND_ONLY_HEADERS: [&str; 4] = [
    names::DESTINATION,
    names::RECEIPT,
    names::TRANSACTION,
    names::CONTENT_LENGTH,
];

fn size_of(id: &str, destination: &str, headers: &Headers, body: &Bytes) -> usize {
    let headers: usize = headers
        .iter()
        .map(|h| h.name.len() + h.value.len() + 2)
        .sum();
    body.len() + headers + destination.len() + id.len() + 64
}

/// A message as the broker routes it. Immutable once published; recipients share it through an
/// `Arc`, and the wire form of its shared part (everything but the per-subscription headers) is
/// encoded at most once per protocol version.
#[derive(Debug)]
pub struct Message {
    /// The `message-id` header: unique in this broker's lifetime.
    pub id: ByteString,
    /// The `destination` header recipients see.
    pub destination: ByteString,
    /// The sender's headers that travel with the message (`content-type` and custom ones).
    pub headers: Headers,
    /// The body.
    pub body: Bytes,
    /// True when the sender used a text WebSocket frame (or, from TCP, the body is UTF-8):
    /// WebSocket subscribers get the same kind of frame.
    pub text: bool,
    /// Bytes held, for accounting (computed once: outboxes ask on every push and take).
    size: usize,
    tails: [OnceLock<Bytes>; 3],
    /// The tails re-encoded for a transport that carries frames re-encoded (SockJS quotes
    /// each frame as a JSON string), per version like `tails`; allocated on the first request,
    /// so a message no such transport delivers pays one word for them. Not counted in `size`:
    /// at most the size of the tails again, for as long as the message is held anyway.
    encoded_tails: OnceLock<Box<[OnceLock<Bytes>; 3]>>,
}

impl Message {
    /// A message to `destination` with the given id. `headers` are filtered of SEND-only ones.
    pub fn new(
        id: ByteString,
        destination: ByteString,
        headers: &Headers,
        body: Bytes,
        text: bool,
    ) -> Message {
        let headers: Headers = headers
            .iter()
            .filter(|h| !SEND_ONLY_HEADERS.contains(&h.name))
            .collect();
        let size = size_of(&id, &destination, &headers, &body);
        Message {
            id,
            destination,
            headers,
            body,
            text,
            size,
            tails: Default::default(),
            encoded_tails: OnceLock::new(),
        }
    }

    /// The same message under another destination name (a user destination as its recipient
    /// subscribed to it).
    pub fn with_destination(&self, destination: ByteString) -> Message {
        Message {
            id: self.id.clone(),
            size: size_of(&self.id, &destination, &self.headers, &self.body),
            destination,
            headers: self.headers.clone(),
            body: self.body.clone(),
            text: self.text,
            tails: Default::default(),
            encoded_tails: OnceLock::new(),
        }
    }

    /// Bytes this message holds, for outbox and queue accounting.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The encoded MESSAGE frame after its per-subscription headers: `destination`,
    /// `message-id`, the sender's headers, `content-length`, the blank line, body and NUL.
    pub fn tail(&self, version: Version) -> &Bytes {
        self.tails[Self::slot(version)].get_or_init(|| {
            let escaping = Escaping::for_frame(Command::Message, version);
            let mut dst = BytesMut::with_capacity(self.size());
            write_header(&mut dst, escaping, names::DESTINATION, &self.destination);
            write_header(&mut dst, escaping, names::MESSAGE_ID, &self.id);
            for h in &self.headers {
                write_header(&mut dst, escaping, h.name, h.value);
            }
            write_content_length(&mut dst, self.body.len());
            write_body(&mut dst, &self.body);
            dst.freeze()
        })
    }

    /// [`tail`](Message::tail) re-encoded by `encode`, once per message and version, and
    /// shared by every recipient like the tail itself: for a transport that carries each frame
    /// re-encoded (SockJS: as a JSON string), so that it encodes a message's shared part once
    /// rather than once per recipient. One re-encoding per message: every caller passes the
    /// same `encode`.
    pub fn encoded_tail(&self, version: Version, encode: fn(&[u8]) -> Bytes) -> &Bytes {
        let slots = self.encoded_tails.get_or_init(Default::default);
        slots[Self::slot(version)].get_or_init(|| encode(self.tail(version)))
    }

    fn slot(version: Version) -> usize {
        match version {
            Version::V1_0 => 0,
            Version::V1_1 => 1,
            Version::V1_2 => 2,
        }
    }
}
