//! Encoder rules with exact bytes (escaping per version, the `content-length` it writes), the
//! encoder's building blocks, and the version, command and header helpers.
#![allow(clippy::unwrap_used)]

use std::hash::{BuildHasher, RandomState};

use bytes::BytesMut;
use stompede_protocol::{
    encode, encoded_len_estimate, to_bytes, write_body, write_command, write_content_length,
    write_decimal, write_header, writes_content_length, Command, Decoded, Decoder, Escaping, Frame,
    Header, Headers, Limits, Version,
};

fn encoded(frame: &Frame, version: Version) -> Vec<u8> {
    let mut dst = BytesMut::new();
    encode(frame, version, &mut dst);
    assert_eq!(&dst[..], &to_bytes(frame, version)[..]);
    dst.to_vec()
}

#[test]
fn send_frame_exact_bytes() {
    let frame = Frame::new(Command::Send)
        .header("destination", "/queue/a")
        .header("receipt", "r1")
        .body("hello");
    for version in Version::ALL {
        assert_eq!(
            encoded(&frame, version),
            b"SEND\ndestination:/queue/a\nreceipt:r1\ncontent-length:5\n\nhello\0"
        );
    }
}

#[test]
fn encode_appends_to_dst() {
    let mut dst = BytesMut::from(&b"\n"[..]);
    encode(
        &Frame::new(Command::Receipt).header("receipt-id", "7"),
        Version::V1_2,
        &mut dst,
    );
    encode(&Frame::new(Command::Disconnect), Version::V1_2, &mut dst);
    assert_eq!(&dst[..], b"\nRECEIPT\nreceipt-id:7\n\n\0DISCONNECT\n\n\0");
}

const NAME: &str = "k:1\\";
const VALUE: &str = "a:b\nc\\d\re";

#[test]
fn escaping_v1_0_substitutes_what_it_cannot_carry() {
    let frame = Frame::new(Command::Subscribe).header(NAME, VALUE);
    // No escapes in 1.0: LF and CR become spaces, a colon in a name becomes `_`; a colon in a
    // value and backslashes are written as they are.
    assert_eq!(
        encoded(&frame, Version::V1_0),
        b"SUBSCRIBE\nk_1\\:a:b c\\d e\n\n\0"
    );
}

#[test]
fn escaping_v1_1() {
    let frame = Frame::new(Command::Subscribe).header(NAME, VALUE);
    // 1.1 has no escape for CR: it becomes a space.
    assert_eq!(
        encoded(&frame, Version::V1_1),
        b"SUBSCRIBE\nk\\c1\\\\:a\\cb\\nc\\\\d e\n\n\0"
    );
}

#[test]
fn escaping_v1_2() {
    let frame = Frame::new(Command::Subscribe).header(NAME, VALUE);
    assert_eq!(
        encoded(&frame, Version::V1_2),
        b"SUBSCRIBE\nk\\c1\\\\:a\\cb\\nc\\\\d\\re\n\n\0"
    );
}

#[test]
fn connect_and_connected_are_never_escaped() {
    for version in Version::ALL {
        for command in [Command::Connect, Command::Stomp, Command::Connected] {
            let frame = Frame::new(command).header("login", "a:b\\c\nd");
            let expected = format!("{command}\nlogin:a:b\\c d\n\n\0");
            assert_eq!(
                encoded(&frame, version),
                expected.as_bytes(),
                "{command} {version}"
            );
        }
    }
}

#[test]
fn escaping_for_frame() {
    assert_eq!(
        Escaping::for_frame(Command::Send, Version::V1_0),
        Escaping::None
    );
    assert_eq!(
        Escaping::for_frame(Command::Send, Version::V1_1),
        Escaping::V11
    );
    assert_eq!(
        Escaping::for_frame(Command::Message, Version::V1_2),
        Escaping::V12
    );
    for version in Version::ALL {
        for command in [Command::Connect, Command::Stomp, Command::Connected] {
            assert_eq!(Escaping::for_frame(command, version), Escaping::None);
        }
    }
}

#[test]
fn unescape_is_the_inverse_of_write() {
    for (escaping, text, is_name) in [
        (Escaping::V11, "a:b\nc\\d", true),
        (Escaping::V12, "a:b\nc\\d\re", true),
        (Escaping::None, "a:b\\c\\n", false),
        (Escaping::None, "a_b\\c\\n", true),
    ] {
        let mut dst = BytesMut::new();
        escaping.write(&mut dst, text, is_name);
        assert_eq!(&*escaping.unescape(&dst).unwrap(), text.as_bytes());
    }
}

#[test]
fn content_length_always_for_message_error_send() {
    for command in [Command::Message, Command::Error, Command::Send] {
        let frame = Frame::new(command).header("a", "1");
        assert!(writes_content_length(&frame));
        let expected = format!("{command}\na:1\ncontent-length:0\n\n\0");
        assert_eq!(encoded(&frame, Version::V1_2), expected.as_bytes());
    }
}

#[test]
fn content_length_for_any_non_empty_body() {
    for command in Command::ALL {
        let empty = Frame::new(command);
        let expected = matches!(command, Command::Message | Command::Error | Command::Send);
        assert_eq!(writes_content_length(&empty), expected, "{command}");
        let with_body = Frame::new(command).body("x");
        assert!(writes_content_length(&with_body), "{command}");
    }
    assert_eq!(
        encoded(
            &Frame::new(Command::Subscribe).header("id", "0").body("x"),
            Version::V1_2
        ),
        b"SUBSCRIBE\nid:0\ncontent-length:1\n\nx\0"
    );
    assert_eq!(
        encoded(
            &Frame::new(Command::Receipt).header("receipt-id", "1"),
            Version::V1_2
        ),
        b"RECEIPT\nreceipt-id:1\n\n\0"
    );
}

#[test]
fn callers_content_length_is_replaced_by_the_true_one() {
    let frame = Frame::new(Command::Message)
        .header("content-length", "999")
        .header("destination", "/q")
        .header("content-length", "junk")
        .body(&b"a\0c"[..]);
    assert_eq!(
        encoded(&frame, Version::V1_2),
        b"MESSAGE\ndestination:/q\ncontent-length:3\n\na\0c\0"
    );
    // With no body on a command that needs none, the caller's header is dropped.
    let frame = Frame::new(Command::Disconnect).header("content-length", "5");
    assert_eq!(encoded(&frame, Version::V1_2), b"DISCONNECT\n\n\0");
}

#[test]
fn body_with_nuls_is_written_as_is() {
    let body = vec![0u8; 3];
    let frame = Frame::new(Command::Send).body(body);
    assert_eq!(
        encoded(&frame, Version::V1_0),
        b"SEND\ncontent-length:3\n\n\0\0\0\0"
    );
}

#[test]
fn building_blocks() {
    let mut dst = BytesMut::new();
    write_command(&mut dst, Command::Message);
    write_header(&mut dst, Escaping::V12, "subscription", "s:1");
    write_content_length(&mut dst, 1234);
    write_body(&mut dst, b"xyz");
    assert_eq!(
        &dst[..],
        b"MESSAGE\nsubscription:s\\c1\ncontent-length:1234\n\nxyz\0"
    );
}

#[test]
fn decimal() {
    for n in [0usize, 7, 10, 99, 100, 1_048_576, usize::MAX] {
        let mut dst = BytesMut::new();
        write_decimal(&mut dst, n);
        assert_eq!(&dst[..], n.to_string().as_bytes());
    }
}

#[test]
fn length_estimate_covers_unescaped_frames() {
    let frame = Frame::new(Command::Message)
        .header("destination", "/queue/a")
        .header("message-id", "123456789")
        .body(vec![b'x'; 1000]);
    assert!(encoded_len_estimate(&frame) >= encoded(&frame, Version::V1_2).len());
}

// ---------------------------------------------------------------------------------------------
// Versions

#[test]
fn negotiate() {
    assert_eq!(Version::negotiate(None), Some(Version::V1_0));
    assert_eq!(Version::negotiate(Some("1.0")), Some(Version::V1_0));
    assert_eq!(Version::negotiate(Some("1.1")), Some(Version::V1_1));
    assert_eq!(Version::negotiate(Some("1.0,1.1,1.2")), Some(Version::V1_2));
    assert_eq!(Version::negotiate(Some("1.2,1.0")), Some(Version::V1_2));
    assert_eq!(Version::negotiate(Some(" 1.1 , 1.0 ")), Some(Version::V1_1));
    assert_eq!(Version::negotiate(Some("1.0,2.0")), Some(Version::V1_0));
    assert_eq!(Version::negotiate(Some("2.0")), None);
    assert_eq!(Version::negotiate(Some("")), None);
    assert_eq!(Version::negotiate(Some("1.3,0.9")), None);
}

#[test]
fn subprotocols() {
    let pairs = [
        (Version::V1_0, "v10.stomp"),
        (Version::V1_1, "v11.stomp"),
        (Version::V1_2, "v12.stomp"),
    ];
    for (version, name) in pairs {
        assert_eq!(version.subprotocol(), name);
        assert_eq!(Version::from_subprotocol(name), Some(version));
    }
    assert_eq!(
        Version::from_subprotocol(" v12.stomp "),
        Some(Version::V1_2)
    );
    assert_eq!(Version::from_subprotocol("stomp"), None);
    assert_eq!(Version::from_subprotocol("v13.stomp"), None);
    assert_eq!(Version::from_subprotocol("V12.STOMP"), None);
}

#[test]
fn version_strings_and_order() {
    assert_eq!(Version::ALL, [Version::V1_0, Version::V1_1, Version::V1_2]);
    assert!(Version::V1_0 < Version::V1_1 && Version::V1_1 < Version::V1_2);
    assert_eq!(Version::default(), Version::V1_0);
    for version in Version::ALL {
        assert_eq!(Version::parse(version.as_str()), Some(version));
        assert_eq!(version.to_string(), version.as_str());
    }
    assert_eq!(Version::parse("1.3"), None);
}

// ---------------------------------------------------------------------------------------------
// Commands and headers

#[test]
fn commands() {
    for command in Command::ALL {
        assert_eq!(
            Command::from_bytes(command.as_str().as_bytes()),
            Some(command)
        );
        assert_eq!(command.to_string(), command.as_str());
        assert_ne!(command.is_client(), command.is_server());
    }
    assert_eq!(Command::from_bytes(b"connect"), None);
    assert_eq!(Command::from_bytes(b""), None);
    let unescaped: Vec<_> = Command::ALL
        .into_iter()
        .filter(|c| c.is_unescaped())
        .collect();
    assert_eq!(
        unescaped,
        [Command::Connect, Command::Stomp, Command::Connected]
    );
    let server: Vec<_> = Command::ALL.into_iter().filter(|c| c.is_server()).collect();
    assert_eq!(
        server,
        [
            Command::Connected,
            Command::Message,
            Command::Receipt,
            Command::Error
        ]
    );
}

#[test]
fn headers_set_remove_get() {
    let mut headers: Headers = [("a", "1"), ("b", "2"), ("a", "3")].into_iter().collect();
    assert_eq!(headers.get("a"), Some("1"));
    assert_eq!(headers.get_shared("b").as_deref(), Some("2"));
    assert!(headers.contains("b") && !headers.contains("c"));
    headers.set("a", "x");
    let pairs: Vec<_> = headers.iter().map(|h| (h.name, h.value)).collect();
    assert_eq!(pairs, [("a", "x"), ("b", "2")]);
    headers.set("c", "y");
    assert_eq!(headers.len(), 3);
    headers.remove("a");
    let pairs: Vec<_> = (&headers).into_iter().map(|h| (h.name, h.value)).collect();
    assert_eq!(pairs, [("b", "2"), ("c", "y")]);
    assert!(!headers.is_empty());
    assert!(Headers::new().is_empty());
    assert!(Headers::with_capacity(4).is_empty());
    let from_headers: Headers = [Header {
        name: "n",
        value: "v",
    }]
    .into_iter()
    .collect();
    assert_eq!(from_headers.get("n"), Some("v"));
}

fn decoded(wire: &[u8]) -> Frame {
    let mut decoder = Decoder::new(Limits::default());
    decoder.set_version(Version::V1_2);
    match decoder.decode(&mut BytesMut::from(wire)).unwrap() {
        Some(Decoded::Frame(frame)) => frame,
        other => panic!("expected a frame, got {other:?}"),
    }
}

#[test]
fn decoded_headers_equal_built_ones() {
    let built: Headers = [("a", "1"), ("b:c", "x\ny"), ("a", "2")]
        .into_iter()
        .collect();
    let wire = decoded(b"SEND\na:1\nb\\cc:x\\ny\na:2\n\n\0").headers;
    assert_eq!(wire, built);
    let hasher = RandomState::new();
    assert_eq!(hasher.hash_one(&wire), hasher.hash_one(&built));
    assert_eq!(format!("{wire:?}"), format!("{built:?}"));
    assert_eq!(
        format!("{wire:?}"),
        r#"[("a", "1"), ("b:c", "x\ny"), ("a", "2")]"#
    );
    let reordered: Headers = [("a", "2"), ("b:c", "x\ny"), ("a", "1")]
        .into_iter()
        .collect();
    assert_ne!(wire, reordered);
    assert_ne!(wire, Headers::new());
    let iter = wire.iter();
    assert_eq!(iter.len(), 3);
    assert_eq!(
        iter.rev().map(|h| h.value).collect::<Vec<_>>(),
        ["2", "x\ny", "1"]
    );
}

#[test]
fn decoded_headers_can_be_changed() {
    let mut headers = decoded(b"SEND\ndestination:/q\nreceipt:7\nx:1\nx:2\n\n\0").headers;
    let copy = headers.clone();
    headers.remove("receipt");
    headers.set("x", "3");
    headers.push("y", String::from("4"));
    let pairs: Vec<_> = headers.iter().map(|h| (h.name, h.value)).collect();
    assert_eq!(pairs, [("destination", "/q"), ("x", "3"), ("y", "4")]);
    // The clone is untouched.
    assert_eq!(copy.len(), 4);
    assert_eq!(copy.get("x"), Some("1"));
}

#[test]
fn get_shared_reads_short_and_long_values() {
    let long = "v".repeat(300);
    let frame = decoded(format!("SEND\nshort:abc\nlong:{long}\n\n\0").as_bytes());
    assert_eq!(frame.headers.get_shared("short").as_deref(), Some("abc"));
    assert_eq!(frame.headers.get_shared("long").as_deref(), Some(&*long));
    assert_eq!(frame.headers.get_shared("none"), None);
    // A kept value outlives its frame.
    let kept = frame.headers.get_shared("long").unwrap();
    drop(frame);
    assert_eq!(&*kept, long);
}
