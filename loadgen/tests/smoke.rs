//! Small load runs against the real router, started in-process on port 0 exactly as the
//! router's own API tests start it (with its embedded Kafka cluster). Correctness only: every
//! expected delivery arrives once, in cursor order, on every connection, and on the Kafka path
//! every accepted event is seen once on the broker. No figure about time is asserted.

use figment::providers::{Format, Toml};
use figment::Figment;
use loadgen::kafka::{KafkaPlan, BROKERS_FROM_READYZ, DEFAULT_TOPICS};
use loadgen::Scenario;
use nft_event_router::config::Settings;
use nft_event_router::startup::Application;
use std::time::Duration;

const SECRET: &str = "loadgen-smoke-secret-0123456789";
const CONNECTIONS: usize = 200;
const USERS: usize = 70;
const EVENTS: u64 = 1_000;

/// The repository's `config.toml`, as the router reads it.
fn repository_config() -> Figment {
    Figment::from(Toml::file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config.toml"
    )))
}

/// A store path no other run uses.
fn fresh_store(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "loadgen_{name}_{}_{}.db",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos()
    ))
}

fn remove_store(store: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", store.display()));
    }
}

/// The router on the repository's `config.toml`, port 0, a fresh SQLite file, our secret.
async fn start_router(store: &std::path::Path) -> (String, tokio::sync::oneshot::Sender<()>) {
    let figment = repository_config()
        .merge(Toml::string(
            "[http]\nbind = \"127.0.0.1:0\"\nworkers = 2\n",
        ))
        .merge(Toml::string(&format!(
            "[store]\nurl = {:?}\n",
            format!("sqlite://{}", store.display())
        )))
        .merge(Toml::string(&format!("[auth]\njwt_secret = {SECRET:?}\n")));
    let settings = Settings::from_figment(figment).expect("test settings are valid");
    let app = Application::build(&settings)
        .await
        .expect("application builds");
    let url = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    actix_web::rt::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    (url, stop)
}

/// Deliveries the round-robin plan calls for: Σ over users of connections × events.
fn planned_deliveries() -> u64 {
    (0..USERS)
        .map(|u| {
            let connections = (0..CONNECTIONS).filter(|i| i % USERS == u).count() as u64;
            let events = (0..EVENTS).filter(|i| *i as usize % USERS == u).count() as u64;
            connections * events
        })
        .sum()
}

#[actix_web::test]
async fn every_expected_delivery_arrives_once_and_in_cursor_order() {
    // Arrange
    let store = fresh_store("smoke");
    let (url, stop) = start_router(&store).await;
    let mut scenario = Scenario::new(url);
    scenario.connections = CONNECTIONS;
    scenario.users = USERS;
    scenario.rate = 500.0;
    scenario.max_events = Some(EVENTS);
    scenario.duration = Duration::from_secs(20);
    scenario.jwt_secret = SECRET.to_owned();

    // Act: the load generator gets its own runtime, so the router's threads stay its own.
    let report = tokio::task::spawn_blocking(move || loadgen::run_blocking(&scenario, 2))
        .await
        .expect("load generator thread")
        .expect("load generator ran");

    // Assert
    println!("{report}");
    let c = &report.connections;
    assert_eq!(
        c.connect_errors, 0,
        "connect errors: {:?}",
        c.errors_by_cause
    );
    assert_eq!(c.held, CONNECTIONS as u64);
    assert_eq!(c.ended_early, 0);
    let p = report.publish.as_ref().expect("a publishing run");
    assert_eq!(
        p.accepted, EVENTS,
        "publish failures: {:?}",
        p.failures_by_cause
    );
    let d = &report.delivery;
    assert_eq!(d.expected, planned_deliveries());
    assert_eq!(d.received, d.expected, "every expected delivery arrives");
    assert_eq!(d.missing, 0);
    assert_eq!(d.unexpected, 0);
    assert_eq!(d.duplicates, 0);
    assert_eq!(d.out_of_order, 0);
    assert_eq!(d.misrouted, 0);
    assert_eq!(d.incomplete_connections, 0);
    assert_eq!(d.foreign, 0);
    assert!(report.problems().is_empty(), "{report}");
    let latency = report.latency_us.as_ref().expect("latencies recorded");
    assert_eq!(latency.count, d.received);

    let _ = stop.send(());
    remove_store(&store);
}

#[test]
fn the_default_kafka_topics_are_where_the_router_routes_the_published_type() {
    let settings = Settings::from_figment(repository_config()).expect("config.toml is valid");
    assert_eq!(
        settings.routing.get(
            &nft_event_router::config::RouteKey::try_from("volume_milestone_reached".to_owned())
                .expect("a known type")
        ),
        Some(&DEFAULT_TOPICS.iter().map(|t| (*t).to_owned()).collect()),
        "the topics loadgen reads are the routed ones"
    );
}

#[actix_web::test]
async fn on_the_kafka_path_every_accepted_event_is_seen_once_on_the_broker_and_on_sse() {
    // Arrange: the broker address comes from the router's /readyz, as on the command line.
    const KAFKA_CONNECTIONS: usize = 40;
    const KAFKA_USERS: usize = 20;
    const KAFKA_EVENTS: u64 = 300;
    let store = fresh_store("kafka");
    let (url, stop) = start_router(&store).await;
    let mut scenario = Scenario::new(url);
    scenario.connections = KAFKA_CONNECTIONS;
    scenario.users = KAFKA_USERS;
    scenario.rate = 300.0;
    scenario.max_events = Some(KAFKA_EVENTS);
    scenario.duration = Duration::from_secs(20);
    scenario.drain = Duration::from_secs(30);
    scenario.jwt_secret = SECRET.to_owned();
    scenario.kafka = Some(KafkaPlan::new(BROKERS_FROM_READYZ));

    // Act
    let report = tokio::task::spawn_blocking(move || loadgen::run_blocking(&scenario, 2))
        .await
        .expect("load generator thread")
        .expect("load generator ran");

    // Assert
    println!("{report}");
    let p = report.publish.as_ref().expect("a publishing run");
    assert_eq!(
        p.accepted, KAFKA_EVENTS,
        "publish failures: {:?}",
        p.failures_by_cause
    );
    let k = report.kafka.as_ref().expect("Kafka figures");
    assert_eq!(k.topics, DEFAULT_TOPICS);
    assert_eq!(k.expected, KAFKA_EVENTS);
    assert_eq!(k.records, KAFKA_EVENTS, "every event on the broker");
    assert_eq!(k.missing, 0);
    assert_eq!(k.duplicates, 0);
    assert_eq!(k.unexpected, 0);
    assert_eq!(k.foreign, 0);
    assert_eq!(k.events_on_both, KAFKA_EVENTS, "every event on SSE as well");
    let broker = report.kafka_latency_us.as_ref().expect("broker latencies");
    assert_eq!(broker.count, KAFKA_EVENTS);
    let sse = k.sse_latency_us.as_ref().expect("SSE latencies");
    assert_eq!(sse.count, KAFKA_EVENTS);
    let gap = k.record_to_frame_us.as_ref().expect("record → frame");
    assert_eq!(gap.count, KAFKA_EVENTS);
    let d = &report.delivery;
    assert_eq!(d.received, d.expected);
    assert_eq!(d.duplicates + d.out_of_order + d.misrouted + d.missing, 0);
    assert!(report.problems().is_empty(), "{report}");

    let _ = stop.send(());
    remove_store(&store);
}
