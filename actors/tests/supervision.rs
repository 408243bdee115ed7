//! The registry, supervisors and sessions driven in-process through the testkit.

use actors::testkit::{sample_event, Harness};
use actors::{ConnectError, EventType, StreamConfig};
use std::time::Duration;

const SHORT: Duration = Duration::from_millis(100);
const WAIT: Duration = Duration::from_secs(5);

fn config() -> StreamConfig {
    StreamConfig {
        session_queue: 8,
        ..StreamConfig::default()
    }
}

#[actix::test]
async fn opening_frames_are_welcome_then_retry() {
    let harness = Harness::start(config());
    let mut client = harness.attach("u1").await.expect("attached");

    let welcome = client.next_frame().await.expect("welcome");
    assert_eq!(
        welcome.control_type().as_deref(),
        Some("connection_established")
    );
    assert_eq!(welcome.json().expect("json")["userId"], "u1");
    assert_eq!(welcome.id, None);
    let retry = client.next_frame().await.expect("retry");
    assert_eq!(retry.retry, Some(3000));
}

#[actix::test]
async fn fans_out_to_every_session_of_the_user_only() {
    let harness = Harness::start(config());
    let mut a = harness.attach("u1").await.expect("a");
    let mut b = harness.attach("u1").await.expect("b");
    let mut other = harness.attach("u2").await.expect("other");

    let event = sample_event("u1", EventType::NftUnlocked);
    harness.publish(&event).await.expect("stored");

    for client in [&mut a, &mut b] {
        let got = client.next_event().await.expect("delivered");
        assert_eq!(got["eventId"], event.event_id.as_str());
        assert_eq!(got["data"]["tierName"], "Bronze");
    }
    assert!(other.no_event_within(SHORT).await);
}

#[actix::test]
async fn limit_is_enforced_and_a_slot_frees_on_disconnect() {
    let harness = Harness::start(config());
    let first = harness.attach("u1").await.expect("1");
    let _second = harness.attach("u1").await.expect("2");
    let _third = harness.attach("u1").await.expect("3");

    let refused = harness.attach("u1").await.err();
    assert_eq!(refused, Some(ConnectError::LimitReached { limit: 3 }));
    assert!(
        harness.attach("u2").await.is_ok(),
        "other users are unaffected"
    );

    first.disconnect();
    assert!(
        harness
            .wait_for_stats(WAIT, |s| s.connections_per_user.get("u1") == Some(&2))
            .await
    );
    assert!(harness.attach("u1").await.is_ok());
}

#[actix::test]
async fn stats_follow_the_seed_shape_and_supervisors_retire() {
    let harness = Harness::start(config());
    let a = harness.attach("u1").await.expect("a");
    let b = harness.attach("u1").await.expect("b");
    let c = harness.attach("u2").await.expect("c");

    assert!(
        harness
            .wait_for_stats(WAIT, |s| s.total_connections == 3)
            .await
    );
    let stats = harness.stats().await;
    assert_eq!(stats.unique_users, 2);
    assert_eq!(stats.connections_per_user.get("u1"), Some(&2));
    assert!((stats.average_connections_per_user - 1.5).abs() < f64::EPSILON);

    for client in [a, b, c] {
        client.disconnect();
    }
    assert!(
        harness
            .wait_for_stats(WAIT, |s| s.total_connections == 0 && s.unique_users == 0)
            .await
    );
    // A user whose supervisor retired can connect again at once.
    assert!(harness.attach("u1").await.is_ok());
}

#[actix::test]
async fn a_client_that_stops_reading_is_closed_without_holding_back_others() {
    let harness = Harness::start(config());
    let mut stalled = harness.attach("u1").await.expect("stalled");
    let mut reader = harness.attach("u1").await.expect("reader");

    // The reader takes each event as it comes; the stalled client never reads.
    for _ in 0..50 {
        let event = sample_event("u1", EventType::BadgeEarned);
        harness.publish(&event).await.expect("stored");
        let got = reader.next_event().await.expect("reader keeps up");
        assert_eq!(got["eventId"], event.event_id.as_str());
    }
    assert!(
        stalled.closed_within(WAIT).await,
        "overflowed session closed"
    );
    assert!(
        harness
            .wait_for_stats(WAIT, |s| s.total_connections == 1)
            .await
    );
}

#[actix::test]
async fn events_for_one_user_arrive_in_publish_order() {
    let harness = Harness::start(config());
    let mut client = harness.attach("u1").await.expect("client");
    let events: Vec<_> = (0..5)
        .map(|_| sample_event("u1", EventType::VolumeMilestoneReached))
        .collect();
    for event in &events {
        harness.publish(event).await.expect("stored");
    }
    for event in &events {
        let got = client.next_event().await.expect("event");
        assert_eq!(got["eventId"], event.event_id.as_str());
    }
}

#[actix::test]
async fn heartbeats_arrive_at_the_configured_interval_without_id() {
    let harness = Harness::start(StreamConfig {
        heartbeat: Duration::from_millis(50),
        ..config()
    });
    let mut client = harness.attach("u1").await.expect("client");
    let mut beats = 0;
    while beats < 3 {
        let frame = client.next_frame().await.expect("frame");
        if frame.control_type().as_deref() == Some("heartbeat") {
            assert_eq!(frame.id, None);
            beats += 1;
        }
    }
}

#[actix::test]
async fn close_all_ends_every_stream_and_refuses_new_ones() {
    let harness = Harness::start(config());
    let mut a = harness.attach("u1").await.expect("a");
    let mut b = harness.attach("u2").await.expect("b");
    harness.close_all();
    assert!(a.closed_within(WAIT).await);
    assert!(b.closed_within(WAIT).await);
    assert_eq!(
        harness.attach("u3").await.err(),
        Some(ConnectError::Unavailable)
    );
}

/// An event stored while a new stream is still reading its journal head reaches it: the
/// session joins the fan-out only after that read and then reads what was stored in between,
/// so the event is neither taken for one the head already covered nor missed.
#[actix::test]
async fn an_event_stored_while_a_stream_reads_its_head_is_delivered() {
    let harness = Harness::start(config());
    harness.log().set_bounds_delay(Duration::from_millis(200));
    let mut client = harness.attach("u1").await.expect("attached");
    let event = sample_event("u1", EventType::BadgeEarned);
    harness.publish(&event).await.expect("stored");
    let got = client.next_event().await.expect("delivered");
    assert_eq!(got["eventId"], event.event_id.as_str());
    assert!(client.no_event_within(SHORT).await, "and only once");
}
