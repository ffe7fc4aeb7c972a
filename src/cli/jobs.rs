//! `stompede jobs ...`: list, show, watch and control jobs.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::Value;

use super::connection::Login;
use super::{progress, report, ClientArgs};

/// What to do with jobs.
#[derive(Subcommand, Debug)]
pub enum JobsCommand {
    /// Your jobs (an admin's: everyone's), oldest first.
    List {
        /// Only jobs with this status (pending, processing, paused, completed, failed,
        /// cancelled).
        #[arg(long)]
        status: Option<String>,
        /// Only jobs of this type.
        #[arg(long = "type")]
        job_type: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// One job, whole, as JSON.
    Show {
        /// The job id.
        id: String,
    },
    /// Follow jobs to their end with progress bars.
    Watch {
        /// Job ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Cancel a job.
    Cancel {
        /// The job id.
        id: String,
    },
    /// Pause a job at its next chunk boundary.
    Pause {
        /// The job id.
        id: String,
    },
    /// Resume a paused job.
    Resume {
        /// The job id.
        id: String,
    },
    /// Run a failed or cancelled job again from its checkpoint.
    Retry {
        /// The job id.
        id: String,
    },
    /// Delete a job and its files.
    Delete {
        /// The job id.
        id: String,
    },
}

/// Query-string escaping for a filter value.
fn escape(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// `stompede jobs`.
pub async fn jobs(args: &ClientArgs, command: JobsCommand) -> anyhow::Result<ExitCode> {
    let login = args.login()?;
    match command {
        JobsCommand::Watch { ids } => {
            let mut connection = args.connect(&login).await?;
            let finished = progress::follow(&mut connection, &ids, args.mode()).await?;
            connection.close().await;
            Ok(report(args, &finished))
        }
        JobsCommand::List {
            status,
            job_type,
            limit,
        } => {
            let mut query = format!("?limit={limit}");
            for (name, value) in [("status", status), ("type", job_type)] {
                if let Some(value) = value {
                    query.push_str(&format!("&{name}={}", escape(&value)));
                }
            }
            let page = args.api(&login)?.get(&format!("/api/jobs{query}")).await?;
            let jobs = page["jobs"].as_array().cloned().unwrap_or_default();
            if args.json {
                println!("{}", Value::Array(jobs));
            } else {
                print_table(&jobs);
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Show { id } => {
            let job = args
                .api(&login)?
                .get(&format!("/api/jobs/{}", escape(&id)))
                .await?;
            println!("{}", serde_json::to_string_pretty(&job)?);
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Delete { id } => {
            args.api(&login)?
                .delete(&format!("/api/jobs/{}", escape(&id)))
                .await?;
            eprintln!("job {id} deleted");
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Cancel { id } => control(args, &login, &id, "cancel").await,
        JobsCommand::Pause { id } => control(args, &login, &id, "pause").await,
        JobsCommand::Resume { id } => control(args, &login, &id, "resume").await,
        JobsCommand::Retry { id } => control(args, &login, &id, "retry").await,
    }
}

/// `POST /api/jobs/{id}/{action}`.
async fn control(
    args: &ClientArgs,
    login: &Login,
    id: &str,
    action: &str,
) -> anyhow::Result<ExitCode> {
    let job = args
        .api(login)?
        .post(&format!("/api/jobs/{}/{action}", escape(id)))
        .await?;
    if args.json {
        println!("{job}");
    } else {
        let status = job["status"].as_str().unwrap_or("request taken");
        eprintln!("job {id}: {status}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The table `jobs list` prints.
fn print_table(jobs: &[Value]) {
    println!(
        "{:<26}  {:<10}  {:<10}  {:>6}  {:>9}",
        "ID", "TYPE", "STATUS", "DONE", "CHUNKS"
    );
    for job in jobs {
        let progress = &job["progress"];
        println!(
            "{:<26}  {:<10}  {:<10}  {:>5}%  {:>4}/{:<4}",
            job["id"].as_str().unwrap_or("?"),
            job["type"].as_str().unwrap_or("?"),
            job["status"].as_str().unwrap_or("?"),
            progress["percentage"].as_f64().unwrap_or(0.0).round(),
            progress["chunksCompleted"].as_u64().unwrap_or(0),
            progress["chunkCount"].as_u64().unwrap_or(0),
        );
    }
}
