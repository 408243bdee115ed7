use crate::helpers::{event_body, spawn_app};
use actors::EventType;
use nft_event_router::auth::Role;
use std::time::Duration;

#[actix_web::test]
async fn every_event_type_is_accepted_with_the_full_envelope() {
    let app = spawn_app().await;
    for event_type in EventType::ALL {
        let response = app.publish(&event_body("u1", event_type)).await;
        assert_eq!(response.status(), 202, "{event_type}");
        let envelope: serde_json::Value = response.json().await.expect("json");
        for key in [
            "eventId",
            "eventType",
            "userId",
            "timestamp",
            "data",
            "source",
            "version",
        ] {
            assert!(!envelope[key].is_null(), "{event_type} envelope has {key}");
        }
        assert!(envelope.get("correlationId").is_some());
        assert_eq!(envelope["eventType"], event_type.as_str());
        assert_eq!(envelope["source"], "test-service");
        assert_eq!(envelope["version"], "1.0.0");
        assert!(
            chrono::DateTime::parse_from_rfc3339(envelope["timestamp"].as_str().expect("ts"))
                .is_ok()
        );
    }
}

#[actix_web::test]
async fn the_correlation_header_fills_a_missing_correlation_id() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/api/v1/events"))
        .bearer_auth(app.token("svc", Role::Service))
        .header("X-Correlation-Id", "trace-42")
        .json(&event_body("u1", EventType::NftMinted))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 202);
    let envelope: serde_json::Value = response.json().await.expect("json");
    assert_eq!(envelope["correlationId"], "trace-42");

    let mut body = event_body("u1", EventType::NftMinted);
    body["correlationId"] = serde_json::json!("from-body");
    let envelope: serde_json::Value = app.publish(&body).await.json().await.expect("json");
    assert_eq!(envelope["correlationId"], "from-body");
}

#[actix_web::test]
async fn only_services_may_publish() {
    let app = spawn_app().await;
    for role in [Role::User, Role::Admin] {
        let response = app
            .client
            .post(app.url("/api/v1/events"))
            .bearer_auth(app.token("someone", role))
            .json(&event_body("u1", EventType::BadgeEarned))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 403);
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["code"], 403);
        assert_eq!(body["error_code"], "FORBIDDEN");
    }
    let anonymous = app
        .client
        .post(app.url("/api/v1/events"))
        .json(&event_body("u1", EventType::BadgeEarned))
        .send()
        .await
        .expect("sent");
    assert_eq!(anonymous.status(), 401);
}

#[actix_web::test]
async fn invalid_events_get_400_naming_the_field_and_reach_nobody() {
    let app = spawn_app().await;
    let mut client = app.open_stream("u1").await;

    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut body = event_body("u1", EventType::NftUnlocked);
        f(&mut body);
        body.to_string()
    };
    let cases: Vec<(String, Option<&str>)> = vec![
        (
            with(&|b| b["eventType"] = "nft_exploded".into()),
            Some("eventType"),
        ),
        (
            with(&|b| {
                b.as_object_mut().map(|o| o.remove("userId"));
            }),
            Some("userId"),
        ),
        (with(&|b| b["userId"] = "".into()), Some("userId")),
        (with(&|b| b["userId"] = 42.into()), Some("userId")),
        // Look-alike ids: a right-to-left override, a zero-width space, a control character.
        (with(&|b| b["userId"] = "u1\u{202e}".into()), Some("userId")),
        (with(&|b| b["userId"] = "u\u{200b}1".into()), Some("userId")),
        (with(&|b| b["userId"] = "u1\u{7}".into()), Some("userId")),
        (
            with(&|b| b["correlationId"] = "trace\u{2066}1".into()),
            Some("correlationId"),
        ),
        (
            with(&|b| {
                b["data"].as_object_mut().map(|o| o.remove("tierName"));
            }),
            Some("data.tierName"),
        ),
        (
            with(&|b| b["data"]["tierId"] = "gold".into()),
            Some("data.tierId"),
        ),
        (
            with(&|b| b["data"]["benefits"]["prioritySupport"] = "yes".into()),
            Some("data.benefits.prioritySupport"),
        ),
        (
            with(&|b| b["data"]["surprise"] = true.into()),
            Some("data.surprise"),
        ),
        (with(&|b| b["data"] = "text".into()), Some("data")),
        (with(&|b| b["extra"] = 1.into()), Some("extra")),
        ("{\"eventType\": \"nft_unlocked\",".to_owned(), None),
        ("not json at all".to_owned(), None),
        (format!("{{\"pad\": \"{}\"}}", "x".repeat(70_000)), None),
    ];
    for (body, field) in cases {
        let response = app.publish_raw(body.clone()).await;
        assert_eq!(response.status(), 400, "body: {:.120}", body);
        let error: serde_json::Value = response.json().await.expect("json");
        assert_eq!(error["code"], 400);
        assert_eq!(error["error_code"], "INVALID_EVENT");
        let message = error["message"].as_str().expect("message");
        if let Some(field) = field {
            assert_eq!(error["field"], field, "body: {:.120}", body);
            assert!(message.contains(field), "message names {field}: {message}");
        }
    }
    // Each event type checks its own schema.
    for event_type in EventType::ALL {
        let mut body = event_body("u1", event_type);
        body["data"] = serde_json::json!({});
        let response = app.publish(&body).await;
        assert_eq!(response.status(), 400, "{event_type} with empty data");
    }
    assert!(
        client.no_event_within(Duration::from_millis(300)).await,
        "nothing was delivered"
    );
}
