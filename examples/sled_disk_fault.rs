//! What sled 0.34 does when its disk fails under it: the measurement behind the store's
//! supervised reopen (`src/store/supervise.rs`, RELIABILITY.md "Disk full and read-only data
//! directory").
//!
//! ```text
//! cargo run --example sled_disk_fault -- DIR [--fdatasync]
//! ```
//!
//! opens a sled database in `DIR/db` and inserts 1,000-byte values, each flushed (and, with
//! `--fdatasync`, the log file then `fdatasync`ed as the store's committer does), until a
//! write or a flush fails; prints the error; then waits for a line on standard input (fix the
//! disk first: delete a filler file, mount the file system again), tries five more inserts and
//! flushes on the same `Db`, drops it, opens it again, and checks that every value flushed
//! before the fault is there, intact. RELIABILITY.md gives the shell lines that make the full
//! tmpfs and the aborted ext4 in a mount namespace.
#![forbid(unsafe_code)]

use std::io::BufRead;
use std::time::Instant;

/// Values written at most: far more than a small test file system holds.
const MAX_KEYS: u64 = 1_000_000;

fn value_for(key: u64) -> Vec<u8> {
    vec![key.to_be_bytes()[7]; 1000]
}

fn open(dir: &std::path::Path) -> sled::Result<sled::Db> {
    sled::Config::new()
        .path(dir.join("db"))
        .flush_every_ms(Some(50))
        .open()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: sled_disk_fault DIR")?,
    );
    let fdatasync = std::env::args().nth(2).as_deref() == Some("--fdatasync");
    let db = open(&dir)?;
    // sled's flush ends with sync_file_range(2) on Linux, which leaves a grown file's new
    // extents and size to the next journal commit; fdatasync(2) on any descriptor of the log
    // file makes them durable too.
    let log = std::fs::File::open(dir.join("db").join("db"))?;
    let start = db.len() as u64;
    let mut flushed = start;
    for key in start..MAX_KEYS {
        let written = db
            .insert(key.to_be_bytes(), value_for(key))
            .and_then(|_| db.flush())
            .and_then(|_| {
                if fdatasync {
                    log.sync_data()?;
                }
                Ok(0)
            });
        match written {
            Ok(_) => flushed = key + 1,
            Err(error) => {
                println!("key {key}: {error:?}");
                break;
            }
        }
    }
    println!("{flushed} values flushed; fix the disk, then press enter");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    for attempt in 0..5 {
        let key = flushed;
        let insert = db.insert(key.to_be_bytes(), value_for(key)).map(|_| ());
        let flush = db.flush().map(|_| ());
        let read = db.get(0u64.to_be_bytes()).map(|_| ());
        println!("same Db, attempt {attempt}: insert {insert:?}, flush {flush:?}, read {read:?}");
        if insert.is_ok() && flush.is_ok() {
            flushed += 1;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let dropping = Instant::now();
    drop(db);
    println!("dropped in {:?}", dropping.elapsed());
    let db = open(&dir)?;
    let mut intact = 0u64;
    let mut damaged = 0u64;
    for entry in db.iter() {
        let (key, value) = entry?;
        let key = u64::from_be_bytes(key.as_ref().try_into()?);
        if *value == *value_for(key) {
            intact += 1;
        } else {
            damaged += 1;
        }
    }
    let key = flushed;
    let insert = db.insert(key.to_be_bytes(), value_for(key)).map(|_| ());
    let flush = db.flush().map(|_| ());
    println!(
        "reopened: {intact} intact values, {damaged} damaged, {flushed} flushed before; \
         insert {insert:?}, flush {flush:?}"
    );
    Ok(())
}
