//! `stompede submit TYPE ...`: uploads the files a job reads (over the HTTP API), submits the
//! job over STOMP, and follows it to its end.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};
use stompede::protocol::{Command, Frame};

use super::connection::{refusal, Connection, Login};
use super::{progress, report, ClientArgs};

/// What to submit.
#[derive(Subcommand, Debug)]
pub enum SubmitCommand {
    /// A `demo` job: chunks that hash generated data.
    Demo {
        /// Chunks.
        #[arg(long, default_value_t = 10)]
        chunks: u64,
        /// MiB hashed per chunk.
        #[arg(long, default_value_t = 1)]
        mib_per_chunk: u64,
        /// Each chunk waits this long first, in ms (to watch a job go by).
        #[arg(long)]
        chunk_delay_ms: Option<u64>,
        #[command(flatten)]
        options: SubmitOptions,
    },
    /// Reconcile a back-office CSV file with a partner's, matched by key.
    Reconcile {
        /// The back-office file (uploaded first).
        bo_file: PathBuf,
        /// The partner file (uploaded first).
        partner_file: PathBuf,
        /// The back-office key column.
        #[arg(long)]
        bo_key: String,
        /// The partner key column.
        #[arg(long)]
        partner_key: String,
        /// `,` `;` `|` `tab` or `auto`.
        #[arg(long)]
        delimiter: Option<String>,
        #[command(flatten)]
        options: SubmitOptions,
    },
    /// Recognise the text of a scanned PDF or an image.
    Ocr {
        /// The PDF, PNG, JPEG or TIFF file (uploaded first).
        file: PathBuf,
        /// Tesseract languages, e.g. fra+eng.
        #[arg(long)]
        languages: Option<String>,
        /// Pages to read, e.g. 1-5,8.
        #[arg(long)]
        pages: Option<String>,
        /// Pages per chunk.
        #[arg(long)]
        pages_per_chunk: Option<u64>,
        /// Any of text, pages, pdf (comma-separated).
        #[arg(long, value_delimiter = ',')]
        outputs: Vec<String>,
        #[command(flatten)]
        options: SubmitOptions,
    },
    /// Extract structured data from a document.
    Extract {
        /// The document (uploaded first).
        file: PathBuf,
        /// Any of dce, requirements, receipt (comma-separated).
        #[arg(long, value_delimiter = ',')]
        profiles: Vec<String>,
        #[command(flatten)]
        options: SubmitOptions,
    },
}

/// Options every submission takes.
#[derive(Args, Debug)]
pub struct SubmitOptions {
    /// low, normal, high, critical, or an integer.
    #[arg(long)]
    priority: Option<String>,
    /// Another parameter as NAME=VALUE (the value as JSON when it parses, else a string);
    /// repeatable.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// Print the job id and return once the job is stored, without following it.
    #[arg(long)]
    no_wait: bool,
}

/// Adds `--param NAME=VALUE` pairs to `params`.
fn extra_params(params: &mut Map<String, Value>, pairs: &[String]) -> anyhow::Result<()> {
    for pair in pairs {
        let (name, value) = pair
            .split_once('=')
            .with_context(|| format!("--param {pair:?}: expected NAME=VALUE"))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| json!(value));
        params.insert(name.to_owned(), value);
    }
    Ok(())
}

/// Inserts `value` under `key` when there is one.
fn put(params: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(value) = value {
        params.insert(key.to_owned(), value);
    }
}

impl SubmitCommand {
    /// The job type, its parameters (after uploading its files) and the common options.
    async fn prepare(
        self,
        args: &ClientArgs,
        login: &Login,
    ) -> anyhow::Result<(&'static str, Map<String, Value>, SubmitOptions)> {
        let mut params = Map::new();
        let (job_type, options) = match self {
            SubmitCommand::Demo {
                chunks,
                mib_per_chunk,
                chunk_delay_ms,
                options,
            } => {
                put(&mut params, "chunks", Some(json!(chunks)));
                put(&mut params, "mibPerChunk", Some(json!(mib_per_chunk)));
                put(
                    &mut params,
                    "chunkDelayMs",
                    chunk_delay_ms.map(|ms| json!(ms)),
                );
                ("demo", options)
            }
            SubmitCommand::Reconcile {
                bo_file,
                partner_file,
                bo_key,
                partner_key,
                delimiter,
                options,
            } => {
                let api = args.api(login)?;
                put(
                    &mut params,
                    "boUpload",
                    Some(json!(api.upload(&bo_file).await?)),
                );
                let partner = api.upload(&partner_file).await?;
                put(&mut params, "partnerUpload", Some(json!(partner)));
                put(&mut params, "boKey", Some(json!(bo_key)));
                put(&mut params, "partnerKey", Some(json!(partner_key)));
                put(&mut params, "delimiter", delimiter.map(|d| json!(d)));
                ("reconcile", options)
            }
            SubmitCommand::Ocr {
                file,
                languages,
                pages,
                pages_per_chunk,
                outputs,
                options,
            } => {
                let upload = args.api(login)?.upload(&file).await?;
                put(&mut params, "upload", Some(json!(upload)));
                put(&mut params, "languages", languages.map(|l| json!(l)));
                put(&mut params, "pages", pages.map(|p| json!(p)));
                put(
                    &mut params,
                    "pagesPerChunk",
                    pages_per_chunk.map(|n| json!(n)),
                );
                let outputs = (!outputs.is_empty()).then(|| json!(outputs));
                put(&mut params, "outputs", outputs);
                ("ocr", options)
            }
            SubmitCommand::Extract {
                file,
                profiles,
                options,
            } => {
                let upload = args.api(login)?.upload(&file).await?;
                put(&mut params, "upload", Some(json!(upload)));
                let profiles = (!profiles.is_empty()).then(|| json!(profiles));
                put(&mut params, "profiles", profiles);
                ("extract", options)
            }
        };
        extra_params(&mut params, &options.params)?;
        Ok((job_type, params, options))
    }
}

/// Sends the submission; the job id from its RECEIPT, or the server's reason for refusing it.
async fn send_job(
    connection: &mut Connection,
    job_type: &str,
    params: &Map<String, Value>,
    priority: Option<&str>,
) -> anyhow::Result<String> {
    let mut frame = Frame::new(Command::Send)
        .header("destination", "/app/jobs")
        .header("job-type", job_type)
        .header("content-type", "application/json")
        .body(Value::Object(params.clone()).to_string());
    if let Some(priority) = priority {
        frame = frame.header("priority", priority);
    }
    let receipt = connection.send_receipted(frame).await?;
    loop {
        let frame = connection.next().await?;
        match frame.command {
            Command::Receipt if frame.get("receipt-id") == Some(receipt.as_str()) => {
                return frame
                    .get("job-id")
                    .map(str::to_owned)
                    .context("the RECEIPT carries no job-id");
            }
            Command::Message
                if frame.get("event") == Some("JOB_REJECTED")
                    && frame.get("receipt-id") == Some(receipt.as_str()) =>
            {
                let body: Value = serde_json::from_slice(&frame.body).unwrap_or(Value::Null);
                bail!(
                    "the job was refused: {} ({})",
                    body["reason"].as_str().unwrap_or("no reason given"),
                    body["code"].as_str().unwrap_or("?")
                );
            }
            Command::Error => bail!("{}", refusal(&frame)),
            _ => {}
        }
    }
}

/// `stompede submit`.
pub async fn submit(args: &ClientArgs, command: SubmitCommand) -> anyhow::Result<ExitCode> {
    let login = args.login()?;
    let (job_type, params, options) = command.prepare(args, &login).await?;
    let mut connection = args.connect(&login).await?;
    // A refused submission is told on the submitter's error queue, not by an ERROR.
    connection
        .subscribe("errors", "/user/queue/errors", &[])
        .await?;
    let id = send_job(
        &mut connection,
        job_type,
        &params,
        options.priority.as_deref(),
    )
    .await?;
    if options.no_wait {
        if args.json {
            println!("{}", json!({ "jobId": id }));
        } else {
            println!("{id}");
        }
        connection.close().await;
        return Ok(ExitCode::SUCCESS);
    }
    if !args.json {
        eprintln!("job {id} submitted ({job_type})");
    }
    let finished = progress::follow(&mut connection, &[id], args.mode()).await?;
    connection.close().await;
    Ok(report(args, &finished))
}
