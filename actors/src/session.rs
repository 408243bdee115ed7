//! `SseSession`: one actor per open SSE connection.
//!
//! The session owns the bounded sender whose receiver is the HTTP response body. It registers
//! with its user's supervisor in `started` and deregisters in `stopping`, so the supervisor's
//! view of live sessions is exactly the set of running session actors. A session never blocks:
//! a full queue means the client is not reading fast enough, and the session closes rather
//! than hold back anyone else's delivery (the client reconnects and replays).

use crate::frame::Frame;
use crate::stream_config::StreamConfig;
use actix::prelude::*;
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Process-wide unique id of a session, for logs and lifecycle messages.
pub type SessionId = u64;

static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) fn next_session_id() -> SessionId {
    NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed)
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// The client went away: the body stream was dropped.
    ClientGone,
    /// The client read too slowly and the bounded queue overflowed.
    QueueOverflow,
    /// The router is shutting down.
    Shutdown,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::ClientGone => "client_gone",
            EndReason::QueueOverflow => "queue_overflow",
            EndReason::Shutdown => "shutdown",
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

/// Sent by a session to its supervisor once it runs.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionStarted {
    pub id: SessionId,
    pub deliver: Recipient<Deliver>,
    pub close: Recipient<Close>,
}

/// Sent by a session to its supervisor as it stops.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct SessionEnded {
    pub id: SessionId,
    pub reason: EndReason,
}

pub struct SseSession {
    id: SessionId,
    user_id: Arc<str>,
    outbox: mpsc::Sender<Bytes>,
    started: Recipient<SessionStarted>,
    ended: Recipient<SessionEnded>,
    config: StreamConfig,
    reason: EndReason,
}

impl SseSession {
    pub fn new(
        id: SessionId,
        user_id: Arc<str>,
        outbox: mpsc::Sender<Bytes>,
        started: Recipient<SessionStarted>,
        ended: Recipient<SessionEnded>,
        config: StreamConfig,
    ) -> Self {
        SseSession {
            id,
            user_id,
            outbox,
            started,
            ended,
            config,
            reason: EndReason::ClientGone,
        }
    }

    /// Queues a frame without waiting; stops the session if the client cannot take it.
    fn push(&mut self, frame: Frame, ctx: &mut Context<Self>) {
        match self.outbox.try_send(frame.into_bytes()) {
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
            ctx.stop();
        }
    }
}

impl Actor for SseSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.started.do_send(SessionStarted {
            id: self.id,
            deliver: ctx.address().recipient(),
            close: ctx.address().recipient(),
        });
        self.push(Frame::connection_established(&self.user_id), ctx);
        self.push(Frame::retry(self.config.retry.as_millis() as u64), ctx);

        ctx.run_interval(self.config.heartbeat, |act, ctx| {
            act.push(Frame::heartbeat(), ctx);
        });

        // The body stream drops its receiver when the client disconnects; notice at once
        // rather than at the next write.
        let outbox = self.outbox.clone();
        ctx.spawn(
            async move { outbox.closed().await }
                .into_actor(self)
                .map(|(), act, ctx| act.end(EndReason::ClientGone, ctx)),
        );
    }

    fn stopping(&mut self, _: &mut Self::Context) -> Running {
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
        self.push(msg.0, ctx);
    }
}

impl Handler<Close> for SseSession {
    type Result = ();

    fn handle(&mut self, msg: Close, ctx: &mut Self::Context) {
        self.end(msg.0, ctx);
    }
}
