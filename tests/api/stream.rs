use crate::helpers::{event_body, spawn_app_with, SseClient, TestApp, WAIT};
use actors::EventType;
use nft_event_router::auth::Role;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const SHORT: Duration = Duration::from_millis(200);

/// The stream contract holds on every path that serves a stream: `over_http1` runs a test on
/// plain HTTP/1.1 (the lean acceptor), `over_h2_tls` on HTTP/2 over TLS (actix-web's HTTP/2
/// dispatcher), each with `config` added.
macro_rules! over_both {
    ($name:ident, $config:expr) => {
        mod $name {
            #[actix_web::test]
            async fn over_http1() {
                super::$name(crate::helpers::spawn_app_with($config).await).await
            }

            #[actix_web::test]
            async fn over_h2_tls() {
                let app = crate::tls::spawn_tls_app_with($config, &[b"h2"]).await;
                assert!(app.address.starts_with("https://"));
                super::$name(app).await
            }
        }
    };
}

over_both!(the_stream_opens_with_welcome_then_retry_and_sse_headers, "");
async fn the_stream_opens_with_welcome_then_retry_and_sse_headers(app: TestApp) {
    let mut client = app.open_stream("u1").await;

    assert_eq!(client.headers["content-type"], "text/event-stream");
    assert_eq!(client.headers["cache-control"], "no-cache");
    assert_eq!(client.headers["x-accel-buffering"], "no");
    let welcome = client.next_frame().await.expect("welcome");
    let json = welcome.json().expect("json");
    assert_eq!(json["type"], "connection_established");
    assert_eq!(json["userId"], "u1");
    assert_eq!(welcome.id, None);
    assert_eq!(client.next_frame().await.expect("retry").retry, Some(3000));
}

over_both!(
    an_event_reaches_every_connection_of_its_user_and_no_one_else,
    ""
);
async fn an_event_reaches_every_connection_of_its_user_and_no_one_else(app: TestApp) {
    let mut phone = app.open_stream("u1").await;
    let mut laptop = app.open_stream("u1").await;
    let mut other = app.open_stream("u2").await;

    let response = app.publish(&event_body("u1", EventType::NftUnlocked)).await;
    assert_eq!(response.status(), 202);
    let cursor = response.headers()["x-event-cursor"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let accepted: serde_json::Value = response.json().await.expect("envelope");

    for client in [&mut phone, &mut laptop] {
        let (id, event) = client.next_event().await.expect("delivered");
        assert_eq!(id, cursor, "the SSE id is the event's cursor");
        assert_eq!(event, accepted, "the frame carries the accepted envelope");
    }
    assert!(other.no_event_within(SHORT).await);
}

over_both!(events_for_one_user_arrive_in_publish_order, "");
async fn events_for_one_user_arrive_in_publish_order(app: TestApp) {
    let mut client = app.open_stream("u1").await;
    let mut ids = Vec::new();
    let shown = crate::helpers::shown_types();
    for i in 0..30 {
        let event_type = shown[i % shown.len()];
        let response = app.publish(&event_body("u1", event_type)).await;
        assert_eq!(response.status(), 202);
        let envelope: serde_json::Value = response.json().await.expect("json");
        ids.push(envelope["eventId"].as_str().expect("id").to_owned());
    }
    for expected in ids {
        let (_, event) = client.next_event().await.expect("event");
        assert_eq!(event["eventId"], expected.as_str());
    }
}

over_both!(the_token_may_come_as_access_token_query_for_eventsource, "");
async fn the_token_may_come_as_access_token_query_for_eventsource(app: TestApp) {
    let token = app.token("u7", Role::User);
    let response = app
        .client
        .get(app.url(&format!("/api/v1/user/nft-events?access_token={token}")))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let mut client = SseClient::new(response);
    let welcome = client.next_frame().await.expect("welcome");
    assert_eq!(welcome.json().expect("json")["userId"], "u7");
}

over_both!(missing_bad_and_expired_tokens_get_401_json, "");
async fn missing_bad_and_expired_tokens_get_401_json(app: TestApp) {
    let url = app.url("/api/v1/user/nft-events");
    let foreign = nft_event_router::auth::JwtKeys::new(b"some-other-secret-entirely")
        .mint("u1", Role::User, 600)
        .expect("mint");
    let expired = {
        use jsonwebtoken::{encode, EncodingKey, Header};
        let claims = serde_json::json!({"sub": "u1", "role": "user", "exp": 1_000_000_000u64});
        let secret = "dev-only-secret-change-me-in-production";
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("encode")
    };
    let requests = [
        app.client.get(&url),
        app.client.get(&url).bearer_auth("not-a-jwt"),
        app.client.get(&url).bearer_auth(foreign),
        app.client.get(&url).bearer_auth(expired),
        app.client
            .get(&url)
            .header("Authorization", "Basic dTE6cHc="),
    ];
    for request in requests {
        let response = request.send().await.expect("sent");
        assert_eq!(response.status(), 401);
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["code"], 401);
        assert_eq!(body["error_code"], "UNAUTHORIZED");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

// The freed slot shows well before the first heartbeat (30 s): over HTTP/1.1 the hang-up is
// seen on the socket, over HTTP/2 the client's RST_STREAM on the stream (src/acceptor/h2.rs).
over_both!(the_fourth_connection_is_refused_until_one_closes, "");
async fn the_fourth_connection_is_refused_until_one_closes(app: TestApp) {
    let first = app.open_stream("u1").await;
    let _second = app.open_stream("u1").await;
    let _third = app.open_stream("u1").await;

    let refused = app.open_stream_response("u1").await;
    assert_eq!(refused.status(), 429);
    let body: serde_json::Value = refused.json().await.expect("json");
    assert_eq!(
        body,
        serde_json::json!({"code": 429, "message": "Too many SSE connections", "error_code": "RATE_LIMITED"})
    );
    assert_eq!(
        app.open_stream_response("u2").await.status(),
        200,
        "other users unaffected"
    );

    drop(first);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let response = app.open_stream_response("u1").await;
        if response.status() == 200 {
            break;
        }
        assert_eq!(response.status(), 429);
        assert!(
            tokio::time::Instant::now() < deadline,
            "a slot freed after the disconnect"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

over_both!(
    heartbeats_arrive_at_the_configured_interval,
    "[sse]\nheartbeat_secs = 1\n"
);
async fn heartbeats_arrive_at_the_configured_interval(app: TestApp) {
    let mut client = app.open_stream("u1").await;
    let started = tokio::time::Instant::now();
    let mut beats = 0;
    while beats < 2 {
        let frame = client
            .next_frame_within(Duration::from_secs(3))
            .await
            .expect("frame");
        if frame
            .json()
            .and_then(|j| j["type"].as_str().map(str::to_owned))
            .as_deref()
            == Some("heartbeat")
        {
            assert_eq!(frame.id, None, "heartbeats carry no id");
            beats += 1;
        }
    }
    // Two beats need at least one full interval after the first.
    assert!(started.elapsed() >= Duration::from_millis(900));
}

/// A client that stops reading fills its socket buffers, then its session queue; the session
/// is closed and other sessions keep receiving every event.
#[actix_web::test]
async fn a_client_that_stops_reading_is_closed_and_others_still_get_everything() {
    let app = spawn_app_with("[sse]\nsession_queue = 8\n").await;
    let reader = app.open_stream("u1").await;

    // The stalled client: a raw socket with a tiny receive buffer that never reads.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let addr = app
        .address
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    let mut stalled = socket.connect(addr).await.expect("connect");
    let request = format!(
        "GET /api/v1/user/nft-events HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\r\n",
        app.token("u1", Role::User)
    );
    stalled
        .write_all(request.as_bytes())
        .await
        .expect("request");
    let stats = app
        .wait_for_stats(|s| s["connectionsPerUser"]["u1"] == 2)
        .await;
    assert_eq!(stats["connectionsPerUser"]["u1"], 2);

    let _reader = every_big_event_reaches(&app, reader).await;

    let stats = app
        .wait_for_stats(|s| s["connectionsPerUser"]["u1"] == 1)
        .await;
    assert_eq!(
        stats["connectionsPerUser"]["u1"], 1,
        "the stalled session was closed"
    );
    drop(stalled);
}

/// Publishes 300 events of about 40 KiB for u1 (a few hundred outgrow any socket buffer or
/// HTTP/2 window on loopback) and asserts that `reader` receives every one, in order.
async fn every_big_event_reaches(app: &TestApp, mut reader: SseClient) -> SseClient {
    let big = "x".repeat(40_000);
    let reading = actix_web::rt::spawn(async move {
        let mut ids = Vec::new();
        while ids.len() < 300 {
            match reader.next_event().await {
                Some((_, event)) => {
                    ids.push(event["eventId"].as_str().unwrap_or_default().to_owned())
                }
                None => break,
            }
        }
        (ids, reader)
    });
    let mut published = Vec::new();
    for _ in 0..300 {
        let mut body = event_body("u1", EventType::BadgeEarned);
        body["data"]["description"] = serde_json::json!(big);
        let response = app.publish(&body).await;
        assert_eq!(response.status(), 202);
        let envelope: serde_json::Value = response.json().await.expect("json");
        published.push(envelope["eventId"].as_str().expect("id").to_owned());
    }
    let (received, reader) = reading.await.expect("reader task");
    assert_eq!(
        received, published,
        "the reading client got every event, in order"
    );
    reader
}

/// Over HTTP/2 each stream of a connection has its own flow control: a stream the client does
/// not read fills its window, then its session queue, and is closed, while a stream on the same
/// connection gets every event.
#[actix_web::test]
async fn over_h2_a_stream_not_read_is_closed_and_its_neighbour_on_the_connection_gets_all() {
    let app = crate::tls::spawn_tls_app_with("[sse]\nsession_queue = 8\n", &[b"h2"]).await;
    let reader = app.open_stream("u1").await;
    // The same client: the same HTTP/2 connection, a second stream on it, never read.
    let stalled = app.open_stream_response("u1").await;
    assert_eq!(stalled.status(), 200);
    assert_eq!(stalled.version(), reqwest::Version::HTTP_2);
    let stats = app
        .wait_for_stats(|s| s["connectionsPerUser"]["u1"] == 2)
        .await;
    assert_eq!(stats["connectionsPerUser"]["u1"], 2);

    let _reader = every_big_event_reaches(&app, reader).await;

    let stats = app
        .wait_for_stats(|s| s["connectionsPerUser"]["u1"] == 1)
        .await;
    assert_eq!(
        stats["connectionsPerUser"]["u1"], 1,
        "the stream that was not read was closed"
    );
    drop(stalled);
}

over_both!(graceful_shutdown_ends_open_streams, "");
async fn graceful_shutdown_ends_open_streams(app: TestApp) {
    let mut client = app.open_stream("u1").await;
    assert!(client.next_frame().await.is_some());
    let stopping = tokio::time::timeout(Duration::from_secs(10), app.stop());
    let result = stopping.await.expect("stopped within the timeout");
    assert!(result.is_ok());
    assert!(
        client.ended_within(WAIT).await,
        "the stream was closed by the server"
    );
}
