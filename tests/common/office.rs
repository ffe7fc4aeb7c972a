//! DOCX and ODT documents made on the spot for the extraction tests: each page's lines as
//! paragraphs, a page break between pages (Word's explicit break, ODT's page-breaking style),
//! and lines holding ` | ` as table rows. A tab is written as the format's tab element
//! (`<w:tab/>`, `<text:tab/>`) and, in ODT, a run of spaces as `<text:s text:c="n"/>`, as
//! word processors write them (ODT collapses spaces written plainly).
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Cursor, Write};

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A DOCX paragraph's runs: text, with each tab as `<w:tab/>`.
fn docx_runs(text: &str) -> String {
    text.split('\t')
        .map(|part| format!(r#"<w:t xml:space="preserve">{}</w:t>"#, escape(part)))
        .collect::<Vec<_>>()
        .join("<w:tab/>")
}

/// An ODT paragraph's content: text, each tab as `<text:tab/>` and each run of two spaces or
/// more as one space and `<text:s text:c="n"/>` for the rest.
fn odt_content(text: &str) -> String {
    let mut out = String::new();
    let mut spaces = 0;
    let flush = |out: &mut String, spaces: &mut usize| {
        if *spaces > 0 {
            out.push(' ');
        }
        if *spaces > 1 {
            out.push_str(&format!(r#"<text:s text:c="{}"/>"#, *spaces - 1));
        }
        *spaces = 0;
    };
    for c in text.chars() {
        match c {
            ' ' => spaces += 1,
            '\t' => {
                flush(&mut out, &mut spaces);
                out.push_str("<text:tab/>");
            }
            other => {
                flush(&mut out, &mut spaces);
                out.push_str(&escape(other.encode_utf8(&mut [0; 4])));
            }
        }
    }
    flush(&mut out, &mut spaces);
    out
}

/// A ZIP archive of `entries`, deflated.
pub fn archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1));
    for (name, bytes) in entries {
        zip.start_file(*name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
    out.into_inner()
}

/// A DOCX whose pages are `pages` (lines separated by `\n`).
pub fn docx(pages: &[&str]) -> Vec<u8> {
    let mut body = String::new();
    for (i, page) in pages.iter().enumerate() {
        if i > 0 {
            body.push_str(r#"<w:p><w:r><w:br w:type="page"/></w:r></w:p>"#);
        }
        let mut table = false;
        for line in page.lines() {
            if line.contains(" | ") {
                if !table {
                    body.push_str("<w:tbl>");
                    table = true;
                }
                body.push_str("<w:tr>");
                for cell in line.split(" | ") {
                    body.push_str(&format!(
                        "<w:tc><w:p><w:r><w:t>{}</w:t></w:r></w:p></w:tc>",
                        escape(cell.trim())
                    ));
                }
                body.push_str("</w:tr>");
                continue;
            }
            if table {
                body.push_str("</w:tbl>");
                table = false;
            }
            body.push_str(&format!("<w:p><w:r>{}</w:r></w:p>", docx_runs(line)));
        }
        if table {
            body.push_str("</w:tbl>");
        }
    }
    let document = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>"#
    );
    let types = r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#;
    archive(&[
        ("[Content_Types].xml", types.as_bytes()),
        ("word/document.xml", document.as_bytes()),
    ])
}

/// An ODT whose pages are `pages` (lines separated by `\n`).
pub fn odt(pages: &[&str]) -> Vec<u8> {
    let mut body = String::new();
    for (i, page) in pages.iter().enumerate() {
        let mut table = false;
        for (j, line) in page.lines().enumerate() {
            let style = if i > 0 && j == 0 {
                r#" text:style-name="PageBreak""#
            } else {
                ""
            };
            if line.contains(" | ") && j > 0 {
                if !table {
                    body.push_str("<table:table>");
                    table = true;
                }
                body.push_str("<table:table-row>");
                for cell in line.split(" | ") {
                    body.push_str(&format!(
                        "<table:table-cell><text:p>{}</text:p></table:table-cell>",
                        escape(cell.trim())
                    ));
                }
                body.push_str("</table:table-row>");
                continue;
            }
            if table {
                body.push_str("</table:table>");
                table = false;
            }
            body.push_str(&format!("<text:p{style}>{}</text:p>", odt_content(line)));
        }
        if table {
            body.push_str("</table:table>");
        }
    }
    let content = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" xmlns:fo="urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0"><office:automatic-styles><style:style style:name="PageBreak" style:family="paragraph"><style:paragraph-properties fo:break-before="page"/></style:style></office:automatic-styles><office:body><office:text>{body}</office:text></office:body></office:document-content>"#
    );
    archive(&[
        ("mimetype", b"application/vnd.oasis.opendocument.text"),
        ("content.xml", content.as_bytes()),
    ])
}
