//! `UserSupervisor`: one actor per user with at least one open session.
//!
//! It owns the per-user connection limit and fans each of the user's frames out to every
//! session. A session is registered the moment it is opened, before its actor runs: a frame
//! fanned out after the open always reaches it, which the replay switch-over relies on, and two
//! simultaneous connects cannot both take the last slot.

use crate::frame::{Encoded, Frame};
use crate::journal::EventLog;
use crate::metrics::Metrics;
use crate::registry::SupervisorIdle;
use crate::session::{
    next_session_id, ClientGone, Close, CloseWithRetry, CutOff, Deliver, EndReason, Nudge, Resume,
    SessionEnded, SessionId, SessionParts, SessionStarted, SseSession,
};
use crate::stream_config::StreamConfig;
use actix::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
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
    pub frames: mpsc::Receiver<Encoded>,
    /// Tells the writer to stop at once when the session is cut off for falling behind.
    pub cut_off: CutOff,
}

/// Open one more session for this supervisor's user, within the limit.
#[derive(Message)]
#[rtype(result = "Result<SessionHandle, ConnectError>")]
pub struct OpenSession {
    pub resume: Resume,
    pub client_gone: Option<ClientGone>,
    /// Where the session runs (see [`crate::registry::Connect::home`]).
    pub home: Option<actix::dev::ArbiterHandle>,
    /// The session's share of a cluster-wide limit, held while it runs (see [`Lease`]).
    pub lease: Option<Lease>,
    /// See [`crate::registry::Connect::expires_at`].
    pub expires_at: Option<std::time::SystemTime>,
}

/// A slot of the cluster-wide per-user connection limit, taken before the session opens.
/// Dropping it gives the slot back, so the supervisor holds it exactly as long as the session:
/// a session that ends frees its slot at once, one refused here frees it at once too.
pub struct Lease {
    /// Never read: held only for its `Drop`.
    _holder: Box<dyn Send>,
}

impl Lease {
    /// `holder` gives the slot back when dropped.
    pub fn new(holder: impl Send + 'static) -> Self {
        Lease {
            _holder: Box::new(holder),
        }
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lease")
    }
}

/// A frame for every session of the user.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Fanout(pub Frame);

/// Stop if no session is open; answers whether it stopped. The registry asks this instead of
/// letting supervisors stop on their own, so it never hands out a supervisor that is about to
/// disappear.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct StopIfIdle;

/// End every session of the user.
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct CloseSessions(pub EndReason);

/// End every session of the user at its own moment within `window`, each with its own
/// `retry:` hint up to `retry` (draining: clients come back spread out, not in one storm).
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct DrainSessions {
    pub window: Duration,
    pub retry: Duration,
}

/// The user's stream head, as the sweep read it from the journal.
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct HeadIs(pub u64);

struct Slot {
    session: Addr<SseSession>,
    running: bool,
    _lease: Option<Lease>,
}

pub struct UserSupervisor {
    user_id: Arc<str>,
    config: StreamConfig,
    log: Arc<dyn EventLog>,
    registry: Recipient<SupervisorIdle>,
    sessions: HashMap<SessionId, Slot>,
    /// Running sessions, read by the registry for statistics without a message round trip.
    running: Arc<AtomicUsize>,
    /// Set once every session has been told to close; a session still starting then is closed
    /// as soon as it reports in.
    closing: Option<EndReason>,
    /// The highest cursor fanned out or reported by the sweep, shared with the registry: the
    /// sweep nudges only supervisors whose user's head moved past it.
    seen: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
}

/// What a supervisor shares with the registry that started it.
pub struct SupervisorParts {
    pub config: StreamConfig,
    pub log: Arc<dyn EventLog>,
    pub registry: Recipient<SupervisorIdle>,
    pub running: Arc<AtomicUsize>,
    pub seen: Arc<AtomicU64>,
    pub metrics: Arc<Metrics>,
}

impl UserSupervisor {
    pub fn new(user_id: Arc<str>, parts: SupervisorParts) -> Self {
        UserSupervisor {
            user_id,
            config: parts.config,
            log: parts.log,
            registry: parts.registry,
            sessions: HashMap::new(),
            running: parts.running,
            closing: None,
            seen: parts.seen,
            metrics: parts.metrics,
        }
    }

    /// Publishes the running sessions to the registry's statistics and, as a change, to the
    /// connection and user gauges (only this supervisor writes `running`, so the swap sees the
    /// count it last published).
    fn publish_count(&self) {
        let n = self.sessions.values().filter(|s| s.running).count();
        let before = self.running.swap(n, Ordering::Relaxed);
        self.metrics.user_sessions_changed(before, n);
    }
}

impl Actor for UserSupervisor {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Self::Context) {
        let before = self.running.swap(0, Ordering::Relaxed);
        self.metrics.user_sessions_changed(before, 0);
    }
}

impl Handler<OpenSession> for UserSupervisor {
    type Result = Result<SessionHandle, ConnectError>;

    fn handle(&mut self, msg: OpenSession, ctx: &mut Self::Context) -> Self::Result {
        let limit = self.config.max_connections_per_user;
        if self.sessions.len() >= limit {
            return Err(ConnectError::LimitReached { limit });
        }
        let id = next_session_id();
        let (tx, rx) = mpsc::channel(self.config.session_queue);
        let (cut_off, cut_off_rx) = tokio::sync::oneshot::channel();
        let me = ctx.address();
        let session = SseSession::new(
            id,
            self.user_id.clone(),
            SessionParts {
                frames: tx,
                started: me.clone().recipient(),
                ended: me.recipient(),
                config: self.config.clone(),
                log: self.log.clone(),
                resume: msg.resume,
                client_gone: msg.client_gone,
                expires_at: msg.expires_at,
                metrics: self.metrics.clone(),
                cut_off,
            },
        );
        let session = match msg.home {
            Some(home) => SseSession::start_in_arbiter(&home, move |_| session),
            None => session.start(),
        };
        self.sessions.insert(
            id,
            Slot {
                session,
                running: false,
                _lease: msg.lease,
            },
        );
        Ok(SessionHandle {
            id,
            frames: rx,
            cut_off: cut_off_rx,
        })
    }
}

impl Handler<SessionStarted> for UserSupervisor {
    type Result = ();

    fn handle(&mut self, msg: SessionStarted, _: &mut Self::Context) {
        if let Some(slot) = self.sessions.get_mut(&msg.id) {
            slot.running = true;
            if let Some(reason) = self.closing {
                slot.session.do_send(Close(reason));
            }
        }
        self.publish_count();
    }
}

impl Handler<SessionEnded> for UserSupervisor {
    type Result = ();

    fn handle(&mut self, msg: SessionEnded, _: &mut Self::Context) {
        self.sessions.remove(&msg.id);
        self.publish_count();
        log::debug!(
            "session {} of user {} ended: {}",
            msg.id,
            self.user_id,
            msg.reason.as_str()
        );
        if self.sessions.is_empty() {
            self.registry.do_send(SupervisorIdle {
                user_id: self.user_id.clone(),
            });
        }
    }
}

impl Handler<Fanout> for UserSupervisor {
    type Result = ();

    fn handle(&mut self, msg: Fanout, _: &mut Self::Context) {
        if let Some(seq) = msg.0.seq() {
            self.seen.fetch_max(seq, Ordering::Relaxed);
        }
        for slot in self.sessions.values() {
            slot.session.do_send(Deliver(msg.0.clone()));
        }
    }
}

impl Handler<HeadIs> for UserSupervisor {
    type Result = ();

    fn handle(&mut self, msg: HeadIs, _: &mut Self::Context) {
        if self.seen.fetch_max(msg.0, Ordering::Relaxed) < msg.0 {
            for slot in self.sessions.values() {
                slot.session.do_send(Nudge(msg.0));
            }
        }
    }
}

impl Handler<DrainSessions> for UserSupervisor {
    type Result = ();

    fn handle(&mut self, msg: DrainSessions, ctx: &mut Self::Context) {
        self.closing = Some(EndReason::Shutdown);
        for slot in self.sessions.values() {
            let session = slot.session.clone();
            let at = msg.window.mul_f64(fastrand::f64());
            let retry = msg.retry.mul_f64(fastrand::f64());
            ctx.run_later(at, move |_, _| session.do_send(CloseWithRetry(retry)));
        }
    }
}

impl Handler<StopIfIdle> for UserSupervisor {
    type Result = bool;

    fn handle(&mut self, _: StopIfIdle, ctx: &mut Self::Context) -> bool {
        let idle = self.sessions.is_empty();
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
        for slot in self.sessions.values() {
            slot.session.do_send(Close(msg.0));
        }
    }
}
