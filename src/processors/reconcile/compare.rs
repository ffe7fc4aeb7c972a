//! Value normalisation and comparison: trimming, case folding, numbers (French formats
//! included) within a tolerance, and dates in several formats.

/// Supported date formats.
pub const DATE_FORMATS: [&str; 5] = [
    "dd/mm/yyyy",
    "yyyy-mm-dd",
    "dd-mm-yyyy",
    "dd.mm.yyyy",
    "mm/dd/yyyy",
];

/// How values are compared.
#[derive(Debug, Clone)]
pub struct Comparator {
    /// Trim surrounding spaces.
    pub trim: bool,
    /// Case-insensitive.
    pub ignore_case: bool,
    /// Numeric tolerance, when numbers are compared as numbers.
    pub tolerance: Option<f64>,
    /// Date formats tried, in order.
    pub date_formats: Vec<String>,
}

impl Comparator {
    /// Appends a normalised key value to `out` (trim and case only: keys must match exactly
    /// otherwise).
    pub fn key_into(&self, value: &str, out: &mut Vec<u8>) {
        let v = if self.trim { value.trim() } else { value };
        if self.ignore_case && v.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii()) {
            out.extend_from_slice(v.to_lowercase().as_bytes());
        } else {
            out.extend_from_slice(v.as_bytes());
        }
    }

    /// [`Comparator::equal`] on UTF-8 bytes: identical bytes are equal under every rule, so
    /// most values never need decoding.
    pub fn equal_bytes(&self, a: &[u8], b: &[u8]) -> bool {
        a == b
            || match (std::str::from_utf8(a), std::str::from_utf8(b)) {
                (Ok(a), Ok(b)) => self.equal(a, b),
                _ => false,
            }
    }

    /// True when the two values are the same under the rules.
    pub fn equal(&self, a: &str, b: &str) -> bool {
        let (a, b) = if self.trim {
            (a.trim(), b.trim())
        } else {
            (a, b)
        };
        if a == b || (self.ignore_case && a.eq_ignore_ascii_case(b)) {
            return true;
        }
        if self.ignore_case && a.to_lowercase() == b.to_lowercase() {
            return true;
        }
        if let (Some(x), Some(y)) = (parse_number(a), parse_number(b)) {
            let tolerance = self.tolerance.unwrap_or(0.0);
            return (x - y).abs() <= tolerance + f64::EPSILON * x.abs().max(y.abs());
        }
        if !self.date_formats.is_empty() {
            if let (Some(x), Some(y)) = (self.parse_date(a), self.parse_date(b)) {
                return x == y;
            }
        }
        false
    }

    fn parse_date(&self, value: &str) -> Option<(u32, u32, u32)> {
        self.date_formats.iter().find_map(|f| parse_date(value, f))
    }
}

/// Parses `1234.56`, `1 234,56` (French: spaces, no-break spaces or `.` as thousands separators,
/// `,` as decimal mark), `1,234.56` and `-12`. Allocates nothing for values of up to 64 bytes.
pub fn parse_number(value: &str) -> Option<f64> {
    // The value without separators, then with `.` as its only decimal mark.
    let mut stack = [0u8; 64];
    let mut heap = Vec::new();
    let mut len = 0;
    let (mut last_comma, mut last_dot) = (None, None);
    for c in value.chars() {
        let b = match c {
            ' ' | '\u{a0}' | '\u{202f}' | '\'' => continue,
            '0'..='9' | '-' | '+' => c as u8,
            ',' => {
                last_comma = Some(len);
                b','
            }
            '.' => {
                last_dot = Some(len);
                b'.'
            }
            _ => return None,
        };
        if len < stack.len() {
            stack[len] = b;
        } else {
            if heap.is_empty() {
                heap.extend_from_slice(&stack);
            }
            heap.push(b);
        }
        len += 1;
    }
    let cleaned: &mut [u8] = if heap.is_empty() {
        &mut stack[..len]
    } else {
        &mut heap
    };
    if cleaned.is_empty() {
        return None;
    }
    // Both: whichever comes last is the decimal mark; a lone comma is one too.
    let (decimal, thousands) = match (last_comma, last_dot) {
        (Some(c), Some(d)) if c > d => (b',', b'.'),
        (Some(_), Some(_)) => (b'.', b','),
        (Some(_), None) => (b',', 0),
        _ => (b'.', 0),
    };
    let mut out = 0;
    for i in 0..cleaned.len() {
        let b = cleaned[i];
        if b == thousands {
            continue;
        }
        cleaned[out] = if b == decimal { b'.' } else { b };
        out += 1;
    }
    std::str::from_utf8(&cleaned[..out])
        .ok()?
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite())
}

/// Parses a date in one of [`DATE_FORMATS`] into (year, month, day).
pub fn parse_date(value: &str, format: &str) -> Option<(u32, u32, u32)> {
    let v = value.trim();
    let parts = |sep: char| -> Option<(u32, u32, u32)> {
        let mut it = v.split(sep);
        let a = it.next()?.parse().ok()?;
        let b = it.next()?.parse().ok()?;
        let c = it.next()?.parse().ok()?;
        it.next().is_none().then_some((a, b, c))
    };
    let (year, month, day) = match format {
        "dd/mm/yyyy" => parts('/').map(|(d, m, y)| (y, m, d))?,
        "mm/dd/yyyy" => parts('/').map(|(m, d, y)| (y, m, d))?,
        "yyyy-mm-dd" => parts('-').filter(|(y, _, _)| *y > 31)?,
        "dd-mm-yyyy" => parts('-')
            .map(|(d, m, y)| (y, m, d))
            .filter(|(y, _, _)| *y > 31)?,
        "dd.mm.yyyy" => parts('.').map(|(d, m, y)| (y, m, d))?,
        _ => return None,
    };
    ((1..=12).contains(&month) && (1..=31).contains(&day) && year >= 1000)
        .then_some((year, month, day))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comparator() -> Comparator {
        Comparator {
            trim: true,
            ignore_case: false,
            tolerance: Some(0.01),
            date_formats: DATE_FORMATS[..4].iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn numbers_in_french_and_english_formats() {
        assert_eq!(parse_number("1 234,56"), Some(1234.56));
        assert_eq!(parse_number("1\u{a0}234,56"), Some(1234.56));
        assert_eq!(parse_number("1.234,56"), Some(1234.56));
        assert_eq!(parse_number("1,234.56"), Some(1234.56));
        assert_eq!(parse_number("-12"), Some(-12.0));
        assert_eq!(parse_number("12 rue"), None);
        assert_eq!(parse_number("1,5"), Some(1.5));
        assert_eq!(parse_number("1,234,567"), None);
        assert_eq!(parse_number(""), None);
        assert_eq!(parse_number(" "), None);
        let long = format!("{}.5", "1".repeat(80));
        assert_eq!(parse_number(&long), long.parse().ok());
        assert!(comparator().equal("1 234,56", "1234.561"));
        assert!(!comparator().equal("1 234,56", "1234.60"));
    }

    #[test]
    fn dates_and_text() {
        assert!(comparator().equal("31/12/2024", "2024-12-31"));
        assert!(!comparator().equal("30/12/2024", "2024-12-31"));
        assert!(comparator().equal(" Paris ", "Paris"));
        assert!(!comparator().equal("paris", "Paris"));
        let folding = Comparator {
            ignore_case: true,
            ..comparator()
        };
        assert!(folding.equal("Élise", "élise"));
    }
}
