//! `Idempotency-Key` on the service write routes (`POST /api/v1/events`, trading volume, badge
//! awards): a retry gets the first answer, on any instance and after a restart; nothing is stored
//! or delivered twice.

use crate::helpers::{event_body, fresh_store_url, spawn_app, spawn_app_on, unique_user, TestApp};
use actors::EventType;
use nft_event_router::auth::Role;
use serde_json::Value;
use std::time::Duration;

struct Answer {
    status: u16,
    cursor: Option<String>,
    replayed: bool,
    body: Value,
}

async fn publish_keyed(app: &TestApp, publisher: &str, key: &str, body: &Value) -> Answer {
    let response = app
        .client
        .post(app.url("/api/v1/events"))
        .bearer_auth(app.token(publisher, Role::Service))
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .expect("sent");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (cursor, replayed) = (header("x-event-cursor"), header("idempotent-replayed"));
    Answer {
        status: response.status().as_u16(),
        cursor,
        replayed: replayed.as_deref() == Some("true"),
        body: response.json().await.unwrap_or(Value::Null),
    }
}

/// The user's stored events, as the polling route answers them.
async fn stored_ids(app: &TestApp, user: &str) -> Vec<String> {
    let page = app
        .get_as(
            "/api/v1/user/nft-portfolio-changes?since=0",
            user,
            Role::User,
        )
        .await;
    page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["event"]["eventId"].as_str().expect("eventId").to_owned())
        .collect()
}

#[actix_web::test]
async fn a_retry_with_the_same_key_gets_the_first_answer_and_stores_nothing_twice() {
    let app = spawn_app().await;
    let user = unique_user();
    let mut stream = app.open_stream(&user).await;
    let body = event_body(&user, EventType::BadgeEarned);

    let first = publish_keyed(&app, "svc-a", "order-1", &body).await;
    assert_eq!(first.status, 202, "{}", first.body);
    assert!(!first.replayed);
    let retry = publish_keyed(&app, "svc-a", "order-1", &body).await;
    assert_eq!(retry.status, 202, "{}", retry.body);
    assert!(retry.replayed, "a retry is marked as one");
    assert_eq!(retry.cursor, first.cursor, "same cursor");
    assert_eq!(retry.body, first.body, "same envelope, timestamp included");

    // Another key, or the same key from another publisher, is another event.
    let other_key = publish_keyed(&app, "svc-a", "order-2", &body).await;
    let other_publisher = publish_keyed(&app, "svc-b", "order-1", &body).await;
    for other in [&other_key, &other_publisher] {
        assert_eq!(other.status, 202);
        assert!(!other.replayed);
        assert_ne!(other.body["eventId"], first.body["eventId"]);
    }

    // The stream got each event once.
    let mut delivered = Vec::new();
    for _ in 0..3 {
        let (_, json) = stream.next_event().await.expect("an event");
        delivered.push(json["eventId"].clone());
    }
    assert_eq!(
        delivered,
        [
            first.body["eventId"].clone(),
            other_key.body["eventId"].clone(),
            other_publisher.body["eventId"].clone()
        ]
    );
    assert!(stream.no_event_within(Duration::from_millis(300)).await);
    assert_eq!(stored_ids(&app, &user).await.len(), 3);
}

#[actix_web::test]
async fn the_same_key_with_another_request_is_refused() {
    let app = spawn_app().await;
    let user = unique_user();
    let first = publish_keyed(
        &app,
        "svc",
        "k-1",
        &event_body(&user, EventType::BadgeEarned),
    )
    .await;
    assert_eq!(first.status, 202);
    for changed in [
        event_body(&unique_user(), EventType::BadgeEarned),
        event_body(&user, EventType::NftUpgraded),
        {
            let mut body = event_body(&user, EventType::BadgeEarned);
            body["correlationId"] = "another-flow".into();
            body
        },
    ] {
        let answer = publish_keyed(&app, "svc", "k-1", &changed).await;
        assert_eq!(answer.status, 422, "{changed}: {}", answer.body);
        assert_eq!(answer.body["error_code"], "IDEMPOTENCY_KEY_REUSED");
        assert_eq!(answer.body["field"], "Idempotency-Key");
    }
    assert_eq!(stored_ids(&app, &user).await.len(), 1);

    for bad in ["", &"k".repeat(256), "two words", "caf\u{e9}"] {
        let response = app
            .client
            .post(app.url("/api/v1/events"))
            .bearer_auth(app.token("svc", Role::Service))
            .header("Idempotency-Key", bad.as_bytes())
            .json(&event_body(&user, EventType::BadgeEarned))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 400, "{bad:?}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["field"], "Idempotency-Key", "{bad:?}");
    }
    assert_eq!(stored_ids(&app, &user).await.len(), 1);
}

#[actix_web::test]
async fn a_key_holds_across_instances_and_restarts() {
    let store = fresh_store_url();
    let a = spawn_app_on(&store, "").await;
    let b = spawn_app_on(&store, "").await;
    let user = unique_user();
    let body = event_body(&user, EventType::BadgeEarned);
    let first = publish_keyed(&a, "svc", "across", &body).await;
    assert_eq!(first.status, 202);
    let on_b = publish_keyed(&b, "svc", "across", &body).await;
    assert!(on_b.replayed, "the other instance answers the stored event");
    assert_eq!(on_b.body, first.body);
    assert_eq!(on_b.cursor, first.cursor);

    a.stop().await.expect("a stops");
    b.stop().await.expect("b stops");
    let restarted = spawn_app_on(&store, "").await;
    let after = publish_keyed(&restarted, "svc", "across", &body).await;
    assert!(after.replayed, "the key outlives the process");
    assert_eq!(after.body, first.body);
    assert_eq!(stored_ids(&restarted, &user).await.len(), 1);
}

/// Concurrent retries (a publisher that gave up early and retried while the first attempt was
/// still in flight): every one answers the same event, stored once.
#[actix_web::test]
async fn concurrent_retries_store_one_event() {
    let store = fresh_store_url();
    let apps = [
        spawn_app_on(&store, "").await,
        spawn_app_on(&store, "").await,
    ];
    let user = unique_user();
    let body = event_body(&user, EventType::BadgeEarned);
    let attempts = (0..16).map(|n| publish_keyed(&apps[n % 2], "svc", "race", &body));
    let answers = futures_util::future::join_all(attempts).await;
    let ids: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|a| {
            assert_eq!(a.status, 202, "{}", a.body);
            a.body["eventId"].as_str().expect("eventId").to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "one event id for every attempt");
    assert_eq!(answers.iter().filter(|a| !a.replayed).count(), 1);
    assert_eq!(stored_ids(&apps[0], &user).await.len(), 1);
}

/// A keyed call of a service write route (`path`, `body`) as service `caller`.
async fn command_keyed(app: &TestApp, caller: &str, path: &str, key: &str, body: &Value) -> Answer {
    let response = app
        .client
        .post(app.url(path))
        .bearer_auth(app.token(caller, Role::Service))
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .expect("sent");
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .and_then(|v| v.to_str().ok())
        == Some("true");
    Answer {
        status: response.status().as_u16(),
        cursor: None,
        replayed,
        body: response.json().await.unwrap_or(Value::Null),
    }
}

const VOLUME: &str = "/api/v1/internal/trading-volume";
const BADGES: &str = "/api/v1/admin/badges";

/// A trading-volume report retried with its key answers the first answer (its previous volume,
/// its events), even after a later report moved the volume on; nothing is written again.
#[actix_web::test]
async fn a_keyed_volume_report_answers_its_first_answer_on_retry() {
    let app = spawn_app().await;
    let user = unique_user();
    let report = serde_json::json!({ "userId": user, "volume": 150000 });
    let first = command_keyed(&app, "svc", VOLUME, "vol-1", &report).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(!first.replayed);
    assert_eq!(first.body["previousVolume"], 0.0);
    assert_eq!(
        first.body["events"].as_array().map(Vec::len),
        Some(2),
        "{}",
        first.body
    );

    let retry = command_keyed(&app, "svc", VOLUME, "vol-1", &report).await;
    assert_eq!(retry.status, 200, "{}", retry.body);
    assert!(retry.replayed, "a retry is marked as one");
    assert_eq!(
        retry.body, first.body,
        "the first answer, events and cursors included"
    );

    // A later report moves the volume on; the old key still answers what it did then (not
    // VOLUME_DECREASED).
    let later = serde_json::json!({ "userId": user, "volume": 300000 });
    let moved = command_keyed(&app, "svc", VOLUME, "vol-2", &later).await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    let old = command_keyed(&app, "svc", VOLUME, "vol-1", &report).await;
    assert_eq!(old.status, 200, "{}", old.body);
    assert_eq!(old.body, first.body);

    // The same key with another volume, user or correlation id is refused.
    let other_volume = serde_json::json!({ "userId": user, "volume": 150001 });
    let other_user = serde_json::json!({ "userId": unique_user(), "volume": 150000 });
    for changed in [other_volume, other_user] {
        let answer = command_keyed(&app, "svc", VOLUME, "vol-1", &changed).await;
        assert_eq!(answer.status, 422, "{changed}: {}", answer.body);
        assert_eq!(answer.body["error_code"], "IDEMPOTENCY_KEY_REUSED");
        assert_eq!(answer.body["field"], "Idempotency-Key");
    }
    let response = app
        .client
        .post(app.url(VOLUME))
        .bearer_auth(app.token("svc", Role::Service))
        .header("Idempotency-Key", "vol-1")
        .header("X-Correlation-Id", "another-flow")
        .json(&report)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 422);

    // Another caller's same key is its own.
    let elsewhere = command_keyed(&app, "svc-other", VOLUME, "vol-1", &later).await;
    assert_eq!(elsewhere.status, 200, "{}", elsewhere.body);
    assert!(!elsewhere.replayed);

    // Events: two for the first report (milestone, qualification), those of vol-2, nothing
    // for any retry or refusal.
    let ids = stored_ids(&app, &user).await;
    let moved_events = moved.body["events"].as_array().map_or(0, Vec::len);
    assert_eq!(ids.len(), 2 + moved_events, "{ids:?}");

    let bad = command_keyed(&app, "svc", VOLUME, "two words", &report).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["field"], "Idempotency-Key");
}

/// A badge award retried with its key answers 201 with the one `badge_earned`, where an
/// unkeyed retry is refused as already earned; across instances and a restart.
#[actix_web::test]
async fn a_keyed_badge_award_answers_once_across_instances_and_restarts() {
    let store = fresh_store_url();
    let a = spawn_app_on(&store, "").await;
    let b = spawn_app_on(&store, "").await;
    let user = unique_user();
    let award = serde_json::json!({ "userId": user, "badgeId": "first-trade" });
    let first = command_keyed(&a, "svc", BADGES, "award-1", &award).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let on_b = command_keyed(&b, "svc", BADGES, "award-1", &award).await;
    assert_eq!(on_b.status, 201, "{}", on_b.body);
    assert!(on_b.replayed);
    assert_eq!(on_b.body, first.body);

    let unkeyed = b
        .client
        .post(b.url(BADGES))
        .bearer_auth(b.token("svc", Role::Service))
        .json(&award)
        .send()
        .await
        .expect("sent");
    assert_eq!(
        unkeyed.status(),
        422,
        "without a key the award is decided again"
    );

    a.stop().await.expect("a stops");
    b.stop().await.expect("b stops");
    let restarted = spawn_app_on(&store, "").await;
    let after = command_keyed(&restarted, "svc", BADGES, "award-1", &award).await;
    assert_eq!(after.status, 201, "{}", after.body);
    assert!(after.replayed, "the receipt outlives the process");
    assert_eq!(after.body, first.body);
    assert_eq!(stored_ids(&restarted, &user).await.len(), 1);
}

/// Racing first attempts of one keyed award on two instances: all answer the one award, one
/// of them first, and one event is stored.
#[actix_web::test]
async fn concurrent_keyed_awards_store_one_change() {
    let store = fresh_store_url();
    let apps = [
        spawn_app_on(&store, "").await,
        spawn_app_on(&store, "").await,
    ];
    let user = unique_user();
    let award = serde_json::json!({ "userId": user, "badgeId": "weekly-streak" });
    let attempts =
        (0..12).map(|n| command_keyed(&apps[n % 2], "svc", BADGES, "race-award", &award));
    let answers = futures_util::future::join_all(attempts).await;
    for answer in &answers {
        assert_eq!(answer.status, 201, "{}", answer.body);
        assert_eq!(answer.body, answers[0].body);
    }
    assert_eq!(answers.iter().filter(|a| !a.replayed).count(), 1);
    assert_eq!(stored_ids(&apps[0], &user).await.len(), 1);
}
