use crate::helpers::spawn_app;
use nft_event_router::auth::Role;

#[actix_web::test]
async fn sse_stats_has_the_seed_shape_and_is_for_admins() {
    let app = spawn_app().await;
    let _a = app.open_stream("u1").await;
    let _b = app.open_stream("u1").await;
    let _c = app.open_stream("u2").await;

    let stats = app.wait_for_stats(|s| s["totalConnections"] == 3).await;
    assert_eq!(stats["totalConnections"], 3);
    assert_eq!(stats["uniqueUsers"], 2);
    assert_eq!(
        stats["connectionsPerUser"],
        serde_json::json!({"u1": 2, "u2": 1})
    );
    assert_eq!(stats["averageConnectionsPerUser"], 1.5);

    for role in [Role::User, Role::Service] {
        let response = app
            .client
            .get(app.url("/api/v1/admin/sse-stats"))
            .bearer_auth(app.token("x", role))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 403);
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["error_code"], "FORBIDDEN");
    }
}

#[actix_web::test]
async fn healthz_answers_and_unknown_routes_are_json_404() {
    let app = spawn_app().await;
    let health = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("sent");
    assert_eq!(health.status(), 200);
    let missing = app.client.get(app.url("/nope")).send().await.expect("sent");
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.expect("json");
    assert_eq!(body["error_code"], "NOT_FOUND");
}
