//! The optional chat-completions backend of `extract`, against a local stub of an
//! OpenAI-compatible endpoint: what it is sent (model, key, the pages, the rules' draft with
//! quotes), its answer grounded in the text again, and a failing backend leaving the rules'
//! reading in place with a warning.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/extraction.rs"]
mod extraction;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use stompede::jobs::JobStatus;
use stompede::processors::Extract;
use stompede::protocol::Headers;
use stompede::BrokerBuilder;

const TENDER: &str = "RÈGLEMENT DE LA CONSULTATION\n\
    Pouvoir adjudicateur : Commune de Villeneuve\n\
    Objet du marché : entretien des espaces verts communaux\n\
    Procédure adaptée (MAPA)\n\
    Date limite de réception des offres : 15 mars 2025 à 12h00\n";

#[derive(Default)]
struct Stub {
    /// What each request said: its Authorization header and body.
    seen: Mutex<Vec<(Option<String>, Value)>>,
    fail: bool,
}

/// Every `{value, confidence, page, quote}` given confidence 0.99, and the buyer's value
/// replaced by a corrected reading that quotes the page.
fn corrected(mut draft: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) if map.contains_key("quote") => {
                map.insert("confidence".into(), json!(0.99));
            }
            Value::Object(map) => map.values_mut().for_each(walk),
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut draft);
    draft["buyer"] = json!({
        "value": "Commune de Villeneuve (corrigé)",
        "confidence": 0.97,
        "page": 1,
        "quote": "Commune de Villeneuve",
    });
    draft
}

async fn completions(
    State(stub): State<Arc<Stub>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Json<Value>, StatusCode> {
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    stub.seen.lock().unwrap().push((auth, body.clone()));
    if stub.fail {
        return Err(StatusCode::INTERNAL_SERVER_ERROR);
    }
    let system = body["messages"][0]["content"].as_str().unwrap();
    let draft: Value = serde_json::from_str(system.split("Draft:\n").nth(1).unwrap()).unwrap();
    let content = corrected(draft).to_string();
    Ok(Json(
        json!({ "choices": [{ "message": { "role": "assistant", "content": content } }] }),
    ))
}

/// A stub endpoint; its URL.
async fn stub(fail: bool) -> (String, Arc<Stub>) {
    let stub = Arc::new(Stub {
        fail,
        ..Stub::default()
    });
    let app = Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(stub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/v1/chat/completions",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, stub)
}

async fn extract_with(url: &str) -> Value {
    let import = tempfile::tempdir().unwrap();
    std::fs::write(import.path().join("rc.txt"), TENDER).unwrap();
    let (mut config, _dir) = common::test_config();
    config.import_dir = Some(import.path().to_owned());
    let extract = Extract::new(import.path())
        .with_chat_backend(url, "test-model", Some("sk-test".into()))
        .unwrap();
    let server = BrokerBuilder::new(config)
        .job_type("extract", extract)
        .start()
        .await
        .unwrap();
    let engine = server.jobs().unwrap();
    let mut headers = Headers::new();
    headers.push("job-type", "extract");
    let id = engine
        .submit(
            "ann",
            &headers,
            json!({"file": "rc.txt", "profiles": ["dce"]})
                .to_string()
                .as_bytes(),
        )
        .await
        .unwrap()
        .id;
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let job = engine.job(&id).unwrap();
        if job.status.is_finished() {
            assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
            return job.result.unwrap();
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_gets_the_pages_and_the_draft_and_its_answer_is_grounded() {
    let (url, stub) = stub(false).await;
    let result = extract_with(&url).await;

    let seen = stub.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "one chunk, one profile, one request");
    let (auth, body) = &seen[0];
    assert_eq!(auth.as_deref(), Some("Bearer sk-test"));
    assert_eq!(body["model"], "test-model");
    let pages = body["messages"][1]["content"].as_str().unwrap();
    assert!(pages.contains("=== page 1 ===") && pages.contains("espaces verts"));
    // The rules' draft goes out with quotes instead of spans.
    let system = body["messages"][0]["content"].as_str().unwrap();
    assert!(
        system.contains("\"quote\":\"entretien des espaces verts communaux\""),
        "{system}"
    );

    let dce = &result["dce"];
    assert_eq!(dce["buyer"]["value"], "Commune de Villeneuve (corrigé)");
    assert_eq!(
        extraction::spanned(&result, &dce["buyer"]["source"]),
        "Commune de Villeneuve"
    );
    // The rules' values came back through the model, spans intact.
    assert_eq!(dce["object"]["confidence"], 0.99);
    assert_eq!(
        extraction::spanned(&result, &dce["object"]["source"]),
        "entretien des espaces verts communaux"
    );
    assert_eq!(result["warnings"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_backend_leaves_the_rules_reading_with_a_warning() {
    let (url, stub) = stub(true).await;
    let result = extract_with(&url).await;
    assert_eq!(stub.seen.lock().unwrap().len(), 1);
    let dce = &result["dce"];
    assert_eq!(
        dce["object"]["value"],
        "entretien des espaces verts communaux"
    );
    assert_eq!(dce["offersDeadline"]["value"]["date"], "2025-03-15");
    let warnings = result["warnings"].to_string();
    assert!(warnings.contains("extraction backend failed"), "{warnings}");
}
