//! `EventJournal`: the one writer of user events.
//!
//! Publishers send [`Append`]; the journal writes whatever has queued up since its last write
//! as one transaction (group commit: one round trip and one fsync for many events), then, in
//! commit order, hands each stored event to the session registry and answers its publisher.
//! Because a single actor commits and hands over, live frames reach sessions in cursor order,
//! which is what lets a session drop duplicates by cursor alone.

use super::{blocking, EventLog, LogError, NewEvent};
use crate::bus::{BusMessage, LiveBus, NoBus};
use crate::domain::{ChangeError, Receipt, StateChange};
use crate::event::{Envelope, EventType};
use crate::frame::Frame;
use crate::metrics::Metrics;
use crate::outbox::RelayNow;
use crate::registry::Publish;
use actix::prelude::*;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;

/// Most events written in one transaction.
pub const MAX_BATCH: usize = 512;

/// Store an event durably, then deliver it.
#[derive(Message)]
#[rtype(result = "Result<Appended, LogError>")]
pub struct Append {
    pub envelope: Envelope,
}

/// A stored event: its cursor and the exact JSON that was stored and delivered.
#[derive(Debug, Clone)]
pub struct Appended {
    pub seq: u64,
    pub envelope_json: String,
}

/// Store an event whose id was derived from a publisher's idempotency key, unless it is stored
/// already: then answer the stored one, and deliver nothing again. Written on its own (never
/// batched), so that a stored twin fails no other publisher's batch.
#[derive(Message)]
#[rtype(result = "Result<Once, LogError>")]
pub struct AppendOnce {
    pub envelope: Envelope,
}

/// The answer to [`AppendOnce`]: the stored event, and whether it was stored before (a retry).
#[derive(Debug, Clone)]
pub struct Once {
    pub appended: Appended,
    pub replayed: bool,
}

/// Store a domain state change and the events it caused, in one transaction, then deliver
/// the events. Written on its own (never batched with others), so a change whose precondition
/// fails refuses only itself.
#[derive(Message)]
#[rtype(result = "Result<Vec<Appended>, ChangeFailure>")]
pub struct AppendChange {
    pub change: StateChange,
    pub envelopes: Vec<Envelope>,
    /// Stored with the change when the command carried an idempotency key.
    pub receipt: Option<Receipt>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeFailure {
    /// The change's precondition failed: another writer changed the state meanwhile.
    #[error("the state changed meanwhile")]
    Conflict,
    /// The receipt's key was stored by another attempt first; nothing was written.
    #[error("the idempotency key was answered meanwhile")]
    Receipted,
    #[error(transparent)]
    Journal(#[from] LogError),
}

type Reply = oneshot::Sender<Result<Appended, LogError>>;
type ChangeReply = oneshot::Sender<Result<Vec<Appended>, ChangeFailure>>;
type OnceReply = oneshot::Sender<Result<Once, LogError>>;

enum Pending {
    Event(NewEvent, Reply),
    Once(NewEvent, OnceReply),
    Change(
        Box<(StateChange, Option<Receipt>)>,
        Vec<NewEvent>,
        ChangeReply,
    ),
}

pub struct EventJournal {
    log: Arc<dyn EventLog>,
    deliver: Recipient<Publish>,
    /// Told after each commit, so the outbox relay publishes at once instead of at its poll.
    committed: Option<Recipient<RelayNow>>,
    /// Carries each stored event to the sessions other instances hold.
    bus: Arc<dyn LiveBus>,
    metrics: Arc<Metrics>,
    pending: std::collections::VecDeque<Pending>,
    writing: bool,
}

fn new_event(envelope: Envelope) -> NewEvent {
    NewEvent {
        envelope_json: envelope.to_json(),
        event_id: envelope.event_id,
        user_id: envelope.user_id,
        event_type: envelope.event_type,
        correlation_id: envelope.correlation_id,
        created_at: envelope.timestamp,
    }
}

impl EventJournal {
    pub fn new(log: Arc<dyn EventLog>, deliver: Recipient<Publish>) -> Self {
        EventJournal {
            log,
            deliver,
            committed: None,
            bus: Arc::new(NoBus),
            metrics: Metrics::standalone(),
            pending: std::collections::VecDeque::new(),
            writing: false,
        }
    }

    /// Publishes every stored event on `bus` too, after handing it to this instance's
    /// sessions.
    pub fn with_bus(mut self, bus: Arc<dyn LiveBus>) -> Self {
        self.bus = bus;
        self
    }

    /// Counts accepted and failed events into `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Nudges `relay` after every commit.
    pub fn notify_committed(mut self, relay: Recipient<RelayNow>) -> Self {
        self.committed = Some(relay);
        self
    }

    /// Starts a write of what is pending, unless one is already in flight (its completion
    /// calls this again): a run of plain appends as one batch, or one state change alone.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.writing {
            return;
        }
        match self.pending.pop_front() {
            None => {}
            Some(Pending::Change(change, events, reply)) => {
                let (change, receipt) = *change;
                self.write_change(change, receipt, events, reply, ctx)
            }
            Some(Pending::Once(event, reply)) => self.write_once(event, reply, ctx),
            Some(Pending::Event(event, reply)) => {
                let mut batch = vec![(event, reply)];
                while batch.len() < MAX_BATCH {
                    match self.pending.pop_front() {
                        Some(Pending::Event(e, r)) => batch.push((e, r)),
                        Some(other) => {
                            self.pending.push_front(other);
                            break;
                        }
                        None => break,
                    }
                }
                self.write_batch(batch, ctx);
            }
        }
    }

    /// Hands stored events to the registry, in commit order, and nudges the relay. Each frame
    /// is stamped with the commit, which the session that queues it times its delivery from.
    fn delivered(&self, stored: Vec<super::StoredEvent>) -> Vec<Appended> {
        if let Some(relay) = &self.committed {
            relay.do_send(RelayNow::Committed);
        }
        let committed_at = Instant::now();
        let shared = self.bus.is_shared();
        stored
            .into_iter()
            .map(|event| {
                self.metrics.event_accepted(&event.event_type);
                log::info!(
                    target: "journal",
                    event_id = event.event_id.as_str(),
                    correlation_id = event.correlation_id.as_deref().unwrap_or("-"),
                    user_id = event.user_id.as_str(),
                    seq = event.seq,
                    event_type = event.event_type.as_str();
                    "event stored"
                );
                let frame = Frame::stored(event.seq, &event.event_type, &event.envelope_json)
                    .committed(committed_at);
                self.deliver.do_send(Publish {
                    user_id: event.user_id.clone(),
                    frame,
                });
                if let (Some(event_type), true) = (event.event_type.known(), shared) {
                    self.bus.publish(BusMessage::UserEvent {
                        user_id: Arc::from(event.user_id.as_str()),
                        seq: event.seq,
                        event_type,
                        envelope_json: Arc::from(event.envelope_json.as_str()),
                    });
                }
                Appended {
                    seq: event.seq,
                    envelope_json: event.envelope_json,
                }
            })
            .collect()
    }

    fn write_batch(&mut self, batch: Vec<(NewEvent, Reply)>, ctx: &mut Context<Self>) {
        let n = batch.len();
        let (events, replies): (Vec<NewEvent>, Vec<Reply>) = batch.into_iter().unzip();
        let written = Written::of(&events);
        self.writing = true;
        let log = self.log.clone();
        ctx.spawn(blocking(move || log.append(&events)).into_actor(self).map(
            move |result, act, ctx| {
                act.writing = false;
                match result {
                    Ok(stored) => {
                        for (appended, reply) in act.delivered(stored).into_iter().zip(replies) {
                            let _ = reply.send(Ok(appended));
                        }
                    }
                    Err(e) => {
                        log::warn!("journal write of {n} events failed: {e}");
                        written.failed(&act.metrics, &e);
                        let err = e;
                        for reply in replies {
                            let _ = reply.send(Err(err.clone()));
                        }
                    }
                }
                act.flush(ctx);
            },
        ));
    }

    fn write_once(&mut self, event: NewEvent, reply: OnceReply, ctx: &mut Context<Self>) {
        self.writing = true;
        let log = self.log.clone();
        let written = Written::of(std::slice::from_ref(&event));
        ctx.spawn(
            blocking(move || log.append_once(&event))
                .into_actor(self)
                .map(move |result, act, ctx| {
                    act.writing = false;
                    let answer = match result {
                        Ok(super::AppendedOnce::Stored(stored)) => act
                            .delivered(vec![stored])
                            .pop()
                            .map(|appended| Once {
                                appended,
                                replayed: false,
                            })
                            .ok_or_else(|| LogError::failed("nothing was delivered")),
                        Ok(super::AppendedOnce::Existing(stored)) => Ok(Once {
                            appended: Appended {
                                seq: stored.seq,
                                envelope_json: stored.envelope_json,
                            },
                            replayed: true,
                        }),
                        Err(e) => {
                            log::warn!("journal write of a keyed event failed: {e}");
                            written.failed(&act.metrics, &e);
                            Err(e)
                        }
                    };
                    let _ = reply.send(answer);
                    act.flush(ctx);
                }),
        );
    }

    fn write_change(
        &mut self,
        change: StateChange,
        receipt: Option<Receipt>,
        events: Vec<NewEvent>,
        reply: ChangeReply,
        ctx: &mut Context<Self>,
    ) {
        self.writing = true;
        let log = self.log.clone();
        let written = Written::of(&events);
        let write = async move {
            tokio::task::spawn_blocking(move || {
                log.apply_change(&change, &events, receipt.as_ref())
            })
            .await
            .unwrap_or_else(|e| {
                Err(ChangeError::Log(LogError::failed(format!(
                    "log call panicked: {e}"
                ))))
            })
        };
        ctx.spawn(write.into_actor(self).map(move |result, act, ctx| {
            act.writing = false;
            let answer = match result {
                Ok(stored) => Ok(act.delivered(stored)),
                Err(ChangeError::Conflict) => Err(ChangeFailure::Conflict),
                Err(ChangeError::Receipted) => Err(ChangeFailure::Receipted),
                Err(ChangeError::Log(e)) => {
                    written.failed(&act.metrics, &e);
                    Err(ChangeFailure::Journal(e))
                }
            };
            let _ = reply.send(answer);
            act.flush(ctx);
        }));
    }
}

/// What a write's failure is told with: each event's type (for the failure count) and ids (for
/// its log line); the events themselves move to the blocking pool.
struct Written(Vec<(EventType, String, Option<String>)>);

impl Written {
    fn of(events: &[NewEvent]) -> Written {
        Written(
            events
                .iter()
                .map(|e| (e.event_type, e.event_id.clone(), e.correlation_id.clone()))
                .collect(),
        )
    }

    fn failed(&self, metrics: &Metrics, error: &LogError) {
        for (event_type, event_id, correlation_id) in &self.0 {
            metrics.event_failed(*event_type);
            log::warn!(
                target: "journal",
                event_id = event_id.as_str(),
                correlation_id = correlation_id.as_deref().unwrap_or("-"),
                event_type = event_type.as_str();
                "event not stored: {error}"
            );
        }
    }
}

impl Actor for EventJournal {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Publishers wait on their own reply, not on mailbox room.
        ctx.set_mailbox_capacity(crate::MAILBOX_CAPACITY);
    }
}

impl Handler<Append> for EventJournal {
    type Result = ResponseFuture<Result<Appended, LogError>>;

    fn handle(&mut self, msg: Append, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.pending
            .push_back(Pending::Event(new_event(msg.envelope), tx));
        self.flush(ctx);
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(LogError::Unavailable("journal stopped".into())))
        })
    }
}

impl Handler<AppendOnce> for EventJournal {
    type Result = ResponseFuture<Result<Once, LogError>>;

    fn handle(&mut self, msg: AppendOnce, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.pending
            .push_back(Pending::Once(new_event(msg.envelope), tx));
        self.flush(ctx);
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(LogError::Unavailable("journal stopped".into())))
        })
    }
}

impl Handler<AppendChange> for EventJournal {
    type Result = ResponseFuture<Result<Vec<Appended>, ChangeFailure>>;

    fn handle(&mut self, msg: AppendChange, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        let events = msg.envelopes.into_iter().map(new_event).collect();
        self.pending.push_back(Pending::Change(
            Box::new((msg.change, msg.receipt)),
            events,
            tx,
        ));
        self.flush(ctx);
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(ChangeFailure::Journal(LogError::Unavailable(
                    "journal stopped".into(),
                )))
            })
        })
    }
}
