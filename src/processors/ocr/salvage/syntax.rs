//! Just enough PDF syntax to read a damaged file: where each complete `N G obj ... endobj`
//! lies, the entries of a dictionary, and the references a value holds. Every walk is bounded
//! (nesting depth, scan length), so a hostile file costs time in proportion to its size.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::bytes::Regex;

/// Deepest nesting of arrays and dictionaries followed; deeper values count as broken.
const MAX_DEPTH: u32 = 64;

/// One complete object of the file.
#[derive(Debug, Clone, Copy)]
pub(super) struct Object<'a> {
    /// Its generation number.
    pub generation: u16,
    /// Where its header starts in the file: the file's order of objects.
    pub at: usize,
    /// Its value: a dictionary (a stream's own dictionary), an array, a number...
    pub value: &'a [u8],
    /// Everything between `obj` and `endobj`: the value, and the stream when there is one.
    pub body: &'a [u8],
}

impl Object<'_> {
    /// The `/Type` of a dictionary object, without its slash.
    pub(super) fn kind(&self) -> Option<&[u8]> {
        entry(self.value, b"Type").and_then(name)
    }
}

fn header() -> &'static Regex {
    static HEADER: OnceLock<Regex> = OnceLock::new();
    HEADER.get_or_init(|| {
        Regex::new(r"(?-u)(?:^|[\s>])(\d{1,10})[\s\x00]+(\d{1,5})[\s\x00]+obj\b")
            .unwrap_or_else(|e| unreachable!("a fixed pattern: {e}"))
    })
}

fn reference() -> &'static Regex {
    static REFERENCE: OnceLock<Regex> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        Regex::new(r"(?-u)(\d{1,10})[\s\x00]+(\d{1,5})[\s\x00]+R\b")
            .unwrap_or_else(|e| unreachable!("a fixed pattern: {e}"))
    })
}

/// Every complete object of `data`, by number; of two with the same number, the later one
/// (an incremental update) wins. An object cut off by the end of the data is left out.
pub(super) fn objects(data: &[u8]) -> BTreeMap<u32, Object<'_>> {
    let headers: Vec<(usize, usize, u32, u16)> = header()
        .captures_iter(data)
        .filter_map(|captures| {
            let whole = captures.get(0)?;
            let number = u32::try_from(int(captures.get(1)?.as_bytes())?).ok()?;
            let generation = u16::try_from(int(captures.get(2)?.as_bytes())?).ok()?;
            Some((whole.start(), whole.end(), number, generation))
        })
        .collect();
    let mut found = BTreeMap::new();
    for (i, &(at, start, number, generation)) in headers.iter().enumerate() {
        // An object ends before the next one starts: each byte is read for one object only,
        // so a file of broken objects costs no more than its length.
        let end = headers.get(i + 1).map_or(data.len(), |next| next.0);
        if let Some(object) = complete(&data[..end], at, start, generation) {
            found.insert(number, object);
        }
    }
    found
}

/// The object whose body starts at `start`, when its `endobj` is there.
fn complete(data: &[u8], at: usize, start: usize, generation: u16) -> Option<Object<'_>> {
    let value_start = skip_space(data, start);
    let value_end = value_end(data, value_start, 0)?;
    let value = &data[value_start..value_end];
    let mut next = skip_space(data, value_end);
    if data[next..].starts_with(b"stream") {
        next += b"stream".len();
        // The keyword is followed by CRLF or LF (a lone CR is tolerated).
        if data[next..].starts_with(b"\r\n") {
            next += 2;
        } else if data.get(next).is_some_and(|b| matches!(b, b'\n' | b'\r')) {
            next += 1;
        }
        let stated = entry(value, b"Length")
            .and_then(int)
            .and_then(|n| usize::try_from(n).ok());
        let after = stated
            .and_then(|length| next.checked_add(length))
            .filter(|end| {
                data.get(*end..)
                    .is_some_and(|rest| rest[skip_space(rest, 0)..].starts_with(b"endstream"))
            })
            .map(|end| skip_space(data, end))
            .or_else(|| find(data, next, b"endstream"))?;
        next = skip_space(data, after + b"endstream".len());
    }
    if !data[next..].starts_with(b"endobj") {
        return None;
    }
    Some(Object {
        generation,
        at,
        value,
        body: &data[value_start..next],
    })
}

/// Where `needle` first occurs in `data` at or after `from`.
fn find(data: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    data.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| from + i)
}

fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n' | b'\x0c' | b'\0')
}

fn is_delimiter(byte: u8) -> bool {
    matches!(
        byte,
        b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
    )
}

/// `at` moved past white space and comments.
fn skip_space(data: &[u8], mut at: usize) -> usize {
    while let Some(&byte) = data.get(at) {
        if is_space(byte) {
            at += 1;
        } else if byte == b'%' {
            while data.get(at).is_some_and(|b| !matches!(b, b'\r' | b'\n')) {
                at += 1;
            }
        } else {
            break;
        }
    }
    at
}

/// The end of a run of regular characters (a number, a keyword, a name's letters).
fn token_end(data: &[u8], mut at: usize) -> usize {
    while data
        .get(at)
        .is_some_and(|b| !is_space(*b) && !is_delimiter(*b))
    {
        at += 1;
    }
    at
}

/// The end of the value starting at `at`, or `None` when the data ends first or holds none.
/// An integer followed by another and `R` is one value: a reference.
fn value_end(data: &[u8], at: usize, depth: u32) -> Option<usize> {
    if depth > MAX_DEPTH {
        return None;
    }
    let first = *data.get(at)?;
    match first {
        b'<' if data.get(at + 1) == Some(&b'<') => {
            let mut next = at + 2;
            loop {
                next = skip_space(data, next);
                if data.get(next..next + 2)? == b">>" {
                    return Some(next + 2);
                }
                if *data.get(next)? != b'/' {
                    return None;
                }
                next = token_end(data, next + 1);
                next = value_end(data, skip_space(data, next), depth + 1)?;
            }
        }
        b'<' => find(data, at, b">").map(|end| end + 1),
        b'[' => {
            let mut next = at + 1;
            loop {
                next = skip_space(data, next);
                if *data.get(next)? == b']' {
                    return Some(next + 1);
                }
                next = value_end(data, next, depth + 1)?;
            }
        }
        b'(' => {
            let mut open = 0usize;
            let mut next = at;
            loop {
                match *data.get(next)? {
                    b'\\' => next += 1,
                    b'(' => open += 1,
                    b')' => {
                        open -= 1;
                        if open == 0 {
                            return Some(next + 1);
                        }
                    }
                    _ => {}
                }
                next += 1;
            }
        }
        b'/' => Some(token_end(data, at + 1)),
        byte if is_delimiter(byte) || is_space(byte) => None,
        _ => {
            let end = token_end(data, at);
            if end == data.len() {
                // A token running into the end of the data may be cut short.
                return None;
            }
            Some(reference_end(data, at, end).unwrap_or(end))
        }
    }
}

/// When the integer at `at..end` starts a reference (`12 0 R`), the reference's end.
fn reference_end(data: &[u8], at: usize, end: usize) -> Option<usize> {
    int(&data[at..end])?;
    let second = skip_space(data, end);
    let second_end = token_end(data, second);
    int(data.get(second..second_end)?)?;
    let r = skip_space(data, second_end);
    let r_end = token_end(data, r);
    (data.get(r..r_end)? == b"R").then_some(r_end)
}

/// A dictionary's entries, in order: each key without its slash, and its value's text.
pub(super) fn entries(dictionary: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut found = Vec::new();
    let start = skip_space(dictionary, 0);
    if !dictionary[start..].starts_with(b"<<") {
        return found;
    }
    let mut next = start + 2;
    loop {
        next = skip_space(dictionary, next);
        if dictionary.get(next) != Some(&b'/') {
            return found;
        }
        let key_end = token_end(dictionary, next + 1);
        let value_start = skip_space(dictionary, key_end);
        let Some(value_end) = value_end(dictionary, value_start, 1) else {
            return found;
        };
        found.push((
            &dictionary[next + 1..key_end],
            &dictionary[value_start..value_end],
        ));
        next = value_end;
    }
}

/// The value of `key` in a dictionary.
pub(super) fn entry<'a>(dictionary: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    entries(dictionary)
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// A name value without its slash.
pub(super) fn name(value: &[u8]) -> Option<&[u8]> {
    value.strip_prefix(b"/")
}

/// A non-negative integer value.
pub(super) fn int(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 12 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// The object numbers a value refers to, in order.
pub(super) fn references(value: &[u8]) -> Vec<u32> {
    reference()
        .captures_iter(value)
        .filter_map(|c| int(c.get(1)?.as_bytes()))
        .filter_map(|n| u32::try_from(n).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_found_whole_and_a_cut_one_is_left_out() {
        let data = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n\
            2 0 obj\n<< /Length 5 /Kids [3 0 R 4 0 R] >>\nstream\nab)cd\nendstream\nendobj\n\
            3 0 obj\n<< /Length 10 >>\nstream\nabc";
        let found = objects(data);
        assert_eq!(found.keys().copied().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(found[&1].kind(), Some(&b"Catalog"[..]));
        assert_eq!(entry(found[&1].value, b"Pages"), Some(&b"2 0 R"[..]));
        assert_eq!(references(entry(found[&2].value, b"Kids").unwrap()), [3, 4]);
    }

    #[test]
    fn values_nest_and_strings_hide_their_delimiters() {
        let dict = b"<< /A (a (nested) \\) string) /B [1 [2] <</C 3>>] /D <ab> /E /F /G 7 0 R >>";
        let keys: Vec<&[u8]> = entries(dict).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, [&b"A"[..], b"B", b"D", b"E", b"G"]);
        assert_eq!(entry(dict, b"G"), Some(&b"7 0 R"[..]));
        assert_eq!(entry(dict, b"E"), Some(&b"/F"[..]));
    }

    #[test]
    fn hostile_nesting_is_bounded() {
        let mut data = b"1 0 obj\n".to_vec();
        data.extend(std::iter::repeat_n(b'[', 100_000));
        assert!(objects(&data).is_empty());
    }
}
