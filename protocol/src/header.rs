//! Ordered frame headers: one text and, for each header, where its name and value lie in it.
//!
//! A decoded frame's headers are views into the frame's head: the decoder splits the head off
//! the read buffer once (one reference count), unescapes it in place, checks it is UTF-8 once,
//! and records four offsets a header. A frame then costs one small allocation (the list of
//! offsets) whatever its headers hold, instead of an allocation or an atomic reference count
//! for every value. Headers built in code are appended to an owned `String` the same way.

use std::fmt;
use std::hash::{Hash, Hasher};

use bytestring::ByteString;

/// The well-known header names, written once.
pub mod names {
    /// `accept-version` (CONNECT).
    pub const ACCEPT_VERSION: &str = "accept-version";
    /// `ack` (SUBSCRIBE mode; MESSAGE and ACK id in 1.2).
    pub const ACK: &str = "ack";
    /// `content-length`.
    pub const CONTENT_LENGTH: &str = "content-length";
    /// `content-type`.
    pub const CONTENT_TYPE: &str = "content-type";
    /// `destination`.
    pub const DESTINATION: &str = "destination";
    /// `heart-beat`.
    pub const HEART_BEAT: &str = "heart-beat";
    /// `host`.
    pub const HOST: &str = "host";
    /// `id` (SUBSCRIBE, UNSUBSCRIBE; ACK/NACK in 1.2).
    pub const ID: &str = "id";
    /// `login`.
    pub const LOGIN: &str = "login";
    /// `message`: ERROR summary.
    pub const MESSAGE: &str = "message";
    /// `message-id`.
    pub const MESSAGE_ID: &str = "message-id";
    /// `passcode`.
    pub const PASSCODE: &str = "passcode";
    /// `receipt`.
    pub const RECEIPT: &str = "receipt";
    /// `receipt-id`.
    pub const RECEIPT_ID: &str = "receipt-id";
    /// `server`.
    pub const SERVER: &str = "server";
    /// `session`.
    pub const SESSION: &str = "session";
    /// `subscription`.
    pub const SUBSCRIPTION: &str = "subscription";
    /// `transaction`.
    pub const TRANSACTION: &str = "transaction";
    /// `version`.
    pub const VERSION: &str = "version";
    /// `user-name` (CONNECTED, when logged in).
    pub const USER_NAME: &str = "user-name";
}

/// Values up to this many bytes are copied by [`Headers::get_shared`]; longer ones share the
/// frame's head. A copy keeps a value someone holds on to (a subscription id, a destination)
/// from pinning the whole read buffer the head was split from.
const SHARE_OVER: usize = 128;

/// The text a header is assumed to need when room is made for headers to come.
const TEXT_PER_HEADER: usize = 32;

/// One header, borrowed from [`Headers`]: a name and a value, both UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header<'a> {
    /// The header name (case-sensitive, as STOMP says).
    pub name: &'a str,
    /// The header value, unescaped.
    pub value: &'a str,
}

/// The headers of a frame, in wire order. Repeated names are kept; lookups return the first
/// occurrence, as STOMP 1.2 ("Repeated Header Entries") requires.
///
/// Equality and hashing look at the (name, value) pairs in order, not at how they are stored,
/// so a decoded frame equals the frame that was encoded.
#[derive(Clone)]
pub struct Headers {
    text: Text,
    entries: Vec<Entry>,
}

/// Where the names and values are.
#[derive(Clone)]
enum Text {
    /// A decoded frame's head (command line included), shared with the read buffer it was
    /// split from.
    Shared(ByteString),
    /// Text appended by [`Headers::push`] and [`Headers::set`]; a decoded frame's head is
    /// copied here the first time its headers are added to.
    Owned(String),
}

impl Text {
    fn as_str(&self) -> &str {
        match self {
            Text::Shared(text) => text,
            Text::Owned(text) => text,
        }
    }
}

/// A byte range of the text; always on `char` boundaries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    pub start: usize,
    pub end: usize,
}

/// One header: where its name and its value are.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub name: Span,
    pub value: Span,
}

impl Headers {
    /// No headers.
    pub const fn new() -> Self {
        Headers {
            text: Text::Owned(String::new()),
            entries: Vec::new(),
        }
    }

    /// Room for `n` headers of about `TEXT_PER_HEADER` bytes each.
    pub fn with_capacity(n: usize) -> Self {
        Headers {
            text: Text::Owned(String::with_capacity(n.saturating_mul(TEXT_PER_HEADER))),
            entries: Vec::with_capacity(n),
        }
    }

    /// The headers of a decoded frame: `entries` are spans of `head`.
    pub(crate) fn from_head(head: ByteString, entries: Vec<Entry>) -> Self {
        Headers {
            text: Text::Shared(head),
            entries,
        }
    }

    fn text(&self) -> &str {
        self.text.as_str()
    }

    /// The text to append to, copying a decoded head first (spans stay valid: same offsets).
    fn text_mut(&mut self) -> &mut String {
        if let Text::Shared(head) = &self.text {
            self.text = Text::Owned(String::from(&**head));
        }
        match &mut self.text {
            Text::Owned(text) => text,
            Text::Shared(_) => unreachable!("made owned above"),
        }
    }

    #[inline]
    fn header<'a>(text: &'a str, entry: &Entry) -> Header<'a> {
        Header {
            name: &text[entry.name.start..entry.name.end],
            value: &text[entry.value.start..entry.value.end],
        }
    }

    /// The index of the first header called `name`.
    fn position(&self, name: &str) -> Option<usize> {
        let text = self.text().as_bytes();
        self.entries
            .iter()
            .position(|e| &text[e.name.start..e.name.end] == name.as_bytes())
    }

    /// The value of the first header called `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        let entry = &self.entries[self.position(name)?];
        Some(&self.text()[entry.value.start..entry.value.end])
    }

    /// The value of the first header called `name`, as a string to keep: a copy when it is
    /// short, else a slice sharing the frame's head (no copy).
    pub fn get_shared(&self, name: &str) -> Option<ByteString> {
        let value = self.get(name)?;
        Some(match &self.text {
            Text::Shared(head) if value.len() > SHARE_OVER => head.slice_ref(value),
            _ => ByteString::from(value),
        })
    }

    /// True when a header called `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// Appends `text` to the owned text, returning where it is.
    fn append(&mut self, text: &str) -> Span {
        let owned = self.text_mut();
        let start = owned.len();
        owned.push_str(text);
        Span {
            start,
            end: owned.len(),
        }
    }

    /// Appends a header (after any with the same name).
    pub fn push(&mut self, name: impl AsRef<str>, value: impl AsRef<str>) {
        let name = self.append(name.as_ref());
        let value = self.append(value.as_ref());
        self.entries.push(Entry { name, value });
    }

    /// Replaces every header called `name` by one with `value`, at the first one's place (or
    /// at the end).
    pub fn set(&mut self, name: &str, value: impl AsRef<str>) {
        match self.position(name) {
            Some(first) => {
                let value = self.append(value.as_ref());
                self.entries[first].value = value;
                let text = self.text.as_str().as_bytes();
                let mut index = 0;
                self.entries.retain(|e| {
                    let keep = index <= first || &text[e.name.start..e.name.end] != name.as_bytes();
                    index += 1;
                    keep
                });
            }
            None => self.push(name, value),
        }
    }

    /// Removes every header called `name`. (Its text stays until the headers are dropped.)
    pub fn remove(&mut self, name: &str) {
        let text = self.text.as_str().as_bytes();
        self.entries
            .retain(|e| &text[e.name.start..e.name.end] != name.as_bytes());
    }

    /// The names and values in order, as bytes: for the encoder, which only copies them, so
    /// need not pay for the `char` boundary checks of `&str` slices.
    pub(crate) fn raw(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let text = self.text().as_bytes();
        self.entries.iter().map(move |e| {
            (
                &text[e.name.start..e.name.end],
                &text[e.value.start..e.value.end],
            )
        })
    }

    /// The headers in order.
    pub fn iter(&self) -> HeaderIter<'_> {
        HeaderIter {
            text: self.text(),
            entries: self.entries.iter(),
        }
    }

    /// How many header lines (repeats counted).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no headers.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Default for Headers {
    fn default() -> Self {
        Headers::new()
    }
}

impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

impl Hash for Headers {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.len());
        for header in self {
            header.hash(state);
        }
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|h| (h.name, h.value)))
            .finish()
    }
}

/// The headers of a [`Headers`], in order.
#[derive(Debug, Clone)]
pub struct HeaderIter<'a> {
    text: &'a str,
    entries: std::slice::Iter<'a, Entry>,
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = Header<'a>;

    #[inline]
    fn next(&mut self) -> Option<Header<'a>> {
        let entry = self.entries.next()?;
        Some(Headers::header(self.text, entry))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl DoubleEndedIterator for HeaderIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let entry = self.entries.next_back()?;
        Some(Headers::header(self.text, entry))
    }
}

impl ExactSizeIterator for HeaderIter<'_> {}

impl<'a> IntoIterator for &'a Headers {
    type Item = Header<'a>;
    type IntoIter = HeaderIter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<N: AsRef<str>, V: AsRef<str>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut headers = Headers::new();
        headers.extend(iter);
        headers
    }
}

impl<'a> FromIterator<Header<'a>> for Headers {
    fn from_iter<I: IntoIterator<Item = Header<'a>>>(iter: I) -> Self {
        iter.into_iter().map(|h| (h.name, h.value)).collect()
    }
}

impl<N: AsRef<str>, V: AsRef<str>> Extend<(N, V)> for Headers {
    fn extend<I: IntoIterator<Item = (N, V)>>(&mut self, iter: I) {
        let iter = iter.into_iter();
        // Room for as many headers as there may be (a filter's upper bound, within reason), so
        // that copying a frame's headers grows the text and the list once, not a few times.
        let (at_least, at_most) = iter.size_hint();
        let n = at_most.unwrap_or(at_least).min(128);
        self.entries.reserve(n);
        self.text_mut().reserve(n * TEXT_PER_HEADER);
        for (name, value) in iter {
            self.push(name, value);
        }
    }
}
