//! `GET /metrics`: Prometheus text that follows real streams, events, the relay and the
//! consumers.
//!
//! Each app counts into metrics of its own, so the figures are asserted exactly while the
//! other tests of this binary run beside it; only what the router adds by itself meanwhile
//! (its own alert and report events reach the outbox and the consumers) is a lower bound.

use crate::helpers::{event_body, spawn_app, unique_user, SseClient, TestApp};
use actors::consumers::{ANALYTICS_GROUP, AUDIT_GROUP, NOTIFICATIONS_GROUP};
use actors::EventType;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Consumer groups join, the relay publishes and the lag is measured in the background.
const PATIENCE: Duration = Duration::from_secs(30);

/// The label every series of an app carries; taken off the keys, and checked once.
const INSTANCE_LABEL: &str = "instance_id=";

/// One scrape: every sample, keyed by its series as rendered (`name{label="v",…}`) without the
/// `instance_id` label.
struct Scrape(HashMap<String, f64>);

/// `name{a="1",instance_id="x",b="2"}` → `name{a="1",b="2"}`; `name{instance_id="x"}` → `name`.
fn without_instance(series: &str) -> String {
    let Some(at) = series.find(INSTANCE_LABEL) else {
        return series.to_owned();
    };
    let value_start = at + INSTANCE_LABEL.len() + 1;
    let end = series[value_start..]
        .find('"')
        .map_or(series.len(), |i| value_start + i + 1);
    let (head, tail) = (&series[..at], &series[end..]);
    let tail = tail.strip_prefix(',').unwrap_or(tail);
    let joined = format!("{head}{tail}");
    joined.replace(",}", "}").replace("{}", "")
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let samples = text
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("`series value` line");
                let value = value.parse().unwrap_or_else(|e| panic!("{line}: {e}"));
                assert!(series.contains(INSTANCE_LABEL), "{line} names its instance");
                (without_instance(series), value)
            })
            .collect();
        Scrape(samples)
    }

    /// The sample's value; 0 for a series not rendered yet (a label set not seen yet).
    fn get(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }

    fn with_prefix(&self, prefix: &str) -> Vec<(&str, f64)> {
        self.0
            .iter()
            .filter(|(series, _)| series.starts_with(prefix))
            .map(|(series, value)| (series.as_str(), *value))
            .collect()
    }
}

async fn scrape(app: &TestApp) -> Scrape {
    let response = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    Scrape::parse(&response.text().await.expect("text"))
}

/// Scrapes until `done` holds; the last scrape either way.
async fn scrape_until(app: &TestApp, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = scrape(app).await;
        if done(&now) || Instant::now() >= deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn by_type(name: &str, event_type: EventType) -> String {
    format!("{name}{{event_type=\"{}\"}}", event_type.as_str())
}

fn by_group(name: &str, group: &str) -> String {
    format!("{name}{{group=\"{group}\"}}")
}

const CONNECTIONS: &str = "nft_router_sse_connections";
const USERS: &str = "nft_router_sse_users";
const RATE_LIMITED: &str = r#"nft_router_sse_connections_refused_total{reason="rate_limited"}"#;

#[actix_web::test]
async fn metrics_are_prometheus_text_for_anyone() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4"
    );
    let text = response.text().await.expect("text");
    assert!(
        text.contains("# TYPE nft_router_sse_connections gauge"),
        "{text}"
    );
    // Parsing checks that every series names its instance.
    let scraped = Scrape::parse(&text);
    assert_eq!(scraped.get(CONNECTIONS), 0.0);
    assert_eq!(
        without_instance(r#"x{a="1",instance_id="n-1",b="2"}"#),
        r#"x{a="1",b="2"}"#
    );
    assert_eq!(without_instance(r#"x{instance_id="n-1"}"#), "x");
    assert!(text.contains("# TYPE nft_router_delivery_latency_seconds histogram"));
}

#[actix_web::test]
async fn a_stream_refused_with_429_is_counted() {
    let app = spawn_app().await;
    let user = unique_user();
    assert_eq!(scrape(&app).await.get(RATE_LIMITED), 0.0);
    let _open = [
        app.open_stream(&user).await,
        app.open_stream(&user).await,
        app.open_stream(&user).await,
    ];
    assert_eq!(app.open_stream_response(&user).await.status(), 429);
    assert_eq!(scrape(&app).await.get(RATE_LIMITED), 1.0);
}

/// Two streams for one user and one for another, events of three types, the relay and the
/// consumers. Gauges and counters are asserted exactly; what the router may add by itself
/// meanwhile (its own alert and report events reach the outbox and the consumers) only as a
/// lower bound.
#[actix_web::test]
async fn figures_follow_streams_events_relay_and_consumers() {
    let app = spawn_app().await;
    let before = scrape(&app).await;
    assert_eq!(before.get(CONNECTIONS), 0.0);
    assert_eq!(before.get("nft_router_sse_connections_opened_total"), 0.0);
    let (alice, bob) = (unique_user(), unique_user());
    let mut streams = vec![
        app.open_stream(&alice).await,
        app.open_stream(&alice).await,
        app.open_stream(&bob).await,
    ];
    let open = scrape_until(&app, |s| s.get(CONNECTIONS) == 3.0).await;
    assert_eq!(open.get(CONNECTIONS), 3.0);
    assert_eq!(open.get(USERS), 2.0);
    assert_eq!(
        open.get("nft_router_sse_connections_opened_total"),
        before.get("nft_router_sse_connections_opened_total") + 3.0
    );

    let published = [
        (&alice, EventType::BadgeEarned),
        (&alice, EventType::NftUnlocked),
        (&alice, EventType::NftUpgraded),
        (&alice, EventType::BadgeEarned),
        (&alice, EventType::NftUnlocked),
        (&bob, EventType::BadgeEarned),
        (&bob, EventType::BadgeEarned),
    ];
    for (user, event_type) in published {
        assert_eq!(
            app.publish(&event_body(user, event_type)).await.status(),
            202
        );
    }
    read_events(&mut streams[..2], 5).await;
    read_events(&mut streams[2..], 2).await;

    let after = scrape(&app).await;
    let grew =
        |name: &str, t: EventType| after.get(&by_type(name, t)) - before.get(&by_type(name, t));
    let accepted = "nft_router_events_accepted_total";
    let delivered = "nft_router_events_delivered_total";
    assert_eq!(grew(accepted, EventType::BadgeEarned), 4.0);
    assert_eq!(grew(accepted, EventType::NftUnlocked), 2.0);
    assert_eq!(grew(accepted, EventType::NftUpgraded), 1.0);
    // Alice's events reach both her streams.
    assert_eq!(grew(delivered, EventType::BadgeEarned), 2.0 * 2.0 + 2.0);
    assert_eq!(grew(delivered, EventType::NftUnlocked), 2.0 * 2.0);
    assert_eq!(grew(delivered, EventType::NftUpgraded), 2.0);
    // Every delivery was live (the streams were open before the events), so each was timed.
    let latency = "nft_router_delivery_latency_seconds_count";
    assert_eq!(after.get(latency) - before.get(latency), 12.0);
    let snapshot = app.metrics().snapshot();
    assert_eq!(snapshot.open_connections, 3);
    assert_eq!(snapshot.connected_users, 2);

    check_kafka_side(&app, &before).await;
    check_refusals(&app, &alice, &before).await;

    drop(streams);
    let closed = scrape_until(&app, |s| s.get(CONNECTIONS) == 0.0).await;
    assert_eq!(closed.get(CONNECTIONS), 0.0);
    assert_eq!(closed.get(USERS), 0.0);
    let gone = r#"nft_router_sse_sessions_closed_total{reason="client_gone"}"#;
    assert_eq!(closed.get(gone) - before.get(gone), 4.0);
}

/// Reads `n` events on each of `streams`.
async fn read_events(streams: &mut [SseClient], n: usize) {
    for stream in streams {
        for _ in 0..n {
            assert!(stream.next_event().await.is_some(), "event delivered");
        }
    }
}

/// The relay's publish latency, each group's processing time and the lag of every partition.
async fn check_kafka_side(app: &TestApp, before: &Scrape) {
    let outbox = "nft_router_outbox_publish_latency_seconds_count";
    // At least: the router may store events of its own meanwhile (alerts, reports).
    let published = scrape_until(app, |s| s.get(outbox) - before.get(outbox) >= 7.0).await;
    assert!(published.get(outbox) - before.get(outbox) >= 7.0);

    // nft_unlocked reaches the analytics group, badge_earned the notifications group,
    // nft_upgraded (on the operations topic) the audit group.
    let processing = "nft_router_consumer_processing_seconds_count";
    let groups = [ANALYTICS_GROUP, NOTIFICATIONS_GROUP, AUDIT_GROUP];
    let consumed = scrape_until(app, |s| {
        groups
            .iter()
            .all(|g| s.get(&by_group(processing, g)) > before.get(&by_group(processing, g)))
    })
    .await;
    for group in groups {
        let series = by_group(processing, group);
        assert!(
            consumed.get(&series) > before.get(&series),
            "{series} has samples"
        );
    }

    // Each group's partitions are measured, and once everything is consumed, none lags.
    let lag = |s: &Scrape, group: &str| {
        s.with_prefix(&format!("nft_router_consumer_lag{{group=\"{group}\""))
            .into_iter()
            .map(|(_, v)| v)
            .collect::<Vec<f64>>()
    };
    let caught_up = scrape_until(app, |s| {
        groups.iter().all(|g| {
            let lags = lag(s, g);
            !lags.is_empty() && lags.iter().all(|l| *l == 0.0)
        })
    })
    .await;
    for group in groups {
        let lags = lag(&caught_up, group);
        assert!(
            !lags.is_empty(),
            "lag of {group} measured: {:?}",
            caught_up.with_prefix("nft_router_consumer_lag")
        );
        assert!(
            lags.iter().all(|l| *l == 0.0),
            "{group} caught up: {lags:?}"
        );
    }
    let snapshot = app.metrics().snapshot();
    assert_eq!(snapshot.max_consumer_lag, 0);
    assert!(snapshot.processing_count >= 3);
}

/// A fourth stream for a user holding three is refused (429), one without a token too (401).
async fn check_refusals(app: &TestApp, user: &str, before: &Scrape) {
    let third = app.open_stream(user).await;
    assert_eq!(app.open_stream_response(user).await.status(), 429);
    let anonymous = app
        .client
        .get(app.url("/api/v1/user/nft-events"))
        .send()
        .await
        .expect("sent");
    assert_eq!(anonymous.status(), 401);
    let now = scrape(app).await;
    let unauthorized = r#"nft_router_sse_connections_refused_total{reason="unauthorized"}"#;
    assert_eq!(now.get(RATE_LIMITED) - before.get(RATE_LIMITED), 1.0);
    assert_eq!(now.get(unauthorized) - before.get(unauthorized), 1.0);
    drop(third);
}
