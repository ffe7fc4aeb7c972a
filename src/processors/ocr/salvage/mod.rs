//! A PDF cut short (a download or a copy that stopped part way) keeps the objects written
//! before the cut, but loses its cross-reference table and trailer, which sit at the end:
//! poppler then refuses the whole file. Salvage gathers the complete objects by scanning,
//! keeps each page whose every part arrived, and writes them again as a new, whole PDF, so
//! that the readable pages are read and the others reported by number.

mod syntax;

use std::collections::{BTreeMap, HashSet};

use syntax::{entries, entry, int, references, Object};

/// Attributes a page may take from the page-tree nodes above it.
const INHERITED: [&[u8]; 4] = [b"Resources", b"MediaBox", b"CropBox", b"Rotate"];
/// The highest object number a salvaged file may use: its cross-reference table has one line
/// per number, so a hostile number must not make it huge.
const MAX_OBJECT_NUMBER: u32 = 2_000_000;
/// Deepest page tree followed.
const MAX_TREE_DEPTH: u32 = 32;
/// Most objects one page may need (its resources, fonts, images...).
const MAX_PAGE_OBJECTS: usize = 100_000;

/// What could be saved of a damaged PDF.
#[derive(Debug)]
pub(super) struct Salvaged {
    /// A new, whole PDF holding the pages that could be saved, in their order.
    pub bytes: Vec<u8>,
    /// For each page of the original, in its order: its number in `bytes`, or `None` when it
    /// was lost.
    pub pages: Vec<Option<u32>>,
    /// Whether the original's page list survived, so that `pages` counts every page it had;
    /// when it did not, `pages` holds only the pages found, and any after them are lost.
    pub page_list_known: bool,
}

impl Salvaged {
    /// How many pages were saved.
    pub(super) fn saved(&self) -> usize {
        self.pages.iter().flatten().count()
    }

    /// What was lost, for the job's warnings.
    pub(super) fn warning(&self) -> String {
        let lost: Vec<u32> = (1u32..)
            .zip(&self.pages)
            .filter(|(_, saved)| saved.is_none())
            .map(|(n, _)| n)
            .collect();
        if self.page_list_known {
            format!(
                "the PDF is damaged or cut short: {} of its {} pages could be saved; lost: {}",
                self.saved(),
                self.pages.len(),
                ranges(&lost)
            )
        } else {
            format!(
                "the PDF is damaged or cut short and its page list is lost: the {} complete pages \
                 found were read in the file's order; any other pages are lost",
                self.saved()
            )
        }
    }
}

/// Page numbers as people write them: `4-6, 9`.
fn ranges(pages: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < pages.len() {
        let start = pages[i];
        while i + 1 < pages.len() && pages[i + 1] == pages[i] + 1 {
            i += 1;
        }
        out.push(if pages[i] == start {
            start.to_string()
        } else {
            format!("{start}-{}", pages[i])
        });
        i += 1;
    }
    if out.is_empty() {
        "none".into()
    } else {
        out.join(", ")
    }
}

/// Saves what can be saved of `data`: `None` when no page is whole, or when the file is
/// encrypted (its key lived in the lost trailer).
pub(super) fn salvage(data: &[u8]) -> Option<Salvaged> {
    if data.windows(8).any(|w| w == b"/Encrypt") {
        return None;
    }
    let objects = syntax::objects(data);
    let highest = *objects.keys().next_back()?;
    if highest >= MAX_OBJECT_NUMBER {
        return None;
    }
    let (order, page_list_known) = page_order(&objects);
    let mut pages = Vec::with_capacity(order.len());
    let mut kept = Vec::new();
    for page in order {
        match page.filter(|n| whole(&objects, *n)) {
            Some(n) => {
                kept.push(n);
                pages.push(u32::try_from(kept.len()).ok());
            }
            None => pages.push(None),
        }
    }
    if kept.is_empty() {
        return None;
    }
    Some(Salvaged {
        bytes: write(&objects, &kept, highest),
        pages,
        page_list_known,
    })
}

fn is_kind(object: &Object<'_>, kind: &[u8]) -> bool {
    object.kind() == Some(kind)
}

/// The original's pages in order (`None` for a page whose object is lost), and whether that
/// order comes from its page tree; without a tree, the pages found, in the file's order.
fn page_order(objects: &BTreeMap<u32, Object<'_>>) -> (Vec<Option<u32>>, bool) {
    let from_catalog = objects
        .values()
        .filter(|o| is_kind(o, b"Catalog"))
        .max_by_key(|o| o.at)
        .and_then(|catalog| entry(catalog.value, b"Pages"))
        .and_then(|pages| references(pages).first().copied());
    let root = from_catalog
        .filter(|n| objects.contains_key(n))
        .or_else(|| {
            objects
                .iter()
                .find(|(_, o)| is_kind(o, b"Pages") && entry(o.value, b"Parent").is_none())
                .map(|(n, _)| *n)
        });
    if let Some(root) = root {
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        walk(objects, root, 0, &mut order, &mut seen);
        let stated = entry(objects[&root].value, b"Count")
            .and_then(int)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0)
            .min(super::params::MAX_PAGES as usize);
        // Kids lost with a subtree of their own: the count says how many pages went.
        if stated > order.len() {
            order.resize(stated, None);
        }
        if order.iter().any(Option::is_some) {
            return (order, true);
        }
    }
    let mut found: Vec<(&u32, &Object<'_>)> = objects
        .iter()
        .filter(|(_, o)| is_kind(o, b"Page"))
        .collect();
    found.sort_by_key(|(_, o)| o.at);
    (found.into_iter().map(|(n, _)| Some(*n)).collect(), false)
}

/// Appends the pages under tree node `node`, in order.
fn walk(
    objects: &BTreeMap<u32, Object<'_>>,
    node: u32,
    depth: u32,
    order: &mut Vec<Option<u32>>,
    seen: &mut HashSet<u32>,
) {
    if depth > MAX_TREE_DEPTH || !seen.insert(node) {
        return;
    }
    let Some(kids) = objects.get(&node).and_then(|o| entry(o.value, b"Kids")) else {
        return;
    };
    for kid in references(kids) {
        if order.len() >= super::params::MAX_PAGES as usize {
            return;
        }
        match objects.get(&kid) {
            Some(o) if is_kind(o, b"Pages") => walk(objects, kid, depth + 1, order, seen),
            Some(o) if is_kind(o, b"Page") => order.push(Some(kid)),
            // A lost kid: one page as far as can be told (a lost subtree is made up for by
            // the root's count).
            _ => order.push(None),
        }
    }
}

/// The page's attributes it takes from above, found on it or its nearest ancestor.
fn inherited<'a>(objects: &BTreeMap<u32, Object<'a>>, page: u32) -> Vec<(&'static [u8], &'a [u8])> {
    INHERITED
        .iter()
        .filter_map(|key| {
            let mut node = objects.get(&page)?;
            for _ in 0..=MAX_TREE_DEPTH {
                if let Some(value) = entry(node.value, key) {
                    return Some((*key, value));
                }
                let parent =
                    entry(node.value, b"Parent").and_then(|p| references(p).first().copied())?;
                node = objects.get(&parent)?;
            }
            None
        })
        .collect()
}

/// Whether every object page `page` needs arrived whole. Links back to pages (a parent, an
/// annotation's page) are not needs.
fn whole(objects: &BTreeMap<u32, Object<'_>>, page: u32) -> bool {
    let Some(object) = objects.get(&page) else {
        return false;
    };
    let mut needed: Vec<u32> = entries(object.value)
        .into_iter()
        .filter(|(key, _)| *key != b"Parent")
        .flat_map(|(_, value)| references(value))
        .chain(
            inherited(objects, page)
                .into_iter()
                .flat_map(|(_, value)| references(value)),
        )
        .collect();
    let mut seen = HashSet::new();
    while let Some(n) = needed.pop() {
        if !seen.insert(n) {
            continue;
        }
        if seen.len() > MAX_PAGE_OBJECTS {
            return false;
        }
        let Some(object) = objects.get(&n) else {
            return false;
        };
        if is_kind(object, b"Page") || is_kind(object, b"Pages") {
            continue;
        }
        if object.value.starts_with(b"<<") {
            needed.extend(
                entries(object.value)
                    .into_iter()
                    .filter(|(key, _)| *key != b"Parent")
                    .flat_map(|(_, value)| references(value)),
            );
        } else {
            needed.extend(references(object.value));
        }
    }
    true
}

/// A new PDF: every whole object but the old catalog, page tree and the lost pages; the kept
/// pages with their inherited attributes written on them, under a new page tree.
fn write(objects: &BTreeMap<u32, Object<'_>>, kept: &[u32], highest: u32) -> Vec<u8> {
    let tree = highest + 1;
    let catalog = highest + 2;
    let kept_set: HashSet<u32> = kept.iter().copied().collect();
    let mut out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets: BTreeMap<u32, (usize, u16)> = BTreeMap::new();
    for (&n, object) in objects {
        let kind = object.kind();
        let dropped = matches!(kind, Some(b"Catalog" | b"Pages" | b"XRef" | b"ObjStm"))
            || (kind == Some(b"Page") && !kept_set.contains(&n));
        if dropped {
            continue;
        }
        offsets.insert(n, (out.len(), object.generation));
        out.extend_from_slice(format!("{n} {} obj\n", object.generation).as_bytes());
        if kind == Some(b"Page") {
            out.extend_from_slice(&page_dictionary(objects, n, tree));
        } else {
            out.extend_from_slice(object.body);
        }
        out.extend_from_slice(b"\nendobj\n");
    }
    let kids: Vec<String> = kept.iter().map(|n| format!("{n} 0 R")).collect();
    offsets.insert(tree, (out.len(), 0));
    out.extend_from_slice(
        format!(
            "{tree} 0 obj\n<< /Type /Pages /Kids [{}] /Count {} >>\nendobj\n",
            kids.join(" "),
            kept.len()
        )
        .as_bytes(),
    );
    offsets.insert(catalog, (out.len(), 0));
    out.extend_from_slice(
        format!("{catalog} 0 obj\n<< /Type /Catalog /Pages {tree} 0 R >>\nendobj\n").as_bytes(),
    );
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n", catalog + 1).as_bytes());
    for n in 0..=catalog {
        match offsets.get(&n) {
            Some((offset, generation)) => {
                out.extend_from_slice(format!("{offset:010} {generation:05} n \n").as_bytes());
            }
            None => out.extend_from_slice(b"0000000000 65535 f \n"),
        }
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root {catalog} 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            catalog + 1
        )
        .as_bytes(),
    );
    out
}

/// A kept page's dictionary under the new tree, with what it inherited written on it.
fn page_dictionary(objects: &BTreeMap<u32, Object<'_>>, page: u32, tree: u32) -> Vec<u8> {
    let mut out = b"<<".to_vec();
    let Some(object) = objects.get(&page) else {
        return b"null".to_vec();
    };
    for (key, value) in entries(object.value) {
        if key == b"Parent" || INHERITED.contains(&key) {
            continue;
        }
        push_entry(&mut out, key, value);
    }
    let inherited = inherited(objects, page);
    for (key, value) in &inherited {
        push_entry(&mut out, key, value);
    }
    if !inherited.iter().any(|(key, _)| *key == b"MediaBox") {
        // Required; US Letter is what readers assume.
        push_entry(&mut out, b"MediaBox", b"[0 0 612 792]");
    }
    out.extend_from_slice(format!(" /Parent {tree} 0 R >>").as_bytes());
    out
}

fn push_entry(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    out.extend_from_slice(b" /");
    out.extend_from_slice(key);
    out.push(b' ');
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PDF of `n` one-line text pages, catalog and page tree first, as the tests' writer
    /// makes them.
    fn sample(n: usize) -> Vec<u8> {
        let font = 3 + 2 * n;
        let mut objects = vec![
            "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
            format!(
                "<< /Type /Pages /Kids [{}] /Count {n} /MediaBox [0 0 595 842] >>",
                (0..n)
                    .map(|i| format!("{} 0 R", 3 + 2 * i))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        ];
        for i in 0..n {
            objects.push(format!(
                "<< /Type /Page /Parent 2 0 R /Resources << /Font << /F1 {font} 0 R >> >> /Contents {} 0 R >>",
                4 + 2 * i
            ));
            let content = format!("BT /F1 12 Tf 72 700 Td (Page {}) Tj ET", i + 1);
            objects.push(format!(
                "<< /Length {} >>\nstream\n{content}\nendstream",
                content.len()
            ));
        }
        objects.push("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".into());
        let mut out = b"%PDF-1.4\n".to_vec();
        for (i, object) in objects.iter().enumerate() {
            out.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", i + 1).as_bytes());
        }
        out.extend_from_slice(
            b"xref\n0 1\n0000000000 65535 f \ntrailer\n<< /Root 1 0 R >>\n%%EOF\n",
        );
        out
    }

    #[test]
    fn a_cut_file_keeps_its_whole_pages_and_names_the_lost_ones() {
        let whole_file = sample(5);
        // Cut inside page 4's content stream; the font, last, is lost too.
        let cut = whole_file.windows(6).position(|w| w == b"Page 4").unwrap();
        let salvaged = salvage(&whole_file[..cut]);
        // The font went with the end of the file: no page is whole.
        assert!(salvaged.is_none());

        // Fonts first, as many writers put shared resources: pages 1-3 survive the cut.
        let moved = String::from_utf8(whole_file.clone())
            .unwrap()
            .replace("/F1 13 0 R", "/F1 99 0 R")
            .replacen(
                "1 0 obj",
                "99 0 obj\n<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>\nendobj\n1 0 obj",
                1,
            );
        let cut = moved.find("Page 4").unwrap();
        let salvaged = salvage(&moved.as_bytes()[..cut]).unwrap();
        assert_eq!(salvaged.pages, [Some(1), Some(2), Some(3), None, None]);
        assert!(salvaged.page_list_known);
        assert_eq!(
            salvaged.warning(),
            "the PDF is damaged or cut short: 3 of its 5 pages could be saved; lost: 4-5"
        );
        let rewritten = syntax::objects(&salvaged.bytes);
        let page = rewritten
            .values()
            .find(|o| o.kind() == Some(b"Page"))
            .unwrap();
        // The inherited MediaBox is written on the page, which hangs under the new tree.
        assert_eq!(entry(page.value, b"MediaBox"), Some(&b"[0 0 595 842]"[..]));
        assert_eq!(entry(page.value, b"Parent"), Some(&b"100 0 R"[..]));
    }

    #[test]
    fn without_its_page_tree_the_pages_found_are_kept_in_the_files_order() {
        let file =
            String::from_utf8(sample(3))
                .unwrap()
                .replacen("2 0 obj", "2 0 obj\n<< /Broken", 1);
        // The tree is broken, the catalog points at nothing whole.
        let salvaged = salvage(file.as_bytes()).unwrap();
        assert_eq!(salvaged.pages, [Some(1), Some(2), Some(3)]);
        assert!(!salvaged.page_list_known);
    }

    #[test]
    fn ranges_read_as_people_write_them() {
        assert_eq!(ranges(&[4, 5, 6, 9]), "4-6, 9");
        assert_eq!(ranges(&[]), "none");
    }

    #[test]
    fn encrypted_or_empty_files_are_not_salvaged() {
        assert!(salvage(b"%PDF-1.4\n").is_none());
        assert!(salvage(b"%PDF-1.4\n1 0 obj << /Encrypt 2 0 R >> endobj").is_none());
    }
}
