//! Real-client interop: drives the Node (@stomp/stompjs over WebSocket and SockJS, and in headless
//! chromium) and Python (stomp.py over TCP and TLS) suites in `tests/interop/` against the `stompede` binary Cargo just built.
//!
//! Each suite starts its own servers on port 0 from `STOMPEDE_BIN`. The clients' dependencies are
//! installed by `scripts/test.sh`; when they are missing these tests fail (never skip) and say so.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The suites run one at a time: both have timing-sensitive tests (heart-beats, "nothing arrives
/// within 500ms"), and on a two-core machine running them side by side makes those flaky.
static ONE_SUITE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A suite that runs longer than this is killed and fails.
const SUITE_DEADLINE: Duration = Duration::from_secs(600);

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("interop")
}

/// The binary under test: Cargo builds it for integration tests and says where.
const STOMPEDE_BIN: &str = env!("CARGO_BIN_EXE_stompede");

fn require(path: &Path, what: &str) {
    assert!(
        path.exists(),
        "{what} is missing ({}): run scripts/test.sh, which installs the interop test \
         dependencies (node_modules via `npm ci`, the Python venv via pip) and then runs cargo test",
        path.display()
    );
}

/// Runs `command` in its own process group with a deadline; returns its status and merged output.
fn run(mut command: Command, label: &str) -> (ExitStatus, String) {
    use std::os::unix::process::CommandExt;

    command
        .env("STOMPEDE_BIN", STOMPEDE_BIN)
        .env("NO_COLOR", "1")
        .env("FORCE_COLOR", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("{label}: cannot start {command:?}: {e}"));

    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });

    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > SUITE_DEADLINE => {
                // Kill the whole group: the runner and any stompede servers it started.
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg(format!("-{}", child.id()))
                    .status();
                let _ = child.kill();
                let status = child.wait().expect("wait for killed suite");
                eprintln!("{label}: killed after {SUITE_DEADLINE:?}");
                break status;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("{label}: waiting for the suite: {e}"),
        }
    };
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    let mut text = String::from_utf8_lossy(&out).into_owned();
    if !err.is_empty() {
        text.push_str("\n--- stderr ---\n");
        text.push_str(&String::from_utf8_lossy(&err));
    }
    (status, text)
}

fn check(label: &str, status: ExitStatus, output: &str) {
    // Captured by the test harness; shown when the test fails (or with --nocapture).
    println!("===== {label} output =====\n{output}\n===== end of {label} output =====");
    assert!(
        status.success(),
        "{label} failed with {status}; its output is printed above (run with --nocapture to see \
         it on success too)"
    );
}

/// `node --test` over every `*.test.mjs` in `tests/interop/stompjs/` (@stomp/stompjs, and
/// tus-js-client for resumable uploads).
#[test]
fn stompjs_over_websocket() {
    let _one = ONE_SUITE_AT_A_TIME
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let dir = interop_dir();
    require(
        &dir.join("node_modules").join("@stomp").join("stompjs"),
        "node_modules/@stomp/stompjs",
    );
    require(&dir.join("node_modules").join("ws"), "node_modules/ws");
    require(
        &dir.join("node_modules").join("tus-js-client"),
        "node_modules/tus-js-client",
    );
    require(
        &dir.join("node_modules").join("sockjs-client"),
        "node_modules/sockjs-client",
    );
    require(
        &dir.join("node_modules").join("playwright-core"),
        "node_modules/playwright-core",
    );
    // The browser test drives Debian's chromium (never a downloaded browser).
    assert!(
        ["chromium", "chromium-browser"]
            .iter()
            .any(|name| Command::new("which")
                .arg(name)
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())),
        "chromium is missing: run scripts/test.sh, which installs it (apt-get install chromium)"
    );

    // Name the files explicitly: how `node --test <dir>` expands a directory differs between
    // Node releases, and a suite that silently finds no file must not pass.
    let suite = dir.join("stompjs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&suite)
        .unwrap_or_else(|e| panic!("reading {}: {e}", suite.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".test.mjs"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no *.test.mjs files in {}",
        suite.display()
    );

    let mut command = Command::new("node");
    command
        .current_dir(&dir)
        .arg("--test")
        .arg("--test-reporter=spec")
        .args(&files);
    let (status, output) = run(command, "node --test tests/interop/stompjs");
    check("stompjs", status, &output);
}

/// `pytest` over `tests/interop/python/`: stomp.py over TCP, and over TLS (`test_tls.py`) with
/// a self-signed certificate for `127.0.0.1` made here.
#[test]
fn stomppy_over_tcp_and_tls() {
    let _one = ONE_SUITE_AT_A_TIME
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let dir = interop_dir();
    let python = dir.join(".venv").join("bin").join("python");
    require(&python, "the Python venv (tests/interop/.venv)");

    let certificate =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("a self-signed certificate");
    let tls_dir = tempfile::tempdir().expect("a temporary directory");
    let cert = tls_dir.path().join("cert.pem");
    let key = tls_dir.path().join("key.pem");
    std::fs::write(&cert, certificate.cert.pem()).expect("writing the certificate");
    std::fs::write(&key, certificate.signing_key.serialize_pem()).expect("writing the key");

    let mut command = Command::new(&python);
    command
        .current_dir(&dir)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "python"])
        .env("INTEROP_TLS_CERT", &cert)
        .env("INTEROP_TLS_KEY", &key)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let (status, output) = run(command, "pytest tests/interop/python");
    check("stomp.py", status, &output);
}
