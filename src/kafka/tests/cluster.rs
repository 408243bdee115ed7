//! The broker handle, topic creation and the readiness probe.

use super::support::cluster_with;
use crate::kafka::{
    broker_health, ensure_topics, Brokers, ConsumerHandle, KafkaCluster, KafkaError, KafkaSink,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use std::time::Duration;

fn partitions(bootstrap: &str, topic: &str) -> usize {
    let client: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("client");
    let metadata = client
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .expect("metadata");
    metadata.topics()[0].partitions().len()
}

#[test]
fn the_handles_can_live_in_shared_state() {
    fn shared<T: Send + Sync + 'static>() {}
    shared::<KafkaCluster>();
    shared::<KafkaSink>();
    shared::<ConsumerHandle>();
}

#[actix::test]
async fn ensure_topics_creates_with_partitions_and_is_idempotent() {
    let broker = cluster_with(&[("alpha", 3), ("beta", 5)]).await;

    let again = vec![("alpha".to_owned(), 3), ("beta".to_owned(), 5)];
    ensure_topics(&broker, &again)
        .await
        .expect("second call succeeds");

    assert_eq!(partitions(broker.bootstrap(), "alpha"), 3);
    assert_eq!(partitions(broker.bootstrap(), "beta"), 5);
}

#[actix::test]
async fn a_real_bootstrap_list_is_kept_and_has_no_mock() {
    let broker = KafkaCluster::start(&Brokers::Bootstrap("kafka-1:9092,kafka-2:9092".into()))
        .expect("no connection is made");

    assert!(!broker.is_embedded());
    assert_eq!(broker.bootstrap(), "kafka-1:9092,kafka-2:9092");
    assert!(matches!(
        broker.with_mock(|_| ()),
        Err(KafkaError::NotEmbedded(_))
    ));
}

#[actix::test]
async fn health_counts_brokers_and_fails_while_they_are_down() {
    let broker = cluster_with(&[]).await;
    assert!(broker.is_embedded());
    let timeout = Duration::from_secs(2);

    assert_eq!(broker_health(broker.bootstrap(), timeout).await, Ok(3));

    broker
        .with_mock(|m| m.broker_down(-1))
        .expect("mock")
        .expect("down");
    let down = broker_health(broker.bootstrap(), timeout).await;
    broker
        .with_mock(|m| m.broker_up(-1))
        .expect("mock")
        .expect("up");

    assert!(down.is_err(), "{down:?}");
    assert_eq!(broker_health(broker.bootstrap(), timeout).await, Ok(3));
}

#[actix::test]
async fn health_of_an_unreachable_cluster_is_an_error() {
    let health = broker_health("127.0.0.1:1", Duration::from_millis(500)).await;

    assert!(health.is_err(), "{health:?}");
}
