//! The `ocr` job type: scanned PDFs and images to text, pages in chunks.
//!
//! A PDF page that carries a text layer is read directly (`pdftotext -layout`, rows of a table
//! kept together); any other page is rasterised (`pdftoppm`) and recognised by tesseract, one
//! single-threaded tesseract per page (its own OpenMP threading only slows a busy machine) and
//! as many pages at once as the machine has cores, shared by every OCR job. Tesseract runs with
//! page segmentation mode 4 (one column of text of variable sizes): the default (3) reads some
//! tables column by column, mode 4 keeps their rows together. Every program runs with a time
//! limit and bounded output: a page that hangs or breaks a program fails that page, with a
//! warning, and the job goes on.
//!
//! Memory comes from the server's `ocr-memory-budget`, shared by every `ocr` job: a page to
//! rasterise reserves what it and its tesseract will take before it starts (`budget.rs`), and
//! waits for room (`waiting for memory`) rather than exceed it.
//!
//! Files: `text.txt` (pages in order, a form feed between them), `pages.json` (per page:
//! text, confidence, source, words with their boxes) and, when asked, `searchable.pdf` (each
//! recognised page as its image with an invisible text layer, written by tesseract in the same
//! run; pages with a text layer kept as they were; joined by `pdfunite`) in the job's result
//! directory.

mod budget;
mod checkpoint;
mod format;
mod merge;
mod params;
pub(crate) mod preview;
mod salvage;
pub(crate) mod tools;
mod tsv;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::jobs::{
    ChunkContext, ChunkFuture, ChunkPlan, ChunkResults, JobError, JobHandler, JobInput,
};
use crate::processors::input::ImportDir;
use budget::Budget;
use format::Format;
use params::Params;
use tools::{first_line, pdf_pages, tidy_layer, Availability, ToolError, Tools, INSTALL_HINT};

/// Longest one program may work on one page.
const PAGE_TIME_LIMIT: Duration = Duration::from_secs(120);
/// Most text read from one program for one page.
const PAGE_OUTPUT_LIMIT: u64 = 16 * 1024 * 1024;
/// A text layer with fewer letters and digits than this is taken for a scan's stray marks
/// (a page number stamped on an image): the page is recognised instead.
const TEXT_LAYER_MIN_CHARS: usize = 8;
/// Resolution assumed for an image that does not state its own.
const ASSUMED_DPI: u32 = 300;
/// Largest damaged PDF read whole to salvage its pages.
const SALVAGE_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// The salvaged pages of a damaged PDF, in the job's result directory until the merge.
const SALVAGED_PDF: &str = "salvaged.pdf";
/// What the salvage lost, for the merge's warnings.
const SALVAGE_NOTE: &str = "salvage.json";

/// The OCR job type.
#[derive(Debug, Clone)]
pub struct Ocr {
    inner: Arc<Inner>,
}

#[derive(Debug, Clone)]
struct Inner {
    import: ImportDir,
    tools: Tools,
    availability: Availability,
    /// One permit per page being recognised, shared by every OCR job.
    pool: Arc<Semaphore>,
    parallel: usize,
    /// The memory every OCR job shares (`budget.rs`).
    budget: Budget,
}

impl Ocr {
    /// Reads files from `import_dir`, runs `tesseract` (a name on the PATH or a path) and
    /// poppler's programs from the PATH. Looks for them now: a machine without them refuses
    /// OCR submissions at once (`unavailable`), naming what to install.
    pub async fn new(import_dir: impl Into<PathBuf>, tesseract: impl Into<String>) -> Ocr {
        let tools = Tools {
            tesseract: tesseract.into(),
            poppler_dir: None,
        };
        let availability = Availability::detect(&tools).await;
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ocr {
            inner: Arc::new(Inner {
                import: ImportDir::new(import_dir),
                tools,
                availability,
                pool: Arc::new(Semaphore::new(parallel)),
                parallel,
                budget: Budget::new(crate::Config::DEFAULT_OCR_MEMORY_BUDGET),
            }),
        }
    }

    /// The jobs together, their tesseract and poppler processes included, hold at most about
    /// `bytes` (at least 1 MiB): a page that cannot reserve what it takes waits for room.
    pub fn with_memory_budget(self, bytes: u64) -> Ocr {
        let mut inner = (*self.inner).clone();
        inner.budget = Budget::new(bytes);
        Ocr {
            inner: Arc::new(inner),
        }
    }

    /// What was found, for the start-up log: the tesseract version and languages, or what
    /// is missing.
    pub fn status(&self) -> String {
        match &self.inner.availability {
            Availability::Ready { version, languages } => {
                format!("{version}, languages {}", languages.join("+"))
            }
            Availability::Missing(why) => format!("unavailable: {why}"),
        }
    }

    /// Upload ids (parameter `upload`) are looked up in `dir`, as the HTTP API stores them.
    pub fn with_uploads(self, dir: impl Into<PathBuf>) -> Ocr {
        let mut inner = (*self.inner).clone();
        inner.import = inner.import.with_uploads(dir);
        Ocr {
            inner: Arc::new(inner),
        }
    }

    /// True when OCR jobs can run here.
    pub fn is_available(&self) -> bool {
        matches!(self.inner.availability, Availability::Ready { .. })
    }
}

fn unreadable(code: &str, message: impl Into<String>) -> JobError {
    JobError::permanent(code, message)
}

impl JobHandler for Ocr {
    fn validate(&self, params: &Value) -> Result<(), JobError> {
        let languages = match &self.inner.availability {
            Availability::Ready { languages, .. } => languages,
            Availability::Missing(why) => {
                return Err(JobError::permanent(
                    "unavailable",
                    format!("OCR is not available on this server ({why}); {INSTALL_HINT}"),
                ))
            }
        };
        let p = Params::parse(params)?;
        if let Some(missing) = p
            .languages
            .split('+')
            .find(|l| !languages.iter().any(|i| i == l))
        {
            return Err(JobError::permanent(
                "invalid_parameter",
                format!(
                    "language {missing} is not installed; installed: {} (Debian: tesseract-ocr-{missing})",
                    languages.join(", ")
                ),
            ));
        }
        Ok(())
    }

    fn plan(&self, job: &JobInput) -> Result<Vec<ChunkPlan>, JobError> {
        let p = Params::parse(&job.params)?;
        let path = self.inner.import.open(&p.file, &job.owner)?;
        let head = read_head(&path)?;
        if head.is_empty() {
            return Err(unreadable(
                "empty_file",
                format!("{} is empty", p.file.describe()),
            ));
        }
        let format = format::sniff(&head).map_err(|why| unreadable("unsupported_format", why))?;
        // A damaged PDF's pages: for each, its number in the salvaged copy (None: lost).
        let mut salvaged: Option<Vec<Option<u32>>> = None;
        let count = match format {
            Format::Pdf => match pdf_pages(&self.inner.tools, &path, p.password.as_deref()) {
                Err(error) if error.code == "unreadable_pdf" => {
                    let saved = self.inner.salvage(&path, &job.result_dir)?.ok_or(error)?;
                    let count = u32::try_from(saved.len()).unwrap_or(u32::MAX);
                    salvaged = Some(saved);
                    count
                }
                other => other?,
            },
            Format::Png | Format::Jpeg => 1,
            Format::Tiff => {
                let data = std::fs::read(&path).map_err(|e| io(&path, e))?;
                format::tiff_pages(&data).ok_or_else(|| {
                    unreadable("unreadable_image", "the TIFF file is truncated or damaged")
                })?
            }
        };
        let selected: Vec<u32> = (1..=count).filter(|n| p.selects(*n)).collect();
        if selected.is_empty() {
            return Err(JobError::permanent(
                "invalid_parameter",
                format!("the document has {count} page(s); none is selected"),
            ));
        }
        // A TIFF is recognised in one run (tesseract cannot be given one of its pages).
        let per_chunk = match format {
            Format::Tiff => selected.len(),
            _ => p.pages_per_chunk as usize,
        };
        Ok(selected
            .chunks(per_chunk)
            .map(|pages| ChunkPlan {
                label: match pages {
                    [one] => format!("page {one}"),
                    [first, .., last] => format!("pages {first} to {last}"),
                    [] => String::new(),
                },
                params: match &salvaged {
                    None => json!({ "format": format.name(), "pages": pages }),
                    Some(saved) => json!({
                        "format": format.name(),
                        "pages": pages,
                        "salvaged": pages
                            .iter()
                            .map(|n| saved.get(*n as usize - 1).copied().flatten())
                            .collect::<Vec<_>>(),
                    }),
                },
                units: pages.len() as u64,
            })
            .collect())
    }

    fn run_chunk(&self, ctx: ChunkContext) -> ChunkFuture {
        let inner = self.inner.clone();
        Box::pin(async move { inner.run_chunk(&ctx).await })
    }

    fn merge(&self, job: &JobInput, chunks: Vec<Value>) -> Result<Value, JobError> {
        merge::merge(job, chunks.len())
    }

    fn merge_each(&self, job: &JobInput, chunks: ChunkResults) -> Result<Value, JobError> {
        // The pages wait in the chunks' part files: the results themselves are not read.
        merge::merge(job, usize::try_from(chunks.planned()).unwrap_or(usize::MAX))
    }

    fn chunk_timeout(&self) -> Duration {
        // Pages of a chunk may wait for the shared pool behind other jobs' pages.
        Duration::from_secs(3600)
    }
}

/// One page's outcome.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Page {
    page: u32,
    text: String,
    confidence: Option<f64>,
    /// `ocr`, `textLayer`, or `none` when the page could not be read.
    source: String,
    warnings: Vec<String>,
    words: Vec<Value>,
}

impl Page {
    fn failed(page: u32, why: impl std::fmt::Display) -> Page {
        Page {
            page,
            text: String::new(),
            confidence: None,
            source: "none".into(),
            warnings: vec![format!("page {page} could not be read: {why}")],
            words: Vec::new(),
        }
    }

    fn recognised(page: u32, recognised: tsv::Recognised, warnings: Vec<String>) -> Page {
        Page {
            page,
            confidence: recognised.confidence(),
            text: recognised.text,
            source: "ocr".into(),
            warnings,
            words: recognised
                .words
                .into_iter()
                .map(|w| json!({ "text": w.text, "conf": w.conf, "bbox": w.bbox }))
                .collect(),
        }
    }

    /// The page as a chunk's event carries it (no words).
    fn summary(&self) -> Value {
        json!({
            "page": self.page,
            "text": self.text,
            "confidence": self.confidence,
            "source": self.source,
            "warnings": self.warnings,
        })
    }
}

impl Inner {
    async fn run_chunk(self: &Arc<Self>, ctx: &ChunkContext) -> Result<Value, JobError> {
        let p = Params::parse(&ctx.job.params)?;
        let path = self.import.open(&p.file, &ctx.job.owner)?;
        let format = ctx.plan.params["format"]
            .as_str()
            .and_then(Format::named)
            .ok_or_else(|| {
                JobError::permanent("invalid_plan", "the chunk's plan names no format")
            })?;
        let pages: Vec<u32> = ctx.plan.params["pages"]
            .as_array()
            .map(|pages| {
                pages
                    .iter()
                    .filter_map(|n| n.as_u64().and_then(|n| u32::try_from(n).ok()))
                    .collect()
            })
            .unwrap_or_default();
        // A damaged PDF is read from its salvaged copy, where its pages have new numbers.
        let salvaged: Option<Vec<Option<u32>>> =
            ctx.plan.params["salvaged"].as_array().map(|saved| {
                saved
                    .iter()
                    .map(|n| n.as_u64().and_then(|n| u32::try_from(n).ok()))
                    .collect()
            });
        let (source, password) = match &salvaged {
            Some(_) => (ctx.job.result_dir.join(SALVAGED_PDF), None),
            None => (path.clone(), p.password.as_deref()),
        };
        let work = ctx.job.result_dir.join("parts");
        tokio::fs::create_dir_all(&work)
            .await
            .map_err(|e| io(&work, e))?;
        let total = pages.len() as u64;
        let done = std::sync::atomic::AtomicU64::new(0);
        let recognised: Vec<Page> = match format {
            Format::Tiff => self.image(ctx, &path, format, &p, &pages, &work).await?,
            Format::Png | Format::Jpeg => self.image(ctx, &path, format, &p, &[1], &work).await?,
            Format::Pdf => {
                futures::stream::iter(pages.iter().copied().enumerate())
                    .map(|(i, n)| {
                        let (source, work, p, done) = (&source, &work, &p, &done);
                        let at = match &salvaged {
                            Some(saved) => saved.get(i).copied().flatten(),
                            None => Some(n),
                        };
                        async move {
                            // A pause stops the chunk between pages: the pages read are
                            // kept (checkpoint.rs), and the chunk goes on from the next one
                            // when the job resumes.
                            if ctx.is_interrupted() {
                                return None;
                            }
                            let page = match at {
                                None => Page::failed(
                                    n,
                                    "it was lost: the file is damaged or cut short before its end",
                                ),
                                Some(at) => {
                                    let read = std::sync::atomic::Ordering::Relaxed;
                                    let page = PdfPage { path: source, at, n, password };
                                    tokio::select! {
                                        page = self.pdf_page(ctx, page, p, work, done.load(read)) => page?,
                                        () = ctx.cancelled() => return None,
                                    }
                                }
                            };
                            let finished =
                                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                            ctx.report(finished, total, &format!("page {n} read"));
                            Some(page)
                        }
                    })
                    .buffered(self.parallel)
                    .take_while(|page| std::future::ready(page.is_some()))
                    .filter_map(std::future::ready)
                    .collect()
                    .await
            }
        };
        if ctx.is_cancelled() {
            return Err(JobError::permanent("cancelled", "the job was cancelled"));
        }
        if recognised.len() < pages.len() && ctx.is_interrupted() {
            return Err(JobError::interrupted());
        }
        if recognised.len() < pages.len() && format == Format::Pdf {
            return Err(JobError::retryable("incomplete", "pages were left unread"));
        }
        // The full pages (words included) wait for the merge in a file of their own; the
        // chunk's event carries them without their words.
        let part = work.join(format!("{}.json", ctx.index));
        let bytes = serde_json::to_vec(&recognised)
            .map_err(|e| JobError::permanent("internal_error", e.to_string()))?;
        tokio::fs::write(&part, bytes)
            .await
            .map_err(|e| io(&part, e))?;
        Ok(json!({ "pages": recognised.iter().map(Page::summary).collect::<Vec<_>>() }))
    }

    /// A page of the document, when the chunk of `ctx` has read `processed` of its pages: its
    /// text layer when it has one, else recognised. A page read before (by an attempt a crash
    /// or a cancel cut short) is taken from its checkpoint, never recognised twice. `None`
    /// when the job was cancelled while the page waited for memory.
    async fn pdf_page(
        &self,
        ctx: &ChunkContext,
        page: PdfPage<'_>,
        p: &Params,
        work: &Path,
        processed: u64,
    ) -> Option<Page> {
        if let Some(page) = checkpoint::load(work, page.n, p.outputs.pdf).await {
            return Some(page);
        }
        let page = self.read_pdf_page(ctx, page, p, work, processed).await?;
        checkpoint::save(work, &page).await;
        Some(page)
    }

    async fn read_pdf_page(
        &self,
        ctx: &ChunkContext,
        page: PdfPage<'_>,
        p: &Params,
        work: &Path,
        processed: u64,
    ) -> Option<Page> {
        let PdfPage {
            path,
            at,
            n,
            password,
        } = page;
        let permit = self.pool.acquire().await;
        let mut args = vec!["-layout".into(), "-enc".into(), "UTF-8".into()];
        args.extend(page_args(at, password));
        args.extend([path.display().to_string(), "-".into()]);
        match tools::run_bounded(
            &self.tools.poppler("pdftotext"),
            &args,
            &[],
            PAGE_TIME_LIMIT,
            PAGE_OUTPUT_LIMIT,
        )
        .await
        {
            Ok(ran) if ran.success => {
                let text = tidy_layer(&String::from_utf8_lossy(&ran.stdout));
                if text.chars().filter(|c| c.is_alphanumeric()).count() >= TEXT_LAYER_MIN_CHARS {
                    let mut warnings = Vec::new();
                    if p.outputs.pdf {
                        // The page as it is: it is searchable already.
                        if let Err(why) = self.separate(path, at, n, work).await {
                            warnings.push(format!("page {n} is left out of searchable.pdf: {why}"));
                        }
                    }
                    return Some(Page {
                        page: n,
                        text,
                        confidence: None,
                        source: "textLayer".into(),
                        warnings,
                        words: Vec::new(),
                    });
                }
            }
            Ok(ran) => return Some(Page::failed(n, first_line(&ran.stderr))),
            Err(error) => return Some(Page::failed(n, error)),
        }
        // The memory first, then a core: a page waiting for room holds no core meanwhile.
        drop(permit);
        let _memory = self.budget.for_page(ctx, p.dpi, processed).await.ok()?;
        let _permit = self.pool.acquire().await;
        // No text layer: rasterise, then recognise. As an uncompressed grey PGM: writing a
        // 300 dpi page as PNG took pdftoppm 2.5 s (the zlib compression), as long as
        // recognising it; the PGM takes 0.2 s (and 8 MB of disk, for a moment).
        let image = work.join(format!("page-{n}"));
        let mut args = vec![
            "-r".into(),
            p.dpi.to_string(),
            "-gray".into(),
            "-singlefile".into(),
        ];
        args.extend(page_args(at, password));
        args.extend([path.display().to_string(), image.display().to_string()]);
        let raster = image.with_extension("pgm");
        let page = match tools::run_bounded(
            &self.tools.poppler("pdftoppm"),
            &args,
            &[],
            PAGE_TIME_LIMIT,
            64 * 1024,
        )
        .await
        {
            Ok(ran) if ran.success => match self
                .tesseract(
                    &raster,
                    p,
                    Some(p.dpi),
                    p.outputs.pdf.then(|| searchable(work, n)),
                )
                .await
            {
                Ok(mut pages) if !pages.is_empty() => {
                    Page::recognised(n, pages.remove(0), Vec::new())
                }
                Ok(_) => Page::recognised(n, tsv::Recognised::default(), Vec::new()),
                Err(why) => Page::failed(n, why),
            },
            Ok(ran) => Page::failed(n, first_line(&ran.stderr)),
            Err(error) => Page::failed(n, error),
        };
        let _ = tokio::fs::remove_file(&raster).await;
        Some(page)
    }

    /// An image file's pages (one, or a TIFF's), recognised in one run; an error when the job
    /// was cancelled while they waited for memory.
    async fn image(
        &self,
        ctx: &ChunkContext,
        path: &Path,
        format: Format,
        p: &Params,
        selected: &[u32],
        work: &Path,
    ) -> Result<Vec<Page>, JobError> {
        let head = read_head(path).unwrap_or_default();
        let mut warnings = Vec::new();
        let dpi = match format {
            Format::Tiff => None,
            _ => Some(format::stated_dpi(format, &head).unwrap_or_else(|| {
                warnings.push(format!(
                    "the image does not state its resolution: {ASSUMED_DPI} dpi assumed"
                ));
                ASSUMED_DPI
            })),
        };
        let pdf = p.outputs.pdf.then(|| searchable(work, 1));
        // Tesseract holds one page of an image at a time: one page's memory, at the image's
        // resolution (a TIFF's pages at the resolution assumed).
        let _memory = self
            .budget
            .for_page(ctx, dpi.unwrap_or(ASSUMED_DPI), 0)
            .await?;
        let _permit = self.pool.acquire().await;
        Ok(match self.tesseract(path, p, dpi, pdf).await {
            Ok(pages) => {
                let mut out: Vec<Page> = pages
                    .into_iter()
                    .filter(|r| selected.contains(&r.page))
                    .map(|r| Page::recognised(r.page, r, warnings.clone()))
                    .collect();
                if out.is_empty() {
                    out = selected
                        .iter()
                        .map(|n| Page::recognised(*n, tsv::Recognised::default(), warnings.clone()))
                        .collect();
                }
                out
            }
            Err(why) => selected.iter().map(|n| Page::failed(*n, &why)).collect(),
        })
    }

    /// Recognises `image`; with `pdf`, also writes the page(s) as a searchable PDF at
    /// `pdf` (a path without its `.pdf`) in the same run.
    async fn tesseract(
        &self,
        image: &Path,
        p: &Params,
        dpi: Option<u32>,
        pdf: Option<PathBuf>,
    ) -> Result<Vec<tsv::Recognised>, String> {
        let base = pdf
            .as_ref()
            .map_or_else(|| "-".to_owned(), |b| b.display().to_string());
        let mut args = vec![
            image.display().to_string(),
            base,
            "-l".into(),
            p.languages.clone(),
            "--psm".into(),
            "4".into(),
        ];
        if let Some(dpi) = dpi {
            args.extend(["--dpi".into(), dpi.to_string()]);
        }
        args.push("tsv".into());
        if pdf.is_some() {
            args.push("pdf".into());
        }
        // One thread per page: pages, not threads, spread over the cores.
        let ran = tools::run_bounded(
            &self.tools.tesseract,
            &args,
            &[("OMP_THREAD_LIMIT", "1")],
            PAGE_TIME_LIMIT,
            PAGE_OUTPUT_LIMIT,
        )
        .await
        .map_err(|e| match e {
            ToolError::Missing { .. } => format!("{e}; {INSTALL_HINT}"),
            e => e.to_string(),
        })?;
        if !ran.success {
            return Err(first_line(&ran.stderr));
        }
        let tsv = match &pdf {
            None => ran.stdout,
            Some(base) => {
                let path = base.with_extension("tsv");
                let bytes = read_bounded(&path, PAGE_OUTPUT_LIMIT)
                    .await
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let _ = tokio::fs::remove_file(&path).await;
                bytes
            }
        };
        Ok(tsv::parse(&String::from_utf8_lossy(&tsv)))
    }

    /// Copies page `at` of a PDF, as it is, to the searchable PDF's page `n`.
    async fn separate(&self, path: &Path, at: u32, n: u32, work: &Path) -> Result<(), String> {
        let out = searchable(work, n).with_extension("pdf");
        let args = vec![
            "-f".into(),
            at.to_string(),
            "-l".into(),
            at.to_string(),
            path.display().to_string(),
            out.display().to_string(),
        ];
        match tools::run_bounded(
            &self.tools.poppler("pdfseparate"),
            &args,
            &[],
            PAGE_TIME_LIMIT,
            64 * 1024,
        )
        .await
        {
            Ok(ran) if ran.success => Ok(()),
            Ok(ran) => Err(first_line(&ran.stderr)),
            Err(error) => Err(error.to_string()),
        }
    }
}

impl Inner {
    /// Saves the readable pages of a PDF poppler refuses (cut short, its cross-reference
    /// table lost) into `SALVAGED_PDF` in the job's result directory: for each page of the
    /// document, its number there, or `None` when it was lost. `None` when nothing could be
    /// saved.
    fn salvage(
        &self,
        path: &Path,
        result_dir: &Path,
    ) -> Result<Option<Vec<Option<u32>>>, JobError> {
        let size = std::fs::metadata(path).map_err(|e| io(path, e))?.len();
        if size > SALVAGE_MAX_BYTES {
            return Ok(None);
        }
        let data = std::fs::read(path).map_err(|e| io(path, e))?;
        let Some(salvaged) = salvage::salvage(&data) else {
            return Ok(None);
        };
        drop(data);
        std::fs::create_dir_all(result_dir).map_err(|e| io(result_dir, e))?;
        let copy = result_dir.join(SALVAGED_PDF);
        std::fs::write(&copy, &salvaged.bytes).map_err(|e| io(&copy, e))?;
        // What poppler makes of the copy is what counts.
        match pdf_pages(&self.tools, &copy, None) {
            Ok(n) if n as usize == salvaged.saved() => {}
            _ => {
                let _ = std::fs::remove_file(&copy);
                return Ok(None);
            }
        }
        let note = result_dir.join(SALVAGE_NOTE);
        std::fs::write(&note, json!({ "warning": salvaged.warning() }).to_string())
            .map_err(|e| io(&note, e))?;
        Ok(Some(salvaged.pages))
    }
}

/// A page of a PDF to read: page `at` of the file at `path` (with its `password`), which is
/// page `n` of the document (they differ in a damaged PDF's salvaged copy).
#[derive(Debug, Clone, Copy)]
struct PdfPage<'a> {
    path: &'a Path,
    at: u32,
    n: u32,
    password: Option<&'a str>,
}

/// Where page `n`'s searchable PDF waits for the merge (without its `.pdf`).
fn searchable(work: &Path, n: u32) -> PathBuf {
    work.join(format!("searchable-{n}"))
}

/// A file's bytes, refused past `limit`.
async fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let size = tokio::fs::metadata(path).await?.len();
    if size > limit {
        return Err(std::io::Error::other(format!(
            "{size} bytes, more than {limit}"
        )));
    }
    tokio::fs::read(path).await
}

/// poppler's page (and password) arguments.
fn page_args(n: u32, password: Option<&str>) -> Vec<String> {
    let mut args = vec!["-f".into(), n.to_string(), "-l".into(), n.to_string()];
    if let Some(password) = password {
        args.extend(["-upw".into(), password.to_owned()]);
    }
    args
}

fn io(path: &Path, error: impl std::fmt::Display) -> JobError {
    JobError::retryable("io", format!("{}: {error}", path.display()))
}

/// The first bytes of a file, enough to tell its format and an image's stated resolution.
fn read_head(path: &Path) -> Result<Vec<u8>, JobError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let mut head = Vec::new();
    file.take(64 * 1024)
        .read_to_end(&mut head)
        .map_err(|e| io(path, e))?;
    Ok(head)
}
