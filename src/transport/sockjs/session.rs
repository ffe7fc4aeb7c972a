//! One SockJS session: the messages waiting for the client, the one receiving request allowed
//! at a time, the timeout that ends a session nobody receives for, and the registry that finds
//! a session by its id.
//!
//! The session is shared by the HTTP requests that carry it (each receiving request in turn,
//! and any number of sending ones) and the application's [`Connection`]. Its state sits behind
//! a std Mutex, held for a few instructions and never across an await; waiting is done on
//! `Notify`s after the state has been looked at.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, Notify, Semaphore, SemaphorePermit};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::frames;

/// Where a session is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Created, the open frame not yet sent.
    Connecting,
    /// Open: messages flow both ways.
    Open,
    /// Closed by the application with this code and reason: every receiving request gets the
    /// close frame, until the session times out.
    Closing(u16, String),
    /// Over: timed out or interrupted, and out of the registry.
    Closed,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    /// Messages for the client, oldest first, each as the session's framing carries it
    /// (see [`Session::encode`]).
    pending: VecDeque<Bytes>,
    /// Bytes of `pending`.
    pending_bytes: usize,
    /// The receiving request attached, by its number.
    receiver: Option<u64>,
    next_receiver: u64,
    /// Since when no receiving request has been attached (the timeout counts from here).
    unattended_since: Instant,
    /// While the close frame has not been taken by a receiver: when the session is over
    /// anyway. A receiver that stays attached but is never read (its client stopped reading
    /// its socket) would otherwise hold the session, and its memory, forever.
    close_deadline: Option<Instant>,
}

/// What a receiving request got when it asked to attach.
#[derive(Debug)]
pub enum Attach {
    /// A new session: send the open frame; the request receives as `receiver`.
    Opened(u64),
    /// An open session: the request receives as `receiver`.
    Attached(u64),
    /// Another request is receiving: send `c[2010,...]` and end.
    Busy,
    /// The session was closed: send `pending` (if any), then the close frame (if any: a
    /// polling request that gets messages gets the close frame on its next poll), and end.
    Closed {
        /// Messages not yet received (quoted).
        pending: Vec<Bytes>,
        /// The close frame.
        frame: Option<String>,
    },
}

/// What a receiving request sends next.
#[derive(Debug)]
pub enum Outgoing {
    /// Messages for an `a[...]` frame, as the session's framing carries them (with their
    /// total bytes).
    Messages(Vec<Bytes>, usize),
    /// A heart-beat: nothing to send for a while.
    Heartbeat,
    /// The session was closed with this code and reason: the close frame, then the end of
    /// the response.
    Close(u16, String),
    /// The server is shutting down, or the session is over: end the response.
    End,
}

/// The session is closed: nothing more can be sent on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("SockJS session closed")]
pub struct Closed;

/// Another sending request held the session for the whole session timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("another send in progress")]
pub struct SendBusy;

/// A batch of messages from the client (one `xhr_send`, one WebSocket message).
pub type Batch = Vec<String>;

/// Limits and timers of the sessions of one service.
#[derive(Debug, Clone)]
pub struct Timing {
    /// A heart-beat frame after this long without a frame.
    pub heartbeat: Duration,
    /// A session without a receiving request for this long is over.
    pub timeout: Duration,
    /// Bytes of messages a session holds for its client before the application's sends
    /// wait.
    pub max_pending_bytes: usize,
    /// Where the sessions' tasks run: the server's tracker, so that shutdown waits for them.
    pub tracker: TaskTracker,
    /// Cancelled when the server shuts down: every session is over then.
    pub shutdown: CancellationToken,
}

/// One SockJS session.
#[derive(Debug)]
pub struct Session {
    state: Mutex<State>,
    /// Wakes the receiving request: messages, or a close.
    data: Notify,
    /// Wakes the application's sends: room in `pending`, or the end.
    room: Notify,
    /// Wakes the timeout watch: a receiver attached or left.
    changed: Notify,
    /// Cancelled when the session is over: the application's reads end.
    over: CancellationToken,
    /// One sending request at a time: each holds its decoded batch while it waits for the
    /// application, so any number of them would hold any amount (sockjs-client itself never
    /// sends two at once).
    sending: Semaphore,
    inbound: mpsc::Sender<Batch>,
    timing: Timing,
    /// Messages go out quoted, inside SockJS frames (every transport but the raw WebSocket,
    /// which carries each message as it is).
    quoted: bool,
}

impl Session {
    /// A new session and the receiving end of what its client sends; `quoted` when its
    /// messages go out inside SockJS frames.
    fn new(timing: Timing, quoted: bool) -> (Arc<Session>, mpsc::Receiver<Batch>) {
        // One batch queued: a sender waits (its HTTP request unanswered, its WebSocket unread)
        // while the application has not taken the last one, which paces the client.
        let (inbound, from_client) = mpsc::channel(1);
        let session = Session {
            state: Mutex::new(State {
                phase: Phase::Connecting,
                pending: VecDeque::new(),
                pending_bytes: 0,
                receiver: None,
                next_receiver: 0,
                unattended_since: Instant::now(),
                close_deadline: None,
            }),
            data: Notify::new(),
            room: Notify::new(),
            changed: Notify::new(),
            over: CancellationToken::new(),
            sending: Semaphore::new(1),
            inbound,
            timing,
            quoted,
        };
        (Arc::new(session), from_client)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True when messages go out inside SockJS frames, quoted as JSON strings: what
    /// [`send`](Session::send) takes is then the inside of such a string.
    pub fn quoted(&self) -> bool {
        self.quoted
    }

    /// `message` as this session queues it: quoted as the inside of a JSON string when its
    /// messages go out inside SockJS frames, else as it is.
    pub fn encode(&self, message: &str) -> Bytes {
        if self.quoted {
            frames::quote_message(message.as_bytes())
        } else {
            Bytes::copy_from_slice(message.as_bytes())
        }
    }

    /// A receiving request asks to receive; `one_frame` for a polling request, whose
    /// response carries one frame only.
    pub fn attach(&self, one_frame: bool) -> Attach {
        let mut state = self.lock();
        if state.receiver.is_some() {
            return Attach::Busy;
        }
        let attach = match &state.phase {
            Phase::Closing(code, reason) => {
                let frame = frames::close(*code, reason);
                let pending: Vec<Bytes> = state.pending.drain(..).collect();
                state.pending_bytes = 0;
                // The close frame is served again until the timeout, counted from now.
                state.unattended_since = Instant::now();
                if one_frame && !pending.is_empty() {
                    // One frame per poll, as sockjs-node has it: a JSONP client deletes its
                    // callback after the first call, so a close in the same response would
                    // be lost. The close waits for the next poll, which comes at once.
                    state.close_deadline = later(Instant::now(), self.timing.timeout);
                    Attach::Closed {
                        pending,
                        frame: None,
                    }
                } else {
                    state.close_deadline = None;
                    Attach::Closed {
                        pending,
                        frame: Some(frame),
                    }
                }
            }
            Phase::Closed => Attach::Closed {
                pending: Vec::new(),
                frame: Some(frames::close(1002, "Connection interrupted")),
            },
            Phase::Connecting | Phase::Open => {
                let id = state.next_receiver;
                state.next_receiver += 1;
                state.receiver = Some(id);
                if state.phase == Phase::Connecting {
                    state.phase = Phase::Open;
                    Attach::Opened(id)
                } else {
                    Attach::Attached(id)
                }
            }
        };
        drop(state);
        self.changed.notify_one();
        attach
    }

    /// The next thing receiver `id` sends: waits for messages or a close, and answers a
    /// heart-beat when none came for the heart-beat interval.
    pub async fn next(&self, id: u64, shutdown: &CancellationToken) -> Outgoing {
        let beat = tokio::time::sleep(self.timing.heartbeat);
        tokio::pin!(beat);
        loop {
            let data = self.data.notified();
            tokio::pin!(data);
            data.as_mut().enable();
            {
                let mut state = self.lock();
                if state.receiver != Some(id) {
                    return Outgoing::End;
                }
                match &state.phase {
                    Phase::Closing(code, reason) if state.pending.is_empty() => {
                        let close = Outgoing::Close(*code, reason.clone());
                        state.close_deadline = None;
                        drop(state);
                        // The close frame is taken: the timeout counts as usual again.
                        self.changed.notify_one();
                        return close;
                    }
                    Phase::Closed => return Outgoing::End,
                    _ => {}
                }
                if !state.pending.is_empty() {
                    let messages: Vec<Bytes> = state.pending.drain(..).collect();
                    let bytes = std::mem::take(&mut state.pending_bytes);
                    drop(state);
                    self.room.notify_waiters();
                    return Outgoing::Messages(messages, bytes);
                }
            }
            tokio::select! {
                () = &mut data => {}
                () = &mut beat => return Outgoing::Heartbeat,
                () = shutdown.cancelled() => return Outgoing::End,
                () = self.over.cancelled() => return Outgoing::End,
            }
        }
    }

    /// Receiver `id` is done: its response ended (`interrupted` false) or its client went
    /// away before it ended (`interrupted` true). An interrupted session is over at once, as
    /// sockjs-node has it: the client is gone, or will open a new session.
    pub fn detach(&self, id: u64, interrupted: bool) {
        let mut state = self.lock();
        if state.receiver != Some(id) {
            return;
        }
        state.receiver = None;
        state.unattended_since = Instant::now();
        if interrupted && state.phase == Phase::Open {
            state.phase = Phase::Closed;
            drop(state);
            self.end();
            return;
        }
        drop(state);
        self.changed.notify_one();
    }

    /// The turn of one sending request: waits while another holds it, for at most the
    /// session timeout (then [`SendBusy`]). `Ok(None)` when the session is over (what the
    /// request carries is dropped, as [`receive`](Session::receive) drops it).
    pub async fn sending(&self) -> Result<Option<SemaphorePermit<'_>>, SendBusy> {
        tokio::select! {
            permit = tokio::time::timeout(self.timing.timeout, self.sending.acquire()) => {
                match permit {
                    // The semaphore is never closed.
                    Ok(permit) => Ok(permit.ok()),
                    Err(_) => Err(SendBusy),
                }
            }
            () = self.over.cancelled() => Ok(None),
        }
    }

    /// Messages from the client, for the application; waits while it has not taken the last
    /// batch. Dropped when the session is not open (sockjs-node does the same).
    pub async fn receive(&self, batch: Batch) {
        if batch.is_empty() || self.lock().phase != Phase::Open {
            return;
        }
        tokio::select! {
            _ = self.inbound.send(batch) => {}
            () = self.over.cancelled() => {}
        }
    }

    /// Room for one batch of the client's messages, for a reader that must not lose a batch
    /// when its wait is cancelled (a WebSocket's select loop); `None` when the session is not
    /// open (the batch is then dropped, as [`receive`](Session::receive) drops it).
    pub async fn reserve(&self) -> Option<mpsc::Permit<'_, Batch>> {
        if self.lock().phase != Phase::Open {
            return None;
        }
        tokio::select! {
            permit = self.inbound.reserve() => permit.ok(),
            () = self.over.cancelled() => None,
        }
    }

    /// Queues messages for the client, each already [encoded](Session::encode); waits while
    /// the session holds [`Timing::max_pending_bytes`] or more for it (a message larger than
    /// that alone is queued once the queue is empty).
    pub async fn send(&self, messages: impl IntoIterator<Item = Bytes>) -> Result<(), Closed> {
        let mut messages = messages.into_iter().peekable();
        while messages.peek().is_some() {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                // One lock for as many messages as fit.
                let mut state = self.lock();
                if state.phase != Phase::Open {
                    return Err(Closed);
                }
                let mut queued = false;
                while let Some(message) = messages.next_if(|message| {
                    state.pending.is_empty()
                        || state.pending_bytes + message.len() <= self.timing.max_pending_bytes
                }) {
                    state.pending_bytes += message.len();
                    state.pending.push_back(message);
                    queued = true;
                }
                drop(state);
                if queued {
                    self.data.notify_one();
                }
                if messages.peek().is_none() {
                    break;
                }
            }
            tokio::select! {
                () = &mut room => {}
                () = self.over.cancelled() => return Err(Closed),
            }
        }
        Ok(())
    }

    /// The application closes the session: the receiver (now or next) gets
    /// `c[code,"reason"]`. If no receiver has taken that frame within the session timeout
    /// (its client stopped reading), the session is over then.
    pub fn close(&self, code: u16, reason: &str) {
        let mut state = self.lock();
        if matches!(state.phase, Phase::Connecting | Phase::Open) {
            state.phase = Phase::Closing(code, reason.to_owned());
            state.close_deadline = later(Instant::now(), self.timing.timeout);
            drop(state);
            self.data.notify_one();
            // Sends waiting for room fail now.
            self.room.notify_waiters();
            self.changed.notify_one();
        }
    }

    /// Ends the session now, whatever its phase (its WebSocket closed).
    pub fn terminate(&self) {
        {
            let mut state = self.lock();
            state.phase = Phase::Closed;
            state.receiver = None;
        }
        self.end();
    }

    /// True once the session is over.
    #[cfg(test)]
    pub fn is_over(&self) -> bool {
        self.over.is_cancelled()
    }

    /// Resolves when the session is over.
    pub async fn ended(&self) {
        self.over.cancelled().await;
    }

    /// A token cancelled when the session is over, for a carrier that must drop a response
    /// nobody reads any more (see `transport::http::DropConnection`).
    pub fn over_token(&self) -> CancellationToken {
        self.over.clone()
    }

    fn end(&self) {
        self.over.cancel();
        self.data.notify_one();
        self.room.notify_waiters();
        self.changed.notify_one();
    }

    /// Watches the timeouts: the session is over once no receiving request has been attached
    /// for [`Timing::timeout`], or once its close frame has waited that long for a receiver
    /// to take it.
    async fn watch_timeout(&self) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let deadline = {
                let mut state = self.lock();
                if state.phase == Phase::Closed {
                    break;
                }
                if self.timing.shutdown.is_cancelled() {
                    state.phase = Phase::Closed;
                    state.receiver = None;
                    break;
                }
                let unattended = match state.receiver {
                    None => later(state.unattended_since, self.timing.timeout),
                    Some(_) => None,
                };
                let deadline = match (unattended, state.close_deadline) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                    state.phase = Phase::Closed;
                    state.receiver = None;
                    break;
                }
                deadline
            };
            match deadline {
                Some(deadline) => {
                    tokio::select! {
                        () = &mut changed => {}
                        () = tokio::time::sleep_until(deadline) => {}
                        () = self.timing.shutdown.cancelled() => {}
                    }
                }
                None => {
                    tokio::select! {
                        () = &mut changed => {}
                        () = self.timing.shutdown.cancelled() => {}
                    }
                }
            }
        }
        self.end();
    }
}

/// `since + timeout`; `None` (never) when that overflows, so that a timeout configured in
/// centuries cannot panic the watch.
fn later(since: Instant, timeout: Duration) -> Option<Instant> {
    since.checked_add(timeout)
}

/// The registry holds as many sessions as it may: no new one now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many SockJS sessions")]
pub struct Full;

/// The sessions of one service, by id, at most `max` of them: each holds memory (its queue,
/// a task) for the session timeout at least, and anyone may open one with one request.
#[derive(Debug)]
pub struct Registry {
    // A std Mutex: a lookup or an insert, never held across an await.
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    max: usize,
}

impl Registry {
    /// An empty registry for at most `max` sessions.
    pub fn new(max: usize) -> Registry {
        Registry {
            sessions: Mutex::default(),
            max,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session `id`, if it lives.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.lock().get(id).cloned()
    }

    /// The session `id`, created when there is none (then with the receiving end of its
    /// client's messages, for the application, and a task that times it out and removes it);
    /// [`Full`] when it would be one more than the registry holds.
    pub fn get_or_create(
        self: &Arc<Self>,
        id: &str,
        timing: &Timing,
    ) -> Result<(Arc<Session>, Option<mpsc::Receiver<Batch>>), Full> {
        let mut sessions = self.lock();
        if let Some(session) = sessions.get(id) {
            return Ok((session.clone(), None));
        }
        if sessions.len() >= self.max {
            return Err(Full);
        }
        let (session, from_client) = Session::new(timing.clone(), true);
        sessions.insert(id.to_owned(), session.clone());
        drop(sessions);
        let registry = Arc::clone(self);
        let watched = session.clone();
        let id = id.to_owned();
        timing.tracker.spawn(async move {
            watched.watch_timeout().await;
            let mut sessions = registry.lock();
            if sessions.get(&id).is_some_and(|s| Arc::ptr_eq(s, &watched)) {
                sessions.remove(&id);
            }
        });
        Ok((session, Some(from_client)))
    }
}

/// A session that lives as long as one WebSocket: not in any registry (two WebSockets may
/// share a session id), over when the WebSocket is, or when its close frame has waited for
/// the session timeout (the WebSocket's client stopped reading). `quoted` unless the
/// WebSocket carries raw messages.
pub fn unregistered(timing: &Timing, quoted: bool) -> (Arc<Session>, mpsc::Receiver<Batch>) {
    let (session, from_client) = Session::new(timing.clone(), quoted);
    let watched = session.clone();
    timing
        .tracker
        .spawn(async move { watched.watch_timeout().await });
    (session, from_client)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn timing() -> Timing {
        Timing {
            heartbeat: Duration::from_secs(25),
            timeout: Duration::from_secs(5),
            max_pending_bytes: 10,
            tracker: TaskTracker::new(),
            shutdown: CancellationToken::new(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_nobody_receives_for_times_out_and_leaves_the_registry() {
        let registry = Arc::new(Registry::new(10));
        let (session, from_client) = registry.get_or_create("s", &timing()).unwrap();
        assert!(from_client.is_some());
        let Attach::Opened(id) = session.attach(false) else {
            panic!("not opened");
        };
        assert!(matches!(session.attach(false), Attach::Busy));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!session.is_over(), "a receiver is attached");
        session.detach(id, false);
        tokio::time::sleep(Duration::from_millis(4_900)).await;
        assert!(!session.is_over());
        let Attach::Attached(id) = session.attach(false) else {
            panic!("not attached");
        };
        session.detach(id, false);
        tokio::time::sleep(Duration::from_millis(5_100)).await;
        assert!(session.is_over());
        tokio::task::yield_now().await;
        assert!(registry.get("s").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn sends_wait_for_room_and_fail_once_closed() {
        let (session, _from_client) = unregistered(&timing(), true);
        let Attach::Opened(id) = session.attach(false) else {
            panic!("not opened");
        };
        session.send([Bytes::from("12345678")]).await.unwrap();
        let blocked = {
            let session = session.clone();
            tokio::spawn(async move { session.send([Bytes::from("abcdef")]).await })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!blocked.is_finished(), "the queue is full");
        let shutdown = CancellationToken::new();
        let Outgoing::Messages(first, bytes) = session.next(id, &shutdown).await else {
            panic!("no messages");
        };
        assert_eq!((first, bytes), (vec![Bytes::from("12345678")], 8));
        blocked.await.unwrap().unwrap();
        assert!(matches!(
            session.next(id, &shutdown).await,
            Outgoing::Messages(m, 6) if m == ["abcdef"]
        ));
        assert!(matches!(
            session.next(id, &shutdown).await,
            Outgoing::Heartbeat
        ));
        session.close(3000, "Go away!");
        assert_eq!(session.send([Bytes::from("x")]).await, Err(Closed));
        assert!(matches!(
            session.next(id, &shutdown).await,
            Outgoing::Close(3000, r) if r == "Go away!"
        ));
        session.detach(id, false);
        assert!(matches!(session.attach(false), Attach::Closed { .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn an_interrupted_receiver_ends_the_session() {
        let (session, mut from_client) = unregistered(&timing(), true);
        let Attach::Opened(id) = session.attach(false) else {
            panic!("not opened");
        };
        session.receive(vec!["hi".into()]).await;
        assert_eq!(from_client.recv().await.unwrap(), ["hi"]);
        session.detach(id, true);
        assert!(session.is_over());
        assert!(matches!(session.attach(false), Attach::Closed { .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn a_close_frame_nobody_takes_ends_the_session_after_the_timeout() {
        let registry = Arc::new(Registry::new(10));
        let (session, _from_client) = registry.get_or_create("s", &timing()).unwrap();
        let Attach::Opened(_id) = session.attach(false) else {
            panic!("not opened");
        };
        // Attached but never read again: the close frame waits, then the session is over.
        session.close(1000, "Normal closure");
        tokio::time::sleep(Duration::from_millis(4_900)).await;
        assert!(!session.is_over());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(session.is_over());
        tokio::task::yield_now().await;
        assert!(registry.get("s").is_none());
    }

    #[test]
    fn a_timeout_past_the_end_of_time_is_never_not_a_panic() {
        assert_eq!(later(Instant::now(), Duration::MAX), None);
        let now = Instant::now();
        assert_eq!(
            later(now, Duration::from_secs(5)),
            Some(now + Duration::from_secs(5))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn one_sender_at_a_time_and_the_next_waits_with_a_bound() {
        let (session, _from_client) = unregistered(&timing(), true);
        let first = session.sending().await.unwrap();
        assert!(first.is_some());
        // A second waits behind the first, and gives up after the session timeout.
        let started = Instant::now();
        assert_eq!(session.sending().await.err(), Some(SendBusy));
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        drop(first);
        assert!(session.sending().await.unwrap().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_poll_of_a_closed_session_gets_its_messages_then_the_close_on_the_next() {
        let (session, _from_client) = unregistered(&timing(), true);
        let Attach::Opened(id) = session.attach(true) else {
            panic!("not opened");
        };
        session.detach(id, false);
        session.send([Bytes::from("left")]).await.unwrap();
        session.close(3000, "Go away!");
        let Attach::Closed { pending, frame } = session.attach(true) else {
            panic!("not closed");
        };
        assert_eq!((pending, frame), (vec![Bytes::from("left")], None));
        let Attach::Closed { pending, frame } = session.attach(true) else {
            panic!("not closed");
        };
        assert!(pending.is_empty());
        assert_eq!(frame.as_deref(), Some("c[3000,\"Go away!\"]"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_registry_holds_at_most_its_maximum() {
        let registry = Arc::new(Registry::new(2));
        let (a, _) = registry.get_or_create("a", &timing()).unwrap();
        registry.get_or_create("b", &timing()).unwrap();
        assert_eq!(registry.get_or_create("c", &timing()).err(), Some(Full));
        // A session that exists is still found.
        assert!(registry.get_or_create("a", &timing()).unwrap().1.is_none());
        a.terminate();
        tokio::task::yield_now().await;
        assert!(registry.get_or_create("c", &timing()).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn session_tasks_run_on_the_tracker_and_end_at_shutdown() {
        let timing = timing();
        let registry = Arc::new(Registry::new(10));
        let (session, _) = registry.get_or_create("s", &timing).unwrap();
        let (unregistered, _) = unregistered(&timing, true);
        assert_eq!(timing.tracker.len(), 2);
        timing.shutdown.cancel();
        timing.tracker.close();
        tokio::time::timeout(Duration::from_secs(1), timing.tracker.wait())
            .await
            .unwrap();
        assert!(session.is_over() && unregistered.is_over());
        assert!(registry.get("s").is_none());
    }
}
