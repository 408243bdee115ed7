//! Browser auth without tokens in URLs: the stream cookie (set by an authenticated call, read
//! only by the stream routes), and `?access_token=` turned off by `auth.query_tokens = false`.

use crate::helpers::{spawn_app_with, SseClient, TestApp};
use nft_event_router::auth::Role;

/// `POST /api/v1/user/stream-cookie` as `user`: the `Set-Cookie` header and the cookie pair.
async fn stream_cookie(app: &TestApp, token: &str) -> (String, String) {
    stream_cookie_for(app, token, "").await
}

/// As [`stream_cookie`], with `query` (`?stream=…`).
async fn stream_cookie_for(app: &TestApp, token: &str, query: &str) -> (String, String) {
    let response = app
        .client
        .post(app.url(&format!("/api/v1/user/stream-cookie{query}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 204);
    let set = response.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let pair = set.split(';').next().expect("a pair").to_owned();
    (set, pair)
}

fn with_cookie(app: &TestApp, path: &str, cookie: &str) -> reqwest::RequestBuilder {
    app.client.get(app.url(path)).header("Cookie", cookie)
}

#[actix_web::test]
async fn a_browser_opens_its_stream_with_the_cookie_and_no_token_in_the_url() {
    let app = spawn_app_with("").await;
    let (set, pair) = stream_cookie(&app, &app.token("ck-u1", Role::User)).await;
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/api/v1/user/nft-events;",
    ] {
        assert!(set.contains(attribute), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: no Secure: {set}");
    let max_age: u64 = set
        .split("Max-Age=")
        .nth(1)
        .and_then(|v| v.split(';').next())
        .and_then(|v| v.parse().ok())
        .expect("Max-Age");
    assert!(
        (590..=600).contains(&max_age),
        "the token's remaining life: {max_age}"
    );

    // The stream (lean path), with other cookies around it.
    let response = with_cookie(
        &app,
        "/api/v1/user/nft-events",
        &format!("a=1; {pair}; b=2"),
    )
    .send()
    .await
    .expect("stream");
    assert_eq!(response.status(), 200);
    let mut stream = SseClient::new(response);
    let published = app.publish_n("ck-u1", 1).await;
    assert_eq!(stream.next_event().await.expect("event").0, published[0].0);

    // Only the stream routes read it: another user route wants the header.
    let other = with_cookie(&app, "/api/v1/user/notifications", &pair)
        .send()
        .await
        .expect("notifications");
    assert_eq!(other.status(), 401);

    // An admin's cookie opens the operations feed (actix-web route). It is a cookie of its
    // own, scoped to the feed's path, so it does not replace the user stream's.
    let admin_token = app.token("ck-ops", Role::Admin);
    let (set, admin) = stream_cookie_for(&app, &admin_token, "?stream=operations").await;
    assert!(set.contains("Path=/api/v1/admin/operations;"), "{set}");
    let feed = with_cookie(&app, "/api/v1/admin/operations", &admin)
        .send()
        .await
        .expect("feed");
    assert_eq!(feed.status(), 200);
    // A user's cookie does not.
    let feed = with_cookie(&app, "/api/v1/admin/operations", &pair)
        .send()
        .await
        .expect("feed");
    assert_eq!(feed.status(), 403);
    // Nor can a user have a cookie for the feed; an unknown stream is a bad request.
    let refused = app
        .client
        .post(app.url("/api/v1/user/stream-cookie?stream=operations"))
        .bearer_auth(app.token("ck-u1", Role::User))
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status(), 403);
    let unknown = app
        .client
        .post(app.url("/api/v1/user/stream-cookie?stream=everything"))
        .bearer_auth(&admin_token)
        .send()
        .await
        .expect("request");
    assert_eq!(unknown.status(), 400);
    let body: serde_json::Value = unknown.json().await.expect("json");
    assert_eq!(body["error_code"], "INVALID_PARAMETER", "{body}");

    // A forged cookie is refused, and clearing answers an expired, empty cookie.
    let forged = with_cookie(&app, "/api/v1/user/nft-events", "nftr_stream=abc.def.ghi")
        .send()
        .await
        .expect("forged");
    assert_eq!(forged.status(), 401);
    let cleared = app
        .client
        .delete(app.url("/api/v1/user/stream-cookie"))
        .send()
        .await
        .expect("clear");
    assert_eq!(cleared.status(), 204);
    let set = cleared.headers()["set-cookie"].to_str().expect("ascii");
    assert!(
        set.starts_with("nftr_stream=;") && set.contains("Max-Age=0"),
        "{set}"
    );
}

#[actix_web::test]
async fn url_tokens_can_be_turned_off() {
    let app = spawn_app_with("[auth]\nquery_tokens = false\n").await;
    let token = app.token("q-u1", Role::User);
    for path in ["/api/v1/user/nft-events", "/api/v1/user/notifications"] {
        let response = app
            .client
            .get(app.url(&format!("{path}?access_token={token}")))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 401, "{path}");
        let body: serde_json::Value = response.json().await.expect("json");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("auth.query_tokens")),
            "{body}"
        );
    }
    // The header and the cookie still work.
    assert_eq!(app.open_stream_response("q-u1").await.status(), 200);
    let (_, pair) = stream_cookie(&app, &token).await;
    let response = with_cookie(&app, "/api/v1/user/nft-events", &pair)
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status(), 200);

    // On by default: existing clients keep working.
    let default = spawn_app_with("").await;
    let token = default.token("q-u2", Role::User);
    let response = default
        .client
        .get(default.url(&format!("/api/v1/user/nft-events?access_token={token}")))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
}
