//! `stompede send` and `stompede subscribe`: a friendlier wscat for looking at destinations,
//! with JSON bodies printed pretty.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use serde_json::{json, Value};
use stompede::protocol::{Command, Frame};

use super::connection::refusal;
use super::ClientArgs;

/// `stompede send DESTINATION [BODY]`.
#[derive(Args, Debug)]
pub struct SendArgs {
    /// Where to send, e.g. /topic/news or /queue/work.
    destination: String,
    /// The body; `-` (or nothing) reads it from standard input.
    body: Option<String>,
    /// A header as NAME:VALUE (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME:VALUE")]
    headers: Vec<String>,
}

/// `stompede subscribe DESTINATION`.
#[derive(Args, Debug)]
pub struct SubscribeArgs {
    /// What to subscribe to, e.g. /topic/jobs/<id> or /user/queue/progress.
    destination: String,
    /// Stop after this many messages (default: run until interrupted).
    #[arg(long)]
    count: Option<u64>,
    /// A SUBSCRIBE header as NAME:VALUE (repeatable), e.g. since-seq:0.
    #[arg(short = 'H', long = "header", value_name = "NAME:VALUE")]
    headers: Vec<String>,
}

fn header_pairs(headers: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    headers
        .iter()
        .map(|h| {
            h.split_once(':')
                .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
                .with_context(|| format!("header {h:?}: expected NAME:VALUE"))
        })
        .collect()
}

/// `stompede send`.
pub async fn send(args: &ClientArgs, send: SendArgs) -> anyhow::Result<ExitCode> {
    let body = match send.body.as_deref() {
        Some("-") | None => {
            let mut body = Vec::new();
            std::io::stdin().read_to_end(&mut body)?;
            body
        }
        Some(text) => text.as_bytes().to_vec(),
    };
    let login = args.login()?;
    let mut connection = args.connect(&login).await?;
    let mut frame = Frame::new(Command::Send)
        .header("destination", &send.destination)
        .body(body);
    for (name, value) in header_pairs(&send.headers)? {
        frame = frame.header(name, value);
    }
    let receipt = connection.send_receipted(frame).await?;
    connection.until_receipt(&receipt).await?;
    connection.close().await;
    if !args.json {
        eprintln!("sent to {}", send.destination);
    }
    Ok(ExitCode::SUCCESS)
}

/// A MESSAGE for a person: its headers on one line, then its body (JSON indented).
fn print_message(frame: &Frame, as_json: bool) {
    let body: Option<Value> = serde_json::from_slice(&frame.body).ok();
    if as_json {
        let headers: serde_json::Map<String, Value> = frame
            .headers
            .iter()
            .map(|h| (h.name.to_owned(), json!(h.value)))
            .collect();
        let body = body.unwrap_or_else(|| json!(String::from_utf8_lossy(&frame.body)));
        println!("{}", json!({ "headers": headers, "body": body }));
        return;
    }
    let headers: Vec<String> = frame
        .headers
        .iter()
        .filter(|h| !matches!(h.name, "subscription" | "ack" | "content-length"))
        .map(|h| format!("{}:{}", h.name, h.value))
        .collect();
    println!("--- {}", headers.join("  "));
    match body {
        Some(body) => println!(
            "{}",
            serde_json::to_string_pretty(&body).unwrap_or_default()
        ),
        None => println!("{}", String::from_utf8_lossy(&frame.body)),
    }
}

/// `stompede subscribe`.
pub async fn subscribe(args: &ClientArgs, subscribe: SubscribeArgs) -> anyhow::Result<ExitCode> {
    let login = args.login()?;
    let mut connection = args.connect(&login).await?;
    let extra = header_pairs(&subscribe.headers)?;
    let extra: Vec<(&str, &str)> = extra
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let mut seen = 0;
    let first = connection
        .subscribe("cli", &subscribe.destination, &extra)
        .await?;
    if !args.json {
        eprintln!("subscribed to {}", subscribe.destination);
    }
    let mut pending = first.into_iter();
    while subscribe.count.is_none_or(|n| seen < n) {
        let frame = match pending.next() {
            Some(frame) => frame,
            None => connection.next().await?,
        };
        match frame.command {
            Command::Message => {
                print_message(&frame, args.json);
                seen += 1;
            }
            Command::Error => bail!("{}", refusal(&frame)),
            _ => {}
        }
    }
    connection.close().await;
    Ok(ExitCode::SUCCESS)
}
