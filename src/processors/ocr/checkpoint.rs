//! Pages read by an attempt that did not finish its chunk (the server was killed, the chunk
//! timed out, the job was paused) are kept, one file each beside the chunks' parts, so that the
//! next attempt takes them as they are: a page is never recognised twice. A page that could
//! not be read is not kept: the next attempt tries it again.

use std::path::{Path, PathBuf};

use super::{searchable, Page};

fn file(work: &Path, n: u32) -> PathBuf {
    work.join(format!("page-{n}.json"))
}

/// Page `n` as an earlier attempt read it, when it did; with `pdf`, only if its searchable
/// page was kept too.
pub(super) async fn load(work: &Path, n: u32, pdf: bool) -> Option<Page> {
    let bytes = tokio::fs::read(file(work, n)).await.ok()?;
    let page: Page = serde_json::from_slice(&bytes).ok()?;
    if page.page != n || page.source == "none" {
        return None;
    }
    if pdf
        && tokio::fs::metadata(searchable(work, n).with_extension("pdf"))
            .await
            .is_err()
    {
        return None;
    }
    Some(page)
}

/// Keeps `page` for a later attempt. Written aside and renamed, so that a crash leaves the
/// whole page or none; a page that cannot be kept is only read again later.
pub(super) async fn save(work: &Path, page: &Page) {
    if page.source == "none" {
        return;
    }
    let Ok(bytes) = serde_json::to_vec(page) else {
        return;
    };
    let path = file(work, page.page);
    let aside = path.with_extension("json.part");
    if tokio::fs::write(&aside, bytes).await.is_ok() {
        let _ = tokio::fs::rename(&aside, &path).await;
    }
}
