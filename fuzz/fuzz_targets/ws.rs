//! Fuzz target, the WebSocket framing: see `../harness/ws.rs` for what the input holds and what is checked (the same
//! oracle replays the corpus in `tests/fuzz_corpus.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness/ws.rs"]
mod harness;

fuzz_target!(|data: &[u8]| {
    harness::run(data);
});
