//! `SessionRegistry`: the directory of users with open streams.
//!
//! It maps a user id to that user's `UserSupervisor`, creating supervisors on first connect and
//! retiring them once idle, routes each published frame to the right supervisor, and answers
//! [`GetStats`] with the connection statistics. Connects and retirements are handled atomically
//! (the registry waits for the supervisor's answer before taking its next message), which is what
//! makes "retire when idle" race-free against a connect for the same user.
//!
//! With other router instances beside this one, the registry also tells the live bus which
//! users' events this instance needs: it watches a user when that user's supervisor is
//! created and unwatches when it retires.

use crate::bus::{LiveBus, NoBus};
use crate::frame::Frame;
use crate::journal::{blocking, EventLog};
use crate::metrics::Metrics;
use crate::session::{ClientGone, EndReason, Resume};
use crate::stream_config::StreamConfig;
use crate::supervisor::{
    CloseSessions, ConnectError, DrainSessions, Fanout, HeadIs, Lease, OpenSession, SessionHandle,
    StopIfIdle, SupervisorParts, UserSupervisor,
};
use actix::dev::ArbiterHandle;
use actix::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Open a stream for `user_id`.
#[derive(Message)]
#[rtype(result = "Result<SessionHandle, ConnectError>")]
pub struct Connect {
    pub user_id: String,
    /// Where the stream starts: live, or after a cursor (`Last-Event-ID`).
    pub resume: Resume,
    /// Resolves when the client hangs up, if the transport can tell (see [`ClientGone`]).
    pub client_gone: Option<ClientGone>,
    /// The arbiter the session runs on; `None`: the supervisor's. The HTTP edge passes the
    /// worker that owns the connection, so that frames reach the socket without crossing
    /// threads and sessions spread over the workers instead of all running on one thread.
    pub home: Option<ArbiterHandle>,
    /// The slot of the cluster-wide limit this stream took, if the limit is cluster-wide.
    pub lease: Option<Lease>,
    /// When the token that opened the stream expires: the session ends then, with a
    /// `token_expired` frame.
    pub expires_at: Option<SystemTime>,
}

/// Deliver an encoded frame to every open session of `user_id` (none open: nothing to do).
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Publish {
    pub user_id: String,
    pub frame: Frame,
}

/// A frame for every open session of every user: the admin operations feed is one stream that
/// all connected admins share.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Broadcast(pub Frame);

/// Sent by a supervisor whose last session ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SupervisorIdle {
    pub user_id: Arc<str>,
}

/// Asks for the connection statistics ([`SseStats`]).
#[derive(Message)]
#[rtype(result = "SseStats")]
pub struct GetStats;

/// Refuse new streams and close every open one (graceful shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseAll;

/// Refuse new streams and close the open ones spread over `window`, each with a jittered
/// `retry:` hint up to `retry` (draining before a shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain {
    pub window: Duration,
    pub retry: Duration,
}

/// The users with open sessions here and the highest cursor each one's supervisor saw.
#[derive(Message)]
#[rtype(result = "Vec<(Arc<str>, u64)>")]
pub struct WatchedUsers;

/// Stream heads read from the journal: supervisors whose user's head moved past what they
/// saw have their sessions catch up.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Heads(pub Vec<(Arc<str>, u64)>);

/// Connection statistics: `totalConnections`, `uniqueUsers`, `connectionsPerUser` and
/// `averageConnectionsPerUser`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SseStats {
    pub total_connections: usize,
    pub unique_users: usize,
    pub connections_per_user: BTreeMap<String, usize>,
    pub average_connections_per_user: f64,
}

struct Entry {
    supervisor: Addr<UserSupervisor>,
    live: Arc<AtomicUsize>,
    seen: Arc<AtomicU64>,
}

pub struct SessionRegistry {
    config: StreamConfig,
    log: Arc<dyn EventLog>,
    bus: Arc<dyn LiveBus>,
    metrics: Arc<Metrics>,
    users: HashMap<Arc<str>, Entry>,
    closing: bool,
}

impl SessionRegistry {
    /// `log` is the journal sessions catch up from when they resume after a cursor.
    pub fn new(config: StreamConfig, log: Arc<dyn EventLog>) -> Self {
        SessionRegistry {
            config,
            log,
            bus: Arc::new(NoBus),
            metrics: Metrics::standalone(),
            users: HashMap::new(),
            closing: false,
        }
    }

    /// Watches users on `bus` while they have sessions here.
    pub fn with_bus(mut self, bus: Arc<dyn LiveBus>) -> Self {
        self.bus = bus;
        self
    }

    /// Counts connections, users and deliveries of its sessions into `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    fn supervisor_for(&mut self, user_id: &str, ctx: &mut Context<Self>) -> Addr<UserSupervisor> {
        if let Some(entry) = self.users.get(user_id) {
            return entry.supervisor.clone();
        }
        let user: Arc<str> = Arc::from(user_id);
        let live = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(AtomicU64::new(0));
        let supervisor = UserSupervisor::new(
            user.clone(),
            SupervisorParts {
                config: self.config.clone(),
                log: self.log.clone(),
                registry: ctx.address().recipient(),
                running: live.clone(),
                seen: seen.clone(),
                metrics: self.metrics.clone(),
            },
        )
        .start();
        self.bus.watch(user_id);
        self.users.insert(
            user,
            Entry {
                supervisor: supervisor.clone(),
                live,
                seen,
            },
        );
        supervisor
    }
}

impl Actor for SessionRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Connects queue here while a retirement is in flight; the default of 16 would make
        // `send` callers wait for mailbox room under a burst of connects.
        ctx.set_mailbox_capacity(crate::MAILBOX_CAPACITY);
    }
}

/// A [`Connect`] whose starting point is settled.
struct OpenAt(Connect);

impl Message for OpenAt {
    type Result = Result<SessionHandle, ConnectError>;
}

/// A live stream (no cursor) starts after the head read *here*, before its session joins the
/// user's fan-out: an event stored after this read is either fanned out to the session or
/// replayed by it, so a client that has its response headers misses nothing stored after it
/// connected. (Read by the session itself, the head could already include an event whose
/// frame was fanned out meanwhile, and that frame would be dropped as a duplicate.) If the read
/// fails, the session tries once more and otherwise takes its cursor from its first frame.
impl Handler<Connect> for SessionRegistry {
    type Result = ResponseFuture<Result<SessionHandle, ConnectError>>;

    fn handle(&mut self, mut msg: Connect, ctx: &mut Self::Context) -> Self::Result {
        let me = ctx.address();
        let log = (msg.resume == Resume::Live).then(|| self.log.clone());
        Box::pin(async move {
            if let Some(log) = log {
                let user = msg.user_id.clone();
                if let Ok((_, head)) = blocking(move || log.stream_bounds(&user)).await {
                    msg.resume = Resume::Head(head);
                }
            }
            me.send(OpenAt(msg))
                .await
                .unwrap_or(Err(ConnectError::Unavailable))
        })
    }
}

impl Handler<OpenAt> for SessionRegistry {
    type Result = AtomicResponse<Self, Result<SessionHandle, ConnectError>>;

    fn handle(&mut self, OpenAt(msg): OpenAt, ctx: &mut Self::Context) -> Self::Result {
        if self.closing {
            return AtomicResponse::new(Box::pin(fut::ready(Err(ConnectError::Unavailable))));
        }
        let supervisor = self.supervisor_for(&msg.user_id, ctx);
        AtomicResponse::new(Box::pin(
            supervisor
                .send(OpenSession {
                    resume: msg.resume,
                    client_gone: msg.client_gone,
                    home: msg.home,
                    lease: msg.lease,
                    expires_at: msg.expires_at,
                })
                .into_actor(self)
                .map(|res, _, _| res.unwrap_or(Err(ConnectError::Unavailable))),
        ))
    }
}

impl Handler<Publish> for SessionRegistry {
    type Result = ();

    /// Hidden types are fanned out too: sessions move their cursor past them without writing
    /// them, so the next shown event is not taken for a gap.
    fn handle(&mut self, msg: Publish, _: &mut Self::Context) {
        if let Some(entry) = self.users.get(msg.user_id.as_str()) {
            entry.supervisor.do_send(Fanout(msg.frame));
        }
    }
}

impl Handler<Broadcast> for SessionRegistry {
    type Result = ();

    fn handle(&mut self, msg: Broadcast, _: &mut Self::Context) {
        for entry in self.users.values() {
            entry.supervisor.do_send(Fanout(msg.0.clone()));
        }
    }
}

impl Handler<SupervisorIdle> for SessionRegistry {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: SupervisorIdle, _: &mut Self::Context) -> Self::Result {
        let Some(entry) = self.users.get(&msg.user_id) else {
            return AtomicResponse::new(Box::pin(fut::ready(())));
        };
        let supervisor = entry.supervisor.clone();
        AtomicResponse::new(Box::pin(supervisor.send(StopIfIdle).into_actor(self).map(
            move |stopped, act, _| {
                // A supervisor that is gone (Err) is as retired as one that stopped.
                if stopped.unwrap_or(true) {
                    act.users.remove(&msg.user_id);
                    act.bus.unwatch(&msg.user_id);
                }
            },
        )))
    }
}

impl Handler<GetStats> for SessionRegistry {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, _: GetStats, _: &mut Self::Context) -> Self::Result {
        let mut stats = SseStats::default();
        for (user, entry) in &self.users {
            let n = entry.live.load(Ordering::Relaxed);
            if n > 0 {
                stats.connections_per_user.insert(user.to_string(), n);
                stats.total_connections += n;
            }
        }
        stats.unique_users = stats.connections_per_user.len();
        if stats.unique_users > 0 {
            stats.average_connections_per_user =
                stats.total_connections as f64 / stats.unique_users as f64;
        }
        MessageResult(stats)
    }
}

impl Handler<CloseAll> for SessionRegistry {
    type Result = ();

    fn handle(&mut self, _: CloseAll, _: &mut Self::Context) {
        self.closing = true;
        for entry in self.users.values() {
            entry.supervisor.do_send(CloseSessions(EndReason::Shutdown));
        }
    }
}

impl Handler<Drain> for SessionRegistry {
    type Result = ();

    fn handle(&mut self, msg: Drain, _: &mut Self::Context) {
        self.closing = true;
        for entry in self.users.values() {
            entry.supervisor.do_send(DrainSessions {
                window: msg.window,
                retry: msg.retry,
            });
        }
    }
}

impl Handler<WatchedUsers> for SessionRegistry {
    type Result = MessageResult<WatchedUsers>;

    fn handle(&mut self, _: WatchedUsers, _: &mut Self::Context) -> Self::Result {
        MessageResult(
            self.users
                .iter()
                .map(|(user, entry)| (user.clone(), entry.seen.load(Ordering::Relaxed)))
                .collect(),
        )
    }
}

impl Handler<Heads> for SessionRegistry {
    type Result = ();

    fn handle(&mut self, msg: Heads, _: &mut Self::Context) {
        for (user, head) in msg.0 {
            if let Some(entry) = self.users.get(&user) {
                if head > entry.seen.load(Ordering::Relaxed) {
                    entry.supervisor.do_send(HeadIs(head));
                }
            }
        }
    }
}
