//! The phases of a run: connect every subscriber at the connect rate; then either publish at
//! the event rate and wait for the deliveries to drain, or (idle) just hold the streams; read
//! the server's memory around each phase; stop the subscribers and add up what they saw.

use crate::kafka::{self, KafkaWatch};
use crate::probe::{self, Clock};
use crate::publisher::{self, PublishCounters, PublishOutcome, PublishPlan};
use crate::report::{
    ConnectionFigures, DeliveryFigures, LatencyFigures, LoadgenFigures, PublishFigures, Report,
    ScenarioSummary, ServerFigures,
};
use crate::scenario::{Scenario, Target};
use crate::subscriber::{self, ConnSpec, ConnStats, Shared};
use crate::{http1, token::TokenMinter};
use anyhow::Context;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long tokens stay valid beyond the planned length of the run.
const TOKEN_SLACK_SECS: u64 = 3600;
/// How often the drain checks whether every expected delivery has arrived.
const DRAIN_POLL: Duration = Duration::from_millis(5);

/// Runs `scenario` on a new multi-threaded runtime (`threads` workers; 0: one per core).
pub fn run_blocking(scenario: &Scenario, threads: usize) -> anyhow::Result<Report> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if threads > 0 {
        builder.worker_threads(threads);
    }
    let runtime = builder
        .enable_all()
        .build()
        .context("starting the load generator's runtime")?;
    runtime.block_on(run(scenario))
}

/// Runs `scenario` on the current runtime (it spawns tasks: the runtime should have worker
/// threads other than the server's, or the figures measure the contention).
pub async fn run(scenario: &Scenario) -> anyhow::Result<Report> {
    scenario.validate()?;
    let target = Target::resolve(&scenario.url).await?;
    let started_unix = probe::unix_secs();
    let wall = Instant::now();
    let cpu_start = probe::self_cpu();
    let clock = Clock::new();
    let mut server =
        (!scenario.server_pids.is_empty()).then(|| ServerWatch::start(&scenario.server_pids));

    let mut shared = Shared::new(scenario.users, clock)?;
    if scenario.kafka.is_some() {
        shared = shared.with_first_frames(event_slots(scenario));
    }
    let shared = Arc::new(shared);
    let counters = Arc::new(PublishCounters::default());
    let ttl = scenario.duration.as_secs() + TOKEN_SLACK_SECS;
    let minter = TokenMinter::new(&scenario.jwt_secret, ttl);
    let sampler = Sampler::start(shared.clone(), counters.clone(), scenario.progress);
    let (stop, stop_rx) = watch::channel(false);

    let connected = connect_all(scenario, &target, &minter, &shared, stop_rx).await?;
    if let Some(s) = server.as_mut() {
        s.connected = probe::total_rss_kib(&s.pids);
    }
    let watch = match &scenario.kafka {
        Some(plan) => Some(start_kafka(scenario, plan, &target, clock).await?),
        None => None,
    };
    let load = apply_load(scenario, &minter, &shared, counters, watch.as_ref()).await?;
    let held = connected.figures.held;
    let server = server.map(|s| s.finish(held, scenario.idle, wall));

    let _ = stop.send(true);
    let stats = join_all(connected.handles).await;
    let peak = sampler.stop();
    let (kafka_latency_us, kafka) = match watch {
        Some(watch) => {
            let accepted = load
                .published
                .as_ref()
                .map(|(o, _)| o.accepted_indexes.clone())
                .unwrap_or_default();
            let shared = shared.clone();
            let (latency, figures) = tokio::task::spawn_blocking(move || {
                watch.finish(&accepted, &shared.first_frame_us)
            })
            .await
            .context("stopping the Kafka consumer")??;
            (latency, Some(figures))
        }
        None => (None, None),
    };

    let mut delivery = tally_deliveries(&stats, load.published.as_ref().map(|(o, _)| o));
    delivery.event_frames = shared.event_frames.load(Ordering::Relaxed);
    delivery.control_frames = shared.control_frames.load(Ordering::Relaxed);
    delivery.window_secs = load.window.as_secs_f64();
    delivery.frames_per_sec = load.frames as f64 / load.window.as_secs_f64().max(1e-9);
    delivery.peak_frames_per_sec = peak;
    delivery.drain_secs = load.published.as_ref().map_or(0.0, |(_, d)| *d);
    Ok(Report {
        started_unix,
        scenario: summary(scenario),
        connections: ConnectionFigures {
            held_at_end: load.held_at_end,
            ended_early: stats.iter().filter(|s| s.ended_early).count() as u64,
            stalled: stats.iter().filter(|s| s.stalled).count() as u64,
            ..connected.figures
        },
        publish: load.published.map(|(o, _)| publish_figures(&o)),
        delivery,
        latency_us: LatencyFigures::from_histogram(&shared.latencies()?),
        kafka_latency_us,
        kafka,
        server,
        loadgen: loadgen_figures(wall, cpu_start),
    })
}

/// The server's memory and CPU, read before the first connection, once all are connected,
/// and at the end of the load.
struct ServerWatch {
    pids: Vec<u32>,
    rss_before: Option<u64>,
    cpu_before: Option<probe::CpuTime>,
    connected: Option<u64>,
}

impl ServerWatch {
    fn start(pids: &[u32]) -> ServerWatch {
        ServerWatch {
            pids: pids.to_vec(),
            rss_before: probe::total_rss_kib(pids),
            cpu_before: probe::total_cpu(pids),
            connected: None,
        }
    }

    /// Memory per connection: idle, what holding `held` streams grew the server by; under
    /// load, what connecting them did (the events' own memory is not the connections').
    fn finish(self, held: u64, idle: bool, wall: Instant) -> ServerFigures {
        let rss_after = probe::total_rss_kib(&self.pids);
        let grown = if idle { rss_after } else { self.connected };
        let cpu = probe::total_cpu(&self.pids)
            .zip(self.cpu_before)
            .map(|(end, start)| end.since(&start));
        let wall_secs = wall.elapsed().as_secs_f64().max(1e-9);
        ServerFigures {
            pids: self.pids,
            rss_before_kib: self.rss_before,
            rss_connected_kib: self.connected,
            rss_after_kib: rss_after,
            rss_per_connection_bytes: match (self.rss_before, grown) {
                (Some(b), Some(g)) if held > 0 => {
                    Some((g as f64 - b as f64) * 1024.0 / held as f64)
                }
                _ => None,
            },
            cpu,
            cpu_percent: cpu.map(|c| 100.0 * c.total() / wall_secs),
        }
    }
}

/// Slots for per-event times: every event the publisher can send, with one to spare for a
/// schedule that rounds the other way.
fn event_slots(scenario: &Scenario) -> usize {
    scenario.planned_events() as usize + 1
}

/// Finds the brokers and starts the consumer at the end of every partition, before the first
/// event is published.
async fn start_kafka(
    scenario: &Scenario,
    plan: &kafka::KafkaPlan,
    target: &Target,
    clock: Clock,
) -> anyhow::Result<KafkaWatch> {
    let brokers = kafka::resolve_brokers(&plan.brokers, &target.base_url).await?;
    let topics = plan.topics.clone();
    let slots = event_slots(scenario);
    tokio::task::spawn_blocking(move || KafkaWatch::start(&brokers, &topics, slots, clock))
        .await
        .context("starting the Kafka consumer")?
}

/// What happened between connecting and stopping.
struct LoadPhase {
    /// What publishing did and how long the drain took (absent when idle).
    published: Option<(PublishOutcome, f64)>,
    window: Duration,
    /// Event frames received in the window.
    frames: u64,
    held_at_end: u64,
}

/// Publishes and drains, or with `idle` holds the streams for the duration.
async fn apply_load(
    scenario: &Scenario,
    minter: &TokenMinter,
    shared: &Shared,
    counters: Arc<PublishCounters>,
    kafka: Option<&KafkaWatch>,
) -> anyhow::Result<LoadPhase> {
    let start = Instant::now();
    let frames_at_start = shared.event_frames.load(Ordering::Relaxed);
    let published = if scenario.idle {
        tokio::time::sleep(scenario.duration).await;
        None
    } else {
        let plan = publish_plan(scenario, minter)?;
        let outcome = publisher::publish(plan, shared.clock, counters).await?;
        let drain_secs = drain(scenario, shared, &outcome, kafka).await;
        Some((outcome, drain_secs))
    };
    Ok(LoadPhase {
        published,
        window: start.elapsed(),
        frames: shared.event_frames.load(Ordering::Relaxed) - frames_at_start,
        held_at_end: shared.held.load(Ordering::Relaxed),
    })
}

struct Connected {
    figures: ConnectionFigures,
    handles: Vec<JoinHandle<ConnStats>>,
}

/// Starts every subscriber, paced at the connect rate, and waits until each has either been
/// accepted or failed.
async fn connect_all(
    scenario: &Scenario,
    target: &Target,
    minter: &TokenMinter,
    shared: &Arc<Shared>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Connected> {
    let mut requests = Vec::with_capacity(scenario.subscribed_users());
    for user in 0..scenario.subscribed_users() {
        let token = minter.mint(&scenario.user_id(user), "user")?;
        let path = scenario.user_path(&scenario.stream_path, user);
        let stream_path = format!("{}{path}", target.base_path);
        let request = http1::stream_request(&stream_path, &target.host_header, &token);
        requests.push(Arc::<[u8]>::from(request));
    }
    let (outcomes, mut outcome_rx) = mpsc::unbounded_channel();
    let start = Instant::now();
    let mut handles = Vec::with_capacity(scenario.connections);
    for index in 0..scenario.connections {
        tokio::time::sleep_until(
            start + Duration::from_secs_f64(index as f64 / scenario.connect_rate),
        )
        .await;
        let user = index % scenario.users;
        let spec = ConnSpec {
            index,
            user,
            server: target.addr,
            source: target.source_for(index, scenario.spread_sources),
            request: requests[user].clone(),
            timeout: scenario.connect_timeout,
            stalled: scenario.stall_every > 0
                && index % scenario.stall_every == scenario.stall_every - 1,
        };
        let task = subscriber::subscribe(spec, shared.clone(), outcomes.clone(), stop.clone());
        handles.push(tokio::spawn(task));
    }
    drop(outcomes);
    let mut figures = ConnectionFigures {
        requested: scenario.connections,
        held: 0,
        held_at_end: 0,
        connect_errors: 0,
        errors_by_cause: BTreeMap::new(),
        connect_secs: 0.0,
        ended_early: 0,
        stalled: 0,
    };
    // Every task sends one outcome and then drops its sender, so this ends after the last.
    while let Some(outcome) = outcome_rx.recv().await {
        match outcome.result {
            Ok(()) => figures.held += 1,
            Err(failure) => {
                figures.connect_errors += 1;
                *figures.errors_by_cause.entry(failure.label()).or_default() += 1;
            }
        }
    }
    figures.connect_secs = start.elapsed().as_secs_f64();
    Ok(Connected { figures, handles })
}

fn publish_plan(scenario: &Scenario, minter: &TokenMinter) -> anyhow::Result<PublishPlan> {
    let user_ids_json = (0..scenario.users)
        .map(|u| serde_json::to_string(&scenario.user_id(u)))
        .collect::<Result<Vec<_>, _>>()
        .context("encoding user ids")?;
    // `--publish-url` defaults to the subscribe URL for the router and nchan; given apart, it
    // publishes through another router instance than the one holding the streams.
    let base = scenario.publish_url.trim_end_matches('/').to_owned();
    let endpoints = (0..scenario.users)
        .map(|u| format!("{base}{}", scenario.user_path(&scenario.publish_path, u)))
        .collect::<Vec<_>>();
    Ok(PublishPlan {
        kind: scenario.kind,
        endpoints: endpoints.into(),
        token: minter.mint("loadgen", "service")?,
        user_ids_json: user_ids_json.into(),
        rate: scenario.rate,
        duration: scenario.duration,
        max_events: scenario.max_events,
        concurrency: scenario.publishers,
    })
}

/// Waits until the deliveries (and with Kafka, the records) the accepted events call for have
/// arrived, or the drain time is up; answers how long it waited, in seconds.
async fn drain(
    scenario: &Scenario,
    shared: &Shared,
    outcome: &PublishOutcome,
    kafka: Option<&KafkaWatch>,
) -> f64 {
    let expected: u64 = outcome
        .accepted_per_user
        .iter()
        .zip(&shared.held_per_user)
        .map(|(accepted, held)| accepted * u64::from(held.load(Ordering::Relaxed)))
        .sum();
    let start = Instant::now();
    let deadline = start + scenario.drain;
    let records_expected = kafka.map_or(0, |k| k.expected(outcome.accepted));
    let pending = || {
        shared.deliveries.load(Ordering::Relaxed) < expected
            || kafka.is_some_and(|k| k.records() < records_expected)
    };
    while pending() && Instant::now() < deadline {
        tokio::time::sleep(DRAIN_POLL).await;
    }
    start.elapsed().as_secs_f64()
}

async fn join_all(handles: Vec<JoinHandle<ConnStats>>) -> Vec<ConnStats> {
    let mut stats = Vec::with_capacity(handles.len());
    for handle in handles {
        // A subscriber that panicked saw nothing we can count.
        if let Ok(s) = handle.await {
            stats.push(s);
        }
    }
    stats
}

/// Adds up what the connections saw against what the accepted events call for.
fn tally_deliveries(stats: &[ConnStats], published: Option<&PublishOutcome>) -> DeliveryFigures {
    let mut d = DeliveryFigures::default();
    for s in stats.iter().filter(|s| s.connected && !s.stalled) {
        let expected = published.map_or(0, |p| p.accepted_per_user[s.user]);
        d.expected += expected;
        d.received += s.received;
        d.missing += expected.saturating_sub(s.received);
        d.unexpected += s.received.saturating_sub(expected);
        d.incomplete_connections += u64::from(s.received < expected);
        d.duplicates += s.duplicates;
        d.out_of_order += s.out_of_order;
        d.misrouted += s.misrouted;
        d.foreign += s.foreign;
        d.resyncs += s.resyncs;
    }
    d
}

fn publish_figures(o: &PublishOutcome) -> PublishFigures {
    let secs = o.elapsed.as_secs_f64();
    PublishFigures {
        attempted: o.attempted,
        accepted: o.accepted,
        failed: o.attempted - o.accepted,
        failures_by_cause: o.failures.clone(),
        secs,
        accepted_per_sec: o.accepted as f64 / secs.max(1e-9),
        max_lag_ms: o.max_lag.as_secs_f64() * 1000.0,
    }
}

fn summary(s: &Scenario) -> ScenarioSummary {
    ScenarioSummary {
        url: s.url.clone(),
        target: s.kind,
        stall_every: s.stall_every,
        connections: s.connections,
        users: s.users,
        max_per_user: s.max_per_user,
        idle: s.idle,
        rate: s.rate,
        duration_secs: s.duration.as_secs_f64(),
        max_events: s.max_events,
        connect_rate: s.connect_rate,
    }
}

fn loadgen_figures(wall: Instant, cpu_start: Option<probe::CpuTime>) -> LoadgenFigures {
    let wall_secs = wall.elapsed().as_secs_f64();
    let cpu = match (probe::self_cpu(), cpu_start) {
        (Some(end), Some(start)) => Some(end.since(&start)),
        _ => None,
    };
    LoadgenFigures {
        wall_secs,
        cpu,
        cpu_percent: cpu.map(|c| 100.0 * c.total() / wall_secs.max(1e-9)),
        rss_kib: probe::rss_kib(std::process::id()),
    }
}

/// Once a second: the best second's event frames, and (with `progress`) a line on stderr.
struct Sampler {
    peak: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Sampler {
    fn start(shared: Arc<Shared>, counters: Arc<PublishCounters>, progress: bool) -> Sampler {
        let peak = Arc::new(AtomicU64::new(0));
        let best = peak.clone();
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let second = Duration::from_secs(1);
            let mut tick = tokio::time::interval_at(start + second, second);
            let mut last = shared.event_frames.load(Ordering::Relaxed);
            loop {
                tick.tick().await;
                let now = shared.event_frames.load(Ordering::Relaxed);
                best.fetch_max(now - last, Ordering::Relaxed);
                if progress {
                    eprintln!(
                        "[{:>4.0} s] held {:>6}  published {:>8} (accepted {:>8})  \
                         event frames {:>9} (+{}/s)",
                        start.elapsed().as_secs_f64(),
                        shared.held.load(Ordering::Relaxed),
                        counters.attempted.load(Ordering::Relaxed),
                        counters.accepted.load(Ordering::Relaxed),
                        now,
                        now - last
                    );
                }
                last = now;
            }
        });
        Sampler { peak, task }
    }

    /// Stops sampling; answers the best whole second's event frames.
    fn stop(self) -> u64 {
        self.task.abort();
        self.peak.load(Ordering::Relaxed)
    }
}
