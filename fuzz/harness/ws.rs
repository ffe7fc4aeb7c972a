//! The WebSocket framing oracle, shared by the cargo-fuzz target (`fuzz_targets/ws.rs`) and the
//! corpus replay test (`tests/fuzz_corpus.rs`).
//!
//! Input layout (shorter inputs are padded with zeros):
//!
//! * byte 0: bit 0, read STOMP frames through the decoder as a session does (otherwise whole
//!   messages, as the echo server does); bit 1, lenient frames (`lenient-websocket-frames`);
//!   bit 2, SockJS framing for the SockJS WebSocket reader (otherwise raw messages);
//! * byte 1: the message limit, from a table: the broker's default (16 MiB and the most a
//!   frame can take) or a small one;
//! * byte 2: the largest read (0: the whole stream in one piece);
//! * byte 3: the seed of the read sizes;
//! * the rest: the bytes a client sends after the opening handshake.
//!
//! Both server readers get the stream: `transport::ws`'s (every `/ws` session, the echo
//! server) and SockJS's (`.../websocket`). Checked, beyond "no panic":
//!
//! * reading terminates; each call gives an item, the end or a failure, never waits on a
//!   reader that never waits, and each item consumes input;
//! * a failure is sticky: the next call gives the end, the close code stays;
//! * the stream in one read and in the chosen reads gives the same messages, the same failure,
//!   the same close code and the same pongs (STOMP frames: the same, or where a failure cut
//!   one of them short, one list a prefix of the other);
//! * a message never exceeds the limit; a text message is UTF-8; the close code sent is one a
//!   server may send; pongs are well-formed control frames;
//! * where neither reader failed, both read the same messages and echo the same close code.
#![allow(dead_code)]

use stompede::fuzzing::{sockjs_messages, SockJsRead, Step, WsReader};
use stompede::protocol::{Decoded, Decoder, Frame};

/// What the input's first four bytes select.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Read STOMP frames (else whole messages).
    pub stomp: bool,
    /// Lenient frames.
    pub lenient: bool,
    /// SockJS framing for the SockJS reader.
    pub sockjs: bool,
    /// The message limit.
    pub max_message: usize,
    /// The largest read; 0 for one read of the whole stream.
    pub max_chunk: usize,
    /// The seed of the read sizes.
    pub seed: u8,
}

/// The broker's default message limit (`/ws`): the most bytes one STOMP frame can take.
pub fn default_limit() -> usize {
    stompede::Config::default().frame_limits().max_frame_bytes()
}

/// The message limits an input picks from.
const LIMITS: [usize; 12] = [0, 1, 2, 5, 125, 126, 127, 200, 1000, 65_535, 65_536, 70_000];

/// Splits a fuzz input into its configuration and its byte stream.
pub fn config(data: &[u8]) -> (Config, &[u8]) {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let b1 = usize::from(byte(1));
    let max_message = match b1 % 16 {
        n if n < LIMITS.len() => LIMITS[n],
        _ => default_limit(),
    };
    let config = Config {
        stomp: byte(0) & 1 != 0,
        lenient: byte(0) & 2 != 0,
        sockjs: byte(0) & 4 != 0,
        max_message,
        max_chunk: usize::from(byte(2)),
        seed: byte(3),
    };
    (config, data.get(4..).unwrap_or_default())
}

/// Cuts `stream` into reads of 1..=max bytes from a xorshift generator (one read when max is 0).
pub fn pieces(stream: &[u8], max: usize, seed: u8) -> Vec<Vec<u8>> {
    if max == 0 {
        return vec![stream.to_vec()];
    }
    let mut state = u32::from(seed).wrapping_mul(2_654_435_761) | 1;
    let mut out = Vec::new();
    let mut at = 0;
    while at < stream.len() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (1 + state as usize % max).min(stream.len() - at);
        out.push(stream[at..at + n].to_vec());
        at += n;
    }
    out
}

/// How reading ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The reader gave the end (the peer's close frame, or the end of input).
    Ended,
    /// The connection failed.
    Failed(String),
}

/// Everything a reader said about a stream.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Whole messages `(text, payload)` (message mode).
    pub messages: Vec<(bool, Vec<u8>)>,
    /// STOMP frames and heart-beats (STOMP mode).
    pub items: Vec<Decoded>,
    /// How it ended.
    pub end: End,
    /// The close code left for the writer.
    pub close: Option<u16>,
    /// The pongs owed, as encoded frames.
    pub pongs: Vec<u8>,
}

/// Server frames `(fin, opcode, payload)` of `wire`, checked well-formed (no extension bits,
/// unmasked, shortest length), or the reason they are not.
pub fn server_frames(mut wire: &[u8]) -> Result<Vec<(bool, u8, Vec<u8>)>, String> {
    let mut out = Vec::new();
    while !wire.is_empty() {
        let [b0, b1, ..] = *wire else {
            return Err("a cut frame head".into());
        };
        if b0 & 0x70 != 0 || b1 & 0x80 != 0 {
            return Err(format!("extension bits or a mask: {b0:#x} {b1:#x}"));
        }
        let (len, at) = match b1 & 0x7f {
            126 => {
                let b = wire.get(2..4).ok_or("cut 16-bit length")?;
                let len = usize::from(u16::from_be_bytes([b[0], b[1]]));
                if len < 126 {
                    return Err("16-bit length not in its shortest form".into());
                }
                (len, 4)
            }
            127 => {
                let b = wire.get(2..10).ok_or("cut 64-bit length")?;
                let mut be = [0u8; 8];
                be.copy_from_slice(b);
                let len = u64::from_be_bytes(be);
                if len <= 0xffff {
                    return Err("64-bit length not in its shortest form".into());
                }
                (usize::try_from(len).map_err(|e| e.to_string())?, 10)
            }
            n => (usize::from(n), 2),
        };
        let payload = wire.get(at..at + len).ok_or("a cut payload")?;
        out.push((b0 & 0x80 != 0, b0 & 0x0f, payload.to_vec()));
        wire = &wire[at + len..];
    }
    Ok(out)
}

/// Checks the pongs a reader owes: final unfragmented PONG frames of at most 125 bytes.
fn check_pongs(pongs: &[u8]) {
    let frames = server_frames(pongs).unwrap_or_else(|e| panic!("pongs: {e}"));
    for (fin, opcode, payload) in frames {
        assert!(fin, "a fragmented pong");
        assert_eq!(opcode, 0xA, "not a pong");
        assert!(payload.len() <= 125, "an oversized pong");
    }
}

/// Checks a close code the server is to send: the client's (echoed) or a failure's.
fn check_close(close: Option<u16>, end: &End) {
    match end {
        // A WebSocket failure leaves its close code; a STOMP one (the decoder's) leaves
        // none, the session answers it with an ERROR.
        // (By its prefix: a decoding error may quote a header that says "WebSocket".)
        End::Failed(e)
            if e.starts_with("WebSocket:") || e.starts_with("read failed: WebSocket:") =>
        {
            assert!(
                matches!(close, Some(1002 | 1007 | 1009)),
                "a failure with close code {close:?}: {e}"
            )
        }
        End::Failed(e) => assert_eq!(close, None, "a STOMP failure with a close code: {e}"),
        End::Ended => {
            if let Some(code) = close {
                assert!(
                    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999),
                    "echoed close code {code}"
                );
            }
        }
    }
}

/// Reads `pieces` with `transport::ws`'s reader, checking every step.
pub fn read_ws(config: &Config, pieces: Vec<Vec<u8>>) -> Outcome {
    let total: usize = pieces.iter().map(Vec::len).sum();
    let mut reader = WsReader::new(pieces, config.max_message, config.lenient);
    let mut decoder = Decoder::new(stompede::Config::default().frame_limits());
    let mut messages = Vec::new();
    let mut items = Vec::new();
    let mut held = total;
    let end = loop {
        assert!(
            messages.len() + items.len() <= total + 1,
            "more items than bytes: reading does not terminate"
        );
        let step = if config.stomp {
            match reader.next_frame(&mut decoder) {
                Step::Item((item, _text)) => {
                    items.push(item);
                    Step::Item(())
                }
                Step::End => Step::End,
                Step::Failed(e) => Step::Failed(e),
                Step::Waited => Step::Waited,
            }
        } else {
            match reader.next_message() {
                Step::Item((text, payload)) => {
                    assert!(
                        payload.len() <= config.max_message,
                        "a message of {} bytes over the limit of {}",
                        payload.len(),
                        config.max_message
                    );
                    if text {
                        assert!(
                            std::str::from_utf8(&payload).is_ok(),
                            "a text message that is not UTF-8"
                        );
                    }
                    messages.push((text, payload.to_vec()));
                    Step::Item(())
                }
                Step::End => Step::End,
                Step::Failed(e) => Step::Failed(e),
                Step::Waited => Step::Waited,
            }
        };
        match step {
            Step::Item(()) => {
                let now = reader.unread() + reader.buffered();
                assert!(now < held, "an item consumed no input");
                held = now;
            }
            Step::End => break End::Ended,
            Step::Failed(e) => {
                assert!(!e.is_empty());
                break End::Failed(e);
            }
            Step::Waited => panic!("the reader waited on input that never waits"),
        }
    };
    let close = reader.close_code();
    check_close(close, &end);
    // Sticky: nothing more after the end or a failure, and the close code stays.
    for _ in 0..2 {
        // After a WebSocket failure the reader gives the end; the decoder repeats its own
        // error.
        let repeated = |step: Step<()>| match (step, &end) {
            (Step::End, _) => true,
            (Step::Failed(e), End::Failed(first)) => e == *first,
            _ => false,
        };
        let again = if config.stomp {
            repeated(match reader.next_frame(&mut decoder) {
                Step::Item(_) => Step::Item(()),
                Step::End => Step::End,
                Step::Failed(e) => Step::Failed(e),
                Step::Waited => Step::Waited,
            })
        } else {
            repeated(match reader.next_message() {
                Step::Item(_) => Step::Item(()),
                Step::End => Step::End,
                Step::Failed(e) => Step::Failed(e),
                Step::Waited => Step::Waited,
            })
        };
        assert!(again, "the reader went on after {end:?}");
        assert_eq!(reader.close_code(), close, "the close code changed");
    }
    let pongs = reader.take_control().to_vec();
    check_pongs(&pongs);
    for item in &items {
        if let Decoded::Frame(frame) = item {
            check_frame(frame);
        }
    }
    Outcome {
        messages,
        items,
        end,
        close,
        pongs,
    }
}

/// A decoded STOMP frame is within the server's limits.
fn check_frame(frame: &Frame) {
    let limits = stompede::Config::default().frame_limits();
    assert!(frame.body.len() <= limits.max_body_len);
    assert!(frame.headers.len() <= limits.max_headers);
}

/// Reads `pieces` with the SockJS WebSocket reader, checking what it says.
pub fn read_sockjs(config: &Config, pieces: &[Vec<u8>]) -> SockJsRead {
    let read = sockjs_messages(pieces, config.max_message, config.sockjs);
    if !config.sockjs {
        for message in &read.messages {
            assert!(
                message.len() <= config.max_message,
                "a message over the limit"
            );
        }
    }
    let frames = server_frames(&read.out).unwrap_or_else(|e| panic!("SockJS reader wrote {e}"));
    for (i, (fin, opcode, payload)) in frames.iter().enumerate() {
        assert!(*fin);
        assert!(payload.len() <= 125, "an oversized control frame");
        match opcode {
            0xA => {}
            0x8 => assert_eq!(i, frames.len() - 1, "a frame after the close frame"),
            other => panic!("the reader wrote opcode {other:#x}"),
        }
    }
    if let Some(code) = read.fail {
        assert!(matches!(code, 1002 | 1007 | 1009), "failure code {code}");
    }
    read
}

/// The close code of the close frame at the end of `out`, if any.
fn close_written(out: &[u8]) -> Option<u16> {
    let frames = server_frames(out).ok()?;
    let (_, opcode, payload) = frames.last()?;
    (*opcode == 0x8).then(|| u16::from_be_bytes([payload[0], payload[1]]))
}

/// Checks that the STOMP frames of two readings agree: equal, or, if a failure ended either,
/// one a prefix of the other.
fn agree(a: &Outcome, b: &Outcome) {
    let n = a.items.len().min(b.items.len());
    assert_eq!(
        a.items[..n],
        b.items[..n],
        "frames depend on the read sizes"
    );
    if a.end == End::Ended && b.end == End::Ended {
        assert_eq!(a, b, "the outcome depends on the read sizes");
    }
}

/// The whole oracle on one fuzz input.
pub fn run(data: &[u8]) {
    let (config, stream) = config(data);
    run_with(&config, stream);
}

/// The whole oracle on one stream under `config`.
pub fn run_with(config: &Config, stream: &[u8]) {
    let chunked = pieces(stream, config.max_chunk, config.seed);
    let outcome = read_ws(config, chunked.clone());
    let whole = read_ws(config, vec![stream.to_vec()]);
    if config.stomp {
        agree(&outcome, &whole);
    } else {
        assert_eq!(outcome, whole, "the outcome depends on the read sizes");
    }
    let sockjs = read_sockjs(config, &chunked);
    let sockjs_whole = read_sockjs(config, &[stream.to_vec()]);
    assert_eq!(
        (&sockjs.messages, &sockjs.out, sockjs.closed, sockjs.fail),
        (
            &sockjs_whole.messages,
            &sockjs_whole.out,
            sockjs_whole.closed,
            sockjs_whole.fail
        ),
        "the SockJS reader depends on the read sizes"
    );
    // The two readers against each other, where neither failed.
    if !config.stomp && !config.sockjs && outcome.end == End::Ended && sockjs.closed != Some(false)
    {
        let payloads: Vec<&[u8]> = outcome.messages.iter().map(|m| &m.1[..]).collect();
        let texts: Vec<&[u8]> = sockjs.messages.iter().map(String::as_bytes).collect();
        assert_eq!(payloads, texts, "the two readers read different messages");
        let echoed = if sockjs.closed == Some(true) {
            close_written(&sockjs.out)
        } else {
            None
        };
        assert_eq!(
            outcome.close, echoed,
            "the two readers echo different closes"
        );
    }
}
