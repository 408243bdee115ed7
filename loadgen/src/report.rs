//! The figures of one run: serialized as JSON (`--json`) or shown as a human summary.

use crate::probe::CpuTime;
use crate::scenario::TargetKind;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When the run started, seconds since the UNIX epoch.
    pub started_unix: u64,
    pub scenario: ScenarioSummary,
    pub connections: ConnectionFigures,
    /// Absent in an idle run.
    pub publish: Option<PublishFigures>,
    pub delivery: DeliveryFigures,
    /// Publish→receive latency in microseconds; absent when nothing was received.
    pub latency_us: Option<LatencyFigures>,
    /// Publish→record seen on the broker, in microseconds (`--kafka-brokers`; absent when no
    /// record was seen).
    pub kafka_latency_us: Option<LatencyFigures>,
    /// The Kafka path's counts and its comparison with SSE (`--kafka-brokers`).
    pub kafka: Option<KafkaFigures>,
    /// Present when `--server-pid` was given.
    pub server: Option<ServerFigures>,
    pub loadgen: LoadgenFigures,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScenarioSummary {
    pub url: String,
    pub target: TargetKind,
    /// Every n-th connection stopped reading (0: none).
    pub stall_every: usize,
    pub connections: usize,
    pub users: usize,
    pub max_per_user: usize,
    pub idle: bool,
    pub rate: f64,
    pub duration_secs: f64,
    pub max_events: Option<u64>,
    pub connect_rate: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConnectionFigures {
    pub requested: usize,
    /// Streams accepted (HTTP 200).
    pub held: u64,
    /// Streams still open when the run stopped them.
    pub held_at_end: u64,
    pub connect_errors: u64,
    pub errors_by_cause: BTreeMap<String, u64>,
    /// From the first connect to the last outcome.
    pub connect_secs: f64,
    /// Streams the server (or the network) ended before the run did.
    pub ended_early: u64,
    /// Streams that stopped reading on purpose (slow clients); not in the delivery figures.
    pub stalled: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PublishFigures {
    pub attempted: u64,
    pub accepted: u64,
    pub failed: u64,
    pub failures_by_cause: BTreeMap<String, u64>,
    pub secs: f64,
    pub accepted_per_sec: f64,
    /// Worst delay of a send behind its schedule (all requests were in flight).
    pub max_lag_ms: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DeliveryFigures {
    /// Accepted events × the streams their user held.
    pub expected: u64,
    /// The run's events received (every frame counted).
    pub received: u64,
    /// Expected deliveries that never arrived, summed per connection.
    pub missing: u64,
    /// Deliveries beyond what a connection expected, summed per connection.
    pub unexpected: u64,
    /// Frames repeating the previous cursor of their connection.
    pub duplicates: u64,
    /// Frames with a cursor lower than the previous one of their connection.
    pub out_of_order: u64,
    /// The run's events that reached a connection of another user.
    pub misrouted: u64,
    /// Event frames that were not this run's (or had no numeric id).
    pub foreign: u64,
    pub resyncs: u64,
    /// Connections that received fewer events than expected.
    pub incomplete_connections: u64,
    /// All frames with an `id:` (events), including foreign ones.
    pub event_frames: u64,
    /// Frames without an `id:` (welcome, retry, heartbeats).
    pub control_frames: u64,
    /// From the start of publishing to the last expected delivery (or the drain timeout).
    pub window_secs: f64,
    /// Event frames received per second over the window.
    pub frames_per_sec: f64,
    /// The best whole second.
    pub peak_frames_per_sec: u64,
    /// How long after the last publish answer the deliveries took to complete.
    pub drain_secs: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LatencyFigures {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl LatencyFigures {
    pub fn from_histogram(h: &hdrhistogram::Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        Some(LatencyFigures {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        })
    }
}

/// Percentiles of values that may be negative (a difference of two arrival times).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignedFigures {
    pub count: u64,
    pub min: i64,
    pub p50: i64,
    pub p90: i64,
    pub p99: i64,
    pub p999: i64,
    pub max: i64,
    pub mean: f64,
}

impl SignedFigures {
    /// Exact percentiles (nearest rank) of `values`; `None` when there are none.
    pub fn from_values(mut values: Vec<i64>) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        values.sort_unstable();
        let n = values.len();
        let at = |q: f64| values[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        Some(SignedFigures {
            count: n as u64,
            min: values[0],
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: values[n - 1],
            mean: values.iter().map(|&v| v as f64).sum::<f64>() / n as f64,
        })
    }
}

/// The Kafka path: what the run's own consumer saw on the broker.
#[derive(Debug, Clone, Serialize)]
pub struct KafkaFigures {
    /// The bootstrap servers it read from.
    pub brokers: String,
    pub topics: Vec<String>,
    /// Its consumer group id, unique to the run (it commits nothing).
    pub group_id: String,
    /// Accepted events × topics: the records the run calls for.
    pub expected: u64,
    /// Records of accepted events seen on the broker, each (event, topic) counted once.
    pub records: u64,
    /// Expected records not seen by the end of the drain.
    pub missing: u64,
    /// Records seen again for an (event, topic) already seen.
    pub duplicates: u64,
    /// Records of this run's events whose publish request was not accepted (a request that
    /// timed out, say, after the event was stored).
    pub unexpected: u64,
    /// Records that are not this run's: no send time or index, another topic, or sent before
    /// the run started (an earlier run's, still being relayed).
    pub foreign: u64,
    /// Errors the consumer reported while polling (connection trouble, say).
    pub consumer_errors: u64,
    pub first_consumer_error: Option<String>,
    /// Accepted events seen both on the broker and on at least one SSE stream.
    pub events_on_both: u64,
    /// For those events: publish→first SSE frame, in microseconds.
    pub sse_latency_us: Option<LatencyFigures>,
    /// For those events: first SSE frame time − record seen time, in microseconds. Negative
    /// when the frame came first: the router delivers from the journal commit, not from Kafka.
    pub record_to_frame_us: Option<SignedFigures>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerFigures {
    /// The processes whose figures are summed.
    pub pids: Vec<u32>,
    pub rss_before_kib: Option<u64>,
    /// Right after the last connection was accepted.
    pub rss_connected_kib: Option<u64>,
    /// After holding (idle) or after the deliveries drained.
    pub rss_after_kib: Option<u64>,
    /// Idle: (after − before) / held; otherwise (connected − before) / held.
    pub rss_per_connection_bytes: Option<f64>,
    /// CPU time the server used from before the first connection to the end of the run.
    pub cpu: Option<CpuTime>,
    /// That CPU time over the run's wall time, in percent of one core.
    pub cpu_percent: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadgenFigures {
    pub wall_secs: f64,
    pub cpu: Option<CpuTime>,
    /// CPU time over wall time, in percent of one core.
    pub cpu_percent: Option<f64>,
    pub rss_kib: Option<u64>,
}

impl Report {
    /// Everything that says the router got something wrong (or the run could not do what it
    /// was asked); empty for a clean run.
    pub fn problems(&self) -> Vec<String> {
        let c = &self.connections;
        let d = &self.delivery;
        let mut problems = Vec::new();
        let mut check = |count: u64, what: &str| {
            if count > 0 {
                problems.push(format!("{count} {what}"));
            }
        };
        check(c.connect_errors, "connect errors");
        check(c.ended_early, "streams ended early");
        if let Some(p) = &self.publish {
            check(p.failed, "publish failures");
        }
        check(d.missing, "missing deliveries");
        check(d.unexpected, "unexpected deliveries");
        check(d.duplicates, "duplicate deliveries");
        check(d.out_of_order, "out-of-order deliveries");
        check(d.misrouted, "misrouted deliveries");
        check(d.resyncs, "resync frames");
        if let Some(k) = &self.kafka {
            check(k.missing, "records missing on the broker");
            check(k.duplicates, "duplicate records on the broker");
        }
        problems
    }
}

fn kib_to_mib(kib: Option<u64>) -> String {
    kib.map_or_else(
        || "?".to_owned(),
        |k| format!("{:.1} MiB", k as f64 / 1024.0),
    )
}

fn ms(us: u64) -> String {
    format!("{:.3} ms", us as f64 / 1000.0)
}

fn signed_ms(us: i64) -> String {
    format!("{:+.3} ms", us as f64 / 1000.0)
}

fn percentiles(l: &LatencyFigures) -> String {
    format!(
        "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (mean {}, n = {})",
        ms(l.p50),
        ms(l.p90),
        ms(l.p99),
        ms(l.p999),
        ms(l.max),
        ms(l.mean.round() as u64),
        l.count
    )
}

fn causes(by_cause: &BTreeMap<String, u64>) -> String {
    if by_cause.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = by_cause.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        format!(" [{}]", list.join(", "))
    }
}

impl Report {
    fn fmt_connections(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.connections;
        writeln!(
            f,
            "  connections  {} held of {} requested over {} users ({} connect errors{}), \
             opened in {:.2} s; {} still open at the end, {} ended early",
            c.held,
            c.requested,
            self.scenario.users,
            c.connect_errors,
            causes(&c.errors_by_cause),
            c.connect_secs,
            c.held_at_end,
            c.ended_early
        )?;
        if c.stalled > 0 {
            writeln!(
                f,
                "  slow         {} streams stopped reading once accepted (not in the deliveries)",
                c.stalled
            )?;
        }
        Ok(())
    }

    fn fmt_deliveries(&self, f: &mut fmt::Formatter<'_>, p: &PublishFigures) -> fmt::Result {
        let d = &self.delivery;
        writeln!(
            f,
            "  published    {} attempted, {} accepted, {} failed{} in {:.2} s \
             ({:.0}/s accepted; worst lag behind schedule {:.1} ms)",
            p.attempted,
            p.accepted,
            p.failed,
            causes(&p.failures_by_cause),
            p.secs,
            p.accepted_per_sec,
            p.max_lag_ms
        )?;
        writeln!(
            f,
            "  deliveries   {} expected, {} received: {} missing, {} unexpected, \
             {} duplicate, {} out of order, {} misrouted ({} connections incomplete)",
            d.expected,
            d.received,
            d.missing,
            d.unexpected,
            d.duplicates,
            d.out_of_order,
            d.misrouted,
            d.incomplete_connections
        )?;
        writeln!(
            f,
            "  frames       {:.0} event frames/s over {:.2} s (best second {}), \
             drained {:.2} s after the last publish; {} control frames, {} foreign",
            d.frames_per_sec,
            d.window_secs,
            d.peak_frames_per_sec,
            d.drain_secs,
            d.control_frames,
            d.foreign
        )
    }

    fn fmt_latency(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(l) = &self.latency_us else {
            return Ok(());
        };
        writeln!(f, "  latency      {}", percentiles(l))
    }

    fn fmt_kafka(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(k) = &self.kafka else {
            return Ok(());
        };
        writeln!(
            f,
            "  kafka        {} on {}: {} records of {} expected: {} missing, {} duplicate, \
             {} unexpected, {} foreign; {} consumer errors{}",
            k.topics.join(","),
            k.brokers,
            k.records,
            k.expected,
            k.missing,
            k.duplicates,
            k.unexpected,
            k.foreign,
            k.consumer_errors,
            k.first_consumer_error
                .as_deref()
                .map_or_else(String::new, |e| format!(" (first: {e})"))
        )?;
        if let Some(l) = &self.kafka_latency_us {
            writeln!(f, "  accepted→broker  {}", percentiles(l))?;
        }
        if let Some(l) = &k.sse_latency_us {
            writeln!(
                f,
                "  accepted→SSE     {}  (first frame, events seen on both)",
                percentiles(l)
            )?;
        }
        if let Some(d) = &k.record_to_frame_us {
            writeln!(
                f,
                "  broker→SSE       p50 {}  p90 {}  p99 {}  min {}  max {}  (n = {}; \
                 negative: the frame came first, SSE does not go through Kafka)",
                signed_ms(d.p50),
                signed_ms(d.p90),
                signed_ms(d.p99),
                signed_ms(d.min),
                signed_ms(d.max),
                d.count
            )?;
        }
        Ok(())
    }

    fn fmt_memory_and_cpu(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(server) = &self.server {
            write!(
                f,
                "  server RSS   pid {}: before {}, connected {}, after {}",
                server
                    .pids
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join("+"),
                kib_to_mib(server.rss_before_kib),
                kib_to_mib(server.rss_connected_kib),
                kib_to_mib(server.rss_after_kib)
            )?;
            match server.rss_per_connection_bytes {
                Some(b) => writeln!(f, "; {:.2} KiB per connection", b / 1024.0)?,
                None => writeln!(f)?,
            }
            if let (Some(cpu), Some(pct)) = (&server.cpu, server.cpu_percent) {
                writeln!(
                    f,
                    "  server CPU   {:.2} s user + {:.2} s system ({:.0} % of a core)",
                    cpu.user_secs, cpu.system_secs, pct
                )?;
            }
        }
        let l = &self.loadgen;
        match (&l.cpu, l.cpu_percent) {
            (Some(cpu), Some(pct)) => writeln!(
                f,
                "  loadgen      {:.2} s wall, CPU {:.2} s user + {:.2} s system \
                 ({:.0} % of a core), RSS {}",
                l.wall_secs,
                cpu.user_secs,
                cpu.system_secs,
                pct,
                kib_to_mib(l.rss_kib)
            ),
            _ => writeln!(f, "  loadgen      {:.2} s wall", l.wall_secs),
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "loadgen against {} ({:?})",
            self.scenario.url, self.scenario.target
        )?;
        self.fmt_connections(f)?;
        match &self.publish {
            Some(p) => self.fmt_deliveries(f, p)?,
            None => writeln!(
                f,
                "  idle         held for {:.0} s; {} control frames received",
                self.scenario.duration_secs, self.delivery.control_frames
            )?,
        }
        self.fmt_latency(f)?;
        self.fmt_kafka(f)?;
        self.fmt_memory_and_cpu(f)?;
        let problems = self.problems();
        if problems.is_empty() && self.publish.is_none() {
            write!(f, "  result       clean: every connection held to the end")
        } else if problems.is_empty() {
            write!(
                f,
                "  result       clean: every expected delivery arrived once, in order"
            )
        } else {
            write!(f, "  result       PROBLEMS: {}", problems.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_percentiles_keep_negative_values() {
        assert_eq!(SignedFigures::from_values(Vec::new()), None);
        let s = SignedFigures::from_values((-50..50).rev().collect()).expect("values");
        assert_eq!((s.count, s.min, s.max), (100, -50, 49));
        assert_eq!((s.p50, s.p90, s.p99, s.p999), (-1, 39, 48, 49));
        assert!((s.mean - -0.5).abs() < 1e-9);
    }
}
