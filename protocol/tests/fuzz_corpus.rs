//! Replays every input of the fuzz corpus (`protocol/fuzz/corpus/decode/`) through the decoder
//! under the fuzz oracle (`protocol/fuzz/harness.rs`): as the fuzzer read it, then with other
//! read sizes, every version, default limits and the end-of-message leniency. Asserts no panic,
//! that decoding terminates, and the oracle's other properties. Runs in plain `cargo test`.
#![allow(clippy::unwrap_used)]

#[path = "../fuzz/corpus.rs"]
mod corpus;
#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::Path;
use std::time::{Duration, Instant};

use stompede_protocol::{Limits, Version};

fn corpus() -> Vec<(String, Vec<u8>)> {
    corpus::files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode"))
}

#[test]
fn corpus_is_there() {
    assert!(corpus().len() >= 12, "the seed corpus is missing");
}

#[test]
fn corpus_replays_without_panic() {
    let started = Instant::now();
    for (name, data) in corpus() {
        let one = Instant::now();
        // As the fuzzer ran it.
        harness::run(&data);
        // The stream part under other settings.
        let (config, stream) = harness::config(&data);
        for version in Version::ALL {
            for (max_chunk, seed) in [(0, 0), (1, 0), (2, 7), (7, 1), (64, 3), (255, 9)] {
                for end_of_message in [false, true] {
                    let config = harness::Config {
                        version,
                        end_of_message,
                        max_chunk,
                        seed,
                        ..config
                    };
                    harness::run_with(&config, stream);
                    harness::run_with(
                        &harness::Config {
                            limits: Limits::default(),
                            ..config
                        },
                        stream,
                    );
                }
            }
        }
        assert!(
            one.elapsed() < Duration::from_secs(10),
            "{name} took {:?}",
            one.elapsed()
        );
    }
    eprintln!("corpus replayed in {:?}", started.elapsed());
}
