//! The job engine over real STOMP connections, with the built-in `demo` job type: events in
//! order, retries, pause/resume, cancel, idempotency, priorities, delays, isolation between
//! users, snapshots and replay, deadlines, retention, and SIGKILL in the middle of a job.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::{error_message, Tcp};
use serde_json::Value;
use stompede::jobs::Demo;
use stompede::protocol::{Command, Frame};
use stompede::{BrokerBuilder, Config, Server};

struct JobServer {
    server: Server,
    _dir: tempfile::TempDir,
}

async fn start(adjust: impl FnOnce(&mut Config)) -> JobServer {
    let (mut config, dir) = common::test_config();
    config.job_retry_backoff_ms = 50;
    config.job_progress_interval_ms = 0;
    adjust(&mut config);
    let server = BrokerBuilder::new(config)
        .job_type("demo", Demo::default())
        .start()
        .await
        .unwrap();
    JobServer { server, _dir: dir }
}

impl JobServer {
    fn addr(&self) -> SocketAddr {
        self.server.stomp_addr().unwrap()
    }
}

/// A user's session subscribed to its progress and error queues.
async fn watcher(addr: SocketAddr, user: &str) -> Tcp {
    let mut client = Tcp::connect(addr, user).await;
    client
        .subscribe("progress", "/user/queue/progress", "auto")
        .await;
    client
        .subscribe("errors", "/user/queue/errors", "auto")
        .await;
    client
}

fn submit_frame(params: &str) -> Frame {
    Frame::new(Command::Send)
        .header("destination", "/app/jobs")
        .header("job-type", "demo")
        .body(params.to_owned())
}

/// Submits and returns the job id from the RECEIPT (events that arrive first are kept).
async fn submit(client: &mut Tcp, frame: Frame, early: &mut Vec<Frame>) -> String {
    client.send(frame.header("receipt", "submit")).await;
    loop {
        let f = client.frame().await;
        if f.command == Command::Receipt {
            assert_eq!(f.get("receipt-id"), Some("submit"));
            return f.get("job-id").expect("RECEIPT without job-id").to_owned();
        }
        early.push(f);
    }
}

/// Ann watches her queues and submits a job: her client and the job's id.
async fn ann_submits(addr: SocketAddr, frame: Frame) -> (Tcp, String) {
    let mut ann = watcher(addr, "ann").await;
    let id = submit(&mut ann, frame, &mut Vec::new()).await;
    (ann, id)
}

/// A SUBSCRIBE to job `id`'s topic that first replays its events after `seq`.
fn replay_since(id: &str, subscription: &str, seq: u64) -> Frame {
    Frame::new(Command::Subscribe)
        .header("id", subscription)
        .header("destination", format!("/topic/jobs/{id}"))
        .header("since-seq", seq.to_string())
}

fn body(frame: &Frame) -> Value {
    serde_json::from_slice(&frame.body).unwrap()
}

/// Reads events of `job` until one named `last` (inclusive).
async fn events_until(client: &mut Tcp, job: &str, last: &str, mut seen: Vec<Frame>) -> Vec<Value> {
    seen.retain(|f| f.get("job-id") == Some(job));
    let mut events: Vec<Value> = seen.iter().map(body).collect();
    if events.iter().any(|e| e["event"] == last) {
        return events;
    }
    loop {
        let frame = client.frame().await;
        assert_eq!(frame.command, Command::Message, "{frame:?}");
        if frame.get("job-id") != Some(job) {
            continue;
        }
        let event = body(&frame);
        assert_eq!(frame.get("event"), event["event"].as_str());
        assert_eq!(frame.get("seq"), Some(event["seq"].to_string().as_str()));
        let done = event["event"] == last;
        events.push(event);
        if done {
            return events;
        }
    }
}

fn names(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect()
}

fn chunk_indexes(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .filter(|e| e["event"] == "CHUNK_COMPLETED")
        .map(|e| e["chunkIndex"].as_u64().unwrap())
        .collect()
}

async fn control(client: &mut Tcp, job: &str, action: &str) {
    client
        .send(Frame::new(Command::Send).header("destination", format!("/app/jobs/{job}/{action}")))
        .await;
}

#[tokio::test]
async fn a_job_reports_every_event_in_order_and_its_result() {
    let s = start(|_| {}).await;
    let mut ann = watcher(s.addr(), "ann").await;
    ann.subscribe("jobs", "/user/queue/jobs", "auto").await;
    let mut early = Vec::new();
    let id = submit(
        &mut ann,
        submit_frame(r#"{"chunks":4,"mibPerChunk":1}"#).header("correlation-id", "c-1"),
        &mut early,
    )
    .await;
    let events = events_until(&mut ann, &id, "JOB_COMPLETED", early).await;
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    // JOB_ACCEPTED arrives twice (progress and jobs queues); every seq otherwise once, in order.
    let mut unique = seqs.clone();
    unique.dedup();
    assert_eq!(
        unique,
        (1..=unique.len() as u64).collect::<Vec<_>>(),
        "{seqs:?}"
    );
    let kinds = names(&events);
    assert_eq!(kinds[0], "JOB_ACCEPTED");
    assert!(kinds.contains(&"JOB_STARTED"));
    assert_eq!(chunk_indexes(&events), [0, 1, 2, 3]);
    let completed = events.last().unwrap();
    assert_eq!(completed["correlationId"], "c-1");
    let chunks = completed["result"]["chunks"].as_array().unwrap();
    assert_eq!(chunks.len(), 4);
    for (i, chunk) in chunks.iter().enumerate() {
        assert_eq!(chunk["index"], i as u64);
        assert_eq!(chunk["sha256"].as_str().unwrap().len(), 64);
    }
    // Each CHUNK_COMPLETED carried that chunk's own result.
    let first = events
        .iter()
        .find(|e| e["event"] == "CHUNK_COMPLETED")
        .unwrap();
    assert_eq!(first["result"], chunks[0]);
    let progress: Vec<f64> = events
        .iter()
        .filter(|e| e["event"] == "PROGRESS_UPDATE")
        .map(|e| e["percentage"].as_f64().unwrap())
        .collect();
    assert_eq!(*progress.last().unwrap(), 100.0);
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    let job = s.server.jobs().unwrap().job(&id).unwrap();
    assert_eq!(job.status, stompede::jobs::JobStatus::Completed);
}

#[tokio::test]
async fn injected_failures_are_retried_and_then_fail_the_job() {
    let s = start(|_| {}).await;
    let mut ann = watcher(s.addr(), "ann").await;
    let mut early = Vec::new();
    let id = submit(
        &mut ann,
        submit_frame(r#"{"chunks":3,"mibPerChunk":0,"failChunk":1,"failTimes":2}"#),
        &mut early,
    )
    .await;
    let events = events_until(&mut ann, &id, "JOB_COMPLETED", early).await;
    let retries: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "JOB_RETRY_SCHEDULED")
        .collect();
    assert_eq!(retries.len(), 2);
    assert_eq!(retries[0]["error"]["code"], "injected_failure");
    // Chunk 0 was done once, before the failures; it is never redone.
    assert_eq!(chunk_indexes(&events), [0, 1, 2]);
    assert_eq!(events.last().unwrap()["attempts"], 3);

    let mut early = Vec::new();
    let id = submit(
        &mut ann,
        submit_frame(r#"{"chunks":2,"mibPerChunk":0,"failChunk":0,"failTimes":5}"#)
            .header("max-attempts", "2"),
        &mut early,
    )
    .await;
    let events = events_until(&mut ann, &id, "JOB_FAILED", early).await;
    let failed = events.last().unwrap();
    assert_eq!(failed["code"], "injected_failure");
    assert_eq!(failed["attempts"], 2);
    assert!(chunk_indexes(&events).is_empty());
}

#[tokio::test]
async fn pause_stops_at_a_chunk_boundary_and_resume_finishes() {
    let s = start(|_| {}).await;
    let mut ann = watcher(s.addr(), "ann").await;
    let mut early = Vec::new();
    let id = submit(
        &mut ann,
        submit_frame(r#"{"chunks":5,"mibPerChunk":0,"chunkDelayMs":150}"#),
        &mut early,
    )
    .await;
    let before = events_until(&mut ann, &id, "CHUNK_COMPLETED", early).await;
    control(&mut ann, &id, "pause").await;
    let paused = events_until(&mut ann, &id, "JOB_PAUSED", Vec::new()).await;
    let done_before_resume = chunk_indexes(&before).len() + chunk_indexes(&paused).len();
    assert!(done_before_resume < 5, "the pause came too late to observe");
    assert!(
        ann.maybe_frame(Duration::from_millis(400)).await.is_none(),
        "work went on while paused"
    );
    assert_eq!(
        s.server.jobs().unwrap().job(&id).unwrap().status,
        stompede::jobs::JobStatus::Paused
    );
    control(&mut ann, &id, "resume").await;
    let after = events_until(&mut ann, &id, "JOB_COMPLETED", Vec::new()).await;
    assert_eq!(names(&after)[0], "JOB_RESUMED");
    let mut all = chunk_indexes(&before);
    all.extend(chunk_indexes(&paused));
    all.extend(chunk_indexes(&after));
    assert_eq!(all, [0, 1, 2, 3, 4], "each chunk exactly once");
}

#[tokio::test]
async fn cancel_stops_a_running_job_and_retry_finishes_it() {
    let s = start(|c| c.job_cancel_grace_ms = 100).await;
    let mut ann = watcher(s.addr(), "ann").await;
    let mut early = Vec::new();
    let id = submit(
        &mut ann,
        submit_frame(r#"{"chunks":6,"mibPerChunk":0,"chunkDelayMs":200}"#),
        &mut early,
    )
    .await;
    let started = events_until(&mut ann, &id, "CHUNK_COMPLETED", early).await;
    control(&mut ann, &id, "cancel").await;
    let cancelled = events_until(&mut ann, &id, "JOB_CANCELLED", Vec::new()).await;
    assert!(
        ann.maybe_frame(Duration::from_millis(500)).await.is_none(),
        "events after cancel"
    );
    control(&mut ann, &id, "retry").await;
    let after = events_until(&mut ann, &id, "JOB_COMPLETED", Vec::new()).await;
    let mut all = chunk_indexes(&started);
    all.extend(chunk_indexes(&cancelled));
    all.extend(chunk_indexes(&after));
    all.sort_unstable();
    assert_eq!(
        all,
        [0, 1, 2, 3, 4, 5],
        "finished chunks are not redone after a retry"
    );
    let result = &after.last().unwrap()["result"]["chunks"];
    assert_eq!(result.as_array().unwrap().len(), 6);
}

#[tokio::test]
async fn an_idempotency_key_returns_the_existing_job() {
    let s = start(|_| {}).await;
    let mut ann = watcher(s.addr(), "ann").await;
    let mut early = Vec::new();
    let frame =
        || submit_frame(r#"{"chunks":1,"mibPerChunk":0}"#).header("idempotency-key", "upload-7");
    let first = submit(&mut ann, frame(), &mut early).await;
    events_until(
        &mut ann,
        &first,
        "JOB_COMPLETED",
        std::mem::take(&mut early),
    )
    .await;
    let second = submit(&mut ann, frame(), &mut early).await;
    assert_eq!(first, second);
    assert!(
        ann.maybe_frame(Duration::from_millis(300)).await.is_none(),
        "the job ran again"
    );
    // Another user's identical key is another job.
    let mut bob = watcher(s.addr(), "bob").await;
    let bobs = submit(&mut bob, frame(), &mut Vec::new()).await;
    assert_ne!(bobs, first);
}

#[tokio::test]
async fn priorities_order_waiting_jobs_and_delays_hold_them() {
    let s = start(|c| c.job_concurrency = 1).await;
    let mut ann = watcher(s.addr(), "ann").await;
    let mut early = Vec::new();
    let blocker = submit(
        &mut ann,
        submit_frame(r#"{"chunks":1,"mibPerChunk":0,"chunkDelayMs":300}"#),
        &mut early,
    )
    .await;
    let low = submit(
        &mut ann,
        submit_frame(r#"{"chunks":1,"mibPerChunk":0}"#).header("priority", "low"),
        &mut early,
    )
    .await;
    let high = submit(
        &mut ann,
        submit_frame(r#"{"chunks":1,"mibPerChunk":0}"#).header("priority", "high"),
        &mut early,
    )
    .await;
    let delayed = submit(
        &mut ann,
        submit_frame(r#"{"chunks":1,"mibPerChunk":0}"#)
            .header("priority", "critical")
            .header("delay", "700"),
        &mut early,
    )
    .await;
    let mut started = Vec::new();
    let mut completed = 0;
    let mut frames = early;
    while completed < 4 {
        let frame = match frames.pop() {
            Some(f) => f,
            None => ann.frame().await,
        };
        match frame.get("event") {
            Some("JOB_STARTED") => started.push(frame.get("job-id").unwrap().to_owned()),
            Some("JOB_COMPLETED") => completed += 1,
            _ => {}
        }
    }
    assert_eq!(started, [blocker, high, low, delayed.clone()]);
    let job = s.server.jobs().unwrap().job(&delayed).unwrap();
    assert!(job.started_at.unwrap() >= job.created_at + 700, "{job:?}");
}

#[tokio::test]
async fn users_cannot_watch_or_control_each_others_jobs() {
    let s = start(|c| c.job_admins = vec!["root".into()]).await;
    let (mut ann, id) = ann_submits(
        s.addr(),
        submit_frame(r#"{"chunks":3,"mibPerChunk":0,"chunkDelayMs":300}"#),
    )
    .await;
    let mut bob = watcher(s.addr(), "bob").await;
    bob.send(
        Frame::new(Command::Send)
            .header("destination", format!("/app/jobs/{id}/cancel"))
            .header("receipt", "x"),
    )
    .await;
    let rejected = bob.frame().await;
    assert_eq!(rejected.get("event"), Some("JOB_REJECTED"));
    assert_eq!(rejected.get("receipt-id"), Some("x"));
    assert_eq!(body(&rejected)["code"], "not_found");
    // No RECEIPT for a refused request, and the session stays open.
    bob.send_receipted(
        Frame::new(Command::Begin).header("transaction", "t"),
        "alive",
    )
    .await;
    let mut spy = Tcp::connect(s.addr(), "bob").await;
    spy.send(
        Frame::new(Command::Subscribe)
            .header("id", "1")
            .header("destination", format!("/topic/jobs/{id}")),
    )
    .await;
    let frames = spy.until_closed().await;
    assert!(error_message(&frames[0]).contains("refused"));
    let mut spy = Tcp::connect(s.addr(), "bob").await;
    spy.send(
        Frame::new(Command::Subscribe)
            .header("id", "1")
            .header("destination", "/topic/jobs/**"),
    )
    .await;
    assert!(error_message(&spy.until_closed().await[0]).contains("admins"));
    // An admin may watch everything.
    let mut root = Tcp::connect(s.addr(), "root").await;
    root.subscribe("all", "/topic/jobs/**", "auto").await;
    let event = root.frame().await;
    assert_eq!(event.get("job-id"), Some(id.as_str()));
    let events = events_until(&mut ann, &id, "JOB_COMPLETED", Vec::new()).await;
    assert!(!names(&events).contains(&"JOB_CANCELLED"));
}

#[tokio::test]
async fn a_new_subscriber_gets_a_snapshot_or_a_replay_since_a_seq() {
    let s = start(|_| {}).await;
    let mut ann = watcher(s.addr(), "ann").await;
    let mut early = Vec::new();
    let id = submit(
        &mut ann,
        submit_frame(r#"{"chunks":2,"mibPerChunk":0}"#),
        &mut early,
    )
    .await;
    let events = events_until(&mut ann, &id, "JOB_COMPLETED", early).await;
    let last_seq = events.last().unwrap()["seq"].as_u64().unwrap();
    let mut page = Tcp::connect(s.addr(), "ann").await;
    page.send(
        Frame::new(Command::Subscribe)
            .header("id", "job")
            .header("destination", format!("/topic/jobs/{id}")),
    )
    .await;
    let snapshot = page.frame().await;
    assert_eq!(snapshot.get("snapshot"), Some("true"));
    let state = body(&snapshot);
    assert_eq!(state["status"], "completed");
    assert_eq!(state["seq"], last_seq);
    let mut replay = Tcp::connect(s.addr(), "ann").await;
    replay.send(replay_since(&id, "r", 3)).await;
    let mut seqs = Vec::new();
    while let Some(frame) = replay.maybe_frame(Duration::from_millis(300)).await {
        assert_eq!(frame.get("replay"), Some("true"));
        seqs.push(body(&frame)["seq"].as_u64().unwrap());
    }
    assert_eq!(seqs, (4..=last_seq).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_joins_the_live_events_without_a_gap_or_a_repeat() {
    let s = start(|_| {}).await;
    let (_ann, id) = ann_submits(
        s.addr(),
        submit_frame(r#"{"chunks":300,"mibPerChunk":0,"chunkDelayMs":2}"#),
    )
    .await;
    // Pages open one after another while the job runs, each asking for everything: some
    // events reach each page in its replay, the rest live, and every event exactly once.
    let mut pages = Vec::new();
    for _ in 0..8 {
        let mut page = Tcp::connect(s.addr(), "ann").await;
        page.send(replay_since(&id, "job", 0)).await;
        pages.push(tokio::spawn(async move {
            let (mut seqs, mut replayed) = (Vec::new(), 0);
            loop {
                let frame = page.frame().await;
                assert_eq!(frame.command, Command::Message, "{frame:?}");
                replayed += usize::from(frame.get("replay") == Some("true"));
                let event = body(&frame);
                seqs.push(event["seq"].as_u64().unwrap());
                if event["event"] == "JOB_COMPLETED" {
                    return (seqs, replayed);
                }
            }
        }));
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let mut replayed = 0;
    for page in pages {
        let (seqs, replays) = page.await.unwrap();
        let skip = seqs.windows(2).find(|w| w[1] != w[0] + 1);
        assert!(
            skip.is_none() && seqs.first() == Some(&1),
            "{replays} events replayed, then a skip {skip:?} (a gap or a repeat)"
        );
        replayed += replays;
    }
    assert!(replayed > 0, "no page joined while the job ran");
}

#[tokio::test]
async fn bad_submissions_are_rejected_without_closing_the_session() {
    let s = start(|_| {}).await;
    let mut ann = watcher(s.addr(), "ann").await;
    for (frame, code) in [
        (
            submit_frame("{}").header("job-type", "nope"),
            "unknown_type",
        ),
        (submit_frame(r#"{"chunks":"many"}"#), "invalid_parameter"),
        (submit_frame("not json"), "invalid_parameter"),
        (
            submit_frame("{}").header("priority", "urgent"),
            "invalid_parameter",
        ),
        (
            submit_frame("{}").header("max-attempts", "0"),
            "invalid_parameter",
        ),
    ] {
        let mut frame = frame;
        if code == "unknown_type" {
            frame.headers.set("job-type", "nope");
        }
        ann.send(frame.header("receipt", "r").header("correlation-id", "cid"))
            .await;
        let rejected = ann.frame().await;
        assert_eq!(rejected.get("event"), Some("JOB_REJECTED"), "{rejected:?}");
        assert_eq!(rejected.get("correlation-id"), Some("cid"));
        assert_eq!(body(&rejected)["code"], code);
    }
    ann.send_receipted(
        Frame::new(Command::Begin).header("transaction", "t"),
        "still-open",
    )
    .await;
}

/// The per-user quota counts the jobs still to finish: completed, failed and cancelled ones
/// give their place back, so a user may run any number of jobs over time, a few at a time.
#[tokio::test]
async fn the_per_user_quota_counts_only_unfinished_jobs() {
    let s = start(|c| c.job_max_queued_per_user = 2).await;
    let mut ann = watcher(s.addr(), "ann").await;
    // More finished jobs than the quota: each ends before the next is submitted.
    for round in 0..3 {
        let mut early = Vec::new();
        let done = submit(
            &mut ann,
            submit_frame(r#"{"chunks":1,"mibPerChunk":0}"#),
            &mut early,
        )
        .await;
        events_until(&mut ann, &done, "JOB_COMPLETED", early).await;
        let mut early = Vec::new();
        let failing = submit_frame(r#"{"chunks":1,"mibPerChunk":0,"failChunk":0,"failTimes":9}"#)
            .header("max-attempts", "1");
        let failed = submit(&mut ann, failing, &mut early).await;
        let events = events_until(&mut ann, &failed, "JOB_FAILED", early).await;
        assert_eq!(names(&events).last(), Some(&"JOB_FAILED"), "round {round}");
    }
    // Two jobs held an hour fill the quota; a third is refused with the reason.
    let held = || submit_frame(r#"{"chunks":1,"mibPerChunk":0}"#).header("delay", "3600000");
    let first = submit(&mut ann, held(), &mut Vec::new()).await;
    submit(&mut ann, held(), &mut Vec::new()).await;
    ann.send(held().header("receipt", "over")).await;
    let refused = loop {
        let frame = ann.frame().await;
        assert_ne!(
            frame.command,
            Command::Receipt,
            "a job over the quota was accepted"
        );
        if frame.get("event") == Some("JOB_REJECTED") {
            break frame;
        }
    };
    assert_eq!(body(&refused)["code"], "quota_exceeded");
    // A cancelled job gives its place back.
    control(&mut ann, &first, "cancel").await;
    events_until(&mut ann, &first, "JOB_CANCELLED", Vec::new()).await;
    submit(&mut ann, held(), &mut Vec::new()).await;
}

#[tokio::test]
async fn a_job_past_its_deadline_fails_as_expired_and_finished_jobs_are_removed() {
    let s = start(|c| {
        c.job_deadline_ms = 300;
        c.job_retention_ms = 1_000;
    })
    .await;
    let (mut ann, id) = ann_submits(
        s.addr(),
        submit_frame(r#"{"chunks":1,"mibPerChunk":0}"#).header("delay", "60000"),
    )
    .await;
    let events = events_until(&mut ann, &id, "JOB_FAILED", Vec::new()).await;
    assert_eq!(events.last().unwrap()["code"], "expired");
    let engine = s.server.jobs().unwrap();
    assert_eq!(engine.stats().failed, 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while engine.job(&id).is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "retention did not remove the job"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn sigkill_mid_job_resumes_from_the_checkpoint_with_each_chunk_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::ServerProcess::start(dir.path());
    let (mut ann, id) = ann_submits(
        server.stomp,
        submit_frame(r#"{"chunks":8,"mibPerChunk":1,"chunkDelayMs":250}"#),
    )
    .await;
    let mut before = Vec::new();
    while chunk_indexes(&before).len() < 3 {
        before.extend(events_until(&mut ann, &id, "CHUNK_COMPLETED", Vec::new()).await);
    }
    drop(server); // SIGKILL
    let server = common::ServerProcess::start(dir.path());
    let mut page = Tcp::connect(server.stomp, "ann").await;
    page.send(replay_since(&id, "all", 0)).await;
    let log = events_until(&mut page, &id, "JOB_COMPLETED", Vec::new()).await;
    let seqs: Vec<u64> = log.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "a gap in the event log"
    );
    // The whole event log: each chunk completed exactly once, across the crash.
    let mut per_chunk: HashMap<u64, usize> = HashMap::new();
    for index in chunk_indexes(&log) {
        *per_chunk.entry(index).or_default() += 1;
    }
    assert_eq!(per_chunk.len(), 8, "{per_chunk:?}");
    assert!(
        per_chunk.values().all(|n| *n == 1),
        "a chunk was redone: {per_chunk:?}"
    );
    // The chunks finished before the kill kept their results.
    for event in before.iter().filter(|e| e["event"] == "CHUNK_COMPLETED") {
        let index = event["chunkIndex"].as_u64().unwrap() as usize;
        let result = &log.last().unwrap()["result"]["chunks"][index];
        assert_eq!(&event["result"], result);
    }
    let chunks = log.last().unwrap()["result"]["chunks"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(chunks.len(), 8);
}

#[tokio::test]
async fn the_acl_is_checked_before_a_job_topic_snapshot_is_sent() {
    // Ann owns the job, so the job guard alone would admit her with a snapshot; the ACL
    // refuses her every job topic, and it decides first.
    let server = start(|config| {
        config.acl = vec![stompede::config::AclRule {
            user: "ann".into(),
            destination: "/topic/jobs/**".into(),
            read: false,
            write: false,
        }];
    })
    .await;
    let (_ann, id) = ann_submits(
        server.addr(),
        submit_frame(r#"{"chunks":2,"mibPerChunk":0}"#),
    )
    .await;
    let mut ann = Tcp::connect(server.addr(), "ann").await;
    ann.send(
        Frame::new(Command::Subscribe)
            .header("id", "job")
            .header("destination", format!("/topic/jobs/{id}"))
            .header("receipt", "s"),
    )
    .await;
    let frames = ann.until_closed().await;
    assert_eq!(
        frames.len(),
        1,
        "something came before or after the ERROR: {frames:?}"
    );
    assert!(error_message(&frames[0]).contains("may not subscribe"));
    // The in-process client is held to the same rules.
    let local = server.server.local_client("ann");
    let refused = local.subscribe(&format!("/topic/jobs/{id}")).unwrap_err();
    assert!(
        refused.to_string().contains("may not subscribe"),
        "{refused}"
    );
    let bob = server.server.local_client("bob");
    let refused = bob.subscribe(&format!("/topic/jobs/{id}")).unwrap_err();
    assert!(refused.to_string().contains("refused"), "{refused}");
}

#[tokio::test]
async fn a_replay_longer_than_an_outbox_reaches_its_subscriber_whole() {
    // A replay is the answer to the subscriber's own SUBSCRIBE: hundreds of events at once
    // must not count as a slow consumer (the hard cap is 4 x 64 items by default).
    let s = start(|_| {}).await;
    let (mut ann, id) =
        ann_submits(s.addr(), submit_frame(r#"{"chunks":400,"mibPerChunk":0}"#)).await;
    let live = events_until(&mut ann, &id, "JOB_COMPLETED", Vec::new()).await;
    let last_seq = live.last().unwrap()["seq"].as_u64().unwrap();
    let mut replay = Tcp::connect(s.addr(), "ann").await;
    replay.send(replay_since(&id, "r", 0)).await;
    let mut seqs = Vec::new();
    while seqs.last() != Some(&last_seq) {
        let frame = replay.frame().await;
        assert_eq!(frame.command, Command::Message, "{frame:?}");
        assert_eq!(frame.get("replay"), Some("true"));
        seqs.push(body(&frame)["seq"].as_u64().unwrap());
    }
    assert!(seqs.len() > 400, "only {} events replayed", seqs.len());
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "the replay has a gap"
    );
}

/// The bench-only `noop` type (`serve --bench-job-types`) over the submission path the load
/// tool times (`cargo bench --bench load -- jobs`): every RECEIPT comes after its job's commit
/// (a SIGKILL right after the last RECEIPT loses none), a restart keeps the pending jobs, and
/// each of them then runs exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noop_jobs_outlive_a_kill_after_their_receipts_and_each_runs_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = common::ServerProcess::start_with(dir.path(), &["--bench-job-types"]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // Pending when the server is killed; due once it has restarted and Ann watches.
    let run_at = (now + 6_000).to_string();
    let callers: Vec<_> = (0..4)
        .map(|c| {
            let (addr, run_at) = (server.stomp, run_at.clone());
            tokio::spawn(async move {
                let mut client = Tcp::connect(addr, "ann").await;
                let mut ids = Vec::new();
                for i in 0..25 {
                    let receipt = format!("{c}-{i}");
                    client
                        .send(
                            Frame::new(Command::Send)
                                .header("destination", "/app/jobs")
                                .header("job-type", "noop")
                                .header("run-at", run_at.as_str())
                                .header("receipt", receipt.as_str())
                                .body("{}"),
                        )
                        .await;
                    let reply = client.frame().await;
                    assert_eq!(reply.command, Command::Receipt, "{reply:?}");
                    assert_eq!(reply.get("receipt-id"), Some(receipt.as_str()));
                    ids.push(reply.get("job-id").unwrap().to_owned());
                }
                ids
            })
        })
        .collect();
    let mut submitted = std::collections::HashSet::new();
    for caller in callers {
        submitted.extend(caller.await.unwrap());
    }
    assert_eq!(submitted.len(), 100);
    server.kill();

    let server = common::ServerProcess::start_with(dir.path(), &["--bench-job-types"]);
    let mut ann = watcher(server.stomp, "ann").await;
    let mut started: HashMap<String, usize> = HashMap::new();
    let mut completed: HashMap<String, usize> = HashMap::new();
    while completed.len() < submitted.len() {
        let frame = tokio::time::timeout(Duration::from_secs(30), ann.frame())
            .await
            .expect("the jobs did not all complete");
        let Some(id) = frame.get("job-id").map(str::to_owned) else {
            continue;
        };
        assert!(submitted.contains(&id), "an unknown job ran: {id}");
        match frame.get("event") {
            Some("JOB_STARTED") => *started.entry(id).or_default() += 1,
            Some("JOB_COMPLETED") => {
                let event = body(&frame);
                assert_eq!(event["result"]["chunks"], 1, "{event}");
                *completed.entry(id).or_default() += 1;
            }
            _ => {}
        }
    }
    // A moment for a duplicate to show itself.
    while let Some(frame) = ann.maybe_frame(Duration::from_millis(300)).await {
        if let (Some(id), Some("JOB_STARTED" | "JOB_COMPLETED")) =
            (frame.get("job-id"), frame.get("event"))
        {
            panic!("job {id} ran again: {frame:?}");
        }
    }
    assert_eq!(started.len(), 100);
    assert!(started.values().all(|n| *n == 1), "{started:?}");
    assert!(completed.values().all(|n| *n == 1), "{completed:?}");
}

/// A job type whose plan takes a while (as reading a large input does), so that a pause can
/// land after the dispatcher picked the job and before its worker began it.
struct SlowPlan;

impl stompede::jobs::JobHandler for SlowPlan {
    fn validate(&self, _params: &Value) -> Result<(), stompede::jobs::JobError> {
        Ok(())
    }

    fn plan(
        &self,
        _job: &stompede::jobs::JobInput,
    ) -> Result<Vec<stompede::jobs::ChunkPlan>, stompede::jobs::JobError> {
        std::thread::sleep(Duration::from_millis(400));
        Ok(vec![stompede::jobs::ChunkPlan {
            label: "all".into(),
            params: Value::Null,
            units: 1,
        }])
    }

    fn run_chunk(&self, _ctx: stompede::jobs::ChunkContext) -> stompede::jobs::ChunkFuture {
        Box::pin(async { Ok(Value::Null) })
    }

    fn merge(
        &self,
        _job: &stompede::jobs::JobInput,
        _chunks: Vec<Value>,
    ) -> Result<Value, stompede::jobs::JobError> {
        Ok(serde_json::json!({ "done": true }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_while_the_job_is_being_planned_holds() {
    let (config, _dir) = common::test_config();
    let server = BrokerBuilder::new(config)
        .job_type("slow-plan", SlowPlan)
        .start()
        .await
        .unwrap();
    let engine = server.jobs().unwrap();
    let mut headers = stompede::protocol::Headers::new();
    headers.push("job-type", "slow-plan");
    let job = engine.submit("ann", &headers, b"{}").await.unwrap();
    // The dispatcher takes it at once; its worker is planning for 400 ms.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let paused = engine.control("ann", &job.id, "pause").await.unwrap();
    assert_eq!(paused.status, stompede::jobs::JobStatus::Paused);
    // The worker that was planning must not start it.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let now = engine.job(&job.id).unwrap();
    assert_eq!(now.status, stompede::jobs::JobStatus::Paused, "{now:?}");
    engine.control("ann", &job.id, "resume").await.unwrap();
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let now = engine.job(&job.id).unwrap();
        if now.status == stompede::jobs::JobStatus::Completed {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{now:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waiting jobs are held in memory as index entries and read back from the store (issue #25):
/// what is read back is the job as submitted, and every query and control still works on it.
#[tokio::test]
async fn waiting_jobs_read_back_from_the_store_are_whole_and_controllable() {
    let s = start(|_| {}).await;
    let mut ann = watcher(s.addr(), "ann").await;
    let mut early = Vec::new();
    let mut ids = Vec::new();
    for n in 0..3 {
        let frame = submit_frame(r#"{"chunks":2,"mibPerChunk":0}"#)
            .header("delay", "600000")
            .header("priority", "high")
            .header("correlation-id", format!("c-{n}"));
        ids.push(submit(&mut ann, frame, &mut early).await);
    }
    let engine = s.server.jobs().unwrap();

    let job = engine.job(&ids[0]).unwrap();
    assert_eq!(job.status, stompede::jobs::JobStatus::Pending);
    assert_eq!((job.priority, job.seq, job.owner.as_str()), (10, 1, "ann"));
    assert_eq!(job.params["chunks"], 2);
    assert_eq!(job.correlation_id.as_deref(), Some("c-0"));
    assert!(job.run_at >= job.created_at + 600_000, "{job:?}");

    let listed: Vec<String> = engine.jobs(Some("ann")).into_iter().map(|j| j.id).collect();
    assert_eq!(listed, ids);
    assert!(engine.jobs(Some("bob")).is_empty());
    let stats = engine.stats();
    assert_eq!(stats.by_status.get("pending"), Some(&3));
    assert_eq!(stats.by_type.get("demo"), Some(&3));
    assert_eq!(stats.queue_length, 3);

    assert!(engine.may_access("ann", &ids[0]));
    assert!(!engine.may_access("bob", &ids[0]));
    assert_eq!(
        engine
            .control("bob", &ids[0], "cancel")
            .await
            .unwrap_err()
            .code,
        "not_found"
    );
    let paused = engine.control("ann", &ids[1], "pause").await.unwrap();
    assert_eq!(paused.status, stompede::jobs::JobStatus::Paused);
    let resumed = engine.control("ann", &ids[1], "resume").await.unwrap();
    assert_eq!(resumed.status, stompede::jobs::JobStatus::Pending);
    assert_eq!(
        (resumed.seq, resumed.params["chunks"].as_u64()),
        (3, Some(2))
    );
    let cancelled = engine.control("ann", &ids[2], "cancel").await.unwrap();
    assert_eq!(cancelled.status, stompede::jobs::JobStatus::Cancelled);
    assert_eq!(cancelled.correlation_id.as_deref(), Some("c-2"));
    assert_eq!(engine.stats().queue_length, 2);
}
