//! Transactions (BEGIN/COMMIT/ABORT): the SENDs, ACKs and NACKs inside one are held here and
//! take effect, in order, on COMMIT only.

use std::collections::HashMap;

use bytestring::ByteString;
use stompede_protocol::Frame;

use super::SessionError;

/// Most transactions open at once in one session.
const MAX_OPEN: usize = 64;

/// The open transactions of a session.
#[derive(Debug, Default)]
pub struct Transactions {
    open: HashMap<ByteString, Vec<(Frame, Option<bool>)>>,
    frames: usize,
}

impl Transactions {
    /// BEGIN.
    pub fn begin(&mut self, id: &ByteString) -> Result<(), SessionError> {
        if self.open.contains_key(id) {
            return Err(SessionError::new(
                format!("transaction {id} already begun"),
                "BEGIN named a transaction that is already open.",
            ));
        }
        if self.open.len() >= MAX_OPEN {
            return Err(SessionError::new(
                "too many open transactions",
                format!("A session may hold at most {MAX_OPEN} open transactions."),
            ));
        }
        self.open.insert(id.clone(), Vec::new());
        Ok(())
    }

    /// Holds a frame (with its WebSocket text flag) until COMMIT.
    pub fn hold(
        &mut self,
        id: &str,
        frame: Frame,
        text: Option<bool>,
        max_frames: usize,
    ) -> Result<(), SessionError> {
        let Some(held) = self.open.get_mut(id) else {
            return Err(unknown(id));
        };
        if self.frames >= max_frames {
            return Err(SessionError::new(
                "transaction too large",
                format!("Transactions of one session may hold at most {max_frames} frames (max-transaction-frames)."),
            ));
        }
        self.frames += 1;
        held.push((frame, text));
        Ok(())
    }

    /// COMMIT: the held frames, in order.
    pub fn commit(&mut self, id: &str) -> Result<Vec<(Frame, Option<bool>)>, SessionError> {
        let held = self.open.remove(id).ok_or_else(|| unknown(id))?;
        self.frames -= held.len();
        Ok(held)
    }

    /// ABORT: drops the held frames.
    pub fn abort(&mut self, id: &str) -> Result<(), SessionError> {
        let held = self.open.remove(id).ok_or_else(|| unknown(id))?;
        self.frames -= held.len();
        Ok(())
    }
}

fn unknown(id: &str) -> SessionError {
    SessionError::new(
        format!("unknown transaction {id}"),
        "The frame names a transaction that was never begun, or was already committed or aborted.",
    )
}
