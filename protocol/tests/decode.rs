//! Decoder rules, with exact bytes: splitting, heart-beats, bodies, line endings, escaping per
//! version, every limit (and that it trips before the oversize input is buffered), malformed
//! input, and the end-of-message leniency.
#![allow(clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use stompede_protocol::{Command, DecodeError, Decoded, Decoder, Frame, Limits, Version};

// ---------------------------------------------------------------------------------------------
// Helpers

fn decoder(version: Version, limits: Limits) -> Decoder {
    let mut decoder = Decoder::new(limits);
    decoder.set_version(version);
    decoder
}

/// Feeds `chunks` one after the other, draining after each; stops at the first error.
fn decode_chunks<'a>(
    version: Version,
    limits: Limits,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<Decoded>, DecodeError> {
    let mut decoder = decoder(version, limits);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(item) = decoder.decode(&mut buf)? {
            items.push(item);
        }
    }
    Ok(items)
}

fn decode_all(version: Version, input: &[u8]) -> Result<Vec<Decoded>, DecodeError> {
    decode_chunks(version, Limits::default(), [input])
}

/// Decodes exactly one frame (nothing else, nothing left over) from `input` in one read.
fn one_frame(version: Version, input: &[u8]) -> Frame {
    let mut decoder = decoder(version, Limits::default());
    let mut buf = BytesMut::from(input);
    let item = decoder.decode(&mut buf).unwrap();
    assert!(buf.is_empty(), "left over: {buf:?}");
    assert!(decoder.is_idle());
    match item {
        Some(Decoded::Frame(frame)) => frame,
        other => panic!("expected a frame, got {other:?}"),
    }
}

fn one_error(version: Version, limits: Limits, input: &[u8]) -> DecodeError {
    decode_chunks(version, limits, [input]).unwrap_err()
}

fn frame(command: Command, headers: &[(&str, &str)], body: &[u8]) -> Decoded {
    let mut frame = Frame::new(command).body(Bytes::copy_from_slice(body));
    for (name, value) in headers {
        frame = frame.header(*name, *value);
    }
    Decoded::Frame(frame)
}

fn headers_of(frame: &Frame) -> Vec<(&str, &str)> {
    frame.headers.iter().map(|h| (h.name, h.value)).collect()
}

/// Asserts that `input` decodes to `expected` however it is split: in one read, cut once at
/// every position, cut twice at every pair of positions, and one byte at a time.
fn assert_every_split(version: Version, input: &[u8], expected: &[Decoded]) {
    let whole = decode_all(version, input).unwrap();
    assert_eq!(whole, expected, "one read");
    for cut in 0..=input.len() {
        let (a, b) = input.split_at(cut);
        assert_eq!(
            decode_chunks(version, Limits::default(), [a, b]).unwrap(),
            expected,
            "cut at {cut}"
        );
    }
    for first in 0..=input.len() {
        for second in first..=input.len() {
            let chunks = [&input[..first], &input[first..second], &input[second..]];
            assert_eq!(
                decode_chunks(version, Limits::default(), chunks).unwrap(),
                expected,
                "cuts at {first} and {second}"
            );
        }
    }
    let bytes = input.chunks(1);
    assert_eq!(
        decode_chunks(version, Limits::default(), bytes).unwrap(),
        expected,
        "one byte at a time"
    );
}

fn limits(
    max_command_len: usize,
    max_headers: usize,
    max_header_line_len: usize,
    max_body_len: usize,
) -> Limits {
    Limits {
        max_command_len,
        max_headers,
        max_header_line_len,
        max_body_len,
    }
}

// ---------------------------------------------------------------------------------------------
// Splitting and several frames per read

const STREAM: &[u8] = b"\nSEND\ndestination:/queue/a\ncontent-length:5\n\na\0b\0c\0\r\n\
MESSAGE\r\nsubscription:0\r\nmessage-id:1\r\n\r\nhello\0\n\n\
SUBSCRIBE\nid:0\ndestination:/topic/t\n\n\0";

fn stream_items() -> Vec<Decoded> {
    vec![
        Decoded::HeartBeat,
        frame(
            Command::Send,
            &[("destination", "/queue/a"), ("content-length", "5")],
            b"a\0b\0c",
        ),
        Decoded::HeartBeat,
        frame(
            Command::Message,
            &[("subscription", "0"), ("message-id", "1")],
            b"hello",
        ),
        Decoded::HeartBeat,
        Decoded::HeartBeat,
        frame(
            Command::Subscribe,
            &[("id", "0"), ("destination", "/topic/t")],
            b"",
        ),
    ]
}

#[test]
fn several_frames_in_one_read() {
    assert_eq!(decode_all(Version::V1_2, STREAM).unwrap(), stream_items());
}

#[test]
fn frames_split_at_every_position_and_byte_by_byte() {
    for version in Version::ALL {
        assert_every_split(version, STREAM, &stream_items());
    }
}

#[test]
fn escaped_frame_split_everywhere() {
    let input = b"SEND\nk\\cey:v\\\\a\\nl\\r\ncontent-length:2\n\n\0\0\0";
    let expected = [frame(
        Command::Send,
        &[("k:ey", "v\\a\nl\r"), ("content-length", "2")],
        b"\0\0",
    )];
    assert_every_split(Version::V1_2, input, &expected);
}

#[test]
fn decode_returns_none_until_complete_and_consumes_only_the_frame() {
    let mut decoder = decoder(Version::V1_2, Limits::default());
    let mut buf = BytesMut::from(&b"SEND\ndestination:/a\n"[..]);
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    assert!(!decoder.is_idle());
    buf.extend_from_slice(b"\nbody");
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(b"\0SEND");
    let item = decoder.decode(&mut buf).unwrap();
    assert_eq!(
        item,
        Some(frame(Command::Send, &[("destination", "/a")], b"body"))
    );
    assert_eq!(&buf[..], b"SEND");
    assert!(decoder.is_idle());
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    assert!(!decoder.is_idle());
}

#[test]
fn version_and_limits_accessors() {
    let mut decoder = Decoder::new(limits(1, 2, 3, 4));
    assert_eq!(decoder.version(), Version::V1_0);
    decoder.set_version(Version::V1_1);
    assert_eq!(decoder.version(), Version::V1_1);
    assert_eq!(*decoder.limits(), limits(1, 2, 3, 4));
    assert!(decoder.is_idle());
}

// ---------------------------------------------------------------------------------------------
// Heart-beats

#[test]
fn heart_beats_lf_and_crlf() {
    assert_eq!(
        decode_all(Version::V1_2, b"\n\r\n\n").unwrap(),
        vec![Decoded::HeartBeat; 3]
    );
    // A lone CR waits for its LF, across reads.
    let mut decoder = decoder(Version::V1_2, Limits::default());
    let mut buf = BytesMut::from(&b"\r"[..]);
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    assert_eq!(&buf[..], b"\r");
    buf.extend_from_slice(b"\n");
    assert_eq!(decoder.decode(&mut buf).unwrap(), Some(Decoded::HeartBeat));
    assert!(buf.is_empty());
}

#[test]
fn heart_beats_between_and_after_frames() {
    let input = b"\r\nRECEIPT\nreceipt-id:1\n\n\0\n\r\n";
    assert_every_split(
        Version::V1_1,
        input,
        &[
            Decoded::HeartBeat,
            frame(Command::Receipt, &[("receipt-id", "1")], b""),
            Decoded::HeartBeat,
            Decoded::HeartBeat,
        ],
    );
}

#[test]
fn cr_not_followed_by_lf_starts_a_frame() {
    assert_eq!(
        one_error(Version::V1_2, Limits::default(), b"\rSEND\n\n\0"),
        DecodeError::UnknownCommand("\rSEND".into())
    );
}

// ---------------------------------------------------------------------------------------------
// Bodies

#[test]
fn content_length_body_holds_nuls() {
    let f = one_frame(Version::V1_2, b"SEND\ncontent-length:6\n\n\0a\0\0b\0\0");
    assert_eq!(&f.body[..], b"\0a\0\0b\0");
    assert_eq!(f.get("content-length"), Some("6"));
}

#[test]
fn content_length_zero() {
    let f = one_frame(Version::V1_2, b"SEND\ncontent-length:0\n\n\0");
    assert!(f.body.is_empty());
}

#[test]
fn body_without_content_length_ends_at_first_nul() {
    let mut decoder = decoder(Version::V1_2, Limits::default());
    let mut buf = BytesMut::from(&b"SEND\n\nab\0cd\0"[..]);
    assert_eq!(
        decoder.decode(&mut buf).unwrap(),
        Some(frame(Command::Send, &[], b"ab"))
    );
    assert_eq!(
        &buf[..],
        b"cd\0",
        "the bytes after the first NUL start the next frame"
    );
    let f = one_frame(Version::V1_0, b"SEND\ndestination:/q\n\nhello\nworld\r\n\0");
    assert_eq!(&f.body[..], b"hello\nworld\r\n");
}

#[test]
fn content_length_mismatch_is_missing_nul() {
    for version in Version::ALL {
        assert_eq!(
            one_error(
                version,
                Limits::default(),
                b"SEND\ncontent-length:3\n\nabcd\0"
            ),
            DecodeError::MissingNul(3)
        );
        // Detected as soon as the byte after the body arrives.
        let mut decoder = decoder(version, Limits::default());
        let mut buf = BytesMut::from(&b"SEND\ncontent-length:3\n\nabc"[..]);
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(b"d");
        assert_eq!(decoder.decode(&mut buf), Err(DecodeError::MissingNul(3)));
    }
}

#[test]
fn invalid_content_length() {
    for value in ["abc", "-1", "+5", "1.5", "", " ", "0x10", "5 5", "٣"] {
        let input = format!("SEND\ncontent-length:{value}\n\n\0");
        assert_eq!(
            one_error(Version::V1_2, Limits::default(), input.as_bytes()),
            DecodeError::InvalidContentLength(value.into()),
            "content-length {value:?}"
        );
    }
}

#[test]
fn padded_content_length_is_accepted() {
    let f = one_frame(Version::V1_2, b"SEND\ncontent-length: 3 \n\nabc\0");
    assert_eq!(&f.body[..], b"abc");
}

#[test]
fn content_length_past_usize_is_body_too_large() {
    assert_eq!(
        one_error(
            Version::V1_2,
            Limits::default(),
            b"SEND\ncontent-length:99999999999999999999999999\n\n"
        ),
        DecodeError::BodyTooLarge {
            limit: Limits::DEFAULT_MAX_BODY
        }
    );
}

#[test]
fn first_content_length_wins() {
    let f = one_frame(
        Version::V1_2,
        b"SEND\ncontent-length:2\ncontent-length:junk\n\na\0\0",
    );
    assert_eq!(&f.body[..], b"a\0");
    assert_eq!(
        headers_of(&f),
        [("content-length", "2"), ("content-length", "junk")]
    );
}

#[test]
fn content_length_name_is_case_sensitive() {
    // `Content-Length` is another header: the body ends at the first NUL.
    let f = one_frame(Version::V1_2, b"SEND\nContent-Length:5\n\nab\0");
    assert_eq!(&f.body[..], b"ab");
}

// ---------------------------------------------------------------------------------------------
// Line endings

#[test]
fn crlf_line_endings() {
    let f = one_frame(
        Version::V1_2,
        b"SEND\r\ndestination:/queue/a\r\ncontent-type:text/plain\r\n\r\nhi\r\n\0",
    );
    assert_eq!(f.command, Command::Send);
    assert_eq!(
        headers_of(&f),
        [("destination", "/queue/a"), ("content-type", "text/plain")]
    );
    assert_eq!(&f.body[..], b"hi\r\n");
}

#[test]
fn mixed_line_endings() {
    let f = one_frame(Version::V1_2, b"SEND\na:1\r\nb:2\n\r\n\0");
    assert_eq!(headers_of(&f), [("a", "1"), ("b", "2")]);
}

#[test]
fn only_one_cr_is_part_of_the_line_end() {
    let f = one_frame(Version::V1_0, b"SEND\na:1\r\r\n\n\0");
    assert_eq!(headers_of(&f), [("a", "1\r")]);
}

// ---------------------------------------------------------------------------------------------
// Header escaping

const ESCAPED: &[u8] = b"MESSAGE\nk\\c1:a\\\\b\\nc\\cd\n\n\0";

#[test]
fn v1_0_does_not_unescape() {
    let f = one_frame(Version::V1_0, ESCAPED);
    assert_eq!(headers_of(&f), [("k\\c1", "a\\\\b\\nc\\cd")]);
    // Undefined escapes and a trailing backslash are plain text in 1.0.
    let f = one_frame(Version::V1_0, b"SEND\na:\\t\\r\\\n\n\0");
    assert_eq!(headers_of(&f), [("a", "\\t\\r\\")]);
}

#[test]
fn v1_1_unescapes_backslash_newline_colon() {
    let f = one_frame(Version::V1_1, ESCAPED);
    assert_eq!(headers_of(&f), [("k:1", "a\\b\nc:d")]);
    assert_eq!(
        one_error(Version::V1_1, Limits::default(), b"SEND\na:x\\ry\n\n\0"),
        DecodeError::InvalidEscape("\\r".into()),
        "1.1 has no \\r escape"
    );
}

#[test]
fn v1_2_also_unescapes_carriage_return() {
    let f = one_frame(Version::V1_2, ESCAPED);
    assert_eq!(headers_of(&f), [("k:1", "a\\b\nc:d")]);
    let f = one_frame(Version::V1_2, b"SEND\na\\rb:x\\ry\\r\n\n\0");
    assert_eq!(headers_of(&f), [("a\rb", "x\ry\r")]);
}

#[test]
fn raw_colon_in_value_is_kept() {
    for version in Version::ALL {
        let f = one_frame(version, b"SEND\ndestination:/a:b::c\n\n\0");
        assert_eq!(headers_of(&f), [("destination", "/a:b::c")]);
    }
}

#[test]
fn connect_stomp_connected_are_never_unescaped() {
    for version in Version::ALL {
        for command in ["CONNECT", "STOMP", "CONNECTED"] {
            let input = format!("{command}\nlogin:a\\cb\\\\\\t\npasscode:x\\\n\n\0");
            let f = one_frame(version, input.as_bytes());
            assert_eq!(
                headers_of(&f),
                [("login", "a\\cb\\\\\\t"), ("passcode", "x\\")],
                "{command} in {version}"
            );
        }
    }
}

#[test]
fn undefined_escape_is_an_error_in_1_1_and_1_2() {
    for version in [Version::V1_1, Version::V1_2] {
        assert_eq!(
            one_error(version, Limits::default(), b"SEND\na:x\\ty\n\n\0"),
            DecodeError::InvalidEscape("\\t".into())
        );
        assert_eq!(
            one_error(version, Limits::default(), b"SEND\na\\x:y\n\n\0"),
            DecodeError::InvalidEscape("\\x".into()),
            "in a name too"
        );
        assert_eq!(
            one_error(version, Limits::default(), b"SEND\na:y\\\n\n\0"),
            DecodeError::InvalidEscape("\\".into()),
            "trailing backslash"
        );
        assert_eq!(
            one_error(version, Limits::default(), b"SEND\na:\\\xc3\xa9\n\n\0"),
            DecodeError::InvalidEscape("\\\\u{c3}".into()),
            "backslash before a non-ASCII byte"
        );
    }
}

#[test]
fn unescaping_keeps_multibyte_text_around_escapes() {
    // Unescaped text is shorter than the wire text: what follows it must still read right
    // (the head is unescaped in place, then checked as UTF-8).
    let input = "SEND\nk\\c€:\\nä\\\\ö\nx:é\\cé\\c\ny:ü\n\n\0";
    for version in [Version::V1_1, Version::V1_2] {
        let f = one_frame(version, input.as_bytes());
        assert_eq!(
            headers_of(&f),
            [("k:€", "\nä\\ö"), ("x", "é:é:"), ("y", "ü")],
            "{version}"
        );
        assert_eq!(f.get("x"), Some("é:é:"));
    }
    assert_eq!(
        headers_of(&one_frame(Version::V1_0, input.as_bytes())),
        [("k\\c€", "\\nä\\\\ö"), ("x", "é\\cé\\c"), ("y", "ü")]
    );
}

#[test]
fn the_first_error_in_line_order_is_reported() {
    // Within a line: colon, then the name (escapes, UTF-8), then the value (escapes, UTF-8),
    // then the first content-length; lines in order.
    let malformed = || DecodeError::MalformedHeader("bad".into());
    let escape = || DecodeError::InvalidEscape("\\t".into());
    let length = || DecodeError::InvalidContentLength("x".into());
    let cases: [(&[u8], DecodeError); 11] = [
        (b"SEND\na:\xff\nbad\n\n\0", DecodeError::InvalidUtf8),
        (b"SEND\nbad\na:\xff\n\n\0", malformed()),
        (b"SEND\na:\xff\nb:\\t\n\n\0", DecodeError::InvalidUtf8),
        (b"SEND\nb:\\t\na:\xff\n\n\0", escape()),
        (b"SEND\n\xff:\\t\n\n\0", DecodeError::InvalidUtf8),
        (b"SEND\na\\t:\xff\n\n\0", escape()),
        (b"SEND\ncontent-length:x\na:\xff\n\n\0", length()),
        (
            b"SEND\na:\xff\ncontent-length:x\n\n\0",
            DecodeError::InvalidUtf8,
        ),
        (b"SEND\ncontent-length:\xff\n\n\0", DecodeError::InvalidUtf8),
        (
            b"SEND\ncontent-length:1\ncontent-length:x\na:\\t\n\n\0",
            escape(),
        ),
        (
            b"SEND\ncontent-length:1\\c\n\n\0",
            DecodeError::InvalidContentLength("1:".into()),
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(
            one_error(Version::V1_2, Limits::default(), input),
            expected,
            "{}",
            input.escape_ascii()
        );
    }
}

#[test]
fn repeated_headers_are_kept_and_first_wins() {
    let f = one_frame(
        Version::V1_2,
        b"MESSAGE\nfoo:World\nfoo:Hello\nbar:1\nfoo:!\n\n\0",
    );
    assert_eq!(
        headers_of(&f),
        [
            ("foo", "World"),
            ("foo", "Hello"),
            ("bar", "1"),
            ("foo", "!")
        ]
    );
    assert_eq!(f.get("foo"), Some("World"));
    assert_eq!(f.headers.len(), 4);
}

#[test]
fn long_and_short_names_and_values() {
    // Short ones are copied, long ones share the read buffer, common ones are static: all must
    // read the same, escaped or not, however split.
    let long_name = "n".repeat(129);
    let long_value = "v".repeat(300);
    let escaped_long_value = "\\c".repeat(100);
    let input = format!(
        "MESSAGE\n{long_name}:x\nk:{long_value}\ne:{escaped_long_value}\n\
         destination:/q\npersistent:true\ncontent-type:application/json\nack:client\n\n\0"
    );
    let colons = ":".repeat(100);
    let expected = [frame(
        Command::Message,
        &[
            (&long_name, "x"),
            ("k", &long_value),
            ("e", &colons),
            ("destination", "/q"),
            ("persistent", "true"),
            ("content-type", "application/json"),
            ("ack", "client"),
        ],
        b"",
    )];
    assert_eq!(
        decode_all(Version::V1_2, input.as_bytes()).unwrap(),
        expected
    );
    for cut in 0..=input.len() {
        let (a, b) = input.as_bytes().split_at(cut);
        assert_eq!(
            decode_chunks(Version::V1_2, Limits::default(), [a, b]).unwrap(),
            expected,
            "cut at {cut}"
        );
    }
    // The frame outlives the read buffer it came from.
    let frame = {
        let mut buf = BytesMut::from(input.as_bytes());
        let mut decoder = decoder(Version::V1_2, Limits::default());
        let item = decoder.decode(&mut buf).unwrap();
        buf.clear();
        buf.extend_from_slice(&[b'#'; 1000]);
        item
    };
    assert_eq!(frame, Some(expected[0].clone()));
}

#[test]
fn long_values_with_invalid_utf8_or_escapes() {
    let mut input = b"SEND\nk:".to_vec();
    input.extend_from_slice(&[b'a'; 200]);
    input.extend_from_slice(b"\xff\n\n\0");
    assert_eq!(
        one_error(Version::V1_2, Limits::default(), &input),
        DecodeError::InvalidUtf8
    );
    let mut input = b"SEND\nk:".to_vec();
    input.extend_from_slice(&[b'a'; 200]);
    input.extend_from_slice(b"\\t\n\n\0");
    assert_eq!(
        one_error(Version::V1_2, Limits::default(), &input),
        DecodeError::InvalidEscape("\\t".into())
    );
}

#[test]
fn empty_value_and_whitespace_are_kept() {
    let f = one_frame(Version::V1_2, b"SEND\na:\n b : c \n\n\0");
    assert_eq!(headers_of(&f), [("a", ""), (" b ", " c ")]);
}

// ---------------------------------------------------------------------------------------------
// Limits

#[test]
fn limits_have_documented_defaults() {
    let d = Limits::default();
    assert_eq!(d, limits(64, 128, 16 * 1024, 16 * 1024 * 1024));
    assert_eq!(Limits::DEFAULT_MAX_BODY, 16 * 1024 * 1024);
    assert_eq!(
        d.max_frame_bytes(),
        64 + 2 + 128 * (16 * 1024 + 2) + 2 + 16 * 1024 * 1024 + 1
    );
}

#[test]
fn command_length_limit() {
    let l = limits(11, 8, 100, 100);
    assert_eq!(
        decode_chunks(Version::V1_2, l, [&b"UNSUBSCRIBE\r\nid:1\n\n\0"[..]])
            .unwrap()
            .len(),
        1,
        "the longest command fits 11, CR not counted"
    );
    let l = limits(10, 8, 100, 100);
    assert_eq!(
        one_error(Version::V1_2, l, b"UNSUBSCRIBE\nid:1\n\n\0"),
        DecodeError::CommandTooLong { limit: 10 }
    );
}

#[test]
fn command_length_limit_trips_before_the_line_ends() {
    // A command line that never ends: the error comes once it is past the limit (plus one
    // byte, which could be the CR of a CRLF), not when a newline finally arrives.
    let l = limits(8, 8, 100, 100);
    let mut decoder = decoder(Version::V1_2, l);
    let mut buf = BytesMut::new();
    for i in 1..=9 {
        buf.extend_from_slice(b"X");
        assert_eq!(decoder.decode(&mut buf), Ok(None), "after {i} bytes");
    }
    buf.extend_from_slice(b"X");
    assert_eq!(
        decoder.decode(&mut buf),
        Err(DecodeError::CommandTooLong { limit: 8 })
    );
    // And in one big read.
    let big = vec![b'A'; 1 << 20];
    assert_eq!(
        one_error(Version::V1_2, l, &big),
        DecodeError::CommandTooLong { limit: 8 }
    );
}

#[test]
fn header_count_limit() {
    let l = limits(64, 2, 100, 100);
    assert!(decode_chunks(Version::V1_2, l, [&b"SEND\na:1\nb:2\n\n\0"[..]]).is_ok());
    assert_eq!(
        one_error(Version::V1_2, l, b"SEND\na:1\nb:2\nc:3\n\n\0"),
        DecodeError::TooManyHeaders { limit: 2 }
    );
    // Repeats count.
    assert_eq!(
        one_error(Version::V1_2, l, b"SEND\na:1\na:1\na:1\n\n\0"),
        DecodeError::TooManyHeaders { limit: 2 }
    );
    let l = limits(64, 0, 100, 100);
    assert!(decode_chunks(Version::V1_2, l, [&b"DISCONNECT\n\n\0"[..]]).is_ok());
    assert_eq!(
        one_error(Version::V1_2, l, b"DISCONNECT\na:1\n\n\0"),
        DecodeError::TooManyHeaders { limit: 0 }
    );
}

#[test]
fn header_count_limit_trips_before_the_blank_line() {
    let l = limits(64, 3, 100, 100);
    let mut decoder = decoder(Version::V1_2, l);
    let mut buf = BytesMut::from(&b"SEND\n"[..]);
    for i in 0..3 {
        buf.extend_from_slice(format!("h{i}:v\n").as_bytes());
        assert_eq!(decoder.decode(&mut buf), Ok(None));
    }
    buf.extend_from_slice(b"h3:v\n");
    assert_eq!(
        decoder.decode(&mut buf),
        Err(DecodeError::TooManyHeaders { limit: 3 })
    );
    // An endless stream of header lines in one read.
    let mut endless = b"SEND\n".to_vec();
    for _ in 0..100_000 {
        endless.extend_from_slice(b"a:b\n");
    }
    assert_eq!(
        one_error(Version::V1_2, l, &endless),
        DecodeError::TooManyHeaders { limit: 3 }
    );
}

#[test]
fn header_line_length_limit() {
    let l = limits(64, 8, 10, 100);
    // "a:12345678" is 10 bytes; the line end (LF or CRLF) does not count.
    assert!(decode_chunks(Version::V1_2, l, [&b"SEND\na:12345678\r\n\n\0"[..]]).is_ok());
    assert!(decode_chunks(Version::V1_2, l, [&b"SEND\na:12345678\n\n\0"[..]]).is_ok());
    assert_eq!(
        one_error(Version::V1_2, l, b"SEND\na:123456789\n\n\0"),
        DecodeError::HeaderLineTooLong { limit: 10 }
    );
    // Measured before unescaping: "a:\\n\\n\\n\\n" is 10 bytes on the wire.
    assert!(decode_chunks(Version::V1_2, l, [&b"SEND\na:\\n\\n\\n\\n\n\n\0"[..]]).is_ok());
    assert_eq!(
        one_error(Version::V1_2, l, b"SEND\na:\\n\\n\\n\\nx\n\n\0"),
        DecodeError::HeaderLineTooLong { limit: 10 }
    );
}

#[test]
fn header_line_limit_trips_before_the_line_ends() {
    let l = limits(64, 8, 10, 100);
    let mut decoder = decoder(Version::V1_2, l);
    let mut buf = BytesMut::from(&b"SEND\nok:1\n"[..]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    for i in 1..=11 {
        buf.extend_from_slice(b"x");
        assert_eq!(decoder.decode(&mut buf), Ok(None), "after {i} bytes");
    }
    buf.extend_from_slice(b"x");
    assert_eq!(
        decoder.decode(&mut buf),
        Err(DecodeError::HeaderLineTooLong { limit: 10 })
    );
    // A 1 MiB header line with no newline, in one read, with default limits.
    let mut big = b"SEND\ndestination:".to_vec();
    big.resize(1 << 20, b'x');
    assert_eq!(
        one_error(Version::V1_2, Limits::default(), &big),
        DecodeError::HeaderLineTooLong {
            limit: Limits::default().max_header_line_len
        }
    );
}

#[test]
fn body_limit_with_content_length() {
    let l = limits(64, 8, 100, 4);
    assert!(decode_chunks(Version::V1_2, l, [&b"SEND\ncontent-length:4\n\nabcd\0"[..]]).is_ok());
    assert_eq!(
        one_error(Version::V1_2, l, b"SEND\ncontent-length:5\n\nabcde\0"),
        DecodeError::BodyTooLarge { limit: 4 }
    );
}

#[test]
fn declared_body_over_the_limit_trips_right_after_the_head() {
    // 100 MiB declared, nothing of the body sent: the error comes with the head.
    let head = b"SEND\ndestination:/a\ncontent-length:104857600\n\n";
    let mut decoder = decoder(Version::V1_2, Limits::default());
    let mut buf = BytesMut::from(&head[..head.len() - 1]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    buf.extend_from_slice(b"\n");
    assert_eq!(
        decoder.decode(&mut buf),
        Err(DecodeError::BodyTooLarge {
            limit: Limits::DEFAULT_MAX_BODY
        })
    );
}

#[test]
fn body_limit_without_content_length() {
    let l = limits(64, 8, 100, 4);
    assert!(decode_chunks(Version::V1_2, l, [&b"SEND\n\nabcd\0"[..]]).is_ok());
    assert_eq!(
        one_error(Version::V1_2, l, b"SEND\n\nabcde\0"),
        DecodeError::BodyTooLarge { limit: 4 }
    );
    // No NUL yet: the error comes as soon as more than the limit is buffered.
    let mut decoder = decoder(Version::V1_2, l);
    let mut buf = BytesMut::from(&b"SEND\n\n"[..]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    for i in 1..=4 {
        buf.extend_from_slice(b"z");
        assert_eq!(decoder.decode(&mut buf), Ok(None), "after {i} body bytes");
    }
    buf.extend_from_slice(b"z");
    assert_eq!(
        decoder.decode(&mut buf),
        Err(DecodeError::BodyTooLarge { limit: 4 })
    );
}

#[test]
fn unterminated_body_over_default_limit_trips_without_nul() {
    let mut input = b"SEND\ndestination:/a\n\n".to_vec();
    input.resize(input.len() + Limits::DEFAULT_MAX_BODY + 1, b'b');
    assert_eq!(
        one_error(Version::V1_2, Limits::default(), &input),
        DecodeError::BodyTooLarge {
            limit: Limits::DEFAULT_MAX_BODY
        }
    );
}

#[test]
fn every_limit_has_its_own_error_kind() {
    let l = limits(4, 1, 20, 2);
    let cases: [(&[u8], DecodeError); 5] = [
        (b"BEGIN\n\n\0", DecodeError::CommandTooLong { limit: 4 }),
        (
            b"ACK\na:1\nb:2\n\n\0",
            DecodeError::TooManyHeaders { limit: 1 },
        ),
        (
            b"ACK\na:1234567890123456789\n\n\0",
            DecodeError::HeaderLineTooLong { limit: 20 },
        ),
        (
            b"ACK\ncontent-length:3\n\nabc\0",
            DecodeError::BodyTooLarge { limit: 2 },
        ),
        (b"ACK\n\nabc\0", DecodeError::BodyTooLarge { limit: 2 }),
    ];
    let mut codes = Vec::new();
    for (input, expected) in cases {
        let error = one_error(Version::V1_2, l, input);
        assert_eq!(error, expected);
        codes.push(error.code());
    }
    codes.dedup();
    assert_eq!(
        codes,
        [
            "command_too_long",
            "too_many_headers",
            "header_line_too_long",
            "body_too_large"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Malformed input

#[test]
fn unknown_command() {
    for (input, command) in [
        (&b"FOO\n\n\0"[..], "FOO"),
        (b"send\n\n\0", "send"),
        (b"SEND \n\n\0", "SEND "),
        (b" SEND\n\n\0", " SEND"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "GET / HTTP/1.1"),
        (b"\0\n\n", "\0"),
    ] {
        assert_eq!(
            one_error(Version::V1_2, Limits::default(), input),
            DecodeError::UnknownCommand(command.into())
        );
    }
}

#[test]
fn every_command_decodes() {
    for command in Command::ALL {
        let input = format!("{command}\n\n\0");
        assert_eq!(one_frame(Version::V1_2, input.as_bytes()).command, command);
    }
}

#[test]
fn malformed_header() {
    for (input, line) in [
        (&b"SEND\nnocolon\n\n\0"[..], "nocolon"),
        (b"SEND\n:value\n\n\0", ":value"),
        (b"SEND\n \n\n\0", " "),
        (b"SEND\n\r\r\n\n\0", "\r"),
    ] {
        assert_eq!(
            one_error(Version::V1_2, Limits::default(), input),
            DecodeError::MalformedHeader(line.into())
        );
    }
}

#[test]
fn invalid_utf8() {
    for version in Version::ALL {
        assert_eq!(
            one_error(version, Limits::default(), b"SEND\na:\xff\n\n\0"),
            DecodeError::InvalidUtf8
        );
        assert_eq!(
            one_error(version, Limits::default(), b"SEND\n\xc3:v\n\n\0"),
            DecodeError::InvalidUtf8
        );
    }
    // A body need not be UTF-8.
    let f = one_frame(Version::V1_2, b"SEND\n\n\xff\xfe\0");
    assert_eq!(&f.body[..], b"\xff\xfe");
    // Multi-byte UTF-8 is fine.
    let f = one_frame(Version::V1_2, "SEND\nclé:värde€😀\n\n\0".as_bytes());
    assert_eq!(headers_of(&f), [("clé", "värde€😀")]);
}

#[test]
fn errors_are_sticky() {
    let mut decoder = decoder(Version::V1_2, Limits::default());
    let mut buf = BytesMut::from(&b"SEND\nbad\n\nSEND\n\n\0"[..]);
    let error = decoder.decode(&mut buf).unwrap_err();
    assert_eq!(error, DecodeError::MalformedHeader("bad".into()));
    assert!(!decoder.is_idle());
    // Calling again (even with more input) reports the same error instead of reading on, or
    // panicking on positions that belonged to the failed frame.
    assert_eq!(decoder.decode(&mut buf), Err(error.clone()));
    buf.clear();
    buf.extend_from_slice(b"SEND\n\n\0");
    assert_eq!(decoder.decode(&mut buf), Err(error.clone()));
    assert_eq!(decoder.decode_end_of_message(&mut buf), Err(error));
}

#[test]
fn error_messages_and_codes() {
    let cases = [
        (DecodeError::CommandTooLong { limit: 1 }, "command_too_long"),
        (DecodeError::UnknownCommand("X".into()), "unknown_command"),
        (DecodeError::TooManyHeaders { limit: 1 }, "too_many_headers"),
        (
            DecodeError::HeaderLineTooLong { limit: 1 },
            "header_line_too_long",
        ),
        (DecodeError::BodyTooLarge { limit: 1 }, "body_too_large"),
        (DecodeError::MalformedHeader("x".into()), "malformed_header"),
        (DecodeError::InvalidEscape("\\t".into()), "invalid_escape"),
        (DecodeError::InvalidUtf8, "invalid_utf8"),
        (
            DecodeError::InvalidContentLength("x".into()),
            "invalid_content_length",
        ),
        (DecodeError::MissingNul(1), "missing_nul"),
    ];
    let mut codes: Vec<_> = cases.iter().map(|(e, _)| e.code()).collect();
    for (error, code) in &cases {
        assert_eq!(error.code(), *code);
        assert!(!error.to_string().is_empty());
    }
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), cases.len(), "codes are distinct");
    assert_eq!(
        DecodeError::UnknownCommand("FOO".into()).to_string(),
        "unknown command \"FOO\""
    );
}

// ---------------------------------------------------------------------------------------------
// End-of-message leniency (wscat)

/// Decodes one WebSocket message's bytes after `pending`, draining with
/// `decode_end_of_message`.
fn end_of_message(
    decoder: &mut Decoder,
    buf: &mut BytesMut,
    message: &[u8],
) -> Result<Vec<Decoded>, DecodeError> {
    buf.extend_from_slice(message);
    let mut items = Vec::new();
    while let Some(item) = decoder.decode_end_of_message(buf)? {
        items.push(item);
    }
    Ok(items)
}

#[test]
fn end_of_message_stands_for_missing_nul() {
    let mut d = decoder(Version::V1_2, Limits::default());
    let mut buf = BytesMut::new();
    assert_eq!(
        end_of_message(&mut d, &mut buf, b"SEND\ndestination:/a\n\nhello\n").unwrap(),
        [frame(Command::Send, &[("destination", "/a")], b"hello\n")]
    );
    assert!(buf.is_empty());
    assert!(d.is_idle());
    // A frame ending with its blank line.
    assert_eq!(
        end_of_message(&mut d, &mut buf, b"CONNECT\naccept-version:1.2\nhost:x\n\n").unwrap(),
        [frame(
            Command::Connect,
            &[("accept-version", "1.2"), ("host", "x")],
            b""
        )]
    );
    assert!(buf.is_empty());
}

#[test]
fn end_of_message_ends_a_head_at_a_line_end() {
    let mut d = decoder(Version::V1_2, Limits::default());
    let mut buf = BytesMut::new();
    assert_eq!(
        end_of_message(&mut d, &mut buf, b"SEND\ndestination:/a\n").unwrap(),
        [frame(Command::Send, &[("destination", "/a")], b"")]
    );
    assert_eq!(
        end_of_message(&mut d, &mut buf, b"DISCONNECT\r\nreceipt:1\r\n").unwrap(),
        [frame(Command::Disconnect, &[("receipt", "1")], b"")]
    );
    assert_eq!(
        end_of_message(&mut d, &mut buf, b"DISCONNECT\n").unwrap(),
        [frame(Command::Disconnect, &[], b"")]
    );
    assert_eq!(
        end_of_message(&mut d, &mut buf, b"SEND\ncontent-length:0\n").unwrap(),
        [frame(Command::Send, &[("content-length", "0")], b"")]
    );
    assert!(buf.is_empty());
}

#[test]
fn end_of_message_leaves_an_unfinished_line_alone() {
    let mut d = decoder(Version::V1_2, Limits::default());
    let mut buf = BytesMut::new();
    assert_eq!(
        end_of_message(&mut d, &mut buf, b"SEND\ndestination:/a").unwrap(),
        []
    );
    assert_eq!(&buf[..], b"SEND\ndestination:/a");
    // The rest may follow in the next message.
    assert_eq!(
        end_of_message(&mut d, &mut buf, b"bc\n\nx\0").unwrap(),
        [frame(Command::Send, &[("destination", "/abc")], b"x")]
    );
}

#[test]
fn end_of_message_leaves_content_length_frames_waiting() {
    let mut d = decoder(Version::V1_2, Limits::default());
    let mut buf = BytesMut::new();
    assert_eq!(
        end_of_message(&mut d, &mut buf, b"SEND\ncontent-length:5\n\nhel").unwrap(),
        []
    );
    assert_eq!(&buf[..], b"hel");
    assert_eq!(
        end_of_message(&mut d, &mut buf, b"lo\0").unwrap(),
        [frame(Command::Send, &[("content-length", "5")], b"hello")]
    );
    // Body complete but NUL missing: still waiting, untouched.
    assert_eq!(
        end_of_message(&mut d, &mut buf, b"SEND\ncontent-length:2\n\nab").unwrap(),
        []
    );
    assert_eq!(&buf[..], b"ab");
    assert_eq!(
        end_of_message(&mut d, &mut buf, b"\0").unwrap(),
        [frame(Command::Send, &[("content-length", "2")], b"ab")]
    );
}

#[test]
fn end_of_message_leaves_a_content_length_head_untouched() {
    // Regression: the head leniency used to append "\n\0" to a head declaring a body, so the
    // NUL became the first byte of the body the next message brought (then MissingNul).
    let mut d = decoder(Version::V1_2, Limits::default());
    let mut buf = BytesMut::new();
    assert_eq!(
        end_of_message(
            &mut d,
            &mut buf,
            b"SEND\ndestination:/a\ncontent-length:5\n"
        )
        .unwrap(),
        []
    );
    assert_eq!(&buf[..], b"SEND\ndestination:/a\ncontent-length:5\n");
    assert_eq!(
        end_of_message(&mut d, &mut buf, b"\nhello\0").unwrap(),
        [frame(
            Command::Send,
            &[("destination", "/a"), ("content-length", "5")],
            b"hello"
        )]
    );
    assert!(buf.is_empty());
}

#[test]
fn end_of_message_with_several_frames() {
    let mut d = decoder(Version::V1_1, Limits::default());
    let mut buf = BytesMut::new();
    assert_eq!(
        end_of_message(&mut d, &mut buf, b"\nACK\nid:1\n\n\0\r\nNACK\nid:2\n\n").unwrap(),
        [
            Decoded::HeartBeat,
            frame(Command::Ack, &[("id", "1")], b""),
            Decoded::HeartBeat,
            frame(Command::Nack, &[("id", "2")], b""),
        ]
    );
    assert!(buf.is_empty());
}

#[test]
fn end_of_message_reports_errors() {
    let mut d = decoder(Version::V1_2, Limits::default());
    let mut buf = BytesMut::new();
    assert_eq!(
        end_of_message(&mut d, &mut buf, b"SEND\nno colon\n"),
        Err(DecodeError::MalformedHeader("no colon".into()))
    );
    let mut d = decoder(Version::V1_2, Limits::default());
    let mut buf = BytesMut::new();
    assert_eq!(
        end_of_message(&mut d, &mut buf, b"BOGUS\n"),
        Err(DecodeError::UnknownCommand("BOGUS".into()))
    );
}

#[test]
fn end_of_message_with_only_a_cr_waits() {
    let mut d = decoder(Version::V1_2, Limits::default());
    let mut buf = BytesMut::new();
    assert_eq!(end_of_message(&mut d, &mut buf, b"\r").unwrap(), []);
    assert_eq!(&buf[..], b"\r");
    assert_eq!(
        end_of_message(&mut d, &mut buf, b"\n").unwrap(),
        [Decoded::HeartBeat]
    );
}

#[test]
fn end_of_message_body_limit_still_applies() {
    let mut d = decoder(Version::V1_2, limits(64, 8, 100, 3));
    let mut buf = BytesMut::new();
    assert_eq!(
        end_of_message(&mut d, &mut buf, b"SEND\n\nabc").unwrap(),
        [frame(Command::Send, &[], b"abc")]
    );
    assert_eq!(
        end_of_message(&mut d, &mut buf, b"SEND\n\nabcd"),
        Err(DecodeError::BodyTooLarge { limit: 3 })
    );
}
