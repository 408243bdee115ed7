//! `HeadSweeper`: the bounded-time safety net under the live bus.
//!
//! A session fills a gap as soon as a later frame reveals it, but the last event of a burst has
//! no later frame. So every `interval` the sweeper reads, in one query per page of users, the
//! journal's head of every user with sessions on this instance and hands them to the registry,
//! which nudges the supervisors that saw less. An event whose bus message was lost therefore
//! reaches its sessions within one interval. A bus reconnect, or a fresh subscription whose
//! first moments the bus may have missed, asks for a sweep at once ([`SweepNow`]).

use crate::journal::{blocking, EventLog};
use crate::registry::{Heads, SessionRegistry, WatchedUsers};
use actix::prelude::*;
use std::sync::Arc;
use std::time::Duration;

/// Users whose heads are read per query.
const PAGE: usize = 500;

/// Sweep now: every user (`None`, after a bus reconnect) or these (just subscribed).
#[derive(Message, Clone, Default)]
#[rtype(result = "()")]
pub struct SweepNow(pub Option<Vec<Arc<str>>>);

pub struct HeadSweeper {
    log: Arc<dyn EventLog>,
    registry: Addr<SessionRegistry>,
    interval: Duration,
    running: bool,
    /// A sweep was asked for while one ran: run again when it ends.
    again: Option<SweepNow>,
}

impl HeadSweeper {
    pub fn new(
        log: Arc<dyn EventLog>,
        registry: Addr<SessionRegistry>,
        interval: Duration,
    ) -> Self {
        HeadSweeper {
            log,
            registry,
            interval,
            running: false,
            again: None,
        }
    }

    fn sweep(&mut self, only: Option<Vec<Arc<str>>>, ctx: &mut Context<Self>) {
        if self.running {
            // An "all users" request absorbs any narrower one.
            self.again = match (self.again.take(), only) {
                (Some(SweepNow(None)), _) | (_, None) => Some(SweepNow(None)),
                (Some(SweepNow(Some(mut users))), Some(more)) => {
                    users.extend(more);
                    Some(SweepNow(Some(users)))
                }
                (None, Some(users)) => Some(SweepNow(Some(users))),
            };
            return;
        }
        self.running = true;
        let (log, registry) = (self.log.clone(), self.registry.clone());
        let work = async move {
            let users: Vec<Arc<str>> = match only {
                Some(users) => users,
                None => registry
                    .send(WatchedUsers)
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(user, _)| user)
                    .collect(),
            };
            for page in users.chunks(PAGE) {
                let ids: Vec<String> = page.iter().map(|u| u.to_string()).collect();
                let log = log.clone();
                match blocking(move || log.stream_heads(&ids)).await {
                    Ok(heads) => registry.do_send(Heads(
                        heads
                            .into_iter()
                            .map(|(user, head)| (Arc::from(user), head))
                            .collect(),
                    )),
                    Err(e) => {
                        log::warn!("sweep: cannot read stream heads: {e}");
                        return;
                    }
                }
            }
        };
        ctx.spawn(work.into_actor(self).map(|(), act, ctx| {
            act.running = false;
            if let Some(SweepNow(next)) = act.again.take() {
                act.sweep(next, ctx);
            }
        }));
    }
}

impl Actor for HeadSweeper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.interval, |act, ctx| act.sweep(None, ctx));
    }
}

impl Handler<SweepNow> for HeadSweeper {
    type Result = ();

    fn handle(&mut self, msg: SweepNow, ctx: &mut Self::Context) {
        self.sweep(msg.0, ctx);
    }
}
