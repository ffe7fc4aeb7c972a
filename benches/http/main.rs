//! The HTTP API against the release binary, from this separate process over loopback:
//!
//! - durable `POST /api/jobs` per second (64 callers, each awaiting its `202`), next to the same
//!   run's STOMP submissions (64 callers, each awaiting its RECEIPT): the jobs are delayed an
//!   hour, so none runs meanwhile and both measure acceptance alone;
//! - a 1 GiB raw upload (`POST /api/uploads`): MB/s next to `cat file > /dev/null` and
//!   `sha256sum file` on the same file, and the server's RSS before, after and at its peak.
//!
//! ```text
//! cargo build --release && cargo bench --bench http -- [--spawn target/release/stompede]
//!     [--submissions 20000] [--upload-mib 1024]
//! ```
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "../common/args.rs"]
mod args;
use args::number as arg;

#[path = "../common/submit.rs"]
mod submit;

/// The binary under test, from `--spawn` or `target/release/stompede`.
fn binary() -> PathBuf {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .iter()
        .position(|a| a == "--spawn")
        .and_then(|i| args.get(i + 1))
        .map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/stompede"),
            PathBuf::from,
        );
    assert!(
        path.exists(),
        "{} is missing: run cargo build --release first",
        path.display()
    );
    path
}

/// A running `stompede serve` in open mode on loopback.
struct Broker {
    child: Child,
    stomp: SocketAddr,
    http: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn() -> Broker {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("stompede.toml");
    std::fs::write(
        &config,
        "job-submissions-per-second = 10000000\n\
         job-max-queued-per-user = 10000000\n\
         max-upload-bytes = 4294967296\n",
    )
    .unwrap();
    let mut child = Command::new(binary())
        .args(["serve", "--stomp", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .env("STOMPEDE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let listening: serde_json::Value = serde_json::from_str(&line).unwrap();
    let addr = |key: &str| listening[key].as_str().unwrap().parse().unwrap();
    Broker {
        stomp: addr("stomp"),
        http: addr("http"),
        child,
        _dir: dir,
    }
}

/// CPU time (user + system) process `pid` has used, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name (which may hold spaces) in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // /proc counts in USER_HZ, which Linux fixes at 100 whatever the kernel's own tick.
    ticks / 100.0
}

/// `VmRSS` and `VmHWM` of process `pid`, in MiB.
fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Reads an HTTP/1.1 answer's head and `Content-Length` body; its status.
async fn answer(stream: &mut TcpStream, buf: &mut Vec<u8>) -> u16 {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + length {
                let status = head[9..12].parse().unwrap();
                buf.drain(..end + 4 + length);
                return status;
            }
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// One keep-alive connection posting `count` delayed one-chunk `demo` jobs as `user`.
async fn poster(addr: SocketAddr, user: String, count: usize) {
    use base64::Engine;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:x"));
    let body = r#"{"type":"demo","params":{"chunks":1},"delay":3600000}"#;
    let request = format!(
        "POST /api/jobs HTTP/1.1\r\nHost: bench\r\nAuthorization: Basic {auth}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut buf = Vec::new();
    for _ in 0..count {
        stream.write_all(request.as_bytes()).await.unwrap();
        assert_eq!(answer(&mut stream, &mut buf).await, 202);
    }
}

async fn posts(addr: SocketAddr, total: usize, clients: usize) -> f64 {
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| tokio::spawn(poster(addr, format!("user{c}"), total / clients)))
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (total / clients * clients) as f64 / started.elapsed().as_secs_f64()
}

/// Seconds the shell command `script` takes, with `$0` standing for `file`.
fn timed(script: &str, file: &Path) -> f64 {
    let started = Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(file)
        .status()
        .unwrap();
    assert!(status.success());
    started.elapsed().as_secs_f64()
}

/// Streams `file` as a raw upload; seconds until the `201`. The client sends from a thread of
/// its own with `std::io::copy` (sendfile on Linux), as an efficient client would, so that the
/// measure is the server's.
async fn upload(addr: SocketAddr, file: &Path) -> f64 {
    let file = file.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write as _};
        let size = std::fs::metadata(&file).unwrap().len();
        let started = Instant::now();
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        let head = format!(
            "POST /api/uploads HTTP/1.1\r\nHost: bench\r\nAuthorization: Basic dXBsb2FkZXI6eA==\r\n\
             Content-Type: application/octet-stream\r\n\
             Content-Disposition: attachment; filename=\"big.bin\"\r\nContent-Length: {size}\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).unwrap();
        let mut source = std::fs::File::open(&file).unwrap();
        std::io::copy(&mut source, &mut stream).unwrap();
        let mut answer = [0u8; 4096];
        let n = stream.read(&mut answer).unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
        started.elapsed().as_secs_f64()
    })
    .await
    .unwrap()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let n = arg("--submissions", 20_000);
        let broker = spawn();
        // Warm both paths (connections, the store's first segments) before measuring.
        posts(broker.http, 640, 64).await;
        submit::submissions(broker.stomp, "demo", 640, 64, Some(3_600_000)).await;
        let pid = broker.child.id();
        let cpu = cpu_seconds(pid);
        let http = posts(broker.http, n, 64).await;
        let http_cpu = (cpu_seconds(pid) - cpu) * 1e6 / n as f64;
        let cpu = cpu_seconds(pid);
        let stomp = submit::submissions(broker.stomp, "demo", n, 64, Some(3_600_000)).await;
        let stomp_cpu = (cpu_seconds(pid) - cpu) * 1e6 / n as f64;
        println!(
            "| durable POST /api/jobs per s (64 callers, 202 awaited each) | {http:.0} | server CPU {http_cpu:.1} µs each |"
        );
        println!(
            "| durable STOMP submissions per s, same run (64 callers, RECEIPT awaited) | {stomp:.0} | server CPU {stomp_cpu:.1} µs each |"
        );
        println!(
            "{{\"bench\":\"api_jobs\",\"http_per_s\":{http:.0},\"stomp_per_s\":{stomp:.0},\"http_cpu_us\":{http_cpu:.1},\"stomp_cpu_us\":{stomp_cpu:.1}}}"
        );
        drop(broker);

        let mib = arg("--upload-mib", 1024);
        let work = tempfile::tempdir().unwrap();
        let file = work.path().join("big.bin");
        {
            let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
            let mut block = vec![0u8; 1 << 20];
            for i in 0..mib {
                for (j, byte) in block.iter_mut().enumerate() {
                    *byte = (i * 31 + j * 7) as u8;
                }
                out.write_all(&block).unwrap();
            }
        }
        let bytes = (mib as f64) * 1024.0 * 1024.0;
        let cat = timed("cat \"$0\" > /dev/null", &file);
        let sha = timed("sha256sum \"$0\" > /dev/null", &file);
        // What the disk takes: the same bytes copied to a new file and flushed, as the server
        // must.
        let copy = work.path().join("copy.bin");
        let script = format!("dd bs=1M conv=fsync status=none if=\"$0\" of='{}'", copy.display());
        let write = timed(&script, &file);
        std::fs::remove_file(&copy).unwrap();
        let broker = spawn();
        let pid = broker.child.id();
        let (idle, _) = memory(pid);
        let took = upload(broker.http, &file).await;
        let (after, peak) = memory(pid);
        let rate = |seconds: f64| bytes / seconds / 1e6;
        println!("| `cat` {mib} MiB > /dev/null | {:.0} MB/s |", rate(cat));
        println!("| `sha256sum` {mib} MiB | {:.0} MB/s |", rate(sha));
        println!("| `dd conv=fsync` {mib} MiB to a new file | {:.0} MB/s |", rate(write));
        println!(
            "| raw upload of {mib} MiB (stored, hashed, fsynced) | {:.0} MB/s ({:.0}% of dd's write) |",
            rate(took),
            100.0 * write / took
        );
        println!(
            "| server RSS idle / after / peak | {idle:.1} / {after:.1} / {peak:.1} MiB |"
        );
        println!(
            "{{\"bench\":\"upload\",\"mib\":{mib},\"mb_s\":{:.0},\"cat_mb_s\":{:.0},\"sha256sum_mb_s\":{:.0},\"dd_write_mb_s\":{:.0},\"rss_idle_mib\":{idle:.1},\"rss_peak_mib\":{peak:.1}}}",
            rate(took),
            rate(cat),
            rate(sha),
            rate(write)
        );
    });
}
