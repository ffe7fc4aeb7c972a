//! The audit log through a real server: STOMP logins and refused logins, job submissions and
//! controls over STOMP and HTTP, a delete, queue purges (refused and done), an API token, each
//! a JSON line in `<data-dir>/audit/audit.log` with who, from where, what and how it went.
#![allow(clippy::unwrap_used)]

mod common;

use serde_json::{json, Value};
use stompede::jobs::Demo;
use stompede::protocol::{Command, Frame};
use stompede::BrokerBuilder;

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The lines for `action`, as `(user, outcome)` with the line itself.
fn of<'a>(all: &'a [Value], action: &str) -> Vec<&'a Value> {
    all.iter().filter(|l| l["action"] == action).collect()
}

async fn http(method: reqwest::Method, url: &str, user: &str, password: &str) -> (u16, Value) {
    let answer = reqwest::Client::new()
        .request(method, url)
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let bytes = answer.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_did_what_from_where_is_written_down() {
    let (mut config, dir) = common::test_config();
    config.users = [("ann", "secret"), ("root", "secret")]
        .map(|(u, p)| (u.to_owned(), p.to_owned()))
        .into();
    config.job_admins = vec!["root".into()];
    let server = BrokerBuilder::new(config)
        .job_type("demo", Demo::default())
        .start()
        .await
        .unwrap();
    let addr = server.stomp_addr().unwrap();
    let base = format!("http://{}", server.http_addr().unwrap());

    // A refused login, then a good one.
    let mut intruder = common::Tcp::open(addr).await;
    intruder
        .send(
            Frame::new(Command::Connect)
                .header("accept-version", "1.2")
                .header("host", "localhost")
                .header("login", "ann")
                .header("passcode", "guess"),
        )
        .await;
    assert_eq!(intruder.frame().await.command, Command::Error);
    let mut ann = common::Tcp::connect(addr, "ann").await;

    // A submission and a cancel over STOMP; a refused submission.
    ann.send(
        Frame::new(Command::Send)
            .header("destination", "/app/jobs")
            .header("job-type", "demo")
            .header("delay", "60000")
            .header("receipt", "r1")
            .body(r#"{"chunks":1}"#),
    )
    .await;
    let receipt = ann.frame().await;
    let id = receipt.get("job-id").unwrap().to_owned();
    ann.send_receipted(
        Frame::new(Command::Send).header("destination", format!("/app/jobs/{id}/cancel")),
        "r2",
    )
    .await;
    ann.send(
        Frame::new(Command::Send)
            .header("destination", "/app/jobs")
            .header("job-type", "horoscope")
            .body("{}"),
    )
    .await;

    // Over HTTP: a delete, purges refused and done, a token.
    let (status, _) = http(
        reqwest::Method::DELETE,
        &format!("{base}/api/jobs/{id}"),
        "ann",
        "secret",
    )
    .await;
    assert_eq!(status, 204);
    let purge = format!("{base}/api/queues/orders/purge");
    let mut producer = common::Tcp::connect(addr, "root").await;
    producer
        .send_receipted(
            Frame::new(Command::Send)
                .header("destination", "/queue/orders")
                .body("x"),
            "p",
        )
        .await;
    assert_eq!(
        http(reqwest::Method::POST, &purge, "ann", "secret").await.0,
        403
    );
    let (status, body) = http(reqwest::Method::POST, &purge, "root", "secret").await;
    assert_eq!((status, body["purged"].clone()), (200, json!(1)));
    let (status, _) = http(
        reqwest::Method::POST,
        &format!("{base}/api/tokens"),
        "ann",
        "secret",
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = http(
        reqwest::Method::GET,
        &format!("{base}/api/jobs"),
        "ann",
        "wrong",
    )
    .await;
    assert_eq!(status, 401);

    let all = lines(&dir.path().join("audit/audit.log"));
    for line in &all {
        for field in ["time", "user", "address", "action", "outcome"] {
            assert!(line[field].is_string(), "{field} missing: {line}");
        }
        assert_eq!(line["address"], "127.0.0.1", "{line}");
    }
    let logins = of(&all, "login");
    let summary: Vec<(&str, &str)> = logins
        .iter()
        .map(|l| (l["user"].as_str().unwrap(), l["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        [
            ("ann", "denied"),
            ("ann", "ok"),
            ("root", "ok"),
            ("ann", "denied")
        ],
        "{logins:?}"
    );
    assert_eq!(logins[1]["transport"], "tcp");

    let submits = of(&all, "job.submit");
    assert_eq!(submits.len(), 2, "{submits:?}");
    assert_eq!(
        (&submits[0]["outcome"], &submits[0]["jobId"]),
        (&json!("ok"), &json!(id))
    );
    assert_eq!(submits[1]["outcome"], "denied");
    assert_eq!(submits[1]["code"], "unknown_type");
    let cancel = of(&all, "job.cancel");
    assert_eq!((cancel.len(), &cancel[0]["jobId"]), (1, &json!(id)));
    let delete = of(&all, "job.delete");
    assert_eq!((delete.len(), &delete[0]["outcome"]), (1, &json!("ok")));
    let purges: Vec<(&str, &str)> = of(&all, "queue.purge")
        .iter()
        .map(|l| (l["user"].as_str().unwrap(), l["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(purges, [("ann", "denied"), ("root", "ok")]);
    assert_eq!(of(&all, "token.issue").len(), 1);
    server.shutdown().await;
}
