//! # stompede-protocol
//!
//! The STOMP 1.0, 1.1 and 1.2 frame codec used by the stompede broker: a [`Frame`] model, a
//! streaming [`Decoder`] that enforces [`Limits`] while it reads, and an [`encode`]r. No I/O and
//! no async runtime: feed the decoder the bytes you read, write the bytes the encoder produces.
//!
//! ```
//! use bytes::BytesMut;
//! use stompede_protocol::{encode, Command, Decoded, Decoder, Frame, Limits, Version};
//!
//! let frame = Frame::new(Command::Send)
//!     .header("destination", "/queue/a")
//!     .body("hello");
//! let mut wire = BytesMut::new();
//! encode(&frame, Version::V1_2, &mut wire);
//!
//! let mut decoder = Decoder::new(Limits::default());
//! decoder.set_version(Version::V1_2);
//! let Some(Decoded::Frame(decoded)) = decoder.decode(&mut wire).unwrap() else { panic!() };
//! assert_eq!(decoded.get("destination"), Some("/queue/a"));
//! assert_eq!(&decoded.body[..], b"hello");
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod command;
mod decode;
mod encode;
mod error;
mod escape;
mod frame;
mod header;
mod limits;
mod parse;
mod scan;
mod version;

pub use command::Command;
pub use decode::Decoder;
pub use encode::{
    encode, encoded_len_estimate, to_bytes, write_body, write_command, write_content_length,
    write_decimal, write_header, writes_content_length,
};
pub use error::DecodeError;
pub use escape::Escaping;
pub use frame::{Decoded, Frame};
pub use header::{names, Header, HeaderIter, Headers};
pub use limits::Limits;
pub use version::Version;

/// Re-exported so users build headers and bodies with the same types.
pub use bytes;
/// Re-exported: [`Headers::get_shared`] returns a [`bytestring::ByteString`].
pub use bytestring;

/// The examples of `README.md`, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
