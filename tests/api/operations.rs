//! The admin operations feed over HTTP: admin-only, every event routed to the operations topic
//! (from any router instance), the same wire format and `Last-Event-ID` resume as a user
//! stream, and the monitoring reporter's summaries.

use crate::helpers::{event_body, spawn_app, spawn_app_on, spawn_app_with, unique_user, SseClient};
use actors::EventType;
use nft_event_router::auth::Role;
use std::time::Duration;
use tokio::time::Instant;

/// How long the feed may take to show an event. Its first one waits for the operations
/// consumer group to join on the embedded cluster (a few seconds, longer on a loaded machine),
/// then for the feed's poll.
const FEED_WAIT: Duration = Duration::from_secs(20);

/// The next event on the feed of one of the given types, skipping others (other tests' apps
/// have feeds of their own, but this app's reporter and alerts may post meanwhile).
async fn next_of(feed: &mut SseClient, types: &[&str]) -> (String, serde_json::Value) {
    let deadline = Instant::now() + FEED_WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = feed
            .next_frame_within(left)
            .await
            .expect("an event on the feed");
        if frame.control_type().is_some() {
            continue;
        }
        let (Some(id), Some(event)) = (frame.id.clone(), frame.json()) else {
            continue;
        };
        if types.contains(&event["eventType"].as_str().unwrap_or("")) {
            return (id, event);
        }
    }
}

#[actix_web::test]
async fn only_admins_open_the_feed() {
    let app = spawn_app().await;
    let as_user = app
        .client
        .get(app.url("/api/v1/admin/operations"))
        .bearer_auth(app.token("u1", Role::User))
        .send()
        .await
        .expect("sent");
    assert_eq!(as_user.status().as_u16(), 403);
    let anonymous = app
        .client
        .get(app.url("/api/v1/admin/operations"))
        .send()
        .await
        .expect("sent");
    assert_eq!(anonymous.status().as_u16(), 401);
}

#[actix_web::test]
async fn the_feed_carries_operations_events_and_resumes_after_an_id() {
    let app = spawn_app().await;
    let mut feed = app.open_operations("ops-1", None).await;
    let welcome = feed.next_frame().await.expect("welcome");
    assert_eq!(
        welcome.control_type().as_deref(),
        Some("connection_established")
    );

    let user = unique_user();
    // badge_earned goes to the user topics only; nft_minted and nft_unlock_failed to operations.
    let mut ids = Vec::new();
    for event_type in [
        EventType::BadgeEarned,
        EventType::NftMinted,
        EventType::NftUnlockFailed,
    ] {
        let response = app.publish(&event_body(&user, event_type)).await;
        assert_eq!(response.status(), 202);
        let envelope: serde_json::Value = response.json().await.expect("json");
        ids.push(envelope["eventId"].as_str().expect("id").to_owned());
    }
    let wanted = ["nft_minted", "nft_unlock_failed", "badge_earned"];
    let (first_cursor, first) = next_of(&mut feed, &wanted).await;
    let (second_cursor, second) = next_of(&mut feed, &wanted).await;
    let got = [first["eventId"].clone(), second["eventId"].clone()];
    assert!(
        got.contains(&serde_json::json!(ids[1])),
        "nft_minted is on the feed"
    );
    assert!(
        got.contains(&serde_json::json!(ids[2])),
        "nft_unlock_failed is on the feed"
    );
    assert!(
        !got.contains(&serde_json::json!(ids[0])),
        "badge_earned is not routed to admins"
    );
    assert_eq!(first["userId"], user.as_str());
    let (a, b): (u64, u64) = (
        first_cursor.parse().expect("cursor"),
        second_cursor.parse().expect("cursor"),
    );
    assert!(a < b, "feed ids increase");

    // A second admin resuming after the first entry gets the second, and nothing twice.
    let mut resumed = app.open_operations("ops-2", Some(&first_cursor)).await;
    let (cursor, event) = next_of(&mut resumed, &wanted).await;
    assert_eq!(
        (cursor, event["eventId"].clone()),
        (second_cursor, second["eventId"].clone())
    );
}

#[actix_web::test]
async fn events_accepted_by_another_instance_reach_this_instances_admins() {
    // Two routers on one database (and, in production, one Kafka): a second instance's feed
    // shows what the first accepted, since both tail the feed the consumers store.
    let first = spawn_app().await;
    let second = spawn_app_on(&first.store_url, "").await;
    let mut feed = second.open_operations("ops", None).await;
    let user = unique_user();
    let response = first
        .publish(&event_body(&user, EventType::NftBurned))
        .await;
    assert_eq!(response.status(), 202);
    let (_, event) = next_of(&mut feed, &["nft_burned"]).await;
    assert_eq!(event["userId"], user.as_str());
}

#[actix_web::test]
async fn the_reporter_posts_a_metrics_summary_on_the_feed() {
    let app = spawn_app_with("[monitoring]\nreport_interval_secs = 1\n").await;
    let mut feed = app.open_operations("ops", None).await;
    let (_, report) = next_of(&mut feed, &["metrics_report"]).await;
    assert_eq!(report["userId"], "system");
    let data = &report["data"];
    for field in [
        "intervalSecs",
        "openConnections",
        "eventsAccepted",
        "eventsDelivered",
        "avgProcessingMs",
        "maxConsumerLag",
        "outboxBacklog",
    ] {
        assert!(data.get(field).is_some(), "{field} in {data}");
    }
    assert!(
        data["openConnections"].as_u64().is_some_and(|n| n >= 1),
        "the feed itself is an open connection: {data}"
    );
}
