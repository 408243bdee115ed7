//! The served OpenAPI document: 3.1, every route of the router in it, and the fallback that
//! answers a known path asked with another method with 405 and `Allow`.

use crate::helpers::spawn_app;
use serde_json::Value;

#[actix_web::test]
async fn the_document_is_served_and_lists_every_route() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.expect("JSON");
    assert!(
        doc["openapi"].as_str().unwrap_or("").starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/api/v1/events", "post"),
        ("/api/v1/user/nft-events", "get"),
        ("/api/v1/admin/operations", "get"),
        ("/api/v1/user/nft-portfolio-changes", "get"),
        ("/api/v1/user/notifications", "get"),
        ("/api/v1/user/notifications/{id}/read", "post"),
        ("/api/v1/user/nfts", "get"),
        ("/api/v1/user/unlock-nft", "post"),
        ("/api/v1/user/upgrade-nft", "post"),
        ("/api/v1/user/operations/{operation_id}", "get"),
        ("/api/v1/internal/trading-volume", "post"),
        ("/api/v1/admin/badges", "post"),
        ("/api/v1/user/badges/{badge_id}/activate", "post"),
        ("/api/v1/admin/sse-stats", "get"),
        ("/api/v1/admin/instances", "get"),
        ("/api/v1/admin/audit", "get"),
        ("/api/v1/admin/analytics", "get"),
        ("/api/v1/dev/token", "post"),
        ("/api/v1/user/stream-cookie", "post"),
        ("/api/v1/user/stream-cookie", "delete"),
        ("/api/v1/openapi.json", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/", "get"),
        ("/admin", "get"),
        ("/assets/samples.json", "get"),
        ("/client.js", "get"),
        ("/assets/{name}", "get"),
    ] {
        assert!(
            paths[path][method].is_object(),
            "{method} {path} is documented"
        );
    }
    assert_eq!(
        paths.len(),
        28,
        "no route undocumented, none documented twice"
    );
    let schemas = &doc["components"]["schemas"];
    for schema in ["ApiErrorBody", "Envelope", "PublishBody", "EventData"] {
        assert!(schemas[schema].is_object(), "schema {schema}");
    }
    // Each event type's publish body is its own closed object.
    assert_eq!(
        schemas["PublishBody"]["oneOf"].as_array().map(Vec::len),
        Some(actors::EventType::ALL.len())
    );
}

#[actix_web::test]
async fn a_known_path_with_another_method_is_405_with_allow() {
    let app = spawn_app().await;
    let response = app
        .client
        .delete(app.url("/api/v1/events"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error_code"], "METHOD_NOT_ALLOWED");
    let unknown = app
        .client
        .delete(app.url("/api/v1/nowhere"))
        .send()
        .await
        .expect("sent");
    assert_eq!(unknown.status(), 404);
}
