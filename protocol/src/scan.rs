//! Byte searches tuned for header lines, which are mostly a few dozen bytes long: a word at a
//! time (SWAR) over the first bytes, where the call and setup cost of a SIMD search would
//! dominate, then `memchr` for whatever is left of a long line.

/// How many bytes are searched a word at a time before handing over to `memchr`.
const SHORT: usize = 64;

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// A word with the high bit set in the byte where `word` has a zero byte. Exact for the lowest
/// zero byte, which is the only one used (bits above it may be set spuriously).
#[inline(always)]
fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(LO) & !word & HI
}

#[inline(always)]
fn word_at(haystack: &[u8], at: usize) -> Option<u64> {
    let bytes: [u8; 8] = haystack.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// The index of the first `a` or `b` in `haystack`.
#[inline(always)]
pub(crate) fn find2(a: u8, b: u8, haystack: &[u8]) -> Option<usize> {
    let at = match find_any_short([a, b], haystack) {
        Ok(found) => return found,
        Err(at) => at,
    };
    memchr::memchr2(a, b, &haystack[at..]).map(|i| at + i)
}

/// The index of the first `a` in `haystack`.
#[inline(always)]
pub(crate) fn find(a: u8, haystack: &[u8]) -> Option<usize> {
    find2(a, a, haystack)
}

/// The index of the first byte of `haystack` that is one of `needles`. For a few needles
/// (memchr goes up to three).
#[inline(always)]
pub(crate) fn find_any<const N: usize>(needles: [u8; N], haystack: &[u8]) -> Option<usize> {
    let at = match find_any_short(needles, haystack) {
        Ok(found) => return found,
        Err(at) => at,
    };
    haystack[at..]
        .chunks(SHORT)
        .enumerate()
        .find_map(|(chunk, bytes)| {
            find_any_short(needles, bytes)
                .ok()
                .flatten()
                .map(|i| chunk * SHORT + i)
        })
        .map(|i| at + i)
}

/// Searches the first `SHORT` bytes a word at a time: `Ok` with the answer when it is known,
/// `Err(at)` when the search has to go on from `at`.
#[inline(always)]
fn find_any_short<const N: usize>(
    needles: [u8; N],
    haystack: &[u8],
) -> Result<Option<usize>, usize> {
    let words = needles.map(|needle| LO * u64::from(needle));
    let mut at = 0;
    while at < SHORT {
        let Some(word) = word_at(haystack, at) else {
            // Fewer than 8 bytes left.
            return Ok(haystack[at..]
                .iter()
                .position(|c| needles.contains(c))
                .map(|i| at + i));
        };
        let found = words
            .iter()
            .fold(0, |found, &needle| found | zero_bytes(word ^ needle));
        if found != 0 {
            return Ok(Some(at + (found.trailing_zeros() / 8) as usize));
        }
        at += 8;
    }
    Err(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_match_at_every_position() {
        for len in 0..200 {
            for at in 0..=len {
                let mut hay = vec![b'x'; len];
                // A byte just above and below the needles, to catch borrow bugs in the SWAR.
                for (i, byte) in hay.iter_mut().enumerate() {
                    *byte = [b'x', b'\x0b', b'\t', b'\x80', b'\xff', 0][i % 6];
                }
                if at < len {
                    hay[at] = b'\n';
                    if at + 1 < len {
                        hay[at + 1] = b'\\';
                    }
                }
                let expected = hay.iter().position(|&c| c == b'\n' || c == b'\\');
                assert_eq!(find2(b'\n', b'\\', &hay), expected, "len {len} at {at}");
                let expected = hay.iter().position(|&c| c == b'\\');
                assert_eq!(find(b'\\', &hay), expected, "len {len} at {at}");
                let needles = [b'\\', b'\n', b'\r', b':'];
                let expected = hay.iter().position(|c| needles.contains(c));
                assert_eq!(find_any(needles, &hay), expected, "len {len} at {at}");
            }
        }
    }
}
