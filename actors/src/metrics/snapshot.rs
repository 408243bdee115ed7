//! [`MetricsSnapshot`]: the handful of process-wide figures the alert evaluator and the
//! periodic report work from, summed over labels from the same collectors `/metrics` renders.

use super::{Metrics, Refusal};
use crate::session::EndReason;
use prometheus::core::Collector;
use prometheus::proto::MetricFamily;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// Open SSE connections and distinct connected users now.
    pub open_connections: u64,
    pub connected_users: u64,
    /// Cumulative counters since start.
    /// Events stored by the journal (all types).
    pub events_accepted: u64,
    /// Event frames written to SSE sessions (live and replayed).
    pub events_delivered: u64,
    /// SSE sessions started.
    pub sse_connections_opened: u64,
    /// Sessions ended by overflow (a queue that filled up, or a catch-up the client did not
    /// read) or by a failed replay, plus connection attempts refused with 429. A session whose
    /// socket write fails ends as `client_gone`, like a closed tab: the session cannot tell
    /// the two apart, so neither counts.
    pub sse_errors: u64,
    pub dead_lettered: u64,
    /// Consumer processing time, cumulative (sum in seconds, count).
    pub processing_seconds_sum: f64,
    pub processing_count: u64,
    /// Largest consumer lag (messages) over all groups and partitions, as last observed.
    pub max_consumer_lag: i64,
    pub outbox_backlog: u64,
}

/// Every series of a collector, whatever its labels.
fn series(collector: &impl Collector) -> Vec<MetricFamily> {
    collector.collect()
}

fn counter_sum(collector: &impl Collector) -> u64 {
    series(collector)
        .iter()
        .flat_map(|family| family.get_metric())
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

fn non_negative(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl Metrics {
    /// The figures of [`MetricsSnapshot`], read now. Counters only grow, so the difference of
    /// two snapshots is what happened between them.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let closed = |reason: EndReason| {
            self.sse_sessions_closed
                .with_label_values(&[reason.as_str()])
                .get()
        };
        let refused = self
            .sse_connections_refused
            .with_label_values(&[Refusal::RateLimited.as_str()])
            .get();
        let (processing_seconds_sum, processing_count) = series(&self.consumer_processing)
            .iter()
            .flat_map(|family| family.get_metric())
            .map(|m| m.get_histogram())
            .fold((0.0, 0), |(sum, count), h| {
                (sum + h.get_sample_sum(), count + h.get_sample_count())
            });
        let max_consumer_lag = series(&self.consumer_lag)
            .iter()
            .flat_map(|family| family.get_metric())
            .map(|m| m.get_gauge().get_value() as i64)
            .max()
            .unwrap_or(0);
        MetricsSnapshot {
            open_connections: non_negative(self.sse_connections.get()),
            connected_users: non_negative(self.sse_users.get()),
            events_accepted: counter_sum(&self.events_accepted.vec),
            events_delivered: counter_sum(&self.events_delivered.vec),
            sse_connections_opened: self.sse_connections_opened.get(),
            sse_errors: closed(EndReason::QueueOverflow)
                + closed(EndReason::ReplayFailed)
                + refused,
            dead_lettered: counter_sum(&self.dead_lettered),
            processing_seconds_sum,
            processing_count,
            max_consumer_lag,
            outbox_backlog: non_negative(self.outbox_backlog.get()),
        }
    }
}
