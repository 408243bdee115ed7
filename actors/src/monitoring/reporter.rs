//! `MonitoringReporter`: the periodic metrics report. Every interval (60 s by default) it logs a
//! one-line summary and posts it as `metrics_report` on the operations feed.

use super::alerts::SnapshotSource;
use super::{emit, Window};
use crate::event::{EventData, MetricsReport};
use crate::journal::EventJournal;
use crate::metrics::MetricsSnapshot;
use actix::prelude::*;
use std::time::{Duration, Instant};

/// Report now (besides the interval); answers the report.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "MetricsReport")]
pub struct ReportNow;

pub struct MonitoringReporter {
    source: SnapshotSource,
    journal: Addr<EventJournal>,
    interval: Duration,
    last: (MetricsSnapshot, Instant),
}

impl MonitoringReporter {
    pub fn new(source: SnapshotSource, journal: Addr<EventJournal>, interval: Duration) -> Self {
        let first = source();
        MonitoringReporter {
            source,
            journal,
            interval,
            last: (first, Instant::now()),
        }
    }

    fn report(&mut self, ctx: &mut Context<Self>) -> MetricsReport {
        let now = ((self.source)(), Instant::now());
        let secs = now.1.duration_since(self.last.1).as_secs();
        let w = Window::between(&self.last.0, &now.0, secs);
        self.last = now;
        let report = MetricsReport {
            interval_secs: w.secs,
            open_connections: w.open_connections,
            connected_users: w.connected_users,
            events_accepted: w.events_accepted,
            events_delivered: w.events_delivered,
            sse_errors: w.sse_errors,
            dead_lettered: w.dead_lettered,
            avg_processing_ms: w.avg_processing_ms,
            max_consumer_lag: w.max_consumer_lag,
            outbox_backlog: w.outbox_backlog,
        };
        log::info!(
            "metrics over {} s: {} connections ({} users), {} events accepted, {} delivered, \
             {} SSE errors, {} dead-lettered, consumer processing {:.1} ms avg, max lag {}, \
             outbox backlog {}",
            report.interval_secs,
            report.open_connections,
            report.connected_users,
            report.events_accepted,
            report.events_delivered,
            report.sse_errors,
            report.dead_lettered,
            report.avg_processing_ms,
            report.max_consumer_lag,
            report.outbox_backlog
        );
        ctx.spawn(
            emit(
                self.journal.clone(),
                EventData::MetricsReport(report.clone()),
            )
            .into_actor(self),
        );
        report
    }
}

impl Actor for MonitoringReporter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.interval, |reporter, ctx| {
            reporter.report(ctx);
        });
    }
}

impl Handler<ReportNow> for MonitoringReporter {
    type Result = MessageResult<ReportNow>;

    fn handle(&mut self, _: ReportNow, ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.report(ctx))
    }
}
