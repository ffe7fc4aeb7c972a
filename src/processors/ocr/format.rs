//! What an input file is, decided from its first bytes (never from its name), and what an
//! image says of its own resolution.

/// An input format OCR reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    /// PDF: pages with a text layer are read directly, the others rasterised.
    Pdf,
    /// PNG.
    Png,
    /// JPEG.
    Jpeg,
    /// TIFF, one page or several.
    Tiff,
}

impl Format {
    /// The name used in chunk plans.
    pub(super) fn name(self) -> &'static str {
        match self {
            Format::Pdf => "pdf",
            Format::Png => "png",
            Format::Jpeg => "jpeg",
            Format::Tiff => "tiff",
        }
    }

    /// The format named `name` in a chunk plan.
    pub(super) fn named(name: &str) -> Option<Format> {
        [Format::Pdf, Format::Png, Format::Jpeg, Format::Tiff]
            .into_iter()
            .find(|f| f.name() == name)
    }
}

/// The format of a file starting with `head`, or what it seems to be instead.
pub(super) fn sniff(head: &[u8]) -> Result<Format, String> {
    // A PDF may have a little junk before its header (the specification allows 1,024 bytes).
    if head.windows(5).take(1024).any(|w| w == b"%PDF-") {
        return Ok(Format::Pdf);
    }
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Ok(Format::Png);
    }
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Ok(Format::Jpeg);
    }
    if head.starts_with(b"II*\0") || head.starts_with(b"MM\0*") {
        return Ok(Format::Tiff);
    }
    let text = String::from_utf8_lossy(&head[..head.len().min(512)]).to_ascii_lowercase();
    let seems = if text.contains("<svg") {
        "an SVG drawing"
    } else if head.starts_with(b"GIF8") {
        "a GIF image"
    } else if head.starts_with(b"RIFF") && head.get(8..12) == Some(b"WEBP") {
        "a WebP image"
    } else if head.starts_with(b"PK\x03\x04") {
        "a ZIP archive (an office document?)"
    } else if std::str::from_utf8(head).is_ok() {
        "text"
    } else {
        "not a format OCR reads"
    };
    Err(format!(
        "the file is {seems}: OCR reads PDF, PNG, JPEG and TIFF"
    ))
}

/// The resolution an image states, in dots per inch, if it states one.
pub(super) fn stated_dpi(format: Format, head: &[u8]) -> Option<u32> {
    match format {
        Format::Png => png_dpi(head),
        Format::Jpeg => jpeg_dpi(head),
        // Tesseract reads TIFF resolution tags itself; PDFs are rasterised at a chosen dpi.
        Format::Tiff | Format::Pdf => None,
    }
}

/// The `pHYs` chunk, in pixels per metre, when its unit is the metre.
fn png_dpi(head: &[u8]) -> Option<u32> {
    let mut at = 8;
    // Chunks before the image data, each `length | type | data | crc`; bounded by `head`.
    while at + 8 <= head.len() {
        let length = u32::from_be_bytes(head.get(at..at + 4)?.try_into().ok()?) as usize;
        let kind = head.get(at + 4..at + 8)?;
        if kind == b"pHYs" {
            let data = head.get(at + 8..at + 8 + 9)?;
            let x = u32::from_be_bytes(data.get(0..4)?.try_into().ok()?);
            let unit = data[8];
            return (unit == 1 && x > 0).then(|| (f64::from(x) * 0.0254).round() as u32);
        }
        if kind == b"IDAT" {
            return None;
        }
        at = at.checked_add(12 + length)?;
    }
    None
}

/// The JFIF header's density, when its unit is dots per inch or per centimetre.
fn jpeg_dpi(head: &[u8]) -> Option<u32> {
    // SOI, then APP0 "JFIF\0": version (2), unit (1), x density (2), y density (2).
    let app0 = head.get(2..4)?;
    if app0 != [0xFF, 0xE0] || head.get(6..11)? != b"JFIF\0" {
        return None;
    }
    let unit = *head.get(13)?;
    let x = u32::from(u16::from_be_bytes([*head.get(14)?, *head.get(15)?]));
    match (unit, x) {
        (_, 0) => None,
        (1, x) => Some(x),
        (2, x) => Some((f64::from(x) * 2.54).round() as u32),
        _ => None,
    }
}

/// How many pages (image file directories) a TIFF holds; `None` when its structure is broken.
pub(super) fn tiff_pages(data: &[u8]) -> Option<u32> {
    let little = data.starts_with(b"II");
    let u16_at = |at: usize| -> Option<u16> {
        let b: [u8; 2] = data.get(at..at + 2)?.try_into().ok()?;
        Some(if little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = data.get(at..at + 4)?.try_into().ok()?;
        Some(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let mut offset = u32_at(4)? as usize;
    let mut pages = 0;
    // Bounded: a TIFF whose directories loop, or that claims absurdly many, is broken.
    while offset != 0 && pages < 10_000 {
        let entries = u16_at(offset)? as usize;
        let next = offset + 2 + entries * 12;
        pages += 1;
        let following = u32_at(next)? as usize;
        if following != 0 && following <= offset {
            return None;
        }
        offset = following;
    }
    (pages > 0 && offset == 0).then_some(pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_come_from_the_content() {
        assert_eq!(sniff(b"%PDF-1.7\n"), Ok(Format::Pdf));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Ok(Format::Png));
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Ok(Format::Jpeg));
        assert_eq!(sniff(b"II*\0\x08\0\0\0"), Ok(Format::Tiff));
        assert!(sniff(b"<?xml version=\"1.0\"?><svg xmlns=")
            .unwrap_err()
            .contains("SVG"));
        assert!(sniff(b"hello").unwrap_err().contains("text"));
    }

    #[test]
    fn jpeg_density_is_read_from_jfif() {
        let mut head = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 16];
        head.extend_from_slice(b"JFIF\0\x01\x01\x01\x01\x2c\x01\x2c");
        assert_eq!(stated_dpi(Format::Jpeg, &head), Some(300));
        head[13] = 0;
        assert_eq!(stated_dpi(Format::Jpeg, &head), None);
    }

    #[test]
    fn broken_tiffs_have_no_page_count() {
        // One directory with no entries, then the end.
        let one = b"II*\0\x08\0\0\0\0\0\0\0\0\0";
        assert_eq!(tiff_pages(one), Some(1));
        assert_eq!(tiff_pages(&one[..9]), None);
        // A directory pointing back at itself.
        let looping = b"II*\0\x08\0\0\0\0\0\x08\0\0\0";
        assert_eq!(tiff_pages(looping), None);
    }
}
