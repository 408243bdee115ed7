//! `http.internal_bind`: metrics and detailed readiness on a second listener, the public one
//! reduced to what a load balancer needs.

use crate::helpers::{event_body, spawn_app, spawn_app_with};
use actors::EventType;
use nft_event_router::auth::Role;
use serde_json::Value;

async fn get(client: &reqwest::Client, url: &str) -> (u16, String) {
    let response = client.get(url).send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

#[actix_web::test]
async fn with_an_internal_listener_the_public_one_discloses_only_readiness_status() {
    let app = spawn_app_with("[http]\ninternal_bind = \"127.0.0.1:0\"\n").await;
    let internal = app.internal.clone().expect("an internal listener");
    let client = &app.client;

    // Public: readiness is the status alone, no metrics.
    let (status, body) = get(client, &app.url("/readyz")).await;
    assert_eq!(status, 200, "{body}");
    let ready: Value = serde_json::from_str(&body).expect("JSON");
    let keys: Vec<&String> = ready.as_object().expect("an object").keys().collect();
    assert_eq!(keys, ["status"], "{body}");
    assert!(["ready", "degraded"].contains(&ready["status"].as_str().unwrap_or("")));
    let (status, body) = get(client, &app.url("/metrics")).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("JSON")["error_code"],
        "NOT_FOUND"
    );
    // The rest of the public side is as before.
    assert_eq!(get(client, &app.url("/healthz")).await.0, 200);
    let mut stream = app.open_stream("internal-u1").await;
    let published = app
        .publish(&event_body("internal-u1", EventType::BadgeEarned))
        .await;
    assert_eq!(published.status(), 202);
    let envelope: Value = published.json().await.expect("JSON");
    let (_, json) = stream.next_event().await.expect("an event");
    assert_eq!(json["eventId"], envelope["eventId"]);

    // Internal: readiness in full (dependency addresses, relay role) and the metrics.
    let (status, body) = get(client, &format!("{internal}/readyz")).await;
    assert_eq!(status, 200, "{body}");
    let ready: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(ready["checks"]["database"]["status"], "up", "{body}");
    assert!(
        ready["checks"]["kafka"]["bootstrapServers"].is_string(),
        "{body}"
    );
    assert!(ready["instanceId"].is_string(), "{body}");
    let (status, body) = get(client, &format!("{internal}/metrics")).await;
    assert_eq!(status, 200);
    assert!(body.contains("nft_router_sse_connections"), "{body}");
    assert_eq!(get(client, &format!("{internal}/healthz")).await.0, 200);
    // Nothing else is served there: no API, no stream, no pages.
    for path in ["/api/v1/user/nft-events", "/api/v1/admin/sse-stats", "/"] {
        let (status, body) = get(client, &format!("{internal}{path}")).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let published = client
        .post(format!("{internal}/api/v1/events"))
        .bearer_auth(app.token("svc", Role::Service))
        .body("{}")
        .send()
        .await
        .expect("request");
    assert_eq!(published.status().as_u16(), 404);
}

#[actix_web::test]
async fn without_an_internal_listener_the_public_one_tells_all() {
    let app = spawn_app().await;
    assert!(app.internal.is_none());
    let (status, body) = get(&app.client, &app.url("/readyz")).await;
    assert_eq!(status, 200, "{body}");
    let ready: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(ready["checks"]["database"]["status"], "up", "{body}");
    let (status, body) = get(&app.client, &app.url("/metrics")).await;
    assert_eq!(status, 200);
    assert!(body.contains("nft_router_sse_connections"), "{body}");
}
