//! The client side of the `stompede` command: submit jobs and watch them with progress bars,
//! manage jobs, and send to or subscribe to destinations, against a running server.
//!
//! Exit codes: 0 done (every job completed), 1 an error (one line on standard error), 3 a job
//! failed, 4 a job was cancelled.

mod api;
mod connection;
pub mod debug;
pub mod jobs;
mod progress;
pub mod submit;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

pub use debug::{SendArgs, SubscribeArgs};
pub use jobs::JobsCommand;
pub use submit::SubmitCommand;

use connection::{Connection, Login};
use progress::{Ending, Finished};

/// Where the server is and who is calling; shared by every client command.
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// The server: ws://HOST:PORT/ws or wss://HOST:PORT/ws (WebSocket, plain or TLS),
    /// tcp://HOST:PORT or tls://HOST:PORT (STOMP over TCP, plain or TLS).
    #[arg(
        long,
        global = true,
        env = "STOMPEDE_URL",
        default_value = "ws://127.0.0.1:15674/ws"
    )]
    url: String,
    /// The HTTP API, for uploads and job listings [default: from --url: http://HOST:PORT,
    /// or https://HOST:PORT for wss://].
    #[arg(long, global = true, env = "STOMPEDE_HTTP_URL")]
    http: Option<String>,
    /// A PEM file of certificates to trust for TLS (wss://, tls://, https://) besides the
    /// public roots: a private CA, or the server's own self-signed certificate.
    #[arg(long, global = true, env = "STOMPEDE_CA_FILE")]
    ca_file: Option<std::path::PathBuf>,
    /// The user to log in as; the password comes from STOMPEDE_PASSWORD, or is asked for.
    #[arg(long, global = true, env = "STOMPEDE_USER")]
    user: Option<String>,
    /// Print JSON for scripts (the final event of each job, as protocol/docs/jobs.md documents
    /// it) instead of bars and tables.
    #[arg(long, global = true)]
    json: bool,
}

impl ClientArgs {
    fn login(&self) -> anyhow::Result<Login> {
        let Some(user) = self.user.clone() else {
            // An open-mode server takes any name; the same one over STOMP and HTTP keeps the
            // uploads and the jobs one caller's.
            let name = std::env::var("USER").unwrap_or_else(|_| "cli".to_owned());
            return Ok(Login {
                user: Some(name),
                password: None,
            });
        };
        let password = match std::env::var("STOMPEDE_PASSWORD") {
            Ok(password) => password,
            Err(_) if std::io::stdin().is_terminal() => {
                rpassword::prompt_password(format!("password for {user}: "))
                    .context("reading the password")?
            }
            Err(_) => anyhow::bail!(
                "set STOMPEDE_PASSWORD: there is no terminal to ask for {user}'s password"
            ),
        };
        Ok(Login {
            user: Some(user),
            password: Some(password),
        })
    }

    /// How to show jobs while they run.
    fn mode(&self) -> progress::Mode {
        if self.json {
            progress::Mode::Quiet
        } else {
            progress::Mode::Auto
        }
    }

    async fn connect(&self, login: &Login) -> anyhow::Result<Connection> {
        Connection::open(&self.url, login, self.ca_file.as_deref()).await
    }

    fn api(&self, login: &Login) -> anyhow::Result<api::Api> {
        api::Api::new(
            api::base_for(&self.url, self.http.as_deref())?,
            login.clone(),
            self.ca_file.as_deref(),
        )
    }
}

/// The exit code for jobs that ended as `finished` did.
fn exit_code(finished: &[Finished]) -> ExitCode {
    if finished.iter().any(|f| f.ending == Ending::Failed) {
        ExitCode::from(3)
    } else if finished.iter().any(|f| f.ending == Ending::Cancelled) {
        ExitCode::from(4)
    } else {
        ExitCode::SUCCESS
    }
}

/// Prints jobs that ended: a summary, or their final events as JSON (one per line).
fn report(args: &ClientArgs, finished: &[Finished]) -> ExitCode {
    if args.json {
        for job in finished {
            println!("{}", job.event);
        }
    } else {
        let base = api::base_for(&args.url, args.http.as_deref()).ok();
        progress::summary(finished, base.as_deref());
    }
    exit_code(finished)
}

/// Runs a client command on a runtime of its own; errors become one line and exit code 1.
pub fn run(command: impl std::future::Future<Output = anyhow::Result<ExitCode>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("stompede: {error}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("stompede: {error:#}");
            ExitCode::from(1)
        }
    }
}
