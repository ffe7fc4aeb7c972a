//! The STOMP session oracle, shared by the cargo-fuzz target (`fuzz_targets/session.rs`) and the
//! corpus replay test (`tests/fuzz_corpus.rs`).
//!
//! One broker per process (a tokio runtime on the calling thread, no listeners, a data
//! directory of its own); each input is one session on the server side of an in-memory pipe,
//! run by the same code as a `/ws` connection (`session::run` over the WebSocket reader and
//! writer). The harness is the client: it sends a CONNECT (or STOMP) frame, then the frames
//! the input describes, each in a masked WebSocket message, letting the server answer between
//! frames; ACK and NACK may name ack ids and message ids the server actually sent. Then it
//! closes its side and reads everything to the end.
//!
//! Input: byte 0 shapes the CONNECT (command, `accept-version`, `heart-beat`, `host`,
//! `login`/`passcode`, `receipt`); then, for each frame, a byte picks the command (or a
//! heart-beat, raw bytes, an unknown command), a byte picks which headers it carries
//! (`destination`, `id`, `receipt`, `transaction`, `ack`, `content-length` right or wrong, one
//! more header from a table or the input, a body), and further bytes pick their values. A
//! frame goes as a text or binary message, and may be cut into two fragments.
//!
//! Checked, beyond "no panic": the session ends; every server frame is well-formed and final,
//! the close frame last; each message holds one STOMP frame or a heart-beat; the first frame
//! is CONNECTED or ERROR, CONNECTED comes at most once; every ERROR has a `message` header
//! and nothing follows an ERROR but the close; each RECEIPT (and an ERROR's `receipt-id`)
//! answers a receipt asked, never more often than asked; every MESSAGE names a subscription
//! the client made; the output is bounded; the session is gone from the broker afterwards;
//! and, every so many inputs, a well-behaved client still gets its message and its receipts.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use stompede::fuzzing::client_frame;
use stompede::protocol::bytes::BytesMut;
use stompede::protocol::{names, Command, Decoded, Decoder, Frame, Limits, Version};
use stompede::{BrokerBuilder, Config, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The broker every input talks to, and the runtime it runs on.
struct Env {
    runtime: tokio::runtime::Runtime,
    server: Server,
    _dir: PathBuf,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let shm = std::path::Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_owned()
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("stompede-fuzz-session-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a data directory");
        let config = Config {
            data_dir: dir.clone(),
            stomp: None,
            http: None,
            durability: stompede::config::Durability::Periodic,
            // Pacing must not make an input wait for seconds: a queue with no consumer is
            // refused (its limit) long before it paces, and a paced wait is short.
            max_queue_messages: 200,
            queue_high_water_messages: 100_000,
            slow_consumer_grace_ms: 100,
            shutdown_timeout_ms: 200,
            connect_timeout_ms: 2_000,
            max_subscriptions_per_session: 50,
            max_transaction_frames: 50,
            ..Config::default()
        };
        let server = runtime
            .block_on(BrokerBuilder::new(config).start())
            .expect("the broker starts");
        Env {
            runtime,
            server,
            _dir: dir,
        }
    })
}

/// Reads bytes of the input; zeros once it is used up.
struct Input<'a> {
    data: &'a [u8],
    at: usize,
}

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = usize::from(self.byte()) % (max + 1);
        let end = (self.at + n).min(self.data.len());
        let out = self.data.get(self.at..end).unwrap_or_default().to_vec();
        self.at = end.max(self.at);
        out
    }

    fn done(&self) -> bool {
        self.at >= self.data.len()
    }

    fn pick<T: Copy>(&mut self, table: &[T]) -> T {
        table[usize::from(self.byte()) % table.len()]
    }
}

const VERSIONS: [Option<&str>; 8] = [
    None,
    Some("1.0"),
    Some("1.1"),
    Some("1.2"),
    Some("1.0,1.1,1.2"),
    Some("1.2,1.1"),
    Some("2.0"),
    Some(""),
];
const HEARTBEATS: [&str; 6] = ["0,0", "1,1", "100,100", "10000,0", "x", "0,1"];
const LOGINS: [&str; 4] = ["guest", "admin", "", "user\\nname"];
const DESTINATIONS: [&[u8]; 20] = [
    b"/topic/a",
    b"/topic/a",
    b"/queue/a",
    b"/queue/a",
    b"/queue/b",
    b"/topic/*",
    b"/topic/**",
    b"/topic/a.b",
    b"/user/queue/x",
    b"/user/fuzz/queue/x",
    b"/app/jobs",
    b"/app/x",
    b"/topic/jobs/123",
    b"/topic/jobs/**",
    b"/topic/stats",
    b"/queue/a.DLQ",
    b"",
    b"/queue/\\n",
    b"/temp-queue/x",
    b"/exchange/amq.topic/x",
];
const COMMANDS: [&str; 16] = [
    "SEND",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "ACK",
    "NACK",
    "BEGIN",
    "COMMIT",
    "ABORT",
    "DISCONNECT",
    "CONNECT",
    "SEND",
    "\n",
    "raw",
    "MESSAGE",
    "SUBSCRIBE",
    "other",
];
const ACK_MODES: [&str; 5] = ["auto", "client", "client-individual", "bogus", ""];
const EXTRA_NAMES: [&str; 16] = [
    "persistent",
    "expires",
    "priority",
    "prefetch-count",
    "since-seq",
    "selector",
    "content-type",
    "reply-to",
    "durable",
    "x-max-deliveries",
    "message-id",
    "subscription",
    "delay",
    "content-length",
    "auto-delete",
    "x-queue-name",
];
const EXTRA_VALUES: [&str; 8] = [
    "true",
    "0",
    "1",
    "-1",
    "99999999999999999999",
    "5000",
    "text/plain;charset=utf-8",
    "/queue/a",
];

/// One client frame to send, and how.
struct Outgoing {
    bytes: Vec<u8>,
    text: bool,
    /// Cut into two fragments at this byte (0: one frame).
    cut: usize,
}

/// What the client asked for, to check the answers against.
#[derive(Default)]
struct Asked {
    receipts: BTreeMap<String, usize>,
    subscriptions: BTreeSet<String>,
}

/// Ack ids and message ids the server sent so far, from its output.
fn delivered_ids(output: &[u8]) -> Vec<String> {
    let mut ids = Vec::new();
    if let Ok(messages) = messages_of(output) {
        for (_, payload) in messages {
            let mut buf = BytesMut::from(&payload[..]);
            let mut decoder = Decoder::new(big_limits());
            if let Ok(Some(Decoded::Frame(frame))) = decoder.decode(&mut buf) {
                for name in [names::ACK, names::MESSAGE_ID] {
                    if let Some(v) = frame.get(name) {
                        ids.push(v.to_owned());
                    }
                }
            }
        }
    }
    ids
}

fn big_limits() -> Limits {
    Limits {
        max_command_len: 64,
        max_headers: 1 << 20,
        max_header_line_len: 1 << 24,
        max_body_len: 1 << 28,
    }
}

/// Builds the frame the input describes next.
fn next_frame(input: &mut Input<'_>, asked: &mut Asked, output: &[u8], n: usize) -> Outgoing {
    let op = input.byte();
    let command = COMMANDS[usize::from(op) % COMMANDS.len()];
    let how = op >> 4;
    let text = how & 1 == 0;
    let mut bytes = Vec::new();
    match command {
        "\n" => bytes.extend_from_slice(if how & 2 == 0 { b"\n" } else { b"\r\n" }),
        "raw" => bytes = input.bytes(64),
        _ => {
            if command == "other" {
                bytes.extend(input.bytes(12));
            } else {
                bytes.extend_from_slice(command.as_bytes());
            }
            bytes.push(b'\n');
            let flags = input.byte();
            let header = |bytes: &mut Vec<u8>, name: &[u8], value: &[u8]| {
                bytes.extend_from_slice(name);
                bytes.push(b':');
                bytes.extend_from_slice(value);
                bytes.push(b'\n');
            };
            if flags & 1 != 0 {
                let d = input.pick(&DESTINATIONS);
                header(&mut bytes, b"destination", d);
                if command == "SUBSCRIBE" {
                    // STOMP 1.0: a SUBSCRIBE without an id is known by its destination.
                    let d = String::from_utf8_lossy(d);
                    asked.subscriptions.insert(d.replace("\\n", "\n"));
                    asked.subscriptions.insert(d.into_owned());
                }
            }
            if flags & 2 != 0 {
                let id = format!("s{}", input.byte() % 8);
                if command == "SUBSCRIBE" {
                    asked.subscriptions.insert(id.clone());
                }
                // ACK and NACK: an id the server sent, where there is one.
                let ids = if matches!(command, "ACK" | "NACK") {
                    delivered_ids(output)
                } else {
                    Vec::new()
                };
                let value = match ids.len() {
                    0 => id,
                    len => ids[usize::from(input.byte()) % len].clone(),
                };
                header(&mut bytes, b"id", value.as_bytes());
            }
            if flags & 4 != 0 {
                let receipt = format!("r{n}");
                *asked.receipts.entry(receipt.clone()).or_default() += 1;
                header(&mut bytes, b"receipt", receipt.as_bytes());
            }
            if flags & 8 != 0 {
                let tx = format!("t{}", input.byte() % 4);
                header(&mut bytes, b"transaction", tx.as_bytes());
            }
            if flags & 16 != 0 {
                let mode = input.pick(&ACK_MODES);
                header(&mut bytes, b"ack", mode.as_bytes());
            }
            if flags & 64 != 0 {
                let which = input.byte();
                let name = if which & 0x80 != 0 {
                    input.bytes(16)
                } else {
                    EXTRA_NAMES[usize::from(which) % EXTRA_NAMES.len()]
                        .as_bytes()
                        .to_vec()
                };
                let v = input.byte();
                let value = if v & 0x80 != 0 {
                    input.bytes(16)
                } else {
                    EXTRA_VALUES[usize::from(v) % EXTRA_VALUES.len()]
                        .as_bytes()
                        .to_vec()
                };
                if command == "SUBSCRIBE" && name == b"id" {
                    asked
                        .subscriptions
                        .insert(String::from_utf8_lossy(&value).into_owned());
                }
                header(&mut bytes, &name, &value);
            }
            let body = if flags & 128 != 0 {
                let mut body = input.bytes(64);
                if input.byte() & 1 != 0 {
                    // Sometimes a long body, for the limits and the outboxes.
                    body = body.repeat(256);
                }
                body
            } else {
                Vec::new()
            };
            if flags & 32 != 0 {
                let length = match input.byte() % 4 {
                    0 => body.len().to_string(),
                    1 => body.len().saturating_sub(1).to_string(),
                    2 => (body.len() + 1).to_string(),
                    _ => "x".to_owned(),
                };
                header(&mut bytes, b"content-length", length.as_bytes());
            }
            bytes.push(b'\n');
            bytes.extend_from_slice(&body);
            if how & 2 == 0 {
                bytes.push(0);
            }
        }
    }
    let cut = if how & 4 != 0 && bytes.len() > 1 {
        1 + usize::from(input.byte()) % (bytes.len() - 1)
    } else {
        0
    };
    Outgoing { bytes, text, cut }
}

/// The CONNECT (or STOMP) frame the input's first byte describes.
fn connect_frame(input: &mut Input<'_>, asked: &mut Asked) -> Vec<u8> {
    let b = input.byte();
    let mut frame = String::from(if b & 1 == 0 { "CONNECT\n" } else { "STOMP\n" });
    if let Some(v) = VERSIONS[usize::from(b >> 1) & 7] {
        frame.push_str(&format!("accept-version:{v}\n"));
    }
    if b & 16 != 0 {
        let hb = input.pick(&HEARTBEATS);
        frame.push_str(&format!("heart-beat:{hb}\n"));
    }
    if b & 32 != 0 {
        frame.push_str("host:localhost\n");
    }
    if b & 64 != 0 {
        let login = input.pick(&LOGINS);
        frame.push_str(&format!("login:{login}\npasscode:guest\n"));
    }
    if b & 128 != 0 {
        *asked.receipts.entry("r-connect".into()).or_default() += 1;
        frame.push_str("receipt:r-connect\n");
    }
    frame.push_str("\n\0");
    frame.into_bytes()
}

/// The message (or its two fragments) carrying `frame`.
fn ws_message(frame: &Outgoing, n: usize) -> Vec<u8> {
    let opcode = if frame.text { 1 } else { 2 };
    let mask = [n as u8, 0x5a, 0xa5, (n >> 8) as u8];
    if frame.cut == 0 {
        return client_frame(true, opcode, &frame.bytes, mask);
    }
    let (a, b) = frame.bytes.split_at(frame.cut);
    let mut wire = client_frame(false, opcode, a, mask);
    wire.extend(client_frame(true, 0, b, mask));
    wire
}

/// Server frames `(fin, opcode, payload)`, or why they are not well-formed; with `partial`,
/// a frame still arriving at the end is left out rather than refused.
fn frames_of(mut wire: &[u8], partial: bool) -> Result<Vec<(bool, u8, Vec<u8>)>, String> {
    let mut out = Vec::new();
    while !wire.is_empty() {
        let cut = |what: &str| {
            if partial {
                Ok(None)
            } else {
                Err(format!("a cut {what}"))
            }
        };
        let [b0, b1, ..] = *wire else {
            return cut("frame head").map(|_: Option<()>| out);
        };
        if b0 & 0x70 != 0 || b1 & 0x80 != 0 {
            return Err(format!("extension bits or a mask: {b0:#x} {b1:#x}"));
        }
        let (len, at) = match b1 & 0x7f {
            126 => match wire.get(2..4) {
                Some(b) => (usize::from(u16::from_be_bytes([b[0], b[1]])), 4usize),
                None => return cut("16-bit length").map(|_: Option<()>| out),
            },
            127 => match wire.get(2..10) {
                Some(b) => {
                    let mut be = [0u8; 8];
                    be.copy_from_slice(b);
                    (u64::from_be_bytes(be) as usize, 10)
                }
                None => return cut("64-bit length").map(|_: Option<()>| out),
            },
            n => (usize::from(n), 2),
        };
        let Some(payload) = wire.get(at..at.saturating_add(len)) else {
            return cut("payload").map(|_: Option<()>| out);
        };
        out.push((b0 & 0x80 != 0, b0 & 0x0f, payload.to_vec()));
        wire = &wire[at + len..];
    }
    Ok(out)
}

/// The data messages `(text, payload)` of the output so far.
fn messages_of(wire: &[u8]) -> Result<Vec<(bool, Vec<u8>)>, String> {
    Ok(frames_of(wire, true)?
        .into_iter()
        .filter(|(_, opcode, _)| matches!(opcode, 1 | 2))
        .map(|(_, opcode, payload)| (opcode == 1, payload))
        .collect())
}

/// Checks the whole output of a session against what was asked.
fn check_output(output: &[u8], asked: &Asked) {
    let frames = frames_of(output, false).unwrap_or_else(|e| panic!("server output: {e}"));
    let mut closed = false;
    let mut errored = false;
    let mut connected = 0;
    let mut answered: BTreeMap<String, usize> = BTreeMap::new();
    let mut decoder = Decoder::new(big_limits());
    for (i, (fin, opcode, payload)) in frames.iter().enumerate() {
        assert!(fin, "a fragmented server frame");
        assert!(!closed, "a frame after the close frame");
        match opcode {
            0x8 => {
                closed = true;
                assert!(
                    payload.len() >= 2 || payload.is_empty(),
                    "a close frame with a one-byte body"
                );
                continue;
            }
            0x9 | 0xA => continue,
            0x1 | 0x2 => {}
            other => panic!("server opcode {other:#x}"),
        }
        assert!(!errored, "a message after an ERROR");
        if payload.iter().all(|b| matches!(b, b'\n' | b'\r')) {
            assert!(i > 0, "a heart-beat before CONNECTED");
            continue;
        }
        let mut buf = BytesMut::from(&payload[..]);
        let frame = match decoder.decode(&mut buf) {
            Ok(Some(Decoded::Frame(frame))) => frame,
            other => panic!("a message that is not one STOMP frame: {other:?}"),
        };
        assert!(
            buf.iter().all(|b| matches!(b, b'\n' | b'\r')),
            "a message holding more than one frame"
        );
        check_frame(
            &frame,
            i,
            &mut connected,
            &mut errored,
            &mut answered,
            asked,
        );
        if frame.command == Command::Connected {
            let version = match frame.get(names::VERSION) {
                Some("1.0") | None => Version::V1_0,
                Some("1.1") => Version::V1_1,
                _ => Version::V1_2,
            };
            decoder.set_version(version);
        }
    }
}

fn check_frame(
    frame: &Frame,
    i: usize,
    connected: &mut usize,
    errored: &mut bool,
    answered: &mut BTreeMap<String, usize>,
    asked: &Asked,
) {
    if i == 0 {
        assert!(
            matches!(frame.command, Command::Connected | Command::Error),
            "the first frame is {:?}",
            frame.command
        );
    }
    let mut answer = |id: &str| {
        let count = answered.entry(id.to_owned()).or_default();
        *count += 1;
        assert!(
            *count <= asked.receipts.get(id).copied().unwrap_or(0),
            "receipt {id:?} answered {count} times, asked {:?}",
            asked.receipts.get(id)
        );
    };
    match frame.command {
        Command::Connected => {
            *connected += 1;
            assert_eq!(*connected, 1, "CONNECTED twice");
        }
        Command::Error => {
            *errored = true;
            let message = frame.get(names::MESSAGE).unwrap_or_default();
            assert!(!message.is_empty(), "an ERROR without a message header");
            if let Some(id) = frame.get(names::RECEIPT_ID) {
                answer(id);
            }
        }
        Command::Receipt => {
            let id = frame
                .get(names::RECEIPT_ID)
                .expect("a RECEIPT has a receipt-id");
            answer(id);
        }
        Command::Message => {
            assert!(
                frame.get(names::DESTINATION).is_some(),
                "MESSAGE without destination"
            );
            assert!(
                frame.get(names::MESSAGE_ID).is_some(),
                "MESSAGE without message-id"
            );
            let subscription = frame.get(names::SUBSCRIPTION).unwrap_or_default();
            assert!(
                asked.subscriptions.contains(subscription),
                "MESSAGE for subscription {subscription:?}, never made"
            );
        }
        other => panic!("the server sent {other:?}"),
    }
}

/// Runs one session: writes `connect`, then each frame `next` gives (from the output so far)
/// until it gives none, letting the server answer between frames, reading the output all
/// along; then closes its side and reads to the end. Returns the output.
async fn session(
    server: &'static Server,
    connect: &[u8],
    mut next: impl FnMut(&[u8]) -> Option<Outgoing>,
) -> Vec<u8> {
    let (client, server_side) = tokio::io::duplex(64 * 1024);
    let task = tokio::spawn(stompede::fuzzing::ws_session(server, server_side));
    let (mut read, mut write) = tokio::io::split(client);
    let output = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let output = output.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n @ 1..) = read.read(&mut buf).await {
                let mut out = output.lock().unwrap_or_else(|e| e.into_inner());
                assert!(
                    out.len() + n <= MAX_OUTPUT,
                    "more than {MAX_OUTPUT} bytes of output"
                );
                out.extend_from_slice(&buf[..n]);
            }
        })
    };
    let mut n = 0usize;
    let mut wire = client_frame(true, 1, connect, [1, 2, 3, 4]);
    loop {
        if write.write_all(&wire).await.is_err() {
            break;
        }
        // Let the server act on the frame and answer before the next one.
        for _ in 0..16 {
            tokio::task::yield_now().await;
        }
        n += 1;
        let seen = output.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match next(&seen) {
            Some(frame) => wire = ws_message(&frame, n),
            None => break,
        }
    }
    let _ = write.shutdown().await;
    task.await.expect("the session task");
    reader.await.expect("the reader");
    let out = output.lock().unwrap_or_else(|e| e.into_inner()).clone();
    out
}

/// The most output one input may cause.
const MAX_OUTPUT: usize = 64 << 20;

/// How long one input may take before the session counts as hung.
const DEADLINE: Duration = Duration::from_secs(30);

/// Inputs run so far in this process.
static RUNS: AtomicU64 = AtomicU64::new(0);

/// A well-behaved client checked every this many inputs (and after each replayed file).
const CHECK_EVERY: u64 = 64;

/// The whole oracle on one fuzz input.
pub fn run(data: &[u8]) {
    run_session(data);
    if RUNS.fetch_add(1, Ordering::Relaxed) % CHECK_EVERY == 0 {
        well_behaved();
    }
}

/// One input's session and its checks, then the broker made clean for the next input.
pub fn run_session(data: &[u8]) {
    let env = env();
    let server = &env.server;
    let mut input = Input { data, at: 0 };
    let mut asked = Asked::default();
    let connect = connect_frame(&mut input, &mut asked);
    let asked = std::cell::RefCell::new(asked);
    let mut n = 0;
    let output = env.runtime.block_on(async {
        let driven = session(server, &connect, |seen| {
            if input.done() {
                return None;
            }
            n += 1;
            Some(next_frame(&mut input, &mut asked.borrow_mut(), seen, n))
        });
        tokio::time::timeout(DEADLINE, driven)
            .await
            .expect("the session ends")
    });
    if std::env::var_os("STOMPEDE_FUZZ_TRACE").is_some() {
        for (_, payload) in messages_of(&output).unwrap_or_default() {
            eprintln!("<<< {}", String::from_utf8_lossy(&payload).escape_debug());
        }
    }
    check_output(&output, &asked.borrow());
    env.runtime.block_on(async {
        // The session is gone from the broker.
        for _ in 0..1000 {
            if server.broker().session_count() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(
            server.broker().session_count(),
            0,
            "a session outlived its connection"
        );
        // The next input starts from empty queues.
        for queue in server.broker().queue_stats() {
            server.broker().delete_queue(&queue.name);
        }
    });
}

/// A well-behaved client: subscribes to a queue, sends to it with a receipt, gets its message
/// and its receipts, disconnects.
pub fn well_behaved() {
    let env = env();
    let server = &env.server;
    let n = RUNS.load(Ordering::Relaxed);
    let queue = format!("/queue/well-behaved-{n}");
    let frames = [
        format!("SUBSCRIBE\nid:w\ndestination:{queue}\nreceipt:w-sub\n\n\0"),
        format!("SEND\ndestination:{queue}\nreceipt:w-send\n\nstill serving\0"),
    ];
    let mut next = frames.iter();
    let output = env.runtime.block_on(async {
        let driven = session(
            server,
            b"CONNECT\naccept-version:1.2\nhost:localhost\n\n\0",
            |seen| {
                let frame = next.next()?;
                let _ = seen;
                Some(Outgoing {
                    bytes: frame.as_bytes().to_vec(),
                    text: true,
                    cut: 0,
                })
            },
        );
        tokio::time::timeout(DEADLINE, driven)
            .await
            .expect("the well-behaved session ends")
    });
    let frames: Vec<Frame> = messages_of(&output)
        .expect("well-formed output")
        .into_iter()
        .filter_map(|(_, payload)| {
            let mut buf = BytesMut::from(&payload[..]);
            match Decoder::new(big_limits()).decode(&mut buf) {
                Ok(Some(Decoded::Frame(frame))) => Some(frame),
                _ => None,
            }
        })
        .collect();
    let commands: Vec<Command> = frames.iter().map(|f| f.command).collect();
    assert_eq!(commands.first(), Some(&Command::Connected), "{frames:?}");
    let receipts: BTreeSet<&str> = frames
        .iter()
        .filter_map(|f| f.get(names::RECEIPT_ID))
        .collect();
    assert!(
        receipts.contains("w-sub") && receipts.contains("w-send"),
        "{frames:?}"
    );
    assert!(
        frames
            .iter()
            .any(|f| f.command == Command::Message && &f.body[..] == b"still serving"),
        "the well-behaved client did not get its message: {frames:?}"
    );
    env.runtime.block_on(async {
        server.broker().delete_queue(&queue);
    });
}
