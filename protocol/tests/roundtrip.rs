//! Property tests: `decode(encode(frame)) == frame` for every version, arbitrary commands,
//! headers and binary bodies, however the bytes are split; and the decoder never panics (nor
//! loops, nor depends on the read sizes) on arbitrary bytes.
#![allow(clippy::unwrap_used)]

#[path = "../fuzz/harness.rs"]
mod harness;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use proptest::sample::Index;
use stompede_protocol::{
    encode, names, writes_content_length, Command, Decoded, Decoder, Escaping, Frame, Headers,
    Limits, Version,
};

/// Characters with a meaning on the wire, mixed into arbitrary unicode.
fn wire_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => any::<char>(),
        2 => proptest::char::range('a', 'z'),
        1 => Just(':'),
        1 => Just('\n'),
        1 => Just('\r'),
        1 => Just('\\'),
        1 => Just('\0'),
        1 => Just(' '),
    ]
}

fn raw_text(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(wire_char(), 0..max).prop_map(|chars| chars.into_iter().collect())
}

/// Removes what `escaping` cannot carry (see `Escaping::write`): in 1.0 and CONNECT-like
/// frames, LF and CR anywhere and a colon in a name; in 1.1, CR. Names are never empty.
fn carryable(escaping: Escaping, text: &str, is_name: bool) -> String {
    let mut out: String = text
        .chars()
        .filter(|&c| match escaping {
            Escaping::None => !(matches!(c, '\n' | '\r') || (is_name && c == ':')),
            Escaping::V11 => c != '\r',
            Escaping::V12 => true,
        })
        .collect();
    if is_name && out.is_empty() {
        out.push('n');
    }
    out
}

fn body() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        Just(Bytes::new()),
        proptest::collection::vec(prop_oneof![3 => any::<u8>(), 1 => Just(0u8)], 0..300)
            .prop_map(Bytes::from),
    ]
}

/// A frame whose headers `version` can carry, and the frame expected back from the wire.
fn frame_for(version: Version) -> impl Strategy<Value = (Frame, Frame)> {
    let header = prop_oneof![
        4 => (raw_text(12), raw_text(24)),
        // Past the length where the decoder shares the read buffer instead of copying.
        1 => (raw_text(160), raw_text(300)),
        1 => (Just(names::CONTENT_LENGTH.to_owned()), raw_text(6)),
    ];
    (
        proptest::sample::select(Command::ALL.to_vec()),
        proptest::collection::vec(header, 0..8),
        body(),
    )
        .prop_map(move |(command, headers, body)| {
            let escaping = Escaping::for_frame(command, version);
            let headers: Headers = headers
                .iter()
                .map(|(n, v)| (carryable(escaping, n, true), carryable(escaping, v, false)))
                .collect();
            let frame = Frame {
                command,
                headers,
                body,
            };
            (frame.clone(), expected(frame))
        })
}

/// What the decoder gives back: the caller's `content-length` headers dropped, the true one
/// appended when the encoder writes it.
fn expected(mut frame: Frame) -> Frame {
    frame.headers.remove(names::CONTENT_LENGTH);
    if writes_content_length(&frame) {
        frame
            .headers
            .push(names::CONTENT_LENGTH, frame.body.len().to_string());
    }
    frame
}

fn version() -> impl Strategy<Value = Version> {
    proptest::sample::select(Version::ALL.to_vec())
}

/// Cuts `bytes` at the given points (in any order, repeats allowed).
fn chunks<'a>(bytes: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    points.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
}

fn decode_chunks(version: Version, chunks: &[&[u8]]) -> (Vec<Decoded>, usize) {
    let mut decoder = Decoder::new(Limits::default());
    decoder.set_version(version);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(item) = decoder.decode(&mut buf).unwrap() {
            items.push(item);
        }
    }
    assert!(decoder.is_idle());
    (items, buf.len())
}

fn version_and_frame() -> impl Strategy<Value = (Version, Frame, Frame)> {
    version().prop_flat_map(|v| frame_for(v).prop_map(move |(f, e)| (v, f, e)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn roundtrip_one_frame((version, frame, expected) in version_and_frame()) {
        let mut wire = BytesMut::new();
        encode(&frame, version, &mut wire);
        let (items, left) = decode_chunks(version, &[&wire]);
        prop_assert_eq!(items, vec![Decoded::Frame(expected)]);
        prop_assert_eq!(left, 0);
    }

    #[test]
    fn roundtrip_split_anywhere(
        (version, frame, expected) in version_and_frame(),
        cuts in proptest::collection::vec(any::<Index>(), 0..8),
    ) {
        let wire = stompede_protocol::to_bytes(&frame, version);
        let (items, left) = decode_chunks(version, &chunks(&wire, &cuts));
        prop_assert_eq!(items, vec![Decoded::Frame(expected)]);
        prop_assert_eq!(left, 0);
    }

    #[test]
    fn roundtrip_stream_with_heart_beats(
        (version, frames) in version().prop_flat_map(|v| {
            let beats = proptest::collection::vec(prop_oneof![Just(&b"\n"[..]), Just(&b"\r\n"[..])], 0..3);
            (Just(v), proptest::collection::vec((frame_for(v), beats), 1..5))
        }),
        cuts in proptest::collection::vec(any::<Index>(), 0..12),
    ) {
        let mut wire = BytesMut::new();
        let mut want = Vec::new();
        for ((frame, expected), beats) in frames {
            encode(&frame, version, &mut wire);
            want.push(Decoded::Frame(expected));
            for beat in beats {
                wire.extend_from_slice(beat);
                want.push(Decoded::HeartBeat);
            }
        }
        let (items, left) = decode_chunks(version, &chunks(&wire, &cuts));
        prop_assert_eq!(items, want);
        prop_assert_eq!(left, 0);
    }

    #[test]
    fn roundtrip_one_byte_at_a_time((version, frame, expected) in version_and_frame()) {
        let wire = stompede_protocol::to_bytes(&frame, version);
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        let (items, _) = decode_chunks(version, &bytes);
        prop_assert_eq!(items, vec![Decoded::Frame(expected)]);
    }
}

/// Bytes that look like STOMP often enough to get past the command line.
fn stompish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..8),
        2 => proptest::sample::select(vec![
            &b"SEND\n"[..], b"MESSAGE\r\n", b"CONNECT\n", b"CONNECTED\n", b"ACK\n",
            b"content-length:", b"content-length:3\n", b"a:b\n", b"\\c", b"\\n", b"\\r",
            b"\\t", b"\\", b"\n", b"\r\n", b"\0", b":", b"\n\n", b"\xff", b"\xc3\xa9",
        ]).prop_map(<[u8]>::to_vec),
        1 => proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\0'), Just(b':')], 0..4),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The fuzz oracle (`fuzz/harness.rs`) on arbitrary bytes, versions, limits and read sizes:
    /// no panic, termination, sticky errors, read-size independence, and every decoded frame
    /// the encoder can carry re-encodes to itself.
    #[test]
    fn decoder_never_panics(
        config in any::<[u8; 4]>(),
        stream in prop_oneof![proptest::collection::vec(any::<u8>(), 0..512), stompish()],
    ) {
        let mut input = config.to_vec();
        input.extend_from_slice(&stream);
        harness::run(&input);
    }

    /// One byte at a time, and default limits, with the end-of-message leniency.
    #[test]
    fn decoder_never_panics_byte_by_byte(version in 0u8..3, stream in stompish()) {
        let mut input = vec![version | 4, 0, 1, 0];
        input.extend_from_slice(&stream);
        harness::run(&input);
    }
}
