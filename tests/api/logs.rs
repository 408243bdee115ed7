//! Logs that follow an event: the binary at `RUST_LOG=info` with JSON lines; one published
//! event's correlation id is found on the HTTP line, the journal's, the relay's and one line per
//! consumer group that reads its topics, and the request id on the request line.

use crate::helpers::{event_body, fresh_store_url, TestApp};
use actors::consumers::{ANALYTICS_GROUP, AUDIT_GROUP, NOTIFICATIONS_GROUP, OPERATIONS_GROUP};
use actors::EventType;
use nft_event_router::auth::Role;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_nft-event-router");

/// The router process and every JSON line it has logged so far.
struct Logged {
    child: Child,
    lines: Arc<Mutex<Vec<serde_json::Value>>>,
    port: u16,
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(store: &str) -> Logged {
    let mut child = Command::new(BIN)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NFT_ROUTER__HTTP__BIND", "127.0.0.1:0")
        .env("NFT_ROUTER__HTTP__WORKERS", "1")
        .env("NFT_ROUTER__STORE__URL", store)
        .env("NFT_ROUTER__LOG__FORMAT", "json")
        .env("NFT_ROUTER__CLUSTER__INSTANCE_ID", "logs-1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the router starts");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().expect("stderr");
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
            if let Ok(mut lines) = sink.lock() {
                lines.push(value);
            }
        }
    });
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut banner = String::new();
    stdout.read_line(&mut banner).expect("banner");
    // Keep reading stdout so the rest of the banner never blocks the router.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let port = banner
        .split("http://127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or_else(|| panic!("the router did not start: {banner:?}"));
    Logged { child, lines, port }
}

impl Logged {
    /// The lines whose `key` is `value`.
    fn with(&self, key: &str, value: &str) -> Vec<serde_json::Value> {
        self.lines
            .lock()
            .map(|lines| {
                lines
                    .iter()
                    .filter(|l| l[key].as_str() == Some(value))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until `done` holds on the lines with `key` = `value`; answers them either way.
    async fn until(
        &self,
        key: &str,
        value: &str,
        done: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        for _ in 0..300 {
            let lines = self.with(key, value);
            if done(&lines) {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.with(key, value)
    }
}

fn has(lines: &[serde_json::Value], target: &str, message: &str) -> bool {
    lines
        .iter()
        .any(|l| l["target"] == target && l["message"] == message)
}

fn group_lines(lines: &[serde_json::Value]) -> Vec<String> {
    let mut groups: Vec<String> = lines
        .iter()
        .filter(|l| l["target"] == "consumer" && l["message"] == "record consumed")
        .filter_map(|l| l["group"].as_str().map(str::to_owned))
        .collect();
    groups.sort();
    groups.dedup();
    groups
}

#[actix_web::test]
async fn one_correlation_id_follows_an_event_from_http_to_every_consumer_group() {
    let store = fresh_store_url();
    let router = start(&store);
    let app = TestApp::external(&format!("http://127.0.0.1:{}", router.port), &store);
    let correlation = format!("trace-{}", uuid::Uuid::new_v4().simple());
    let request = format!("req-{}", uuid::Uuid::new_v4().simple());
    let response = app
        .client
        .post(app.url("/api/v1/events"))
        .bearer_auth(app.token("svc", Role::Service))
        .header("X-Correlation-Id", &correlation)
        .header("X-Request-Id", &request)
        .json(&event_body("alice", EventType::NftUpgraded))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 202);
    assert_eq!(response.headers()["x-request-id"], request.as_str());
    let event: serde_json::Value = response.json().await.expect("json");
    let event_id = event["eventId"].as_str().expect("eventId").to_owned();

    // nft_upgraded goes to the user-events topic (notifications) and the operations topic
    // (analytics, audit, operations feed): all four groups.
    let mut expected = vec![
        ANALYTICS_GROUP.to_owned(),
        AUDIT_GROUP.to_owned(),
        NOTIFICATIONS_GROUP.to_owned(),
        OPERATIONS_GROUP.to_owned(),
    ];
    expected.sort();
    let followed = router
        .until("correlation_id", &correlation, |lines| {
            group_lines(lines) == expected && has(lines, "relay", "event published")
        })
        .await;
    assert!(has(&followed, "http", "event accepted"), "{followed:#?}");
    assert!(has(&followed, "journal", "event stored"), "{followed:#?}");
    assert!(has(&followed, "relay", "event published"), "{followed:#?}");
    assert_eq!(group_lines(&followed), expected, "{followed:#?}");
    for line in &followed {
        assert_eq!(line["event_id"], event_id.as_str(), "{line}");
        assert_eq!(line["instance"], "logs-1", "{line}");
    }
    let accepted = followed
        .iter()
        .find(|l| l["message"] == "event accepted")
        .expect("the accepted line");
    assert_eq!(accepted["request_id"], request.as_str());

    // The request line itself, with the caller's request id, method, path and status.
    let requested = router
        .until("request_id", &request, |lines| {
            has(lines, "http", "request")
        })
        .await;
    let line = requested
        .iter()
        .find(|l| l["message"] == "request")
        .unwrap_or_else(|| panic!("a request line: {requested:#?}"));
    assert_eq!(line["method"], "POST");
    assert_eq!(line["path"], "/api/v1/events");
    assert_eq!(line["status"], 202);
}

#[actix_web::test]
async fn a_stream_served_by_the_acceptor_answers_and_logs_its_request_id() {
    let store = fresh_store_url();
    let router = start(&store);
    let app = TestApp::external(&format!("http://127.0.0.1:{}", router.port), &store);
    let stream = app
        .client
        .get(app.url("/api/v1/user/nft-events"))
        .bearer_auth(app.token("bob", Role::User))
        .header("X-Request-Id", "stream-req-1")
        .send()
        .await
        .expect("sent");
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["x-request-id"], "stream-req-1");
    let refused = app
        .client
        .get(app.url("/api/v1/user/nft-events"))
        .send()
        .await
        .expect("sent");
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["x-request-id"].len(), 32, "a fresh id");
    let lines = router
        .until("request_id", "stream-req-1", |l| has(l, "http", "request"))
        .await;
    let line = lines
        .iter()
        .find(|l| l["message"] == "request")
        .unwrap_or_else(|| panic!("a request line: {lines:#?}"));
    assert_eq!(line["status"], 200);
    assert_eq!(line["path"], "/api/v1/user/nft-events");
}
