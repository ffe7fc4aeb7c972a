//! Jobs across cluster nodes (issue #24): throughput of CPU-bound `demo` jobs with 1, 2 and 3
//! nodes keeping their jobs in JetStream, the CPU each job costs, and the failover time after
//! the node running a job is SIGKILLed.
//!
//! ```sh
//! cargo bench --bench cluster_jobs -- [--jobs 60] [--chunks 4] [--mib 64] [--lease-ms 3000]
//! cargo bench --bench cluster_jobs -- --failover-only --lease-ms 30000   # the default lease
//! ```
//!
//! Three `nats-server -js` routed into one NATS cluster (replicas 3), fresh for each
//! measurement, and release builds of `stompede serve` on loopback, all on this machine. The
//! client submits on node 1 and counts `JOB_COMPLETED` on its `/user/queue/progress`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use common::Tcp;
use stompede::protocol::{Command, Frame};

struct Settings {
    jobs: usize,
    chunks: u64,
    mib: u64,
    lease_ms: u64,
    failover_only: bool,
}

fn settings() -> Settings {
    let mut s = Settings {
        jobs: 60,
        chunks: 4,
        mib: 64,
        lease_ms: 3_000,
        failover_only: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .expect("a value")
                .parse::<u64>()
                .expect("a number")
        };
        match arg.as_str() {
            "--jobs" => s.jobs = value() as usize,
            "--chunks" => s.chunks = value(),
            "--mib" => s.mib = value(),
            "--lease-ms" => s.lease_ms = value(),
            "--failover-only" => s.failover_only = true,
            // `cargo bench` passes `--bench`.
            _ => {}
        }
    }
    s
}

fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// A process killed when dropped.
struct Owned(Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Three nats-servers with JetStream in one NATS cluster; their client URLs.
fn nats_cluster(dir: &std::path::Path) -> (Vec<Owned>, Vec<String>) {
    let ports = free_ports(6);
    let routes = ports[3..6]
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut servers = Vec::new();
    let mut urls = Vec::new();
    for i in 0..3 {
        let child = Process::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &ports[i].to_string(), "-js"])
            .arg("-sd")
            .arg(dir.join(format!("s{i}")))
            .args(["--server_name", &format!("s{i}"), "--cluster_name", "bench"])
            .args(["--cluster", &format!("nats://127.0.0.1:{}", ports[3 + i])])
            .args(["--routes", &routes])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server is not installed (apt install nats-server)");
        servers.push(Owned(child));
        urls.push(format!("nats://127.0.0.1:{}", ports[i]));
    }
    for port in &ports[..3] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", *port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    (servers, urls)
}

struct Node {
    name: String,
    process: Owned,
    stomp: SocketAddr,
}

fn node(name: &str, url: &str, dir: &std::path::Path, lease_ms: u64) -> Node {
    let mut child = Process::new(env!("CARGO_BIN_EXE_stompede"))
        .args(["serve", "--stomp", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(["--log", "error", "--cluster", url, "--node-name", name])
        .args(["--cluster-replicas", "3", "--cluster-jobs", "on"])
        .args(["--cluster-job-lease-ms", &lease_ms.to_string()])
        .arg("--data-dir")
        .arg(dir.join(name))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let listening: serde_json::Value = serde_json::from_str(&line).unwrap();
    Node {
        name: name.to_owned(),
        process: Owned(child),
        stomp: listening["stomp"].as_str().unwrap().parse().unwrap(),
    }
}

/// CPU time (user + system) of process `pid` so far.
fn cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Past the command name, which may hold spaces: fields 14 and 15 are utime and stime.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    let hz = clock_ticks();
    Duration::from_millis(ticks * 1000 / hz)
}

fn clock_ticks() -> u64 {
    Process::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

async fn submit(client: &mut Tcp, params: &str) -> String {
    client
        .send(
            Frame::new(Command::Send)
                .header("destination", "/app/jobs")
                .header("job-type", "demo")
                .header("receipt", "job")
                .body(params.to_owned()),
        )
        .await;
    // Long: the first submissions wait for JetStream to set the job store up.
    let receipt = tokio::time::timeout(Duration::from_secs(60), client.next_frame())
        .await
        .expect("no RECEIPT within 60 s")
        .expect("connection closed");
    assert_eq!(receipt.command, Command::Receipt, "{receipt:?}");
    receipt.get("job-id").unwrap().to_owned()
}

async fn event(watcher: &mut Tcp) -> serde_json::Value {
    let frame = tokio::time::timeout(Duration::from_secs(300), watcher.next_frame())
        .await
        .expect("no event within 300 s")
        .expect("connection closed");
    serde_json::from_slice(&frame.body).unwrap()
}

/// Waits for `n` JOB_COMPLETED on `watcher`; the nodes that ran them.
async fn completed(watcher: &mut Tcp, n: usize) -> BTreeMap<String, usize> {
    let mut by_node = BTreeMap::new();
    let mut done = 0;
    while done < n {
        let event = event(watcher).await;
        assert_ne!(event["event"], "JOB_FAILED", "{event}");
        if event["event"] == "JOB_COMPLETED" {
            done += 1;
            *by_node
                .entry(event["node"].as_str().unwrap_or("?").to_owned())
                .or_default() += 1;
        }
    }
    by_node
}

async fn throughput(s: &Settings, nodes: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (servers, urls) = nats_cluster(dir.path());
    let started: Vec<Node> = (0..nodes)
        .map(|i| node(&format!("n{}", i + 1), &urls[i % 3], dir.path(), s.lease_ms))
        .collect();
    let mut watcher = Tcp::connect(started[0].stomp, "bench").await;
    watcher.subscribe("p", "/user/queue/progress", "auto").await;
    let mut client = Tcp::connect(started[0].stomp, "bench").await;
    // Warm-up: JetStream elects its leaders, every node sets its streams up.
    for _ in 0..nodes {
        submit(&mut client, r#"{"chunks":1,"mibPerChunk":0}"#).await;
    }
    completed(&mut watcher, nodes).await;
    let params = format!(r#"{{"chunks":{},"mibPerChunk":{}}}"#, s.chunks, s.mib);
    let cpu_of = |pids: &[u32]| pids.iter().map(|p| cpu(*p)).sum::<Duration>();
    let node_pids: Vec<u32> = started.iter().map(|n| n.process.0.id()).collect();
    let nats_pids: Vec<u32> = servers.iter().map(|s| s.0.id()).collect();
    let (node_cpu, nats_cpu) = (cpu_of(&node_pids), cpu_of(&nats_pids));
    let start = Instant::now();
    for _ in 0..s.jobs {
        submit(&mut client, &params).await;
    }
    let by_node = completed(&mut watcher, s.jobs).await;
    let elapsed = start.elapsed();
    let node_cpu = cpu_of(&node_pids) - node_cpu;
    let nats_cpu = cpu_of(&nats_pids) - nats_cpu;
    let per_job = |d: Duration| d.as_secs_f64() * 1000.0 / s.jobs as f64;
    println!(
        "nodes {nodes}: {} jobs ({} x {} MiB) in {:.2} s = {:.2} jobs/s; CPU per job: nodes {:.0} ms, nats-servers {:.0} ms; ran by {:?}",
        s.jobs,
        s.chunks,
        s.mib,
        elapsed.as_secs_f64(),
        s.jobs as f64 / elapsed.as_secs_f64(),
        per_job(node_cpu),
        per_job(nats_cpu),
        by_node
    );
}

async fn failover(s: &Settings) {
    let dir = tempfile::tempdir().unwrap();
    let (_servers, urls) = nats_cluster(dir.path());
    let mut nodes: Vec<Node> = (0..3)
        .map(|i| node(&format!("n{}", i + 1), &urls[i], dir.path(), s.lease_ms))
        .collect();
    // Watched on a node that is not killed: the one the job does not run on.
    let mut watchers = Vec::new();
    for n in &nodes {
        let mut watcher = Tcp::connect(n.stomp, "bench").await;
        watcher.subscribe("p", "/user/queue/progress", "auto").await;
        watchers.push(watcher);
    }
    let mut client = Tcp::connect(nodes[0].stomp, "bench").await;
    for _ in 0..3 {
        submit(&mut client, r#"{"chunks":1,"mibPerChunk":0}"#).await;
    }
    completed(&mut watchers[0], 3).await;
    for w in &mut watchers[1..] {
        completed(w, 3).await;
    }
    drop(client);
    let mut client = Tcp::connect(nodes[0].stomp, "bench").await;
    submit(
        &mut client,
        r#"{"chunks":400,"mibPerChunk":0,"chunkDelayMs":100}"#,
    )
    .await;
    let running = loop {
        let e = event(&mut watchers[0]).await;
        if e["event"] == "CHUNK_COMPLETED" && e["chunkIndex"].as_u64().unwrap() >= 2 {
            break e["node"].as_str().unwrap().to_owned();
        }
    };
    let at = nodes.iter().position(|n| n.name == running).unwrap();
    let watch_at = (at + 1) % 3;
    // Events from before the kill name the killed node: the wait below skips them.
    let mut watcher = watchers.swap_remove(watch_at);
    let killed = nodes.remove(at);
    let t0 = Instant::now();
    drop(killed);
    let mut started_after = None;
    let chunk_after = loop {
        let e = event(&mut watcher).await;
        let other = e["node"].as_str().is_some_and(|n| n != running);
        if e["event"] == "JOB_STARTED" && other && started_after.is_none() {
            started_after = Some(t0.elapsed());
        }
        if e["event"] == "CHUNK_COMPLETED" && other {
            break t0.elapsed();
        }
    };
    println!(
        "failover (lease {} ms, chunks of 100 ms): SIGKILL to JOB_STARTED on another node {:.2} s, to its first chunk {:.2} s",
        s.lease_ms,
        started_after.unwrap_or_default().as_secs_f64(),
        chunk_after.as_secs_f64()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let s = settings();
    if !s.failover_only {
        for nodes in 1..=3 {
            throughput(&s, nodes).await;
        }
    }
    failover(&s).await;
}
