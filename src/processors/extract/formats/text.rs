//! Plain text files: UTF-8 (with or without a byte order mark), UTF-16 with its mark, or
//! Windows-1252 when the bytes are not UTF-8; split into pages at form feeds, and a long
//! page without them into sections at blank lines, so that chunks stay small.

use super::super::document::{Page, PageSource};

/// A section is cut at the first blank line past this many bytes (or at a line past twice it).
const SECTION_BYTES: usize = 6 * 1024;

/// The text of `bytes` and, when it was not UTF-8, a warning naming the encoding assumed.
pub(crate) fn decode(bytes: &[u8]) -> (String, Option<String>) {
    if let Some((encoding, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        let (text, _) = encoding.decode_without_bom_handling(&bytes[bom..]);
        return (text.into_owned(), None);
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_owned(), None),
        Err(_) => {
            let (text, _, _) = encoding_rs::WINDOWS_1252.decode(bytes);
            (
                text.into_owned(),
                Some("the text is not UTF-8: it was read as Windows-1252".to_owned()),
            )
        }
    }
}

/// True when `head` looks like text: it decodes, and holds no control character but tabs,
/// line ends and form feeds.
pub(crate) fn looks_like_text(head: &[u8]) -> bool {
    if encoding_rs::Encoding::for_bom(head).is_some() {
        return true;
    }
    let (text, _) = decode(head);
    !text.is_empty()
        && !text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\u{c}'))
}

/// `text` as pages: its form-feed pages, each long one cut into sections.
pub(crate) fn pages(text: &str, source: PageSource) -> Vec<Page> {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut pages = Vec::new();
    for sheet in text.split('\u{c}') {
        for section in sections(sheet) {
            let number = u32::try_from(pages.len() + 1).unwrap_or(u32::MAX);
            pages.push(Page::new(number, section.trim_end().to_owned(), source));
        }
    }
    if text.ends_with('\u{c}') && pages.len() > 1 && pages.last().is_some_and(|p| p.text.is_empty())
    {
        pages.pop();
    }
    pages
}

/// `sheet` cut after a blank line once a section passes [`SECTION_BYTES`] (or after any line
/// past twice that, for text without blank lines).
fn sections(sheet: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut at = 0;
    for line in sheet.split_inclusive('\n') {
        at += line.len();
        let size = at - start;
        let blank = line.trim().is_empty();
        if (size >= SECTION_BYTES && blank) || size >= 2 * SECTION_BYTES {
            out.push(&sheet[start..at]);
            start = at;
        }
    }
    if start < sheet.len() || out.is_empty() {
        out.push(&sheet[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_1252_is_read_and_said() {
        let (text, warning) = decode(b"March\xe9 public \x80 10");
        assert_eq!(text, "Marché public € 10");
        assert!(warning.is_some());
        let (text, warning) = decode("Marché".as_bytes());
        assert_eq!((text.as_str(), warning), ("Marché", None));
        let (text, _) = decode(b"\xff\xfeA\x00\xe9\x00");
        assert_eq!(text, "Aé");
    }

    #[test]
    fn binary_is_not_text() {
        assert!(looks_like_text("Règlement de la consultation\n".as_bytes()));
        assert!(!looks_like_text(b"\x00\x01\x02binary"));
    }

    #[test]
    fn form_feeds_make_pages_and_long_pages_sections() {
        let short = pages("one\r\n\u{c}two\n\u{c}", PageSource::Text);
        let texts: Vec<&str> = short.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(texts, vec!["one", "two"]);
        let long = "A line of some length that repeats.\n\n".repeat(500);
        let sections = pages(&long, PageSource::Text);
        assert!(sections.len() > 2);
        assert!(sections.iter().all(|p| p.text.len() <= 2 * SECTION_BYTES));
        assert_eq!(
            sections.last().map(|p| p.page as usize),
            Some(sections.len())
        );
    }
}
