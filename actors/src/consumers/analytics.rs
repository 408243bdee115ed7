//! `AnalyticsConsumer` (group `nft-analytics-group`): counts events per type and minute in the
//! database, and mirrors each type's total into the cache as `nft:{eventType}:count`.
//!
//! The database is the truth; the cache holds copies of its totals. A cache outage therefore
//! loses nothing: the consumer keeps counting in the database and marks the cache stale, and a
//! timer copies every total over once the cache answers again.

use super::{
    first_answer, parse_record, AnalyticsStore, Answers, Cache, Consume, ConsumeBatch,
    ConsumeError, ConsumedRecord, CountedEvent, Outcome,
};
use crate::journal::blocking;
use actix::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How often a stale cache is retried.
const RESYNC_INTERVAL: Duration = Duration::from_secs(1);

/// Copy every total into the cache now; answers whether the cache took them.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct SyncCounters;

pub struct AnalyticsConsumer {
    store: Arc<dyn AnalyticsStore>,
    cache: Arc<dyn Cache>,
    stale: bool,
}

impl AnalyticsConsumer {
    pub fn new(store: Arc<dyn AnalyticsStore>, cache: Arc<dyn Cache>) -> Self {
        AnalyticsConsumer {
            store,
            cache,
            // Start stale: counts may have moved while this process was not running.
            stale: true,
        }
    }

    /// Reads the totals and writes them to the cache; false if either side failed.
    fn sync(&self) -> impl std::future::Future<Output = bool> {
        let (store, cache) = (self.store.clone(), self.cache.clone());
        async move {
            let Ok(totals) = blocking(move || store.totals()).await else {
                return false;
            };
            let counters = totals
                .into_iter()
                .map(|(t, n)| (super::counter_key(&t), n))
                .collect();
            cache.set_counters(counters).await.is_ok()
        }
    }
}

impl Actor for AnalyticsConsumer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(RESYNC_INTERVAL, |act, ctx| {
            if act.stale {
                ctx.spawn(act.sync().into_actor(act).map(|ok, act, _| {
                    if ok {
                        act.stale = false;
                    }
                }));
            }
        });
    }
}

impl AnalyticsConsumer {
    /// Counts the records on the blocking pool (off the actors' thread), all of a batch in one
    /// call to the store, then copies the totals that moved into the cache; a full copy of
    /// every total runs only after a cache failure.
    fn apply(&mut self, records: Vec<ConsumedRecord>) -> ResponseActFuture<Self, Answers> {
        let (store, cache) = (self.store.clone(), self.cache.clone());
        Box::pin(
            async move {
                let counted = blocking(move || Ok(count(&*store, &records))).await;
                let (answers, counters) =
                    counted.unwrap_or_else(|e| (vec![Err(e.into())], Vec::new()));
                let cache_ok = counters.is_empty() || cache.set_counters(counters).await.is_ok();
                (answers, cache_ok)
            }
            .into_actor(self)
            .map(|(answers, cache_ok), act, _| {
                if !cache_ok {
                    act.stale = true;
                }
                answers
            }),
        )
    }
}

/// Parses the records and counts the readable ones with one call to the store. Answers in
/// record order, cut after the first transient failure ([`ConsumeBatch`]'s contract), and the
/// cache counters that moved, at their newest totals.
fn count(store: &dyn AnalyticsStore, records: &[ConsumedRecord]) -> (Answers, Vec<(String, u64)>) {
    let parsed: Vec<Result<CountedEvent, ConsumeError>> = records
        .iter()
        .map(|record| {
            parse_record(record).map(|envelope| CountedEvent {
                event_id: envelope.event_id,
                event_type: envelope.event_type.as_str().to_owned(),
                occurred_at: envelope.timestamp,
            })
        })
        .collect();
    let events: Vec<CountedEvent> = parsed.iter().filter_map(|p| p.clone().ok()).collect();
    let mut counted = store.count_events(&events).into_iter();
    let mut totals: HashMap<String, u64> = HashMap::new();
    let mut answers = Vec::with_capacity(records.len());
    for event in parsed {
        let answer = match event {
            Err(invalid) => Err(invalid),
            Ok(event) => match counted.next() {
                // The store stopped short without saying why: leave the rest unanswered.
                None => break,
                Some(Err(e)) => Err(ConsumeError::from(e)),
                Some(Ok(None)) => Ok(Outcome::Duplicate),
                Some(Ok(Some(total))) => {
                    let newest = totals.entry(event.event_type).or_default();
                    *newest = (*newest).max(total);
                    Ok(Outcome::Applied)
                }
            },
        };
        let transient = matches!(answer, Err(ConsumeError::Transient(_)));
        answers.push(answer);
        if transient {
            break;
        }
    }
    let counters = totals
        .into_iter()
        .map(|(event_type, total)| (super::counter_key(&event_type), total))
        .collect();
    (answers, counters)
}

impl Handler<Consume> for AnalyticsConsumer {
    type Result = ResponseActFuture<Self, Result<Outcome, ConsumeError>>;

    fn handle(&mut self, msg: Consume, _: &mut Self::Context) -> Self::Result {
        Box::pin(
            self.apply(vec![msg.0])
                .map(|answers, _, _| first_answer(answers)),
        )
    }
}

impl Handler<ConsumeBatch> for AnalyticsConsumer {
    type Result = ResponseActFuture<Self, Answers>;

    fn handle(&mut self, msg: ConsumeBatch, _: &mut Self::Context) -> Self::Result {
        self.apply(msg.0)
    }
}

impl Handler<SyncCounters> for AnalyticsConsumer {
    type Result = ResponseActFuture<Self, bool>;

    fn handle(&mut self, _: SyncCounters, _: &mut Self::Context) -> Self::Result {
        Box::pin(self.sync().into_actor(self).map(|ok, act, _| {
            act.stale = !ok;
            ok
        }))
    }
}
