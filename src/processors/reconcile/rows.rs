//! Rows as bytes: every row of one bucket of one side lives in a single buffer, each row a
//! fixed header then its key and its fields, so a million rows are a handful of allocations
//! instead of a `String` per field. The same bytes are what a partition file holds.
//!
//! A row: `line: u64 | hash: u64 | key length: u32 | field count: u32 | field ends: u32 each |
//! key | fields`, integers little-endian, field ends counted from the start of the fields.
//! Fields and keys are valid UTF-8 (decoded when the input was read).

/// Bytes before a row's field ends.
const HEADER: usize = 24;

/// A 64-bit hash of a normalised key: the same for the same key on every run (the bucket of a
/// row must not change when a job resumes), spread over all bits (buckets use the high half,
/// the in-bucket index the low bits).
pub fn hash_key(key: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = (key.len() as u64).wrapping_mul(K);
    let mut words = key.chunks_exact(8);
    for word in &mut words {
        let w = word.try_into().map_or(0, u64::from_le_bytes);
        h = (h.rotate_left(23) ^ w).wrapping_mul(K);
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(23) ^ u64::from_le_bytes(last)).wrapping_mul(K);
    }
    // The murmur3 finaliser: every input bit reaches every output bit.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The bucket (of `buckets`) a key hash falls in.
pub fn bucket_of(hash: u64, buckets: usize) -> usize {
    (((hash >> 32) * buckets as u64) >> 32) as usize
}

/// Appends one row to `out`.
pub fn push_row(out: &mut Vec<u8>, line: u64, hash: u64, key: &[u8], ends: &[u32], data: &[u8]) {
    out.reserve(HEADER + 4 * ends.len() + key.len() + data.len());
    out.extend_from_slice(&line.to_le_bytes());
    out.extend_from_slice(&hash.to_le_bytes());
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(&(ends.len() as u32).to_le_bytes());
    for end in ends {
        out.extend_from_slice(&end.to_le_bytes());
    }
    out.extend_from_slice(key);
    out.extend_from_slice(data);
}

/// A buffer of rows is damaged (a partition file cut short or overwritten).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Damaged;

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
}

/// A buffer of rows with the offset of each: checked once, then read without checks failing.
#[derive(Debug)]
pub struct Rows<'a> {
    bytes: &'a [u8],
    starts: Vec<usize>,
}

/// One row, borrowed from its buffer.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    /// Line number in the input file.
    pub line: u64,
    /// [`hash_key`] of the key.
    pub hash: u64,
    /// The normalised key (columns of a composite key joined by U+001F).
    pub key: &'a [u8],
    ends: &'a [u8],
    data: &'a [u8],
}

impl<'a> Rows<'a> {
    /// Indexes the rows of `bytes`, checking that every row is whole.
    pub fn parse(bytes: &'a [u8]) -> Result<Rows<'a>, Damaged> {
        let mut starts = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let key_len = u32_at(bytes, at + 16).ok_or(Damaged)? as usize;
            let count = u32_at(bytes, at + 20).ok_or(Damaged)? as usize;
            let ends_len = count.checked_mul(4).ok_or(Damaged)?;
            let data_len = match count {
                0 => 0,
                n => u32_at(bytes, at + HEADER + 4 * (n - 1)).ok_or(Damaged)? as usize,
            };
            let end = at + HEADER + ends_len + key_len + data_len;
            if end > bytes.len() {
                return Err(Damaged);
            }
            let mut previous = 0;
            for i in 0..count {
                let e = u32_at(bytes, at + HEADER + 4 * i).ok_or(Damaged)?;
                if e < previous {
                    return Err(Damaged);
                }
                previous = e;
            }
            starts.push(at);
            at = end;
        }
        Ok(Rows { bytes, starts })
    }

    /// How many rows.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Row `i` (`i < len()`).
    pub fn get(&self, i: usize) -> Row<'a> {
        let at = self.starts.get(i).copied().unwrap_or(self.bytes.len());
        let bytes = self.bytes;
        let line = u64_at(bytes, at).unwrap_or(0);
        let hash = u64_at(bytes, at + 8).unwrap_or(0);
        let key_len = u32_at(bytes, at + 16).unwrap_or(0) as usize;
        let count = u32_at(bytes, at + 20).unwrap_or(0) as usize;
        let ends_at = at + HEADER;
        let key_at = ends_at + 4 * count;
        let data_at = key_at + key_len;
        let data_len = match count {
            0 => 0,
            n => u32_at(bytes, ends_at + 4 * (n - 1)).unwrap_or(0) as usize,
        };
        Row {
            line,
            hash,
            key: bytes.get(key_at..data_at).unwrap_or_default(),
            ends: bytes.get(ends_at..key_at).unwrap_or_default(),
            data: bytes.get(data_at..data_at + data_len).unwrap_or_default(),
        }
    }
}

impl<'a> Row<'a> {
    /// How many fields.
    pub fn len(&self) -> usize {
        self.ends.len() / 4
    }

    fn end(&self, i: usize) -> usize {
        u32_at(self.ends, 4 * i).unwrap_or(0) as usize
    }

    /// Field `i`, empty when out of range.
    pub fn field(&self, i: usize) -> &'a [u8] {
        if i >= self.len() {
            return &[];
        }
        let start = if i == 0 { 0 } else { self.end(i - 1) };
        self.data.get(start..self.end(i)).unwrap_or_default()
    }

    /// Field `i` as text (empty if a damaged buffer holds bytes that are not UTF-8).
    pub fn text(&self, i: usize) -> &'a str {
        std::str::from_utf8(self.field(i)).unwrap_or_default()
    }

    /// The fields in order.
    pub fn fields(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        (0..self.len()).map(|i| self.field(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut out = Vec::new();
        for (line, key, fields) in [
            (2, "b", vec!["b", "1", ""]),
            (3, "a", vec!["a", "x\ny", "é"]),
            (5, "b", vec!["b", "2", "z"]),
        ] {
            let data: String = fields.concat();
            let mut ends = Vec::new();
            let mut end = 0;
            for f in &fields {
                end += f.len() as u32;
                ends.push(end);
            }
            push_row(
                &mut out,
                line,
                hash_key(key.as_bytes()),
                key.as_bytes(),
                &ends,
                data.as_bytes(),
            );
        }
        out
    }

    #[test]
    fn rows_round_trip() {
        let bytes = sample();
        let rows = Rows::parse(&bytes).unwrap();
        assert_eq!(rows.len(), 3);
        let row = rows.get(1);
        assert_eq!((row.line, row.key), (3, &b"a"[..]));
        assert_eq!(
            row.fields().collect::<Vec<_>>(),
            [&b"a"[..], b"x\ny", "é".as_bytes()]
        );
        assert_eq!(row.text(2), "é");
        assert_eq!(rows.get(0).field(2), b"");
        assert_eq!(rows.get(0).field(9), b"");
    }

    #[test]
    fn damaged_buffers_are_refused() {
        let bytes = sample();
        for cut in 1..bytes.len() {
            if let Ok(rows) = Rows::parse(&bytes[..cut]) {
                // Only cuts at a row boundary parse.
                assert!(rows.len() < 3);
            }
        }
        assert_eq!(Rows::parse(&bytes[..bytes.len() - 1]).unwrap_err(), Damaged);
    }

    #[test]
    fn buckets_spread_evenly() {
        let mut counts = [0usize; 7];
        for i in 0..70_000 {
            counts[bucket_of(hash_key(format!("ID{i:09}").as_bytes()), 7)] += 1;
        }
        assert!(
            counts.iter().all(|c| (9_000..11_000).contains(c)),
            "{counts:?}"
        );
    }
}
