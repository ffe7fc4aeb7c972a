//! Destination keys as NATS subjects: a safe, reversible encoding, and the broker's wildcards
//! as NATS wildcards.
//!
//! A key (`/topic/prices/eur`, `/user/bob/queue/progress`) is split on `/`; each segment is one
//! subject token. NATS tokens are separated by `.` and may not hold whitespace, `*` or `>`
//! alone, so a segment keeps `A-Z a-z 0-9 -` as they are and writes every other byte as `~XX`
//! (upper-case hex); an empty segment is the token `~`. Every subject ends with the token `_`
//! (which the encoding never produces, `_` being escaped): a pattern's `**` matches zero or
//! more segments, and as NATS's `>` matches one or more tokens, `prefix.>` then covers the
//! prefix itself through its `prefix._`. A `**` inside a pattern (`/topic/**/end`) has no NATS
//! form: its subscription takes everything under the prefix and the broker's own pattern
//! match picks (over-subscribing is safe, missing is not).

/// The first token of every subject stompede publishes.
pub const ROOT: &str = "stompede";

/// The last token of every subject: the end of the key.
const END: &str = "_";

/// Longest subject sent: NATS refuses a protocol line longer than its `max_control_line`
/// (4 KiB by default), and the line also holds the command and the size.
pub const MAX_SUBJECT_LEN: usize = 3_584;

/// The subject a message routed under `key` is published on; `None` when its encoding is
/// longer than [`MAX_SUBJECT_LEN`] (a destination of 1 KiB made of escaped bytes).
pub fn subject_for(key: &str) -> Option<String> {
    let mut subject = String::with_capacity(ROOT.len() + key.len() + 8);
    subject.push_str(ROOT);
    for segment in segments(key) {
        subject.push('.');
        encode_token(segment, &mut subject);
    }
    subject.push('.');
    subject.push_str(END);
    (subject.len() <= MAX_SUBJECT_LEN).then_some(subject)
}

/// The subject filter a node subscribes to for the key or pattern `key`: every subject of a
/// key that `key` matches is matched by it (and, for a `**` inside a pattern, more).
pub fn filter_for(key: &str) -> Option<String> {
    let mut filter = String::with_capacity(ROOT.len() + key.len() + 8);
    filter.push_str(ROOT);
    for segment in segments(key) {
        filter.push('.');
        match segment {
            "*" => filter.push('*'),
            "**" => {
                filter.push('>');
                return (filter.len() <= MAX_SUBJECT_LEN).then_some(filter);
            }
            literal => encode_token(literal, &mut filter),
        }
    }
    filter.push('.');
    filter.push_str(END);
    (filter.len() <= MAX_SUBJECT_LEN).then_some(filter)
}

/// The key a subject was made from: the encoding's inverse (`None` for a subject that is not
/// one of ours).
pub fn key_of(subject: &str) -> Option<String> {
    let rest = subject.strip_prefix(ROOT)?.strip_prefix('.')?;
    let body = rest.strip_suffix(END)?.strip_suffix('.')?;
    let mut key = String::with_capacity(body.len());
    for token in body.split('.') {
        key.push('/');
        decode_token(token, &mut key)?;
    }
    Some(key)
}

/// The segments of a key: every key starts with `/`, which opens no segment.
fn segments(key: &str) -> std::str::Split<'_, char> {
    key.strip_prefix('/').unwrap_or(key).split('/')
}

fn encode_token(segment: &str, out: &mut String) {
    if segment.is_empty() {
        out.push('~');
        return;
    }
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' {
            out.push(char::from(byte));
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('~');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
}

fn decode_token(token: &str, out: &mut String) -> Option<()> {
    if token == "~" {
        return Some(());
    }
    let bytes = token.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'~' {
            let hex = token.get(i + 1..i + 3)?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    out.push_str(std::str::from_utf8(&decoded).ok()?);
    Some(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::broker::destination::Pattern;

    /// NATS's own matching of a literal subject against a filter.
    fn nats_matches(filter: &str, subject: &str) -> bool {
        let f: Vec<&str> = filter.split('.').collect();
        let s: Vec<&str> = subject.split('.').collect();
        for (i, token) in f.iter().enumerate() {
            match *token {
                ">" => return s.len() > i,
                "*" if i < s.len() => {}
                literal if i < s.len() && s[i] == literal => {}
                _ => return false,
            }
        }
        f.len() == s.len()
    }

    #[test]
    fn keys_round_trip_through_subjects() {
        for key in [
            "/topic/a",
            "/topic/prices.eur",
            "/topic/a b/c*d/>/relevé",
            "/topic/a//b/",
            "/topic/~_~41",
            "/user/bob@example.com/queue/progress",
            "/user/ann/queue/x",
        ] {
            let subject = subject_for(key).unwrap();
            assert!(
                subject
                    .split('.')
                    .all(|t| !t.is_empty() && t != "*" && t != ">" && !t.contains(' ')),
                "{subject}"
            );
            assert_eq!(key_of(&subject).as_deref(), Some(key), "{subject}");
        }
        assert_eq!(subject_for("/topic/a.b").unwrap(), "stompede.topic.a~2Eb._");
    }

    #[test]
    fn distinct_keys_have_distinct_subjects() {
        let keys = [
            "/topic/a/b",
            "/topic/a.b",
            "/topic/a~2Eb",
            "/topic/a_b",
            "/topic/a/b/",
        ];
        let subjects: std::collections::HashSet<_> =
            keys.iter().map(|k| subject_for(k).unwrap()).collect();
        assert_eq!(subjects.len(), keys.len());
    }

    #[test]
    fn filters_cover_every_key_their_pattern_matches() {
        let patterns = [
            "/topic/a",
            "/topic/a/*",
            "/topic/*/b",
            "/topic/a/**",
            "/topic/**",
            "/topic/**/end",
            "/topic/a/*/**",
        ];
        let keys = [
            "/topic/a",
            "/topic/a/b",
            "/topic/x/b",
            "/topic/a/b/c",
            "/topic/end",
            "/topic/a/end",
            "/topic/a.b",
            "/topic/ab",
            "/user/bob/queue/a",
        ];
        for pattern in patterns {
            let filter = filter_for(pattern).unwrap();
            for key in keys {
                let broker = match Pattern::compile(pattern) {
                    Some(p) => p.matches(key),
                    None => pattern == key,
                };
                let nats = nats_matches(&filter, &subject_for(key).unwrap());
                // Whatever the broker matches, NATS routes (it may route more for `**` inside
                // a pattern; the broker then filters).
                assert!(!broker || nats, "{pattern} ({filter}) must route {key}");
                if !pattern.contains("**/") {
                    assert_eq!(broker, nats, "{pattern} ({filter}) vs {key}");
                }
            }
        }
    }

    #[test]
    fn too_long_subjects_are_refused() {
        let key = format!("/topic/{}", ".".repeat(1_200));
        assert!(subject_for(&key).is_none());
        assert!(subject_for(&format!("/topic/{}", "a".repeat(1_000))).is_some());
    }
}
