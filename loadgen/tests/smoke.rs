//! A small load run against the real router, started in-process on port 0 exactly as the
//! router's own API tests start it. Correctness only: every expected delivery arrives once,
//! in cursor order, on every connection. No figure about time is asserted.

use figment::providers::{Format, Toml};
use figment::Figment;
use loadgen::Scenario;
use nft_event_router::config::Settings;
use nft_event_router::startup::Application;
use std::time::Duration;

const SECRET: &str = "loadgen-smoke-secret-0123456789";
const CONNECTIONS: usize = 200;
const USERS: usize = 70;
const EVENTS: u64 = 1_000;

/// The router on the repository's `config.toml`, port 0, a fresh SQLite file, our secret.
async fn start_router(store: &std::path::Path) -> (String, tokio::sync::oneshot::Sender<()>) {
    let figment = Figment::from(Toml::file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config.toml"
    )))
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
    let store = std::env::temp_dir().join(format!(
        "loadgen_smoke_{}_{}.db",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos()
    ));
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
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", store.display()));
    }
}
