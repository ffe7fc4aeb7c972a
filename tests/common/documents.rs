//! Documents for the OCR tests and bench, made on the spot: pages of text set in a PDF with a
//! text layer (Helvetica, WinAnsi, so French accents work), the same pages rasterised by
//! poppler as a scanner would, and scanned PDFs of those images; plus character accuracy.
#![allow(dead_code)] // Each user takes what it needs.

use std::path::Path;
use std::process::Command as Process;

/// One page's text runs: `(x, y, text)` in points from the bottom left, 12 pt Helvetica.
pub type PageText = Vec<(u32, u32, String)>;

pub fn prose_page(text: &str) -> PageText {
    text.lines()
        .enumerate()
        .map(|(i, line)| (72, 720 - 20 * i as u32, line.to_owned()))
        .collect()
}

/// A PDF writer for tests: pages of Helvetica text (WinAnsi, so French accents work), or pages
/// that are one JPEG image each (a scan).
pub enum PdfPage {
    Text(PageText),
    Scan {
        jpeg: Vec<u8>,
        width: u32,
        height: u32,
    },
}

pub fn pdf(pages: &[PdfPage]) -> Vec<u8> {
    let n = pages.len();
    // Objects: 1 catalog, 2 pages, then per page: page, contents, (image); last: the font.
    let mut objects: Vec<Vec<u8>> = vec![Vec::new(), Vec::new()];
    let font = 3 + 3 * n;
    let mut kids = Vec::new();
    for (i, page) in pages.iter().enumerate() {
        let (page_id, contents_id, image_id) = (3 + 3 * i, 4 + 3 * i, 5 + 3 * i);
        kids.push(format!("{page_id} 0 R"));
        let (content, resources, image): (Vec<u8>, String, Vec<u8>) = match page {
            PdfPage::Text(runs) => {
                let mut c = b"BT /F1 12 Tf ".to_vec();
                for (x, y, text) in runs {
                    c.extend_from_slice(format!("1 0 0 1 {x} {y} Tm (").as_bytes());
                    for ch in text.chars() {
                        let byte = u8::try_from(u32::from(ch)).expect("Latin-1 text");
                        if matches!(byte, b'(' | b')' | b'\\') {
                            c.push(b'\\');
                        }
                        c.push(byte);
                    }
                    c.extend_from_slice(b") Tj ");
                }
                c.extend_from_slice(b"ET");
                (c, format!("/Font << /F1 {font} 0 R >>"), b"null".to_vec())
            }
            PdfPage::Scan {
                jpeg,
                width,
                height,
            } => {
                let mut image = format!(
                    "<< /Type /XObject /Subtype /Image /Width {width} /Height {height} \
                     /ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /DCTDecode /Length {} >>\nstream\n",
                    jpeg.len()
                )
                .into_bytes();
                image.extend_from_slice(jpeg);
                image.extend_from_slice(b"\nendstream");
                (
                    b"q 612 0 0 792 0 0 cm /Im1 Do Q".to_vec(),
                    format!("/XObject << /Im1 {image_id} 0 R >>"),
                    image,
                )
            }
        };
        objects.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << {resources} >> /Contents {contents_id} 0 R >>"
            )
            .into_bytes(),
        );
        let mut stream = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
        stream.extend_from_slice(&content);
        stream.extend_from_slice(b"\nendstream");
        objects.push(stream);
        objects.push(image);
    }
    objects.push(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
            .to_vec(),
    );
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>".to_vec();
    objects[1] = format!("<< /Type /Pages /Kids [{}] /Count {n} >>", kids.join(" ")).into_bytes();
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(object);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// Rasterises page `n` of `pdf_bytes` at 300 dpi, grey, as a scanner would (poppler still
/// writes a grey JPEG with three components: the scans below declare RGB).
pub fn rasterise(dir: &Path, pdf_bytes: &[u8], n: usize, format: &str) -> Vec<u8> {
    let source = dir.join(format!("source-{n}.pdf"));
    std::fs::write(&source, pdf_bytes).unwrap();
    let out = dir.join(format!("raster-{n}"));
    let status = Process::new("pdftoppm")
        .args(["-r", "300", "-gray", &format!("-{format}"), "-singlefile"])
        .args(["-f", &n.to_string(), "-l", &n.to_string()])
        .arg(&source)
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let ext = if format == "jpeg" { "jpg" } else { format };
    std::fs::read(out.with_extension(ext)).unwrap()
}

/// A scanned PDF of `pages`: each page set as text, rasterised, and put back as an image.
pub fn scanned_pdf(dir: &Path, pages: &[PageText]) -> Vec<u8> {
    let text: Vec<PdfPage> = pages.iter().cloned().map(PdfPage::Text).collect();
    let source = pdf(&text);
    let scans: Vec<PdfPage> = (1..=pages.len())
        .map(|n| PdfPage::Scan {
            jpeg: rasterise(dir, &source, n, "jpeg"),
            width: 2550,
            height: 3300,
        })
        .collect();
    pdf(&scans)
}

/// Edit distance between `a` and `b`, by characters.
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// Words separated by single spaces: layout is not what accuracy measures.
pub fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub fn accuracy(expected: &str, got: &str) -> f64 {
    let (expected, got) = (words(expected), words(got));
    1.0 - distance(&expected, &got) as f64 / expected.chars().count() as f64
}
