//! `UserSupervisor`: one actor per user with at least one open session.
//!
//! It owns the per-user connection limit and fans each of the user's frames out to every live
//! session. Slots are reserved when a session is opened (before the session actor has run),
//! so two simultaneous connects cannot both take the last slot.

use crate::frame::Frame;
use crate::registry::SupervisorIdle;
use crate::session::{
    next_session_id, Close, Deliver, EndReason, SessionEnded, SessionId, SessionStarted,
    SseSession,
};
use crate::stream_config::StreamConfig;
use actix::prelude::*;
use bytes::Bytes;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Why a session could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error("user already holds {limit} SSE connections")]
    LimitReached { limit: usize },
    #[error("the session registry is not running")]
    Unavailable,
}

/// An opened session, as the HTTP edge (or a test) sees it: the stream of encoded frames to
/// write to the client. Dropping `frames` is how the client's departure reaches the session.
#[derive(Debug)]
pub struct SessionHandle {
    pub id: SessionId,
    pub frames: mpsc::Receiver<Bytes>,
}

/// Open one more session for this supervisor's user, within the limit.
#[derive(Message)]
#[rtype(result = "Result<SessionHandle, ConnectError>")]
pub struct OpenSession;

/// A frame for every live session of the user.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Fanout(pub Frame);

/// Stop if no session is open or reserved; answers whether it stopped. The registry asks this
/// instead of letting supervisors stop on their own, so it never hands out a supervisor that
/// is about to disappear.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct StopIfIdle;

/// End every session of the user.
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct CloseSessions(pub EndReason);

struct LiveSession {
    deliver: Recipient<Deliver>,
    close: Recipient<Close>,
}

pub struct UserSupervisor {
    user_id: Arc<str>,
    config: StreamConfig,
    registry: Recipient<SupervisorIdle>,
    reserved: HashSet<SessionId>,
    live: HashMap<SessionId, LiveSession>,
    /// Read by the registry for statistics without a message round trip.
    live_count: Arc<AtomicUsize>,
    /// Set once every session has been told to close; a session that was still starting then
    /// is closed as soon as it reports in.
    closing: Option<EndReason>,
}

impl UserSupervisor {
    pub fn new(
        user_id: Arc<str>,
        config: StreamConfig,
        registry: Recipient<SupervisorIdle>,
        live_count: Arc<AtomicUsize>,
    ) -> Self {
        UserSupervisor {
            user_id,
            config,
            registry,
            reserved: HashSet::new(),
            live: HashMap::new(),
            live_count,
            closing: None,
        }
    }

    fn open_count(&self) -> usize {
        self.reserved.len() + self.live.len()
    }

    fn publish_count(&self) {
        self.live_count.store(self.live.len(), Ordering::Relaxed);
    }
}

impl Actor for UserSupervisor {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Self::Context) {
        self.live_count.store(0, Ordering::Relaxed);
    }
}

impl Handler<OpenSession> for UserSupervisor {
    type Result = Result<SessionHandle, ConnectError>;

    fn handle(&mut self, _: OpenSession, ctx: &mut Self::Context) -> Self::Result {
        let limit = self.config.max_connections_per_user;
        if self.open_count() >= limit {
            return Err(ConnectError::LimitReached { limit });
        }
        let id = next_session_id();
        let (tx, rx) = mpsc::channel(self.config.session_queue);
        let me = ctx.address();
        SseSession::new(
            id,
            self.user_id.clone(),
            tx,
            me.clone().recipient(),
            me.recipient(),
            self.config.clone(),
        )
        .start();
        self.reserved.insert(id);
        Ok(SessionHandle { id, frames: rx })
    }
}

impl Handler<SessionStarted> for UserSupervisor {
    type Result = ();

    fn handle(&mut self, msg: SessionStarted, _: &mut Self::Context) {
        if let Some(reason) = self.closing {
            msg.close.do_send(Close(reason));
        }
        if self.reserved.remove(&msg.id) {
            self.live.insert(
                msg.id,
                LiveSession {
                    deliver: msg.deliver,
                    close: msg.close,
                },
            );
            self.publish_count();
        }
    }
}

impl Handler<SessionEnded> for UserSupervisor {
    type Result = ();

    fn handle(&mut self, msg: SessionEnded, _: &mut Self::Context) {
        self.reserved.remove(&msg.id);
        self.live.remove(&msg.id);
        self.publish_count();
        log::debug!(
            "session {} of user {} ended: {}",
            msg.id,
            self.user_id,
            msg.reason.as_str()
        );
        if self.open_count() == 0 {
            self.registry.do_send(SupervisorIdle {
                user_id: self.user_id.clone(),
            });
        }
    }
}

impl Handler<Fanout> for UserSupervisor {
    type Result = ();

    fn handle(&mut self, msg: Fanout, _: &mut Self::Context) {
        for session in self.live.values() {
            session.deliver.do_send(Deliver(msg.0.clone()));
        }
    }
}

impl Handler<StopIfIdle> for UserSupervisor {
    type Result = bool;

    fn handle(&mut self, _: StopIfIdle, ctx: &mut Self::Context) -> bool {
        let idle = self.open_count() == 0;
        if idle {
            ctx.stop();
        }
        idle
    }
}

impl Handler<CloseSessions> for UserSupervisor {
    type Result = ();

    fn handle(&mut self, msg: CloseSessions, _: &mut Self::Context) {
        self.closing = Some(msg.0);
        for session in self.live.values() {
            session.close.do_send(Close(msg.0));
        }
    }
}
