//! The decoder fuzz oracle, shared by the cargo-fuzz target (`fuzz_targets/decode.rs`) and the
//! corpus replay test (`protocol/tests/fuzz_corpus.rs`), so every corpus file is checked by
//! ordinary `cargo test` with the same assertions the fuzzer makes.
//!
//! Input layout (shorter inputs are padded with zeros):
//!
//! * byte 0: bits 0-1 the version (0: 1.0, 1: 1.1, 2 and 3: 1.2); bit 2: the end of the input
//!   is the end of a WebSocket message (`decode_end_of_message` is called at the end);
//! * byte 1: the limits, two bits for each of `max_command_len`, `max_headers`,
//!   `max_header_line_len` and `max_body_len`, each picking from a small table (0 = default);
//! * byte 2: the largest read size (0: the whole stream in one read);
//! * byte 3: the seed of the read sizes;
//! * the rest: the byte stream.
//!
//! Checked, beyond "no panic":
//!
//! * decoding terminates, and every item consumes input;
//! * an error is sticky: the next call returns it again;
//! * the same stream fed in one read gives the same items, the same error and the same
//!   leftover bytes as the stream fed in the chosen reads;
//! * every decoded frame the encoder can carry re-encodes and decodes back to itself (modulo
//!   the `content-length` header, which the encoder rewrites).
#![allow(dead_code)]

use stompede_protocol::bytes::BytesMut;
use stompede_protocol::{
    encode, names, writes_content_length, DecodeError, Decoded, Decoder, Escaping, Frame, Limits,
    Version,
};

/// What the input's first four bytes select.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// The negotiated version the decoder is set to.
    pub version: Version,
    /// Whether the stream ends with the end of a WebSocket message.
    pub end_of_message: bool,
    /// The decoder's limits.
    pub limits: Limits,
    /// The largest read; 0 for one read of the whole stream.
    pub max_chunk: usize,
    /// The seed of the read sizes.
    pub seed: u8,
}

/// Splits a fuzz input into its configuration and its byte stream.
pub fn config(data: &[u8]) -> (Config, &[u8]) {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let (b0, b1) = (byte(0), byte(1));
    let version = match b0 & 3 {
        0 => Version::V1_0,
        1 => Version::V1_1,
        _ => Version::V1_2,
    };
    let pick = |shift: u32, table: [usize; 4]| table[usize::from((b1 >> shift) & 3)];
    let default = Limits::default();
    let limits = Limits {
        max_command_len: pick(0, [default.max_command_len, 0, 4, 11]),
        max_headers: pick(2, [default.max_headers, 0, 1, 3]),
        max_header_line_len: pick(4, [default.max_header_line_len, 0, 5, 40]),
        max_body_len: pick(6, [default.max_body_len, 0, 3, 100]),
    };
    let config = Config {
        version,
        end_of_message: b0 & 4 != 0,
        limits,
        max_chunk: usize::from(byte(2)),
        seed: byte(3),
    };
    (config, data.get(4..).unwrap_or_default())
}

/// Everything the decoder said about a stream.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The heart-beats and frames, in order.
    pub items: Vec<Decoded>,
    /// The error that ended decoding, if any.
    pub error: Option<DecodeError>,
    /// Bytes left in the buffer at the end (meaningful only without an error).
    pub leftover: usize,
}

/// Read sizes: 1..=max, from a xorshift generator.
struct Chunks {
    max: usize,
    state: u32,
}

impl Chunks {
    fn new(max: usize, seed: u8) -> Self {
        Chunks {
            max,
            state: u32::from(seed).wrapping_mul(2_654_435_761) | 1,
        }
    }

    fn next(&mut self, remaining: usize) -> usize {
        if self.max == 0 {
            return remaining;
        }
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        (1 + self.state as usize % self.max).min(remaining)
    }
}

/// Feeds `stream` to a decoder in reads of the configured sizes, draining after every read.
pub fn decode_stream(config: &Config, stream: &[u8]) -> Outcome {
    let mut decoder = Decoder::new(config.limits);
    decoder.set_version(config.version);
    let mut chunks = Chunks::new(config.max_chunk, config.seed);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    let mut fed = 0;
    loop {
        loop {
            let before = buf.len();
            match decoder.decode(&mut buf) {
                Ok(Some(item)) => {
                    assert!(buf.len() < before, "an item consumed no input");
                    items.push(item);
                }
                Ok(None) => break,
                Err(error) => return failed(&mut decoder, &mut buf, items, error),
            }
        }
        if fed == stream.len() {
            break;
        }
        let n = chunks.next(stream.len() - fed);
        buf.extend_from_slice(&stream[fed..fed + n]);
        fed += n;
    }
    if config.end_of_message {
        // Each lenient step appends at most 2 bytes and then consumes a frame of more than 2.
        for _ in 0..=stream.len() {
            match decoder.decode_end_of_message(&mut buf) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(error) => return failed(&mut decoder, &mut buf, items, error),
            }
        }
        assert_eq!(
            decoder.decode_end_of_message(&mut buf),
            Ok(None),
            "decode_end_of_message did not terminate"
        );
    }
    Outcome {
        items,
        error: None,
        leftover: buf.len(),
    }
}

fn failed(
    decoder: &mut Decoder,
    buf: &mut BytesMut,
    items: Vec<Decoded>,
    error: DecodeError,
) -> Outcome {
    assert!(!error.code().is_empty());
    assert!(!error.to_string().is_empty());
    assert_eq!(decoder.decode(buf), Err(error.clone()), "errors are sticky");
    assert!(!decoder.is_idle());
    Outcome {
        items,
        error: Some(error),
        leftover: 0,
    }
}

/// True when the encoder carries every header of `frame` unchanged under `version`.
pub fn representable(frame: &Frame, version: Version) -> bool {
    let escaping = Escaping::for_frame(frame.command, version);
    frame.headers.iter().all(|h| {
        !h.name.is_empty()
            && match escaping {
                Escaping::None => {
                    !h.name.contains([':', '\n', '\r']) && !h.value.contains(['\n', '\r'])
                }
                Escaping::V11 => !h.name.contains('\r') && !h.value.contains('\r'),
                Escaping::V12 => true,
            }
    })
}

/// The headers without `content-length`, as (name, value) pairs.
pub fn headers_without_content_length(frame: &Frame) -> Vec<(String, String)> {
    frame
        .headers
        .iter()
        .filter(|h| h.name != names::CONTENT_LENGTH)
        .map(|h| (h.name.to_string(), h.value.to_string()))
        .collect()
}

/// Encodes `frame`, decodes it back and checks it is the same frame (modulo `content-length`).
pub fn check_roundtrip(frame: &Frame, version: Version) {
    let mut wire = BytesMut::new();
    encode(frame, version, &mut wire);
    let mut decoder = Decoder::new(Limits {
        max_command_len: 64,
        max_headers: usize::MAX / 4,
        max_header_line_len: usize::MAX / 4,
        max_body_len: usize::MAX / 4,
    });
    decoder.set_version(version);
    let decoded = match decoder.decode(&mut wire) {
        Ok(Some(Decoded::Frame(decoded))) => decoded,
        other => panic!("re-encoded {frame:?} decoded as {other:?}"),
    };
    assert!(wire.is_empty(), "bytes left after the re-encoded frame");
    assert_eq!(decoded.command, frame.command);
    assert_eq!(decoded.body, frame.body);
    assert_eq!(
        headers_without_content_length(&decoded),
        headers_without_content_length(frame)
    );
    let expected_length = writes_content_length(frame).then(|| frame.body.len().to_string());
    assert_eq!(
        decoded.get(names::CONTENT_LENGTH).map(str::to_owned),
        expected_length
    );
}

/// The whole oracle on one fuzz input.
pub fn run(data: &[u8]) {
    let (config, stream) = config(data);
    run_with(&config, stream);
}

/// The whole oracle on one stream under `config`.
pub fn run_with(config: &Config, stream: &[u8]) {
    let outcome = decode_stream(config, stream);
    if config.max_chunk != 0 {
        let whole = decode_stream(
            &Config {
                max_chunk: 0,
                ..*config
            },
            stream,
        );
        assert_eq!(whole.items, outcome.items, "items depend on the read sizes");
        assert_eq!(
            whole.error, outcome.error,
            "error depends on the read sizes"
        );
        if outcome.error.is_none() {
            assert_eq!(whole.leftover, outcome.leftover);
        }
    }
    for item in &outcome.items {
        if let Decoded::Frame(frame) = item {
            assert!(frame.body.len() <= config.limits.max_body_len);
            assert!(frame.headers.len() <= config.limits.max_headers);
            if representable(frame, config.version) {
                check_roundtrip(frame, config.version);
            }
        }
    }
}
