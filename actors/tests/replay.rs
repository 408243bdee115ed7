//! The journal and resuming from a cursor, driven in-process through the testkit.

use actix::Actor;
use actors::journal::{LogError, PruneNow, RetentionPruner};
use actors::outbox::Outbox;
use actors::testkit::{sample_event, Harness, TestClient};
use actors::{EventType, Resume, StreamConfig};
use std::sync::Arc;
use std::time::Duration;

fn config() -> StreamConfig {
    StreamConfig {
        session_queue: 64,
        ..StreamConfig::default()
    }
}

async fn publish_n(harness: &Harness, user: &str, n: usize) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let event = sample_event(user, EventType::BadgeEarned);
        let seq = harness.publish(&event).await.expect("stored");
        out.push((seq, event.event_id));
    }
    out
}

async fn expect_events(client: &mut TestClient, expected: &[(u64, String)]) {
    for (seq, id) in expected {
        let (cursor, event) = client.next_event_with_cursor().await.expect("event");
        assert_eq!(
            (cursor, event["eventId"].as_str()),
            (*seq, Some(id.as_str()))
        );
    }
}

#[actix::test]
async fn cursors_are_per_user_and_strictly_increasing() {
    let harness = Harness::start(config());
    let a = publish_n(&harness, "u1", 3).await;
    let b = publish_n(&harness, "u2", 2).await;
    assert_eq!(a.iter().map(|e| e.0).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(b.iter().map(|e| e.0).collect::<Vec<_>>(), vec![1, 2]);
}

#[actix::test]
async fn a_reconnect_after_the_second_event_gets_exactly_three_to_five_then_live() {
    let harness = Harness::start(config());
    let missed = publish_n(&harness, "u1", 5).await;

    let mut client = harness
        .attach_from("u1", Resume::After(missed[1].0))
        .await
        .expect("attached");
    expect_events(&mut client, &missed[2..]).await;

    let live = publish_n(&harness, "u1", 2).await;
    expect_events(&mut client, &live).await;
    assert!(client.no_event_within(Duration::from_millis(100)).await);
}

#[actix::test]
async fn concurrent_publishers_and_a_reconnecting_client_see_every_event_once_in_order() {
    let harness = Arc::new(Harness::start(config()));
    let mut publishers = Vec::new();
    for _ in 0..8 {
        let harness = harness.clone();
        publishers.push(actix::spawn(async move {
            for _ in 0..200 {
                let event = sample_event("u1", EventType::NftMinted);
                harness.publish(&event).await.expect("stored");
            }
        }));
    }

    let mut seen: Vec<u64> = Vec::new();
    let mut cursor = 0;
    while seen.len() < 1600 {
        let mut client = harness
            .attach_from("u1", Resume::After(cursor))
            .await
            .expect("attached");
        // Read a few events, then drop the connection and resume from the last one.
        for _ in 0..37 {
            let Some((seq, _)) = client.next_event_with_cursor().await else {
                break;
            };
            seen.push(seq);
            cursor = seq;
            if seen.len() == 1600 {
                break;
            }
        }
        client.disconnect();
    }
    for p in publishers {
        p.await.expect("publisher");
    }
    assert_eq!(seen, (1..=1600).collect::<Vec<u64>>());
}

#[actix::test]
async fn a_stale_unknown_or_invalid_cursor_gets_resync_then_live() {
    let harness = Harness::start(config());
    publish_n(&harness, "u1", 3).await;
    // As the outbox relay would: only events on the broker may be pruned.
    let log = harness.log();
    let ids: Vec<u64> = log
        .pending(100)
        .expect("pending")
        .iter()
        .map(|e| e.id)
        .collect();
    log.mark_published(&ids).expect("marked");
    // Retention of zero: everything stored so far is past the window.
    let pruner =
        RetentionPruner::new(harness.log(), Duration::ZERO, Duration::from_secs(3600)).start();
    assert_eq!(pruner.send(PruneNow).await.expect("mailbox"), Ok(3));

    let mut head = 3;
    for resume in [Resume::After(1), Resume::After(99), Resume::Invalid] {
        let mut client = harness.attach_from("u1", resume).await.expect("attached");
        let mut resync = None;
        while resync.is_none() {
            let frame = client.next_frame().await.expect("frame");
            if frame.control_type().as_deref() == Some("resync") {
                resync = Some(frame);
            }
        }
        let resync = resync.expect("resync");
        assert_eq!(
            resync.json().expect("json")["snapshotUrl"],
            "/api/v1/user/nfts"
        );
        let expected_head = head.to_string();
        assert_eq!(
            resync.id.as_deref(),
            Some(expected_head.as_str()),
            "positions the client at the head"
        );
        let live = publish_n(&harness, "u1", 1).await;
        head = live[0].0;
        expect_events(&mut client, &live).await;
        client.disconnect();
    }
}

#[actix::test]
async fn a_down_log_refuses_publishes_and_delivers_nothing_then_recovers() {
    let harness = Harness::start(config());
    let mut client = harness.attach("u1").await.expect("attached");
    harness.log().set_down(true);
    let err = harness
        .publish(&sample_event("u1", EventType::NftBurned))
        .await
        .expect_err("refused");
    assert!(matches!(err, LogError::Unavailable(_)));
    assert!(client.no_event_within(Duration::from_millis(100)).await);

    harness.log().set_down(false);
    let back = publish_n(&harness, "u1", 1).await;
    assert_eq!(back[0].0, 1, "the refused event consumed no cursor");
    expect_events(&mut client, &back).await;
}

#[actix::test]
async fn a_resume_while_the_log_is_down_ends_the_stream_for_a_retry() {
    let harness = Harness::start(config());
    publish_n(&harness, "u1", 2).await;
    harness.log().set_down(true);
    let mut client = harness
        .attach_from("u1", Resume::After(1))
        .await
        .expect("attached");
    assert!(client.closed_within(Duration::from_secs(5)).await);
}
