//! `OperationsFeed`: delivers the admin operations feed to this instance's admin sessions.
//!
//! The feed lives in the database (written once per record by the operations consumer, in
//! commit order); every router instance tails it and broadcasts new entries to its own admin
//! sessions, so an admin connected to any instance sees events accepted by any instance. A
//! session that resumes with `Last-Event-ID` catches up from the same table through its
//! registry's log, so the tail and the catch-up agree on ids.
//!
//! The tail is read when told ([`FeedMoved`]: the instance whose consumer stored an entry tells
//! its own feed, which tells the others over the live bus) and, as a safety net for a lost
//! message, every `interval`.

use crate::bus::{BusMessage, LiveBus, NoBus};
use crate::journal::{blocking, EventLog, LogError};
use crate::registry::{Broadcast, SessionRegistry};
use crate::Frame;
use actix::prelude::*;
use std::sync::Arc;
use std::time::Duration;

/// Entries read per poll; more wait for the next one, which follows at once.
const PAGE: usize = 500;

/// New feed entries were stored: read them now. `remote` when another instance said so (it
/// is not passed on again).
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct FeedMoved {
    pub remote: bool,
}

pub struct OperationsFeed {
    log: Arc<dyn EventLog>,
    sessions: Addr<SessionRegistry>,
    interval: Duration,
    /// The last entry broadcast; `None` until the head is known.
    last: Option<u64>,
    polling: bool,
    /// Told while a poll ran: poll again when it ends.
    again: bool,
    bus: Arc<dyn LiveBus>,
}

impl OperationsFeed {
    /// `log` reads the feed table; `sessions` is the registry of admin sessions.
    pub fn new(
        log: Arc<dyn EventLog>,
        sessions: Addr<SessionRegistry>,
        interval: Duration,
    ) -> Self {
        OperationsFeed {
            log,
            sessions,
            interval,
            last: None,
            polling: false,
            again: false,
            bus: Arc::new(NoBus),
        }
    }

    /// Tells the other instances over `bus` when this instance stored feed entries.
    pub fn with_bus(mut self, bus: Arc<dyn LiveBus>) -> Self {
        self.bus = bus;
        self
    }

    fn poll(&mut self, ctx: &mut Context<Self>) {
        if self.polling {
            self.again = true;
            return;
        }
        self.polling = true;
        let log = self.log.clone();
        let last = self.last;
        let read = async move {
            let after = match last {
                Some(after) => after,
                // Start at the head: older entries are for sessions that ask for them.
                None => {
                    let log = log.clone();
                    blocking(move || log.stream_bounds("")).await?.1
                }
            };
            let page = blocking(move || log.events_after("", after, PAGE)).await?;
            Ok::<_, LogError>((after, page))
        };
        ctx.spawn(read.into_actor(self).map(|read, feed, ctx| {
            feed.polling = false;
            match read {
                Ok((after, page)) => {
                    let full = page.len() == PAGE;
                    let mut last = after;
                    for entry in page {
                        last = last.max(entry.seq);
                        // Counted as delivered; not timed, since the poll interval would
                        // dominate the figure.
                        let frame =
                            Frame::stored(entry.seq, &entry.event_type, &entry.envelope_json);
                        feed.sessions.do_send(Broadcast(frame));
                    }
                    feed.last = Some(last);
                    if full {
                        feed.again = true;
                    }
                }
                Err(e) => log::warn!("operations feed: cannot read new entries: {e}"),
            }
            if std::mem::take(&mut feed.again) {
                feed.poll(ctx);
            }
        }));
    }
}

impl Actor for OperationsFeed {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.poll(ctx);
        ctx.run_interval(self.interval, |feed, ctx| feed.poll(ctx));
    }
}

impl Handler<FeedMoved> for OperationsFeed {
    type Result = ();

    fn handle(&mut self, msg: FeedMoved, ctx: &mut Self::Context) {
        if !msg.remote {
            self.bus.publish(BusMessage::FeedMoved);
        }
        self.poll(ctx);
    }
}
