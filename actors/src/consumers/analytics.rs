//! `AnalyticsConsumer` (group `nft-analytics-group`): counts events per type and minute in the
//! database, and mirrors each type's total into the cache as `nft:{eventType}:count`.
//!
//! The database is the truth; the cache holds copies of its totals. A cache outage therefore
//! loses nothing: the consumer keeps counting in the database and marks the cache stale, and a
//! timer copies every total over once the cache answers again.

use super::{parse_record, AnalyticsStore, Cache, Consume, ConsumeError, Outcome};
use crate::journal::blocking;
use actix::prelude::*;
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

impl Handler<Consume> for AnalyticsConsumer {
    type Result = ResponseActFuture<Self, Result<Outcome, ConsumeError>>;

    /// Parses and counts on the blocking pool (off the actors' thread), then copies the one
    /// total that moved into the cache; a full copy of every total runs only after a cache
    /// failure.
    fn handle(&mut self, msg: Consume, _: &mut Self::Context) -> Self::Result {
        let (store, cache) = (self.store.clone(), self.cache.clone());
        Box::pin(
            async move {
                let counted = blocking(move || {
                    let counted = parse_record(&msg.0).and_then(|envelope| {
                        let event_type = envelope.event_type.as_str();
                        let total = store.count_event(
                            &envelope.event_id,
                            event_type,
                            envelope.timestamp,
                        )?;
                        Ok(total.map(|n| (super::counter_key(event_type), n)))
                    });
                    Ok(counted)
                })
                .await??;
                let Some(counter) = counted else {
                    return Ok((Outcome::Duplicate, true));
                };
                let cache_ok = cache.set_counters(vec![counter]).await.is_ok();
                Ok::<_, ConsumeError>((Outcome::Applied, cache_ok))
            }
            .into_actor(self)
            .map(|result, act, _| {
                let (outcome, cache_ok) = result?;
                if !cache_ok {
                    act.stale = true;
                }
                Ok(outcome)
            }),
        )
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
