//! `render` and `snapshot` on a set of the test's own.

use super::*;
use std::time::Instant;

/// The value of the sample `series` (name plus labels exactly as rendered) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
}

fn exercised() -> Metrics {
    let m = Metrics::new().expect("metrics");
    // Two users: one with two sessions, one with one; then the second user's session ends.
    m.user_sessions_changed(0, 1);
    m.user_sessions_changed(1, 2);
    m.user_sessions_changed(0, 1);
    m.user_sessions_changed(1, 0);
    for _ in 0..3 {
        m.session_opened();
    }
    m.session_closed(EndReason::QueueOverflow);
    m.session_closed(EndReason::ClientGone);
    m.connection_refused(Refusal::RateLimited);
    m.connection_refused(Refusal::Unauthorized);
    m.event_accepted(&EventType::BadgeEarned.into());
    m.event_accepted(&EventType::BadgeEarned.into());
    m.event_accepted(&EventType::NftMinted.into());
    m.event_failed(EventType::NftMinted);
    let committed = Some(Instant::now());
    m.event_delivered(Some(EventType::BadgeEarned), committed);
    m.event_delivered(Some(EventType::BadgeEarned), committed);
    m.event_delivered(Some(EventType::BadgeEarned), None);
    m.outbox_published(Duration::from_millis(3));
    m.set_outbox_backlog(7);
    m.consumer_processed("g1", Duration::from_millis(250));
    m.consumer_processed("g2", Duration::from_millis(750));
    m.dead_lettered("g1");
    m.set_consumer_lag("g1", "t", 0, 4);
    m.set_consumer_lag("g2", "t", 1, 9);
    m
}

#[test]
fn render_is_the_text_exposition_of_every_collector() {
    let text = exercised().render();
    let at = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series} in\n{text}"));

    assert!(text.contains("# TYPE nft_router_sse_connections gauge"));
    assert!(text.contains("# TYPE nft_router_delivery_latency_seconds histogram"));
    assert_eq!(at("nft_router_sse_connections"), 2.0);
    assert_eq!(at("nft_router_sse_users"), 1.0);
    assert_eq!(
        at(r#"nft_router_events_accepted_total{event_type="badge_earned"}"#),
        2.0
    );
    assert_eq!(
        at(r#"nft_router_events_failed_total{event_type="nft_minted"}"#),
        1.0
    );
    assert_eq!(
        at(r#"nft_router_events_delivered_total{event_type="badge_earned"}"#),
        3.0
    );
    // Every known type is there from the start.
    assert_eq!(
        at(r#"nft_router_events_delivered_total{event_type="nft_burned"}"#),
        0.0
    );
    // Only live frames are timed.
    assert_eq!(at("nft_router_delivery_latency_seconds_count"), 2.0);
    assert_eq!(
        at(r#"nft_router_delivery_latency_seconds_bucket{le="5"}"#),
        2.0
    );
    assert_eq!(
        at(r#"nft_router_outbox_publish_latency_seconds_bucket{le="0.0025"}"#),
        0.0
    );
    assert_eq!(
        at(r#"nft_router_outbox_publish_latency_seconds_bucket{le="0.005"}"#),
        1.0
    );
    assert_eq!(at("nft_router_sse_overflows_total"), 1.0);
    assert_eq!(
        at(r#"nft_router_sse_sessions_closed_total{reason="queue_overflow"}"#),
        1.0
    );
    assert_eq!(
        at(r#"nft_router_sse_sessions_closed_total{reason="shutdown"}"#),
        0.0
    );
    assert_eq!(
        at(r#"nft_router_sse_connections_refused_total{reason="rate_limited"}"#),
        1.0
    );
    assert_eq!(
        at(r#"nft_router_consumer_processing_seconds_count{group="g2"}"#),
        1.0
    );
    assert_eq!(
        at(r#"nft_router_consumer_lag{group="g2",partition="1",topic="t"}"#),
        9.0
    );
    assert_eq!(at(r#"nft_router_dead_lettered_total{group="g1"}"#), 1.0);
    assert_eq!(at("nft_router_outbox_backlog"), 7.0);
}

#[test]
fn snapshot_sums_over_labels() {
    let m = exercised();
    assert_eq!(
        m.snapshot(),
        MetricsSnapshot {
            open_connections: 2,
            connected_users: 1,
            events_accepted: 3,
            events_delivered: 3,
            sse_connections_opened: 3,
            // One overflow and one 429; the client that left and the 401 are not errors.
            sse_errors: 2,
            dead_lettered: 1,
            processing_seconds_sum: 1.0,
            processing_count: 2,
            max_consumer_lag: 9,
            outbox_backlog: 7,
        }
    );
}

#[test]
fn a_forgotten_partition_no_longer_counts() {
    let m = exercised();
    m.forget_consumer_lag("g2", "t", 1);
    m.forget_consumer_lag("g2", "t", 1);
    assert_eq!(m.snapshot().max_consumer_lag, 4);
    assert!(!m.render().contains(r#"partition="1""#));
}

#[test]
fn an_instance_labels_every_series() {
    let m = Metrics::for_instance("node-7").expect("metrics");
    m.session_opened();
    let text = m.render();
    assert_eq!(
        sample(
            &text,
            r#"nft_router_sse_connections_opened_total{instance_id="node-7"}"#
        ),
        Some(1.0)
    );
    assert!(Metrics::standalone()
        .render()
        .contains("nft_router_sse_connections "));
}
