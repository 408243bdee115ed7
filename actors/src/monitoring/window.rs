//! The figures of one interval, from two snapshots of the cumulative metrics.

use crate::metrics::MetricsSnapshot;

/// What happened between two snapshots (counts) and where things stand (gauges).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Window {
    pub secs: u64,
    pub events_accepted: u64,
    pub events_delivered: u64,
    pub sse_connections_opened: u64,
    pub sse_errors: u64,
    pub dead_lettered: u64,
    /// Mean consumer processing time over the interval; 0 when nothing was processed.
    pub avg_processing_ms: f64,
    pub open_connections: u64,
    pub connected_users: u64,
    pub max_consumer_lag: i64,
    pub outbox_backlog: u64,
}

impl Window {
    pub fn between(before: &MetricsSnapshot, now: &MetricsSnapshot, secs: u64) -> Window {
        let count = now.processing_count.saturating_sub(before.processing_count);
        let sum = (now.processing_seconds_sum - before.processing_seconds_sum).max(0.0);
        Window {
            secs,
            events_accepted: now.events_accepted.saturating_sub(before.events_accepted),
            events_delivered: now.events_delivered.saturating_sub(before.events_delivered),
            sse_connections_opened: now
                .sse_connections_opened
                .saturating_sub(before.sse_connections_opened),
            sse_errors: now.sse_errors.saturating_sub(before.sse_errors),
            dead_lettered: now.dead_lettered.saturating_sub(before.dead_lettered),
            avg_processing_ms: if count == 0 {
                0.0
            } else {
                sum * 1000.0 / count as f64
            },
            open_connections: now.open_connections,
            connected_users: now.connected_users,
            max_consumer_lag: now.max_consumer_lag,
            outbox_backlog: now.outbox_backlog,
        }
    }

    /// SSE errors (overflows, failed writes, refused connections) as a percentage of SSE
    /// connection attempts in the interval; 0 without attempts.
    pub fn sse_error_rate_percent(&self) -> f64 {
        let attempts = self.sse_connections_opened + self.sse_errors;
        if attempts == 0 {
            0.0
        } else {
            self.sse_errors as f64 * 100.0 / attempts as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_averages_come_from_the_difference() {
        let before = MetricsSnapshot {
            events_accepted: 10,
            sse_connections_opened: 5,
            processing_seconds_sum: 1.0,
            processing_count: 10,
            ..MetricsSnapshot::default()
        };
        let now = MetricsSnapshot {
            events_accepted: 30,
            sse_connections_opened: 24,
            sse_errors: 1,
            processing_seconds_sum: 2.0,
            processing_count: 20,
            open_connections: 7,
            ..MetricsSnapshot::default()
        };
        let w = Window::between(&before, &now, 60);
        assert_eq!(w.events_accepted, 20);
        assert!((w.avg_processing_ms - 100.0).abs() < 1e-9);
        assert!((w.sse_error_rate_percent() - 5.0).abs() < 1e-9);
        assert_eq!(w.open_connections, 7);
        assert_eq!(Window::default().sse_error_rate_percent(), 0.0);
    }
}
