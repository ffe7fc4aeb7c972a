//! Codec throughput: decode and encode of small frames (frames/s) and of 1 MiB bodies (bytes/s),
//! on one core.
//!
//! Run with `cargo bench -p stompede-protocol --bench codec`.
#![allow(clippy::unwrap_used)]
// `criterion_group!` defines an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use stompede_protocol::{encode, Command, Decoded, Decoder, Frame, Limits, Version};

/// Small frames per decoded buffer.
const SMALL_FRAMES: usize = 10_000;
/// Small frames per cache-resident buffer.
const HOT_FRAMES: usize = 100;
/// The large body size.
const LARGE: usize = 1024 * 1024;

/// A SEND with 5 headers and a 256-byte body (the encoder adds `content-length`, a 6th line).
fn small_frame() -> Frame {
    Frame::new(Command::Send)
        .header("destination", "/queue/orders.eu-west")
        .header("content-type", "application/json")
        .header("receipt", "r-000123")
        .header("persistent", "true")
        .header("correlation-id", "4f6c1c5e-9d2a-4b0e-8d7e-2c1f0a9b3e77")
        .body(Bytes::from(vec![b'x'; 256]))
}

fn large_frame() -> Frame {
    // A body with no NUL, so it can also be sent without content-length.
    let body: Vec<u8> = (0..LARGE).map(|i| b'a' + (i % 26) as u8).collect();
    Frame::new(Command::Send)
        .header("destination", "/queue/big")
        .body(body)
}

/// Decodes every frame in `buf`, returning how many.
fn decode_all(decoder: &mut Decoder, buf: &mut BytesMut) -> usize {
    let mut frames = 0;
    while let Some(item) = decoder.decode(buf).unwrap() {
        if let Decoded::Frame(frame) = item {
            black_box(&frame);
            frames += 1;
        }
    }
    frames
}

fn new_decoder() -> Decoder {
    let mut decoder = Decoder::new(Limits::default());
    decoder.set_version(Version::V1_2);
    decoder
}

fn bench_decode(c: &mut Criterion) {
    let mut small = BytesMut::new();
    let frame = small_frame();
    for _ in 0..SMALL_FRAMES {
        encode(&frame, Version::V1_2, &mut small);
    }
    let small = small.freeze();
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(SMALL_FRAMES as u64));
    group.bench_function("small_frames_x10000", |b| {
        // `_ref`: the input buffer is freed outside the timing (a server reuses its buffer).
        b.iter_batched_ref(
            || BytesMut::from(&small[..]),
            |buf| {
                let mut decoder = new_decoder();
                assert_eq!(decode_all(&mut decoder, buf), SMALL_FRAMES);
            },
            BatchSize::LargeInput,
        );
    });
    // 100 frames (38 KB): a buffer that stays in the CPU cache, as a socket read buffer does.
    let hot = small.slice(..small.len() / (SMALL_FRAMES / HOT_FRAMES));
    group.throughput(Throughput::Elements(HOT_FRAMES as u64));
    group.bench_function("small_frames_x100_cache_hot", |b| {
        b.iter_batched_ref(
            || BytesMut::from(&hot[..]),
            |buf| {
                let mut decoder = new_decoder();
                assert_eq!(decode_all(&mut decoder, buf), HOT_FRAMES);
            },
            BatchSize::SmallInput,
        );
    });
    group.throughput(Throughput::Elements(SMALL_FRAMES as u64));
    // 10,000 frames in 4 KiB reads, as off a socket (includes copying into the read buffer).
    group.bench_function("small_frames_x10000_4k_reads", |b| {
        b.iter(|| {
            let mut decoder = new_decoder();
            let mut buf = BytesMut::with_capacity(8192);
            let mut frames = 0;
            for chunk in small.chunks(4096) {
                buf.extend_from_slice(chunk);
                frames += decode_all(&mut decoder, &mut buf);
            }
            assert_eq!(frames, SMALL_FRAMES);
        });
    });

    let large = large_frame();
    let with_length = stompede_protocol::to_bytes(&large, Version::V1_2);
    let mut without_length = BytesMut::new();
    without_length.extend_from_slice(b"SEND\ndestination:/queue/big\n\n");
    without_length.extend_from_slice(&large.body);
    without_length.extend_from_slice(b"\0");
    let without_length = without_length.freeze();
    group.throughput(Throughput::Bytes(with_length.len() as u64));
    group.bench_function("large_1MiB_content_length", |b| {
        b.iter_batched_ref(
            || BytesMut::from(&with_length[..]),
            |buf| assert_eq!(decode_all(&mut new_decoder(), buf), 1),
            BatchSize::LargeInput,
        );
    });
    group.throughput(Throughput::Bytes(without_length.len() as u64));
    group.bench_function("large_1MiB_nul_scan", |b| {
        b.iter_batched_ref(
            || BytesMut::from(&without_length[..]),
            |buf| assert_eq!(decode_all(&mut new_decoder(), buf), 1),
            BatchSize::LargeInput,
        );
    });
    // In 64 KiB reads: the NUL scan resumes where it stopped, and every read is copied in.
    for (name, wire) in [
        ("large_1MiB_content_length_64k_reads", &with_length),
        ("large_1MiB_nul_scan_64k_reads", &without_length),
    ] {
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut decoder = new_decoder();
                let mut buf = BytesMut::with_capacity(wire.len() + 1);
                let mut frames = 0;
                for chunk in wire.chunks(64 * 1024) {
                    buf.extend_from_slice(chunk);
                    frames += decode_all(&mut decoder, &mut buf);
                }
                assert_eq!(frames, 1);
            });
        });
    }
    group.finish();
}

fn bench_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    let frame = small_frame();
    let mut dst = BytesMut::with_capacity(SMALL_FRAMES * 512);
    group.throughput(Throughput::Elements(SMALL_FRAMES as u64));
    group.bench_function("small_frames_x10000", |b| {
        b.iter(|| {
            dst.clear();
            for _ in 0..SMALL_FRAMES {
                encode(black_box(&frame), Version::V1_2, &mut dst);
            }
            black_box(&dst);
        });
    });
    let large = large_frame();
    let mut dst = BytesMut::with_capacity(LARGE + 1024);
    group.throughput(Throughput::Bytes(LARGE as u64));
    group.bench_function("large_1MiB", |b| {
        b.iter(|| {
            dst.clear();
            encode(black_box(&large), Version::V1_2, &mut dst);
            black_box(&dst);
        });
    });
    group.finish();
}

criterion_group!(benches, bench_decode, bench_encode);
criterion_main!(benches);
