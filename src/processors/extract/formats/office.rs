//! DOCX and ODT documents: ZIP archives of XML, read into text with their page breaks.
//!
//! Only the one entry that holds the body is read (`word/document.xml`, `content.xml`),
//! inflated through a bound: an archive that claims little and inflates to gigabytes (a zip
//! bomb) stops at [`INFLATED_LIMIT`] with a reason, having cost that much at most. The XML is
//! streamed, never held as a tree. Paragraphs become lines, a table row one line with its
//! cells joined by ` | `, and the document's page breaks (explicit ones, Word's last rendered
//! ones, ODT's soft ones and page-breaking paragraph styles) become pages.

use std::collections::HashSet;
use std::io::{BufReader, Read, Seek};

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::jobs::JobError;

/// Most bytes inflated from the body entry.
const INFLATED_LIMIT: u64 = 64 * 1024 * 1024;
/// Most entries an archive may list.
const MAX_ENTRIES: usize = 10_000;
/// Most characters of text taken from a document.
const TEXT_LIMIT: usize = 32 * 1024 * 1024;
/// Deepest element nesting followed (malicious XML can nest without end).
const MAX_DEPTH: usize = 512;

/// The two office formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Office {
    /// Office Open XML (Word).
    Docx,
    /// OpenDocument text.
    Odt,
}

fn unreadable(what: &str, why: impl std::fmt::Display) -> JobError {
    JobError::permanent(
        "unreadable_document",
        format!("the {what} document could not be read: {why}"),
    )
}

/// Which office format the ZIP archive `file` holds, if any.
pub(crate) fn detect<R: Read + Seek>(file: R) -> Option<Office> {
    let mut archive = zip::ZipArchive::new(file).ok()?;
    if archive.len() > MAX_ENTRIES {
        return None;
    }
    if archive.index_for_name("word/document.xml").is_some() {
        return Some(Office::Docx);
    }
    let mut mimetype = String::new();
    archive
        .by_name("mimetype")
        .ok()?
        .take(256)
        .read_to_string(&mut mimetype)
        .ok()?;
    (mimetype.trim() == "application/vnd.oasis.opendocument.text").then_some(Office::Odt)
}

/// The text of the office document `file`, pages separated by form feeds.
pub(crate) fn text<R: Read + Seek>(file: R, kind: Office) -> Result<String, JobError> {
    let what = match kind {
        Office::Docx => "DOCX",
        Office::Odt => "ODT",
    };
    let mut archive = zip::ZipArchive::new(file).map_err(|e| unreadable(what, e))?;
    if archive.len() > MAX_ENTRIES {
        return Err(unreadable(
            what,
            format!("the archive lists more than {MAX_ENTRIES} entries"),
        ));
    }
    let name = match kind {
        Office::Docx => "word/document.xml",
        Office::Odt => "content.xml",
    };
    let entry = archive.by_name(name).map_err(|e| unreadable(what, e))?;
    let mut bounded = Bounded {
        inner: entry,
        left: INFLATED_LIMIT,
    };
    let reader = BufReader::new(&mut bounded);
    let walked = match kind {
        Office::Docx => walk(reader, &Docx),
        Office::Odt => walk(reader, &Odt::default()),
    };
    match walked {
        Ok(text) => Ok(text),
        Err(_) if bounded.left == 0 => Err(JobError::permanent(
            "too_large",
            format!(
                "the {what} document inflates past {} MiB: refused (a zip bomb?)",
                INFLATED_LIMIT >> 20
            ),
        )),
        Err(why) => Err(unreadable(what, why)),
    }
}

/// A reader that fails once `left` bytes have been read.
struct Bounded<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::other("inflated size limit reached"));
        }
        let room = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..room])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// What an element means for the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    /// Text content follows (`w:t`, and every ODT text container).
    Text,
    /// A paragraph: a line of its own.
    Paragraph,
    /// A paragraph that holds its text directly (ODT's `text:p` and `text:h`).
    TextParagraph,
    /// A table row: its cells on one line.
    Row,
    /// A table cell.
    Cell,
    /// A tab.
    Tab,
    /// A line break inside a paragraph.
    LineBreak,
    /// A page break.
    PageBreak,
    /// `n` spaces (ODT's `text:s`).
    Spaces(usize),
    /// Content that is not part of the body's text (deleted runs, field codes, notes).
    Skip,
    /// Nothing of its own.
    None,
}

/// How one format's elements read.
trait Dialect {
    /// What element `e` means.
    fn mark(&self, e: &BytesStart<'_>) -> Mark;
    /// Takes note of style definitions met on the way (ODT's page-breaking styles).
    fn learn(&self, _e: &BytesStart<'_>) {}
}

struct Docx;

impl Dialect for Docx {
    fn mark(&self, e: &BytesStart<'_>) -> Mark {
        match e.local_name().as_ref() {
            b"t" => Mark::Text,
            b"p" => Mark::Paragraph,
            b"tr" => Mark::Row,
            b"tc" => Mark::Cell,
            b"tab" => Mark::Tab,
            b"cr" => Mark::LineBreak,
            b"br" => match attribute(e, b"type").as_deref() {
                Some("page") => Mark::PageBreak,
                _ => Mark::LineBreak,
            },
            b"lastRenderedPageBreak" => Mark::PageBreak,
            b"delText" | b"instrText" | b"del" | b"footnoteReference" => Mark::Skip,
            _ => Mark::None,
        }
    }
}

#[derive(Default)]
struct Odt {
    /// Automatic styles whose paragraphs start a new page.
    breaking: std::cell::RefCell<HashSet<String>>,
    /// The style being defined, while its properties are read.
    defining: std::cell::RefCell<Option<String>>,
}

impl Dialect for Odt {
    fn mark(&self, e: &BytesStart<'_>) -> Mark {
        match e.local_name().as_ref() {
            b"p" | b"h" => {
                let style = attribute(e, b"style-name");
                if style.is_some_and(|s| self.breaking.borrow().contains(&s)) {
                    Mark::PageBreak
                } else {
                    Mark::TextParagraph
                }
            }
            b"span" | b"a" => Mark::Text,
            b"table-row" => Mark::Row,
            b"table-cell" => Mark::Cell,
            b"tab" => Mark::Tab,
            b"line-break" => Mark::LineBreak,
            b"soft-page-break" => Mark::PageBreak,
            b"s" => Mark::Spaces(
                attribute(e, b"c")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1)
                    .min(1000),
            ),
            b"note" | b"annotation" | b"tracked-changes" => Mark::Skip,
            _ => Mark::None,
        }
    }

    fn learn(&self, e: &BytesStart<'_>) {
        match e.local_name().as_ref() {
            b"style" => *self.defining.borrow_mut() = attribute(e, b"name"),
            b"paragraph-properties" => {
                let breaks = matches!(attribute(e, b"break-before").as_deref(), Some("page"));
                if let (true, Some(name)) = (breaks, self.defining.borrow().clone()) {
                    self.breaking.borrow_mut().insert(name);
                }
            }
            _ => {}
        }
    }
}

/// The value of the attribute whose local name is `name`.
fn attribute(e: &BytesStart<'_>, name: &[u8]) -> Option<String> {
    e.attributes().flatten().find_map(|a| {
        (a.key.local_name().as_ref() == name)
            .then(|| {
                a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .ok()
                    .map(|v| v.into_owned())
            })
            .flatten()
    })
}

/// The text being built.
#[derive(Default)]
struct Text {
    out: String,
    /// Cells of the current row, when in one.
    row: Option<Vec<String>>,
    /// Nested tables are flattened into the outer cell's text.
    cell: Option<String>,
}

impl Text {
    fn push(&mut self, s: &str) {
        match (&mut self.cell, &mut self.row) {
            (Some(cell), _) => cell.push_str(s),
            _ => self.out.push_str(s),
        }
    }

    fn end_line(&mut self) {
        match &mut self.cell {
            Some(cell) if !cell.is_empty() && !cell.ends_with(' ') => cell.push(' '),
            Some(_) => {}
            None if !self.out.is_empty() && !self.out.ends_with(['\n', '\u{c}']) => {
                self.out.push('\n')
            }
            None => {}
        }
    }

    /// A paragraph ended: a new line, even after an empty paragraph (it shows as a blank
    /// line, which readers of the text take as a separation), but not at a page's start.
    fn end_paragraph(&mut self) {
        match &mut self.cell {
            Some(cell) if !cell.is_empty() && !cell.ends_with(' ') => cell.push(' '),
            Some(_) => {}
            None if !self.out.is_empty() && !self.out.ends_with('\u{c}') => self.out.push('\n'),
            None => {}
        }
    }

    fn page_break(&mut self) {
        if self.cell.is_none() {
            self.end_line();
            if !self.out.is_empty() && !self.out.ends_with('\u{c}') {
                self.out.push('\u{c}');
            }
        }
    }
}

/// Walks the body XML from `reader`, building its text.
fn walk<R: std::io::BufRead>(reader: R, dialect: &dyn Dialect) -> Result<String, String> {
    let mut xml = Reader::from_reader(reader);
    let mut buf = Vec::new();
    let mut text = Text::default();
    // For each open element: what it was, so that its end does the right thing.
    let mut open: Vec<Mark> = Vec::new();
    let mut skipping = 0usize;
    let mut in_text = 0usize;
    loop {
        let event = xml.read_event_into(&mut buf).map_err(|e| e.to_string())?;
        match event {
            Event::Start(e) => {
                if open.len() >= MAX_DEPTH {
                    return Err(format!("elements nest deeper than {MAX_DEPTH}"));
                }
                dialect.learn(&e);
                let mark = dialect.mark(&e);
                start(mark, &mut text, &mut skipping, &mut in_text);
                open.push(mark);
            }
            Event::Empty(e) => {
                dialect.learn(&e);
                let mark = dialect.mark(&e);
                if skipping == 0 {
                    single(mark, &mut text);
                }
            }
            Event::End(_) => {
                let mark = open.pop().unwrap_or(Mark::None);
                end(mark, &mut text, &mut skipping, &mut in_text);
            }
            Event::Text(t) if skipping == 0 && in_text > 0 => {
                let s = t.xml10_content().map_err(|e| e.to_string())?;
                text.push(&s);
            }
            Event::CData(t) if skipping == 0 && in_text > 0 => {
                text.push(&String::from_utf8_lossy(&t));
            }
            Event::GeneralRef(r) if skipping == 0 && in_text > 0 => {
                let c = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => Some(c),
                    None => match &*r {
                        b"amp" => Some('&'),
                        b"lt" => Some('<'),
                        b"gt" => Some('>'),
                        b"quot" => Some('"'),
                        b"apos" => Some('\''),
                        _ => None,
                    },
                };
                if let Some(c) = c {
                    text.push(c.encode_utf8(&mut [0; 4]));
                }
            }
            Event::Eof => break,
            _ => {}
        }
        if text.out.len() > TEXT_LIMIT {
            return Err(format!("more than {} MiB of text", TEXT_LIMIT >> 20));
        }
        buf.clear();
    }
    Ok(text.out)
}

fn start(mark: Mark, text: &mut Text, skipping: &mut usize, in_text: &mut usize) {
    if mark == Mark::Skip || *skipping > 0 {
        if mark == Mark::Skip {
            *skipping += 1;
        }
        return;
    }
    match mark {
        Mark::Text | Mark::TextParagraph => *in_text += 1,
        Mark::Paragraph => {}
        // Only an ODT paragraph whose style breaks the page opens as a page break.
        Mark::PageBreak => {
            text.page_break();
            *in_text += 1;
        }
        Mark::Row => text.row = Some(Vec::new()),
        Mark::Cell => text.cell = Some(String::new()),
        other => single(other, text),
    }
}

fn end(mark: Mark, text: &mut Text, skipping: &mut usize, in_text: &mut usize) {
    if *skipping > 0 {
        if mark == Mark::Skip {
            *skipping -= 1;
        }
        return;
    }
    match mark {
        Mark::Text => *in_text = in_text.saturating_sub(1),
        Mark::TextParagraph | Mark::PageBreak => {
            *in_text = in_text.saturating_sub(1);
            text.end_paragraph();
        }
        Mark::Paragraph => text.end_paragraph(),
        Mark::Cell => {
            if let Some(cell) = text.cell.take() {
                if let Some(row) = &mut text.row {
                    row.push(cell.trim().to_owned());
                }
            }
        }
        Mark::Row => {
            if let Some(cells) = text.row.take() {
                let cells: Vec<String> = cells.into_iter().filter(|c| !c.is_empty()).collect();
                if !cells.is_empty() {
                    text.end_line();
                    text.out.push_str(&cells.join(" | "));
                    text.out.push('\n');
                }
            }
        }
        _ => {}
    }
}

/// An empty element's effect (`<w:tab/>`, `<w:br w:type="page"/>`, `<text:s text:c="3"/>`).
fn single(mark: Mark, text: &mut Text) {
    match mark {
        Mark::Tab => text.push("\t"),
        Mark::LineBreak => match &mut text.cell {
            Some(cell) => cell.push(' '),
            None => text.out.push('\n'),
        },
        Mark::PageBreak => text.page_break(),
        Mark::Spaces(n) => text.push(&" ".repeat(n)),
        Mark::Paragraph | Mark::TextParagraph => text.end_paragraph(),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};

    fn archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .compression_level(Some(1));
        for (name, bytes) in entries {
            zip.start_file(*name, options)
                .unwrap_or_else(|e| panic!("{e}"));
            zip.write_all(bytes).unwrap_or_else(|e| panic!("{e}"));
        }
        zip.finish().unwrap_or_else(|e| panic!("{e}"));
        out.into_inner()
    }

    #[test]
    fn docx_paragraphs_tables_and_page_breaks() {
        let body = r#"<?xml version="1.0"?><w:document xmlns:w="w"><w:body>
            <w:p><w:r><w:t>ARTICLE 1 &amp; objet</w:t></w:r></w:p>
            <w:p><w:r><w:t xml:space="preserve">Le titulaire </w:t></w:r><w:r><w:t>doit livrer.</w:t></w:r></w:p>
            <w:tbl><w:tr><w:tc><w:p><w:r><w:t>Lot</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>Montant</w:t></w:r></w:p></w:tc></w:tr>
            <w:tr><w:tc><w:p><w:r><w:t>1</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>12 500,00 €</w:t></w:r></w:p></w:tc></w:tr></w:tbl>
            <w:p><w:r><w:br w:type="page"/><w:t>Page deux</w:t><w:delText>effacé</w:delText></w:r></w:p>
            </w:body></w:document>"#;
        let docx = archive(&[("word/document.xml", body.as_bytes())]);
        assert_eq!(detect(Cursor::new(&docx)), Some(Office::Docx));
        let text = text(Cursor::new(&docx), Office::Docx).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            text,
            "ARTICLE 1 & objet\nLe titulaire doit livrer.\nLot | Montant\n1 | 12 500,00 €\n\u{c}Page deux\n"
        );
    }

    #[test]
    fn odt_spaces_soft_breaks_and_breaking_styles() {
        let content = r#"<?xml version="1.0"?><office:document-content xmlns:office="o" xmlns:text="t" xmlns:style="s" xmlns:fo="f">
            <office:automatic-styles><style:style style:name="P1"><style:paragraph-properties fo:break-before="page"/></style:style></office:automatic-styles>
            <office:body><office:text>
            <text:h>1. Objet</text:h>
            <text:p>Prix<text:s text:c="2"/>unitaire<text:tab/>10 €</text:p>
            <text:soft-page-break/>
            <text:p>Suite</text:p>
            <text:p text:style-name="P1">Nouvelle page</text:p>
            </office:text></office:body></office:document-content>"#;
        let odt = archive(&[
            ("mimetype", b"application/vnd.oasis.opendocument.text"),
            ("content.xml", content.as_bytes()),
        ]);
        assert_eq!(detect(Cursor::new(&odt)), Some(Office::Odt));
        let text = text(Cursor::new(&odt), Office::Odt).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            text,
            "1. Objet\nPrix  unitaire\t10 €\n\u{c}Suite\n\u{c}Nouvelle page\n"
        );
    }

    #[test]
    fn a_zip_bomb_stops_at_the_bound() {
        // 72 MiB of one letter deflates to well under 1 MiB.
        let mut body = b"<w:document xmlns:w=\"w\"><w:body><w:p><w:r><w:t>".to_vec();
        body.resize(72 * 1024 * 1024, b'a');
        let bomb = archive(&[("word/document.xml", &body)]);
        drop(body);
        assert!(bomb.len() < 2 * 1024 * 1024);
        let refused = text(Cursor::new(&bomb), Office::Docx).err();
        assert_eq!(refused.map(|e| e.code), Some("too_large".to_owned()));
    }

    #[test]
    fn a_corrupt_archive_is_refused_with_a_reason() {
        let mut docx = archive(&[("word/document.xml", b"<w:document/>")]);
        let half = docx.len() / 2;
        docx.truncate(half);
        let refused = text(Cursor::new(&docx), Office::Docx).err();
        assert_eq!(
            refused.map(|e| e.code),
            Some("unreadable_document".to_owned())
        );
    }
}
