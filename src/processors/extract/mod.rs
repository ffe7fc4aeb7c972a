//! The `extract` job type: tender files (DCE), requirements and receipts to structured data,
//! every value with the page and span it was read from.
//!
//! Planning reads the whole input once into pages of text (a text file's form-feed pages or
//! sections, a PDF's text layer, a DOCX's or ODT's page breaks) and keeps them as
//! `document.json` in the job's result directory; each chunk runs the asked profiles on its
//! pages, with the whole document at hand for context (the section a page starts in, a
//! sentence that runs on past a page break); the merge joins the chunks' items, each once,
//! taking the chunks' parts one at a time, and writes `extraction.json`. The extractor is
//! deterministic and offline: rules, closed lists and the normalisation of French and
//! English dates and amounts.
//!
//! Memory comes from the server's `extract-memory-budget`, shared by every `extract` job
//! ([`budget`]): a job reserves what its document will take before reading it, and waits for
//! room rather than go over.

mod budget;
mod chat;
mod document;
mod documents;
mod formats;
mod found;
mod normalise;
mod ocr;
mod params;
pub(crate) mod profiles;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::jobs::{
    ChildJob, ChunkContext, ChunkFuture, ChunkPlan, ChunkResults, JobError, JobHandler, JobInput,
};
use crate::processors::input::ImportDir;
use crate::processors::memory::Reservation;
use crate::processors::ocr::tools::Tools;
use budget::Budget;
use document::Document;
use documents::{Documents, Held};
use params::Params;
use profiles::Profile;

/// Where the document read at planning waits for the chunks.
const DOCUMENT_FILE: &str = "document.json";
/// The job's merged result, as a file.
const RESULT_FILE: &str = "extraction.json";

/// The extraction job type.
#[derive(Debug, Clone)]
pub struct Extract {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    import: ImportDir,
    tools: Tools,
    profiles: Vec<Box<dyn Profile>>,
    /// The optional model behind the rules (`chat.rs`).
    chat: Option<chat::ChatBackend>,
    /// The running jobs' documents, read once per job.
    documents: Documents,
    /// The memory every `extract` job of the server shares.
    budget: Budget,
}

/// Documents kept for running jobs: enough for the jobs that run at once.
const DOCUMENTS_KEPT: usize = 4;

impl Extract {
    /// Reads files from `import_dir` (PDFs through poppler's programs on the PATH); the jobs
    /// together hold at most about the default `extract-memory-budget`.
    pub fn new(import_dir: impl Into<PathBuf>) -> Extract {
        Extract {
            inner: Arc::new(Inner {
                import: ImportDir::new(import_dir),
                tools: Tools {
                    tesseract: "tesseract".into(),
                    poppler_dir: None,
                },
                profiles: profiles::all(),
                chat: None,
                documents: Documents::new(DOCUMENTS_KEPT),
                budget: Budget::new(crate::Config::DEFAULT_EXTRACT_MEMORY_BUDGET),
            }),
        }
    }

    /// The jobs together hold at most about `bytes` (at least 1 MiB): a job that cannot
    /// reserve what its document takes waits for room.
    pub fn with_memory_budget(self, bytes: u64) -> Extract {
        self.rebuilt(
            self.inner.import.clone(),
            self.inner.chat.clone(),
            Budget::new(bytes),
        )
    }

    /// Upload ids (parameter `upload`) are looked up in `dir`, as the HTTP API stores them.
    pub fn with_uploads(self, dir: impl Into<PathBuf>) -> Extract {
        self.rebuilt(
            self.inner.import.clone().with_uploads(dir),
            self.inner.chat.clone(),
            self.inner.budget.clone(),
        )
    }

    /// Asks an OpenAI-compatible chat-completions endpoint at `url` (the full
    /// `.../chat/completions` URL) with `model` (and bearer `key`) to correct and complete the
    /// rules' reading of each chunk; its values are grounded in the text again, and where it
    /// fails the rules' reading stands, with a warning.
    pub fn with_chat_backend(
        self,
        url: impl Into<String>,
        model: impl Into<String>,
        key: Option<String>,
    ) -> Result<Extract, String> {
        let chat = chat::ChatBackend::new(url.into(), model.into(), key)?;
        Ok(self.rebuilt(
            self.inner.import.clone(),
            Some(chat),
            self.inner.budget.clone(),
        ))
    }

    /// A handler with these parts and this one's tools, and a document cache of its own.
    fn rebuilt(
        &self,
        import: ImportDir,
        chat: Option<chat::ChatBackend>,
        budget: Budget,
    ) -> Extract {
        Extract {
            inner: Arc::new(Inner {
                import,
                tools: self.inner.tools.clone(),
                profiles: profiles::all(),
                chat,
                documents: Documents::new(DOCUMENTS_KEPT),
                budget,
            }),
        }
    }
}

fn io(path: &Path, error: impl std::fmt::Display) -> JobError {
    JobError::retryable("io", format!("{}: {error}", path.display()))
}

fn internal(error: impl std::fmt::Display) -> JobError {
    JobError::permanent("internal_error", error.to_string())
}

impl JobHandler for Extract {
    fn validate(&self, params: &Value) -> Result<(), JobError> {
        Params::parse(params).map(drop)
    }

    fn children(&self, job: &JobInput) -> Result<Vec<ChildJob>, JobError> {
        let p = Params::parse(&job.params)?;
        let (read, reservation) = self.inner.read(job, &p)?;
        store_document(&job.result_dir, &read.document)?;
        self.inner.documents.forget(&job.result_dir);
        drop(reservation);
        if read.needs_ocr.is_empty() {
            return Ok(Vec::new());
        }
        // The scanned pages (or the image) go through the `ocr` job type, as a child whose
        // events its watchers see on this job's topic.
        let mut params = Map::new();
        for name in ["file", "upload", "password"] {
            if let Some(value) = job.params.get(name).filter(|v| !v.is_null()) {
                params.insert(name.to_owned(), value.clone());
            }
        }
        params.insert("languages".into(), json!(p.languages));
        params.insert("outputs".into(), json!(["pages"]));
        if read.document.format == formats::Format::Pdf.name() {
            params.insert("pages".into(), json!(page_list(&read.needs_ocr)));
        }
        Ok(vec![ChildJob {
            job_type: "ocr".to_owned(),
            params: Value::Object(params),
        }])
    }

    fn plan(&self, job: &JobInput) -> Result<Vec<ChunkPlan>, JobError> {
        let p = Params::parse(&job.params)?;
        // `children` read the document just before (on this job's first start).
        let stored = budget::file_size(&job.result_dir.join(DOCUMENT_FILE));
        let (mut document, _reservation) = match stored {
            Ok(stored) => {
                let reservation = self
                    .inner
                    .budget
                    .for_document(stored, &|| self.inner.documents.release_idle())?;
                (load_document(&job.result_dir)?, reservation)
            }
            Err(_) => {
                let (read, reservation) = self.inner.read(job, &p)?;
                (read.document, reservation)
            }
        };
        for child in &job.children {
            ocr::merge_into(&mut document, child)?;
        }
        store_document(&job.result_dir, &document)?;
        self.inner.documents.forget(&job.result_dir);
        Ok(plan_chunks(document.pages.len(), p.pages_per_chunk))
    }

    fn run_chunk(&self, ctx: ChunkContext) -> ChunkFuture {
        let inner = self.inner.clone();
        Box::pin(async move {
            let p = Params::parse(&ctx.job.params)?;
            let range = chunk_range(&ctx.plan)?;
            let dir = ctx.job.result_dir.clone();
            let pages = range.len() as u64;
            let rules = inner.clone();
            let (owned, profiles) = (range.clone(), p.profiles.clone());
            let waiting = ctx.clone();
            let (mut part, document) = tokio::task::spawn_blocking(move || {
                // The job's memory is reserved with its document, and held while the
                // document is: the first chunk to read it waits for room if need be.
                let document = rules.documents.get(&dir, |stored| {
                    let bytes = Budget::job_cost(stored);
                    rules
                        .budget
                        .for_chunk(&waiting, bytes, &|| rules.documents.release_idle())
                })?;
                waiting.report(0, pages, "extracting");
                let part = rules.extract(&document, owned, &profiles);
                Ok::<_, JobError>((part, document))
            })
            .await
            .map_err(internal)??;
            if let Some(chat) = &inner.chat {
                let mut warnings = Vec::new();
                for name in &p.profiles {
                    let draft = part.get(name.as_str()).cloned().unwrap_or(Value::Null);
                    match chat.extract(name, &document, range.clone(), &draft).await {
                        Ok(reading) => part[name.as_str()] = reading,
                        Err(why) => warnings.push(format!(
                            "pages {}: the extraction backend failed ({why}); the rules' reading stands",
                            part["pages"]
                        )),
                    }
                }
                part["warnings"] = json!(warnings);
            }
            ctx.report(pages, pages, "extracted");
            Ok(part)
        })
    }

    fn merge(&self, job: &JobInput, chunks: Vec<Value>) -> Result<Value, JobError> {
        self.merge_each(job, ChunkResults::from_vec(chunks))
    }

    fn merge_each(&self, job: &JobInput, chunks: ChunkResults) -> Result<Value, JobError> {
        let p = Params::parse(&job.params)?;
        // Kept with the memory its job reserved at its first chunk (read again, and reserved
        // again, if it was let go meanwhile).
        let documents = &self.inner.documents;
        let document = documents.get(&job.result_dir, |stored| {
            self.inner
                .budget
                .wait(Budget::job_cost(stored), &|| documents.release_idle())
        })?;
        self.inner.documents.forget(&job.result_dir);
        let result = self.inner.merge(job, &p, &document, chunks)?;
        let _ = std::fs::remove_file(job.result_dir.join(DOCUMENT_FILE));
        Ok(result)
    }
}

impl Inner {
    /// Reads the job's input as far as it can without OCR, once the memory it may take is
    /// reserved; the reservation comes with the document.
    fn read(&self, job: &JobInput, p: &Params) -> Result<(formats::Read, Reservation), JobError> {
        let path = self.import.open(&p.file, &job.owner)?;
        let reservation = self
            .budget
            .for_input(budget::file_size(&path)?, &|| self.documents.release_idle())?;
        let head = read_head(&path)?;
        let format = formats::identify(&path, &head)?;
        std::fs::create_dir_all(&job.result_dir).map_err(|e| io(&job.result_dir, e))?;
        let scratch = job.result_dir.join("layer.txt");
        let read = formats::read(format, &path, &self.tools, p.password.as_deref(), &scratch)?;
        Ok((read, reservation))
    }

    /// The job's result from the chunks' parts, taken one at a time: each profile folds them
    /// as they come, and `extraction.json` is written from the result as it is serialised.
    fn merge(
        &self,
        job: &JobInput,
        p: &Params,
        document: &Held,
        chunks: ChunkResults,
    ) -> Result<Value, JobError> {
        let chosen: Vec<&dyn Profile> = self.chosen(&p.profiles).collect();
        let mut mergers: Vec<_> = chosen.iter().map(|profile| profile.merger()).collect();
        let mut warnings = document.warnings.clone();
        for chunk in chunks {
            let mut chunk = chunk?;
            for (profile, merger) in chosen.iter().zip(&mut mergers) {
                let part = chunk
                    .get_mut(profile.name())
                    .map_or(Value::Null, Value::take);
                merger.absorb(part);
            }
            if let Some(said) = chunk.get("warnings").and_then(Value::as_array) {
                warnings.extend(said.iter().filter_map(Value::as_str).map(str::to_owned));
            }
        }
        let mut result = Map::new();
        for (profile, merger) in chosen.iter().zip(mergers) {
            result.insert(profile.name().to_owned(), merger.finish());
        }
        if document.is_empty() {
            warnings.push("the document has no text to extract from".to_owned());
        }
        result.insert("warnings".into(), json!(warnings));
        result.insert("format".into(), json!(document.format));
        result.insert("pageCount".into(), json!(document.pages.len()));
        result.insert("pages".into(), json!(document.pages));
        let path = job.result_dir.join(RESULT_FILE);
        let mut result = Value::Object(result);
        write_json(&path, &result)?;
        if let Some(map) = result.as_object_mut() {
            map.insert(
                "files".into(),
                json!({ RESULT_FILE: path.display().to_string() }),
            );
        }
        Ok(result)
    }

    fn chosen<'a>(&'a self, names: &'a [String]) -> impl Iterator<Item = &'a dyn Profile> {
        names.iter().filter_map(|name| {
            self.profiles
                .iter()
                .find(|p| p.name() == name)
                .map(|p| p.as_ref())
        })
    }

    /// A chunk's part: the pages it covers, and each profile's items.
    fn extract(&self, document: &Document, range: Range<usize>, names: &[String]) -> Value {
        let mut part = Map::new();
        let numbers: Vec<u32> = document.pages[range.clone()]
            .iter()
            .map(|p| p.page)
            .collect();
        part.insert("pages".into(), json!(numbers));
        for profile in self.chosen(names) {
            part.insert(
                profile.name().to_owned(),
                profile.extract(document, range.clone()),
            );
        }
        Value::Object(part)
    }
}

/// Pages as the `ocr` job's `pages` parameter takes them: `1-3,7`.
fn page_list(pages: &[u32]) -> String {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for &n in pages {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == n => *last = n,
            _ => runs.push((n, n)),
        }
    }
    runs.iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Chunks of `per_chunk` pages; one (empty) chunk for a document without pages, so that it
/// completes with its warning.
fn plan_chunks(pages: usize, per_chunk: u64) -> Vec<ChunkPlan> {
    let per_chunk = usize::try_from(per_chunk).unwrap_or(usize::MAX).max(1);
    let mut plans = Vec::new();
    let mut start = 0;
    loop {
        let end = (start + per_chunk).min(pages);
        plans.push(ChunkPlan {
            label: match end - start {
                0 => "no pages".to_owned(),
                1 => format!("page {end}"),
                _ => format!("pages {} to {end}", start + 1),
            },
            params: json!({ "from": start, "to": end }),
            units: (end - start) as u64,
        });
        start = end;
        if start >= pages {
            return plans;
        }
    }
}

fn chunk_range(plan: &ChunkPlan) -> Result<Range<usize>, JobError> {
    let bound = |name: &str| {
        plan.params[name]
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| JobError::permanent("invalid_plan", "the chunk's plan names no pages"))
    };
    Ok(bound("from")?..bound("to")?)
}

/// Writes `value` to `path` as pretty JSON, as it is serialised (no copy of it in bytes).
fn write_json(path: &Path, value: &Value) -> Result<(), JobError> {
    use std::io::Write;
    let file = std::fs::File::create(path).map_err(|e| io(path, e))?;
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, file);
    serde_json::to_writer_pretty(&mut out, value).map_err(|e| io(path, e))?;
    out.flush().map_err(|e| io(path, e))
}

fn store_document(dir: &Path, document: &Document) -> Result<(), JobError> {
    let path = dir.join(DOCUMENT_FILE);
    let bytes = serde_json::to_vec(document).map_err(internal)?;
    std::fs::write(&path, bytes).map_err(|e| io(&path, e))
}

fn load_document(dir: &Path) -> Result<Document, JobError> {
    let path = dir.join(DOCUMENT_FILE);
    let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
    let document: Document =
        serde_json::from_slice(&bytes).map_err(|e| io(&path, format!("unreadable: {e}")))?;
    Ok(document)
}

/// The first bytes of a file, enough to tell its format.
fn read_head(path: &Path) -> Result<Vec<u8>, JobError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let mut head = Vec::new();
    file.take(64 * 1024)
        .read_to_end(&mut head)
        .map_err(|e| io(path, e))?;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_page_once() {
        let plans = plan_chunks(23, 10);
        let ranges: Vec<Range<usize>> = plans
            .iter()
            .map(|p| chunk_range(p).unwrap_or(0..0))
            .collect();
        assert_eq!(ranges, vec![0..10, 10..20, 20..23]);
        assert_eq!(plans[2].label, "pages 21 to 23");
        let empty = plan_chunks(0, 10);
        assert_eq!(empty.len(), 1);
        assert_eq!(empty[0].units, 0);
    }

    #[test]
    fn page_lists_join_runs() {
        assert_eq!(page_list(&[1, 2, 3, 5, 7, 8]), "1-3,5,7-8");
        assert_eq!(page_list(&[4]), "4");
    }
}
