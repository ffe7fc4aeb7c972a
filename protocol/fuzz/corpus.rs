//! The inputs of one fuzz corpus directory, sorted by file name: read by the corpus replays of
//! both crates (`protocol/tests/fuzz_corpus.rs`, `tests/fuzz_corpus.rs`).

use std::path::Path;

/// Every file in `dir`, as (name, contents), in name order; panics, naming the directory, when
/// it cannot be read (a test without its corpus must fail, not pass on nothing).
pub fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let data = std::fs::read(&path).unwrap();
            (name, data)
        })
        .collect();
    files.sort();
    files
}
