//! The durable path: cursors, `Last-Event-ID` replay, polling, retention, restarts and a
//! database that goes away. Runs on SQLite, and on MySQL/MariaDB when `DATABASE_URL` names one.

use crate::helpers::{
    event_body, spawn_app, spawn_app_on, spawn_app_with, unique_user, SseClient, TestApp, WAIT,
};
use actors::EventType;
use nft_event_router::auth::Role;
use std::time::Duration;

async fn expect_events(client: &mut SseClient, expected: &[(String, String)]) {
    for (cursor, event_id) in expected {
        let (id, event) = client.next_event().await.expect("event");
        assert_eq!(
            (&id, event["eventId"].as_str()),
            (cursor, Some(event_id.as_str()))
        );
    }
}

async fn next_control(client: &mut SseClient, kind: &str) -> actors::frame::ParsedFrame {
    loop {
        let frame = client.next_frame().await.expect("frame");
        if frame.control_type().as_deref() == Some(kind) {
            return frame;
        }
    }
}

#[actix_web::test]
async fn a_reconnect_with_the_second_cursor_gets_exactly_three_to_five_then_live() {
    let app = spawn_app_with("").await;
    let user = unique_user();
    let first = app.open_stream(&user).await;
    drop(first);
    let missed = app.publish_n(&user, 5).await;

    let mut client = app.resume_stream(&user, &missed[1].0).await;
    expect_events(&mut client, &missed[2..]).await;
    let live = app.publish_n(&user, 2).await;
    expect_events(&mut client, &live).await;
    assert!(
        client.no_event_within(Duration::from_millis(200)).await,
        "no duplicates"
    );

    // Clients that cannot set headers pass the cursor as `lastEventId`.
    let response = app
        .client
        .get(app.url(&format!(
            "/api/v1/user/nft-events?lastEventId={}",
            missed[3].0
        )))
        .bearer_auth(app.token(&user, Role::User))
        .send()
        .await
        .expect("sent");
    let mut by_query = SseClient::new(response);
    expect_events(&mut by_query, &missed[4..]).await;
    expect_events(&mut by_query, &live).await;
}

#[actix_web::test]
async fn concurrent_publishers_and_a_reconnecting_client_lose_and_repeat_nothing() {
    let app = std::rc::Rc::new(spawn_app_with("").await);
    let user = unique_user();
    let mut publishers = Vec::new();
    for _ in 0..8 {
        let (app, user) = (app.clone(), user.clone());
        publishers.push(actix_web::rt::spawn(async move {
            for _ in 0..200 {
                let response = app
                    .publish(&event_body(&user, EventType::BadgeEarned))
                    .await;
                assert_eq!(response.status(), 202);
            }
        }));
    }

    let mut seen: Vec<u64> = Vec::new();
    let mut cursor = "0".to_owned();
    while seen.len() < 1600 {
        let mut client = app.resume_stream(&user, &cursor).await;
        for _ in 0..97 {
            let Some((id, _)) = client.next_event().await else {
                break;
            };
            seen.push(id.parse().expect("numeric cursor"));
            cursor = id;
            if seen.len() == 1600 {
                break;
            }
        }
    }
    for p in publishers {
        p.await.expect("publisher");
    }
    assert!(
        seen == (1..=1600).collect::<Vec<u64>>(),
        "all 1600 events exactly once, in cursor order (got {} events)",
        seen.len()
    );
}

#[actix_web::test]
async fn polling_pages_through_the_same_events_and_cursors() {
    let app = spawn_app_with("").await;
    let user = unique_user();
    let mut stream = app.open_stream(&user).await;
    let published = app.publish_n(&user, 7).await;
    let mut streamed = Vec::new();
    for _ in 0..7 {
        let (id, event) = stream.next_event().await.expect("event");
        streamed.push((id, event));
    }

    let mut polled = Vec::new();
    let mut since = "0".to_owned();
    loop {
        let page = poll(&app, &user, &format!("since={since}&limit=3")).await;
        for item in page["events"].as_array().expect("events") {
            polled.push((
                item["cursor"].as_str().expect("cursor").to_owned(),
                item["event"].clone(),
            ));
        }
        since = page["nextCursor"].as_str().expect("nextCursor").to_owned();
        if page["hasMore"] == false {
            break;
        }
    }
    assert_eq!(polled, streamed, "same envelopes, same cursors, same order");
    assert_eq!(since, published[6].0);
    let empty = poll(&app, &user, &format!("since={since}")).await;
    assert_eq!(empty["events"], serde_json::json!([]));
    assert_eq!(empty["nextCursor"], since.as_str());

    for (query, param) in [
        ("since=-1", "since"),
        ("since=abc", "since"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
    ] {
        let response = app
            .client
            .get(app.url(&format!("/api/v1/user/nft-portfolio-changes?{query}")))
            .bearer_auth(app.token(&user, Role::User))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 400, "{query}");
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["error_code"], "INVALID_PARAMETER");
        assert_eq!(body["field"], param);
        assert!(body["message"].as_str().expect("msg").contains(param));
    }
}

async fn poll(app: &TestApp, user: &str, query: &str) -> serde_json::Value {
    let response = app
        .client
        .get(app.url(&format!("/api/v1/user/nft-portfolio-changes?{query}")))
        .bearer_auth(app.token(user, Role::User))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

#[actix_web::test]
async fn stale_unknown_and_malformed_cursors_get_resync_then_live() {
    // Retention of zero days: every pass prunes everything stored so far.
    let app = spawn_app_with("[store]\nretention_days = 0\nprune_interval_secs = 1\n").await;
    let user = unique_user();
    app.publish_n(&user, 3).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let page = poll(&app, &user, "since=0").await;
        if !page["resync"].is_null() {
            assert_eq!(page["resync"]["snapshotUrl"], "/api/v1/user/nfts");
            assert_eq!(page["nextCursor"], "3");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "events were pruned");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    for cursor in ["1", "999", "not-a-cursor", "-5"] {
        let mut client = app.resume_stream(&user, cursor).await;
        let resync = next_control(&mut client, "resync").await;
        assert_eq!(
            resync.json().expect("json")["snapshotUrl"],
            "/api/v1/user/nfts"
        );
        let live = app.publish_n(&user, 1).await;
        expect_events(&mut client, &live).await;
    }
}

#[actix_web::test]
async fn a_restart_between_publish_and_reconnect_loses_nothing() {
    let user = unique_user();
    let first = spawn_app_with("").await;
    let url = first.store_url.clone();
    let published = first.publish_n(&user, 4).await;
    first.stop().await.expect("clean stop");

    let second = spawn_app_on(&url, "").await;
    let mut client = second.resume_stream(&user, &published[0].0).await;
    expect_events(&mut client, &published[1..]).await;
    let after = second.publish_n(&user, 1).await;
    assert_eq!(after[0].0, "5", "cursors continue across the restart");
    expect_events(&mut client, &after).await;
}

#[actix_web::test]
async fn an_unreachable_database_gets_503_and_the_router_recovers() {
    let user = unique_user();
    if std::env::var("DATABASE_URL").is_ok_and(|u| u.starts_with("mysql://")) {
        mysql_outage(&user).await;
    } else {
        sqlite_outage(&user).await;
    }
}

async fn assert_publish_refused(app: &TestApp, user: &str) {
    let response = app.publish(&event_body(user, EventType::BadgeEarned)).await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["code"], 503);
    assert_eq!(body["error_code"], "UNAVAILABLE");
}

/// SQLite cannot be "unreachable"; a writer holding the database's exclusive lock past the busy
/// timeout is the same failure as far as the router can tell.
async fn sqlite_outage(user: &str) {
    use diesel::{Connection, RunQueryDsl};
    let app = spawn_app_with("").await;
    let mut stream = app.open_stream(user).await;
    app.publish_n(user, 1).await;

    let path = app.store_url.trim_start_matches("sqlite://").to_owned();
    let mut locker = diesel::SqliteConnection::establish(&path).expect("open db");
    diesel::sql_query("BEGIN EXCLUSIVE")
        .execute(&mut locker)
        .expect("lock");
    assert_publish_refused(&app, user).await;
    diesel::sql_query("COMMIT")
        .execute(&mut locker)
        .expect("unlock");

    let after = app.publish_n(user, 1).await;
    assert_eq!(after[0].0, "2", "the refused event took no cursor");
    let (first, _) = stream.next_event().await.expect("first");
    assert_eq!(first, "1");
    expect_events(&mut stream, &after).await;
}

#[cfg(feature = "mysql")]
async fn mysql_outage(user: &str) {
    use crate::helpers::fresh_store_url;
    let direct = fresh_store_url();
    let proxy = crate::proxy::TcpProxy::start("127.0.0.1:3306").await;
    let via_proxy = direct.replacen("127.0.0.1:3306", &proxy.address(), 1);
    let app = spawn_app_on(&via_proxy, "").await;
    let mut stream = app.open_stream(user).await;
    app.publish_n(user, 1).await;

    proxy.cut();
    assert_publish_refused(&app, user).await;
    let (status, body) = app.readyz().await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["database"]["status"], "down");

    proxy.restore();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let after = loop {
        let response = app.publish(&event_body(user, EventType::BadgeEarned)).await;
        if response.status() == 202 {
            break vec![crate::helpers::accepted(response).await];
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "recovered after the database returned"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(after[0].0, "2", "the refused event took no cursor");
    let (first, _) = stream.next_event().await.expect("first");
    assert_eq!(first, "1");
    expect_events(&mut stream, &after).await;
    assert_eq!(app.readyz().await.0, 200);
}

#[cfg(not(feature = "mysql"))]
async fn mysql_outage(_: &str) {
    panic!("DATABASE_URL names MySQL: run the tests with --features mysql")
}

#[actix_web::test]
async fn readyz_reports_the_database() {
    let app = spawn_app_with("").await;
    let (status, body) = app.readyz().await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"]["status"], "up");
}

#[actix_web::test]
async fn admin_only_events_are_left_out_of_the_users_stream_and_polling() {
    let app = spawn_app().await;
    let user = unique_user();
    let mut live = app.open_stream(&user).await;
    for event_type in [
        EventType::BadgeEarned,
        EventType::NftMinted,
        EventType::NftBurned,
        EventType::NftUpgraded,
    ] {
        assert_eq!(
            app.publish(&event_body(&user, event_type)).await.status(),
            202
        );
    }
    let (first, event) = live.next_event().await.expect("event");
    assert_eq!(
        (first.as_str(), event["eventType"].as_str()),
        ("1", Some("badge_earned"))
    );
    let (last, event) = live.next_event().await.expect("event");
    assert_eq!(
        (last.as_str(), event["eventType"].as_str()),
        ("4", Some("nft_upgraded"))
    );

    // Resuming across the skipped cursors is exact.
    let mut resumed = app.resume_stream(&user, "1").await;
    let (cursor, event) = resumed.next_event().await.expect("event");
    assert_eq!(
        (cursor.as_str(), event["eventType"].as_str()),
        ("4", Some("nft_upgraded"))
    );

    let page = app
        .get_as(
            "/api/v1/user/nft-portfolio-changes?since=1",
            &user,
            Role::User,
        )
        .await;
    let events = page["events"].as_array().expect("events");
    assert_eq!(events.len(), 1, "{page}");
    assert_eq!(events[0]["cursor"], "4");
    assert_eq!(page["nextCursor"], "4");
}
