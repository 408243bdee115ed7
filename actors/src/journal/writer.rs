//! `EventJournal`: the one writer of user events.
//!
//! Publishers send [`Append`]; the journal writes whatever has queued up since its last write
//! as one transaction (group commit: one round trip and one fsync for many events), then, in
//! commit order, hands each stored event to the session registry and answers its publisher.
//! Because a single actor commits and hands over, live frames reach sessions in cursor order,
//! which is what lets a session drop duplicates by cursor alone.

use super::{blocking, EventLog, LogError, NewEvent};
use crate::event::Envelope;
use crate::frame::Frame;
use crate::outbox::RelayNow;
use crate::registry::Publish;
use actix::prelude::*;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Most events written in one transaction.
pub const MAX_BATCH: usize = 512;

/// Store an event durably, then deliver it.
#[derive(Message)]
#[rtype(result = "Result<Appended, JournalError>")]
pub struct Append {
    pub envelope: Envelope,
}

/// A stored event: its cursor and the exact JSON that was stored and delivered.
#[derive(Debug, Clone)]
pub struct Appended {
    pub seq: u64,
    pub envelope_json: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    /// The log is unreachable; nothing was stored or delivered.
    #[error("{0}")]
    Unavailable(String),
    /// The log refused the batch; nothing was stored or delivered.
    #[error("{0}")]
    Failed(String),
}

impl From<LogError> for JournalError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::Unavailable(m) => JournalError::Unavailable(m),
            LogError::Failed(m) => JournalError::Failed(m),
        }
    }
}

type Reply = oneshot::Sender<Result<Appended, JournalError>>;

pub struct EventJournal {
    log: Arc<dyn EventLog>,
    deliver: Recipient<Publish>,
    /// Told after each commit, so the outbox relay publishes at once instead of at its poll.
    committed: Option<Recipient<RelayNow>>,
    pending: Vec<(NewEvent, Reply)>,
    writing: bool,
}

impl EventJournal {
    pub fn new(log: Arc<dyn EventLog>, deliver: Recipient<Publish>) -> Self {
        EventJournal {
            log,
            deliver,
            committed: None,
            pending: Vec::new(),
            writing: false,
        }
    }

    /// Nudges `relay` after every commit.
    pub fn notify_committed(mut self, relay: Recipient<RelayNow>) -> Self {
        self.committed = Some(relay);
        self
    }

    /// Starts a write of everything pending, unless one is already in flight (its completion
    /// calls this again).
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.writing || self.pending.is_empty() {
            return;
        }
        let n = self.pending.len().min(MAX_BATCH);
        let (events, replies): (Vec<NewEvent>, Vec<Reply>) = self.pending.drain(..n).unzip();
        self.writing = true;
        let log = self.log.clone();
        ctx.spawn(blocking(move || log.append(&events)).into_actor(self).map(
            move |result, act, ctx| {
                act.writing = false;
                match result {
                    Ok(stored) => {
                        for (event, reply) in stored.into_iter().zip(replies) {
                            act.deliver.do_send(Publish {
                                user_id: event.user_id.clone(),
                                frame: Frame::stored(event.seq, &event.envelope_json),
                            });
                            let _ = reply.send(Ok(Appended {
                                seq: event.seq,
                                envelope_json: event.envelope_json,
                            }));
                        }
                    }
                    Err(e) => {
                        log::warn!("journal write of {n} events failed: {e}");
                        let err = JournalError::from(e);
                        for reply in replies {
                            let _ = reply.send(Err(err.clone()));
                        }
                    }
                }
                act.flush(ctx);
            },
        ));
    }
}

impl Actor for EventJournal {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Publishers wait on their own reply, not on mailbox room.
        ctx.set_mailbox_capacity(usize::MAX / 2);
    }
}

impl Handler<Append> for EventJournal {
    type Result = ResponseFuture<Result<Appended, JournalError>>;

    fn handle(&mut self, msg: Append, ctx: &mut Self::Context) -> Self::Result {
        let envelope = msg.envelope;
        let event = NewEvent {
            envelope_json: envelope.to_json(),
            event_id: envelope.event_id,
            user_id: envelope.user_id,
            event_type: envelope.event_type.as_str().to_owned(),
            created_at: envelope.timestamp,
        };
        let (tx, rx) = oneshot::channel();
        self.pending.push((event, tx));
        self.flush(ctx);
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(JournalError::Unavailable("journal stopped".into())))
        })
    }
}
