//! The consumer loop: commit after the handler, dead-letter what cannot be applied, retry what
//! may succeed later, stop when the handler is gone.

use super::support::{
    apply_all, cluster_with, committed, consumer_config, header, publish, read_topic, record, stop,
    text, Reply, ScriptedHandler, PATIENCE, REJOIN_PATIENCE,
};
use crate::kafka::dead_letter::{
    ATTEMPTS_HEADER, CONSUMER_GROUP_HEADER, ERROR_HEADER, SOURCE_OFFSET_HEADER,
    SOURCE_PARTITION_HEADER, SOURCE_TOPIC_HEADER,
};
use crate::kafka::{spawn_consumer, KafkaCluster, StopReason};
use actors::metrics::Metrics;
use actors::outbox::Record;
use rdkafka::message::Message;

// One partition, so "what was committed" is one offset and delivery order is total.
const TOPIC: &str = "user-events";
const DLQ: &str = "dead-letters";
const GROUP: &str = "test-group";

async fn cluster() -> KafkaCluster {
    cluster_with(&[(TOPIC, 1), (DLQ, 1)]).await
}

fn numbered(range: std::ops::Range<usize>) -> Vec<Record> {
    range
        .map(|i| record(TOPIC, "u1", &format!("e{i}")))
        .collect()
}

#[actix::test]
async fn after_a_clean_stop_the_group_sees_nothing_old() {
    let broker = cluster().await;
    publish(&broker, numbered(0..10)).await;
    let (first, seen) = ScriptedHandler::start(apply_all);
    let consumer = spawn_consumer(
        consumer_config(&broker, GROUP, TOPIC, DLQ),
        first.recipient(),
        Metrics::standalone(),
    )
    .expect("consumer");
    seen.wait_until("10 records", |r| r.len() == 10).await;

    assert_eq!(stop(&consumer).await, StopReason::Requested);
    assert!(consumer.is_stopped());
    publish(&broker, numbered(10..11)).await;
    let (second, seen_again) = ScriptedHandler::start(apply_all);
    let consumer = spawn_consumer(
        consumer_config(&broker, GROUP, TOPIC, DLQ),
        second.recipient(),
        Metrics::standalone(),
    )
    .expect("consumer");
    seen_again
        .wait_until_within(REJOIN_PATIENCE, "the new record", |r| !r.is_empty())
        .await;

    assert_eq!(seen_again.payloads(), ["e10"]);
    stop(&consumer).await;
    assert_eq!(
        committed(broker.bootstrap(), GROUP, TOPIC, 0).await,
        Some(11)
    );
}

#[actix::test]
async fn after_a_stop_mid_way_the_group_sees_the_unhandled_records_again() {
    let broker = cluster().await;
    publish(&broker, numbered(0..10)).await;
    // Applies e0..e4, then keeps failing e5: the loop sits in a retry pause when stopped.
    let (first, seen) = ScriptedHandler::start(|r, _| match text(Some(&r.payload)) {
        "e5" => Reply::Transient("database down"),
        _ => Reply::Applied,
    });
    let mut cfg = consumer_config(&broker, GROUP, TOPIC, DLQ);
    cfg.max_attempts = 1_000;
    cfg.retry_backoff = std::time::Duration::from_secs(5);
    let consumer = spawn_consumer(cfg, first.recipient(), Metrics::standalone()).expect("consumer");
    seen.wait_until("e5 tried", |r| r.len() == 6).await;

    stop(&consumer).await;
    let (second, seen_again) = ScriptedHandler::start(apply_all);
    let consumer = spawn_consumer(
        consumer_config(&broker, GROUP, TOPIC, DLQ),
        second.recipient(),
        Metrics::standalone(),
    )
    .expect("consumer");
    seen_again
        .wait_until_within(REJOIN_PATIENCE, "the rest", |r| r.len() >= 5)
        .await;

    assert_eq!(seen_again.payloads(), ["e5", "e6", "e7", "e8", "e9"]);
    stop(&consumer).await;
    assert!(read_topic(broker.bootstrap(), DLQ).await.is_empty());
}

#[actix::test]
async fn an_invalid_record_is_dead_lettered_and_later_records_flow() {
    let broker = cluster().await;
    let mut poison = record(TOPIC, "u7", "not json");
    poison.headers = vec![("correlationId".to_owned(), "c-42".to_owned())];
    publish(
        &broker,
        vec![record(TOPIC, "u1", "e0"), poison, record(TOPIC, "u1", "e2")],
    )
    .await;
    let (handler, seen) = ScriptedHandler::start(|r, _| match text(Some(&r.payload)) {
        "not json" => Reply::Invalid("not an event envelope"),
        _ => Reply::Applied,
    });

    let consumer = spawn_consumer(
        consumer_config(&broker, GROUP, TOPIC, DLQ),
        handler.recipient(),
        Metrics::standalone(),
    )
    .expect("consumer");
    seen.wait_until("all three", |r| r.len() == 3).await;
    stop(&consumer).await;

    assert_eq!(
        seen.payloads(),
        ["e0", "not json", "e2"],
        "tried once, not retried"
    );
    let dead = read_topic(broker.bootstrap(), DLQ).await;
    assert_eq!(dead.len(), 1);
    let letter = &dead[0];
    assert_eq!(text(letter.payload()), "not json");
    assert_eq!(text(letter.key()), "u7");
    assert_eq!(header(letter, "correlationId"), Some("c-42"));
    let error = header(letter, ERROR_HEADER).expect("error header");
    assert!(error.contains("not an event envelope"), "{error}");
    assert_eq!(header(letter, SOURCE_TOPIC_HEADER), Some(TOPIC));
    assert_eq!(header(letter, SOURCE_PARTITION_HEADER), Some("0"));
    assert_eq!(header(letter, SOURCE_OFFSET_HEADER), Some("1"));
    assert_eq!(header(letter, CONSUMER_GROUP_HEADER), Some(GROUP));
    assert_eq!(header(letter, ATTEMPTS_HEADER), Some("1"));
    assert_eq!(
        committed(broker.bootstrap(), GROUP, TOPIC, 0).await,
        Some(3)
    );
}

#[actix::test]
async fn a_transient_failure_is_retried_then_dead_lettered_after_max_attempts() {
    let broker = cluster().await;
    publish(&broker, numbered(0..2)).await;
    let (handler, seen) = ScriptedHandler::start(|r, _| match text(Some(&r.payload)) {
        "e0" => Reply::Transient("database down"),
        _ => Reply::Applied,
    });
    let mut cfg = consumer_config(&broker, GROUP, TOPIC, DLQ);
    cfg.max_attempts = 3;

    let consumer =
        spawn_consumer(cfg, handler.recipient(), Metrics::standalone()).expect("consumer");
    seen.wait_until("e1 after e0", |r| r.len() == 4).await;
    stop(&consumer).await;

    assert_eq!(seen.payloads(), ["e0", "e0", "e0", "e1"]);
    let dead = read_topic(broker.bootstrap(), DLQ).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(text(dead[0].payload()), "e0");
    let error = header(&dead[0], ERROR_HEADER).expect("error header");
    assert!(error.contains("database down"), "{error}");
    assert_eq!(header(&dead[0], ATTEMPTS_HEADER), Some("3"));
    assert_eq!(
        committed(broker.bootstrap(), GROUP, TOPIC, 0).await,
        Some(2)
    );
}

#[actix::test]
async fn a_retried_success_is_committed_and_not_dead_lettered() {
    let broker = cluster().await;
    publish(&broker, numbered(0..1)).await;
    let (handler, seen) = ScriptedHandler::start(|_, tries| match tries {
        1 | 2 => Reply::Transient("database down"),
        _ => Reply::Applied,
    });

    let consumer = spawn_consumer(
        consumer_config(&broker, GROUP, TOPIC, DLQ),
        handler.recipient(),
        Metrics::standalone(),
    )
    .expect("consumer");
    seen.wait_until("third try", |r| r.len() == 3).await;
    stop(&consumer).await;

    assert_eq!(
        committed(broker.bootstrap(), GROUP, TOPIC, 0).await,
        Some(1)
    );
    assert!(read_topic(broker.bootstrap(), DLQ).await.is_empty());
}

#[actix::test]
async fn the_loop_stops_without_committing_when_the_handler_is_gone() {
    let broker = cluster().await;
    publish(&broker, numbered(0..3)).await;
    let (handler, seen) = ScriptedHandler::start(|r, _| match text(Some(&r.payload)) {
        "e1" => Reply::Die,
        _ => Reply::Applied,
    });

    let consumer = spawn_consumer(
        consumer_config(&broker, GROUP, TOPIC, DLQ),
        handler.recipient(),
        Metrics::standalone(),
    )
    .expect("consumer");
    let reason = tokio::time::timeout(PATIENCE, consumer.stopped())
        .await
        .expect("the loop stops by itself");

    assert!(matches!(reason, StopReason::HandlerGone(_)), "{reason:?}");
    assert_eq!(seen.payloads(), ["e0", "e1"]);
    assert_eq!(
        committed(broker.bootstrap(), GROUP, TOPIC, 0).await,
        Some(1)
    );
}

#[actix::test]
async fn records_ready_together_go_over_in_batches_and_a_failure_mid_batch_retries_from_there() {
    let broker = cluster().await;
    publish(&broker, numbered(0..200)).await;
    // e150 fails once; the records before it in its batch must not be handed over again.
    let (handler, seen) = ScriptedHandler::start(|r, tries| match text(Some(&r.payload)) {
        "e150" if tries == 1 => Reply::Transient("database down"),
        _ => Reply::Applied,
    });
    let mut cfg = consumer_config(&broker, GROUP, TOPIC, DLQ);
    cfg.retry_backoff = std::time::Duration::from_millis(50);

    let consumer =
        spawn_consumer(cfg, handler.recipient(), Metrics::standalone()).expect("consumer");
    seen.wait_until("all 200 and the retry", |r| r.len() == 201)
        .await;
    stop(&consumer).await;

    let mut expected: Vec<String> = (0..=150).map(|i| format!("e{i}")).collect();
    expected.extend((150..200).map(|i| format!("e{i}")));
    assert_eq!(
        seen.payloads(),
        expected,
        "in order, e150 twice, nothing else again"
    );
    let sizes = seen.batch_sizes();
    assert!(
        sizes.iter().any(|&n| n > 1),
        "200 waiting records went over one at a time: {sizes:?}"
    );
    assert!(sizes.iter().all(|&n| n <= 256), "{sizes:?}");
    assert!(read_topic(broker.bootstrap(), DLQ).await.is_empty());
    assert_eq!(
        committed(broker.bootstrap(), GROUP, TOPIC, 0).await,
        Some(200)
    );
}
