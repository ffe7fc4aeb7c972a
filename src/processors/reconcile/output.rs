//! The result files: their names and headers, and CSV lines written straight into a byte
//! buffer (a field is quoted only when it must be, as `csv::Writer` does by default).

use std::fs::File;
use std::io::Write;
use std::path::Path;

/// The result files, in the order the final result lists them, with their header rows
/// (`bo_only` and `partner_only` add the input's own column names).
pub const FILES: [(&str, &str); 6] = [
    ("matches", "key,boLine,partnerLine"),
    (
        "mismatches",
        "key,column,boValue,partnerValue,boLine,partnerLine",
    ),
    ("bo_only", "line"),
    ("partner_only", "line"),
    ("duplicates", "side,key,line"),
    ("rejected", "side,line,reason"),
];

/// Where `bo_only` is in [`FILES`].
pub const BO_ONLY: usize = 2;
/// Where `partner_only` is in [`FILES`].
pub const PARTNER_ONLY: usize = 3;

/// One CSV line being built.
pub struct Line<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
    fields: u32,
}

impl<'a> Line<'a> {
    /// Starts a line at the end of `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        let start = out.len();
        Line {
            out,
            start,
            fields: 0,
        }
    }

    fn separate(&mut self) {
        if self.fields > 0 {
            self.out.push(b',');
        }
        self.fields += 1;
    }

    /// A text field, quoted when it holds a comma, a quote or a line break.
    pub fn field(mut self, value: &[u8]) -> Self {
        self.separate();
        if value
            .iter()
            .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
        {
            self.out.push(b'"');
            for &b in value {
                if b == b'"' {
                    self.out.push(b'"');
                }
                self.out.push(b);
            }
            self.out.push(b'"');
        } else {
            self.out.extend_from_slice(value);
        }
        self
    }

    /// A key: the columns of a composite key shown joined with ` | `.
    pub fn key(self, key: &[u8]) -> Self {
        if key.contains(&0x1f) {
            let shown: Vec<u8> = key
                .split(|b| *b == 0x1f)
                .collect::<Vec<_>>()
                .join(&b" | "[..]);
            self.field(&shown)
        } else {
            self.field(key)
        }
    }

    /// A number.
    pub fn number(mut self, mut n: u64) -> Self {
        self.separate();
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.out.extend_from_slice(&digits[at..]);
        self
    }

    /// Ends the line.
    pub fn end(self) {
        // A lone empty field would read back as a blank line: quote it.
        if self.fields == 1 && self.out.len() == self.start {
            self.out.extend_from_slice(b"\"\"");
        }
        self.out.push(b'\n');
    }
}

/// Bytes gathered before a write to the file, at most.
pub const FLUSH_AT: usize = 256 * 1024;

/// A result file being written: lines gather in `buf` and go to disk in large writes.
pub struct Output {
    file: File,
    /// Lines not yet written; [`Output::commit`] writes them once there are enough.
    pub buf: Vec<u8>,
    flush_at: usize,
}

impl Output {
    /// Creates `path`, gathering about `buffer` bytes (at most [`FLUSH_AT`]) before each write.
    pub fn create(path: &Path, buffer: usize) -> std::io::Result<Output> {
        let flush_at = buffer.clamp(4096, FLUSH_AT);
        Ok(Output {
            file: File::create(path)?,
            buf: Vec::with_capacity(flush_at + 4096),
            flush_at,
        })
    }

    /// Bytes an output created with `buffer` holds, a long line's growth included.
    pub fn cost(buffer: usize) -> u64 {
        2 * (buffer.clamp(4096, FLUSH_AT) as u64 + 4096)
    }

    /// Writes what `buf` holds once it is large enough.
    pub fn commit(&mut self) -> std::io::Result<()> {
        if self.buf.len() >= self.flush_at {
            self.file.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Writes everything out.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.file.write_all(&self.buf)?;
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(build: impl FnOnce(Line<'_>) -> Line<'_>) -> String {
        let mut out = Vec::new();
        build(Line::new(&mut out)).end();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn quoting_matches_the_csv_crate() {
        let cases: [&[&str]; 5] = [
            &["plain", "", "é"],
            &["a,b", "say \"hi\"", "two\nlines", "cr\r"],
            &[""],
            &[" spaced ", "'"],
            &["a;b", "#"],
        ];
        for fields in cases {
            let mine = line(|mut l| {
                for f in fields {
                    l = l.field(f.as_bytes());
                }
                l
            });
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(fields).unwrap();
            let theirs = String::from_utf8(w.into_inner().unwrap()).unwrap();
            assert_eq!(mine, theirs, "{fields:?}");
        }
    }

    #[test]
    fn numbers_and_composite_keys() {
        assert_eq!(
            line(|l| l.number(0).number(1234567890).number(u64::MAX)),
            "0,1234567890,18446744073709551615\n"
        );
        assert_eq!(line(|l| l.key(b"a\x1fb,c")), "\"a | b,c\"\n");
    }
}
