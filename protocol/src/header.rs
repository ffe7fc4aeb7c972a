//! Ordered frame headers.

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

/// One header: a name and a value, both UTF-8. In a decoded frame, long names and values that
/// needed no unescaping share the read buffer, short ones are copies, and well-known names and
/// common values are static strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    /// The header name (case-sensitive, as STOMP says).
    pub name: ByteString,
    /// The header value, unescaped.
    pub value: ByteString,
}

/// The headers of a frame, in wire order. Repeated names are kept; lookups return the first
/// occurrence, as STOMP 1.2 ("Repeated Header Entries") requires.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Headers(Vec<Header>);

impl Headers {
    /// No headers.
    pub const fn new() -> Self {
        Headers(Vec::new())
    }

    /// Room for `n` headers.
    pub fn with_capacity(n: usize) -> Self {
        Headers(Vec::with_capacity(n))
    }

    /// The value of the first header called `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|h| &*h.name == name).map(|h| &*h.value)
    }

    /// The shared value of the first header called `name` (cheap to clone and keep).
    pub fn get_shared(&self, name: &str) -> Option<&ByteString> {
        self.0.iter().find(|h| &*h.name == name).map(|h| &h.value)
    }

    /// True when a header called `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|h| &*h.name == name)
    }

    /// Appends a header (after any with the same name).
    pub fn push(&mut self, name: impl Into<ByteString>, value: impl Into<ByteString>) {
        self.0.push(Header {
            name: name.into(),
            value: value.into(),
        });
    }

    /// Replaces every header called `name` by one with `value`, at the first one's place (or
    /// at the end).
    pub fn set(&mut self, name: &str, value: impl Into<ByteString>) {
        let value = value.into();
        match self.0.iter().position(|h| &*h.name == name) {
            Some(first) => {
                self.0[first].value = value;
                let mut index = 0;
                self.0.retain(|h| {
                    let keep = index <= first || &*h.name != name;
                    index += 1;
                    keep
                });
            }
            None => self.push(ByteString::from(name), value),
        }
    }

    /// Removes every header called `name`.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|h| &*h.name != name);
    }

    /// The headers in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Header> {
        self.0.iter()
    }

    /// How many header lines (repeats counted).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no headers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl From<Vec<Header>> for Headers {
    fn from(headers: Vec<Header>) -> Self {
        Headers(headers)
    }
}

impl<N: Into<ByteString>, V: Into<ByteString>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        Headers(
            iter.into_iter()
                .map(|(n, v)| Header {
                    name: n.into(),
                    value: v.into(),
                })
                .collect(),
        )
    }
}
