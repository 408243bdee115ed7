//! Several router processes (the real binary) on one store and one Redis, as behind a load
//! balancer. Each test starts a Redis of its own (`redis-server` from `PATH`, on a free port),
//! so it can drop and restart it; without `redis-server` the tests say so and pass.

use crate::helpers::{event_body, fresh_store_url, SseClient, TestApp};
use actors::EventType;
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_nft-event-router");

/// A private `redis-server` on a free loopback port.
struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    fn start() -> Option<RedisServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let mut server = RedisServer { port, child: None };
        server.up().then_some(server)
    }

    fn up(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else { return false };
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Closes every pub/sub connection the server holds (a dropped bus connection).
    fn kill_subscribers(&self) {
        let status = Command::new("redis-cli")
            .args([
                "-p",
                &self.port.to_string(),
                "CLIENT",
                "KILL",
                "TYPE",
                "pubsub",
            ])
            .stdout(Stdio::null())
            .status();
        assert!(status.is_ok_and(|s| s.success()), "redis-cli CLIENT KILL");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.down();
    }
}

/// One router process of the cluster.
struct Instance {
    id: String,
    child: Child,
    app: TestApp,
    /// Kept open: the banner is several lines, and a closed pipe would fail the router's
    /// next write to stdout.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Instance {
    fn spawn(id: &str, store: &str, redis: &RedisServer, env: &[(&str, &str)]) -> Instance {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("NFT_ROUTER__HTTP__BIND", "127.0.0.1:0")
            .env("NFT_ROUTER__HTTP__WORKERS", "1")
            .env("NFT_ROUTER__STORE__URL", store)
            .env("NFT_ROUTER__REDIS__URL", redis.url())
            .env("NFT_ROUTER__CLUSTER__BUS", "redis")
            .env("NFT_ROUTER__CLUSTER__INSTANCE_ID", id)
            .env("NFT_ROUTER__CLUSTER__SWEEP_MS", "300")
            .env("NFT_ROUTER__CLUSTER__LEASE_SECS", "3")
            .env("NFT_ROUTER__CLUSTER__HEARTBEAT_MS", "300")
            .env("NFT_ROUTER__CLUSTER__DRAIN_SECS", "0")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            cmd.env(key, value);
        }
        let mut child = cmd.spawn().expect("the router starts");
        let mut banner = String::new();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        stdout.read_line(&mut banner).expect("banner");
        let port = banner
            .split("http://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.trim().parse::<u16>().ok())
            .unwrap_or_else(|| panic!("instance {id} did not start: {banner:?}"));
        Instance {
            id: id.to_owned(),
            child,
            app: TestApp::external(&format!("http://127.0.0.1:{port}"), store),
            _stdout: stdout,
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    async fn exited_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        while tokio::time::Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Redis and `n` instances on one fresh store; `None` without `redis-server`.
fn cluster(n: usize, env: &[(&str, &str)]) -> Option<(RedisServer, Vec<Instance>, String)> {
    let Some(redis) = RedisServer::start() else {
        eprintln!("skipped: redis-server is not installed");
        return None;
    };
    let store = fresh_store_url();
    let instances = (0..n)
        .map(|i| Instance::spawn(&format!("test-{i}"), &store, &redis, env))
        .collect();
    Some((redis, instances, store))
}

/// Reads events until `expected` cursors arrived, asserting each arrives once, in increasing
/// order; answers what arrived.
async fn collect(stream: &mut SseClient, expected: usize, wait: Duration) -> Vec<u64> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while got.len() < expected && tokio::time::Instant::now() < deadline {
        let Some(frame) = stream.next_frame_within(Duration::from_secs(1)).await else {
            continue;
        };
        let Some(id) = frame.id.as_deref() else {
            continue;
        };
        let cursor: u64 = id.parse().expect("numeric cursor");
        if let Some(&last) = got.last() {
            assert!(
                cursor > last,
                "cursor {cursor} after {last}: out of order or twice"
            );
        }
        got.push(cursor);
    }
    got
}

#[tokio::test]
async fn events_accepted_by_any_instance_reach_every_stream_of_the_user_once_in_order() {
    let Some((_redis, instances, _)) = cluster(3, &[]) else {
        return;
    };
    let user = crate::helpers::unique_user();
    let mut streams = Vec::new();
    for instance in &instances {
        streams.push(instance.app.open_stream(&user).await);
    }
    // Concurrent publishers on every instance.
    let per_instance = 30;
    let publishers: Vec<_> = instances
        .iter()
        .map(|instance| {
            let app = TestApp::external(&instance.app.address, &instance.app.store_url);
            let user = user.clone();
            tokio::spawn(async move {
                for _ in 0..per_instance {
                    let response = app
                        .publish(&event_body(&user, EventType::BadgeEarned))
                        .await;
                    assert_eq!(response.status(), 202);
                }
            })
        })
        .collect();
    for publisher in publishers {
        publisher.await.expect("publisher");
    }
    let total = per_instance * instances.len();
    let all: Vec<u64> = (1..=total as u64).collect();
    for (i, stream) in streams.iter_mut().enumerate() {
        let got = collect(stream, total, Duration::from_secs(20)).await;
        assert_eq!(
            got, all,
            "the stream on {} saw every event once",
            instances[i].id
        );
    }

    let stats = instances[0]
        .app
        .get_as(
            "/api/v1/admin/instances",
            "ops",
            nft_event_router::auth::Role::Admin,
        )
        .await;
    let ids: HashSet<String> = stats["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .map(|i| i["instanceId"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(ids.len(), 3, "every live instance is listed: {stats}");
    let (status, ready) = instances[1].app.readyz().await;
    assert_eq!(status, 200);
    assert_eq!(ready["instanceId"], "test-1");
    assert_eq!(ready["checks"]["bus"]["status"], "up");
}

#[tokio::test]
async fn the_per_user_limit_holds_across_instances_and_a_killed_instance_frees_its_slots() {
    let Some((_redis, mut instances, _)) = cluster(3, &[]) else {
        return;
    };
    let user = crate::helpers::unique_user();
    let attempts: Vec<_> = (0..50)
        .map(|i| {
            let app = &instances[i % 3].app;
            let app = TestApp::external(&app.address, &app.store_url);
            let user = user.clone();
            tokio::spawn(async move { (i % 3, app.open_stream_response(&user).await) })
        })
        .collect();
    let mut admitted = Vec::new();
    let mut refused = 0;
    for attempt in attempts {
        let (on, response) = attempt.await.expect("connect");
        match response.status().as_u16() {
            200 => admitted.push((on, SseClient::new(response))),
            429 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(
        admitted.len(),
        3,
        "exactly the limit is admitted across the cluster"
    );
    assert_eq!(refused, 47);

    // A clean close frees its slot at once.
    let (_, closed) = admitted.remove(0);
    drop(closed);
    assert!(
        reconnects(&instances[0].app, &user, Duration::from_secs(5)).await,
        "a closed stream's slot is free again"
    );

    // A killed instance's slots expire with their leases (3 s here).
    let victim = admitted[0].0;
    let held_by_victim = admitted.iter().filter(|(on, _)| *on == victim).count();
    instances[victim].signal("-KILL");
    assert!(
        instances[victim]
            .exited_within(Duration::from_secs(5))
            .await
    );
    let other = &instances[(victim + 1) % 3].app;
    for _ in 0..held_by_victim {
        assert!(
            reconnects(other, &user, Duration::from_secs(10)).await,
            "the killed instance's slot expired"
        );
    }
}

/// Tries to open a stream until admitted; keeps it open (leaks the client) on success.
async fn reconnects(app: &TestApp, user: &str, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < deadline {
        let response = app.open_stream_response(user).await;
        if response.status() == 200 {
            std::mem::forget(SseClient::new(response));
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn a_dropped_bus_connection_and_a_redis_restart_delay_events_and_lose_none() {
    let Some((mut redis, instances, _)) = cluster(2, &[]) else {
        return;
    };
    let user = crate::helpers::unique_user();
    let mut stream = instances[1].app.open_stream(&user).await;
    let publisher = &instances[0].app;
    let mut published = 0u64;
    let mut publish = async |n: usize| {
        for _ in 0..n {
            let response = publisher
                .publish(&event_body(&user, EventType::BadgeEarned))
                .await;
            assert_eq!(response.status(), 202, "publishing goes on without the bus");
            published += 1;
        }
        published
    };
    publish(10).await;
    redis.kill_subscribers();
    publish(10).await;
    redis.down();
    // The last event of a burst with the bus down: no later frame reveals it; the sweep does.
    publish(5).await;
    assert!(redis.up(), "redis restarted");
    let total = publish(10).await;

    let got = collect(&mut stream, total as usize, Duration::from_secs(30)).await;
    assert_eq!(
        got,
        (1..=total).collect::<Vec<_>>(),
        "every event once, in order"
    );
    let (status, ready) = instances[1].app.readyz().await;
    assert_eq!(status, 200, "{ready}");
}

#[tokio::test]
async fn a_configured_bus_that_does_not_answer_fails_start_up_with_one_line() {
    let output = Command::new(BIN)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NFT_ROUTER__HTTP__BIND", "127.0.0.1:0")
        .env("NFT_ROUTER__STORE__URL", fresh_store_url())
        .env("NFT_ROUTER__REDIS__URL", "redis://127.0.0.1:1")
        .env("NFT_ROUTER__CLUSTER__BUS", "redis")
        .env("RUST_LOG", "off")
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cluster.bus"), "{stderr}");
}

/// One event for each of `users`, published on `app`.
async fn publish_one_each(app: &TestApp, users: &[String]) {
    for user in users {
        let response = app.publish(&event_body(user, EventType::BadgeEarned)).await;
        assert_eq!(response.status(), 202);
    }
}

#[tokio::test]
async fn a_drained_instance_hands_its_clients_to_the_others_without_losing_an_event() {
    let Some((_redis, mut instances, _)) = cluster(2, &[("NFT_ROUTER__CLUSTER__DRAIN_SECS", "2")])
    else {
        return;
    };
    let users: Vec<String> = (0..4).map(|_| crate::helpers::unique_user()).collect();
    let mut streams = Vec::new();
    for user in &users {
        streams.push(instances[0].app.open_stream(user).await);
    }
    publish_one_each(&instances[1].app, &users).await;
    instances[0].signal("-TERM");
    let mut draining = false;
    for _ in 0..40 {
        let (status, body) = instances[0].app.readyz().await;
        if status == 503 && body["draining"] == true {
            draining = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(draining, "a draining instance reports not ready");
    // Events published during the drain, on the other instance.
    publish_one_each(&instances[1].app, &users).await;
    let mut retries = HashSet::new();
    for (user, stream) in users.iter().zip(streams.iter_mut()) {
        let mut last = None;
        let mut retry = None;
        while let Some(frame) = stream.next_frame_within(Duration::from_secs(5)).await {
            if let Some(id) = frame.id {
                last = Some(id);
            }
            if frame.retry.is_some() {
                retry = frame.retry;
            }
        }
        let retry = retry.expect("a final retry hint");
        retries.insert(retry);
        // The client resumes on the other instance from the last id it saw.
        let mut resumed = match &last {
            Some(cursor) => instances[1].app.resume_stream(user, cursor).await,
            None => instances[1].app.resume_stream(user, "0").await,
        };
        let seen = last
            .as_deref()
            .map_or(0, |c| c.parse::<u64>().expect("cursor"));
        let rest = collect(&mut resumed, (2 - seen) as usize, Duration::from_secs(10)).await;
        assert_eq!(
            rest,
            ((seen + 1)..=2).collect::<Vec<_>>(),
            "{user} missed nothing"
        );
    }
    assert!(retries.len() > 1, "retry hints are jittered: {retries:?}");
    assert!(instances[0].exited_within(Duration::from_secs(10)).await);
}

/// The instances whose `/readyz` says they relay the outbox, by index.
async fn relaying(instances: &[Instance]) -> Vec<usize> {
    let mut active = Vec::new();
    for (i, instance) in instances.iter().enumerate() {
        let (_, ready) = instance.app.readyz().await;
        if ready["checks"]["kafka"]["relay"] == "active" {
            active.push(i);
        }
    }
    active
}

/// Waits until exactly one of `instances` relays; answers which.
async fn one_relay(instances: &[Instance], wait: Duration) -> Option<usize> {
    let deadline = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < deadline {
        if let [only] = relaying(instances).await[..] {
            return Some(only);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test]
async fn a_broker_outage_and_a_killed_relay_lose_no_event_and_publish_none_twice() {
    use rdkafka::mocking::MockCluster;
    // One Kafka shared by three instances, held by the test so it can take the brokers down.
    let mock = MockCluster::new(3).expect("mock cluster");
    for (topic, partitions) in [
        ("nft-operations-topic", 3),
        ("user-nft-events-topic", 5),
        ("nft-notifications-topic", 3),
        ("nft-analytics-topic", 2),
        ("nft-dead-letter-topic", 1),
    ] {
        mock.create_topic(topic, partitions, 1).expect("topic");
    }
    let bootstrap = mock.bootstrap_servers();
    let Some((_redis, mut instances, _)) =
        cluster(3, &[("NFT_ROUTER__KAFKA__BROKERS", bootstrap.as_str())])
    else {
        return;
    };
    let holder = one_relay(&instances, Duration::from_secs(10))
        .await
        .expect("one instance relays the shared outbox");
    let users: Vec<String> = (0..5).map(|_| crate::helpers::unique_user()).collect();
    let mut published: Vec<(String, String)> = Vec::new();
    for i in 0..150 {
        if i == 50 {
            // The first fifty are on the broker before it goes down, so no record is in
            // flight across the outage (a record sent but not acknowledged when its relay dies
            // is sent again by the next holder: at least once, not exactly once).
            let first =
                crate::kafka::read_topics(&bootstrap, &["nft-analytics-topic"], |s| s.len() >= 50)
                    .await;
            assert_eq!(first.len(), 50);
            for id in 1..=3 {
                mock.broker_down(id).expect("broker down");
            }
        }
        if i == 100 {
            // The holder dies with rows it could not publish; another instance takes the turn.
            instances[holder].signal("-KILL");
            assert!(
                instances[holder]
                    .exited_within(Duration::from_secs(5))
                    .await
            );
            for id in 1..=3 {
                mock.broker_up(id).expect("broker up");
            }
        }
        let alive: Vec<usize> = (0..instances.len())
            .filter(|&n| i < 100 || n != holder)
            .collect();
        let instance = &instances[alive[i % alive.len()]];
        let user = &users[i % users.len()];
        let response = instance
            .app
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
    let survivors: Vec<Instance> = instances
        .drain(..)
        .enumerate()
        .filter_map(|(n, instance)| (n != holder).then_some(instance))
        .collect();
    assert!(
        one_relay(&survivors, Duration::from_secs(10))
            .await
            .is_some(),
        "the turn passes to one of the others"
    );

    let seen =
        crate::kafka::read_topics(&bootstrap, &["nft-analytics-topic"], |s| s.len() >= 150).await;
    // Give a duplicate, if there were one, the chance to show up.
    let again =
        crate::kafka::read_topics(&bootstrap, &["nft-analytics-topic"], |s| s.len() > 150).await;
    assert_eq!(seen.len(), 150, "every event reached Kafka");
    assert_eq!(again.len(), 150, "none twice");
    crate::kafka::assert_stream_order(&users, &published, &seen);
}
