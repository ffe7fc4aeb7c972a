//! SockJS framing, as pure functions: the frames a server sends (`o`, `h`, `a[...]`,
//! `c[code,"reason"]`), how each transport wraps a frame, and the JSON payloads a client sends.
//!
//! Strings are quoted as JSON with more escapes than JSON needs: the code points that some
//! browsers and proxies mangle (the SockJS protocol's `escapable_by_server` set, as
//! sockjs-node's `utils.quote` escapes them) travel as `\uXXXX`.

use bytes::{BufMut, Bytes, BytesMut};

/// The open frame, first on every new session.
pub const OPEN: &str = "o";
/// The heart-beat frame.
pub const HEARTBEAT: &str = "h";

/// A close frame: `c[code,"reason"]`.
pub fn close(code: u16, reason: &str) -> String {
    let mut frame = format!("c[{code},");
    quote_into(&mut frame, reason);
    frame.push(']');
    frame
}

/// The close frame a second receiving request gets while one is open.
pub fn another_connection() -> String {
    close(2010, "Another connection still open")
}

/// An array frame, `a[...]`, of `messages` (each already quoted, see [`quote_message`]).
pub fn messages(messages: &[Bytes], size_hint: usize) -> String {
    let mut frame = BytesMut::new();
    messages_between(&mut frame, "", messages, size_hint, "");
    text(frame)
}

/// Appends `before`, an array frame of `messages` (each already quoted), then `after`.
fn messages_between(
    out: &mut BytesMut,
    before: &str,
    messages: &[Bytes],
    size_hint: usize,
    after: &str,
) {
    out.reserve(before.len() + size_hint + 3 * messages.len() + 2 + after.len());
    out.extend_from_slice(before.as_bytes());
    out.extend_from_slice(b"a[");
    for (i, message) in messages.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b",");
        }
        out.extend_from_slice(b"\"");
        out.extend_from_slice(message);
        out.extend_from_slice(b"\"");
    }
    out.extend_from_slice(b"]");
    out.extend_from_slice(after.as_bytes());
}

/// Frame text built from quoted messages, which are UTF-8 by construction (a lossy
/// conversion only guards that).
fn text(frame: BytesMut) -> String {
    match String::from_utf8(frame.into()) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// True for the code points SockJS servers escape besides JSON's own (sockjs-node's
/// `escapable`, less the surrogates a Rust string cannot hold).
fn escapable(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{200c}'..='\u{200f}'
        | '\u{2028}'..='\u{202f}'
        | '\u{2060}'..='\u{206f}'
        | '\u{fff0}'..='\u{ffff}')
}

/// What quoting does with each byte: [`PLAIN`] copies it, [`LEAD`] (the lead byte of a
/// three-byte sequence in U+2000–U+2FFF or U+F000–U+FFFF, where the [`escapable`] code points
/// above ASCII lie) needs the character decoded, [`HEX`] writes `\u00XX`, and any other value is
/// the letter after a backslash (`\n`, `\"`, ...). A table, so that plain text (a STOMP frame's
/// headers and most bodies) is quoted at the speed of a byte scan, and an escape costs a table
/// look-up rather than a character decode and a formatted write.
const ESCAPES: [u8; 256] = {
    let mut table = [PLAIN; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = HEX;
        b += 1;
    }
    table[b'\n' as usize] = b'n';
    table[b'\r' as usize] = b'r';
    table[b'\t' as usize] = b't';
    table[0x08] = b'b';
    table[0x0c] = b'f';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table[0xe2] = LEAD;
    table[0xef] = LEAD;
    table
};
const PLAIN: u8 = 0;
const LEAD: u8 = 1;
const HEX: u8 = 2;

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Where quoted text goes: a `String` (frames built as text) or a `BytesMut` (messages built
/// as bytes). Quoting writes whole UTF-8 sequences and ASCII escapes only.
pub trait QuoteOut {
    /// Room for `additional` more bytes.
    fn reserve_bytes(&mut self, additional: usize);
    /// Appends `text`.
    fn push_text(&mut self, text: &str);
    /// Appends one ASCII byte.
    fn push_ascii(&mut self, byte: u8);
}

impl QuoteOut for String {
    fn reserve_bytes(&mut self, additional: usize) {
        self.reserve(additional);
    }
    fn push_text(&mut self, text: &str) {
        self.push_str(text);
    }
    fn push_ascii(&mut self, byte: u8) {
        self.push(char::from(byte));
    }
}

impl QuoteOut for BytesMut {
    fn reserve_bytes(&mut self, additional: usize) {
        self.reserve(additional);
    }
    fn push_text(&mut self, text: &str) {
        self.extend_from_slice(text.as_bytes());
    }
    fn push_ascii(&mut self, byte: u8) {
        self.put_u8(byte);
    }
}

/// `\uXXXX` for code point `c` (at most U+FFFF: the escapable set lies below it).
fn push_unicode_escape(out: &mut impl QuoteOut, c: u32) {
    out.push_text("\\u");
    for shift in [12, 8, 4, 0] {
        out.push_ascii(HEX_DIGITS[((c >> shift) & 0xf) as usize]);
    }
}

/// Appends `text` as a JSON string, `"` included.
pub fn quote_into(out: &mut impl QuoteOut, text: &str) {
    out.reserve_bytes(text.len() + 2);
    out.push_ascii(b'"');
    quote_inside(out, text);
    out.push_ascii(b'"');
}

/// Appends `text` as the inside of a JSON string (without the quotes). Quoting is
/// piecewise: text cut anywhere between two characters quotes, piece by piece, to the
/// quoting of the whole, which is what lets a message's shared tail be quoted once for all
/// its recipients and each recipient's head on its own.
pub fn quote_inside(out: &mut impl QuoteOut, text: &str) {
    out.reserve_bytes(text.len());
    let bytes = text.as_bytes();
    let mut plain = 0;
    let mut at = 0;
    while let Some(offset) = bytes[at..]
        .iter()
        .position(|b| ESCAPES[*b as usize] != PLAIN)
    {
        at += offset;
        let action = ESCAPES[bytes[at] as usize];
        if action == LEAD {
            // A character's start: only some three-byte characters are escaped.
            let Some(c) = text[at..].chars().next() else {
                break;
            };
            if !escapable(c) {
                at += c.len_utf8();
                continue;
            }
            out.push_text(&text[plain..at]);
            push_unicode_escape(out, c as u32);
            at += c.len_utf8();
        } else {
            out.push_text(&text[plain..at]);
            if action == HEX {
                push_unicode_escape(out, u32::from(bytes[at]));
            } else {
                out.push_ascii(b'\\');
                out.push_ascii(action);
            }
            at += 1;
        }
        plain = at;
    }
    out.push_text(&text[plain..]);
}

/// Appends `raw` (a STOMP frame, or a piece of one) as the inside of a JSON string, as one
/// SockJS message carries it. SockJS carries text: bytes that are not UTF-8 are replaced
/// (U+FFFD), as a lossy conversion replaces them. Piecewise like [`quote_inside`], for
/// pieces cut after an ASCII byte (a header's end of line): an invalid sequence never spans
/// such a cut.
pub fn quote_raw_inside(out: &mut impl QuoteOut, raw: &[u8]) {
    match std::str::from_utf8(raw) {
        Ok(text) => quote_inside(out, text),
        Err(_) => quote_inside(out, &String::from_utf8_lossy(raw)),
    }
}

/// One SockJS message: `raw` quoted as the inside of a JSON string, as the session queues its
/// messages (see [`quote_raw_inside`]).
pub fn quote_message(raw: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(raw.len() + raw.len() / 8 + 8);
    quote_raw_inside(&mut out, raw);
    out.freeze()
}

/// `text` as a JSON string.
#[cfg(test)]
pub fn quote(text: &str) -> String {
    let mut out = String::new();
    quote_into(&mut out, text);
    out
}

/// How a transport carries a frame in its response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wrapping {
    /// `xhr` and `xhr_streaming`: the frame and a newline.
    Line,
    /// `eventsource`: one `data:` event.
    EventSource,
    /// `htmlfile`: a script calling `p(frame)` in the page.
    HtmlFile,
    /// `jsonp`: a call of the callback, `/**/callback("frame");`.
    Jsonp(String),
}

impl Wrapping {
    /// An array frame of `messages` (each already quoted) as this transport writes it, in one
    /// buffer where the transport only adds before and after the frame (XHR; EventSource,
    /// unless a message holds a `%`, which it must escape): that is what carries nearly every
    /// message.
    pub fn messages(&self, messages: &[Bytes], size_hint: usize) -> Bytes {
        let mut out = BytesMut::new();
        match self {
            Wrapping::Line => messages_between(&mut out, "", messages, size_hint, "\n"),
            Wrapping::EventSource
                if !messages.iter().any(|m| memchr::memchr(b'%', m).is_some()) =>
            {
                messages_between(&mut out, "data: ", messages, size_hint, "\r\n\r\n");
            }
            _ => {
                messages_between(&mut out, "", messages, size_hint, "");
                return Bytes::from(self.wrap(&text(out)));
            }
        }
        out.freeze()
    }

    /// `frame` as this transport writes it.
    pub fn wrap(&self, frame: &str) -> String {
        match self {
            Wrapping::Line => {
                let mut out = String::with_capacity(frame.len() + 1);
                out.push_str(frame);
                out.push('\n');
                out
            }
            Wrapping::EventSource => {
                // A frame is JSON text, so it holds no raw CR, LF or NUL; escaped anyway as
                // sockjs-node does, since any of them would end or break the event.
                let mut out = String::with_capacity(frame.len() + 10);
                out.push_str("data: ");
                if !frame.bytes().any(|b| matches!(b, b'%' | b'\r' | b'\n' | 0)) {
                    out.push_str(frame);
                    out.push_str("\r\n\r\n");
                    return out;
                }
                for c in frame.chars() {
                    match c {
                        '%' => out.push_str("%25"),
                        '\r' => out.push_str("%0D"),
                        '\n' => out.push_str("%0A"),
                        '\0' => out.push_str("%00"),
                        c => out.push(c),
                    }
                }
                out.push_str("\r\n\r\n");
                out
            }
            Wrapping::HtmlFile => {
                let mut out = String::with_capacity(frame.len() + 32);
                out.push_str("<script>\np(");
                let start = out.len();
                quote_into(&mut out, frame);
                // The HTML parser sees the script's text before JavaScript does: a message
                // holding `</script>` would end the script and start the page's own. `<`, `>`
                // and `&` are written as JavaScript escapes, which mean the same characters
                // inside the string literal and nothing to HTML.
                if out[start..]
                    .bytes()
                    .any(|b| matches!(b, b'<' | b'>' | b'&'))
                {
                    let quoted = out.split_off(start);
                    for c in quoted.chars() {
                        match c {
                            '<' => out.push_str("\\u003c"),
                            '>' => out.push_str("\\u003e"),
                            '&' => out.push_str("\\u0026"),
                            c => out.push(c),
                        }
                    }
                }
                out.push_str(");\n</script>\r\n");
                out
            }
            Wrapping::Jsonp(callback) => {
                let mut out = String::with_capacity(frame.len() + callback.len() + 16);
                out.push_str("/**/");
                out.push_str(callback);
                out.push('(');
                quote_into(&mut out, frame);
                out.push_str(");\r\n");
                out
            }
        }
    }
}

/// What is wrong with a payload a client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// No payload, or not an array.
    #[error("Payload expected.")]
    Expected,
    /// Not JSON.
    #[error("Broken JSON encoding.")]
    BrokenJson,
    /// A message larger than the limit.
    #[error("Message too large.")]
    TooLarge,
}

/// The messages of an `xhr_send` or `jsonp_send` body: a JSON array of strings. Other values
/// in the array are taken as their JSON text (sockjs-node hands them to the application as
/// they are; a string-only application sees what was sent). Each message is at most
/// `max_message` bytes: the body may hold many (sockjs-client joins every message queued
/// while a send was in flight into one request), but none larger than one may be.
pub fn parse_array(body: &[u8], max_message: usize) -> Result<Vec<String>, PayloadError> {
    if body.is_empty() {
        return Err(PayloadError::Expected);
    }
    let items = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Array(items)) => items,
        Ok(_) => return Err(PayloadError::Expected),
        Err(_) => return Err(PayloadError::BrokenJson),
    };
    let messages: Vec<String> = items.into_iter().map(into_message).collect();
    if messages.iter().any(|message| message.len() > max_message) {
        return Err(PayloadError::TooLarge);
    }
    Ok(messages)
}

/// The messages of one WebSocket message of the framed `websocket` transport: an array of
/// strings, or one string (sockjs-node takes both); empty means none.
pub fn parse_websocket(text: &str) -> Result<Vec<String>, PayloadError> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Array(items)) => Ok(items.into_iter().map(into_message).collect()),
        Ok(value) => Ok(vec![into_message(value)]),
        Err(_) => Err(PayloadError::BrokenJson),
    }
}

fn into_message(value: serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text,
        other => other.to_string(),
    }
}

/// A JSONP or htmlfile callback name: `[a-zA-Z0-9_.-]` (sockjs-node's set), at most 32
/// characters, so that the name the page is told to call can never be script of its own.
pub fn valid_callback(callback: &str) -> bool {
    !callback.is_empty()
        && callback.len() <= 32
        && callback
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn htmlfile_frames_cannot_end_their_script() {
        let frame = messages(
            &[quote_message(b"</script><script>alert(1)</script>&amp;")],
            40,
        );
        let wrapped = Wrapping::HtmlFile.wrap(&frame);
        let inner = wrapped
            .strip_prefix("<script>\np(")
            .and_then(|w| w.strip_suffix(");\n</script>\r\n"))
            .unwrap();
        assert!(!inner.contains(['<', '>', '&']), "{inner}");
        // The JavaScript string still means the frame.
        assert_eq!(serde_json::from_str::<String>(inner).unwrap(), frame);
    }

    #[test]
    fn frames_are_written_as_the_protocol_shows_them() {
        assert_eq!(close(3000, "Go away!"), r#"c[3000,"Go away!"]"#);
        assert_eq!(
            another_connection(),
            r#"c[2010,"Another connection still open"]"#
        );
        assert_eq!(
            messages(&[quote_message(b"a"), quote_message(b"b\"c")], 0),
            r#"a["a","b\"c"]"#
        );
        assert_eq!(messages(&[], 0), "a[]");
    }

    #[test]
    fn quoting_escapes_what_json_needs_and_what_browsers_mangle() {
        assert_eq!(quote("  \u{0}\n\r "), r#""  \u0000\n\r ""#);
        assert_eq!(
            quote("\u{2028}\u{ffff}\u{fff0}é"),
            r#""\u2028\uffff\ufff0é""#
        );
        assert_eq!(quote("MESSAGE\n\n\u{0}"), r#""MESSAGE\n\n\u0000""#);
        // Whatever is quoted reads back as itself.
        let text: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        let back: String = serde_json::from_str(&quote(&text)).unwrap();
        assert_eq!(back, text);
    }

    /// Texts with everything quoting treats apart: quotes, backslashes, every control
    /// character, non-ASCII (two-, three- and four-byte characters, the escaped ranges and
    /// their neighbours, U+2028/U+2029), `%`.
    fn awkward_texts() -> Vec<String> {
        let controls: String = (0u8..0x20).map(char::from).collect();
        vec![
            String::new(),
            "plain".into(),
            "say \"hi\" \\ back\\".into(),
            controls,
            "é ü ß 中文 🦀 \u{7f}".into(),
            "\u{2028}line\u{2029}para\u{200b}\u{200c}\u{200f}\u{2010}\u{202f}\u{2030}".into(),
            "\u{205f}\u{2060}\u{206f}\u{2070}\u{efff}\u{fff0}\u{fffd}\u{ffff}".into(),
            "100% \r\n\t\u{8}\u{c}\0".into(),
        ]
    }

    #[test]
    fn quoting_in_pieces_gives_the_quoting_of_the_whole() {
        let texts = awkward_texts();
        for a in &texts {
            for b in &texts {
                let whole = format!("{a}{b}");
                let mut pieces = BytesMut::new();
                quote_inside(&mut pieces, a);
                quote_inside(&mut pieces, b);
                assert_eq!(
                    format!("\"{}\"", std::str::from_utf8(&pieces).unwrap()),
                    quote(&whole),
                    "{a:?} + {b:?}"
                );
                // Each character, quoted on its own, still makes the same string.
                let mut by_char = String::new();
                for c in whole.chars() {
                    quote_inside(&mut by_char, c.encode_utf8(&mut [0; 4]));
                }
                assert_eq!(format!("\"{by_char}\""), quote(&whole));
                let back: String = serde_json::from_str(&quote(&whole)).unwrap();
                assert_eq!(back, whole);
            }
        }
    }

    #[test]
    fn raw_bytes_are_quoted_as_their_lossy_text() {
        let cases: [&[u8]; 5] = [
            b"ok \xff\xfe bytes",
            b"\xe2\x80",     // a three-byte character cut short
            b"\xe2\x80\xa8", // U+2028, whole
            b"\xed\xa0\x80", // a surrogate, never UTF-8
            b"MESSAGE\n\n\x00\xc3",
        ];
        for raw in cases {
            let expected = quote(&String::from_utf8_lossy(raw));
            let quoted = quote_message(raw);
            assert_eq!(
                format!("\"{}\"", std::str::from_utf8(&quoted).unwrap()),
                expected,
                "{raw:?}"
            );
        }
    }

    #[test]
    fn each_transport_wraps_a_frame_its_own_way() {
        assert_eq!(Wrapping::Line.wrap("o"), "o\n");
        let batch = [quote_message(b"a%\n"), quote_message(b"b")];
        for wrapping in [
            Wrapping::Line,
            Wrapping::EventSource,
            Wrapping::HtmlFile,
            Wrapping::Jsonp("cb".into()),
        ] {
            assert_eq!(
                wrapping.messages(&batch, 0),
                wrapping.wrap(&messages(&batch, 0)),
                "{wrapping:?}"
            );
            assert_eq!(
                wrapping.messages(&batch[1..], 0),
                wrapping.wrap(r#"a["b"]"#),
                "{wrapping:?}"
            );
        }
        assert_eq!(Wrapping::EventSource.wrap("o"), "data: o\r\n\r\n");
        assert_eq!(
            Wrapping::HtmlFile.wrap(r#"a["x"]"#),
            "<script>\np(\"a[\\\"x\\\"]\");\n</script>\r\n"
        );
        assert_eq!(
            Wrapping::Jsonp("cb".into()).wrap(r#"c[3000,"Go away!"]"#),
            "/**/cb(\"c[3000,\\\"Go away!\\\"]\");\r\n"
        );
    }

    #[test]
    fn payloads_are_checked_as_sockjs_node_checks_them() {
        assert_eq!(parse_array(b"", 10), Err(PayloadError::Expected));
        assert_eq!(parse_array(b"[\"x", 10), Err(PayloadError::BrokenJson));
        assert_eq!(parse_array(b"{}", 10), Err(PayloadError::Expected));
        assert_eq!(parse_array(b"[]", 10), Ok(vec![]));
        assert_eq!(
            parse_array(br#"["a",1]"#, 10),
            Ok(vec!["a".to_owned(), "1".to_owned()])
        );
        // Many messages, each within the limit, whatever their total; none larger.
        assert_eq!(parse_array(br#"["abc","abc","abc"]"#, 3).unwrap().len(), 3);
        assert_eq!(
            parse_array(br#"["abc","abcd"]"#, 3),
            Err(PayloadError::TooLarge)
        );
        assert_eq!(parse_websocket(""), Ok(vec![]));
        assert_eq!(parse_websocket(r#""a""#), Ok(vec!["a".to_owned()]));
        assert_eq!(parse_websocket(r#"["a"#), Err(PayloadError::BrokenJson));
    }

    #[test]
    fn callbacks_are_names_never_script() {
        assert!(valid_callback("callback"));
        assert!(valid_callback("a.b_c1"));
        assert!(valid_callback("a-b"));
        for bad in ["", " ", "*", "abc(", "a+b", "a".repeat(33).as_str()] {
            assert!(!valid_callback(bad), "{bad:?}");
        }
    }
}
