//! Tesseract's TSV output taken apart: the words with their confidences and boxes, and the
//! page's text in reading order (lines as tesseract found them, a blank line between blocks).

use serde::Serialize;

/// One recognised word.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct Word {
    /// Its text.
    pub text: String,
    /// Tesseract's confidence, 0–100.
    pub conf: f64,
    /// `[left, top, width, height]` in pixels.
    pub bbox: [u32; 4],
}

/// One page as recognised.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Recognised {
    /// The page's number in the output (from 1), for multi-page inputs.
    pub page: u32,
    /// The text, in reading order.
    pub text: String,
    /// Every word.
    pub words: Vec<Word>,
}

impl Recognised {
    /// Mean word confidence, `None` when no word was found.
    pub(super) fn confidence(&self) -> Option<f64> {
        (!self.words.is_empty()).then(|| {
            let sum: f64 = self.words.iter().map(|w| w.conf).sum();
            (sum / self.words.len() as f64 * 10.0).round() / 10.0
        })
    }
}

/// The pages of a TSV document, in order.
pub(super) fn parse(tsv: &str) -> Vec<Recognised> {
    let mut pages: Vec<Recognised> = Vec::new();
    // (page, block, paragraph, line) of the last word placed.
    let mut last: Option<(u32, u32, u32, u32)> = None;
    for row in tsv.lines().skip(1) {
        let fields: Vec<&str> = row.splitn(12, '\t').collect();
        let [level, page, block, par, line, _word, left, top, width, height, conf, text] =
            fields[..]
        else {
            continue;
        };
        let number = |s: &str| s.trim().parse::<u32>().ok();
        let (Some(page), Some(block), Some(par), Some(line)) =
            (number(page), number(block), number(par), number(line))
        else {
            continue;
        };
        if pages.last().is_none_or(|p| p.page != page) {
            pages.push(Recognised {
                page,
                ..Recognised::default()
            });
            last = None;
        }
        let text = text.trim();
        let Ok(conf) = conf.trim().parse::<f64>() else {
            continue;
        };
        if level.trim() != "5" || text.is_empty() || conf < 0.0 {
            continue;
        }
        let Some(current) = pages.last_mut() else {
            continue;
        };
        let position = (page, block, par, line);
        match last {
            Some((_, b, p, _)) if (b, p) != (block, par) => current.text.push_str("\n\n"),
            Some(previous) if previous != position => current.text.push('\n'),
            Some(_) => current.text.push(' '),
            None => {}
        }
        last = Some(position);
        current.text.push_str(text);
        current.words.push(Word {
            text: text.to_owned(),
            conf: (conf * 10.0).round() / 10.0,
            bbox: [
                number(left).unwrap_or(0),
                number(top).unwrap_or(0),
                number(width).unwrap_or(0),
                number(height).unwrap_or(0),
            ],
        });
    }
    pages
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext";

    #[test]
    fn words_become_lines_and_blocks() {
        let tsv = format!(
            "{HEADER}\n1\t1\t0\t0\t0\t0\t0\t0\t100\t100\t-1\t\n\
             5\t1\t1\t1\t1\t1\t10\t10\t50\t20\t96.5\tBonjour,\n\
             5\t1\t1\t1\t1\t2\t70\t10\t50\t20\t91.5\tvoilà\n\
             5\t1\t1\t1\t2\t1\t10\t40\t50\t20\t90\tligne\n\
             5\t1\t2\t1\t1\t1\t10\t90\t50\t20\t80\tbloc\n\
             5\t2\t1\t1\t1\t1\t10\t10\t50\t20\t70\tdeux\n"
        );
        let pages = parse(&tsv);
        assert_eq!(pages.len(), 2);
        assert_eq!(pages[0].text, "Bonjour, voilà\nligne\n\nbloc");
        assert_eq!(pages[0].confidence(), Some(89.5));
        assert_eq!(pages[0].words[1].bbox, [70, 10, 50, 20]);
        assert_eq!((pages[1].page, pages[1].text.as_str()), (2, "deux"));
    }

    #[test]
    fn a_blank_page_has_no_text_and_no_confidence() {
        let pages = parse(&format!(
            "{HEADER}\n1\t1\t0\t0\t0\t0\t0\t0\t100\t100\t-1\t\n"
        ));
        assert_eq!(pages.len(), 1);
        assert_eq!(pages[0].text, "");
        assert_eq!(pages[0].confidence(), None);
    }
}
