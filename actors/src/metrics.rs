//! Prometheus metrics: one [`Metrics`] per router application owning a registry and every
//! collector, handed to each actor that records a figure (`with_metrics`), rendered by
//! `GET /metrics` ([`Metrics::render`]) and summed into a [`MetricsSnapshot`] for the alert
//! evaluator ([`Metrics::snapshot`]).
//!
//! Each figure is recorded where the behaviour lives: connections and users by the
//! `UserSupervisor` (the same counts `/sse-stats` reports), session ends by the `SseSession`,
//! accepted and failed events by the `EventJournal`, deliveries by the session that queued the
//! frame, outbox latency and backlog by the `OutboxRelay`, consumer timings, lag and dead
//! letters by the router's consumer loop. The per-event delivery path touches only
//! pre-resolved children (no label lookup, no allocation).
//!
//! The metrics are a handle, not a process global: several applications in one process (tests,
//! embedding) each count their own, so a test asserts exact figures while others run beside it.
//! An actor built without a handle records into a [`Metrics::standalone`] set nobody renders.

mod snapshot;

pub use snapshot::MetricsSnapshot;

use crate::event::{EventType, StoredType};
use crate::session::EndReason;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The `Content-Type` of [`Metrics::render`]'s output (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// Histogram buckets for latencies measured in milliseconds: 0.5 ms to 5 s. Anything slower
/// than 5 s is an outage, which the `+Inf` bucket counts well enough.
pub const LATENCY_BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Every session end reason, so each `reason` label exists (at 0) from the start and a rate
/// over it is defined before the first occurrence.
const END_REASONS: [EndReason; 4] = [
    EndReason::ClientGone,
    EndReason::QueueOverflow,
    EndReason::ReplayFailed,
    EndReason::Shutdown,
];

/// Why an SSE connection attempt was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 429: the user already holds the most connections allowed.
    RateLimited,
    /// 401: no valid token.
    Unauthorized,
    /// 503: the router is shutting down.
    Unavailable,
}

impl Refusal {
    const ALL: [Refusal; 3] = [
        Refusal::RateLimited,
        Refusal::Unauthorized,
        Refusal::Unavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::RateLimited => "rate_limited",
            Refusal::Unauthorized => "unauthorized",
            Refusal::Unavailable => "unavailable",
        }
    }
}

/// The names [`Metrics::limited`] counts under, shown at zero from the start.
pub const LIMITS: [&str; 5] = [
    "publish",
    "connect_address",
    "connect_user",
    "streams",
    "streams_per_address",
];

/// A counter per event type, with the children of the known types resolved once.
struct PerEventType {
    vec: IntCounterVec,
    /// Indexed like [`EventType::ALL`].
    known: Vec<IntCounter>,
}

impl PerEventType {
    fn new(registry: &Registry, name: &str, help: &str) -> prometheus::Result<Self> {
        let vec = counters(registry, name, help, "event_type")?;
        let known = EventType::ALL
            .iter()
            .map(|t| vec.with_label_values(&[t.as_str()]))
            .collect();
        Ok(PerEventType { vec, known })
    }

    fn inc(&self, event_type: EventType) {
        let index = EventType::ALL.iter().position(|t| *t == event_type);
        match index.and_then(|i| self.known.get(i)) {
            Some(counter) => counter.inc(),
            None => self.vec.with_label_values(&[event_type.as_str()]).inc(),
        }
    }

    /// By the type a store row carries; a name this build does not know gets its own label.
    fn inc_stored(&self, stored: &StoredType) {
        match stored {
            StoredType::Known(t) => self.inc(*t),
            StoredType::Unknown(name) => self.vec.with_label_values(&[name]).inc(),
        }
    }
}

/// The router's collectors and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    sse_connections: IntGauge,
    sse_users: IntGauge,
    sse_connections_opened: IntCounter,
    sse_overflows: IntCounter,
    sse_sessions_closed: IntCounterVec,
    sse_connections_refused: IntCounterVec,
    limited: IntCounterVec,
    events_accepted: PerEventType,
    events_delivered: PerEventType,
    events_failed: PerEventType,
    delivery_latency: Histogram,
    outbox_publish_latency: Histogram,
    outbox_backlog: IntGauge,
    consumer_processing: HistogramVec,
    consumer_lag: IntGaugeVec,
    dead_lettered: IntCounterVec,
    tls_handshake_failures: IntCounter,
}

fn register<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    collector: prometheus::Result<C>,
) -> prometheus::Result<C> {
    let collector = collector?;
    registry.register(Box::new(collector.clone()))?;
    Ok(collector)
}

fn gauge(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    register(r, IntGauge::new(name, help))
}

fn counter(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    register(r, IntCounter::new(name, help))
}

fn counters(r: &Registry, name: &str, help: &str, by: &str) -> prometheus::Result<IntCounterVec> {
    register(r, IntCounterVec::new(Opts::new(name, help), &[by]))
}

/// A histogram with [`LATENCY_BUCKETS`].
fn latency(r: &Registry, name: &str, help: &str) -> prometheus::Result<Histogram> {
    let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
    register(r, Histogram::with_opts(opts))
}

impl Metrics {
    /// A fresh set of collectors in a registry of its own, without an instance label.
    pub fn new() -> prometheus::Result<Metrics> {
        Metrics::with_labels(None)
    }

    /// A fresh set whose every series carries `instance_id`, so one Prometheus holding several
    /// instances tells them apart.
    pub fn for_instance(instance_id: &str) -> prometheus::Result<Metrics> {
        let labels =
            std::collections::HashMap::from([("instance_id".to_owned(), instance_id.to_owned())]);
        Metrics::with_labels(Some(labels))
    }

    /// A set for an actor built without one: it counts, and nobody renders it.
    pub fn standalone() -> Arc<Metrics> {
        // The definitions are constants of this module; only a programming error fails here,
        // and the unit tests build the same set.
        Arc::new(Metrics::new().expect("the metric definitions are valid and distinct"))
    }

    fn with_labels(
        labels: Option<std::collections::HashMap<String, String>>,
    ) -> prometheus::Result<Metrics> {
        let r = Registry::new_custom(None, labels)?;
        let processing = HistogramOpts::new(
            "nft_router_consumer_processing_seconds",
            "Handling of one consumed record, retries and dead-lettering included.",
        )
        .buckets(LATENCY_BUCKETS.to_vec());
        let lag = Opts::new(
            "nft_router_consumer_lag",
            "Records behind the high watermark, per assigned partition, as last measured.",
        );
        let metrics = Metrics {
            sse_connections: gauge(&r, "nft_router_sse_connections", "Open SSE connections.")?,
            sse_users: gauge(
                &r,
                "nft_router_sse_users",
                "Distinct users with at least one open SSE connection.",
            )?,
            sse_connections_opened: counter(
                &r,
                "nft_router_sse_connections_opened_total",
                "SSE sessions started.",
            )?,
            tls_handshake_failures: counter(
                &r,
                "nft_router_tls_handshake_failures_total",
                "TLS handshakes that failed or timed out (each ends only its own connection).",
            )?,
            sse_overflows: counter(
                &r,
                "nft_router_sse_overflows_total",
                "SSE sessions closed because the client read too slowly for its bounded queue.",
            )?,
            sse_sessions_closed: counters(
                &r,
                "nft_router_sse_sessions_closed_total",
                "SSE sessions ended, by reason.",
                "reason",
            )?,
            limited: counters(
                &r,
                "nft_router_requests_limited_total",
                "Requests refused by a rate limit or a stream cap, by limit.",
                "limit",
            )?,
            sse_connections_refused: counters(
                &r,
                "nft_router_sse_connections_refused_total",
                "SSE connection attempts refused, by reason.",
                "reason",
            )?,
            events_accepted: PerEventType::new(
                &r,
                "nft_router_events_accepted_total",
                "Events stored by the journal.",
            )?,
            events_delivered: PerEventType::new(
                &r,
                "nft_router_events_delivered_total",
                "Event frames queued to SSE sessions, live or replayed.",
            )?,
            events_failed: PerEventType::new(
                &r,
                "nft_router_events_failed_total",
                "Events the journal could not store (database unavailable or write refused).",
            )?,
            delivery_latency: latency(
                &r,
                "nft_router_delivery_latency_seconds",
                "From the journal's commit of an event to an SSE session queuing its live frame.",
            )?,
            outbox_publish_latency: latency(
                &r,
                "nft_router_outbox_publish_latency_seconds",
                "From an event's creation to the broker acknowledging every record of it.",
            )?,
            outbox_backlog: gauge(
                &r,
                "nft_router_outbox_backlog",
                "Stored events not yet acknowledged by the broker, as last counted.",
            )?,
            consumer_processing: register(&r, HistogramVec::new(processing, &["group"]))?,
            consumer_lag: register(&r, IntGaugeVec::new(lag, &["group", "topic", "partition"]))?,
            dead_lettered: counters(
                &r,
                "nft_router_dead_lettered_total",
                "Records sent to the dead-letter topic, by consumer group.",
                "group",
            )?,
            registry: r,
        };
        for reason in END_REASONS {
            metrics
                .sse_sessions_closed
                .with_label_values(&[reason.as_str()]);
        }
        for limit in LIMITS {
            metrics.limited.with_label_values(&[limit]);
        }
        for refusal in Refusal::ALL {
            metrics
                .sse_connections_refused
                .with_label_values(&[refusal.as_str()]);
        }
        Ok(metrics)
    }

    /// Every collector in the Prometheus text exposition format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| {
                log::error!("cannot encode the metrics: {e}");
                format!("# metrics encoding failed: {e}\n")
            })
    }

    /// A supervisor's count of running sessions went from `before` to `now`.
    pub fn user_sessions_changed(&self, before: usize, now: usize) {
        self.sse_connections.add(now as i64 - before as i64);
        match (before, now) {
            (0, n) if n > 0 => self.sse_users.inc(),
            (b, 0) if b > 0 => self.sse_users.dec(),
            _ => {}
        }
    }

    pub fn session_opened(&self) {
        self.sse_connections_opened.inc();
    }

    pub fn session_closed(&self, reason: EndReason) {
        if reason == EndReason::QueueOverflow {
            self.sse_overflows.inc();
        }
        self.sse_sessions_closed
            .with_label_values(&[reason.as_str()])
            .inc();
    }

    /// A request was refused by the limit named `limit` (`publish`, `connect_address`,
    /// `connect_user`, `streams`, `streams_per_address`).
    pub fn limited(&self, limit: &str) {
        self.limited.with_label_values(&[limit]).inc();
    }

    /// A TLS handshake failed or timed out.
    pub fn tls_handshake_failed(&self) {
        self.tls_handshake_failures.inc();
    }

    pub fn connection_refused(&self, refusal: Refusal) {
        self.sse_connections_refused
            .with_label_values(&[refusal.as_str()])
            .inc();
    }

    /// The journal stored an event of this type (the name its row carries).
    pub fn event_accepted(&self, event_type: &StoredType) {
        self.events_accepted.inc_stored(event_type);
    }

    /// The journal could not store an event of this type.
    pub fn event_failed(&self, event_type: EventType) {
        self.events_failed.inc(event_type);
    }

    /// A session queued a stored event's frame. Live frames (with their commit instant) are
    /// timed; the latency is observed before the count grows, so at any moment the histogram
    /// holds at least as many samples as live deliveries were counted. Frames of a type this
    /// build does not know are not counted.
    pub fn event_delivered(&self, event_type: Option<EventType>, committed_at: Option<Instant>) {
        let Some(event_type) = event_type else { return };
        if let Some(committed) = committed_at {
            self.delivery_latency
                .observe(committed.elapsed().as_secs_f64());
        }
        self.events_delivered.inc(event_type);
    }

    /// The broker acknowledged an event `age` after it was created.
    pub fn outbox_published(&self, age: Duration) {
        self.outbox_publish_latency.observe(age.as_secs_f64());
    }

    pub fn set_outbox_backlog(&self, backlog: u64) {
        self.outbox_backlog
            .set(i64::try_from(backlog).unwrap_or(i64::MAX));
    }

    /// A consumer in `group` finished with a record (applied, duplicate or dead-lettered).
    pub fn consumer_processed(&self, group: &str, took: Duration) {
        self.consumer_processing
            .with_label_values(&[group])
            .observe(took.as_secs_f64());
    }

    pub fn dead_lettered(&self, group: &str) {
        self.dead_lettered.with_label_values(&[group]).inc();
    }

    pub fn set_consumer_lag(&self, group: &str, topic: &str, partition: i32, lag: i64) {
        self.consumer_lag
            .with_label_values(&[group, topic, &partition.to_string()])
            .set(lag);
    }

    /// Drops a partition's lag once this member no longer owns it (another member reports it).
    pub fn forget_consumer_lag(&self, group: &str, topic: &str, partition: i32) {
        // Absent already is fine: nothing to forget.
        let _ = self
            .consumer_lag
            .remove_label_values(&[group, topic, &partition.to_string()]);
    }
}

#[cfg(test)]
mod tests;
