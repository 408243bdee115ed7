//! The NFT domain over HTTP: trading volume, badges and the portfolio, with their events on
//! the user's stream.

use crate::helpers::{post_json as post, spawn_app, unique_user, SseClient, TestApp};
use nft_event_router::auth::Role;
use serde_json::{json, Value};

async fn volume(app: &TestApp, user: &str, volume: Value) -> (u16, Value) {
    post(
        app,
        "/api/v1/internal/trading-volume",
        Role::Service,
        "trading-service",
        json!({ "userId": user, "volume": volume }),
    )
    .await
}

async fn next_events(stream: &mut SseClient, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(stream.next_event().await.expect("event").1);
    }
    out
}

#[actix_web::test]
async fn volume_90k_to_260k_emits_two_milestones_and_one_qualification_change() {
    let app = spawn_app().await;
    let user = unique_user();
    let mut stream = app.open_stream(&user).await;

    let (status, body) = volume(&app, &user, json!(90_000)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events"], json!([]), "no milestone below 100k");

    let (status, body) = volume(&app, &user, json!(260_000.0)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["previousVolume"], 90_000.0);
    assert_eq!(body["qualifiedTiers"], json!([1]));
    assert_eq!(body["events"].as_array().map(Vec::len), Some(3));

    let events = next_events(&mut stream, 3).await;
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        types,
        [
            "volume_milestone_reached",
            "volume_milestone_reached",
            "tier_qualification_changed"
        ]
    );
    assert_eq!(events[0]["data"]["milestone"], 100_000.0);
    assert_eq!(events[0]["data"]["tierUnlocked"], 1);
    assert_eq!(events[1]["data"]["milestone"], 250_000.0);
    assert_eq!(events[1]["data"]["currentVolume"], 260_000.0);
    assert_eq!(events[2]["data"]["previousQualifications"], json!([]));
    assert_eq!(events[2]["data"]["currentQualifications"], json!([1]));
    assert_eq!(events[2]["data"]["volumeChange"], 170_000.0);
    assert_eq!(events[0]["source"], "nft-event-router");

    let portfolio = app.get_as("/api/v1/user/nfts", &user, Role::User).await;
    assert_eq!(portfolio["volume"], 260_000.0);
    assert_eq!(portfolio["qualifiedTiers"], json!([1]));
    assert_eq!(portfolio["tiers"][0]["qualified"], true);
    assert_eq!(
        portfolio["tiers"][1]["qualified"], false,
        "tier 2 also needs a badge"
    );
}

#[actix_web::test]
async fn volume_going_down_or_not_a_number_is_400() {
    let app = spawn_app().await;
    let user = unique_user();
    assert_eq!(volume(&app, &user, json!(500)).await.0, 200);

    let (status, body) = volume(&app, &user, json!(400)).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (422, Some("VOLUME_DECREASED"))
    );
    for bad in [json!("lots"), json!(-1), json!(null)] {
        let (status, body) = volume(&app, &user, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["field"], "volume", "{bad}: {body}");
    }
    let (status, _) = post(
        &app,
        "/api/v1/internal/trading-volume",
        Role::User,
        &user,
        json!({ "userId": user, "volume": 1_000_000 }),
    )
    .await;
    assert_eq!(status, 403, "users cannot report their own volume");
}

#[actix_web::test]
async fn badges_are_awarded_activated_and_change_qualification() {
    let app = spawn_app().await;
    let user = unique_user();
    let mut stream = app.open_stream(&user).await;
    assert_eq!(volume(&app, &user, json!(300_000)).await.0, 200);
    let _ = next_events(&mut stream, 3).await;

    let award = |badge: &str| {
        post(
            &app,
            "/api/v1/admin/badges",
            Role::Admin,
            "ops",
            json!({ "userId": user, "badgeId": badge }),
        )
    };
    let (status, body) = award("first-trade").await;
    assert_eq!(status, 201, "{body}");
    let earned = next_events(&mut stream, 1).await;
    assert_eq!(earned[0]["eventType"], "badge_earned");
    assert_eq!(earned[0]["data"]["badgeName"], "First Trade");
    assert_eq!(earned[0]["data"]["requiredForTier"], 2);

    let (status, body) = award("first-trade").await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (422, Some("BADGE_ALREADY_EARNED"))
    );
    let (status, body) = award("no-such-badge").await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (422, Some("UNKNOWN_BADGE"))
    );

    let activate = "/api/v1/user/badges/first-trade/activate";
    let (status, body) = post(&app, activate, Role::User, &user, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["qualifiedTiers"], json!([1, 2]));
    let changed = next_events(&mut stream, 1).await;
    assert_eq!(changed[0]["eventType"], "tier_qualification_changed");
    assert_eq!(changed[0]["data"]["previousQualifications"], json!([1]));
    assert_eq!(changed[0]["data"]["currentQualifications"], json!([1, 2]));
    assert_eq!(
        changed[0]["data"]["badgeChanges"]["activated"],
        json!(["first-trade"])
    );

    let (status, body) = post(&app, activate, Role::User, &user, json!({})).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (422, Some("BADGE_NOT_ACTIVATABLE"))
    );

    let portfolio = app.get_as("/api/v1/user/nfts", &user, Role::User).await;
    assert_eq!(portfolio["badges"][0]["badgeId"], "first-trade");
    assert_eq!(portfolio["badges"][0]["status"], "activated");
    assert_eq!(portfolio["qualifiedTiers"], json!([1, 2]));
}
