//! The Kafka path end to end: events published over HTTP come out of the embedded cluster on
//! exactly their routed topics, survive a broker outage, and reach the consumers' tables.

use crate::helpers::{event_body, spawn_app, unique_user, TestApp};
use actors::routing::RoutingTable;
use actors::EventType;
use nft_event_router::auth::Role;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(30);

/// One record as read back by an independent consumer.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub topic: String,
    pub partition: i32,
    pub key: String,
    pub headers: HashMap<String, String>,
    pub payload: serde_json::Value,
}

async fn bootstrap(app: &TestApp) -> String {
    let (_, ready) = app.readyz().await;
    assert_eq!(ready["checks"]["kafka"]["status"], "up", "{ready}");
    ready["checks"]["kafka"]["bootstrapServers"]
        .as_str()
        .expect("bootstrap")
        .to_owned()
}

/// Reads `topics` from the beginning until `done` holds or patience runs out, on a blocking
/// thread, with a consumer group of its own (so nothing of the router's is disturbed).
pub(crate) async fn read_topics(
    bootstrap: &str,
    topics: &[&str],
    done: impl Fn(&[Seen]) -> bool + Send + 'static,
) -> Vec<Seen> {
    let bootstrap = bootstrap.to_owned();
    let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", format!("test-reader-{}", uuid::Uuid::new_v4()))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .expect("reader");
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names).expect("subscribe");
        let mut seen = Vec::new();
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline && !done(&seen) {
            let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let mut headers = HashMap::new();
            if let Some(h) = m.headers() {
                for header in h.iter() {
                    let value = header
                        .value
                        .map(|v| String::from_utf8_lossy(v).into_owned());
                    headers.insert(header.key.to_owned(), value.unwrap_or_default());
                }
            }
            seen.push(Seen {
                topic: m.topic().to_owned(),
                partition: m.partition(),
                key: m
                    .key()
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .unwrap_or_default(),
                headers,
                payload: m
                    .payload()
                    .and_then(|p| serde_json::from_slice(p).ok())
                    .unwrap_or(serde_json::Value::Null),
            });
        }
        seen
    })
    .await
    .expect("reader thread")
}

const ALL_TOPICS: [&str; 4] = [
    "nft-operations-topic",
    "user-nft-events-topic",
    "nft-notifications-topic",
    "nft-analytics-topic",
];

#[actix_web::test]
async fn each_event_lands_on_exactly_its_routed_topics_with_key_and_headers() {
    let app = spawn_app().await;
    let user = unique_user();
    let table = RoutingTable::default();
    let mut expected: HashMap<String, Vec<String>> = HashMap::new();
    for event_type in EventType::ALL {
        let mut body = event_body(&user, event_type);
        body["correlationId"] = serde_json::json!(format!("corr-{event_type}"));
        let response = app.publish(&body).await;
        assert_eq!(response.status(), 202);
        let envelope: serde_json::Value = response.json().await.expect("json");
        let id = envelope["eventId"].as_str().expect("id").to_owned();
        expected.insert(id, table.topics(event_type).to_vec());
    }
    let total: usize = expected.values().map(Vec::len).sum();

    let seen = read_topics(&bootstrap(&app).await, &ALL_TOPICS, move |s| {
        s.len() >= total
    })
    .await;
    assert_eq!(seen.len(), total, "every routed copy arrived");
    for (event_id, topics) in &expected {
        let mut got: Vec<String> = seen
            .iter()
            .filter(|s| s.headers.get("eventId") == Some(event_id))
            .map(|s| s.topic.clone())
            .collect();
        got.sort();
        let mut want = topics.clone();
        want.sort();
        assert_eq!(got, want, "topics of {event_id}");
    }
    for s in &seen {
        assert_eq!(s.key, user);
        let event_type = s.payload["eventType"].as_str().expect("type");
        assert_eq!(s.headers["eventType"], event_type);
        assert_eq!(
            s.headers["eventId"],
            s.payload["eventId"].as_str().expect("id")
        );
        assert_eq!(s.headers["correlationId"], format!("corr-{event_type}"));
    }
}

#[actix_web::test]
async fn a_broker_outage_during_500_publishes_loses_and_duplicates_nothing() {
    let app = spawn_app().await;
    let users: Vec<String> = (0..5).map(|_| unique_user()).collect();
    let broker = app.broker();
    let mut published: Vec<(String, String)> = Vec::new();
    for i in 0..500 {
        if i == 100 {
            broker
                .with_mock(|mock| {
                    for id in 1..=3 {
                        let _ = mock.broker_down(id);
                    }
                })
                .expect("embedded");
        }
        if i == 400 {
            broker
                .with_mock(|mock| {
                    for id in 1..=3 {
                        let _ = mock.broker_up(id);
                    }
                })
                .expect("embedded");
        }
        let user = &users[i % users.len()];
        let response = app
            .publish(&event_body(user, EventType::VolumeMilestoneReached))
            .await;
        assert_eq!(
            response.status(),
            202,
            "accepted while the broker is down too"
        );
        let envelope: serde_json::Value = response.json().await.expect("json");
        published.push((
            user.clone(),
            envelope["eventId"].as_str().expect("id").to_owned(),
        ));
    }

    let seen = read_topics(&bootstrap(&app).await, &["nft-analytics-topic"], |s| {
        s.len() >= 500
    })
    .await;
    // Give a duplicate, if there were one, the chance to show up.
    let again = read_topics(&bootstrap(&app).await, &["nft-analytics-topic"], |s| {
        s.len() > 500
    })
    .await;
    assert_eq!(seen.len(), 500);
    assert_eq!(again.len(), 500, "exactly once");
    assert_stream_order(&users, &published, &seen);
    for user in &users {
        let partitions: std::collections::HashSet<i32> = seen
            .iter()
            .filter(|s| &s.key == user)
            .map(|s| s.partition)
            .collect();
        assert_eq!(partitions.len(), 1, "one partition per user");
    }
}

/// Each user's records on the topic are that user's published event ids, in publish order.
/// `published` holds (user, eventId) pairs as accepted.
pub(crate) fn assert_stream_order(users: &[String], published: &[(String, String)], seen: &[Seen]) {
    for user in users {
        let want: Vec<&String> = published
            .iter()
            .filter(|p| &p.0 == user)
            .map(|p| &p.1)
            .collect();
        let got: Vec<&String> = seen
            .iter()
            .filter(|s| &s.key == user)
            .map(|s| &s.headers["eventId"])
            .collect();
        assert_eq!(got, want, "{user}'s records in stream order");
    }
}

async fn get_json(app: &TestApp, path: &str, user: &str, role: Role) -> serde_json::Value {
    app.get_as(path, user, role).await
}

async fn eventually(mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[actix_web::test]
async fn consumers_write_notifications_audit_rows_and_counters() {
    let app = spawn_app().await;
    let user = unique_user();
    for event_type in [
        EventType::BadgeEarned,
        EventType::NftMinted,
        EventType::NftUpgraded,
    ] {
        assert_eq!(
            app.publish(&event_body(&user, event_type)).await.status(),
            202
        );
    }

    let notifications = "/api/v1/user/notifications";
    assert!(
        eventually(async || {
            let page = get_json(&app, notifications, &user, Role::User).await;
            page["notifications"]
                .as_array()
                .is_some_and(|n| n.len() == 2)
        })
        .await,
        "badge_earned and nft_upgraded reach the user-facing topics once each"
    );
    let page = get_json(&app, notifications, &user, Role::User).await;
    assert_eq!(page["unreadCount"], 2);
    assert_eq!(
        page["notifications"][0]["eventType"], "nft_upgraded",
        "newest first"
    );
    assert_eq!(page["notifications"][0]["priority"], "high");
    let id = page["notifications"][1]["id"].as_u64().expect("id");
    let read = app
        .client
        .post(app.url(&format!("/api/v1/user/notifications/{id}/read")))
        .bearer_auth(app.token(&user, Role::User))
        .send()
        .await
        .expect("sent");
    assert_eq!(read.status(), 200);
    let stranger = app
        .client
        .post(app.url(&format!("/api/v1/user/notifications/{id}/read")))
        .bearer_auth(app.token("someone-else", Role::User))
        .send()
        .await
        .expect("sent");
    assert_eq!(stranger.status(), 404);
    assert_eq!(
        get_json(&app, notifications, &user, Role::User).await["unreadCount"],
        1
    );

    let audit = format!("/api/v1/admin/audit?userId={user}");
    assert!(
        eventually(async || {
            let page = get_json(&app, &audit, "ops", Role::Admin).await;
            page["entries"].as_array().is_some_and(|e| e.len() == 2)
        })
        .await,
        "nft_minted and nft_upgraded are on the operations topic"
    );
    let minted = get_json(
        &app,
        &format!("{audit}&eventType=nft_minted"),
        "ops",
        Role::Admin,
    )
    .await;
    assert_eq!(minted["entries"].as_array().map(Vec::len), Some(1));

    assert!(
        eventually(async || {
            let a = get_json(&app, "/api/v1/admin/analytics", "ops", Role::Admin).await;
            a["totals"]["nft_minted"] == 1 && a["counters"]["nft:nft_minted:count"] == 1
        })
        .await,
        "nft_minted counted once though it is on two analytics-group topics"
    );
}

#[actix_web::test]
async fn a_poison_record_is_dead_lettered_and_later_records_still_flow() {
    let app = spawn_app().await;
    let bootstrap = bootstrap(&app).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("producer");
    producer
        .send(
            FutureRecord::to("nft-operations-topic")
                .key("mallory")
                .payload("{not json"),
            Duration::from_secs(10),
        )
        .await
        .expect("poison produced");

    let user = unique_user();
    assert_eq!(
        app.publish(&event_body(&user, EventType::NftBurned))
            .await
            .status(),
        202
    );
    let audit = format!("/api/v1/admin/audit?userId={user}");
    assert!(
        eventually(async || {
            let page = get_json(&app, &audit, "ops", Role::Admin).await;
            page["entries"].as_array().is_some_and(|e| e.len() == 1)
        })
        .await,
        "the valid event after the poison one was audited"
    );
    let dead = read_topics(&bootstrap, &["nft-dead-letter-topic"], |s| s.len() >= 2).await;
    // Both the analytics and the audit group consume the operations topic.
    assert_eq!(dead.len(), 2, "{dead:?}");
    for d in &dead {
        assert_eq!(d.key, "mallory");
        assert!(d.headers.get("error").is_some_and(|e| !e.is_empty()));
        assert_eq!(d.headers["sourceTopic"], "nft-operations-topic");
    }
}

/// An external Kafka client (Debian's `kcat`) reads the router's events from the embedded
/// cluster at the address `/readyz` reports. Ignored by default (needs `kcat` installed);
/// `.ci/run` installs it and runs this.
#[actix_web::test]
#[ignore = "needs kcat; run by .ci/run"]
async fn kcat_reads_the_embedded_cluster() {
    let app = spawn_app().await;
    let user = unique_user();
    let response = app
        .publish(&event_body(&user, EventType::BadgeEarned))
        .await;
    let envelope: serde_json::Value = response.json().await.expect("json");
    let bootstrap = bootstrap(&app).await;
    // The relay publishes asynchronously; read until the record is there.
    let deadline = Instant::now() + PATIENCE;
    let text = loop {
        let output = tokio::process::Command::new("kcat")
            .args([
                "-b",
                &bootstrap,
                "-C",
                "-t",
                "nft-notifications-topic",
                "-o",
                "beginning",
            ])
            .args(["-c", "1", "-e", "-q", "-f", "%k %s\\n"])
            .output()
            .await
            .expect("kcat runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        if !text.trim().is_empty() || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(text.starts_with(&user), "{text}");
    assert!(
        text.contains(envelope["eventId"].as_str().expect("id")),
        "{text}"
    );
}

/// With `REDIS_URL` set (as `.ci/run` does): counters live in that Redis; when it becomes
/// unreachable the router says so in `/readyz`, keeps counting in the database, and the
/// counters catch up once Redis is back.
#[actix_web::test]
async fn an_unreachable_redis_is_reported_and_counters_catch_up() {
    let Ok(redis_url) = std::env::var("REDIS_URL") else {
        eprintln!("skipped: REDIS_URL is not set");
        return;
    };
    let upstream = redis_url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or("127.0.0.1:6379")
        .to_owned();
    let proxy = crate::proxy::TcpProxy::start(&upstream).await;
    let prefix = format!("test-{}:", uuid::Uuid::new_v4().simple());
    let app = crate::helpers::spawn_app_with(&format!(
        "[redis]\nurl = \"redis://{}\"\nkey_prefix = \"{prefix}\"\n",
        proxy.address()
    ))
    .await;
    let user = unique_user();
    let counted = |n: u64| {
        let app = &app;
        async move {
            let a = get_json(app, "/api/v1/admin/analytics", "ops", Role::Admin).await;
            a["totals"]["nft_minted"] == n && a["counters"]["nft:nft_minted:count"] == n
        }
    };

    assert_eq!(
        app.publish(&event_body(&user, EventType::NftMinted))
            .await
            .status(),
        202
    );
    assert!(eventually(async || counted(1).await).await);
    let direct = redis::Client::open(redis_url.as_str()).expect("client");
    let mut conn = direct
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let value: Option<u64> = redis::cmd("GET")
        .arg(format!("{prefix}nft:nft_minted:count"))
        .query_async(&mut conn)
        .await
        .expect("GET");
    assert_eq!(value, Some(1), "the counter is in Redis");

    proxy.cut();
    assert!(
        eventually(async || {
            let (status, body) = app.readyz().await;
            status == 200
                && body["status"] == "degraded"
                && body["checks"]["cache"]["status"] == "down"
        })
        .await,
        "readiness reports the cache down, the instance degraded but serving"
    );
    for _ in 0..2 {
        assert_eq!(
            app.publish(&event_body(&user, EventType::NftMinted))
                .await
                .status(),
            202
        );
    }
    assert!(
        eventually(async || {
            let a = get_json(&app, "/api/v1/admin/analytics", "ops", Role::Admin).await;
            a["totals"]["nft_minted"] == 3
        })
        .await,
        "counting goes on in the database"
    );

    proxy.restore();
    assert!(
        eventually(async || counted(3).await).await,
        "the counters caught up"
    );
    let value: Option<u64> = redis::cmd("GET")
        .arg(format!("{prefix}nft:nft_minted:count"))
        .query_async(&mut conn)
        .await
        .expect("GET");
    assert_eq!(value, Some(3));
}

#[actix_web::test]
async fn the_domain_journey_lands_on_the_routed_topics() {
    use crate::flows::{earn_and_activate, operation_id, outcome, unlock, upgrade, volume};
    let app = spawn_app().await;
    let user = unique_user();
    volume(&app, &user, 90_000.0).await;
    volume(&app, &user, 260_000.0).await;
    let (_, body) = unlock(&app, &user, 1).await;
    outcome(&app, &user, &operation_id(&body)).await;
    earn_and_activate(&app, &user, "first-trade").await;
    let (_, body) = upgrade(&app, &user, 2).await;
    let done = outcome(&app, &user, &operation_id(&body)).await;
    assert_eq!(done["status"], "completed", "{done}");

    // Every stored event of the user, admin-only ones included.
    let store = nft_event_router::store::Store::connect(&app.store_url, 1).expect("store");
    let stored = store.events_after(&user, 0, 100).expect("events");
    let table = RoutingTable::default();
    let mut expected: HashMap<String, Vec<String>> = HashMap::new();
    let mut types = Vec::new();
    for row in &stored {
        let event: serde_json::Value = serde_json::from_str(&row.envelope_json).expect("json");
        let event_type: EventType = event["eventType"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .expect("a known type");
        types.push(event_type.as_str());
        let id = event["eventId"].as_str().expect("id").to_owned();
        expected.insert(id, table.topics(event_type).to_vec());
    }
    assert_eq!(
        types,
        [
            "volume_milestone_reached",
            "volume_milestone_reached",
            "tier_qualification_changed",
            "nft_minted",
            "nft_unlocked",
            "badge_earned",
            "tier_qualification_changed",
            "nft_minted",
            "nft_burned",
            "nft_upgraded",
        ]
    );
    let total: usize = expected.values().map(Vec::len).sum();
    let seen = read_topics(&bootstrap(&app).await, &ALL_TOPICS, move |s| {
        s.len() >= total
    })
    .await;
    assert_eq!(seen.len(), total, "every routed copy arrived");
    for (event_id, topics) in &expected {
        let mut got: Vec<String> = seen
            .iter()
            .filter(|s| s.headers.get("eventId") == Some(event_id))
            .map(|s| s.topic.clone())
            .collect();
        got.sort();
        let mut want = topics.clone();
        want.sort();
        assert_eq!(got, want, "topics of {event_id}");
    }
    assert!(seen.iter().all(|s| s.key == user));
}
