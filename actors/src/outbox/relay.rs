//! `OutboxRelay`: publishes the journal's unpublished events to Kafka, in commit order.
//!
//! One pass: read the oldest unpublished rows, turn each into one record per routed topic
//! (key = user id, headers `eventType`, `eventId`, `correlationId`, value = the envelope), send
//! them all and wait for the broker's acknowledgements, and only then mark the rows published.
//! A failed pass marks nothing and is retried with back-off; the idempotent producer behind
//! the sink keeps those retries from duplicating records. Publishing runs beside the SSE path
//! and never delays a 202 or a live frame.
//!
//! The mark is a store commit of its own, so it runs beside the next pass rather than before
//! it: acknowledged rows wait in `acked` until their mark commits, and passes skip them. A
//! failed mark is retried, never republished, so records keep their commit order; only a
//! restart (or a lost relay turn) before the mark republishes, as a crash always could.

use super::{BrokerSink, Outbox, OutboxEntry, Record, RelayTurn};
use crate::bus::{BusMessage, LiveBus, NoBus};
use crate::journal::blocking;
use crate::metrics::Metrics;
use crate::routing::RoutingTable;
use actix::prelude::*;
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// Rows read per pass.
const BATCH: usize = 256;
/// Poll interval when nothing nudged the relay (events stored by another router instance).
const IDLE_POLL: Duration = Duration::from_millis(500);
/// How often the backlog gauge is refreshed: a count over the unpublished index, too costly to
/// run on every nudge under load, and a figure nobody reads more often than this.
const BACKLOG_POLL: Duration = Duration::from_secs(5);
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Acknowledged rows waiting for their mark, past which no new pass starts: a store that
/// cannot mark stops the relay rather than growing every read.
const MAX_UNMARKED: usize = 4 * BATCH;
/// How long a standby relay gathers commits before it tells the holder: under load that is
/// one bus message per few milliseconds, not one per event.
const NUDGE_GATHER: Duration = Duration::from_millis(2);

/// Relay now rather than at the next poll.
#[derive(Message, Clone, Copy, Debug, PartialEq, Eq)]
#[rtype(result = "()")]
pub enum RelayNow {
    /// This instance committed new rows.
    Committed,
    /// Another instance did (over the bus), or this one just won the turn.
    Elsewhere,
}

/// Progress of the relay, for readiness and metrics.
#[derive(Message)]
#[rtype(result = "RelayStatus")]
pub struct GetRelayStatus;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayStatus {
    /// Events published since start.
    pub published: u64,
    /// The last pass's failure, cleared by the next success.
    pub last_error: Option<String>,
}

pub struct OutboxRelay {
    outbox: Arc<dyn Outbox>,
    sink: Arc<dyn BrokerSink>,
    routing: Arc<RoutingTable>,
    running: bool,
    /// Backing off after a failure: nudges and polls wait for the retry.
    cooling: bool,
    /// A nudge arrived during a pass: run again right after it.
    again: bool,
    backoff: Duration,
    status: RelayStatus,
    /// Whether this instance publishes the outbox (see [`RelayTurn`]).
    turn: RelayTurn,
    /// Where a standby relay tells the holder about new rows.
    bus: Arc<dyn LiveBus>,
    /// A nudge for the holder is being gathered.
    nudging: bool,
    /// Rows on the broker whose mark has not committed yet; passes skip them.
    acked: BTreeSet<u64>,
    /// A mark is committing.
    marking: bool,
    /// Backing off after a failed mark.
    mark_cooling: bool,
    mark_backoff: Duration,
    metrics: Arc<Metrics>,
}

impl OutboxRelay {
    pub fn new(outbox: Arc<dyn Outbox>, sink: Arc<dyn BrokerSink>, routing: RoutingTable) -> Self {
        OutboxRelay {
            outbox,
            sink,
            routing: Arc::new(routing),
            running: false,
            cooling: false,
            again: false,
            backoff: MIN_BACKOFF,
            status: RelayStatus::default(),
            turn: RelayTurn::always(),
            bus: Arc::new(NoBus),
            nudging: false,
            acked: BTreeSet::new(),
            marking: false,
            mark_cooling: false,
            mark_backoff: MIN_BACKOFF,
            metrics: Metrics::standalone(),
        }
    }

    /// Records publish latency and the backlog into `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// One relay among several instances: it publishes only while `turn` is held, and while
    /// it stands by it passes its commits' nudges to the holder over `bus`.
    pub fn shared(mut self, turn: RelayTurn, bus: Arc<dyn LiveBus>) -> Self {
        self.turn = turn;
        self.bus = bus;
        self
    }

    /// Rows were committed here while another instance holds the turn.
    fn tell_holder(&mut self, ctx: &mut Context<Self>) {
        if self.nudging {
            return;
        }
        self.nudging = true;
        ctx.run_later(NUDGE_GATHER, |act, _| {
            act.nudging = false;
            act.bus.publish(BusMessage::OutboxMoved);
        });
    }

    fn pass(&mut self, ctx: &mut Context<Self>) {
        if self.cooling || !self.turn.holds() {
            return;
        }
        if self.running || self.acked.len() >= MAX_UNMARKED {
            // The pass (or the mark) in progress runs this one when it ends.
            self.again = true;
            return;
        }
        self.running = true;
        self.again = false;
        let (outbox, routing) = (self.outbox.clone(), self.routing.clone());
        let skip = self.acked.clone();
        // Reading the rows and turning them into records both run on the blocking pool: the
        // actors' thread only starts the send.
        let read = async move {
            blocking(move || {
                let mut rows = outbox.pending(BATCH + skip.len())?;
                rows.retain(|row| !skip.contains(&row.id));
                rows.truncate(BATCH);
                Ok(Pass::of(&routing, &rows))
            })
            .await
        };
        ctx.spawn(
            read.into_actor(self)
                .then(|pass, act, _| {
                    let (sink, metrics) = (act.sink.clone(), act.metrics.clone());
                    async move {
                        let Pass {
                            ids,
                            created,
                            records,
                            traced,
                        } = pass.map_err(|e| e.to_string())?;
                        if ids.is_empty() {
                            return Ok(ids);
                        }
                        sink.publish(records).await.map_err(|e| e.to_string())?;
                        record_latencies(&metrics, &created, Utc::now());
                        for (event_id, correlation_id) in &traced {
                            log::info!(
                                target: "relay",
                                event_id = event_id.as_str(),
                                correlation_id = correlation_id.as_deref().unwrap_or("-");
                                "event published"
                            );
                        }
                        Ok::<Vec<u64>, String>(ids)
                    }
                    .into_actor(act)
                })
                .map(|result, act, ctx| {
                    act.running = false;
                    match result {
                        Ok(ids) => {
                            let n = ids.len();
                            act.status.published += n as u64;
                            act.status.last_error = None;
                            act.backoff = MIN_BACKOFF;
                            act.acked.extend(ids);
                            act.mark(ctx);
                            if n == BATCH || act.again {
                                act.pass(ctx);
                            }
                        }
                        Err(e) => {
                            log::warn!("outbox relay: {e}; retrying in {:?}", act.backoff);
                            act.status.last_error = Some(e);
                            act.cooling = true;
                            ctx.run_later(act.backoff, |act, ctx| {
                                act.cooling = false;
                                act.pass(ctx);
                            });
                            act.backoff = (act.backoff * 2).min(MAX_BACKOFF);
                        }
                    }
                }),
        );
    }

    /// Marks every acknowledged row published, one commit at a time; a failed mark is retried
    /// with back-off (the rows stay skipped, so they are not published twice).
    fn mark(&mut self, ctx: &mut Context<Self>) {
        if self.marking || self.mark_cooling || self.acked.is_empty() {
            return;
        }
        self.marking = true;
        let ids: Vec<u64> = self.acked.iter().copied().collect();
        let outbox = self.outbox.clone();
        ctx.spawn(
            async move {
                let marked = blocking(move || outbox.mark_published(&ids).map(|()| ids)).await;
                marked.map_err(|e| e.to_string())
            }
            .into_actor(self)
            .map(|marked, act, ctx| {
                act.marking = false;
                match marked {
                    Ok(ids) => {
                        for id in &ids {
                            act.acked.remove(id);
                        }
                        act.mark_backoff = MIN_BACKOFF;
                        act.mark(ctx);
                        if act.again {
                            act.pass(ctx);
                        }
                    }
                    Err(e) => {
                        let backoff = act.mark_backoff;
                        log::warn!("outbox relay: marking failed: {e}; retrying in {backoff:?}");
                        act.status.last_error = Some(e);
                        act.mark_cooling = true;
                        ctx.run_later(backoff, |act, ctx| {
                            act.mark_cooling = false;
                            act.mark(ctx);
                        });
                        act.mark_backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }),
        );
    }

    /// Counts the unpublished rows into the backlog gauge; a failed count leaves the last one.
    fn count_backlog(&mut self, ctx: &mut Context<Self>) {
        let (outbox, metrics) = (self.outbox.clone(), self.metrics.clone());
        ctx.spawn(
            async move {
                match blocking(move || outbox.backlog()).await {
                    Ok(backlog) => metrics.set_outbox_backlog(backlog),
                    Err(e) => log::debug!("outbox relay: cannot count the backlog: {e}"),
                }
            }
            .into_actor(self),
        );
    }
}

/// One pass's work: the rows' ids and creation times, and their records.
struct Pass {
    ids: Vec<u64>,
    created: Vec<DateTime<Utc>>,
    records: Vec<Record>,
    /// Each event's id and correlation id, for its log line once published.
    traced: Vec<(String, Option<String>)>,
}

impl Pass {
    fn of(routing: &RoutingTable, rows: &[OutboxEntry]) -> Pass {
        Pass {
            ids: rows.iter().map(|r| r.id).collect(),
            created: rows.iter().map(|r| r.created_at).collect(),
            records: rows.iter().flat_map(|r| records(routing, r)).collect(),
            traced: rows
                .iter()
                .map(|r| (r.event_id.clone(), r.correlation_id.clone()))
                .collect(),
        }
    }
}

/// One record per topic `entry`'s type is routed to.
fn records(routing: &RoutingTable, entry: &OutboxEntry) -> Vec<Record> {
    let topics = match entry.event_type.known() {
        Some(t) => routing.topics(t),
        // A type this build does not know (a newer router wrote it): the fallback row.
        None => routing.fallback(),
    };
    let correlation = entry.correlation_id.clone().unwrap_or_default();
    topics
        .iter()
        .map(|topic| Record {
            topic: topic.clone(),
            key: entry.user_id.clone(),
            headers: vec![
                ("eventType".to_owned(), entry.event_type.as_str().to_owned()),
                ("eventId".to_owned(), entry.event_id.clone()),
                ("correlationId".to_owned(), correlation.clone()),
            ],
            payload: entry.envelope_json.clone(),
        })
        .collect()
}

/// Observes each published event's time from creation to `acknowledged` (a clock set back
/// between the two counts as zero).
fn record_latencies(metrics: &Metrics, created: &[DateTime<Utc>], acknowledged: DateTime<Utc>) {
    for at in created {
        let age = (acknowledged - *at).to_std().unwrap_or_default();
        metrics.outbox_published(age);
    }
}

impl Actor for OutboxRelay {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.pass(ctx);
        ctx.run_interval(IDLE_POLL, |act, ctx| act.pass(ctx));
        self.count_backlog(ctx);
        ctx.run_interval(BACKLOG_POLL, |act, ctx| act.count_backlog(ctx));
    }
}

impl Handler<RelayNow> for OutboxRelay {
    type Result = ();

    fn handle(&mut self, now: RelayNow, ctx: &mut Self::Context) {
        if self.turn.holds() {
            self.pass(ctx);
        } else if now == RelayNow::Committed {
            self.tell_holder(ctx);
        }
    }
}

impl Handler<GetRelayStatus> for OutboxRelay {
    type Result = MessageResult<GetRelayStatus>;

    fn handle(&mut self, _: GetRelayStatus, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.status.clone())
    }
}
