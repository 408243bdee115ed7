//! `RetentionPruner`: keeps the journal within its retention window.
//!
//! A cursor older than the window can no longer be resumed exactly; such a client is told to
//! resync (see [`check_cursor`](super::check_cursor)).

use super::{blocking, EventLog, LogError};
use actix::prelude::*;
use std::sync::Arc;
use std::time::Duration;

/// Prune now; answers how many events were deleted.
#[derive(Message)]
#[rtype(result = "Result<usize, LogError>")]
pub struct PruneNow;

pub struct RetentionPruner {
    log: Arc<dyn EventLog>,
    retention: Duration,
    interval: Duration,
}

impl RetentionPruner {
    pub fn new(log: Arc<dyn EventLog>, retention: Duration, interval: Duration) -> Self {
        RetentionPruner {
            log,
            retention,
            interval,
        }
    }

    fn prune(&self) -> impl std::future::Future<Output = Result<usize, LogError>> {
        let log = self.log.clone();
        let retention = chrono::Duration::from_std(self.retention).unwrap_or(chrono::Duration::MAX);
        async move {
            let cutoff = chrono::Utc::now()
                .checked_sub_signed(retention)
                .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
            blocking(move || log.prune_older_than(cutoff)).await
        }
    }
}

impl Actor for RetentionPruner {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.interval, |act, ctx| {
            ctx.spawn(
                act.prune()
                    .into_actor(act)
                    .map(|result, _, _| match result {
                        Ok(0) => {}
                        Ok(n) => log::info!("retention: pruned {n} events"),
                        Err(e) => log::warn!("retention: pruning failed, will retry: {e}"),
                    }),
            );
        });
    }
}

impl Handler<PruneNow> for RetentionPruner {
    type Result = ResponseFuture<Result<usize, LogError>>;

    fn handle(&mut self, _: PruneNow, _: &mut Self::Context) -> Self::Result {
        Box::pin(self.prune())
    }
}
