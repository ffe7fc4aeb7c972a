//! RFC 6455 framing for the server side, as pure functions: the head of a client frame, masking,
//! the head of a server frame, close codes and UTF-8 checked across fragments.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               |Masking-key, if MASK set to 1  |
//! +-------------------------------+-------------------------------+
//! ```

use bytes::{BufMut, BytesMut};

/// Opcodes (RFC 6455 section 5.2).
pub const CONTINUATION: u8 = 0x0;
/// A text message's first frame.
pub const TEXT: u8 = 0x1;
/// A binary message's first frame.
pub const BINARY: u8 = 0x2;
/// Close (section 5.5.1).
pub const CLOSE: u8 = 0x8;
/// Ping (section 5.5.2).
pub const PING: u8 = 0x9;
/// Pong (section 5.5.3).
pub const PONG: u8 = 0xA;

/// Close codes (section 7.4.1).
pub mod code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The peer broke the protocol.
    pub const PROTOCOL: u16 = 1002;
    /// A text message was not UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// A message was larger than the limit.
    pub const TOO_BIG: u16 = 1009;
}

/// Why the connection must fail (section 7.1.7): the close code to send and a reason for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("WebSocket: {reason} (close code {code})")]
pub struct Fail {
    /// The close code to send.
    pub code: u16,
    /// What was wrong.
    pub reason: &'static str,
}

impl Fail {
    /// A protocol error (1002).
    pub const fn protocol(reason: &'static str) -> Fail {
        Fail {
            code: code::PROTOCOL,
            reason,
        }
    }
}

/// The head of a frame from a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Last frame of its message.
    pub fin: bool,
    /// The opcode.
    pub opcode: u8,
    /// The masking key (clients must mask every frame).
    pub mask: [u8; 4],
    /// Payload length.
    pub len: u64,
    /// Bytes of the head itself (2 to 14).
    pub head_len: usize,
}

impl Head {
    /// Close, ping or pong.
    pub fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }
}

/// Parses the head of a client frame at the start of `buf`; `Ok(None)` until it is complete.
/// Checks what the head alone can tell (section 5.2): no extension bits (none is negotiated),
/// a known opcode, the mask a client must set (section 5.3), and control frames unfragmented
/// and at most 125 bytes (section 5.5).
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, Fail> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(Fail::protocol("reserved bits set without an extension"));
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0f;
    if !matches!(opcode, CONTINUATION | TEXT | BINARY | CLOSE | PING | PONG) {
        return Err(Fail::protocol("unknown opcode"));
    }
    if b1 & 0x80 == 0 {
        return Err(Fail::protocol("client frame not masked"));
    }
    let (len, at) = match b1 & 0x7f {
        // Section 5.2: the length MUST use the fewest bytes; a longer form is refused rather
        // than read, so that one frame has one encoding.
        126 => match buf.get(2..4) {
            Some(b) => match u16::from_be_bytes([b[0], b[1]]) {
                0..=125 => return Err(Fail::protocol("payload length not in its shortest form")),
                len => (u64::from(len), 4),
            },
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let mut be = [0u8; 8];
                be.copy_from_slice(b);
                let len = u64::from_be_bytes(be);
                if len >> 63 != 0 {
                    return Err(Fail::protocol("payload length with its top bit set"));
                }
                if len <= 0xffff {
                    return Err(Fail::protocol("payload length not in its shortest form"));
                }
                (len, 10)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    let Some(key) = buf.get(at..at + 4) else {
        return Ok(None);
    };
    let head = Head {
        fin,
        opcode,
        mask: [key[0], key[1], key[2], key[3]],
        len,
        head_len: at + 4,
    };
    if head.is_control() && (!fin || len > 125) {
        return Err(Fail::protocol("fragmented or oversized control frame"));
    }
    Ok(Some(head))
}

/// XORs `data` with the masking key, `offset` bytes into the payload (section 5.3), eight
/// bytes at a time.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut key = [0u8; 8];
    for (i, k) in key.iter_mut().enumerate() {
        *k = mask[(offset + i) % 4];
    }
    let wide = u64::from_ne_bytes(key);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    // The remainder starts at a multiple of 8, so the key lines up with `key` again.
    for (byte, k) in chunks.into_remainder().iter_mut().zip(key) {
        *byte ^= k;
    }
}

/// Bytes of the head of an unmasked (server) frame with `len` bytes of payload.
pub fn server_head_len(len: usize) -> usize {
    match len {
        0..=125 => 2,
        126..=0xffff => 4,
        _ => 10,
    }
}

/// Writes the head of a final, unmasked frame into `dst`, which must be exactly
/// [`server_head_len`]`(len)` bytes long.
pub fn write_server_head(dst: &mut [u8], opcode: u8, len: usize) {
    let Some((first, rest)) = dst.split_first_mut() else {
        return;
    };
    *first = 0x80 | opcode;
    match rest {
        [b] => *b = len as u8,
        [b, ext @ ..] if ext.len() == 2 => {
            *b = 126;
            ext.copy_from_slice(&(len as u16).to_be_bytes());
        }
        [b, ext @ ..] => {
            *b = 127;
            ext.copy_from_slice(&(len as u64).to_be_bytes());
        }
        [] => {}
    }
}

/// Appends a complete unmasked frame (for control frames and tests).
pub fn put_server_frame(dst: &mut BytesMut, opcode: u8, payload: &[u8]) {
    let head = server_head_len(payload.len());
    let start = dst.len();
    dst.put_bytes(0, head);
    write_server_head(&mut dst[start..], opcode, payload.len());
    dst.extend_from_slice(payload);
}

/// A close code a peer may send (section 7.4): not the reserved 1004-1006 and 1015, nor
/// unassigned ones below 3000.
pub fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// UTF-8 validity of a text message that arrives in pieces: a character may be cut between
/// frames or reads, so up to three bytes of it wait for the next piece.
#[derive(Debug, Default, Clone, Copy)]
pub struct Utf8Check {
    pending: [u8; 4],
    len: u8,
}

impl Utf8Check {
    /// Checks the next piece; false when the text is not UTF-8.
    pub fn feed(&mut self, mut piece: &[u8]) -> bool {
        if self.len > 0 {
            let need = match self.pending[0] {
                0xc0..=0xdf => 2,
                0xe0..=0xef => 3,
                _ => 4,
            };
            let have = usize::from(self.len);
            let take = (need - have).min(piece.len());
            self.pending[have..have + take].copy_from_slice(&piece[..take]);
            self.len += take as u8;
            piece = &piece[take..];
            match std::str::from_utf8(&self.pending[..usize::from(self.len)]) {
                Ok(_) => self.len = 0,
                // Still a valid beginning: wait for more.
                Err(e) if e.error_len().is_none() => return true,
                Err(_) => return false,
            }
        }
        match std::str::from_utf8(piece) {
            Ok(_) => true,
            Err(e) if e.error_len().is_none() => {
                let tail = &piece[e.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                self.len = tail.len() as u8;
                true
            }
            Err(_) => false,
        }
    }

    /// True when no character is left unfinished (the message may end here).
    pub fn is_complete(&self) -> bool {
        self.len == 0
    }
}

/// A masked client frame, as a browser sends it: for tests and the fuzz targets.
#[cfg(any(test, feature = "fuzzing"))]
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    let mut body = payload.to_vec();
    apply_mask(&mut body, mask, 0);
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_of_every_length_class_parse_only_once_complete() {
        for len in [0usize, 1, 125, 126, 127, 0xffff, 0x10000] {
            let payload = vec![b'x'; len];
            let frame = client_frame(true, TEXT, &payload, [1, 2, 3, 4]);
            let head_len = frame.len() - len;
            for cut in 0..head_len {
                assert_eq!(parse_head(&frame[..cut]), Ok(None), "len {len} cut {cut}");
            }
            let head = parse_head(&frame).unwrap().unwrap();
            assert_eq!(head.len, len as u64);
            assert_eq!(head.head_len, head_len);
            assert_eq!(head.mask, [1, 2, 3, 4]);
            assert!(head.fin);
            assert_eq!(head.opcode, TEXT);
        }
    }

    #[test]
    fn heads_that_break_the_rules_fail() {
        let ok = client_frame(true, TEXT, b"hi", [0; 4]);
        let mut rsv = ok.clone();
        rsv[0] |= 0x40;
        assert_eq!(parse_head(&rsv).unwrap_err().code, code::PROTOCOL);
        let mut opcode = ok.clone();
        opcode[0] = 0x83;
        assert!(parse_head(&opcode).is_err());
        let mut unmasked = ok.clone();
        unmasked[1] &= 0x7f;
        assert!(parse_head(&unmasked).is_err());
        let fragmented_ping = client_frame(false, PING, b"", [0; 4]);
        assert!(parse_head(&fragmented_ping).is_err());
        let big_ping = client_frame(true, PING, &[0; 126], [0; 4]);
        assert!(parse_head(&big_ping).is_err());
        let mut huge = vec![0x82, 0xff];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        huge.extend_from_slice(&[0; 4]);
        assert!(parse_head(&huge).is_err());
        // Lengths in a longer form than needed: 5 in 16 bits, 200 in 64 bits.
        let mut long16 = vec![0x82, 0xfe, 0, 5];
        long16.extend_from_slice(&[0; 4]);
        assert_eq!(parse_head(&long16).unwrap_err().code, code::PROTOCOL);
        let mut long64 = vec![0x82, 0xff];
        long64.extend_from_slice(&200u64.to_be_bytes());
        long64.extend_from_slice(&[0; 4]);
        assert_eq!(parse_head(&long64).unwrap_err().code, code::PROTOCOL);
    }

    #[test]
    fn masking_at_any_offset_matches_byte_by_byte() {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let data: Vec<u8> = (0..100u8).collect();
        for offset in 0..8 {
            for len in [0, 1, 7, 8, 9, 31, 100] {
                let mut fast = data[..len].to_vec();
                apply_mask(&mut fast, mask, offset);
                let slow: Vec<u8> = data[..len]
                    .iter()
                    .enumerate()
                    .map(|(i, b)| b ^ mask[(offset + i) % 4])
                    .collect();
                assert_eq!(fast, slow, "offset {offset} len {len}");
            }
        }
    }

    #[test]
    fn server_heads_round_trip_through_the_client_parser() {
        for len in [0usize, 125, 126, 0xffff, 0x10000] {
            let payload = vec![7u8; len];
            let mut out = BytesMut::new();
            put_server_frame(&mut out, BINARY, &payload);
            assert_eq!(out.len(), server_head_len(len) + len);
            // Set the mask bit and insert a zero key so the client parser reads it.
            let head = server_head_len(len);
            let mut masked = out[..head].to_vec();
            masked[1] |= 0x80;
            masked.extend_from_slice(&[0; 4]);
            let parsed = parse_head(&masked).unwrap().unwrap();
            assert_eq!(parsed.len, len as u64);
            assert_eq!(parsed.opcode, BINARY);
            assert!(parsed.fin);
        }
    }

    #[test]
    fn utf8_cut_at_every_position() {
        let text = "a é € 😀 z".as_bytes();
        for cut in 0..=text.len() {
            for cut2 in cut..=text.len() {
                let mut check = Utf8Check::default();
                assert!(check.feed(&text[..cut]));
                assert!(check.feed(&text[cut..cut2]));
                assert!(check.feed(&text[cut2..]));
                assert!(check.is_complete(), "cuts {cut} {cut2}");
            }
        }
        let mut check = Utf8Check::default();
        assert!(check.feed(&[0xe2, 0x82]));
        assert!(!check.is_complete());
        assert!(
            !check.feed(b"a"),
            "a cut character followed by ASCII is not UTF-8"
        );
        assert!(!Utf8Check::default().feed(&[0xff]));
        let mut check = Utf8Check::default();
        assert!(check.feed(&[0xe0]));
        assert!(
            !check.feed(&[0x80]),
            "an overlong beginning fails as soon as it is seen"
        );
    }

    #[test]
    fn close_codes() {
        assert!(valid_close_code(1000));
        assert!(valid_close_code(4000));
        for bad in [0, 999, 1004, 1005, 1006, 1015, 2000, 5000] {
            assert!(!valid_close_code(bad), "{bad}");
        }
    }
}
