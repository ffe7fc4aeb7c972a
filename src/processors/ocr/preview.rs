//! A picture of one page of an OCR job's input, for people checking the recognised text
//! against the page (the dashboard shows them side by side): a PDF page rendered by poppler at
//! screen resolution, or a PNG or JPEG image as it is.

use std::path::Path;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::format::{sniff, Format};
use super::tools::run;

/// Largest picture sent, in bytes: a page at screen resolution is far smaller.
const MAX_PICTURE: u64 = 32 << 20;

/// Resolution of a rendered PDF page: enough to read it on a screen.
const SCREEN_DPI: &str = "100";

/// A page's picture: its content type and bytes.
#[derive(Debug)]
pub(crate) struct Picture {
    /// `image/png` or `image/jpeg`.
    pub content_type: &'static str,
    /// The image.
    pub bytes: Vec<u8>,
}

/// Why there is no picture.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PreviewError {
    /// No such page in the input.
    #[error("the input has no page {0}")]
    NoPage(u32),
    /// The input is of a kind with no picture here (TIFF: browsers do not show it).
    #[error("no picture for {0} input")]
    Unsupported(&'static str),
    /// The input could not be read or rendered.
    #[error("the page could not be rendered: {0}")]
    Failed(String),
}

/// Page `page` (from 1) of the file at `path`, opened with `password` when it is a protected
/// PDF; `pdftoppm` is poppler's program (a name on the PATH or a path).
pub(crate) async fn page_picture(
    path: &Path,
    page: u32,
    password: Option<&str>,
    pdftoppm: &str,
) -> Result<Picture, PreviewError> {
    let failed = |e: &dyn std::fmt::Display| PreviewError::Failed(e.to_string());
    let mut file = tokio::fs::File::open(path).await.map_err(|e| failed(&e))?;
    let mut head = vec![0u8; 1024];
    let n = file.read(&mut head).await.map_err(|e| failed(&e))?;
    head.truncate(n);
    let format = sniff(&head).map_err(PreviewError::Failed)?;
    match format {
        Format::Png | Format::Jpeg => {
            if page != 1 {
                return Err(PreviewError::NoPage(page));
            }
            let size = file.metadata().await.map_err(|e| failed(&e))?.len();
            if size > MAX_PICTURE {
                return Err(PreviewError::Failed(format!("the image is {size} bytes")));
            }
            let bytes = tokio::fs::read(path).await.map_err(|e| failed(&e))?;
            let content_type = if format == Format::Png {
                "image/png"
            } else {
                "image/jpeg"
            };
            Ok(Picture {
                content_type,
                bytes,
            })
        }
        Format::Tiff => Err(PreviewError::Unsupported("TIFF")),
        Format::Pdf => {
            let page_arg = page.to_string();
            let mut args: Vec<String> = vec![
                "-f".into(),
                page_arg.clone(),
                "-l".into(),
                page_arg,
                "-r".into(),
                SCREEN_DPI.into(),
                "-png".into(),
                "-singlefile".into(),
            ];
            if let Some(password) = password {
                args.extend(["-upw".into(), password.into()]);
            }
            // No output root: pdftoppm writes the picture to its standard output.
            args.push(path.display().to_string());
            let ran = run(pdftoppm, &args, &[], Duration::from_secs(30), MAX_PICTURE)
                .await
                .map_err(|e| failed(&e))?;
            if !ran.success || ran.stdout.is_empty() {
                // pdftoppm says "Wrong page range given" past the last page.
                if ran.stderr.contains("page range") {
                    return Err(PreviewError::NoPage(page));
                }
                return Err(PreviewError::Failed(ran.stderr.trim().to_owned()));
            }
            Ok(Picture {
                content_type: "image/png",
                bytes: ran.stdout,
            })
        }
    }
}
