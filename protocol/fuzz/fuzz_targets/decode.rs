//! Fuzz target: the streaming decoder on arbitrary bytes, arbitrary limits, arbitrary splits.
//! The oracle is in `../harness.rs`, shared with `protocol/tests/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness.rs"]
mod harness;

fuzz_target!(|data: &[u8]| {
    harness::run(data);
});
