//! The external programs OCR uses (tesseract, and poppler's pdfinfo, pdftotext and pdftoppm),
//! each run with a time limit and a bound on what is read of its output, so that a hostile or
//! broken input costs a failed page, never the server.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::params;
use crate::jobs::JobError;

/// What a program printed, when it exited.
#[derive(Debug)]
pub(super) struct Ran {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Its standard output, up to the bound.
    pub stdout: Vec<u8>,
    /// Its standard error, up to 64 KiB.
    pub stderr: String,
}

/// Why a program gave no answer.
#[derive(Debug, thiserror::Error)]
pub(super) enum ToolError {
    /// It could not be started (not installed, not executable).
    #[error("{program} could not be started: {error}")]
    Missing {
        /// The program.
        program: String,
        /// Why.
        error: std::io::Error,
    },
    /// It ran past its time limit and was killed.
    #[error("{program} ran longer than {limit:?} and was stopped")]
    TimedOut {
        /// The program.
        program: String,
        /// The limit.
        limit: Duration,
    },
    /// Reading its output failed.
    #[error("{program}: {error}")]
    Io {
        /// The program.
        program: String,
        /// Why.
        error: std::io::Error,
    },
}

/// Most bytes of standard error kept.
const STDERR_LIMIT: u64 = 64 * 1024;

/// Runs `program` with `args` and `envs`, killing it past `limit`; reads at most `max_output`
/// bytes of its standard output (the rest is discarded as it comes, so the program never
/// blocks on a full pipe).
pub(super) async fn run(
    program: &str,
    args: &[String],
    envs: &[(&str, &str)],
    limit: Duration,
    max_output: u64,
) -> Result<Ran, ToolError> {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (key, value) in envs {
        command.env(key, value);
    }
    let mut child = command.spawn().map_err(|error| ToolError::Missing {
        program: program.to_owned(),
        error,
    })?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(ToolError::Io {
            program: program.to_owned(),
            error: std::io::Error::other("no pipes"),
        });
    };
    let io = |error| ToolError::Io {
        program: program.to_owned(),
        error,
    };
    let work = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut stdout = stdout;
        let read_out = async {
            (&mut stdout).take(max_output).read_to_end(&mut out).await?;
            // Past the bound: keep draining, so that the program can finish.
            tokio::io::copy(&mut stdout, &mut tokio::io::sink()).await?;
            Ok::<_, std::io::Error>(())
        };
        let read_err = async {
            let mut stderr = stderr;
            (&mut stderr)
                .take(STDERR_LIMIT)
                .read_to_end(&mut err)
                .await?;
            tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await?;
            Ok::<_, std::io::Error>(())
        };
        let (a, b) = tokio::join!(read_out, read_err);
        a.map_err(io)?;
        b.map_err(io)?;
        let status = child.wait().await.map_err(io)?;
        Ok(Ran {
            success: status.success(),
            stdout: out,
            stderr: String::from_utf8_lossy(&err).into_owned(),
        })
    };
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result,
        // Dropping the future drops the child, which kills it (kill_on_drop).
        Err(_) => Err(ToolError::TimedOut {
            program: program.to_owned(),
            limit,
        }),
    }
}

/// Most address space one OCR program may take for one page: a page that would make tesseract
/// or poppler grow past it (a huge page at a high resolution) fails alone, with the program's
/// complaint as its warning, instead of pressing on the server's memory. Poppler refuses
/// bitmaps over 2 GiB by itself; tesseract needs several times its image.
pub(super) const PROGRAM_MEMORY_LIMIT: u64 = 3 * 1024 * 1024 * 1024;

/// Whether util-linux's `prlimit` is there to apply [`PROGRAM_MEMORY_LIMIT`].
static PRLIMIT: tokio::sync::OnceCell<bool> = tokio::sync::OnceCell::const_new();

/// Like [`run`], with the program's address space bounded by [`PROGRAM_MEMORY_LIMIT`] through
/// `prlimit` (util-linux, on every Debian system; without it the program runs unbounded).
pub(super) async fn run_bounded(
    program: &str,
    args: &[String],
    envs: &[(&str, &str)],
    limit: Duration,
    max_output: u64,
) -> Result<Ran, ToolError> {
    run_within(PROGRAM_MEMORY_LIMIT, program, args, envs, limit, max_output).await
}

async fn run_within(
    memory: u64,
    program: &str,
    args: &[String],
    envs: &[(&str, &str)],
    limit: Duration,
    max_output: u64,
) -> Result<Ran, ToolError> {
    let prlimit = *PRLIMIT
        .get_or_init(|| async {
            run("prlimit", &["--version".into()], &[], limit, 4096)
                .await
                .is_ok_and(|ran| ran.success)
        })
        .await;
    if !prlimit {
        return run(program, args, envs, limit, max_output).await;
    }
    let mut wrapped = vec![format!("--as={memory}"), "--".into(), program.to_owned()];
    wrapped.extend_from_slice(args);
    run("prlimit", &wrapped, envs, limit, max_output).await
}

/// The OCR programs to use, and what tesseract can read.
#[derive(Debug, Clone)]
pub(crate) struct Tools {
    /// The tesseract executable.
    pub tesseract: String,
    /// Where poppler's programs are (`None`: on the PATH).
    pub poppler_dir: Option<PathBuf>,
}

impl Tools {
    /// A poppler program's name or path.
    pub(crate) fn poppler(&self, name: &str) -> String {
        match &self.poppler_dir {
            Some(dir) => dir.join(name).display().to_string(),
            None => name.to_owned(),
        }
    }
}

/// What the machine offers for OCR, found once at start.
#[derive(Debug, Clone)]
pub(crate) enum Availability {
    /// Everything is there.
    Ready {
        /// tesseract's version line.
        version: String,
        /// Its installed languages.
        languages: Vec<String>,
    },
    /// Something is missing: why, and what to install.
    Missing(String),
}

/// The Debian packages OCR needs.
pub(crate) const INSTALL_HINT: &str =
    "install tesseract-ocr, tesseract-ocr-fra, tesseract-ocr-eng and poppler-utils (Debian)";

impl Availability {
    /// Looks for tesseract (its version and languages) and poppler's programs.
    pub(crate) async fn detect(tools: &Tools) -> Availability {
        let limit = Duration::from_secs(10);
        let version = match run(
            &tools.tesseract,
            &["--version".into()],
            &[],
            limit,
            64 * 1024,
        )
        .await
        {
            Ok(ran) if ran.success => {
                // Older versions print it on stderr.
                let text = if ran.stdout.is_empty() {
                    ran.stderr
                } else {
                    String::from_utf8_lossy(&ran.stdout).into_owned()
                };
                text.lines().next().unwrap_or("tesseract").trim().to_owned()
            }
            Ok(ran) => return Availability::Missing(format!("tesseract failed: {}", ran.stderr)),
            Err(error) => return Availability::Missing(format!("{error}; {INSTALL_HINT}")),
        };
        let languages = match run(
            &tools.tesseract,
            &["--list-langs".into()],
            &[],
            limit,
            64 * 1024,
        )
        .await
        {
            Ok(ran) if ran.success => String::from_utf8_lossy(&ran.stdout)
                .lines()
                .skip(1) // "List of available languages in ...:"
                .map(|l| l.trim().to_owned())
                .filter(|l| !l.is_empty() && l != "osd")
                .collect(),
            Ok(ran) => {
                return Availability::Missing(format!(
                    "tesseract --list-langs failed: {}",
                    ran.stderr
                ))
            }
            Err(error) => return Availability::Missing(format!("{error}; {INSTALL_HINT}")),
        };
        for program in ["pdfinfo", "pdftotext", "pdftoppm"] {
            if let Err(error) = run(
                &tools.poppler(program),
                &["-v".into()],
                &[],
                limit,
                64 * 1024,
            )
            .await
            {
                return Availability::Missing(format!("{error}; {INSTALL_HINT}"));
            }
        }
        Availability::Ready { version, languages }
    }
}

/// A text layer as people read it: trailing spaces and the final form feed dropped.
pub(crate) fn tidy_layer(text: &str) -> String {
    let text: Vec<&str> = text
        .trim_end_matches(['\u{c}', '\n'])
        .lines()
        .map(str::trim_end)
        .collect();
    text.join("\n")
}

/// The first meaningful line of a program's complaints.
pub(crate) fn first_line(stderr: &str) -> String {
    stderr
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("it failed without saying why")
        .to_owned()
}

/// A PDF's page count, through `pdfinfo` (a password, when needed, opens it).
pub(crate) fn pdf_pages(
    tools: &Tools,
    path: &Path,
    password: Option<&str>,
) -> Result<u32, JobError> {
    let mut command = std::process::Command::new(tools.poppler("pdfinfo"));
    if let Some(password) = password {
        command.args(["-upw", password]);
    }
    command.arg(path);
    let output = run_blocking(command, Duration::from_secs(60))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("Incorrect password") {
        return Err(match password {
            None => JobError::permanent(
                "password_required",
                "the PDF is protected by a password: give it as the password parameter",
            ),
            Some(_) => JobError::permanent("wrong_password", "the password does not open the PDF"),
        });
    }
    let pages = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse::<u32>().ok());
    match pages {
        Some(0) | None => Err(JobError::permanent(
            "unreadable_pdf",
            format!("the PDF could not be read: {}", first_line(&stderr)),
        )),
        Some(n) if n > params::MAX_PAGES => Err(JobError::permanent(
            "too_many_pages",
            format!(
                "the PDF has {n} pages; at most {} are read",
                params::MAX_PAGES
            ),
        )),
        Some(n) => Ok(n),
    }
}

/// Runs a program to completion from a blocking thread (plans run on the blocking pool),
/// killing it past `limit`. Its output must be small (a pipe's worth): a program that
/// writes more blocks until the limit; send large output to a file instead.
pub(crate) fn run_blocking(
    mut command: std::process::Command,
    limit: Duration,
) -> Result<std::process::Output, JobError> {
    use std::process::Stdio;
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            JobError::permanent(
                "unavailable",
                format!("{program} could not be started: {e}; {INSTALL_HINT}"),
            )
        })?;
    let deadline = std::time::Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(JobError::permanent(
                    "timeout",
                    format!("{program} ran longer than {limit:?}"),
                ));
            }
            Err(e) => return Err(JobError::retryable("io", e.to_string())),
        }
    }
    child
        .wait_with_output()
        .map_err(|e| JobError::retryable("io", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_program_that_grows_past_its_bound_fails_alone() {
        let grow = |bytes: u64| {
            vec![
                "-c".to_owned(),
                format!("x = bytearray({bytes}); print(len(x))"),
            ]
        };
        let limit = Duration::from_secs(30);
        let small = run_within(256 << 20, "python3", &grow(16 << 20), &[], limit, 4096)
            .await
            .unwrap();
        assert!(small.success, "{}", small.stderr);
        let big = run_within(256 << 20, "python3", &grow(1 << 30), &[], limit, 4096)
            .await
            .unwrap();
        assert!(!big.success);
        assert!(big.stderr.contains("MemoryError"), "{}", big.stderr);
    }
}
