//! A fixed amount of decoding work, for instruction counting (`valgrind --tool=callgrind`) and
//! sampling profiles, where criterion's own machinery would blur the figures. Decodes the
//! benchmark's small frame (a SEND with 5 headers and a 256-byte body) `FRAMES` times from one
//! buffer, dropping each frame as a server would once it has routed it.
//!
//! ```sh
//! cargo build --profile bench -p stompede-protocol --example decode_loop
//! valgrind --tool=callgrind --toggle-collect='*decode_all*' target/release/examples/decode_loop 10000
//! ```
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

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
    assert_eq!(decode_all(&mut buf), frames);
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
