//! Matching the rows of one bucket: both sides grouped by key, then every back-office row
//! looked up once among the partner rows; each outcome written as a CSV line.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::compare::Comparator;
use super::output::{self, Line, Output, FILES};
use super::rows::{Row, Rows};

/// Rows of each category kept in a chunk's result and in the final result.
pub const SAMPLE: usize = 10;

/// The counts of a reconciliation, named as the reference names them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Counts {
    /// Back-office rows read (rejected rows excepted).
    pub total_bo_records: u64,
    /// Partner rows read (rejected rows excepted).
    pub total_partner_records: u64,
    /// Keys on both sides, every compared column equal.
    pub total_matches: u64,
    /// Keys on both sides, some compared column different.
    pub total_mismatches: u64,
    /// Keys only in the back-office file.
    pub total_bo_only: u64,
    /// Keys only in the partner file.
    pub total_partner_only: u64,
    /// Keys more than once in the back-office file.
    pub duplicate_bo_keys: u64,
    /// Keys more than once in the partner file.
    pub duplicate_partner_keys: u64,
    /// Rows rejected on either side.
    pub rejected_rows: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.total_bo_records += o.total_bo_records;
        self.total_partner_records += o.total_partner_records;
        self.total_matches += o.total_matches;
        self.total_mismatches += o.total_mismatches;
        self.total_bo_only += o.total_bo_only;
        self.total_partner_only += o.total_partner_only;
        self.duplicate_bo_keys += o.duplicate_bo_keys;
        self.duplicate_partner_keys += o.duplicate_partner_keys;
        self.rejected_rows += o.rejected_rows;
    }
}

/// A compared column: its back-office name, and its index on each side.
#[derive(Debug, Clone)]
pub struct Column {
    /// The back-office name (as `mismatches.csv` shows it).
    pub name: String,
    /// Index in a back-office row.
    pub bo: usize,
    /// Index in a partner row.
    pub partner: usize,
}

/// What matching one bucket produced besides its lines.
#[derive(Debug, Default)]
pub struct Matched {
    /// Its counts.
    pub counts: Counts,
    /// The first differing columns (at most [`SAMPLE`]).
    pub mismatch_sample: Vec<Value>,
}

/// No row.
const NONE: u32 = u32::MAX;

/// A key of the bucket: its first row and row count on each side.
#[derive(Debug, Clone, Copy)]
struct Entry {
    bo: u32,
    bo_count: u32,
    partner: u32,
    partner_count: u32,
}

/// The keys of one bucket, from both sides: open addressing, each slot the high half of the
/// key's hash beside its entry number, so a probe reads a row only when the hashes agree.
struct Keys {
    slots: Vec<u64>,
    mask: usize,
    entries: Vec<Entry>,
}

impl Keys {
    /// Slots for the keys of `bo` and `partner` rows: twice the larger side, a power of two.
    fn slots(bo: usize, partner: usize) -> usize {
        (bo.max(partner) * 2).next_power_of_two().max(16)
    }

    /// Room for the keys of `bo` and `partner` rows, taken at once: a table that grew while
    /// it filled would, for a moment, need its old size and its new one.
    fn new(bo: usize, partner: usize) -> Keys {
        let capacity = Keys::slots(bo, partner);
        Keys {
            slots: vec![0; capacity],
            mask: capacity - 1,
            entries: Vec::with_capacity(bo + partner),
        }
    }

    /// The entry of `row`'s key, created if new; `row` (number `n` of its side) counted in it.
    fn add(
        &mut self,
        row: &Row<'_>,
        n: u32,
        bo_side: bool,
        bo: &Rows<'_>,
        partner: &Rows<'_>,
    ) -> u32 {
        let tag = row.hash >> 32;
        let mut slot = row.hash as usize & self.mask;
        let entry = loop {
            let held = self.slots[slot];
            if held == 0 {
                let entry = self.entries.len() as u32;
                self.slots[slot] = (tag << 32) | u64::from(entry + 1);
                self.entries.push(Entry {
                    bo: NONE,
                    bo_count: 0,
                    partner: NONE,
                    partner_count: 0,
                });
                break entry;
            }
            if held >> 32 == tag {
                let entry = (held as u32).wrapping_sub(1);
                let e = self.entries[entry as usize];
                let known = if e.partner != NONE {
                    partner.get(e.partner as usize)
                } else {
                    bo.get(e.bo as usize)
                };
                if known.key == row.key {
                    break entry;
                }
            }
            slot = (slot + 1) & self.mask;
        };
        let e = &mut self.entries[entry as usize];
        let (first, count) = if bo_side {
            (&mut e.bo, &mut e.bo_count)
        } else {
            (&mut e.partner, &mut e.partner_count)
        };
        if *first == NONE {
            *first = n;
        }
        *count += 1;
        entry
    }
}

/// For the keys present more than once on a side: their rows in file order, as
/// `entry << 32 | row` sorted, 8 bytes a row (a map of vectors took some 60).
struct Groups(Vec<u64>);

impl Groups {
    fn of(of_row: &[u32], count: impl Fn(u32) -> u32) -> Groups {
        let mut rows: Vec<u64> = of_row
            .iter()
            .enumerate()
            .filter(|(_, entry)| count(**entry) > 1)
            .map(|(row, entry)| (u64::from(*entry) << 32) | row as u64)
            .collect();
        rows.sort_unstable();
        Groups(rows)
    }

    /// The rows of `entry`'s key, in file order (none when it is not duplicated).
    fn get(&self, entry: u32) -> impl Iterator<Item = u32> + '_ {
        let first = self.0.partition_point(|r| (r >> 32) < u64::from(entry));
        self.0[first..]
            .iter()
            .take_while(move |r| (*r >> 32) == u64::from(entry))
            .map(|r| *r as u32)
    }
}

/// Bytes matching `bo` and `partner` rows takes beyond the rows themselves and the result
/// files' buffers: the rows' starts, the key table, each row's key entry, the duplicates'
/// groups. An upper bound (every row a key of its own, every row duplicated).
pub fn cost(bo: u64, partner: u64) -> u64 {
    let rows = bo + partner;
    let slots = Keys::slots(bo as usize, partner as usize) as u64;
    // starts 8, entries 16, entry per row 4, groups 8 (sorting needs no more).
    slots * 8 + rows * (8 + 16 + 4 + 8)
}

/// Matches the back-office rows `bo` with the partner rows `partner` (the same bucket) and
/// writes the five result files of the share into `dir`, named `<file>.<share>.csv`.
pub fn match_bucket(
    bo: &Rows<'_>,
    partner: &Rows<'_>,
    columns: &[Column],
    comparator: &Comparator,
    dir: &Path,
    share: usize,
    buffer: usize,
) -> std::io::Result<Matched> {
    let mut out = Vec::with_capacity(5);
    for (name, _) in &FILES[..5] {
        out.push(Output::create(
            &dir.join(format!("{name}.{share}.csv")),
            buffer,
        )?);
    }
    let [matches, mismatches, bo_only, partner_only, duplicates] = &mut out[..] else {
        return Err(std::io::Error::other("five outputs"));
    };
    let mut keys = Keys::new(bo.len(), partner.len());
    let partner_entry: Vec<u32> = (0..partner.len())
        .map(|j| keys.add(&partner.get(j), j as u32, false, bo, partner))
        .collect();
    let bo_entry: Vec<u32> = (0..bo.len())
        .map(|i| keys.add(&bo.get(i), i as u32, true, bo, partner))
        .collect();
    let entries = &keys.entries;
    let bo_groups = Groups::of(&bo_entry, |e| entries[e as usize].bo_count);
    let partner_groups = Groups::of(&partner_entry, |e| entries[e as usize].partner_count);
    let mut result = Matched::default();
    let counts = &mut result.counts;

    let write_duplicates = |out: &mut Output,
                            side: &str,
                            rows: &Rows<'_>,
                            group: &mut dyn Iterator<Item = u32>,
                            key: &[u8]| {
        for i in group {
            Line::new(&mut out.buf)
                .field(side.as_bytes())
                .key(key)
                .number(rows.get(i as usize).line)
                .end();
        }
    };

    for (i, entry) in bo_entry.iter().enumerate() {
        let e = entries[*entry as usize];
        let row = bo.get(i);
        let bo_duplicate = e.bo_count > 1;
        let partner_duplicate = e.partner_count > 1;
        if bo_duplicate || partner_duplicate {
            // Reported once, at the key's first back-office row; never matched.
            if e.bo as usize == i {
                counts.duplicate_bo_keys += u64::from(bo_duplicate);
                counts.duplicate_partner_keys += u64::from(partner_duplicate);
                let own = (!bo_duplicate).then_some(i as u32);
                let mut group = bo_groups.get(*entry).chain(own);
                write_duplicates(duplicates, "back-office", bo, &mut group, row.key);
                let own = (!partner_duplicate && e.partner != NONE).then_some(e.partner);
                let mut group = partner_groups.get(*entry).chain(own);
                write_duplicates(duplicates, "partner", partner, &mut group, row.key);
                duplicates.commit()?;
            }
            continue;
        }
        if e.partner == NONE {
            counts.total_bo_only += 1;
            whole_row(&mut bo_only.buf, &row);
            bo_only.commit()?;
            continue;
        }
        let other = partner.get(e.partner as usize);
        let mut differs = false;
        for column in columns {
            let (a, b) = (row.field(column.bo), other.field(column.partner));
            if comparator.equal_bytes(a, b) {
                continue;
            }
            differs = true;
            Line::new(&mut mismatches.buf)
                .key(row.key)
                .field(column.name.as_bytes())
                .field(a)
                .field(b)
                .number(row.line)
                .number(other.line)
                .end();
            if result.mismatch_sample.len() < SAMPLE {
                result.mismatch_sample.push(json!({
                    "key": shown_key(row.key),
                    "column": column.name,
                    "boValue": row.text(column.bo),
                    "partnerValue": other.text(column.partner),
                    "boLine": row.line,
                    "partnerLine": other.line,
                }));
            }
        }
        if differs {
            counts.total_mismatches += 1;
            mismatches.commit()?;
        } else {
            counts.total_matches += 1;
            Line::new(&mut matches.buf)
                .key(row.key)
                .number(row.line)
                .number(other.line)
                .end();
            matches.commit()?;
        }
    }
    for (j, entry) in partner_entry.iter().enumerate() {
        let e = entries[*entry as usize];
        if e.bo != NONE {
            continue;
        }
        let row = partner.get(j);
        if e.partner_count > 1 {
            if e.partner as usize == j {
                counts.duplicate_partner_keys += 1;
                write_duplicates(
                    duplicates,
                    "partner",
                    partner,
                    &mut partner_groups.get(*entry),
                    row.key,
                );
                duplicates.commit()?;
            }
            continue;
        }
        counts.total_partner_only += 1;
        whole_row(&mut partner_only.buf, &row);
        partner_only.commit()?;
    }
    for output in out {
        output.finish()?;
    }
    Ok(result)
}

/// `line` then the row's own fields (`bo_only.csv`, `partner_only.csv`).
fn whole_row(buf: &mut Vec<u8>, row: &Row<'_>) {
    let mut line = Line::new(buf).number(row.line);
    for field in row.fields() {
        line = line.field(field);
    }
    line.end();
}

/// A key as people read it: the columns of a composite key joined with ` | `.
pub fn shown_key(key: &[u8]) -> String {
    String::from_utf8_lossy(key).replace('\u{1f}', " | ")
}

/// The header row of result file `index` of [`output::FILES`], with the input's own columns
/// for the one-sided files.
pub fn header(index: usize, bo_headers: &[String], partner_headers: &[String]) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut line = Line::new(&mut buf);
    for name in FILES[index].1.split(',') {
        line = line.field(name.as_bytes());
    }
    let own = match index {
        output::BO_ONLY => bo_headers,
        output::PARTNER_ONLY => partner_headers,
        _ => &[],
    };
    for name in own {
        line = line.field(name.as_bytes());
    }
    line.end();
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processors::reconcile::rows::{hash_key, push_row};

    fn rows(list: &[(u64, &str, &[&str])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (line, key, fields) in list {
            let mut ends = Vec::new();
            let mut end = 0;
            for f in *fields {
                end += f.len() as u32;
                ends.push(end);
            }
            push_row(
                &mut out,
                *line,
                hash_key(key.as_bytes()),
                key.as_bytes(),
                &ends,
                fields.concat().as_bytes(),
            );
        }
        out
    }

    #[test]
    fn every_outcome_once() {
        let bo = rows(&[
            (2, "m", &["m", "1"]),
            (3, "x", &["x", "1"]),
            (4, "d", &["d", "1"]),
            (5, "b", &["b", "1"]),
            (6, "d", &["d", "2"]),
            (7, "q", &["q", "1"]),
        ]);
        let partner = rows(&[
            (2, "p", &["p", "1"]),
            (3, "x", &["x", "2,5"]),
            (4, "m", &["m", "1.0"]),
            (5, "d", &["d", "1"]),
            (6, "q", &["q", "1"]),
            (7, "q", &["q", "1"]),
            (8, "r", &["r", "1"]),
            (9, "r", &["r", "1"]),
        ]);
        let (bo, partner) = (vec![bo], vec![partner]);
        let (bo, partner) = (
            Rows::parse(&bo, 6).unwrap(),
            Rows::parse(&partner, 8).unwrap(),
        );
        let dir = tempfile::tempdir().unwrap();
        let comparator = Comparator {
            trim: true,
            ignore_case: false,
            tolerance: None,
            date_formats: Vec::new(),
        };
        let columns = [Column {
            name: "v".into(),
            bo: 1,
            partner: 1,
        }];
        let matched =
            match_bucket(&bo, &partner, &columns, &comparator, dir.path(), 3, 1024).unwrap();
        let c = matched.counts;
        assert_eq!(
            (
                c.total_matches,
                c.total_mismatches,
                c.total_bo_only,
                c.total_partner_only
            ),
            (1, 1, 1, 1)
        );
        assert_eq!((c.duplicate_bo_keys, c.duplicate_partner_keys), (1, 2));
        let file =
            |name: &str| std::fs::read_to_string(dir.path().join(format!("{name}.3.csv"))).unwrap();
        assert_eq!(file("matches"), "m,2,4\n");
        assert_eq!(file("mismatches"), "x,v,1,\"2,5\",3,3\n");
        assert_eq!(file("bo_only"), "5,b,1\n");
        assert_eq!(file("partner_only"), "2,p,1\n");
        assert_eq!(
            file("duplicates"),
            "back-office,d,4\nback-office,d,6\npartner,d,5\nback-office,q,7\npartner,q,6\npartner,q,7\npartner,r,8\npartner,r,9\n"
        );
        assert_eq!(matched.mismatch_sample.len(), 1);
        assert_eq!(matched.mismatch_sample[0]["partnerValue"], "2,5");
    }
}
