//! Rows as bytes: the rows of one bucket of one side live in a few large blocks, each row a
//! fixed header then its key and its fields, so a million rows are a handful of allocations
//! instead of a `String` per field. The same bytes are what a partition file holds.
//!
//! Blocks rather than one growing buffer: a `Vec` that doubles copies all it holds into a new
//! allocation twice its size, so for a moment it needs three times its bytes, and the allocator
//! may keep the old one resident for a while; blocks are allocated once, at their final size.
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

/// Bytes [`push_row`] appends for a row.
pub fn row_size(key: &[u8], ends: &[u32], data: &[u8]) -> usize {
    HEADER + 4 * ends.len() + key.len() + data.len()
}

/// Appends one row to `out`.
pub fn push_row(out: &mut Vec<u8>, line: u64, hash: u64, key: &[u8], ends: &[u32], data: &[u8]) {
    out.reserve(row_size(key, ends, data));
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

/// The first block of a bucket; each next one is twice as large, up to [`LARGEST_BLOCK`].
const FIRST_BLOCK: usize = 64 << 10;
/// The largest block (a row larger than that gets a block of its own size).
const LARGEST_BLOCK: usize = 4 << 20;

/// The rows of one bucket in memory: blocks of whole rows, each allocated once at its size.
#[derive(Debug, Default, Clone)]
pub struct Blocks {
    blocks: Vec<Vec<u8>>,
    len: u64,
}

impl Blocks {
    /// One block holding `bytes` (a partition file read whole).
    pub fn from_vec(bytes: Vec<u8>) -> Blocks {
        Blocks {
            len: bytes.len() as u64,
            blocks: vec![bytes],
        }
    }

    /// Appends one row; returns the bytes of a new block it took (0 when it fit in the last).
    pub fn push_row(&mut self, line: u64, hash: u64, key: &[u8], ends: &[u32], data: &[u8]) -> u64 {
        let size = row_size(key, ends, data);
        let fits = self
            .blocks
            .last()
            .is_some_and(|b| b.capacity() - b.len() >= size);
        let mut added = 0;
        if !fits {
            let next = self
                .blocks
                .last()
                .map_or(FIRST_BLOCK, |b| (b.capacity() * 2).min(LARGEST_BLOCK));
            let block = Vec::with_capacity(next.max(size));
            added = block.capacity() as u64;
            self.blocks.push(block);
        }
        if let Some(block) = self.blocks.last_mut() {
            push_row(block, line, hash, key, ends, data);
        }
        self.len += size as u64;
        added
    }

    /// Bytes of rows held.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Bytes allocated for them.
    pub fn capacity(&self) -> u64 {
        self.blocks.iter().map(|b| b.capacity() as u64).sum()
    }

    /// The blocks, in order.
    pub fn blocks(&self) -> &[Vec<u8>] {
        &self.blocks
    }
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

/// Where a row starts: its block in the high bits, its offset in the block in the low ones.
const OFFSET_BITS: u32 = 40;

/// Blocks of rows with the start of each row: checked once, then read without checks failing.
#[derive(Debug)]
pub struct Rows<'a> {
    blocks: &'a [Vec<u8>],
    starts: Vec<u64>,
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
    /// Indexes the rows of `blocks`, checking that every row is whole; `rows` is how many
    /// there are expected to be (room for their starts is taken at once).
    pub fn parse(blocks: &'a [Vec<u8>], rows: u64) -> Result<Rows<'a>, Damaged> {
        let mut starts = Vec::with_capacity(rows as usize);
        for (b, bytes) in blocks.iter().enumerate() {
            if bytes.len() as u64 >= 1 << OFFSET_BITS || b as u64 >= 1 << (64 - OFFSET_BITS) {
                return Err(Damaged);
            }
            Self::index(bytes, (b as u64) << OFFSET_BITS, &mut starts)?;
        }
        Ok(Rows { blocks, starts })
    }

    /// Pushes the start of every row of one block (`base` its block number's bits).
    fn index(bytes: &[u8], base: u64, starts: &mut Vec<u64>) -> Result<(), Damaged> {
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
            starts.push(base | at as u64);
            at = end;
        }
        Ok(())
    }

    /// How many rows.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Row `i` (`i < len()`).
    pub fn get(&self, i: usize) -> Row<'a> {
        let start = self.starts.get(i).copied().unwrap_or(u64::MAX);
        let bytes: &'a [u8] = self
            .blocks
            .get((start >> OFFSET_BITS) as usize)
            .map_or(&[], Vec::as_slice);
        let at = (start & ((1 << OFFSET_BITS) - 1)) as usize;
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
        let bytes = vec![sample()];
        let rows = Rows::parse(&bytes, 3).unwrap();
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
            if let Ok(rows) = Rows::parse(&[bytes[..cut].to_vec()], 0) {
                // Only cuts at a row boundary parse.
                assert!(rows.len() < 3);
            }
        }
        assert_eq!(
            Rows::parse(&[bytes[..bytes.len() - 1].to_vec()], 0).unwrap_err(),
            Damaged
        );
    }

    #[test]
    fn blocks_hold_whole_rows_and_grow_without_copying() {
        let mut blocks = Blocks::default();
        let data = vec![b'x'; 1000];
        let mut allocated = 0;
        for line in 0..10_000u64 {
            allocated += blocks.push_row(line, line, b"k", &[1000], &data);
        }
        // One row larger than the largest block gets a block of its own.
        let large = vec![b'y'; 5 << 20];
        allocated += blocks.push_row(10_000, 0, b"k", &[5 << 20], &large);
        assert_eq!(allocated, blocks.capacity());
        let rows = Rows::parse(blocks.blocks(), 10_001).unwrap();
        assert_eq!(rows.len(), 10_001);
        assert_eq!(rows.get(9_999).line, 9_999);
        assert_eq!(rows.get(10_000).field(0).len(), 5 << 20);
        let sizes: Vec<usize> = blocks.blocks().iter().map(Vec::capacity).collect();
        assert_eq!(sizes[..3], [64 << 10, 128 << 10, 256 << 10]);
        assert!(sizes.iter().all(|s| *s <= (5 << 20) + 64));
        // Less than a block (and a row) to spare.
        assert!(blocks.capacity() - blocks.len() < (4 << 20) + 1100);
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
