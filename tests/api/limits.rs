//! `[limits]`: token buckets on publishing and stream connects, caps on open streams. Each
//! refusal is a 429 or 503 with `Retry-After`, counted in the metrics, and what is not refused
//! keeps working.

use crate::helpers::{
    event_body, fresh_store_url, spawn_app_on, spawn_app_with, unique_user, TestApp,
};
use actors::EventType;
use nft_event_router::auth::Role;
use reqwest::Response;
use serde_json::Value;
use std::time::Duration;

async fn publish_as(app: &TestApp, service: &str, user: &str) -> Response {
    app.client
        .post(app.url("/api/v1/events"))
        .bearer_auth(app.token(service, Role::Service))
        .json(&event_body(user, EventType::BadgeEarned))
        .send()
        .await
        .expect("sent")
}

/// The `Retry-After` seconds and the error code of a refusal.
async fn refusal(response: Response) -> (u16, u64, String) {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let body: Value = response.json().await.expect("JSON");
    let code = body["error_code"].as_str().unwrap_or("").to_owned();
    (status, retry_after, code)
}

async fn limited(app: &TestApp, limit: &str) -> u64 {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");
    let prefix = format!("nft_router_requests_limited_total{{limit=\"{limit}\",");
    text.lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in the metrics"))
}

#[actix_web::test]
async fn a_service_past_its_publish_rate_gets_429_with_retry_after_and_others_go_on() {
    let app = spawn_app_with("[limits]\npublish_per_sec = 0.2\npublish_burst = 3\n").await;
    let user = unique_user();
    for _ in 0..3 {
        assert_eq!(publish_as(&app, "svc-fast", &user).await.status(), 202);
    }
    let (status, retry_after, code) = refusal(publish_as(&app, "svc-fast", &user).await).await;
    assert_eq!((status, code.as_str()), (429, "RATE_LIMITED"));
    assert!((1..=5).contains(&retry_after), "Retry-After: {retry_after}");
    assert_eq!(
        publish_as(&app, "svc-other", &user).await.status(),
        202,
        "the limit is per service"
    );
    // The other service writes share the bucket.
    let badge = app
        .client
        .post(app.url("/api/v1/admin/badges"))
        .bearer_auth(app.token("svc-fast", Role::Service))
        .json(&serde_json::json!({"userId": user, "badgeId": "early_adopter"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(badge.status(), 429);
    assert_eq!(limited(&app, "publish").await, 2);
}

#[actix_web::test]
async fn stream_connects_are_limited_per_user_and_per_address() {
    let app = spawn_app_with(
        "[limits]\nconnects_per_user_per_sec = 0.1\nconnects_per_user_burst = 2\n\
         connects_per_address_per_sec = 0.1\nconnects_per_address_burst = 5\n",
    )
    .await;
    let user = unique_user();
    for _ in 0..2 {
        let stream = app.open_stream_response(&user).await;
        assert_eq!(stream.status(), 200);
    }
    let (status, retry_after, code) = refusal(app.open_stream_response(&user).await).await;
    assert_eq!((status, code.as_str()), (429, "RATE_LIMITED"));
    assert!(retry_after >= 1);
    assert_eq!(limited(&app, "connect_user").await, 1);

    // Three more users from the same address use up its burst of 5 (the refused connect
    // above counted too).
    for n in 0..2 {
        let other = app.open_stream_response(&format!("{user}-{n}")).await;
        assert_eq!(other.status(), 200);
    }
    let (status, _, code) = refusal(app.open_stream_response(&unique_user()).await).await;
    assert_eq!((status, code.as_str()), (429, "RATE_LIMITED"));
    assert_eq!(limited(&app, "connect_address").await, 1);
}

#[actix_web::test]
async fn at_the_stream_cap_new_streams_get_503_and_everything_else_answers() {
    let app = spawn_app_with("[limits]\nmax_streams = 4\n").await;
    let users: Vec<String> = (0..4).map(|_| unique_user()).collect();
    let mut streams = Vec::new();
    for user in &users {
        streams.push(app.open_stream(user).await);
    }
    let (status, retry_after, code) = refusal(app.open_stream_response(&unique_user()).await).await;
    assert_eq!((status, code.as_str()), (503, "UNAVAILABLE"));
    assert_eq!(retry_after, 5);
    assert_eq!(limited(&app, "streams").await, 1);

    // Health, readiness, publishing and the open streams go on.
    let health = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("sent");
    assert_eq!(health.status(), 200);
    assert_eq!(app.readyz().await.0, 200);
    assert_eq!(publish_as(&app, "svc", &users[0]).await.status(), 202);
    assert!(
        streams[0].next_event().await.is_some(),
        "delivered at the cap"
    );

    // A stream that ends frees its place.
    drop(streams.pop());
    let mut admitted = false;
    for _ in 0..100 {
        if app.open_stream_response(&unique_user()).await.status() == 200 {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(admitted, "the freed place is taken again");
}

#[actix_web::test]
async fn one_address_holds_at_most_its_cap() {
    let app = spawn_app_with("[limits]\nmax_streams_per_address = 2\n").await;
    let _a = app.open_stream(&unique_user()).await;
    let _b = app.open_stream(&unique_user()).await;
    let (status, retry_after, code) = refusal(app.open_stream_response(&unique_user()).await).await;
    assert_eq!((status, code.as_str()), (503, "UNAVAILABLE"));
    assert!(retry_after >= 1);
    assert_eq!(limited(&app, "streams_per_address").await, 1);
}

/// With Redis (`REDIS_URL`), instances share one bucket per service.
#[actix_web::test]
async fn with_redis_the_publish_rate_holds_across_instances() {
    if std::env::var("REDIS_URL").map_or(true, |u| u.is_empty()) {
        eprintln!("skipped: REDIS_URL is not set");
        return;
    }
    let store = fresh_store_url();
    let prefix = format!("limits-{}:", uuid::Uuid::new_v4().simple());
    let extra = format!(
        "[cluster]\nbus = \"redis\"\n[redis]\nkey_prefix = {prefix:?}\n\
         [limits]\npublish_per_sec = 0.2\npublish_burst = 4\n"
    );
    let (a, b) = (
        spawn_app_on(&store, &extra).await,
        spawn_app_on(&store, &extra).await,
    );
    let user = unique_user();
    let mut accepted = 0;
    for n in 0..8 {
        let app = if n % 2 == 0 { &a } else { &b };
        if publish_as(app, "svc-shared", &user).await.status() == 202 {
            accepted += 1;
        }
    }
    assert_eq!(
        accepted, 4,
        "one burst for the cluster, not one per instance"
    );
}

/// A stream for a new user, from a client `X-Forwarded-For` names.
async fn stream_forwarded_for(
    app: &TestApp,
    client: &reqwest::Client,
    forwarded_for: &str,
) -> Response {
    client
        .get(app.url("/api/v1/user/nft-events"))
        .bearer_auth(app.token(&unique_user(), Role::User))
        .header("X-Forwarded-For", forwarded_for)
        .send()
        .await
        .expect("sent")
}

/// Behind a trusted proxy every client it forwards has its own per-address cap; what a client
/// writes into the header itself does not count, and from an untrusted peer the header is not
/// read at all.
#[actix_web::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_the_address_counted() {
    let app = spawn_app_with(
        "[http]\ntrusted_proxies = [\"127.0.0.0/8\"]\n[limits]\nmax_streams_per_address = 1\n",
    )
    .await;
    let h1 = crate::helpers::test_client();
    let h2 = crate::helpers::test_client_builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    // Both stream paths: the lean HTTP/1.1 acceptor and actix-web (h2c).
    for (client, a, b) in [
        (&h1, "203.0.113.1", "203.0.113.2"),
        (&h2, "203.0.113.3", "203.0.113.4"),
    ] {
        let first = stream_forwarded_for(&app, client, a).await;
        assert_eq!(first.status(), 200, "{a}");
        let other = stream_forwarded_for(&app, client, b).await;
        assert_eq!(other.status(), 200, "{b} is another client");
        // The same client again, once with a forged entry in front: at its cap.
        for header in [a.to_owned(), format!("198.51.100.9, {a}")] {
            let (status, _, code) =
                refusal(stream_forwarded_for(&app, client, &header).await).await;
            assert_eq!((status, code.as_str()), (503, "UNAVAILABLE"), "{header}");
        }
        drop((first, other));
    }

    // Without trusted proxies the header is ignored: every stream comes from 127.0.0.1.
    let plain = spawn_app_with("[limits]\nmax_streams_per_address = 1\n").await;
    let first = stream_forwarded_for(&plain, &h1, "203.0.113.1").await;
    assert_eq!(first.status(), 200);
    let (status, _, _) = refusal(stream_forwarded_for(&plain, &h1, "203.0.113.2").await).await;
    assert_eq!(status, 503, "a client cannot name itself another address");
}
