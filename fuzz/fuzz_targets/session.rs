//! Fuzz target, a STOMP session (CONNECT, then any frames): see `../harness/session.rs` for what the input holds and what is checked (the same
//! oracle replays the corpus in `tests/fuzz_corpus.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness/session.rs"]
mod harness;

fuzz_target!(|data: &[u8]| {
    harness::run(data);
});
