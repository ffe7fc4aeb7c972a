//! Scale-out over NATS (issue #24, first slice), end to end: real `nats-server` processes
//! (Debian's, installed by scripts/test.sh) on free loopback ports and real `stompede serve`
//! nodes joined to them with `--cluster`, driven by real STOMP clients.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use common::{body_for, Tcp, WAIT};
use stompede::protocol::{Command, Frame};

/// Long enough to be sure nothing more is coming.
const QUIET: Duration = Duration::from_millis(500);

/// `n` distinct loopback ports nobody listens on (bound together, then released, so that none
/// is handed out twice).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// A `nats-server` on loopback, killed when dropped.
struct Nats {
    child: Option<Child>,
    port: u16,
    /// Its monitoring port (`/connz`).
    monitor: u16,
    extra: Vec<String>,
}

impl Nats {
    fn start() -> Nats {
        Self::with(Vec::new())
    }

    fn with(extra: Vec<String>) -> Nats {
        let ports = free_ports(2);
        Self::on(ports[0], ports[1], extra)
    }

    /// A server on `port`, monitored on `monitor`.
    fn on(port: u16, monitor: u16, extra: Vec<String>) -> Nats {
        let mut nats = Nats {
            child: None,
            port,
            monitor,
            extra,
        };
        nats.spawn();
        nats
    }

    /// Starts the server and waits until it accepts clients.
    fn spawn(&mut self) {
        let mut child = Process::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-m", &self.monitor.to_string()])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server is not installed: scripts/test.sh installs it (apt nats-server)");
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("nats-server on {} exited: {status}", self.port);
            }
            assert!(
                Instant::now() < deadline,
                "nats-server on {} never listened",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// SIGKILLs it.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same ports.
    fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Client connections the server holds (its monitoring endpoint).
    async fn connections(&self) -> u64 {
        let url = format!("http://127.0.0.1:{}/connz", self.monitor);
        let body = reqwest::get(url).await.unwrap().text().await.unwrap();
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        body["num_connections"].as_u64().unwrap()
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `stompede serve` process (SIGKILLed when dropped).
struct Node {
    child: Child,
    stomp: SocketAddr,
    http: SocketAddr,
    listening: serde_json::Value,
    _dir: tempfile::TempDir,
}

impl Node {
    /// A node joined to `cluster` (NATS URLs, comma-separated) as `name`.
    fn join(name: &str, cluster: &str) -> Node {
        Self::start(&["--cluster", cluster, "--node-name", name])
    }

    /// [`Node::join`] with more flags.
    fn join_with(name: &str, cluster: &str, flags: &[&str]) -> Node {
        let mut all = vec!["--cluster", cluster, "--node-name", name];
        all.extend_from_slice(flags);
        Self::start(&all)
    }

    /// Waits until this node's view of the members (itself included) is `expected`.
    async fn until_members_are(&self, expected: &[&str]) -> serde_json::Value {
        let deadline = Instant::now() + WAIT * 2;
        loop {
            let status = self.status().await;
            let members: Vec<&str> = status["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["node"].as_str().unwrap())
                .collect();
            if members == expected {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "members stayed {members:?}, expected {expected:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn start(flags: &[&str]) -> Node {
        Self::start_configured(flags, "")
    }

    /// [`Node::start`] with more settings only a config file gives (`key = value` lines).
    fn start_configured(flags: &[&str], settings: &str) -> Node {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        // Job admins and ACL rules only come from a config file. `ann` (the system) may write
        // to every user's inbox; the ACL is applied once, by the publisher's node.
        let config = dir.path().join("stompede.toml");
        std::fs::write(
            &config,
            format!(
                "{settings}\njob-admins = [\"root\"]\n\
                 [[acl]]\nuser = \"ann\"\ndestination = \"/user/*/queue/inbox\"\nwrite = true\n"
            ),
        )
        .unwrap();
        let mut child = Process::new(env!("CARGO_BIN_EXE_stompede"))
            .args(["serve", "--stomp", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(["--log", "error"])
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(flags)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let listening: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("no listening line ({e}): {line:?}"));
        Node {
            child,
            stomp: listening["stomp"].as_str().unwrap().parse().unwrap(),
            http: listening["http"].as_str().unwrap().parse().unwrap(),
            listening,
            _dir: dir,
        }
    }

    async fn client(&self, login: &str) -> Tcp {
        Tcp::connect(self.stomp, login).await
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("http://{}{path}", self.http))
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// `GET /api/jobs/<id>` as `user` (the test nodes run in open mode: any password).
    async fn job_as(&self, user: &str, id: &str) -> serde_json::Value {
        let response = reqwest::Client::new()
            .get(format!("http://{}/api/jobs/{id}", self.http))
            .basic_auth(user, Some("pw"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        serde_json::from_str(&response.text().await.unwrap()).unwrap()
    }

    /// `method` on `path` as `user`: the status and the JSON body (null when there is none).
    async fn rest(&self, method: &str, user: &str, path: &str) -> (u16, serde_json::Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = reqwest::Client::new()
            .request(method, format!("http://{}{path}", self.http))
            .basic_auth(user, Some("pw"))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
        };
        (status, body)
    }

    /// `POST /api/jobs` of a `demo` job with `params` (JSON) as `user`: the status and body.
    async fn submit_over_rest(&self, user: &str, params: &str) -> (u16, serde_json::Value) {
        let response = reqwest::Client::new()
            .post(format!("http://{}/api/jobs", self.http))
            .basic_auth(user, Some("pw"))
            .header("content-type", "application/json")
            .body(format!(r#"{{"type":"demo","params":{params}}}"#))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        (status, body)
    }

    /// Submits a `demo` job of `chunks` chunks as `client`'s user and returns its id.
    async fn submit_demo(client: &mut Tcp, chunks: u32) -> String {
        client
            .send(
                Frame::new(Command::Send)
                    .header("destination", "/app/jobs")
                    .header("job-type", "demo")
                    .header("receipt", "job")
                    .body(format!(r#"{{"chunks":{chunks}}}"#)),
            )
            .await;
        let receipt = client.frame().await;
        assert_eq!(receipt.command, Command::Receipt, "{receipt:?}");
        receipt.get("job-id").unwrap().to_owned()
    }

    async fn status(&self) -> serde_json::Value {
        let (status, body) = self.get("/cluster").await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Waits until `/ready` answers `status`.
    async fn until_ready_is(&self, status: u16) {
        let deadline = Instant::now() + WAIT * 2;
        loop {
            let (now, body) = self.get("/ready").await;
            if now == status {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "/ready stayed {now} ({body:?}), expected {status}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn send(destination: &str, body: &str) -> Frame {
    Frame::new(Command::Send)
        .header("destination", destination)
        .body(body.to_owned())
}

/// The body of a MESSAGE as text.
fn text(frame: &Frame) -> String {
    assert_eq!(frame.command, Command::Message, "{frame:?}");
    String::from_utf8(frame.body.to_vec()).unwrap()
}

/// Reads `n` MESSAGEs on `client`, then checks nothing more comes.
async fn exactly(client: &mut Tcp, n: usize) -> Vec<Frame> {
    let frames = client.frames(n).await;
    if let Some(extra) = client.maybe_frame(QUIET).await {
        panic!("one frame too many: {extra:?}");
    }
    frames
}

/// `publisher` sends `n` messages to `destination`, each with `publisher` and `seq` headers,
/// as fast as flow control lets it; the last is receipted.
async fn publish_numbered(mut client: Tcp, destination: &str, publisher: &str, n: usize) {
    for seq in 0..n {
        let mut frame = send(destination, &body_for(&format!("{publisher}-{seq}")))
            .header("publisher", publisher)
            .header("seq", seq.to_string());
        if seq + 1 == n {
            frame = frame.header("receipt", "last");
        }
        client.send(frame).await;
    }
    let receipt = client.frame().await;
    assert_eq!(receipt.command, Command::Receipt, "{receipt:?}");
}

/// Reads `total` MESSAGEs and checks each publisher's came complete, once each, in order.
async fn read_numbered(mut client: Tcp, total: usize) -> BTreeMap<String, usize> {
    let mut next: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..total {
        let frame = tokio::time::timeout(WAIT * 3, client.next_frame())
            .await
            .expect("a message was lost")
            .expect("connection closed");
        let publisher = frame.get("publisher").unwrap().to_owned();
        let seq: usize = frame.get("seq").unwrap().parse().unwrap();
        let expected = next.entry(publisher.clone()).or_default();
        assert_eq!(
            seq, *expected,
            "{publisher}'s messages out of order or lost"
        );
        assert_eq!(text(&frame), body_for(&format!("{publisher}-{seq}")));
        *expected += 1;
    }
    if let Some(extra) = client.maybe_frame(QUIET).await {
        panic!("a message was delivered twice: {extra:?}");
    }
    next
}

#[tokio::test]
async fn topic_fan_out_across_three_nodes_loses_nothing_and_keeps_each_publishers_order() {
    let nats = Nats::start();
    let nodes = [
        Node::join("a", &nats.url()),
        Node::join("b", &nats.url()),
        Node::join("c", &nats.url()),
    ];
    assert_eq!(nodes[0].listening["node"], "a");
    const N: usize = 3_000;
    // One subscriber on every node (the publishers' own nodes included: local delivery stays
    // local, never doubled by the copy that goes through NATS).
    let mut readers = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let mut client = node.client(&format!("s{i}")).await;
        client.subscribe("fan", "/topic/fan", "auto").await;
        readers.push(tokio::spawn(read_numbered(client, 2 * N)));
    }
    let from_a = publish_numbered(nodes[0].client("pa").await, "/topic/fan", "a", N);
    let from_c = publish_numbered(nodes[2].client("pc").await, "/topic/fan", "c", N);
    tokio::join!(from_a, from_c);
    for reader in readers {
        let counts = reader.await.unwrap();
        assert_eq!(counts.get("a"), Some(&N));
        assert_eq!(counts.get("c"), Some(&N));
    }
    let status = nodes[1].status().await;
    assert_eq!(status["node"], "b");
    assert_eq!(status["nats"], "connected");
    assert_eq!(status["counters"]["messages_in"], 2 * N as u64);
    assert_eq!(status["counters"]["dropped_inbound"], 0);
    // A's own N (and, perhaps, its /topic/stats ticks).
    let status = nodes[0].status().await;
    assert!(status["counters"]["messages_out"].as_u64().unwrap() >= N as u64);
    assert_eq!(status["counters"]["dropped_outbound"], 0);
    let (_, metrics) = nodes[0].get("/metrics").await;
    assert!(
        metrics.contains("stompede_cluster_connected{node=\"a\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("stompede_cluster_messages_out_total"));
}

#[tokio::test]
async fn wildcard_subscriptions_match_across_nodes_as_they_do_on_one() {
    let nats = Nats::start();
    let a = Node::join("a", &nats.url());
    let b = Node::join("b", &nats.url());
    let mut remote = b.client("watcher").await;
    for (id, destination) in [
        ("one", "/topic/prices/*"),
        ("many", "/topic/prices/**"),
        ("end", "/topic/**/end"),
        ("eur", "/topic/prices/eur"),
        ("dotted", "/topic/prices.eur"),
    ] {
        remote.subscribe(id, destination, "auto").await;
    }
    let mut local = a.client("local").await;
    local.subscribe("many", "/topic/prices/**", "auto").await;
    let mut publisher = a.client("p").await;
    for (i, destination) in [
        "/topic/prices/eur",
        "/topic/prices/eur/usd",
        "/topic/prices",
        "/topic/x/end",
        "/topic/other",
        "/topic/prices.eur",
        "/topic/prices/end",
        "/topic/prices/a b~_*",
    ]
    .into_iter()
    .enumerate()
    {
        publisher
            .send_receipted(send(destination, destination), &i.to_string())
            .await;
    }
    let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for frame in exactly(&mut remote, 12).await {
        let subscription = frame.get("subscription").unwrap().to_owned();
        assert_eq!(frame.get("destination"), Some(text(&frame).as_str()));
        got.entry(subscription).or_default().push(text(&frame));
    }
    let expected: BTreeMap<String, Vec<String>> = [
        (
            "one",
            &[
                "/topic/prices/eur",
                "/topic/prices/end",
                "/topic/prices/a b~_*",
            ][..],
        ),
        (
            "many",
            &[
                "/topic/prices/eur",
                "/topic/prices/eur/usd",
                "/topic/prices",
                "/topic/prices/end",
                "/topic/prices/a b~_*",
            ][..],
        ),
        ("end", &["/topic/x/end", "/topic/prices/end"][..]),
        ("eur", &["/topic/prices/eur"][..]),
        ("dotted", &["/topic/prices.eur"][..]),
    ]
    .into_iter()
    .map(|(id, list)| (id.to_owned(), list.iter().map(|s| s.to_string()).collect()))
    .collect();
    assert_eq!(got, expected);
    // The publisher's node delivered its own subscriber once each.
    assert_eq!(exactly(&mut local, 5).await.len(), 5);
    // After UNSUBSCRIBE the node drops its NATS interest: nothing more comes.
    remote
        .send_receipted(Frame::new(Command::Unsubscribe).header("id", "many"), "u")
        .await;
    publisher
        .send_receipted(send("/topic/prices/eur/usd", "late"), "late")
        .await;
    assert!(remote.maybe_frame(QUIET).await.is_none());
}

#[tokio::test]
async fn user_destinations_and_job_events_reach_every_node() {
    let nats = Nats::start();
    let a = Node::join("a", &nats.url());
    let b = Node::join("b", &nats.url());
    let c = Node::join("c", &nats.url());
    let mut bob_b = b.client("bob").await;
    bob_b.subscribe("in", "/user/queue/inbox", "auto").await;
    let mut bob_c = c.client("bob").await;
    bob_c.subscribe("in", "/user/queue/inbox", "auto").await;
    let mut carol_b = b.client("carol").await;
    carol_b.subscribe("in", "/user/queue/inbox", "auto").await;
    let mut ann = a.client("ann").await;
    ann.send_receipted(send("/user/bob/queue/inbox", "hi bob"), "1")
        .await;
    for bob in [&mut bob_b, &mut bob_c] {
        let frames = exactly(bob, 1).await;
        assert_eq!(text(&frames[0]), "hi bob");
        assert_eq!(frames[0].get("destination"), Some("/user/queue/inbox"));
    }
    assert!(carol_b.maybe_frame(QUIET).await.is_none());

    // A job run on node A: its owner watches progress on B, an admin every job on C.
    let mut progress = b.client("bob").await;
    progress
        .subscribe("p", "/user/queue/progress", "auto")
        .await;
    let mut admin = c.client("root").await;
    admin.subscribe("all", "/topic/jobs/**", "auto").await;
    let mut bob_a = a.client("bob").await;
    bob_a
        .send(
            Frame::new(Command::Send)
                .header("destination", "/app/jobs")
                .header("job-type", "demo")
                .header("receipt", "job")
                .body(r#"{"chunks":3}"#),
        )
        .await;
    let receipt = bob_a.frame().await;
    assert_eq!(receipt.command, Command::Receipt, "{receipt:?}");
    let id = receipt.get("job-id").unwrap().to_owned();
    for watcher in [&mut progress, &mut admin] {
        let mut events = Vec::new();
        loop {
            let frame = watcher.frame().await;
            assert_eq!(frame.get("job-id"), Some(id.as_str()), "{frame:?}");
            let event = frame.get("event").unwrap().to_owned();
            let seq: u64 = frame.get("seq").unwrap().parse().unwrap();
            let body: serde_json::Value = serde_json::from_str(&text(&frame)).unwrap();
            // Accepted before any node started it; from JOB_STARTED on, A runs it.
            let node = if event == "JOB_ACCEPTED" {
                serde_json::Value::Null
            } else {
                "a".into()
            };
            assert_eq!(body["node"], node, "{body}");
            events.push((seq, event.clone()));
            if event == "JOB_COMPLETED" {
                break;
            }
        }
        // Every event, in order, none twice.
        assert!(
            events.windows(2).all(|pair| pair[0].0 < pair[1].0),
            "{events:?}"
        );
        assert_eq!(events[0].1, "JOB_ACCEPTED", "{events:?}");
    }
    // The snapshot names the node too, over REST and STOMP alike.
    let job = a.job_as("bob", &id).await;
    assert_eq!(job["node"], "a", "{job}");
    assert_eq!(job["status"], "completed", "{job}");
    // No RECEIPT asked: the snapshot comes first, before any RECEIPT would.
    let snapshot = snapshot_on_subscribe(&mut bob_a, &id).await;
    let snapshot: serde_json::Value = serde_json::from_str(&text(&snapshot)).unwrap();
    assert_eq!(snapshot["node"], "a", "{snapshot}");
}

#[tokio::test]
async fn a_message_published_after_a_subscribe_receipt_reaches_it_from_another_node() {
    let nats = Nats::start();
    let a = Node::join("a", &nats.url());
    let b = Node::join("b", &nats.url());
    let mut publisher = a.client("p").await;
    let mut subscriber = b.client("s").await;
    for i in 0..300 {
        let topic = if i % 2 == 0 {
            format!("/topic/race/{i}")
        } else {
            format!("/topic/race/{i}/*")
        };
        subscriber.subscribe(&i.to_string(), &topic, "auto").await;
        let destination = topic.replace('*', "x");
        publisher.send(send(&destination, &i.to_string())).await;
        let frame = subscriber.frame().await;
        assert_eq!(text(&frame), i.to_string());
    }
    assert_eq!(b.status().await["counters"]["interest_timeouts"], 0);
}

#[tokio::test]
async fn a_node_without_cluster_touches_no_nats_and_shares_nothing() {
    let nats = Nats::start();
    let member = Node::join("member", &nats.url());
    let single = Node::start(&[]);
    assert_eq!(single.listening["node"], serde_json::Value::Null);
    assert_eq!(single.get("/cluster").await.0, 404);
    assert_eq!(single.get("/ready").await, (200, "ready\n".to_owned()));
    let (_, metrics) = single.get("/metrics").await;
    assert!(!metrics.contains("stompede_cluster"), "{metrics}");
    // Only the member holds a NATS connection.
    assert_eq!(nats.connections().await, 1);

    let mut alone = single.client("s").await;
    alone.subscribe("t", "/topic/t", "auto").await;
    let mut joined = member.client("m").await;
    joined.subscribe("t", "/topic/t", "auto").await;
    single
        .client("p")
        .await
        .send_receipted(send("/topic/t", "single"), "1")
        .await;
    member
        .client("p")
        .await
        .send_receipted(send("/topic/t", "member"), "2")
        .await;
    assert_eq!(text(&exactly(&mut alone, 1).await[0]), "single");
    assert_eq!(text(&exactly(&mut joined, 1).await[0]), "member");

    // A job on a node on its own names no node, in its events or its snapshot.
    let mut owner = single.client("bob").await;
    owner.subscribe("p", "/user/queue/progress", "auto").await;
    let id = Node::submit_demo(&mut single.client("bob").await, 2).await;
    loop {
        let frame = owner.frame().await;
        let body: serde_json::Value = serde_json::from_str(&text(&frame)).unwrap();
        assert!(body.get("node").is_none(), "{body}");
        if frame.get("event") == Some("JOB_COMPLETED") {
            break;
        }
    }
    let job = single.job_as("bob", &id).await;
    assert!(job.get("node").is_none(), "{job}");
}

#[tokio::test]
async fn nodes_ride_out_a_nats_restart_serving_local_sessions_meanwhile() {
    let mut nats = Nats::start();
    let a = Node::join("a", &nats.url());
    let b = Node::join("b", &nats.url());
    a.until_ready_is(200).await;
    let mut remote = b.client("r").await;
    remote.subscribe("r", "/topic/r", "auto").await;
    let mut publisher = a.client("p").await;
    publisher
        .send_receipted(send("/topic/r", "before"), "0")
        .await;
    assert_eq!(text(&remote.frame().await), "before");

    assert_eq!(a.get("/health").await, (200, "ok\n".to_owned()));
    nats.kill();
    a.until_ready_is(503).await;
    b.until_ready_is(503).await;
    let status = a.status().await;
    assert_eq!(status["nats"], "reconnecting", "{status}");
    // Alive, degraded: restarting the node would not bring NATS back.
    let (code, health) = a.get("/health").await;
    assert_eq!(code, 200);
    assert!(
        health.starts_with("degraded: cluster link down: node a"),
        "{health}"
    );
    let (_, metrics) = a.get("/metrics").await;
    assert!(
        metrics.contains("stompede_cluster_connected{node=\"a\"} 0"),
        "{metrics}"
    );
    // Local traffic goes on while NATS is away.
    let mut local = a.client("l").await;
    local.subscribe("l", "/topic/local", "auto").await;
    for i in 0..100 {
        publisher.send(send("/topic/local", &i.to_string())).await;
    }
    for i in 0..100 {
        assert_eq!(text(&local.frame().await), i.to_string());
    }
    // A remote copy sent now may be lost (core NATS is at-most-once): not asserted.
    publisher
        .send_receipted(send("/topic/r", "during"), "1")
        .await;

    nats.restart();
    a.until_ready_is(200).await;
    b.until_ready_is(200).await;
    assert_eq!(a.get("/health").await, (200, "ok\n".to_owned()));
    assert_eq!(a.status().await["nats"], "connected");
    // B's subscription was restored on reconnection: a message sent now reaches it.
    publisher
        .send_receipted(send("/topic/r", "after"), "2")
        .await;
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("after") {
        seen.push(text(&remote.frame().await));
    }
    assert!(seen.len() <= 2, "{seen:?}");
    let status = a.status().await;
    assert!(
        status["counters"]["connects"].as_u64().unwrap() >= 2,
        "{status}"
    );
    assert!(
        status["counters"]["disconnects"].as_u64().unwrap() >= 1,
        "{status}"
    );
}

#[tokio::test]
async fn three_nats_servers_in_a_cluster_carry_fan_out_between_nodes_on_different_servers() {
    // Every port of the three servers chosen at once: clients, routes, monitoring.
    let ports = free_ports(9);
    let routes = &ports[3..6];
    let all_routes = routes
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let servers: Vec<Nats> = (0..3)
        .map(|i| {
            Nats::on(
                ports[i],
                ports[6 + i],
                vec![
                    "--cluster_name".into(),
                    "stompede-test".into(),
                    "--cluster".into(),
                    format!("nats://127.0.0.1:{}", routes[i]),
                    "--routes".into(),
                    all_routes.clone(),
                ],
            )
        })
        .collect();
    let nodes: Vec<Node> = servers
        .iter()
        .enumerate()
        .map(|(i, nats)| Node::join(&format!("n{i}"), &nats.url()))
        .collect();
    let mut readers = Vec::new();
    for (i, node) in nodes.iter().enumerate().skip(1) {
        let mut client = node.client(&format!("s{i}")).await;
        client.subscribe("fan", "/topic/fan/**", "auto").await;
        readers.push(client);
    }
    // Interest crosses NATS routes asynchronously (the RECEIPT's promise covers the server a
    // node is connected to): probe until both subscribers hear node 0.
    let mut publisher = nodes[0].client("p").await;
    for reader in &mut readers {
        let mut heard = false;
        for attempt in 0..100 {
            publisher
                .send_receipted(send("/topic/fan/probe", "probe"), &format!("p{attempt}"))
                .await;
            if reader
                .maybe_frame(Duration::from_millis(100))
                .await
                .is_some()
            {
                heard = true;
                break;
            }
        }
        assert!(heard, "interest never crossed the NATS routes");
    }
    // Drain the probes, then the real run.
    for reader in &mut readers {
        while reader.maybe_frame(QUIET).await.is_some() {}
    }
    const N: usize = 1_000;
    let readers: Vec<_> = readers
        .into_iter()
        .map(|client| tokio::spawn(read_numbered(client, N)))
        .collect();
    publish_numbered(publisher, "/topic/fan/x", "n0", N).await;
    for reader in readers {
        assert_eq!(reader.await.unwrap().get("n0"), Some(&N));
    }
}

#[tokio::test]
async fn members_hear_each_other_and_a_killed_node_drops_out_after_missing_heartbeats() {
    let nats = Nats::start();
    let beat = ["--cluster-heartbeat-ms", "100"];
    let a = Node::join_with("a", &nats.url(), &beat);
    let b = Node::join_with("b", &nats.url(), &beat);
    let mut c = Node::join_with("c", &nats.url(), &beat);
    let status = a.until_members_are(&["a", "b", "c"]).await;
    let members = status["members"].as_array().unwrap();
    assert_eq!(members[0]["self"], true);
    assert_eq!(members[1]["self"], false);
    assert_eq!(members[1]["heartbeatIntervalMs"], 100);
    assert!(members[1]["lastHeartbeatAgeMs"].is_u64(), "{status}");
    b.until_members_are(&["b", "a", "c"]).await;
    let (_, metrics) = a.get("/metrics").await;
    assert!(metrics.contains("stompede_cluster_members 3"), "{metrics}");
    assert!(
        metrics.contains("stompede_cluster_member_heartbeat_age_seconds{member=\"c\"}"),
        "{metrics}"
    );

    // SIGKILL: c says nothing; the others drop it once it has missed its heartbeats.
    let _ = c.child.kill();
    let _ = c.child.wait();
    let status = a.until_members_are(&["a", "b"]).await;
    assert!(
        status["counters"]["members_lost"].as_u64().unwrap() >= 1,
        "{status}"
    );
    b.until_members_are(&["b", "a"]).await;
    // A node's loss is not the link's: a and b stay ready.
    assert_eq!(a.get("/ready").await.0, 200);
}

/// Held by each test that runs a JetStream cluster: three of them at once (nine nats-servers
/// and nine nodes, beside the other tests) starve a 2-core machine into timeouts.
static ONE_JETSTREAM_CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Three `nats-server`s routed into one NATS cluster with JetStream (each its own store
/// directory, kept with them), on fresh loopback ports.
fn jetstream_cluster() -> (Vec<Nats>, tempfile::TempDir) {
    let store = tempfile::tempdir().unwrap();
    let ports = free_ports(9);
    let routes = &ports[3..6];
    let all_routes = routes
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let servers = (0..3)
        .map(|i| {
            Nats::on(
                ports[i],
                ports[6 + i],
                vec![
                    "-js".into(),
                    "-sd".into(),
                    store.path().join(format!("s{i}")).display().to_string(),
                    "--server_name".into(),
                    format!("s{i}"),
                    "--cluster_name".into(),
                    "stompede-js".into(),
                    "--cluster".into(),
                    format!("nats://127.0.0.1:{}", routes[i]),
                    "--routes".into(),
                    all_routes.clone(),
                ],
            )
        })
        .collect();
    (servers, store)
}

/// Waits until `node` stores queue messages in JetStream: a JetStream cluster just started
/// elects its leaders first, which a loaded machine can take longer than one frame's wait over.
async fn until_jetstream_takes_messages(node: &Node) {
    let warm_up = send("/queue/warm-up", "w").header("persistent", "true");
    until_receipted(node, warm_up, "a message").await;
}

/// Sends `frame` with a receipt from a new session on `node` until a RECEIPT comes back.
async fn until_receipted(node: &Node, frame: Frame, what: &str) {
    let deadline = Instant::now() + WAIT * 6;
    loop {
        let mut client = node.client("warm-up").await;
        client.send(frame.clone().header("receipt", "w")).await;
        match tokio::time::timeout(WAIT * 3, client.next_frame()).await {
            Ok(Some(reply)) if reply.command == Command::Receipt => return,
            reply => assert!(
                Instant::now() < deadline,
                "JetStream never took {what}: {reply:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A persistent SEND to `destination`, receipted: the RECEIPT promises JetStream holds it.
async fn send_persistent(client: &mut Tcp, destination: &str, body: &str, receipt: &str) {
    client
        .send_receipted(
            send(destination, body).header("persistent", "true"),
            receipt,
        )
        .await;
}

/// ACKs a MESSAGE received on a client-individual subscription.
async fn ack(client: &mut Tcp, message: &Frame) {
    let id = message.get("ack").unwrap().to_owned();
    client.send(Frame::new(Command::Ack).header("id", id)).await;
}

/// Nodes a, b and c, each on its own server of `servers`, once JetStream takes messages.
async fn three_nodes_on_jetstream(servers: &[Nats], flags: &[&str]) -> (Node, Node, Node) {
    let a = Node::join_with("a", &servers[0].url(), flags);
    let b = Node::join_with("b", &servers[1].url(), flags);
    let c = Node::join_with("c", &servers[2].url(), flags);
    until_jetstream_takes_messages(&a).await;
    (a, b, c)
}

#[tokio::test]
async fn durable_queues_in_jetstream_cross_nodes_and_come_back_from_dead_sessions_and_nodes() {
    let _alone = ONE_JETSTREAM_CLUSTER.lock().await;
    let (servers, _store) = jetstream_cluster();
    // Each node on its own NATS server; the stream kept by all three (replicas 3).
    // An ack wait well above what a loaded machine takes to deliver and acknowledge: an ACK
    // later than that is a redelivery, which at least once allows but this test's exact
    // counts do not.
    let flags = ["--cluster-replicas", "3", "--cluster-ack-wait-ms", "5000"];
    let (a, mut b, c) = three_nodes_on_jetstream(&servers, &flags).await;

    // Sent on A with RECEIPTs, consumed on B, in order, each once.
    let mut consumer = b.client("worker").await;
    consumer
        .subscribe("w", "/queue/work", "client-individual")
        .await;
    let mut producer = a.client("producer").await;
    const N: usize = 100;
    for i in 0..N {
        send_persistent(&mut producer, "/queue/work", &i.to_string(), &i.to_string()).await;
    }
    for i in 0..N {
        let message = consumer.frame().await;
        assert_eq!(text(&message), i.to_string());
        assert_eq!(message.get("destination"), Some("/queue/work"));
        assert_eq!(message.get("redelivered"), None);
        ack(&mut consumer, &message).await;
    }
    assert!(consumer.maybe_frame(QUIET).await.is_none());
    let status = a.status().await;
    // N, and the warm-up's one.
    assert_eq!(
        status["counters"]["queue_appends"],
        N as u64 + 1,
        "{status}"
    );
    assert_eq!(
        b.status().await["counters"]["queue_takes"],
        N as u64,
        "{status}"
    );

    // A NACK gives the message back to JetStream, which hands it out again.
    send_persistent(&mut producer, "/queue/work", "nacked", "nacked").await;
    let nacked = consumer.frame().await;
    assert_eq!(text(&nacked), "nacked");
    let id = nacked.get("ack").unwrap().to_owned();
    consumer
        .send(Frame::new(Command::Nack).header("id", id))
        .await;
    let again = consumer.frame().await;
    assert_eq!(text(&again), "nacked");
    assert_eq!(again.get("redelivered"), Some("true"));
    ack(&mut consumer, &again).await;

    // A message held unacknowledged by a session that dies goes to a consumer on another
    // node, marked redelivered.
    send_persistent(&mut producer, "/queue/work", "held", "held").await;
    let held = consumer.frame().await;
    assert_eq!(text(&held), "held");
    let mut other = c.client("worker").await;
    other
        .subscribe("w", "/queue/work", "client-individual")
        .await;
    drop(consumer);
    let again = tokio::time::timeout(WAIT * 3, other.next_frame())
        .await
        .expect("the held message was never redelivered")
        .expect("connection closed");
    assert_eq!(text(&again), "held");
    assert_eq!(again.get("redelivered"), Some("true"));
    ack(&mut other, &again).await;
    drop(other);

    // One held by a node that is SIGKILLed: JetStream hands it to another node once its ack
    // wait has passed.
    let mut doomed = b.client("worker").await;
    doomed
        .subscribe("w", "/queue/work", "client-individual")
        .await;
    send_persistent(&mut producer, "/queue/work", "orphan", "orphan").await;
    assert_eq!(text(&doomed.frame().await), "orphan");
    let mut survivor = c.client("worker").await;
    survivor
        .subscribe("w", "/queue/work", "client-individual")
        .await;
    let _ = b.child.kill();
    let _ = b.child.wait();
    let orphan = tokio::time::timeout(WAIT * 3, survivor.next_frame())
        .await
        .expect("the orphan was never redelivered")
        .expect("connection closed");
    assert_eq!(text(&orphan), "orphan");
    assert_eq!(orphan.get("redelivered"), Some("true"));
    ack(&mut survivor, &orphan).await;
}

#[tokio::test]
async fn consumers_on_two_nodes_share_one_jetstream_queue_and_keep_what_they_hold() {
    let _alone = ONE_JETSTREAM_CLUSTER.lock().await;
    let (servers, _store) = jetstream_cluster();
    let flags = ["--cluster-replicas", "3", "--cluster-ack-wait-ms", "3000"];
    let (a, b, c) = three_nodes_on_jetstream(&servers, &flags).await;
    async fn consumer(node: &Node, prefetch: &str) -> Tcp {
        let mut client = node.client("worker").await;
        client
            .send_receipted(
                Frame::new(Command::Subscribe)
                    .header("id", "s")
                    .header("destination", "/queue/shared")
                    .header("ack", "client-individual")
                    .header("prefetch-count", prefetch),
                "sub",
            )
            .await;
        client
    }
    // One unacknowledged message each at most: what one holds, the other node must take.
    let mut consumers = vec![consumer(&b, "1").await, consumer(&c, "1").await];
    let mut producer = a.client("producer").await;
    for i in 0..2 {
        send_persistent(
            &mut producer,
            "/queue/shared",
            &i.to_string(),
            &i.to_string(),
        )
        .await;
    }
    let mut held = Vec::new();
    for consumer in &mut consumers {
        // Generous: a node's first pull may be lost while the consumer elects its leader,
        // and is asked again only past its expiry and a grace.
        let frame = tokio::time::timeout(WAIT * 3, consumer.next_frame())
            .await
            .expect("a node's consumer got nothing")
            .expect("connection closed");
        held.push(frame);
    }
    // Held past two ack waits, while a consumer with credit waits on a third node: the holding
    // nodes renew their messages, so JetStream hands neither to it.
    let mut idle = consumer(&a, "10").await;
    assert!(
        idle.maybe_frame(Duration::from_millis(7_000))
            .await
            .is_none(),
        "a held message went to another node"
    );
    let mut bodies: Vec<String> = held.iter().map(text).collect();
    for (consumer, frame) in consumers.iter_mut().zip(&held) {
        ack(consumer, frame).await;
    }
    // Acknowledged, credit back: whichever node asks first gets the third.
    send_persistent(&mut producer, "/queue/shared", "2", "2").await;
    consumers.push(idle);
    let mut third = None;
    let deadline = Instant::now() + WAIT * 3;
    while third.is_none() && Instant::now() < deadline {
        for consumer in &mut consumers {
            if let Some(frame) = consumer.maybe_frame(Duration::from_millis(100)).await {
                third = Some(text(&frame));
            }
        }
    }
    bodies.extend(third);
    bodies.sort();
    assert_eq!(bodies, ["0", "1", "2"]);
}

#[tokio::test]
async fn a_nats_server_killed_under_load_loses_no_receipted_queue_message() {
    let _alone = ONE_JETSTREAM_CLUSTER.lock().await;
    let (mut servers, _store) = jetstream_cluster();
    // Every node knows every server, and moves to another when its own goes.
    let urls = servers.iter().map(Nats::url).collect::<Vec<_>>().join(",");
    let flags = ["--cluster-replicas", "3", "--cluster-ack-wait-ms", "3000"];
    let a = Node::join_with("a", &urls, &flags);
    let b = Node::join_with("b", &urls, &flags);
    until_jetstream_takes_messages(&a).await;
    let mut consumer = b.client("worker").await;
    consumer
        .subscribe("w", "/queue/safe", "client-individual")
        .await;
    const N: usize = 200;
    let reader = tokio::spawn(async move {
        // At least once: a message whose ACK was lost with the server comes again.
        let mut seen = std::collections::BTreeSet::new();
        while seen.len() < N {
            let frame = tokio::time::timeout(WAIT * 3, consumer.next_frame())
                .await
                .expect("a receipted message never came")
                .expect("connection closed");
            seen.insert(text(&frame).parse::<usize>().unwrap());
            ack(&mut consumer, &frame).await;
        }
        seen
    });
    let mut producer = a.client("producer").await;
    for i in 0..N {
        if i == N / 2 {
            // SIGKILL, mid-stream: one of the stream's three copies and, perhaps, its leader or
            // a node's connection.
            servers[0].kill();
        }
        // A SEND refused while JetStream fails over (an ERROR, not a RECEIPT) is sent again on
        // a new connection: only a RECEIPT promises anything.
        let deadline = Instant::now() + WAIT * 3;
        loop {
            producer
                .send(
                    send("/queue/safe", &i.to_string())
                        .header("persistent", "true")
                        .header("receipt", i.to_string()),
                )
                .await;
            match producer.next_frame().await {
                Some(reply) if reply.command == Command::Receipt => break,
                reply => {
                    assert!(Instant::now() < deadline, "never receipted: {reply:?}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    producer = a.client("producer").await;
                }
            }
        }
    }
    let seen = reader.await.unwrap();
    assert_eq!(seen, (0..N).collect());
}

/// Submits a `demo` job with `params` (JSON) as `client`'s user and returns its id.
async fn submit_job(client: &mut Tcp, params: &str) -> String {
    client
        .send(
            Frame::new(Command::Send)
                .header("destination", "/app/jobs")
                .header("job-type", "demo")
                .header("receipt", "job")
                .body(params.to_owned()),
        )
        .await;
    let receipt = client.frame().await;
    assert_eq!(receipt.command, Command::Receipt, "{receipt:?}");
    receipt.get("job-id").unwrap().to_owned()
}

/// The next event of job `id` on `watcher` (others' are skipped), as its JSON body.
async fn next_event_of(watcher: &mut Tcp, id: &str) -> serde_json::Value {
    loop {
        let frame = tokio::time::timeout(WAIT * 6, watcher.next_frame())
            .await
            .expect("no event came")
            .expect("connection closed");
        if frame.get("job-id") == Some(id) {
            return serde_json::from_str(&text(&frame)).unwrap();
        }
    }
}

/// Waits until `node` stores jobs in JetStream: the first submission sets the job store's
/// bucket and streams up, three replicated groups whose leaders a loaded machine may take
/// longer than one frame's wait to elect.
async fn until_jetstream_takes_jobs(node: &Node) {
    let job = Frame::new(Command::Send)
        .header("destination", "/app/jobs")
        .header("job-type", "demo")
        .body(r#"{"chunks":1,"mibPerChunk":0}"#);
    until_receipted(node, job, "a job").await;
}

/// Every event of job `id` logged in JetStream (`STOMPEDE_JOB_EVENTS`), in order.
async fn logged_events(nats: &Nats, id: &str) -> Vec<serde_json::Value> {
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream("STOMPEDE_JOB_EVENTS").await.unwrap();
    let subject = format!("stompede.jobevents.{id}");
    let last = stream
        .get_last_raw_message_by_subject(&subject)
        .await
        .unwrap()
        .sequence;
    let mut events = Vec::new();
    let mut from = 1;
    loop {
        let message = stream
            .raw_message_builder()
            .sequence(from)
            .next_by_subject(subject.clone())
            .send()
            .await
            .unwrap();
        events.push(serde_json::from_slice(&message.payload).unwrap());
        if message.sequence >= last {
            return events;
        }
        from = message.sequence + 1;
    }
}

/// Three nodes keeping jobs in JetStream (three copies, a lease of 3 s so that a failover is
/// quick here): A takes no jobs (a front node), so whatever its clients submit runs on B or C.
async fn job_nodes(servers: &[Nats]) -> [Node; 3] {
    job_nodes_with(servers, "", &[]).await
}

/// [`job_nodes`] with more config-file settings for every node, and more flags for the two
/// nodes that run jobs.
async fn job_nodes_with(servers: &[Nats], settings: &str, runner_flags: &[&str]) -> [Node; 3] {
    job_nodes_leased(servers, settings, runner_flags, "3000").await
}

/// [`job_nodes_with`], with leases of `lease_ms`.
async fn job_nodes_leased(
    servers: &[Nats],
    settings: &str,
    runner_flags: &[&str],
    lease_ms: &str,
) -> [Node; 3] {
    let flags = [
        "--cluster-replicas",
        "3",
        "--cluster-jobs",
        "on",
        "--cluster-job-lease-ms",
        lease_ms,
    ];
    let mut front = flags.to_vec();
    front.extend(["--cluster-job-slots", "0"]);
    let mut runners = flags.to_vec();
    runners.extend_from_slice(runner_flags);
    let join = |name: &str, server: &Nats, flags: &[&str]| {
        let url = server.url();
        let mut all = vec!["--cluster", &url, "--node-name", name];
        all.extend_from_slice(flags);
        Node::start_configured(&all, settings)
    };
    let a = join("a", &servers[0], &front);
    let b = join("b", &servers[1], &runners);
    let c = join("c", &servers[2], &runners);
    until_jetstream_takes_jobs(&a).await;
    [a, b, c]
}

/// Bob's progress subscription on `node`, and a second session of his to submit from.
async fn watched_from(node: &Node) -> (Tcp, Tcp) {
    let mut progress = node.client("bob").await;
    progress
        .subscribe("p", "/user/queue/progress", "auto")
        .await;
    (progress, node.client("bob").await)
}

/// The job's event log holds each of its `chunks` chunks' CHUNK_COMPLETED exactly once, and no
/// gap in its sequence numbers.
fn assert_each_chunk_logged_once(logged: &[serde_json::Value], chunks: u64) {
    let mut completed = BTreeMap::new();
    for event in logged.iter().filter(|e| e["event"] == "CHUNK_COMPLETED") {
        *completed
            .entry(event["chunkIndex"].as_u64().unwrap())
            .or_insert(0) += 1;
    }
    assert_eq!(completed.len() as u64, chunks, "{completed:?}");
    assert!(completed.values().all(|n| *n == 1), "{completed:?}");
    let seqs: Vec<u64> = logged.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
}

#[tokio::test]
async fn a_job_submitted_on_one_node_runs_on_another_and_outlives_the_sigkill_of_its_node() {
    let _alone = ONE_JETSTREAM_CLUSTER.lock().await;
    let (servers, _store) = jetstream_cluster();
    let [a, b, c] = job_nodes(&servers).await;
    let mut runners = vec![("b", b), ("c", c)];
    let (mut progress, mut bob) = watched_from(&a).await;

    // An uninterrupted run first: the result a run cut by a SIGKILL must give too.
    let params = |delay: u32| format!(r#"{{"chunks":12,"mibPerChunk":1,"chunkDelayMs":{delay}}}"#);
    let reference = submit_job(&mut bob, &params(0)).await;
    let expected = loop {
        let event = next_event_of(&mut progress, &reference).await;
        assert_ne!(event["event"], "JOB_FAILED", "{event}");
        if event["event"] == "JOB_COMPLETED" {
            break event["result"].clone();
        }
    };
    assert_eq!(expected["chunks"].as_array().unwrap().len(), 12);

    // Submitted on A, run on B or C, watched through A.
    let id = submit_job(&mut bob, &params(400)).await;
    let mut seen = Vec::new();
    let first = loop {
        let event = next_event_of(&mut progress, &id).await;
        seen.push(event.clone());
        if event["event"] == "JOB_STARTED" {
            break event["node"].as_str().unwrap().to_owned();
        }
    };
    assert_ne!(first, "a", "a front node ran a job");
    // Its node is SIGKILLed once a few chunks are committed.
    loop {
        let event = next_event_of(&mut progress, &id).await;
        seen.push(event.clone());
        if event["event"] == "CHUNK_COMPLETED" && event["chunkIndex"].as_u64().unwrap() >= 3 {
            break;
        }
    }
    let at = runners.iter().position(|(name, _)| *name == first).unwrap();
    let (_, mut killed) = runners.remove(at);
    let _ = killed.child.kill();
    let _ = killed.child.wait();
    let (survivor, _node) = &runners[0];
    // The other node takes it over from its checkpoint, once the lease has run out.
    let result = until_completed(&mut progress, &id, &mut seen).await;
    let restarted: Vec<&serde_json::Value> = seen
        .iter()
        .filter(|e| e["event"] == "JOB_STARTED")
        .collect();
    assert_eq!(restarted.len(), 2, "{seen:?}");
    assert_eq!(restarted[1]["node"], *survivor, "{seen:?}");
    assert_eq!(seen.last().unwrap()["node"], *survivor);
    // The same result as the uninterrupted run's: every chunk's, once, in order.
    assert_eq!(result, expected);
    // Seen live through A: in order, none twice.
    let seqs: Vec<u64> = seen.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");

    // The log in JetStream holds each chunk's CHUNK_COMPLETED exactly once (a chunk
    // committed on the killed node is not run again), and the new node went on from the
    // checkpoint: its first chunk is the one after the last committed before the kill.
    let logged = logged_events(&servers[0], &id).await;
    assert_each_chunk_logged_once(&logged, 12);
    let resumed_at = logged
        .iter()
        .skip_while(|e| !(e["event"] == "JOB_STARTED" && e["node"] == *survivor))
        .find(|e| e["event"] == "CHUNK_COMPLETED")
        .map(|e| e["chunkIndex"].as_u64().unwrap())
        .unwrap();
    assert!(resumed_at >= 4, "resumed at chunk {resumed_at}");
}

/// A job of twelve 400 ms chunks submitted by bob on `front` and watched there, once three of
/// its chunks are committed: the watch, the job's id, its events so far and the node running it.
async fn twelve_chunks_under_way(front: &Node) -> (Tcp, String, Vec<serde_json::Value>, String) {
    let (mut progress, mut bob) = watched_from(front).await;
    let id = submit_job(
        &mut bob,
        r#"{"chunks":12,"mibPerChunk":1,"chunkDelayMs":400}"#,
    )
    .await;
    let mut seen = Vec::new();
    let running_on = loop {
        let event = next_event_of(&mut progress, &id).await;
        seen.push(event.clone());
        if event["event"] == "CHUNK_COMPLETED" && event["chunkIndex"].as_u64().unwrap() >= 2 {
            break event["node"].as_str().unwrap().to_owned();
        }
    };
    (progress, id, seen, running_on)
}

/// Subscribes `client` to job `id`'s topic (no RECEIPT asked: the snapshot comes first,
/// before any RECEIPT would) and returns the snapshot it gets.
async fn snapshot_on_subscribe(client: &mut Tcp, id: &str) -> Frame {
    client
        .send(
            Frame::new(Command::Subscribe)
                .header("id", "job")
                .header("destination", format!("/topic/jobs/{id}")),
        )
        .await;
    let snapshot = client.frame().await;
    assert_eq!(snapshot.get("snapshot"), Some("true"), "{snapshot:?}");
    snapshot
}

/// Job `id`'s events on `progress`, added to `seen`, until it completes (a failure or a
/// cancellation fails the test); its result.
async fn until_completed(
    progress: &mut Tcp,
    id: &str,
    seen: &mut Vec<serde_json::Value>,
) -> serde_json::Value {
    loop {
        let event = next_event_of(progress, id).await;
        seen.push(event.clone());
        assert!(
            !matches!(
                event["event"].as_str(),
                Some("JOB_FAILED" | "JOB_CANCELLED")
            ),
            "{event}"
        );
        if event["event"] == "JOB_COMPLETED" {
            return event["result"].clone();
        }
    }
}

/// Sends `signal` (`STOP`, `CONT`) to `node`'s process.
fn signal(node: &Node, signal: &str) {
    let status = Process::new("kill")
        .arg(format!("-{signal}"))
        .arg(node.child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} failed");
}

#[tokio::test]
async fn a_node_stopped_past_its_lease_is_fenced_off_and_its_late_chunk_dropped() {
    let _alone = ONE_JETSTREAM_CLUSTER.lock().await;
    let (servers, _store) = jetstream_cluster();
    let [a, b, c] = job_nodes(&servers).await;
    let (mut progress, id, mut seen, first) = twelve_chunks_under_way(&a).await;
    let (stopped, other) = if first == "b" { (&b, "c") } else { (&c, "b") };
    // Frozen mid-chunk, past its lease: the other node takes the job over.
    signal(stopped, "STOP");
    loop {
        let event = next_event_of(&mut progress, &id).await;
        seen.push(event.clone());
        if event["event"] == "JOB_STARTED" {
            assert_eq!(event["node"], other, "{event}");
            break;
        }
    }
    // Woken while the other node runs the job: it still believes it holds the lease, finishes
    // its chunk and tries to commit it; the compare-and-set on its old lease fails.
    signal(stopped, "CONT");
    loop {
        let event = next_event_of(&mut progress, &id).await;
        seen.push(event.clone());
        assert_eq!(event["node"], other, "a fenced node spoke: {event}");
        if event["event"] == "JOB_COMPLETED" {
            break;
        }
    }
    // Nothing late from the fenced node.
    if let Some(frame) = progress.maybe_frame(QUIET * 4).await {
        panic!("an event after the job completed: {frame:?}");
    }
    let logged = logged_events(&servers[0], &id).await;
    assert_each_chunk_logged_once(&logged, 12);
    // The fenced node lives on and takes jobs again.
    assert_eq!(stopped.status().await["node"], first);
}

#[tokio::test]
async fn a_node_shut_down_cleanly_hands_its_job_over_at_once_and_the_view_shows_it_held() {
    let _alone = ONE_JETSTREAM_CLUSTER.lock().await;
    let (servers, _store) = jetstream_cluster();
    // Leases far longer than any event is waited for: the job can only move on before the
    // test gives up because its node handed it over.
    let [a, b, c] = job_nodes_leased(&servers, "", &[], "600000").await;
    let (mut progress, id, mut seen, first) = twelve_chunks_under_way(&a).await;
    // The cluster view: the job held by its node, none waiting, each stream in three copies.
    let view = a.status().await;
    let jetstream = &view["jetstream"];
    assert_eq!(jetstream["jobsHeld"], 1, "{view}");
    assert_eq!(jetstream["jobsWaiting"], 0, "{view}");
    let streams = jetstream["streams"].as_array().unwrap();
    for name in [
        "KV_STOMPEDE_JOBS",
        "STOMPEDE_JOB_RUNS",
        "STOMPEDE_JOB_EVENTS",
    ] {
        let stream = streams.iter().find(|s| s["name"] == name);
        let stream = stream.unwrap_or_else(|| panic!("{name} missing: {view}"));
        assert!(stream["leader"].is_string(), "{view}");
        assert_eq!(stream["replicas"].as_array().unwrap().len(), 2, "{view}");
    }
    let (_, metrics) = a.get("/metrics").await;
    assert!(
        metrics.contains("stompede_cluster_jobs_held 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("stompede_cluster_stream_messages{stream=\"STOMPEDE_JOB_EVENTS\"}"),
        "{metrics}"
    );
    let (mut stopping, _other_node, other) = if first == "b" {
        (b, c, "c")
    } else {
        (c, b, "b")
    };
    // A rolling restart's SIGTERM, mid-job.
    signal(&stopping, "TERM");
    let exit = stopping.child.wait().unwrap();
    assert!(exit.success(), "the node did not shut down cleanly: {exit}");
    until_completed(&mut progress, &id, &mut seen).await;
    let started: Vec<&serde_json::Value> = seen
        .iter()
        .filter(|e| e["event"] == "JOB_STARTED")
        .collect();
    assert_eq!(started.len(), 2, "{seen:?}");
    assert_eq!(started[1]["node"], other, "{seen:?}");
    // Nothing committed on the node that stopped is run again.
    let logged = logged_events(&servers[0], &id).await;
    assert_each_chunk_logged_once(&logged, 12);
}

/// The next event named `kind` of job `id` on `watcher` (its other events are skipped; a job
/// that fails fails the test).
async fn until_event(watcher: &mut Tcp, id: &str, kind: &str) -> serde_json::Value {
    loop {
        let event = next_event_of(watcher, id).await;
        if event["event"] == kind {
            return event;
        }
        assert_ne!(event["event"], "JOB_FAILED", "{event}");
    }
}

/// A control as a STOMP SEND to `/app/jobs/<id>/<action>`, receipted.
async fn control_over_stomp(client: &mut Tcp, id: &str, action: &str) {
    let frame = Frame::new(Command::Send)
        .header("destination", format!("/app/jobs/{id}/{action}"))
        .body(String::new());
    let receipt = format!("{action}-{id}");
    let before = client.send_until_receipt(frame, &receipt).await;
    assert!(before.is_empty(), "{before:?}");
}

#[tokio::test]
async fn a_job_is_read_watched_and_controlled_from_any_node_held_or_waiting() {
    let _alone = ONE_JETSTREAM_CLUSTER.lock().await;
    let (servers, _store) = jetstream_cluster();
    // One job at a time on each of B and C: a third waits in the work queue, held by none.
    // At most three unfinished jobs per user, across the cluster.
    let [a, b, c] = job_nodes_with(
        &servers,
        "job-max-queued-per-user = 3",
        &["--cluster-job-slots", "1"],
    )
    .await;
    let (mut progress, mut bob) = watched_from(&a).await;
    let long = r#"{"chunks":100,"mibPerChunk":0,"chunkDelayMs":300}"#;
    let first = submit_job(&mut bob, long).await;
    let second = submit_job(&mut bob, long).await;
    let started_on = until_event(&mut progress, &first, "JOB_STARTED").await["node"]
        .as_str()
        .unwrap()
        .to_owned();
    until_event(&mut progress, &second, "JOB_STARTED").await;
    let (holder, other) = if started_on == "b" { (b, c) } else { (c, b) };
    let other = &other;
    let other_name = if started_on == "b" { "c" } else { "b" };

    // A job waiting in the work queue: read and controlled through the bucket, from any node.
    let waiting = submit_job(&mut bob, r#"{"chunks":2,"mibPerChunk":0}"#).await;
    let (status, job) = a.rest("GET", "bob", &format!("/api/jobs/{waiting}")).await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["status"], "pending", "{job}");
    assert!(job["node"].is_null(), "{job}");
    // Bob's fourth unfinished job is refused on any node: the limit is the cluster's.
    for node in [&a, &holder, other] {
        let (status, problem) = node.submit_over_rest("bob", r#"{"chunks":1}"#).await;
        assert_eq!(status, 429, "{problem}");
        assert_eq!(problem["code"], "quota_exceeded", "{problem}");
    }
    let (status, job) = a
        .rest("POST", "bob", &format!("/api/jobs/{waiting}/pause"))
        .await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["status"], "paused", "{job}");
    let paused = until_event(&mut progress, &waiting, "JOB_PAUSED").await;
    assert_eq!(paused["by"], "bob");
    let mut bob_elsewhere = other.client("bob").await;
    control_over_stomp(&mut bob_elsewhere, &waiting, "resume").await;
    until_event(&mut progress, &waiting, "JOB_RESUMED").await;
    let (status, job) = other
        .rest("POST", "bob", &format!("/api/jobs/{waiting}/cancel"))
        .await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["status"], "cancelled", "{job}");
    let cancelled = until_event(&mut progress, &waiting, "JOB_CANCELLED").await;
    // Its events numbered on from its last one, with no gap.
    assert_eq!(cancelled["seq"], 4, "{cancelled}");
    // Cancelled, it no longer counts: one more job is taken, on any node, then no more.
    let (status, taken) = holder.submit_over_rest("bob", r#"{"chunks":1}"#).await;
    assert_eq!(status, 202, "{taken}");
    let (status, problem) = a.submit_over_rest("bob", r#"{"chunks":1}"#).await;
    assert_eq!(
        (status, &problem["code"]),
        (429, &"quota_exceeded".into()),
        "{problem}"
    );
    let taken = taken["id"].as_str().unwrap().to_owned();
    let (status, job) = a
        .rest("POST", "bob", &format!("/api/jobs/{taken}/cancel"))
        .await;
    assert_eq!(status, 200, "{job}");
    // Never run, so kept by no node: deleted from the bucket itself.
    let (status, problem) = a.rest("DELETE", "bob", &format!("/api/jobs/{taken}")).await;
    assert_eq!(status, 204, "{problem}");
    for node in [&a, &holder, other] {
        let (status, problem) = node.rest("GET", "bob", &format!("/api/jobs/{taken}")).await;
        assert_eq!(status, 404, "{problem}");
    }
    // The refusals of a single node.
    let (status, problem) = a
        .rest("POST", "bob", &format!("/api/jobs/{waiting}/pause"))
        .await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["code"], "invalid_state", "{problem}");
    assert_eq!(
        a.rest("GET", "eve", &format!("/api/jobs/{waiting}"))
            .await
            .0,
        404
    );
    let (status, problem) = a
        .rest("POST", "eve", &format!("/api/jobs/{first}/cancel"))
        .await;
    assert_eq!(status, 404, "{problem}");

    // A job running on another node: its snapshot and state from the front node and from the
    // runner that does not hold it, for its owner and an admin, not for anyone else.
    for (node, user) in [(&a, "bob"), (other, "bob"), (&a, "root")] {
        let (status, job) = node.rest("GET", user, &format!("/api/jobs/{first}")).await;
        assert_eq!(status, 200, "{job}");
        assert_eq!(job["status"], "processing", "{job}");
        assert_eq!(job["node"], started_on.as_str(), "{job}");
    }
    let mut watcher = a.client("bob").await;
    let snapshot = snapshot_on_subscribe(&mut watcher, &first).await;
    let state: serde_json::Value = serde_json::from_str(&text(&snapshot)).unwrap();
    assert_eq!(state["status"], "processing", "{state}");
    assert_eq!(state["node"], started_on.as_str(), "{state}");
    let snapshot_seq: u64 = snapshot.get("seq").unwrap().parse().unwrap();
    // Then its live events, from its node.
    let live = watcher.frame().await;
    assert!(live.get("snapshot").is_none(), "{live:?}");
    assert!(
        live.get("seq").unwrap().parse::<u64>().unwrap() > snapshot_seq,
        "{live:?}"
    );
    // The replay from the events stream, on a node that does not hold the job.
    let mut replayer = other.client("bob").await;
    replayer
        .send(
            Frame::new(Command::Subscribe)
                .header("id", "replay")
                .header("destination", format!("/topic/jobs/{first}"))
                .header("since-seq", "0"),
        )
        .await;
    let mut replayed = Vec::new();
    let after = loop {
        let frame = replayer.frame().await;
        assert_eq!(frame.command, Command::Message, "{frame:?}");
        if frame.get("replay") != Some("true") {
            break frame;
        }
        replayed.push(serde_json::from_str::<serde_json::Value>(&text(&frame)).unwrap());
    };
    assert_eq!(replayed[0]["event"], "JOB_ACCEPTED", "{replayed:?}");
    let seqs: Vec<u64> = replayed
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert!(replayed.iter().any(|e| e["event"] == "JOB_STARTED"));
    assert!(after.get("seq").unwrap().parse::<u64>().unwrap() > *seqs.last().unwrap());
    // Its events as Server-Sent Events from the front node, from the first (the same replay).
    let mut sse = reqwest::Client::new()
        .get(format!("http://{}/api/jobs/{first}/events", a.http))
        .basic_auth("bob", Some("pw"))
        .header("last-event-id", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status().as_u16(), 200);
    let mut stream = String::new();
    for _ in 0..1000 {
        if stream.contains("event: JOB_STARTED") {
            break;
        }
        let chunk = tokio::time::timeout(WAIT * 3, sse.chunk())
            .await
            .expect("no server-sent event came")
            .unwrap()
            .expect("the event stream ended");
        stream.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(stream.contains("event: JOB_ACCEPTED"), "{stream}");
    assert!(stream.contains("id: 1\n"), "{stream}");
    assert!(stream.contains("event: JOB_STARTED"), "{stream}");
    drop(sse);
    // Another user is refused, as on one node.
    let mut eve = a.client("eve").await;
    eve.send(
        Frame::new(Command::Subscribe)
            .header("id", "job")
            .header("destination", format!("/topic/jobs/{first}")),
    )
    .await;
    let refused = eve.frame().await;
    assert_eq!(refused.command, Command::Error, "{refused:?}");
    assert!(
        refused.get("message").unwrap().contains("no job"),
        "{refused:?}"
    );

    // Its controls, forwarded to its node: pause over STOMP from the front node, resume over
    // REST from the other runner, cancel from the front node.
    control_over_stomp(&mut bob, &first, "pause").await;
    until_event(&mut progress, &first, "JOB_PAUSED").await;
    let (_, job) = other
        .rest("GET", "bob", &format!("/api/jobs/{first}"))
        .await;
    assert_eq!(job["status"], "paused", "{job}");
    let (status, job) = other
        .rest("POST", "bob", &format!("/api/jobs/{first}/resume"))
        .await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["status"], "pending", "{job}");
    let resumed = until_event(&mut progress, &first, "JOB_RESUMED").await;
    assert_eq!(resumed["node"], started_on.as_str(), "{resumed}");
    for id in [&first, &second] {
        let (status, job) = a
            .rest("POST", "bob", &format!("/api/jobs/{id}/cancel"))
            .await;
        assert_eq!(status, 200, "{job}");
        assert_eq!(job["status"], "cancelled", "{job}");
        until_event(&mut progress, id, "JOB_CANCELLED").await;
    }
    let (status, job) = holder
        .rest("GET", "bob", &format!("/api/jobs/{first}"))
        .await;
    assert_eq!(
        (status, &job["status"]),
        (200, &"cancelled".into()),
        "{job}"
    );

    // The waiting job, cancelled, retried from the front node: offered again, it runs.
    let (status, job) = a
        .rest("POST", "bob", &format!("/api/jobs/{waiting}/retry"))
        .await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["status"], "pending", "{job}");
    until_event(&mut progress, &waiting, "JOB_RETRY_SCHEDULED").await;
    let done = until_event(&mut progress, &waiting, "JOB_COMPLETED").await;
    assert!(matches!(done["node"].as_str(), Some("b" | "c")), "{done}");
    // Deleted from the front node, by the node that finished it.
    let (status, problem) = a
        .rest("DELETE", "bob", &format!("/api/jobs/{waiting}"))
        .await;
    assert_eq!(status, 204, "{problem}");
    for node in [&a, &holder, other] {
        let (status, problem) = node
            .rest("GET", "bob", &format!("/api/jobs/{waiting}"))
            .await;
        assert_eq!(status, 404, "{problem}");
    }

    // A job finished on a node that is gone: the bucket speaks for it. Retried from the front
    // node, it runs on the node left; then cancelled and deleted through that node.
    let mut holder = holder;
    let _ = holder.child.kill();
    let _ = holder.child.wait();
    let (status, job) = a
        .rest("POST", "bob", &format!("/api/jobs/{first}/retry"))
        .await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["status"], "pending", "{job}");
    let retried = until_event(&mut progress, &first, "JOB_RETRY_SCHEDULED").await;
    assert!(retried["seq"].as_u64().unwrap() > snapshot_seq, "{retried}");
    let restarted = until_event(&mut progress, &first, "JOB_STARTED").await;
    assert_eq!(restarted["node"], other_name, "{restarted}");
    let (status, job) = a
        .rest("POST", "bob", &format!("/api/jobs/{first}/cancel"))
        .await;
    assert_eq!(status, 200, "{job}");
    until_event(&mut progress, &first, "JOB_CANCELLED").await;
    let (status, problem) = a.rest("DELETE", "bob", &format!("/api/jobs/{first}")).await;
    assert_eq!(status, 204, "{problem}");
    assert_eq!(
        other
            .rest("GET", "bob", &format!("/api/jobs/{first}"))
            .await
            .0,
        404
    );
}

/// A durable topic SUBSCRIBE (`durable:true`) with id `id`, receipted: the RECEIPT promises
/// the cluster keeps what is published for it from then on.
/// A session of dora's on `node`, with her durable subscription `id` to `destination` open.
async fn dora_subscribed_on(node: &Node, id: &str, destination: &str, ack: &str) -> Tcp {
    let mut owner = node.client("dora").await;
    subscribe_durable(&mut owner, id, destination, ack).await;
    owner
}

/// Three nodes on the JetStream cluster of `servers`, and dora's durable subscription `id` to
/// `destination` made on the first, then left: what is published from now on is kept for her.
/// The ack wait is well above what a loaded machine takes to deliver and acknowledge (see the
/// queue test above).
async fn durable_subscription_left(
    servers: &[Nats],
    id: &str,
    destination: &str,
    ack: &str,
) -> (Node, Node, Node) {
    let flags = ["--cluster-replicas", "3", "--cluster-ack-wait-ms", "5000"];
    let nodes = three_nodes_on_jetstream(servers, &flags).await;
    drop(dora_subscribed_on(&nodes.0, id, destination, ack).await);
    nodes
}

async fn subscribe_durable(client: &mut Tcp, id: &str, destination: &str, ack: &str) {
    client
        .send_receipted(
            Frame::new(Command::Subscribe)
                .header("id", id)
                .header("destination", destination)
                .header("ack", ack)
                .header("durable", "true"),
            &format!("sub-{id}"),
        )
        .await;
}

/// Reads the next MESSAGE, however long JetStream takes to hand it over (a node's first pull
/// may be lost while a new consumer elects its leader, and is asked again after its expiry).
async fn next_message(client: &mut Tcp, what: &str) -> Frame {
    let frame = tokio::time::timeout(WAIT * 3, client.next_frame())
        .await
        .unwrap_or_else(|_| panic!("{what} never came"))
        .expect("connection closed");
    assert_eq!(frame.command, Command::Message, "{frame:?}");
    frame
}

#[tokio::test]
async fn a_durable_topic_subscription_in_jetstream_keeps_what_any_node_publishes_for_any_node() {
    let _alone = ONE_JETSTREAM_CLUSTER.lock().await;
    let (servers, _store) = jetstream_cluster();
    // Opened on A, then away.
    let (a, b, c) =
        durable_subscription_left(&servers, "news", "/topic/news/*", "client-individual").await;

    // Published on B while the owner is away, with RECEIPTs; a live subscriber on C gets them
    // as ever. One is not persistent: kept too (the link publishes in order, and the last
    // RECEIPT waits for the stream to hold what came before it).
    let mut live = c.client("eve").await;
    live.subscribe("l", "/topic/news/*", "auto").await;
    let mut publisher = b.client("pub").await;
    const N: usize = 20;
    for i in 0..N {
        let destination = if i % 2 == 0 {
            "/topic/news/eu"
        } else {
            "/topic/news/us"
        };
        let mut frame = send(destination, &i.to_string());
        if i != 7 {
            frame = frame.header("persistent", "true");
        }
        publisher.send_receipted(frame, &i.to_string()).await;
    }
    // Not the subscription's destination: not kept for it.
    send_persistent(&mut publisher, "/topic/sport/eu", "sport", "sport").await;
    for i in 0..N {
        assert_eq!(
            text(&next_message(&mut live, "a live message").await),
            i.to_string()
        );
    }

    // Back on C: every one, in order, once, then acknowledged.
    let mut owner = dora_subscribed_on(&c, "news", "/topic/news/*", "client-individual").await;
    for i in 0..N {
        let message = next_message(&mut owner, "a kept message").await;
        assert_eq!(text(&message), i.to_string());
        assert_eq!(message.get("subscription"), Some("news"));
        assert_eq!(message.get("redelivered"), None);
        ack(&mut owner, &message).await;
    }
    assert!(owner.maybe_frame(QUIET).await.is_none(), "one too many");
    drop(owner);

    // Back again, on B: acknowledged ones are gone.
    let mut owner = dora_subscribed_on(&b, "news", "/topic/news/*", "client-individual").await;
    assert!(
        owner.maybe_frame(QUIET).await.is_none(),
        "an acknowledged message came back"
    );

    // Live, it gets each new message once (from JetStream, not also from the live fan-out),
    // wherever it is published, its own node included; a NACK hands it out again.
    send_persistent(&mut publisher, "/topic/news/eu", "here", "here").await;
    let mut elsewhere = a.client("pub").await;
    send_persistent(&mut elsewhere, "/topic/news/eu", "there", "there").await;
    let first = next_message(&mut owner, "a live durable message").await;
    let second = next_message(&mut owner, "a live durable message").await;
    assert_eq!([text(&first), text(&second)], ["here", "there"]);
    ack(&mut owner, &first).await;
    let id = second.get("ack").unwrap().to_owned();
    owner.send(Frame::new(Command::Nack).header("id", id)).await;
    let again = next_message(&mut owner, "the NACKed message").await;
    assert_eq!(text(&again), "there");
    assert_eq!(again.get("redelivered"), Some("true"));
    assert!(owner.maybe_frame(QUIET).await.is_none(), "one too many");

    // A session that ends holding it gives it back: redelivered on the next node.
    drop(owner);
    let mut owner = dora_subscribed_on(&a, "news", "/topic/news/*", "client-individual").await;
    let again = next_message(&mut owner, "the message held by a session that ended").await;
    assert_eq!(text(&again), "there");
    assert_eq!(again.get("redelivered"), Some("true"));
    ack(&mut owner, &again).await;
    assert!(owner.maybe_frame(QUIET).await.is_none(), "one too many");
    // Every ACK acknowledged in JetStream: the stream keeps nothing more (nor ever kept the
    // message no durable subscription matched).
    until_durable_topics_empty(&servers[0]).await;
}

/// Waits until the durable subscriptions' stream keeps no message.
async fn until_durable_topics_empty(nats: &Nats) {
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let deadline = Instant::now() + WAIT * 3;
    loop {
        let mut stream = js.get_stream("STOMPEDE_DURABLE_TOPICS").await.unwrap();
        let state = stream.info().await.unwrap().state.clone();
        if state.messages == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the stream still keeps {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn unsubscribing_a_durable_topic_subscription_on_one_node_removes_it_from_every_node() {
    let _alone = ONE_JETSTREAM_CLUSTER.lock().await;
    let (servers, _store) = jetstream_cluster();
    let (_a, b, c) = durable_subscription_left(&servers, "prices", "/topic/prices", "auto").await;
    let mut publisher = b.client("pub").await;
    send_persistent(&mut publisher, "/topic/prices", "before", "before").await;

    // Removed from C, where it never was open: what it kept goes with it, and what is
    // published afterwards is not kept.
    let mut owner = c.client("dora").await;
    owner
        .send_receipted(
            Frame::new(Command::Unsubscribe)
                .header("id", "prices")
                .header("durable", "true"),
            "unsub",
        )
        .await;
    drop(owner);
    send_persistent(&mut publisher, "/topic/prices", "after", "after").await;
    // The stream holds nothing: not what was kept for the removed subscription alone, nor
    // what nobody keeps.
    until_durable_topics_empty(&servers[0]).await;

    // Opened again (a new subscription, on B): it only gets what comes from now on.
    let mut owner = dora_subscribed_on(&b, "prices", "/topic/prices", "auto").await;
    assert!(
        owner.maybe_frame(QUIET).await.is_none(),
        "a removed subscription kept a message"
    );
    send_persistent(&mut publisher, "/topic/prices", "new", "new").await;
    assert_eq!(
        text(&next_message(&mut owner, "a new message").await),
        "new"
    );
    assert!(owner.maybe_frame(QUIET).await.is_none(), "one too many");
}
