//! Replays every input of the fuzz corpora (`fuzz/corpus/{ws,session,csv}/`) under the fuzz
//! targets' own oracles (`fuzz/harness/`), so that plain `cargo test` checks each file with the
//! assertions the fuzzer made: the WebSocket framing (as the fuzzer read it, then in other read
//! sizes, with the broker's default limit and leniency), a session per file against one
//! in-process broker with a well-behaved client every 16 files, and the CSV reader.
#![allow(clippy::unwrap_used)]

#[path = "../protocol/fuzz/corpus.rs"]
mod corpus;
#[path = "../fuzz/harness/csv.rs"]
mod csv;
#[path = "../fuzz/harness/session.rs"]
mod session;
#[path = "../fuzz/harness/ws.rs"]
mod ws;

use std::path::Path;
use std::time::{Duration, Instant};

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let files = corpus::files(&dir);
    assert!(files.len() >= 10, "the {target} corpus is missing");
    files
}

/// Runs `check` on every file of `target`'s corpus, each within a time limit.
fn replay(target: &str, mut check: impl FnMut(&[u8])) {
    let started = Instant::now();
    for (name, data) in corpus(target) {
        let one = Instant::now();
        check(&data);
        assert!(
            one.elapsed() < Duration::from_secs(20),
            "{target}/{name} took {:?}",
            one.elapsed()
        );
    }
    eprintln!("{target} corpus replayed in {:?}", started.elapsed());
}

#[test]
fn websocket_corpus_replays_under_the_oracle() {
    replay("ws", |data| {
        ws::run(data);
        let (config, stream) = ws::config(data);
        for (max_chunk, seed) in [(0, 0), (1, 0), (3, 7), (64, 1)] {
            for stomp in [false, true] {
                let config = ws::Config {
                    stomp,
                    max_chunk,
                    seed,
                    ..config
                };
                ws::run_with(&config, stream);
                ws::run_with(
                    &ws::Config {
                        max_message: ws::default_limit(),
                        lenient: true,
                        ..config
                    },
                    stream,
                );
            }
        }
    });
}

#[test]
fn session_corpus_replays_under_the_oracle() {
    let mut n = 0;
    replay("session", |data| {
        session::run_session(data);
        if n % 16 == 0 {
            session::well_behaved();
        }
        n += 1;
    });
}

#[test]
fn csv_corpus_replays_under_the_oracle() {
    replay("csv", csv::run);
}
