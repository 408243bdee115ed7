//! The pages and their assets as HTTP resources, and `POST /api/v1/dev/token` (the browser
//! test in `browser.rs` runs the pages' code).

use crate::helpers::{spawn_app, spawn_app_with, TestApp};
use nft_event_router::auth::Role;

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.client.get(app.url(path)).send().await.expect("sent")
}

/// The mint key a page served to this (loopback) client carries, `""` when it carries none.
async fn page_key(app: &TestApp) -> String {
    let html = get(app, "/").await.text().await.expect("html");
    let (_, rest) = html
        .split_once("data-dev-key=\"")
        .expect("the page has the slot");
    rest.split('"').next().unwrap_or_default().to_owned()
}

/// Mints as the router's own page does: with the key the page carries.
async fn mint(app: &TestApp, body: serde_json::Value) -> reqwest::Response {
    let key = page_key(app).await;
    app.client
        .post(app.url("/api/v1/dev/token"))
        .header("X-Dev-Token-Key", key)
        .json(&body)
        .send()
        .await
        .expect("sent")
}

#[actix_web::test]
async fn dev_tokens_are_minted_only_for_the_routers_own_pages_on_this_machine() {
    let app = spawn_app().await;
    let key = page_key(&app).await;
    assert_eq!(key.len(), 32, "a page served to loopback carries the key");
    let body = serde_json::json!({"userId": "mallory", "role": "admin"});
    let post = || app.client.post(app.url("/api/v1/dev/token")).json(&body);

    // No key, a wrong key: what a cross-site form or a script without the page sends.
    for request in [post(), post().header("X-Dev-Token-Key", "0".repeat(32))] {
        let response = request.send().await.expect("sent");
        assert_eq!(response.status(), 403);
        let error: serde_json::Value = response.json().await.expect("json");
        assert_eq!(error["error_code"], "FORBIDDEN");
        assert!(error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("X-Dev-Token-Key"));
    }
    // Forwarded by a proxy, or addressed to a name other than loopback (DNS rebinding): not
    // this machine's client, with the right key or not; the page then carries no key.
    for (name, value) in [
        ("X-Forwarded-For", "203.0.113.9"),
        ("Forwarded", "for=203.0.113.9"),
        ("Host", "router.example.com"),
    ] {
        let response = post()
            .header("X-Dev-Token-Key", &key)
            .header(name, value)
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 403, "{name}");
        let html = app
            .client
            .get(app.url("/"))
            .header(name, value)
            .send()
            .await
            .expect("sent")
            .text()
            .await
            .expect("html");
        assert!(html.contains("data-dev-tokens=\"off\""), "{name}");
        assert!(html.contains("data-dev-key=\"\""), "{name}");
    }
    // A cross-site preflight for the key header is not granted.
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/dev/token"))
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "x-dev-token-key,content-type",
        )
        .send()
        .await
        .expect("sent");
    assert!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "{:?}",
        preflight.headers()
    );
}

#[actix_web::test]
async fn the_pages_and_their_assets_come_from_the_binary() {
    let app = spawn_app().await;
    for (path, content_type) in [
        ("/", "text/html"),
        ("/admin", "text/html"),
        ("/assets/style.css", "text/css"),
        ("/assets/common.js", "text/javascript"),
        ("/assets/demo.js", "text/javascript"),
        ("/assets/admin.js", "text/javascript"),
        ("/assets/samples.json", "application/json"),
        ("/client.js", "text/javascript"),
    ] {
        let response = get(&app, path).await;
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers();
        assert!(
            headers["content-type"]
                .to_str()
                .expect("ascii")
                .starts_with(content_type),
            "{path}: {:?}",
            headers["content-type"]
        );
        assert!(headers.contains_key("content-security-policy"), "{path}");
    }
    let demo = get(&app, "/").await.text().await.expect("html");
    assert!(demo.contains("data-dev-tokens=\"on\""), "{demo}");
    assert!(demo.contains("/assets/demo.js"));

    let samples: serde_json::Value = get(&app, "/assets/samples.json")
        .await
        .json()
        .await
        .expect("json");
    for event_type in actors::EventType::ALL {
        assert!(samples[event_type.as_str()].is_object(), "{event_type}");
    }

    let missing = get(&app, "/assets/nope.js").await;
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.expect("json");
    assert_eq!(body["error_code"], "NOT_FOUND");
}

#[actix_web::test]
async fn dev_tokens_are_minted_for_the_asked_user_and_role() {
    let app = spawn_app().await;
    let response = mint(
        &app,
        serde_json::json!({"userId": "alice", "role": "admin"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: serde_json::Value = response.json().await.expect("json");
    let token = body["token"].as_str().expect("token");
    let principal = app.keys.verify(token).expect("valid");
    assert_eq!(
        (principal.user_id.as_str(), principal.role),
        ("alice", Role::Admin)
    );

    let body: serde_json::Value = mint(&app, serde_json::json!({"userId": "bob"}))
        .await
        .json()
        .await
        .expect("json");
    let principal = app
        .keys
        .verify(body["token"].as_str().expect("token"))
        .expect("valid");
    assert_eq!(principal.role, Role::User, "user is the default role");

    for (body, field) in [
        (serde_json::json!({"role": "admin"}), "userId"),
        (serde_json::json!({"userId": "", "role": "user"}), "userId"),
        (serde_json::json!({"userId": "x", "role": "root"}), "role"),
        (serde_json::json!({"userId": "x", "extra": 1}), "extra"),
    ] {
        let response = mint(&app, body.clone()).await;
        assert_eq!(response.status(), 400, "{body}");
        let error: serde_json::Value = response.json().await.expect("json");
        assert_eq!(error["error_code"], "INVALID_REQUEST", "{body}");
        assert!(
            error["field"].as_str().is_some_and(|f| f.contains(field)),
            "{body}: {error}"
        );
    }
}

#[actix_web::test]
async fn without_dev_tokens_there_is_no_mint_route_and_the_pages_ask_for_a_token() {
    let app = spawn_app_with("[auth]\ndev_tokens = false\n").await;
    let response = mint(
        &app,
        serde_json::json!({"userId": "alice", "role": "admin"}),
    )
    .await;
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error_code"], "NOT_FOUND");
    for path in ["/", "/admin"] {
        let html = get(&app, path).await.text().await.expect("html");
        assert!(html.contains("data-dev-tokens=\"off\""), "{path}");
    }
}
