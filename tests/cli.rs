//! The command-line client, run as people and scripts run it: the real `stompede` binary as
//! both server and client, through a pseudo-terminal (progress bars) and without one (plain
//! lines, `--json`).
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_stompede");

/// A `stompede serve` on loopback, killed when dropped.
struct Served {
    child: Child,
    ws: String,
    tcp: String,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(config: &str) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stompede.toml");
    std::fs::write(&file, config).unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--stomp", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&file)
        .env("STOMPEDE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let listening: Value = serde_json::from_str(&line).unwrap();
    Served {
        ws: listening["ws"].as_str().unwrap().to_owned(),
        tcp: format!("tcp://{}", listening["stomp"].as_str().unwrap()),
        child,
        _dir: dir,
    }
}

/// The client with `args` as `user` with `password` (no terminal), not yet run.
fn command_as(served: &Served, user: &str, password: &str, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env("STOMPEDE_URL", &served.ws)
        .env("STOMPEDE_USER", user)
        .env("STOMPEDE_PASSWORD", password)
        .env_remove("STOMPEDE_HTTP_URL")
        .stdin(Stdio::null());
    command
}

/// Runs the client with `args` as `user` with `password`.
fn client_as(served: &Served, user: &str, password: &str, args: &[&str]) -> Output {
    command_as(served, user, password, args).output().unwrap()
}

/// Runs the client with `args` (no terminal), as user `ann`.
fn client(served: &Served, args: &[&str]) -> Output {
    client_as(served, "ann", "pw", args)
}

/// Runs the client with `args` against an open-mode server, naming no user.
fn anonymous_client(served: &Served, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("STOMPEDE_URL", &served.ws)
        .env_remove("STOMPEDE_USER")
        .env_remove("STOMPEDE_PASSWORD")
        .env_remove("STOMPEDE_HTTP_URL")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const USERS: &str = "job-retry-backoff-ms = 10\n[users]\nann = \"pw\"\nbob = \"pw\"\n";

#[test]
fn submit_follows_a_job_to_its_end_in_plain_lines_and_in_json() {
    let served = serve(USERS);
    let out = client(&served, &["submit", "demo", "--chunks", "4"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("submitted (demo)"), "{stderr}");
    assert!(stderr.contains("chunk 4/4 (100%)"), "{stderr}");
    assert!(stdout.contains("demo  completed"), "{stdout}");

    // --json over TCP: the final event alone, as jobs.md documents it.
    let out = client(
        &served,
        &[
            "submit",
            "--url",
            &served.tcp,
            "--json",
            "demo",
            "--chunks",
            "3",
            "--mib-per-chunk",
            "0",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "", "nothing but the JSON");
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let event: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(event["event"], "JOB_COMPLETED");
    assert_eq!(event["result"]["chunks"].as_array().unwrap().len(), 3);
}

#[test]
fn through_a_terminal_the_progress_bar_draws_and_finishes() {
    let served = serve(USERS);
    let command = format!(
        "STOMPEDE_PASSWORD=pw {BIN} submit --url {} --user ann demo --chunks 6 --chunk-delay-ms 50",
        served.ws
    );
    // util-linux's script(1) gives the client a pseudo-terminal.
    let out = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script(1) from util-linux runs the client in a pseudo-terminal");
    let screen = text(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(
        screen.contains("\u{1b}["),
        "terminal escapes draw the bar: {screen}"
    );
    assert!(screen.contains("6/6 chunks"), "{screen}");
    assert!(screen.contains("completed"), "{screen}");
    assert!(
        !screen.contains("chunk 6/6 (100%)"),
        "no plain lines on a terminal"
    );
}

#[test]
fn a_reconciliation_uploads_its_files_and_prints_its_counts() {
    // Open mode: the client names itself the same over HTTP and STOMP, so the job may read
    // the uploads.
    let served = serve("");
    let work = tempfile::tempdir().unwrap();
    let bo = work.path().join("relevé bo.csv");
    let partner = work.path().join("partner.csv");
    std::fs::write(&bo, "id,amount\n1,10.00\n2,20.00\n3,30.00\n").unwrap();
    std::fs::write(&partner, "ref,amount\n1,10.00\n2,25.00\n4,40.00\n").unwrap();
    let out = anonymous_client(
        &served,
        &[
            "submit",
            "--json",
            "reconcile",
            bo.to_str().unwrap(),
            partner.to_str().unwrap(),
            "--bo-key",
            "id",
            "--partner-key",
            "ref",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let event: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(event["event"], "JOB_COMPLETED", "{event}");
    let result = &event["result"];
    let counts = [
        "totalMatches",
        "totalMismatches",
        "totalBoOnly",
        "totalPartnerOnly",
    ];
    for count in counts {
        assert_eq!(result[count], 1, "{count}: {result}");
    }

    // A person's summary of the same.
    let out = anonymous_client(
        &served,
        &[
            "submit",
            "reconcile",
            bo.to_str().unwrap(),
            partner.to_str().unwrap(),
            "--bo-key",
            "id",
            "--partner-key",
            "ref",
        ],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("reconcile  completed"), "{stdout}");
    let mismatches = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("totalMismatches"));
    assert_eq!(
        mismatches.map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["totalMismatches", "1"]),
        "{stdout}"
    );
    let download = stdout
        .lines()
        .find(|l| l.contains("mismatches.csv"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap()
        .to_owned();
    assert!(download.starts_with("http://"), "{stdout}");
    // The name the client gave itself, as the job's owner.
    let me = format!(
        "{}:",
        std::env::var("USER").unwrap_or_else(|_| "cli".to_owned())
    );
    let fetched = Command::new("curl")
        .args(["-sS", "-u", &me, &download])
        .output()
        .unwrap();
    assert!(
        text(&fetched.stdout).contains("20.00"),
        "{}",
        text(&fetched.stdout)
    );
    let mismatches = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("totalMismatches"));
    assert_eq!(
        mismatches.map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["totalMismatches", "1"]),
        "{stdout}"
    );
    let download = stdout
        .lines()
        .find(|l| l.contains("mismatches.csv"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap()
        .to_owned();
    assert!(download.starts_with("http://"), "{stdout}");
    // The name the client gave itself, as the job's owner.
    let me = format!(
        "{}:",
        std::env::var("USER").unwrap_or_else(|_| "cli".to_owned())
    );
    let fetched = Command::new("curl")
        .args(["-sS", "-u", &me, &download])
        .output()
        .unwrap();
    assert!(
        text(&fetched.stdout).contains("20.00"),
        "{}",
        text(&fetched.stdout)
    );
}

#[test]
fn exit_codes_say_how_jobs_ended_and_errors_are_one_line() {
    let served = serve(USERS);
    // Refused at submission: one line, exit 1.
    let out = client(&served, &["submit", "demo", "--chunks", "0"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("stompede: the job was refused"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    // Failed after its attempts: exit 3.
    let out = client(
        &served,
        &[
            "submit",
            "demo",
            "--chunks",
            "1",
            "--param",
            "failChunk=0",
            "--param",
            "failTimes=100",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("error"), "{}", text(&out.stdout));

    // Cancelled while it waits: exit 4 for whoever watches it.
    let out = client(
        &served,
        &[
            "submit",
            "demo",
            "--no-wait",
            "--chunks",
            "50",
            "--chunk-delay-ms",
            "200",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_owned();
    let watcher = Command::new(BIN)
        .args(["jobs", "watch", &id])
        .env("STOMPEDE_URL", &served.ws)
        .env("STOMPEDE_USER", "ann")
        .env("STOMPEDE_PASSWORD", "pw")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let listed = client(&served, &["jobs", "list", "--status", "processing"]);
    assert!(text(&listed.stdout).contains(&id) || text(&listed.stdout).contains("ID"));
    let cancelled = client(&served, &["jobs", "cancel", &id]);
    assert!(cancelled.status.success(), "{}", text(&cancelled.stderr));
    let watched = watcher.wait_with_output().unwrap();
    assert_eq!(watched.status.code(), Some(4), "{}", text(&watched.stderr));
    let shown = client(&served, &["jobs", "show", &id]);
    let job: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(job["status"], "cancelled");

    // Another user's job does not exist for them; a wrong password says so.
    let out = client_as(&served, "bob", "pw", &["jobs", "show", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("404"), "{}", text(&out.stderr));
    let out = client_as(&served, "ann", "wrong", &["submit", "demo"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("stompede: the server refused"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn send_and_subscribe_show_a_destination_with_pretty_json() {
    let served = serve(USERS);
    let mut subscriber = command_as(
        &served,
        "bob",
        "pw",
        &["subscribe", "/topic/cli", "--count", "1"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // The subscriber says when it is subscribed; only then is a message sure to reach it.
    let mut stderr = BufReader::new(subscriber.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("subscribed to /topic/cli"), "{line}");
    let sent = client(
        &served,
        &[
            "send",
            "/topic/cli",
            r#"{"a":1,"b":[2]}"#,
            "-H",
            "x-kind:test",
        ],
    );
    assert!(sent.status.success(), "{}", text(&sent.stderr));
    let received = subscriber.wait_with_output().unwrap();
    assert!(received.status.success());
    let stdout = text(&received.stdout);
    assert!(stdout.contains("x-kind:test"), "{stdout}");
    assert!(stdout.contains("\"a\": 1"), "pretty JSON: {stdout}");
}

#[test]
fn completions_and_help_are_there() {
    let out = Command::new(BIN)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("stompede"));
    let help = Command::new(BIN).arg("--help").output().unwrap();
    assert!(text(&help.stdout).contains("Examples:"));
}

#[test]
fn passwd_hashes_a_password_the_server_then_accepts_and_guessing_is_slowed() {
    use std::io::Write;

    let mut passwd = Command::new(BIN)
        .args(["passwd", "ann"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    passwd
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\n")
        .unwrap();
    let out = passwd.wait_with_output().unwrap();
    assert!(out.status.success());
    let line = text(&out.stdout).trim().to_owned();
    assert!(line.starts_with("ann:$argon2id$"), "{line}");
    assert!(!line.contains("correct horse"));

    let users = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(users.path(), format!("{line}\n")).unwrap();
    let served = serve(&format!("users-file = {:?}\n", users.path()));
    let as_ann = |password: &str, args: &[&str]| client_as(&served, "ann", password, args);
    // Over STOMP (the job) and over HTTP (the listing).
    let ok = as_ann("correct horse", &["submit", "demo", "--chunks", "1"]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    let listed = as_ann("correct horse", &["jobs", "list"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));

    // Wrong guesses: after five, each waits 1 s, then 2 s, 4 s, ... before it is even
    // checked. Guessing until seven were checked leaves a wait of 4 s, longer than one more
    // run of the client takes on a busy machine: then even the right password waits.
    let mut checked = 0;
    let mut throttled = 0;
    for _ in 0..60 {
        if checked == 7 {
            break;
        }
        let out = as_ann("battery staple", &["jobs", "list"]);
        assert_eq!(out.status.code(), Some(1));
        if text(&out.stderr).contains("too many failed logins") {
            throttled += 1;
            std::thread::sleep(std::time::Duration::from_millis(200));
        } else {
            checked += 1;
        }
    }
    assert_eq!(checked, 7, "{throttled} guesses were slowed");
    let out = as_ann("correct horse", &["submit", "demo", "--chunks", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("too many failed logins"),
        "{}",
        text(&out.stderr)
    );
}
