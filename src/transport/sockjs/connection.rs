//! What the application holds of one SockJS session: the client's messages in, messages out,
//! and closing. Every transport looks the same from here.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::session::{Batch, Closed, Session};

/// One SockJS session as the application sees it.
#[derive(Debug)]
pub struct Connection {
    session: Arc<Session>,
    from_client: mpsc::Receiver<Batch>,
    /// The rest of the batch being read.
    batch: std::vec::IntoIter<String>,
    peer: String,
}

impl Connection {
    pub(crate) fn new(
        session: Arc<Session>,
        from_client: mpsc::Receiver<Batch>,
        peer: String,
    ) -> Connection {
        Connection {
            session,
            from_client,
            batch: Vec::new().into_iter(),
            peer,
        }
    }

    /// The next message from the client; `None` once the session is over (the client left,
    /// or it timed out). Cancel-safe.
    pub async fn recv(&mut self) -> Option<String> {
        loop {
            if let Some(message) = self.batch.next() {
                return Some(message);
            }
            tokio::select! {
                batch = self.from_client.recv() => self.batch = batch?.into_iter(),
                () = self.session.ended() => return None,
            }
        }
    }

    /// Queues `messages` for the client, in order; waits while the session already holds its
    /// bound of messages the client has not received (a polling client that stops polling
    /// makes this wait, then fail when the session times out).
    pub async fn send(&self, messages: impl IntoIterator<Item = String>) -> Result<(), Closed> {
        let session = &self.session;
        session
            .send(messages.into_iter().map(|message| session.encode(&message)))
            .await
    }

    /// Closes the session: the client gets `c[code,"reason"]`.
    pub fn close(&self, code: u16, reason: &str) {
        self.session.close(code, reason);
    }

    /// The session itself, for a carrier that writes from another task than it reads.
    pub(crate) fn session(&self) -> Arc<Session> {
        self.session.clone()
    }

    /// Where the client connected from (for logs).
    pub fn peer(&self) -> &str {
        &self.peer
    }
}

impl Drop for Connection {
    /// The application let go of the session without closing it (a STOMP session cut, or a
    /// writer that did not finish in time): close it, so that a send still waiting for room
    /// fails (its writer ends instead of waiting forever), later sends from the client are
    /// not taken and dropped, and the session is over once the close frame is taken or its
    /// timeout passes. A no-op when the application already closed it.
    fn drop(&mut self) {
        self.session.close(1000, "Normal closure");
    }
}
