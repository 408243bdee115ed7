//! `kafka-cluster`: the real binary serving one embedded cluster on a fixed address, which a
//! router started apart from it uses as an ordinary bootstrap list.

use crate::helpers::{accepted, event_body, spawn_app_with, unique_user};
use actors::routing::{RoutingTable, USER_EVENTS_TOPIC};
use actors::EventType;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_nft-event-router");

/// Longest wait for the cluster's ready line, for a router to start, or for a process to exit.
/// Far below the 30 s a CreateTopics request to the mock cluster takes to time out.
const LIMIT: Duration = Duration::from_secs(10);

/// Longest wait for a published record to be read back from the cluster.
const READ_LIMIT: Duration = Duration::from_secs(30);

/// A child process that is killed and reaped when dropped, so a failing assertion leaves
/// nothing running.
struct Process {
    child: Child,
}

impl Process {
    fn spawn(args: &[&str], stdout: Stdio, stderr: Stdio) -> Process {
        let child = Command::new(BIN)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("the binary starts");
        Process { child }
    }

    /// The exit status, if the process ends within `limit`.
    fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn terminate(&mut self) -> Option<ExitStatus> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM delivered");
        self.exit_within(LIMIT)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `kafka-cluster --bind 127.0.0.1:0`, started and ready; its bootstrap address from the ready
/// line.
fn start_cluster() -> (Process, String) {
    let mut process = Process::spawn(
        &["kafka-cluster", "--bind", "127.0.0.1:0"],
        Stdio::piped(),
        Stdio::null(),
    );
    let stdout = process.child.stdout.take().expect("stdout");
    let (lines_tx, lines_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = lines_rx
        .recv_timeout(LIMIT)
        .expect("a ready line within 10 s")
        .expect("stdout readable");
    let bootstrap = line
        .strip_prefix("kafka cluster ready: bootstrap ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .trim()
        .to_owned();
    assert!(bootstrap.starts_with("127.0.0.1:"), "{bootstrap}");
    assert!(!bootstrap.ends_with(":0"), "the chosen port is named");
    (process, bootstrap)
}

/// The key of the record on `topic` whose `eventId` header is `event_id`, read from the start of
/// every partition without a consumer group (no group join to wait for).
async fn key_of_record(bootstrap: &str, topic: &str, event_id: &str) -> Option<String> {
    let bootstrap = bootstrap.to_owned();
    let topic = topic.to_owned();
    let event_id = event_id.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", format!("test-reader-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .create()
            .expect("reader");
        let metadata = consumer
            .fetch_metadata(Some(&topic), LIMIT)
            .expect("topic metadata");
        let partitions = metadata.topics().first().expect("the topic").partitions();
        let mut assignment = TopicPartitionList::new();
        for partition in partitions {
            assignment
                .add_partition_offset(&topic, partition.id(), Offset::Beginning)
                .expect("offset");
        }
        consumer.assign(&assignment).expect("assign");
        let deadline = Instant::now() + READ_LIMIT;
        while Instant::now() < deadline {
            let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let is_it = m.headers().is_some_and(|headers| {
                headers
                    .iter()
                    .any(|h| h.key == "eventId" && h.value == Some(event_id.as_bytes()))
            });
            if is_it {
                return m.key().map(|k| String::from_utf8_lossy(k).into_owned());
            }
        }
        None
    })
    .await
    .expect("reader thread")
}

#[actix_web::test]
async fn a_router_shares_a_standalone_cluster_without_waiting_on_create_topics() {
    // Arrange: the cluster in its own process, a router pointed at its fixed address.
    let (_cluster, bootstrap) = start_cluster();
    let app = tokio::time::timeout(
        LIMIT,
        spawn_app_with(&format!("[kafka]\nbrokers = {bootstrap:?}\n")),
    )
    .await
    .expect("the router starts within 10 s (no CreateTopics request to time out)");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, ready) = app.readyz().await;
        let kafka = &ready["checks"]["kafka"];
        if kafka["status"] == "up" {
            assert_eq!(kafka["bootstrapServers"], bootstrap.as_str(), "{ready}");
            assert_eq!(kafka["embedded"], false, "{ready}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "kafka not up within 5 s: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Act: publish one event that routes to the user events topic.
    let table = RoutingTable::default();
    let event_type = EventType::ALL
        .into_iter()
        .find(|t| {
            table
                .topics(*t)
                .iter()
                .any(|name| name == USER_EVENTS_TOPIC)
        })
        .expect("an event type routed to the user events topic");
    let user = unique_user();
    let response = app.publish(&event_body(&user, event_type)).await;
    assert_eq!(response.status(), 202);
    let (_, event_id) = accepted(response).await;

    // Assert: the record is on the standalone cluster, keyed by its user.
    let key = key_of_record(&bootstrap, USER_EVENTS_TOPIC, &event_id).await;
    assert_eq!(key.as_deref(), Some(user.as_str()), "record {event_id}");
    app.stop().await.expect("router stops");
}

#[test]
fn sigterm_stops_the_kafka_cluster_with_exit_0() {
    let (mut cluster, _) = start_cluster();
    let status = cluster.terminate().expect("exited within 10 s of SIGTERM");
    assert!(status.success(), "exit status {status}");
}

#[test]
fn an_unusable_bind_address_exits_2_with_one_line() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let taken = holder.local_addr().expect("addr").to_string();
    for bind in ["not-an-address", taken.as_str()] {
        let mut process = Process::spawn(
            &["kafka-cluster", "--bind", bind],
            Stdio::null(),
            Stdio::piped(),
        );
        let status = process.exit_within(LIMIT).expect("exits at once");
        let mut stderr = String::new();
        process
            .child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut stderr)
            .expect("stderr readable");
        assert_eq!(status.code(), Some(2), "--bind {bind}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "--bind {bind}: {stderr}");
        assert!(stderr.contains(bind), "--bind {bind}: {stderr}");
    }
}
