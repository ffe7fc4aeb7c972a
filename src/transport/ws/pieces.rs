//! An in-memory peer for the WebSocket reader's tests and fuzz targets: it hands out the bytes
//! in the pieces it is given, one piece (or what fits of it) a read, and never waits while it
//! has bytes, so that a piece boundary lands exactly where the test put it.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

use crate::transport::socket::ReadSide;

/// What the peer does once its pieces are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AtEnd {
    /// Closes: the end of input.
    Close,
    /// Keeps the connection open and sends nothing more: every further read waits. (Only
    /// the reader's own tests need a peer that hangs; the fuzz targets' input always ends.)
    #[cfg_attr(not(test), allow(dead_code))]
    Hang,
}

/// Bytes given in pieces, then [`AtEnd`].
#[derive(Debug)]
pub(crate) struct Pieces {
    pieces: VecDeque<Vec<u8>>,
    at_end: AtEnd,
    /// Bytes not read yet.
    pub(crate) left: usize,
    /// Reads that returned bytes.
    pub(crate) reads: usize,
}

impl Pieces {
    pub(crate) fn new(pieces: Vec<Vec<u8>>, at_end: AtEnd) -> Pieces {
        Pieces {
            left: pieces.iter().map(Vec::len).sum(),
            pieces: pieces.into(),
            at_end,
            reads: 0,
        }
    }
}

impl AsyncRead for Pieces {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while this.pieces.front().is_some_and(Vec::is_empty) {
            this.pieces.pop_front();
        }
        let Some(front) = this.pieces.front_mut() else {
            // Nothing filled is the end of input; a hanging peer is never ready again, and
            // tests poll it with `now_or_never` or a timeout, so no waker is kept.
            return match this.at_end {
                AtEnd::Close => Poll::Ready(Ok(())),
                AtEnd::Hang => Poll::Pending,
            };
        };
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let n = front.len().min(buf.remaining());
        buf.put_slice(&front[..n]);
        front.drain(..n);
        this.left -= n;
        this.reads += 1;
        Poll::Ready(Ok(()))
    }
}

impl ReadSide for Pieces {}
