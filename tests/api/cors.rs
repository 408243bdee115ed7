//! Cross-origin access (`http.cors_origins`) on the actix-web routes: preflights answered for
//! allowed origins and refused for others, allow headers only for allowed origins, none by
//! default. The lean stream path is checked in `acceptor.rs`, a real browser in `browser.rs`.

use crate::helpers::{spawn_app, spawn_app_with, TestApp};
use nft_event_router::auth::Role;
use reqwest::Method;

const ALLOWED: &str = "https://app.example.com";
const OTHER: &str = "https://evil.example.com";

async fn preflight(app: &TestApp, path: &str, origin: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, app.url(path))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization,content-type,idempotency-key",
        )
        .send()
        .await
        .expect("sent")
}

async fn stats_from(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .get(app.url("/api/v1/admin/sse-stats"))
        .bearer_auth(app.token("ops", Role::Admin))
        .header("Origin", origin)
        .send()
        .await
        .expect("sent")
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

#[actix_web::test]
async fn by_default_no_other_origin_is_granted_anything() {
    let app = spawn_app().await;
    let response = stats_from(&app, OTHER).await;
    assert_eq!(response.status(), 200, "the request itself is served");
    assert_eq!(header(&response, "access-control-allow-origin"), None);

    let refused = preflight(&app, "/api/v1/events", OTHER).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(header(&refused, "access-control-allow-origin"), None);
    let error: serde_json::Value = refused.json().await.expect("json");
    assert_eq!(error["error_code"], "FORBIDDEN");
    assert!(error["message"]
        .as_str()
        .unwrap_or_default()
        .contains("http.cors_origins"));

    // Errors no longer say `*` either.
    let unauthorized = app
        .client
        .get(app.url("/api/v1/admin/sse-stats"))
        .header("Origin", OTHER)
        .send()
        .await
        .expect("sent");
    assert_eq!(unauthorized.status(), 401);
    assert_eq!(header(&unauthorized, "access-control-allow-origin"), None);
}

#[actix_web::test]
async fn an_allowed_origin_gets_its_preflight_and_the_allow_headers() {
    let app = spawn_app_with(&format!("[http]\ncors_origins = [\"{ALLOWED}\"]\n")).await;
    let granted = preflight(&app, "/api/v1/events", ALLOWED).await;
    assert_eq!(granted.status(), 204);
    assert_eq!(
        header(&granted, "access-control-allow-origin"),
        Some(ALLOWED)
    );
    let methods = header(&granted, "access-control-allow-methods").unwrap_or_default();
    assert!(methods.contains("POST"), "{methods}");
    let headers = header(&granted, "access-control-allow-headers").unwrap_or_default();
    for needed in [
        "Authorization",
        "Content-Type",
        "Idempotency-Key",
        "Last-Event-ID",
    ] {
        assert!(headers.contains(needed), "{needed} in {headers}");
    }
    assert_eq!(header(&granted, "access-control-allow-credentials"), None);
    assert!(header(&granted, "access-control-max-age").is_some());

    let served = stats_from(&app, ALLOWED).await;
    assert_eq!(served.status(), 200);
    assert_eq!(
        header(&served, "access-control-allow-origin"),
        Some(ALLOWED)
    );
    assert_eq!(header(&served, "vary"), Some("Origin"));
    let exposed = header(&served, "access-control-expose-headers").unwrap_or_default();
    assert!(exposed.contains("X-Event-Cursor"), "{exposed}");

    let other = stats_from(&app, OTHER).await;
    assert_eq!(header(&other, "access-control-allow-origin"), None);
    assert_eq!(preflight(&app, "/api/v1/events", OTHER).await.status(), 403);

    // The actix-web stream route (what a keep-alive connection's later request reaches)
    // carries the grant too.
    let stream = app
        .client
        .get(app.url("/api/v1/admin/operations"))
        .bearer_auth(app.token("ops", Role::Admin))
        .header("Origin", ALLOWED)
        .send()
        .await
        .expect("sent");
    assert_eq!(stream.status(), 200);
    assert_eq!(
        header(&stream, "access-control-allow-origin"),
        Some(ALLOWED)
    );
}

#[actix_web::test]
async fn a_wildcard_allows_any_origin_without_credentials() {
    let app = spawn_app_with("[http]\ncors_origins = [\"*\"]\n").await;
    let response = stats_from(&app, OTHER).await;
    assert_eq!(header(&response, "access-control-allow-origin"), Some("*"));
    assert_eq!(header(&response, "access-control-allow-credentials"), None);
    assert_eq!(preflight(&app, "/api/v1/events", OTHER).await.status(), 204);
}
