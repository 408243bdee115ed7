//! Alerts on the operations feed, from the figures of the app's own metrics.

use crate::helpers::{spawn_app_with, SseClient};
use std::time::Duration;

/// The alert events on the feed within `wait`: `(eventType, name)`.
async fn alerts_within(feed: &mut SseClient, wait: Duration) -> Vec<(String, String)> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut out = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return out;
        }
        let Some(frame) = feed.next_frame_within(left).await else {
            return out;
        };
        if frame.id.is_none() || frame.control_type().is_some() {
            continue;
        }
        let Some(event) = frame.json() else { continue };
        let kind = event["eventType"].as_str().unwrap_or("").to_owned();
        if kind.starts_with("system_alert") {
            out.push((
                kind,
                event["data"]["name"].as_str().unwrap_or("").to_owned(),
            ));
        }
    }
}

/// Waits until the feed shows an alert event of `kind`; answers every alert event seen.
async fn until_alert(feed: &mut SseClient, kind: &str) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    for _ in 0..30 {
        seen.extend(alerts_within(feed, Duration::from_secs(1)).await);
        if seen.iter().any(|(k, _)| k == kind) {
            return seen;
        }
    }
    panic!("no {kind} within 30 s; saw {seen:?}");
}

#[actix_web::test]
async fn crossing_the_connection_threshold_raises_one_alert_and_clearing_it_one_resolution() {
    let app =
        spawn_app_with("[alerts]\ninterval_secs = 1\nclear_after = 2\nactive_connections = 3\n")
            .await;
    let mut feed = app.open_operations("ops", None).await;

    let streams = vec![
        app.open_stream("u1").await,
        app.open_stream("u2").await,
        app.open_stream("u3").await,
    ];
    let raised = until_alert(&mut feed, "system_alert").await;
    assert_eq!(
        raised,
        vec![("system_alert".to_owned(), "sseConnectionLimit".to_owned())]
    );
    // Still above: no second alert.
    let more = alerts_within(&mut feed, Duration::from_secs(3)).await;
    assert!(more.is_empty(), "{more:?}");

    drop(streams);
    let resolved = until_alert(&mut feed, "system_alert_resolved").await;
    assert_eq!(
        resolved,
        vec![(
            "system_alert_resolved".to_owned(),
            "sseConnectionLimit".to_owned()
        )]
    );
    let after = alerts_within(&mut feed, Duration::from_secs(3)).await;
    assert!(after.is_empty(), "no flapping: {after:?}");
}
