//! What the memory-budget benches (`reconcile`, `extract`, `ocr`) share: a real `stompede
//! serve` process with a config of their own, a STOMP client over TCP, and the server's memory
//! read from `/proc`, alone and with the programs it runs (tesseract, poppler's).

use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use serde_json::Value;
use stompede::protocol::{encode, Command, Decoded, Decoder, Frame, Limits, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A `/proc/<pid>/status` field in MiB.
pub fn status_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// A `/proc/<pid>/status` field in KiB, `None` once the process is gone.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Every process below `root` (its children, theirs, and so on), from `/proc/<pid>/stat`.
fn descendants(root: u32) -> Vec<u32> {
    let mut parents: HashMap<u32, Vec<u32>> = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The name, in parentheses, may hold spaces: the fields after it are fixed.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parents.entry(ppid).or_default().push(pid);
        }
    }
    let mut found = Vec::new();
    let mut seen = HashSet::new();
    let mut next = vec![root];
    // Bounded by the processes listed: each is visited once.
    while let Some(pid) = next.pop() {
        for &child in parents.get(&pid).map_or(&[][..], Vec::as_slice) {
            if seen.insert(child) {
                found.push(child);
                next.push(child);
            }
        }
    }
    found
}

/// The peak memory of a process with everything it runs, sampled every 10 ms until stopped:
/// the process's resident size plus, for each program it runs at that moment, that program's
/// own peak so far (`VmHWM`), so that a child's peak between two samples is not missed (an
/// upper bound when two children peak at different moments).
pub struct TreePeak {
    stop: Arc<AtomicBool>,
    sampler: std::thread::JoinHandle<u64>,
}

impl TreePeak {
    /// Starts sampling `root`.
    pub fn start(root: u32) -> TreePeak {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let sampler = std::thread::spawn(move || {
            let mut peak = 0;
            while !stopped.load(Ordering::Relaxed) {
                let own = status_kib(root, "VmRSS:").unwrap_or(0);
                let children: u64 = descendants(root)
                    .into_iter()
                    .filter_map(|pid| status_kib(pid, "VmHWM:"))
                    .sum();
                peak = peak.max(own + children);
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        });
        TreePeak { stop, sampler }
    }

    /// Stops sampling; the peak in MiB.
    pub fn stop(self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        self.sampler.join().unwrap_or(0) as f64 / 1024.0
    }
}

/// The 1-minute load average.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default()
}

/// A `stompede serve` process (STOMP over TCP only), killed when dropped.
pub struct Server {
    child: std::process::Child,
    /// Its STOMP address.
    pub stomp: SocketAddr,
}

impl Server {
    /// Starts this build's binary, or `STOMPEDE_BIN` (an older commit's, to compare), on
    /// `data` with `config` as its TOML config; logs at `RUST_LOG` (default warn).
    pub fn start(data: &Path, config: &str) -> Server {
        let path = data.join("stompede.toml");
        std::fs::write(&path, config).unwrap();
        let binary =
            std::env::var("STOMPEDE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_stompede").into());
        let mut child = std::process::Command::new(binary)
            .args(["serve", "--stomp", "127.0.0.1:0", "--http", "off"])
            .arg("--config")
            .arg(&path)
            .arg("--data-dir")
            .arg(data)
            .args(["--log", &std::env::var("RUST_LOG").unwrap_or("warn".into())])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let listening: Value = serde_json::from_str(&line).unwrap();
        let stomp = listening["stomp"].as_str().unwrap().parse().unwrap();
        Server { child, stomp }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A STOMP 1.2 connection over TCP, taking bodies as large as a long document's result.
pub struct Stomp {
    stream: TcpStream,
    decoder: Decoder,
    buf: BytesMut,
}

impl Stomp {
    /// Connects as `login`.
    pub async fn connect(addr: SocketAddr, login: &str) -> Stomp {
        let stream = TcpStream::connect(addr).await.unwrap();
        let limits = Limits {
            max_body_len: 1 << 30,
            ..Limits::default()
        };
        let mut stomp = Stomp {
            stream,
            decoder: Decoder::new(limits),
            buf: BytesMut::new(),
        };
        stomp
            .send(
                Frame::new(Command::Connect)
                    .header("accept-version", "1.2")
                    .header("login", login),
            )
            .await;
        let connected = stomp.frame().await;
        assert_eq!(connected.command, Command::Connected, "{connected:?}");
        stomp.decoder.set_version(Version::V1_2);
        stomp
    }

    /// Sends `frame`.
    pub async fn send(&mut self, frame: Frame) {
        let mut out = BytesMut::new();
        encode(&frame, Version::V1_2, &mut out);
        self.stream.write_all(&out).await.unwrap();
    }

    /// The next frame.
    pub async fn frame(&mut self) -> Frame {
        loop {
            if let Some(Decoded::Frame(f)) = self.decoder.decode(&mut self.buf).unwrap() {
                return f;
            }
            assert!(
                self.stream.read_buf(&mut self.buf).await.unwrap() > 0,
                "closed"
            );
        }
    }
}

/// What one run measured.
pub struct Run {
    /// From the first submission to the last completion, in seconds.
    pub wall: f64,
    /// The server's resident size just before the submissions (`VmRSS`).
    pub idle_mib: f64,
    /// Its peak once every job completed (`VmHWM`).
    pub peak_mib: f64,
    /// The peak of the server with the programs it ran, sampled ([`TreePeak`]).
    #[allow(dead_code)] // read by the benches whose jobs run programs (`ocr`)
    pub tree_peak_mib: f64,
    /// Whether a job reported waiting for memory.
    pub waited: bool,
    /// The jobs' results, in the order they completed.
    pub results: Vec<Value>,
    /// The server's data directory, kept while the run is, with the jobs' result files.
    #[allow(dead_code)] // read by the benches that check result files (`ocr`)
    pub data: tempfile::TempDir,
}

/// Starts a server with `config` on a fresh data directory, submits `jobs` jobs of
/// `job_type` with `params` at once, and waits for them all (none may fail).
pub async fn run(config: &str, job_type: &str, params: &Value, jobs: usize) -> Run {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), config);
    let mut client = Stomp::connect(server.stomp, "bench").await;
    client
        .send(
            Frame::new(Command::Subscribe)
                .header("id", "p")
                .header("destination", "/user/queue/progress"),
        )
        .await;
    // Let the server settle before its idle size is taken.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_mib = status_mib(server.pid(), "VmRSS:");
    let tree = TreePeak::start(server.pid());
    let started = Instant::now();
    for i in 0..jobs {
        client
            .send(
                Frame::new(Command::Send)
                    .header("destination", "/app/jobs")
                    .header("job-type", job_type)
                    .header("receipt", format!("r{i}"))
                    .body(params.to_string()),
            )
            .await;
    }
    let mut results = Vec::new();
    let mut waited = false;
    while results.len() < jobs {
        let frame = client.frame().await;
        if frame.command != Command::Message {
            continue;
        }
        let body: Value = serde_json::from_slice(&frame.body).unwrap();
        match body["event"].as_str() {
            Some("JOB_COMPLETED") => results.push(body["result"].clone()),
            Some("JOB_FAILED" | "JOB_CANCELLED") => panic!("{body}"),
            _ => {}
        }
        if body["step"]
            .as_str()
            .is_some_and(|s| s.contains("waiting for memory"))
        {
            waited = true;
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let peak_mib = status_mib(server.pid(), "VmHWM:");
    let tree_peak_mib = tree.stop().max(peak_mib);
    Run {
        wall,
        idle_mib,
        peak_mib,
        tree_peak_mib,
        waited,
        results,
        data,
    }
}
