//! A fixed amount of decoding work, for instruction counting (`valgrind --tool=callgrind`) and
//! sampling profiles, where criterion's own machinery would blur the figures. Decodes the
//! benchmark's small frame (a SEND with 5 headers and a 256-byte body) `FRAMES` times from one
//! buffer, dropping each frame as a server would once it has routed it.
//!
//! ```sh
//! cargo build --profile bench -p stompede-protocol --example decode_loop
//! valgrind --tool=callgrind --toggle-collect='*decode_all*' target/release/examples/decode_loop 10000
//! target/release/examples/decode_loop 100 20000   # the best of 20,000 timed runs, in ns a frame
//! ```
//!
//! With a second argument it times that many runs over a copy of the buffer (cache-resident for
//! 100 frames) and prints the fastest: on a shared machine the minimum is far steadier than a
//! mean, which makes it usable to compare two builds run one after the other.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use stompede_protocol::{encode, Command, Decoded, Decoder, Frame, Limits, Version};

fn main() {
    let frames: usize = std::env::args()
        .nth(1)
        .map_or(10_000, |n| n.parse().unwrap());
    let frame = Frame::new(Command::Send)
        .header("destination", "/queue/orders.eu-west")
        .header("content-type", "application/json")
        .header("receipt", "r-000123")
        .header("persistent", "true")
        .header("correlation-id", "4f6c1c5e-9d2a-4b0e-8d7e-2c1f0a9b3e77")
        .body(Bytes::from(vec![b'x'; 256]));
    let mut buf = BytesMut::new();
    for _ in 0..frames {
        encode(&frame, Version::V1_2, &mut buf);
    }
    let Some(runs) = std::env::args().nth(2).map(|n| n.parse::<usize>().unwrap()) else {
        assert_eq!(decode_all(&mut buf), frames);
        return;
    };
    let wire = buf.freeze();
    let mut best = Duration::MAX;
    for _ in 0..runs {
        let mut buf = BytesMut::from(&wire[..]);
        let started = Instant::now();
        let decoded = decode_all(&mut buf);
        best = best.min(started.elapsed());
        assert_eq!(decoded, frames);
    }
    let ns = best.as_secs_f64() * 1e9 / frames as f64;
    println!(
        "{ns:.1} ns a frame ({:.2} M frames/s), best of {runs}",
        1e3 / ns
    );
}

/// The measured part: `--toggle-collect='*decode_all*'` counts only this.
#[inline(never)]
fn decode_all(buf: &mut BytesMut) -> usize {
    let mut decoder = Decoder::new(Limits::default());
    decoder.set_version(Version::V1_2);
    let mut decoded = 0;
    while let Some(item) = decoder.decode(buf).unwrap() {
        if let Decoded::Frame(frame) = item {
            black_box(&frame);
            decoded += 1;
        }
    }
    decoded
}
