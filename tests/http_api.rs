//! The HTTP API over real HTTP, driven with curl as people and scripts drive it: uploads,
//! jobs over REST, and problem+json for every error.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use stompede::processors::Reconcile;
use stompede::{BrokerBuilder, Server};

/// An answer: status, content type, body.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// Asserts a problem+json answer with `status` and `code`.
    fn problem(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.content_type, "application/problem+json", "{self:?}");
        let body = self.json();
        assert_eq!(body["code"], code, "{self:?}");
        assert_eq!(body["status"], status);
        assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
}

const MARK: &str = "\n@@curl@@";

fn curl(args: &[&str]) -> Answer {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-w",
            &format!("{MARK}%{{http_code}} %{{content_type}}"),
        ])
        .args(args)
        .output()
        .expect("curl is needed by this test");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = text
        .rsplit_once(MARK)
        .unwrap_or_else(|| panic!("curl failed: {}", String::from_utf8_lossy(&out.stderr)));
    let (status, content_type) = tail.split_once(' ').unwrap_or((tail, ""));
    Answer {
        status: status.trim().parse().unwrap_or(0),
        content_type: content_type.trim().to_owned(),
        body: body.to_owned(),
    }
}

struct Api {
    server: Server,
    base: String,
    uploads: std::path::PathBuf,
    import: tempfile::TempDir,
    _dir: tempfile::TempDir,
}

async fn start(max_upload_bytes: u64) -> Api {
    start_with(max_upload_bytes, &[]).await
}

async fn start_with(max_upload_bytes: u64, origins: &[&str]) -> Api {
    let import = tempfile::tempdir().unwrap();
    let (mut config, dir) = common::test_config();
    config.allowed_origins = origins.iter().map(|o| (*o).to_owned()).collect();
    config.job_admins = vec!["root".into()];
    config.users = [("ann", "pw"), ("bob", "pw"), ("root", "pw")]
        .map(|(u, p)| (u.to_owned(), p.to_owned()))
        .into();
    config.max_upload_bytes = max_upload_bytes;
    let uploads = config.uploads_dir();
    let reconcile = Reconcile::new(import.path(), 64 << 20).with_uploads(&uploads);
    let server = BrokerBuilder::new(config)
        .job_type("reconcile", reconcile)
        .start()
        .await
        .unwrap();
    let base = format!("http://{}", server.http_addr().unwrap());
    Api {
        server,
        base,
        uploads,
        import,
        _dir: dir,
    }
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// What the upload directory holds.
    fn stored(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.uploads)
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// Blocking curl calls off the async test's threads.
async fn call(args: Vec<String>) -> Answer {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        curl(&args)
    })
    .await
    .unwrap()
}

/// What a Server-Sent Events stream sends in its first 1.5 s.
async fn sse(args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let out = Command::new("curl")
            .args(["-sS", "-N", "--max-time", "1.5"])
            .args(&args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .unwrap()
}

/// Polls a job's result until it is no longer `202` (waiting or running); returns that answer.
async fn settled(api: &Api, credentials: &str, id: &str) -> Answer {
    let url = api.url(&format!("/api/jobs/{id}/result"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let answer = call(vec!["-u".into(), credentials.into(), url.clone()]).await;
        if answer.status != 202 {
            return answer;
        }
        assert!(answer.json()["status"].is_string(), "{answer:?}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job did not finish"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

macro_rules! args {
    ($($a:expr),* $(,)?) => { vec![$(String::from($a)),*] };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_streamed_hashed_owned_and_refused_when_bad() {
    let api = start(64 * 1024).await;
    let work = tempfile::tempdir().unwrap();
    let csv = work.path().join("relevé.csv");
    std::fs::write(&csv, "id,amount\n1,10.00\n2,20.50\n").unwrap();
    let csv_arg = format!("@{}", csv.display());

    // A raw body, named by Content-Disposition.
    let raw = call(args![
        "-u",
        "ann:pw",
        "-X",
        "POST",
        "--data-binary",
        csv_arg.clone(),
        "-H",
        "Content-Type: text/csv",
        "-H",
        "Content-Disposition: attachment; filename=\"relevé.csv\"",
        api.url("/api/uploads"),
    ])
    .await;
    assert_eq!(raw.status, 201, "{raw:?}");
    let info = raw.json();
    assert_eq!(info["name"], "relevé.csv");
    assert_eq!(info["size"], std::fs::metadata(&csv).unwrap().len());
    assert_eq!(info["sha256"], sha256(&csv));
    assert_eq!(info["contentType"], "text/plain");
    let id = info["id"].as_str().unwrap().to_owned();

    // Multipart, as a form or curl -F sends it.
    let form = call(args![
        "-u",
        "ann:pw",
        "-F",
        format!("file={csv_arg}"),
        api.url("/api/uploads"),
    ])
    .await;
    assert_eq!(form.status, 201, "{form:?}");
    assert_eq!(form.json()["sha256"], sha256(&csv));

    // Its owner sees it; another user does not, nor does someone without credentials.
    let mine = call(args![
        "-u",
        "ann:pw",
        api.url(&format!("/api/uploads/{id}"))
    ])
    .await;
    assert_eq!(mine.json()["id"], id.as_str());
    call(args![
        "-u",
        "bob:pw",
        api.url(&format!("/api/uploads/{id}"))
    ])
    .await
    .problem(404, "not_found");
    let anonymous = call(args!["-i", api.url(&format!("/api/uploads/{id}"))]).await;
    assert!(
        anonymous.body.contains("www-authenticate: Basic"),
        "{anonymous:?}"
    );
    // A page that logs in by itself gets no challenge: no browser dialog over it.
    let scripted = call(args![
        "-i",
        "-H",
        "X-Requested-With: stompede-dashboard",
        api.url(&format!("/api/uploads/{id}"))
    ])
    .await;
    assert_eq!(scripted.status, 401);
    assert!(!scripted.body.contains("www-authenticate"), "{scripted:?}");
    call(args![
        "-u",
        "ann:wrong",
        api.url(&format!("/api/uploads/{id}"))
    ])
    .await
    .problem(401, "unauthorized");
    let before = api.stored();
    assert_eq!(
        before.len(),
        4,
        "two uploads and their metadata: {before:?}"
    );

    // Names that leave their directory are refused, not cleaned.
    for name in ["../escape.csv", "a/b.csv", "/etc/passwd"] {
        call(args![
            "-u",
            "ann:pw",
            "--data-binary",
            csv_arg.clone(),
            "-H",
            format!("Content-Disposition: attachment; filename=\"{name}\""),
            api.url("/api/uploads"),
        ])
        .await
        .problem(400, "bad_name");
    }
    call(args![
        "-u",
        "ann:pw",
        "-F",
        format!("file={csv_arg};filename=../evil.csv"),
        api.url("/api/uploads"),
    ])
    .await
    .problem(400, "bad_name");
    // Over the limit: refused from its declared length, and while streaming without one.
    let big = work.path().join("big.bin");
    std::fs::write(&big, vec![7u8; 200 * 1024]).unwrap();
    let big_arg = format!("@{}", big.display());
    call(args![
        "-u",
        "ann:pw",
        "--data-binary",
        big_arg.clone(),
        "-H",
        "Content-Disposition: attachment; filename=\"big.bin\"",
        api.url("/api/uploads"),
    ])
    .await
    .problem(413, "too_large");
    call(args![
        "-u",
        "ann:pw",
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        big_arg,
        "-H",
        "Content-Disposition: attachment; filename=\"big.bin\"",
        api.url("/api/uploads"),
    ])
    .await
    .problem(413, "too_large");
    // A multipart body that breaks off.
    call(args![
        "-u", "ann:pw",
        "-H", "Content-Type: multipart/form-data; boundary=XYZ",
        "--data-binary", "--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\r\nid,amount\r\n1,2",
        api.url("/api/uploads"),
    ])
    .await
    .problem(400, "malformed_multipart");
    // A client that goes away in the middle of its upload.
    {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(api.server.http_addr().unwrap()).unwrap();
        write!(
            stream,
            "POST /api/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YW5uOnB3\r\n\
             Content-Disposition: attachment; filename=\"half.bin\"\r\n\
             Content-Length: 60000\r\n\r\n"
        )
        .unwrap();
        stream.write_all(&[1u8; 20_000]).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        api.stored(),
        before,
        "nothing left behind by refused uploads"
    );

    // The router's own errors are problems too.
    call(args!["-u", "ann:pw", api.url("/api/nothing")])
        .await
        .problem(404, "not_found");
    call(args![
        "-u",
        "ann:pw",
        "-X",
        "DELETE",
        api.url("/api/uploads")
    ])
    .await
    .problem(405, "method_not_allowed");
    drop(api.server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconciliation_of_two_uploads_runs_over_rest() {
    let api = start(1 << 20).await;
    let work = tempfile::tempdir().unwrap();
    let bo = work.path().join("bo.csv");
    let partner = work.path().join("partner.csv");
    std::fs::write(&bo, "id,amount\n1,10.00\n2,20.50\n3,30.00\n").unwrap();
    std::fs::write(&partner, "id,amount\n1,10.00\n2,21.00\n4,40.00\n").unwrap();
    let mut ids = Vec::new();
    for path in [&bo, &partner] {
        let answer = call(args![
            "-u",
            "ann:pw",
            "-F",
            format!("file=@{}", path.display()),
            api.url("/api/uploads"),
        ])
        .await;
        assert_eq!(answer.status, 201, "{answer:?}");
        ids.push(answer.json()["id"].as_str().unwrap().to_owned());
    }
    let submission = json!({
        "type": "reconcile",
        "params": {"boUpload": ids[0], "partnerUpload": ids[1], "boKey": "id", "partnerKey": "id"},
        "priority": "high",
    });
    let accepted = call(args![
        "-u",
        "ann:pw",
        "-H",
        "Content-Type: application/json",
        "--data",
        submission.to_string(),
        api.url("/api/jobs"),
    ])
    .await;
    assert_eq!(accepted.status, 202, "{accepted:?}");
    let id = accepted.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        accepted.json()["links"]["result"],
        format!("/api/jobs/{id}/result")
    );

    let answer = settled(&api, "ann:pw", &id).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let result = answer.json();
    assert_eq!(result["totalMatches"], 1, "{result}");
    assert_eq!(result["totalMismatches"], 1, "{result}");
    let job = call(args!["-u", "ann:pw", api.url(&format!("/api/jobs/{id}"))]).await;
    assert_eq!(job.json()["status"], "completed");
    assert_eq!(job.json()["priority"], 10, "{}", job.body);

    // Its events as Server-Sent Events: the whole log, then (Last-Event-ID) only what follows.
    let events_url = api.url(&format!("/api/jobs/{id}/events"));
    let all = sse(&["-u", "ann:pw", &events_url]).await;
    let seqs: Vec<u64> = all
        .lines()
        .filter_map(|l| l.strip_prefix("id: ")?.parse().ok())
        .collect();
    assert!(all.contains("event: JOB_ACCEPTED"), "{all}");
    assert!(all.contains("event: JOB_COMPLETED"), "{all}");
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let last = *seqs.last().unwrap();
    let after = format!("Last-Event-ID: {}", last - 1);
    let rest = sse(&["-u", "ann:pw", "-H", &after, &events_url]).await;
    let rest_ids: Vec<&str> = rest
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .collect();
    assert_eq!(rest_ids, [last.to_string()], "{rest}");
    assert!(rest.contains("event: JOB_COMPLETED"));

    // Another user sees nothing of it, and may not use ann's uploads.
    call(args!["-u", "bob:pw", api.url(&format!("/api/jobs/{id}"))])
        .await
        .problem(404, "not_found");
    let stolen = call(args![
        "-u",
        "bob:pw",
        "-H",
        "Content-Type: application/json",
        "--data",
        submission.to_string(),
        api.url("/api/jobs"),
    ])
    .await;
    assert_eq!(
        stolen.status, 202,
        "accepted, then failed when it reads: {stolen:?}"
    );
    let stolen_id = stolen.json()["id"].as_str().unwrap().to_owned();
    let answer = settled(&api, "bob:pw", &stolen_id).await;
    answer.problem(409, "job_failed");
    assert!(answer.json()["detail"]
        .as_str()
        .unwrap()
        .contains("file_not_found"));

    // The job list: each user sees their own; filters and a cursor.
    let listed = call(args![
        "-u",
        "ann:pw",
        api.url("/api/jobs?status=completed&limit=10")
    ])
    .await;
    let jobs = listed.json();
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 1, "{}", listed.body);
    assert_eq!(jobs["jobs"][0]["id"], id.as_str());
    assert_eq!(jobs["next"], Value::Null);
    let bobs = call(args!["-u", "bob:pw", api.url("/api/jobs")])
        .await
        .json();
    assert_eq!(bobs["jobs"][0]["id"], stolen_id.as_str());
    call(args!["-u", "bob:pw", api.url("/api/jobs?owner=ann")])
        .await
        .problem(403, "forbidden");
    call(args!["-u", "ann:pw", api.url("/api/jobs?colour=red")])
        .await
        .problem(400, "invalid_parameter");

    // A result file, whole, in part, and not again when unchanged.
    let file_url = api.url(&format!("/api/jobs/{id}/files/matches.csv"));
    let whole = call(args!["-u", "ann:pw", file_url.clone()]).await;
    assert_eq!(whole.status, 200, "{whole:?}");
    assert!(whole.body.starts_with("key,boLine"), "{}", whole.body);
    let part = call(args![
        "-u",
        "ann:pw",
        "-H",
        "Range: bytes=0-2",
        file_url.clone()
    ])
    .await;
    assert_eq!((part.status, part.body.as_str()), (206, "key"));
    let headers = call(args!["-u", "ann:pw", "-I", file_url.clone()]).await;
    let etag = headers
        .body
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .unwrap_or_else(|| panic!("no ETag: {}", headers.body))
        .trim()
        .to_owned();
    let again = call(args![
        "-u",
        "ann:pw",
        "-H",
        format!("If-None-Match: {etag}"),
        file_url.clone()
    ])
    .await;
    assert_eq!(again.status, 304);
    call(args![
        "-u",
        "ann:pw",
        api.url(&format!("/api/jobs/{id}/files/nothing.csv"))
    ])
    .await
    .problem(404, "not_found");

    // Deleting the job takes its files with it.
    let deleted = call(args![
        "-u",
        "ann:pw",
        "-X",
        "DELETE",
        api.url(&format!("/api/jobs/{id}"))
    ])
    .await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    call(args!["-u", "ann:pw", api.url(&format!("/api/jobs/{id}"))])
        .await
        .problem(404, "not_found");
    call(args!["-u", "ann:pw", file_url])
        .await
        .problem(404, "not_found");

    let stats = call(args!["-u", "ann:pw", api.url("/api/stats")])
        .await
        .json();
    assert!(
        stats["byType"]["reconcile"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    let ready = call(args![api.url("/ready")]).await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));

    // Refusals, each a problem with the engine's code.
    let post = |body: &str| {
        call(args![
            "-u",
            "ann:pw",
            "-H",
            "Content-Type: application/json",
            "--data",
            body,
            api.url("/api/jobs"),
        ])
    };
    post("{not json").await.problem(400, "malformed_body");
    post(r#"{"type":"nope"}"#)
        .await
        .problem(400, "unknown_type");
    post(r#"{"type":"reconcile","params":{"boFile":"../x","partnerFile":"y","boKey":"id","partnerKey":"id"}}"#)
        .await
        .problem(400, "invalid_parameter");
    call(args![
        "-u",
        "bob:pw",
        "-X",
        "POST",
        api.url(&format!("/api/jobs/{stolen_id}/cancel"))
    ])
    .await
    .problem(409, "invalid_state");
    // A job that has not finished cannot be deleted.
    let delayed = json!({
        "type": "reconcile",
        "params": {"boUpload": ids[0], "partnerUpload": ids[1], "boKey": "id", "partnerKey": "id"},
        "delay": 600_000,
    });
    let waiting = call(args![
        "-u",
        "ann:pw",
        "-H",
        "Content-Type: application/json",
        "--data",
        delayed.to_string(),
        api.url("/api/jobs"),
    ])
    .await;
    let waiting_id = waiting.json()["id"].as_str().unwrap().to_owned();
    call(args![
        "-u",
        "ann:pw",
        "-X",
        "DELETE",
        api.url(&format!("/api/jobs/{waiting_id}"))
    ])
    .await
    .problem(409, "invalid_state");
    assert!(api.import.path().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_of_the_openapi_description_is_served() {
    let api = start(1024).await;
    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol/docs/openapi.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut probed = 0;
    for (path, operations) in spec["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            let concrete = path
                .replace("{id}", "01JAAAAAAAAAAAAAAAAAAAAAAA")
                .replace("{action}", "cancel")
                .replace("{name}", "text.txt")
                .replace("queues/text.txt", "queues/orders");
            let answer = call(args![
                "-u",
                "ann:pw",
                "--max-time",
                "2",
                "-X",
                method.to_uppercase(),
                api.url(&concrete),
            ])
            .await;
            let routed = !(answer.status == 405
                || (answer.status == 404 && answer.body.contains("no such route")));
            assert!(
                routed,
                "{} {path} is not served: {answer:?}",
                method.to_uppercase()
            );
            probed += 1;
        }
    }
    assert!(probed >= 11, "{probed} routes described");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_configured_origins_may_call_the_api_from_a_page() {
    let api = start_with(1024, &["https://app.example"]).await;
    let preflight = |origin: &str| {
        call(args![
            "-i",
            "-X",
            "OPTIONS",
            "-H",
            format!("Origin: {origin}"),
            "-H",
            "Access-Control-Request-Method: POST",
            "-H",
            "Access-Control-Request-Headers: authorization, content-type",
            api.url("/api/jobs"),
        ])
    };
    let allowed = preflight("https://app.example").await;
    assert!(
        allowed
            .body
            .contains("access-control-allow-origin: https://app.example"),
        "{allowed:?}"
    );
    let refused = preflight("https://evil.example").await;
    assert!(
        !refused.body.contains("access-control-allow-origin"),
        "{refused:?}"
    );
    // Without configured origins, no CORS headers at all.
    let plain = start(1024).await;
    let answer = call(args![
        "-i",
        "-u",
        "ann:pw",
        "-H",
        "Origin: https://app.example",
        plain.url("/api/stats"),
    ])
    .await;
    assert!(
        !answer.body.contains("access-control-allow-origin"),
        "{answer:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_see_destinations_and_sessions_and_purge_queues() {
    let api = start(1024).await;
    let local = api.server.local_client("ann");
    for n in 0..3 {
        local
            .send(
                "/queue/orders",
                stompede::protocol::Headers::new(),
                format!("order {n}"),
            )
            .await
            .unwrap();
    }
    let mut session = common::Tcp::open(api.server.stomp_addr().unwrap()).await;
    session
        .send(
            stompede::protocol::Frame::new(stompede::protocol::Command::Connect)
                .header("accept-version", "1.2")
                .header("host", "localhost")
                .header("login", "ann")
                .header("passcode", "pw"),
        )
        .await;
    assert_eq!(
        session.frame().await.command,
        stompede::protocol::Command::Connected
    );
    let destinations = call(args!["-u", "ann:pw", api.url("/api/destinations")])
        .await
        .json();
    let orders = destinations["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "/queue/orders")
        .unwrap_or_else(|| panic!("{destinations}"))
        .clone();
    assert_eq!(orders["depth"], 3);
    assert!(
        destinations["counters"]["messages_published"]
            .as_u64()
            .is_some(),
        "{destinations}"
    );
    call(args![
        "-u",
        "ann:pw",
        "-X",
        "POST",
        api.url("/api/queues/orders/purge")
    ])
    .await
    .problem(403, "forbidden");
    let purged = call(args![
        "-u",
        "root:pw",
        "-X",
        "POST",
        api.url("/api/queues/orders/purge")
    ])
    .await;
    assert_eq!(purged.json()["purged"], 3, "{purged:?}");
    call(args![
        "-u",
        "root:pw",
        "-X",
        "POST",
        api.url("/api/queues/nothing/purge")
    ])
    .await
    .problem(404, "not_found");
    let sessions = call(args!["-u", "root:pw", api.url("/api/sessions")])
        .await
        .json();
    let list = sessions["sessions"].as_array().unwrap();
    assert!(
        list.iter()
            .any(|s| s["user"] == "ann" && s["transport"] == "tcp"),
        "{sessions}"
    );
    call(args!["-u", "ann:pw", api.url("/api/sessions")])
        .await
        .problem(403, "forbidden");
    // The API's answers are counted by route template and status.
    let metrics = call(args![api.url("/metrics")]).await.body;
    for line in [
        "stompede_http_requests_total{route=\"/api/destinations\",status=\"200\"} 1",
        "stompede_http_requests_total{route=\"/api/queues/{name}/purge\",status=\"403\"} 1",
        "stompede_http_requests_total{route=\"/api/queues/{name}/purge\",status=\"404\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in:\n{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_multipart_request_uploads_both_files_and_starts_the_reconciliation() {
    let api = start(1 << 20).await;
    let work = tempfile::tempdir().unwrap();
    let bo = work.path().join("bo.csv");
    let partner = work.path().join("partner.csv");
    std::fs::write(&bo, "ref;amount\nA;1,00\nB;2,00\n").unwrap();
    std::fs::write(&partner, "ref;amount\nA;1,00\nB;2,50\nC;3,00\n").unwrap();
    let accepted = call(args![
        "-u",
        "ann:pw",
        "-F",
        format!("boFile=@{}", bo.display()),
        "-F",
        format!("partnerFile=@{}", partner.display()),
        "-F",
        "boKey=ref",
        "-F",
        "partnerKey=ref",
        "-F",
        "numericTolerance=0.001",
        api.url("/api/reconciliations"),
    ])
    .await;
    assert_eq!(accepted.status, 202, "{accepted:?}");
    let id = accepted.json()["id"].as_str().unwrap().to_owned();
    let answer = settled(&api, "ann:pw", &id).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let result = answer.json();
    assert_eq!(result["totalMatches"], 1, "{result}");
    assert_eq!(result["totalMismatches"], 1, "{result}");
    // Both files are needed.
    call(args![
        "-u",
        "ann:pw",
        "-F",
        format!("boFile=@{}", bo.display()),
        "-F",
        "boKey=ref",
        api.url("/api/reconciliations"),
    ])
    .await
    .problem(400, "missing_file");
    // A text field is bounded too (the body limit is off for the files).
    let huge = work.path().join("huge.txt");
    std::fs::write(&huge, "k".repeat(100 * 1024)).unwrap();
    call(args![
        "-u",
        "ann:pw",
        "-F",
        format!("boFile=@{}", bo.display()),
        "-F",
        format!("boKey=<{}", huge.display()),
        api.url("/api/reconciliations"),
    ])
    .await
    .problem(413, "too_large");
    let left: Vec<String> = api
        .stored()
        .into_iter()
        .filter(|n| n.contains("json"))
        .collect();
    assert_eq!(
        left.len(),
        2,
        "the refused request's upload was removed: {left:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_token_stands_in_for_the_password() {
    let api = start(1024).await;
    let issued = call(args!["-u", "ann:pw", "-X", "POST", api.url("/api/tokens")]).await;
    assert_eq!(issued.status, 201, "{issued:?}");
    let body = issued.json();
    assert_eq!(body["tokenType"], "Bearer");
    assert_eq!(body["expiresIn"], 3600);
    let token = body["token"].as_str().unwrap().to_owned();
    let bearer = format!("Authorization: Bearer {token}");
    let jobs = call(args!["-H", bearer.clone(), api.url("/api/jobs")]).await;
    assert_eq!(jobs.status, 200, "{jobs:?}");
    // A token does not mint another; a tampered one is refused.
    call(args!["-H", bearer, "-X", "POST", api.url("/api/tokens")])
        .await
        .problem(403, "forbidden");
    let tampered = format!("Authorization: Bearer {token}x");
    call(args!["-H", tampered, api.url("/api/jobs")])
        .await
        .problem(401, "unauthorized");
    call(args![
        "-u",
        "ann:nope",
        "-X",
        "POST",
        api.url("/api/tokens")
    ])
    .await
    .problem(401, "unauthorized");
}

/// An answer's headers (names lower-cased) from curl's `-i` output.
fn headers_of(answer: &Answer) -> std::collections::HashMap<String, String> {
    answer
        .body
        .lines()
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect()
}

/// A resumable upload's `Upload-Offset`, by `HEAD`.
async fn tus_offset(api: &Api, location: &str) -> u64 {
    let head = call(args![
        "-u",
        "ann:pw",
        "-I",
        "-H",
        "Tus-Resumable: 1.0.0",
        api.url(location),
    ])
    .await;
    assert_eq!(head.status, 200, "{head:?}");
    let headers = headers_of(&head);
    assert_eq!(headers["tus-resumable"], "1.0.0");
    assert_eq!(headers["cache-control"], "no-store");
    headers["upload-offset"].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumable_upload_goes_on_where_its_broken_connection_stopped() {
    use tokio::io::AsyncWriteExt;

    let api = start(8 << 20).await;
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("scan.bin");
    let content: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &content).unwrap();

    // The server says what it supports, without credentials.
    let options = call(args!["-i", "-X", "OPTIONS", api.url("/api/uploads/tus")]).await;
    assert_eq!(options.status, 204, "{options:?}");
    let supported = headers_of(&options);
    assert_eq!(supported["tus-version"], "1.0.0");
    assert!(supported["tus-extension"].contains("creation"));
    assert_eq!(supported["tus-max-size"], (8u64 << 20).to_string());

    // Creation: the length and the name, no bytes yet.
    let name = base64_of("scan.bin");
    let created = call(args![
        "-u",
        "ann:pw",
        "-i",
        "-X",
        "POST",
        "-H",
        "Tus-Resumable: 1.0.0",
        "-H",
        format!("Upload-Length: {}", content.len()),
        "-H",
        format!("Upload-Metadata: filename {name}"),
        api.url("/api/uploads/tus"),
    ])
    .await;
    assert_eq!(created.status, 201, "{created:?}");
    let location = headers_of(&created)["location"].clone();
    let id = location.rsplit('/').next().unwrap().to_owned();
    assert_eq!(tus_offset(&api, &location).await, 0);

    // The first PATCH breaks off after 300,000 of its 1,000,000 bytes.
    let mut socket = tokio::net::TcpStream::connect(api.server.http_addr().unwrap())
        .await
        .unwrap();
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: test\r\nAuthorization: Basic YW5uOnB3\r\n\
         Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n\
         Content-Type: application/offset+octet-stream\r\nContent-Length: {}\r\n\r\n",
        content.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&content[..300_000]).await.unwrap();
    socket.flush().await.unwrap();
    drop(socket);
    // What arrived is kept: the offset settles at 300,000.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tus_offset(&api, &location).await != 300_000 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "offset never settled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Another user sees nothing; a stale offset, a wrong type or no version is refused.
    let rest = work.path().join("rest.bin");
    std::fs::write(&rest, &content[300_000..]).unwrap();
    let rest_arg = format!("@{}", rest.display());
    let patch = |user: &str, offset: u64, content_type: &str, version: &str| {
        args![
            "-u",
            user,
            "-i",
            "-X",
            "PATCH",
            "-H",
            version,
            "-H",
            format!("Upload-Offset: {offset}"),
            "-H",
            format!("Content-Type: {content_type}"),
            "--data-binary",
            rest_arg.clone(),
            api.url(&location),
        ]
    };
    const OCTETS: &str = "application/offset+octet-stream";
    const V1: &str = "Tus-Resumable: 1.0.0";
    let tus_problem = |answer: &Answer, status: u16, code: &str| {
        assert_eq!(answer.status, status, "{answer:?}");
        assert!(
            answer.body.contains(&format!("\"code\":\"{code}\"")),
            "{answer:?}"
        );
        assert_eq!(headers_of(answer)["tus-resumable"], "1.0.0");
    };
    tus_problem(
        &call(patch("bob:pw", 300_000, OCTETS, V1)).await,
        404,
        "not_found",
    );
    tus_problem(
        &call(patch("ann:pw", 0, OCTETS, V1)).await,
        409,
        "offset_mismatch",
    );
    tus_problem(
        &call(patch("ann:pw", 300_000, "text/plain", V1)).await,
        415,
        "unsupported_media_type",
    );
    tus_problem(
        &call(patch("ann:pw", 300_000, OCTETS, "Tus-Resumable: 0.2.2")).await,
        412,
        "unsupported_version",
    );
    assert_eq!(tus_offset(&api, &location).await, 300_000);

    // The rest from the stored offset completes it: an ordinary upload with the same id.
    let done = call(patch("ann:pw", 300_000, OCTETS, V1)).await;
    assert_eq!(done.status, 204, "{done:?}");
    assert_eq!(headers_of(&done)["upload-offset"], "1000000");
    let info = call(args![
        "-u",
        "ann:pw",
        api.url(&format!("/api/uploads/{id}"))
    ])
    .await;
    assert_eq!(info.status, 200, "{info:?}");
    let info = info.json();
    assert_eq!(info["sha256"], sha256(&file));
    assert_eq!(
        (info["size"].as_u64(), info["name"].as_str()),
        (Some(1_000_000), Some("scan.bin"))
    );
    assert_eq!(tus_offset(&api, &location).await, 1_000_000);

    // Over the limit at creation, and termination of an unfinished upload.
    let too_big = call(args![
        "-u",
        "ann:pw",
        "-i",
        "-X",
        "POST",
        "-H",
        V1,
        "-H",
        "Upload-Length: 9000000",
        "-H",
        format!("Upload-Metadata: filename {name}"),
        api.url("/api/uploads/tus"),
    ])
    .await;
    tus_problem(&too_big, 413, "too_large");
    let doomed = call(args![
        "-u",
        "ann:pw",
        "-i",
        "-X",
        "POST",
        "-H",
        V1,
        "-H",
        "Upload-Length: 10",
        "-H",
        format!("Upload-Metadata: filename {name}"),
        api.url("/api/uploads/tus"),
    ])
    .await;
    let doomed = headers_of(&doomed)["location"].clone();
    let removed = call(args![
        "-u",
        "ann:pw",
        "-X",
        "DELETE",
        "-H",
        V1,
        api.url(&doomed)
    ])
    .await;
    assert_eq!(removed.status, 204, "{removed:?}");
    assert_eq!(
        api.stored(),
        vec![id.clone(), format!("{id}.json")],
        "only the finished upload is left"
    );
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// One POST a webhook receiver got.
#[derive(Debug, Clone)]
struct Delivery {
    signature: String,
    attempt: String,
    body: String,
}

/// A webhook receiver on loopback that answers `500` to the first `failures` POSTs, then `200`.
async fn receiver(
    failures: usize,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<Delivery>>>,
) {
    use axum::http::{HeaderMap, StatusCode};
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Delivery>::new()));
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/hooks/jobs",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                let mut seen = seen.lock().unwrap();
                seen.push(Delivery {
                    signature: header("stompede-signature"),
                    attempt: header("stompede-delivery-attempt"),
                    body,
                });
                if seen.len() <= failures {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_job_calls_its_webhook_signed_and_retried_until_it_is_taken() {
    let (hook, got) = receiver(2).await;
    let (mut config, _dir) = common::test_config();
    config.users = [("ann".to_owned(), "pw".to_owned())].into();
    config.webhook_hosts = vec![hook.to_string()];
    config.webhook_secret = Some("s3cret".into());
    config.webhook_retry_base_ms = 20;
    let server = BrokerBuilder::new(config)
        .job_type("demo", stompede::jobs::Demo::default())
        .start()
        .await
        .unwrap();
    let base = format!("http://{}", server.http_addr().unwrap());
    let submit = |callback: String| {
        args![
            "-u",
            "ann:pw",
            "-H",
            "Content-Type: application/json",
            "--data",
            json!({"type": "demo", "params": {"chunks": 2, "mibPerChunk": 0}, "callbackUrl": callback})
                .to_string(),
            format!("{base}/api/jobs"),
        ]
    };

    // Only the allowed host may be called.
    call(submit("http://127.0.0.2:9/hooks/jobs".into()))
        .await
        .problem(400, "invalid_parameter");

    let accepted = call(submit(format!("http://{hook}/hooks/jobs"))).await;
    assert_eq!(accepted.status, 202, "{accepted:?}");
    let id = accepted.json()["id"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let job = loop {
        let job = call(args!["-u", "ann:pw", format!("{base}/api/jobs/{id}")])
            .await
            .json();
        if job["webhook"]["status"] == "delivered" {
            break job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "webhook never delivered: {job}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Two refusals, then taken: three attempts, visible in the job's status.
    assert_eq!(job["status"], "completed");
    assert_eq!(job["webhook"]["attempts"], 3, "{job}");
    assert_eq!(job["webhook"]["lastStatus"], 200);
    let deliveries = got.lock().unwrap().clone();
    assert_eq!(deliveries.len(), 3, "{deliveries:?}");
    assert_eq!(
        deliveries
            .iter()
            .map(|d| d.attempt.as_str())
            .collect::<Vec<_>>(),
        ["1", "2", "3"]
    );
    for delivery in &deliveries {
        // The body is the terminal event, and the signature is HMAC-SHA256 of "t.body".
        let event: Value = serde_json::from_str(&delivery.body).unwrap();
        assert_eq!(event["event"], "JOB_COMPLETED");
        assert_eq!(event["jobId"], id.as_str());
        assert_eq!(event["result"]["chunks"].as_array().unwrap().len(), 2);
        let t: u64 = delivery
            .signature
            .strip_prefix("t=")
            .and_then(|rest| rest.split(',').next())
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            delivery.signature,
            stompede::jobs::webhook_signature("s3cret", t, delivery.body.as_bytes())
        );
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stomp_client_uploads_with_a_send_and_reads_the_id_in_its_receipt() {
    use stompede::protocol::{Command, Frame};

    let (mut config, _dir) = common::test_config();
    config.users = [("ann".to_owned(), "secret".to_owned())].into();
    config.max_upload_bytes = 1000;
    let server = BrokerBuilder::new(config).start().await.unwrap();
    let base = format!("http://{}", server.http_addr().unwrap());
    let mut client = common::Tcp::connect(server.stomp_addr().unwrap(), "ann").await;
    client
        .subscribe("errors", "/user/queue/errors", "auto")
        .await;

    let content = "id;montant\n1;10,00\n";
    client
        .send(
            Frame::new(Command::Send)
                .header("destination", "/app/uploads")
                .header("filename", "relevé.csv")
                .header("receipt", "up-1")
                .body(content),
        )
        .await;
    let receipt = client.frame().await;
    assert_eq!(receipt.command, Command::Receipt, "{receipt:?}");
    assert_eq!(receipt.get("receipt-id"), Some("up-1"));
    assert_eq!(receipt.get("upload-size"), Some("19"));
    assert_eq!(receipt.get("upload-content-type"), Some("text/plain"));
    let id = receipt.get("upload-id").unwrap().to_owned();

    // The same upload over HTTP, for its owner.
    let info = call(args![
        "-u",
        "ann:secret",
        format!("{base}/api/uploads/{id}")
    ])
    .await;
    assert_eq!(info.status, 200, "{info:?}");
    let info = info.json();
    assert_eq!(info["name"], "relevé.csv");
    assert_eq!(info["sha256"].as_str(), receipt.get("upload-sha256"));

    // A bad name and an oversize body are refused on /user/queue/errors; the session goes on.
    for (name, body, code) in [
        ("../x.csv", "a".repeat(10), "bad_name"),
        ("big.bin", "a".repeat(1001), "too_large"),
    ] {
        client
            .send(
                Frame::new(Command::Send)
                    .header("destination", "/app/uploads")
                    .header("filename", name)
                    .header("receipt", "up-bad")
                    .body(body),
            )
            .await;
        let refusal = client.frame().await;
        assert_eq!(refusal.command, Command::Message, "{refusal:?}");
        assert_eq!(refusal.get("event"), Some("UPLOAD_REJECTED"));
        assert_eq!(refusal.get("receipt-id"), Some("up-bad"));
        let body: Value = serde_json::from_slice(&refusal.body).unwrap();
        assert_eq!(body["code"], code, "{body}");
    }
    client
        .send_receipted(
            Frame::new(Command::Send)
                .header("destination", "/app/uploads")
                .header("filename", "again.txt")
                .body("still here"),
            "up-2",
        )
        .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_off_by_its_client_leaves_nothing_behind() {
    use tokio::io::AsyncWriteExt;

    let api = start(8 << 20).await;
    let boundary = "cut";
    let multipart_head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let cases = [
        (
            "Content-Type: application/octet-stream\r\n\
             Content-Disposition: attachment; filename=\"a.bin\"\r\n"
                .to_owned(),
            String::new(),
        ),
        (
            format!("Content-Type: multipart/form-data; boundary={boundary}\r\n"),
            multipart_head,
        ),
    ];
    for (headers, preamble) in cases {
        let mut socket = tokio::net::TcpStream::connect(api.server.http_addr().unwrap())
            .await
            .unwrap();
        let head = format!(
            "POST /api/uploads HTTP/1.1\r\nHost: test\r\nAuthorization: Basic YW5uOnB3\r\n\
             {headers}Content-Length: 1000000\r\n\r\n{preamble}"
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        socket.write_all(&vec![7u8; 300_000]).await.unwrap();
        // Wait until the server has started writing the file, then go away.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !api.stored().iter().any(|name| name.ends_with(".part")) {
            assert!(tokio::time::Instant::now() < deadline, "no upload began");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(socket);
        while !api.stored().is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "left behind: {:?}",
                api.stored()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_job_answers_gone_to_its_owner_even_after_a_restart() {
    let (mut config, _dir) = common::test_config();
    config.users = [("ann", "pw"), ("bob", "pw")]
        .map(|(u, p)| (u.to_owned(), p.to_owned()))
        .into();
    config.job_retention_ms = 1_000;
    let start = |config: stompede::Config| async move {
        let server = BrokerBuilder::new(config)
            .job_type("demo", stompede::jobs::Demo::default())
            .start()
            .await
            .unwrap();
        let base = format!("http://{}", server.http_addr().unwrap());
        (server, base)
    };
    let (server, base) = start(config.clone()).await;
    let accepted = call(args![
        "-u",
        "ann:pw",
        "-H",
        "Content-Type: application/json",
        "--data",
        r#"{"type":"demo","params":{"chunks":1,"mibPerChunk":0}}"#,
        format!("{base}/api/jobs"),
    ])
    .await;
    let id = accepted.json()["id"].as_str().unwrap().to_owned();
    let result = format!("{base}/api/jobs/{id}/result");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let answer = call(args!["-u", "ann:pw", result.clone()]).await;
        if answer.status == 410 {
            answer.problem(410, "expired");
            break;
        }
        assert!(
            matches!(answer.status, 200 | 202),
            "before it expires: {answer:?}"
        );
        assert!(tokio::time::Instant::now() < deadline, "never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Another user learns nothing; the owner still hears "expired" after a restart.
    call(args!["-u", "bob:pw", result.clone()])
        .await
        .problem(404, "not_found");
    server.shutdown().await;
    let (server, base) = start(config).await;
    call(args!["-u", "ann:pw", format!("{base}/api/jobs/{id}")])
        .await
        .problem(410, "expired");
    server.shutdown().await;
}
