//! The binary form of a stored message. Length-prefixed fields; decoding checks every bound,
//! so a damaged record is an error, never a panic.

use bytes::{BufMut, Bytes, BytesMut};

/// A message as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// `message-id`.
    pub id: String,
    /// Destination the recipients see.
    pub destination: String,
    /// The sender's headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
    /// Sent as a text WebSocket frame.
    pub text: bool,
    /// Expiry, ms since the epoch (0: never).
    pub expires: u64,
}

/// Record layout version, written first in every record.
const RECORD_VERSION: u8 = 1;

/// The record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt message record: {0}")]
pub struct CorruptRecord(pub &'static str);

impl StoredMessage {
    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 8)
            .sum();
        let mut out = BytesMut::with_capacity(
            32 + self.id.len() + self.destination.len() + headers + self.body.len(),
        );
        out.put_u8(RECORD_VERSION);
        out.put_u8(u8::from(self.text));
        out.put_u64(self.expires);
        put_bytes(&mut out, self.id.as_bytes());
        put_bytes(&mut out, self.destination.as_bytes());
        out.put_u32(self.headers.len() as u32);
        for (name, value) in &self.headers {
            put_bytes(&mut out, name.as_bytes());
            put_bytes(&mut out, value.as_bytes());
        }
        put_bytes(&mut out, &self.body);
        out.to_vec()
    }

    /// Decodes a record.
    pub fn decode(bytes: &[u8]) -> Result<StoredMessage, CorruptRecord> {
        let mut reader = Reader(bytes);
        if reader.u8()? != RECORD_VERSION {
            return Err(CorruptRecord("unknown record version"));
        }
        let text = reader.u8()? != 0;
        let expires = reader.u64()?;
        let id = reader.string()?;
        let destination = reader.string()?;
        let count = reader.u32()? as usize;
        // Each header needs at least 8 bytes: a count larger than the rest is damage.
        if count > reader.0.len() / 8 {
            return Err(CorruptRecord("header count"));
        }
        let mut headers = Vec::with_capacity(count);
        for _ in 0..count {
            headers.push((reader.string()?, reader.string()?));
        }
        let body = Bytes::copy_from_slice(reader.bytes()?);
        if !reader.0.is_empty() {
            return Err(CorruptRecord("trailing bytes"));
        }
        Ok(StoredMessage {
            id,
            destination,
            headers,
            body,
            text,
            expires,
        })
    }
}

fn put_bytes(out: &mut BytesMut, bytes: &[u8]) {
    out.put_u32(bytes.len() as u32);
    out.put_slice(bytes);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CorruptRecord> {
        if self.0.len() < n {
            return Err(CorruptRecord("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, CorruptRecord> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, CorruptRecord> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, CorruptRecord> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }

    fn bytes(&mut self) -> Result<&'a [u8], CorruptRecord> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn string(&mut self) -> Result<String, CorruptRecord> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| CorruptRecord("invalid UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let message = StoredMessage {
            id: "m-1".into(),
            destination: "/queue/a".into(),
            headers: vec![("content-type".into(), "text/plain".into())],
            body: Bytes::from_static(b"body\0with nul"),
            text: true,
            expires: 42,
        };
        let bytes = message.encode();
        assert_eq!(StoredMessage::decode(&bytes), Ok(message));
        for cut in 0..bytes.len() {
            assert!(StoredMessage::decode(&bytes[..cut]).is_err());
        }
        let mut bad = bytes.clone();
        bad[0] = 9;
        assert!(StoredMessage::decode(&bad).is_err());
    }
}
