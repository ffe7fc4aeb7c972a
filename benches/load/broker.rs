//! The broker under test: started by the tool (`--spawn`), or found by address and `--broker-pid`;
//! its CPU time and resident memory read from /proc.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// A broker started by this tool: killed when dropped.
pub struct Spawned {
    child: Child,
    /// Its WebSocket URL and TCP address, from the listening line.
    pub ws: Option<String>,
    pub stomp: Option<String>,
    dir: tempfile::TempDir,
}

impl Spawned {
    /// Starts `path serve` on ephemeral loopback ports with a fresh data directory and waits for
    /// its listening line.
    pub fn start(path: &Path, extra: &[String]) -> Result<Spawned> {
        let dir = tempfile::tempdir()?;
        let log = std::fs::File::create(dir.path().join("broker.log"))?;
        let mut child = Command::new(path)
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--stomp", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", path.display()))?;
        let stdout = child.stdout.take().context("broker stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = tx.send(reader.read_line(&mut line).map(|_| line));
            // Keep draining so the broker never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => {
                let _ = child.kill();
                return Err(e).context("reading the broker's listening line");
            }
            Err(_) => {
                let _ = child.kill();
                let mut log = String::new();
                if let Ok(mut f) = std::fs::File::open(dir.path().join("broker.log")) {
                    let _ = f.read_to_string(&mut log);
                }
                bail!("the broker printed no listening line in 20 s; its log:\n{log}");
            }
        };
        let json: serde_json::Value = serde_json::from_str(line.trim())
            .with_context(|| format!("broker listening line {line:?}"))?;
        if json["event"] != "listening" {
            bail!("unexpected first line from the broker: {line}");
        }
        Ok(Spawned {
            ws: json["ws"].as_str().map(str::to_owned),
            stomp: json["stomp"].as_str().map(str::to_owned),
            child,
            dir,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its data directory (fresh for this broker; `import/` under it is where `reconcile`
    /// reads its files).
    #[allow(dead_code)] // the soak bench, which shares this file, reads it
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Clock ticks per second for /proc/PID/stat times.
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// User plus system CPU seconds of process `pid` ("self" for this one), threads included.
pub fn cpu_seconds(pid: &str, ticks: f64) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("/proc stat format")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line; `rest` starts at field 3.
    let utime: f64 = fields.get(11).context("utime")?.parse()?;
    let stime: f64 = fields.get(12).context("stime")?.parse()?;
    Ok((utime + stime) / ticks)
}

/// Resident memory of `pid` in KiB (VmRSS).
pub fn rss_kib(pid: &str) -> Result<u64> {
    status_kib(pid, "VmRSS:")
}

/// The most resident memory `pid` has had since it started, in KiB (VmHWM).
pub fn peak_rss_kib(pid: &str) -> Result<u64> {
    status_kib(pid, "VmHWM:")
}

fn status_kib(pid: &str, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("{field} not found"))
}

/// A snapshot of a process's counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    pub cpu_s: Option<f64>,
    pub rss_kib: Option<u64>,
    /// The peak since the process started (a spawned broker starts fresh for each run).
    pub peak_rss_kib: Option<u64>,
}

impl Usage {
    pub fn of(pid: Option<&str>, ticks: f64) -> Usage {
        match pid {
            None => Usage::default(),
            Some(pid) => Usage {
                cpu_s: cpu_seconds(pid, ticks).ok(),
                rss_kib: rss_kib(pid).ok(),
                peak_rss_kib: peak_rss_kib(pid).ok(),
            },
        }
    }
}
