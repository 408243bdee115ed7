//! `SseSession`: one actor per open SSE connection.
//!
//! The session owns the bounded sender whose receiver is the HTTP response body. Its
//! supervisor registers it when opening it (so no frame fanned out after the open can miss
//! it); the session reports `SessionStarted` once running and `SessionEnded { reason }` when it
//! stops. A live frame never blocks: a full queue means the client reads too slowly, and the
//! session closes rather than hold back anyone else (the client reconnects and resumes).
//!
//! A session opened with a cursor first catches up from the journal, then goes live; one opened
//! without a cursor first reads where the user's stream stands, so that it, too, has a cursor
//! from the start. While it reads it handles no other message, so live frames wait in its
//! mailbox; afterwards each is dropped if its cursor was already sent.
//!
//! Frames reach a session from its own instance's journal and, through the live bus, from the
//! journals of other instances, so they may arrive out of order or not at all. A frame whose
//! cursor jumps past the next one makes the session fill the gap from the journal before it
//! writes on; a [`Nudge`] (the sweep saw the stream's head move) does the same without a frame.
//! Cursors only move forward, so the client sees every shown event once, in order.

use crate::frame::{Encoded, Frame};
use crate::journal::{blocking, check_cursor, CursorCheck, EventLog, LogError};
use crate::metrics::Metrics;
use crate::stream_config::StreamConfig;
use actix::prelude::*;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Process-wide unique id of a session, for logs and lifecycle messages.
pub type SessionId = u64;

static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) fn next_session_id() -> SessionId {
    NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed)
}

/// Resolves when the client's connection is gone. The transport supplies it where it can see
/// the peer hang up before the next write would fail (an idle stream otherwise only learns of
/// a closed connection at its next heartbeat).
pub type ClientGone = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Resolves (with `Ok`) when the session was cut off because its client fell behind: its
/// queue overflowed, or a catch-up waited too long for room. The writer then drops what is
/// still queued and ends the body at once, rather than pushing a backlog into a socket the
/// client is not reading (the client resumes from its last whole frame with `Last-Event-ID`).
/// Any other end of the session drops the sender instead, so the writer sees `Err` and goes on
/// draining the queue (a final `retry:` hint must still reach the client).
pub type CutOff = tokio::sync::oneshot::Receiver<()>;

/// Where a new stream starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// From now on (no `Last-Event-ID`).
    Live,
    /// From now on, where "now" is this head of the user's stream, read as the client connected
    /// (the registry makes [`Resume::Live`] this): what was stored after it is replayed, and a
    /// failure to read it does not end the stream.
    Head(u64),
    /// After this cursor: replay what was missed, then live.
    After(u64),
    /// The client sent a cursor that is not one of ours: resync, then live.
    Invalid,
}

/// Events read from the journal per query while catching up.
const REPLAY_PAGE: usize = 500;

/// How long catching up waits for a client to make room in its queue before giving up on it.
const REPLAY_SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// The client went away: the body stream was dropped.
    ClientGone,
    /// The client read too slowly and the bounded queue overflowed.
    QueueOverflow,
    /// Catching up from the journal failed (the database is unreachable); the client retries.
    ReplayFailed,
    /// The router is shutting down.
    Shutdown,
    /// The token that opened the stream expired; its last frame said so.
    TokenExpired,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::ClientGone => "client_gone",
            EndReason::QueueOverflow => "queue_overflow",
            EndReason::ReplayFailed => "replay_failed",
            EndReason::Shutdown => "shutdown",
            EndReason::TokenExpired => "token_expired",
        }
    }
}

/// A frame for this session's client.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Deliver(pub Frame);

/// Ask the session to end (graceful shutdown).
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct Close(pub EndReason);

/// Ask the session to end with a final `retry:` hint (draining: each client is told its own
/// reconnection delay, so a drained instance's clients do not all come back at once).
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct CloseWithRetry(pub Duration);

/// The user's stream reached `head` in the journal: catch up to it if this session is behind
/// (its frame was lost on the bus).
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct Nudge(pub u64);

/// Sent by a session to its supervisor once it runs.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct SessionStarted {
    pub id: SessionId,
}

/// Sent by a session to its supervisor as it stops.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct SessionEnded {
    pub id: SessionId,
    pub reason: EndReason,
}

/// What a session needs to run, besides its identity.
pub struct SessionParts {
    /// The bounded queue the response body drains onto the socket.
    pub frames: mpsc::Sender<Encoded>,
    pub started: Recipient<SessionStarted>,
    pub ended: Recipient<SessionEnded>,
    pub config: StreamConfig,
    pub log: Arc<dyn EventLog>,
    pub resume: Resume,
    pub client_gone: Option<ClientGone>,
    /// When the stream's token expires (see [`crate::registry::Connect::expires_at`]).
    pub expires_at: Option<std::time::SystemTime>,
    /// Where the session counts its deliveries and its end.
    pub metrics: Arc<Metrics>,
    /// Fired if the session is cut off for falling behind (see [`CutOff`]).
    pub cut_off: tokio::sync::oneshot::Sender<()>,
}

/// The session's end of its frame queue, counting each frame queued.
#[derive(Clone)]
struct FrameQueue {
    tx: mpsc::Sender<Encoded>,
    metrics: Arc<Metrics>,
}

impl FrameQueue {
    /// Queues without waiting (live delivery, control frames).
    fn try_send(&self, frame: Frame) -> Result<(), mpsc::error::TrySendError<Encoded>> {
        let counted = (frame.event_type(), frame.committed_at());
        self.tx.try_send(frame.into_encoded())?;
        self.metrics.event_delivered(counted.0, counted.1);
        Ok(())
    }

    /// Waits for room (a replay the client reads as its backlog), up to the stall limit.
    async fn send(&self, frame: Frame) -> Result<(), CatchUpError> {
        let counted = (frame.event_type(), frame.committed_at());
        match tokio::time::timeout(REPLAY_SEND_TIMEOUT, self.tx.send(frame.into_encoded())).await {
            Ok(Ok(())) => {
                self.metrics.event_delivered(counted.0, counted.1);
                Ok(())
            }
            Ok(Err(_)) => Err(CatchUpError::ClientGone),
            Err(_) => Err(CatchUpError::Stalled),
        }
    }
}

pub struct SseSession {
    id: SessionId,
    user_id: Arc<str>,
    frames: FrameQueue,
    started: Recipient<SessionStarted>,
    ended: Recipient<SessionEnded>,
    config: StreamConfig,
    log: Arc<dyn EventLog>,
    resume: Resume,
    client_gone: Option<ClientGone>,
    expires_at: Option<std::time::SystemTime>,
    /// Cursor of the last stored event sent; live frames at or below it are duplicates.
    last_seq: Option<u64>,
    reason: EndReason,
    cut_off: Option<tokio::sync::oneshot::Sender<()>>,
}

impl SseSession {
    pub fn new(id: SessionId, user_id: Arc<str>, parts: SessionParts) -> Self {
        SseSession {
            id,
            user_id,
            frames: FrameQueue {
                tx: parts.frames,
                metrics: parts.metrics,
            },
            started: parts.started,
            ended: parts.ended,
            config: parts.config,
            log: parts.log,
            resume: parts.resume,
            client_gone: parts.client_gone,
            expires_at: parts.expires_at,
            last_seq: None,
            reason: EndReason::ClientGone,
            cut_off: Some(parts.cut_off),
        }
    }

    /// Queues a frame without waiting; stops the session if the client cannot take it.
    fn push(&mut self, frame: Frame, ctx: &mut Context<Self>) {
        match self.frames.try_send(frame) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                log::info!(
                    "session {} of user {} closed: queue of {} frames overflowed",
                    self.id,
                    self.user_id,
                    self.config.session_queue
                );
                self.end(EndReason::QueueOverflow, ctx);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => self.end(EndReason::ClientGone, ctx),
        }
    }

    fn end(&mut self, reason: EndReason, ctx: &mut Context<Self>) {
        if ctx.state() == ActorState::Running {
            self.reason = reason;
            if reason == EndReason::QueueOverflow {
                if let Some(cut_off) = self.cut_off.take() {
                    // The writer may already be gone; then there is no one to tell.
                    let _ = cut_off.send(());
                }
            }
            ctx.stop();
        }
    }

    /// Replays from the journal after `from` before any other message is handled; then
    /// `then` (a live frame that revealed the gap) is delivered if it is still new.
    fn catch_up(&mut self, from: Resume, then: Option<Frame>, ctx: &mut Context<Self>) {
        let replay = catch_up(
            self.log.clone(),
            self.user_id.clone(),
            from,
            self.frames.clone(),
            self.config.clone(),
        );
        ctx.wait(
            replay
                .into_actor(self)
                .map(move |outcome, act, ctx| match outcome {
                    Ok(last) => {
                        act.last_seq = last.max(act.last_seq);
                        if let Some(frame) = then {
                            act.deliver(frame, false, ctx);
                        }
                    }
                    Err(CatchUpError::Log(e)) if matches!(from, Resume::Head(_)) => {
                        // The cursor is known; a later frame or sweep fills what was missed.
                        log::debug!("session {} could not read past its head: {e}", act.id);
                        if let Resume::Head(head) = from {
                            act.last_seq = act.last_seq.max(Some(head));
                        }
                        if let Some(frame) = then {
                            act.deliver(frame, false, ctx);
                        }
                    }
                    Err(CatchUpError::Log(e)) if from == Resume::Live => {
                        // Without the head the stream still runs; its first frame sets the
                        // cursor instead.
                        log::debug!("session {} could not read its stream head: {e}", act.id);
                        if let Some(frame) = then {
                            act.deliver(frame, false, ctx);
                        }
                    }
                    Err(CatchUpError::Log(e)) => {
                        log::warn!("session {} could not catch up: {e}", act.id);
                        act.end(EndReason::ReplayFailed, ctx);
                    }
                    Err(CatchUpError::ClientGone) => act.end(EndReason::ClientGone, ctx),
                    Err(CatchUpError::Stalled) => act.end(EndReason::QueueOverflow, ctx),
                }),
        );
    }

    /// Arms the session's one timer: the next heartbeat, or the token's expiry if that comes
    /// first. One timer rather than a heartbeat interval beside an expiry timer: every idle
    /// stream holds it, and a second one measurably grew each stream's memory.
    fn schedule_tick(&mut self, ctx: &mut Context<Self>) {
        let heartbeat = self.config.heartbeat;
        let next = match self.expires_at {
            Some(at) => at
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default()
                .min(heartbeat),
            None => heartbeat,
        };
        ctx.run_later(next, |act, ctx| act.tick(ctx));
    }

    /// At the token's expiry the stream ends with a `token_expired` frame (the client
    /// reconnects with a fresh token and resumes with `Last-Event-ID`); otherwise a heartbeat.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        let expired = self
            .expires_at
            .is_some_and(|at| at <= std::time::SystemTime::now());
        if expired {
            self.push(Frame::token_expired(), ctx);
            self.end(EndReason::TokenExpired, ctx);
            return;
        }
        // A tick a moment before the expiry (timer granularity) only re-arms for it.
        let early = self.expires_at.is_some_and(|at| {
            at.duration_since(std::time::SystemTime::now())
                .is_ok_and(|left| left < Duration::from_millis(50))
        });
        if !early {
            self.push(Frame::heartbeat(), ctx);
        }
        if ctx.state() == ActorState::Running {
            self.schedule_tick(ctx);
        }
    }

    /// Writes a stored event's frame in cursor order: a duplicate is dropped, a jump past the
    /// next cursor is filled from the journal first (`may_fill`), a hidden type only moves the
    /// cursor. A frame still ahead of the journal right after a fill is not one of this
    /// store's events yet; it is left to the sweep rather than written past a gap.
    fn deliver(&mut self, frame: Frame, may_fill: bool, ctx: &mut Context<Self>) {
        let Some(seq) = frame.seq() else {
            self.push(frame, ctx);
            return;
        };
        match self.last_seq {
            Some(last) if seq <= last => return,
            Some(last) if seq > last + 1 && may_fill => {
                self.catch_up(Resume::After(last), Some(frame), ctx);
                return;
            }
            Some(last) if seq > last + 1 => {
                log::debug!(
                    "session {}: frame {seq} is ahead of the journal (at {last}); left to the sweep",
                    self.id
                );
                return;
            }
            _ => {}
        }
        self.last_seq = Some(seq);
        if self.config.shows(&frame) {
            self.push(frame, ctx);
        }
    }
}

enum CatchUpError {
    Log(LogError),
    ClientGone,
    Stalled,
}

impl From<LogError> for CatchUpError {
    fn from(e: LogError) -> Self {
        CatchUpError::Log(e)
    }
}

/// Sends every stored event after the cursor, or a resync when that cannot be done exactly.
/// Returns the cursor the stream now stands at (for [`Resume::Live`]: the head, nothing sent).
/// Waits for queue room (the client is reading its backlog), unlike live delivery.
async fn catch_up(
    log: Arc<dyn EventLog>,
    user_id: Arc<str>,
    resume: Resume,
    frames: FrameQueue,
    config: StreamConfig,
) -> Result<Option<u64>, CatchUpError> {
    let user = user_id.to_string();
    if let Resume::Head(head) = resume {
        return replay(&log, &user, head, head, &frames, &config).await;
    }
    let bounds = {
        let (log, user) = (log.clone(), user.clone());
        blocking(move || log.stream_bounds(&user)).await?
    };
    let head = bounds.1;
    let cursor = match resume {
        Resume::Live => return Ok(Some(head)),
        Resume::After(c) if check_cursor(c, bounds) == CursorCheck::Resumable => c,
        Resume::After(_) | Resume::Head(_) | Resume::Invalid => {
            frames.send(Frame::resync(head)).await?;
            return Ok(Some(head));
        }
    };
    replay(&log, &user, cursor, head, &frames, &config).await
}

/// Sends the stored events after `cursor` (a resync if one was pruned meanwhile); returns the
/// cursor reached.
async fn replay(
    log: &Arc<dyn EventLog>,
    user: &str,
    mut cursor: u64,
    head: u64,
    frames: &FrameQueue,
    config: &StreamConfig,
) -> Result<Option<u64>, CatchUpError> {
    loop {
        let page = {
            let (log, user) = (log.clone(), user.to_owned());
            blocking(move || log.events_after(&user, cursor, REPLAY_PAGE)).await?
        };
        let full = page.len() == REPLAY_PAGE;
        for event in page {
            if event.seq != cursor + 1 {
                // Pruned between the bounds check and this read: not exact any more.
                frames.send(Frame::resync(head.max(event.seq))).await?;
                return Ok(Some(head.max(event.seq)));
            }
            let frame = Frame::stored(event.seq, &event.event_type, &event.envelope_json);
            if config.shows(&frame) {
                frames.send(frame).await?;
            }
            cursor = event.seq;
        }
        if !full {
            return Ok(Some(cursor));
        }
    }
}

impl Actor for SseSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.frames.metrics.session_opened();
        self.started.do_send(SessionStarted { id: self.id });
        self.push(Frame::connection_established(&self.user_id), ctx);
        self.push(Frame::retry(self.config.retry.as_millis() as u64), ctx);
        self.catch_up(self.resume, None, ctx);

        self.schedule_tick(ctx);

        // The body stream drops its receiver when the client disconnects.
        let queue = self.frames.tx.clone();
        ctx.spawn(
            async move { queue.closed().await }
                .into_actor(self)
                .map(|(), act, ctx| act.end(EndReason::ClientGone, ctx)),
        );
        if let Some(gone) = self.client_gone.take() {
            ctx.spawn(
                gone.into_actor(self)
                    .map(|(), act, ctx| act.end(EndReason::ClientGone, ctx)),
            );
        }
    }

    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        self.frames.metrics.session_closed(self.reason);
        self.ended.do_send(SessionEnded {
            id: self.id,
            reason: self.reason,
        });
        Running::Stop
    }
}

impl Handler<Deliver> for SseSession {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        self.deliver(msg.0, true, ctx);
    }
}

impl Handler<Nudge> for SseSession {
    type Result = ();

    fn handle(&mut self, msg: Nudge, ctx: &mut Self::Context) {
        if let Some(last) = self.last_seq.filter(|&last| msg.0 > last) {
            self.catch_up(Resume::After(last), None, ctx);
        }
    }
}

impl Handler<CloseWithRetry> for SseSession {
    type Result = ();

    fn handle(&mut self, msg: CloseWithRetry, ctx: &mut Self::Context) {
        self.push(Frame::retry(msg.0.as_millis() as u64), ctx);
        self.end(EndReason::Shutdown, ctx);
    }
}

impl Handler<Close> for SseSession {
    type Result = ();

    fn handle(&mut self, msg: Close, ctx: &mut Self::Context) {
        self.end(msg.0, ctx);
    }
}
