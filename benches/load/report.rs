//! Results: one JSON object per run (printed as one line), a table row per run, and the median
//! of repeated runs.

use serde_json::{Map, Value};

use crate::stats::median;

/// One run's figures, by name.
pub type Fields = Map<String, Value>;

/// How a column is printed.
#[derive(Clone, Copy)]
pub enum Fmt {
    /// Thousands-separated integer.
    Int,
    /// Fixed decimals.
    Dec(usize),
    /// As is (strings, booleans).
    Raw,
}

/// (header, field name, format).
pub type Column = (&'static str, &'static str, Fmt);

pub const FANOUT: &[Column] = &[
    ("run", "run", Fmt::Raw),
    ("delivered/s", "delivered_per_s", Fmt::Int),
    ("published/s", "published_per_s", Fmt::Int),
    ("p50 ms", "latency_p50_ms", Fmt::Dec(2)),
    ("p99 ms", "latency_p99_ms", Fmt::Dec(2)),
    ("p99.9 ms", "latency_p999_ms", Fmt::Dec(2)),
    ("max ms", "latency_max_ms", Fmt::Dec(1)),
    ("lost", "lost", Fmt::Int),
    ("dup", "duplicates", Fmt::Int),
    ("ooo", "out_of_order", Fmt::Int),
    ("broker CPU s/M", "broker_cpu_s_per_million", Fmt::Dec(2)),
    ("RSS MiB before", "broker_rss_mib_before", Fmt::Dec(1)),
    ("after", "broker_rss_mib_after", Fmt::Dec(1)),
    ("peak", "broker_peak_rss_mib", Fmt::Dec(1)),
    ("tool CPU s", "client_cpu_s", Fmt::Dec(1)),
    ("secs", "elapsed_s", Fmt::Dec(1)),
    ("ok", "ok", Fmt::Raw),
];

pub const QUEUE: &[Column] = &[
    ("run", "run", Fmt::Raw),
    ("msgs/s", "delivered_per_s", Fmt::Int),
    ("p50 ms", "latency_p50_ms", Fmt::Dec(2)),
    ("p99 ms", "latency_p99_ms", Fmt::Dec(2)),
    ("p99.9 ms", "latency_p999_ms", Fmt::Dec(2)),
    ("lost", "lost", Fmt::Int),
    ("dup", "duplicates", Fmt::Int),
    ("broker CPU s/M", "broker_cpu_s_per_million", Fmt::Dec(2)),
    ("RSS MiB before", "broker_rss_mib_before", Fmt::Dec(1)),
    ("after", "broker_rss_mib_after", Fmt::Dec(1)),
    ("tool CPU s", "client_cpu_s", Fmt::Dec(1)),
    ("secs", "elapsed_s", Fmt::Dec(1)),
    ("ok", "ok", Fmt::Raw),
];

pub const CONNECTIONS: &[Column] = &[
    ("run", "run", Fmt::Raw),
    ("sessions", "sessions", Fmt::Int),
    ("sessions/s", "sessions_per_s", Fmt::Int),
    ("KiB/session", "broker_kib_per_session", Fmt::Dec(1)),
    ("RSS MiB before", "broker_rss_mib_before", Fmt::Dec(1)),
    ("after", "broker_rss_mib_after", Fmt::Dec(1)),
    ("failed", "failed", Fmt::Int),
    ("received", "received", Fmt::Int),
    ("lost", "lost", Fmt::Int),
    ("ok", "ok", Fmt::Raw),
];

pub const FLOW: &[Column] = &[
    ("run", "run", Fmt::Raw),
    ("delivered/s", "delivered_per_s", Fmt::Int),
    ("p99 ms", "latency_p99_ms", Fmt::Dec(2)),
    ("lost", "lost", Fmt::Int),
    ("stall s", "longest_stall_s", Fmt::Dec(1)),
    ("stuck got", "stuck_received", Fmt::Int),
    ("stuck cut off", "stuck_cut_off", Fmt::Raw),
    ("cut off after s", "stuck_cut_off_after_s", Fmt::Dec(1)),
    ("secs", "elapsed_s", Fmt::Dec(1)),
    ("ok", "ok", Fmt::Raw),
];

pub const JOBS: &[Column] = &[
    ("part", "part", Fmt::Raw),
    ("run", "run", Fmt::Raw),
    ("jobs", "jobs", Fmt::Int),
    ("per s", "per_s", Fmt::Int),
    ("CPU s/100k", "broker_cpu_s_per_100k", Fmt::Dec(2)),
    ("CPU us/job", "broker_cpu_us_per_job", Fmt::Dec(1)),
    ("MiB/100k waiting", "rss_mib_per_100k_waiting", Fmt::Dec(1)),
    ("p50 ms", "latency_p50_ms", Fmt::Dec(2)),
    ("p99 ms", "latency_p99_ms", Fmt::Dec(2)),
    ("p99.9 ms", "latency_p999_ms", Fmt::Dec(2)),
    ("RSS MiB after", "broker_rss_mib_after", Fmt::Dec(1)),
    ("load", "load_1m", Fmt::Dec(2)),
    ("secs", "elapsed_s", Fmt::Dec(1)),
    ("ok", "ok", Fmt::Raw),
];

fn render(value: Option<&Value>, fmt: Fmt) -> String {
    match (value, fmt) {
        (None | Some(Value::Null), _) => "-".into(),
        (Some(Value::Number(n)), Fmt::Int) => thousands(n.as_f64().unwrap_or(0.0).round() as i64),
        (Some(Value::Number(n)), Fmt::Dec(d)) => format!("{:.*}", d, n.as_f64().unwrap_or(0.0)),
        (Some(Value::String(s)), _) => s.clone(),
        (Some(other), _) => other.to_string(),
    }
}

/// 1234567 as "1,234,567".
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// Prints rows under a header.
pub fn table(columns: &[Column], rows: &[Fields]) {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|(_, key, fmt)| render(row.get(*key), *fmt))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (h, _, _))| {
            cells
                .iter()
                .map(|r| r[i].len())
                .chain([h.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |items: Vec<String>| {
        let parts: Vec<String> = items
            .iter()
            .zip(&widths)
            .map(|(s, w)| format!("{s:>w$}"))
            .collect();
        println!("| {} |", parts.join(" | "));
    };
    line(columns.iter().map(|(h, _, _)| (*h).to_owned()).collect());
    println!(
        "|{}|",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("|")
    );
    for row in cells {
        line(row);
    }
}

/// The median of each numeric field across runs; other fields from the first run; `ok` only
/// when every run was ok.
pub fn median_of(runs: &[Fields]) -> Fields {
    let mut out = Fields::new();
    let Some(first) = runs.first() else {
        return out;
    };
    for (key, value) in first {
        let merged = match value {
            Value::Number(_) => {
                let mut values: Vec<f64> = runs
                    .iter()
                    .filter_map(|r| r.get(key).and_then(Value::as_f64))
                    .collect();
                median(&mut values)
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Value::Null, Value::Number)
            }
            Value::Bool(_) => Value::Bool(
                runs.iter()
                    .all(|r| r.get(key).and_then(Value::as_bool).unwrap_or(false)),
            ),
            other => other.clone(),
        };
        out.insert(key.clone(), merged);
    }
    out.insert("run".into(), Value::String("median".into()));
    out.insert("runs".into(), Value::from(runs.len()));
    out
}
