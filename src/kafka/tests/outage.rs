//! A broker outage in the middle of publishing delays records; it neither loses, duplicates
//! nor reorders them.

use super::support::{cluster_with, read_topic, record};
use crate::kafka::{KafkaCluster, KafkaSink};
use actors::outbox::Record;
use rdkafka::message::Message;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const TOPIC: &str = "user-events";
const RECORDS: usize = 500;
const KEYS: [&str; 4] = ["u1", "u2", "u3", "u4"];

/// Publishes 500 records in batches of 10 on a task; `acked` counts acknowledged records.
fn start_publishing(broker: &KafkaCluster, acked: Arc<AtomicUsize>) -> tokio::task::JoinHandle<()> {
    let sink = KafkaSink::new(broker.bootstrap(), "test-outage").expect("producer");
    let records: Vec<Record> = (0..RECORDS)
        .map(|i| record(TOPIC, KEYS[i % KEYS.len()], &i.to_string()))
        .collect();
    actix::spawn(async move {
        for batch in records.chunks(10) {
            sink.send_all(batch)
                .await
                .expect("a batch never fails, it waits");
            acked.fetch_add(batch.len(), Ordering::SeqCst);
        }
    })
}

async fn wait_for_acks(acked: &AtomicUsize, at_least: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while acked.load(Ordering::SeqCst) < at_least {
        assert!(std::time::Instant::now() < deadline, "stuck at {acked:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Every record exactly once (the topic holds exactly 500), each key's records in send order.
async fn assert_exactly_once_in_order(broker: &KafkaCluster) {
    let messages = read_topic(broker.bootstrap(), TOPIC).await;
    assert_eq!(messages.len(), RECORDS, "no record lost or duplicated");
    let mut by_key: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
    for m in &messages {
        let payload = std::str::from_utf8(m.payload().expect("payload")).expect("utf-8");
        let sequence: usize = payload.parse().expect("number");
        by_key
            .entry(m.key().expect("key").to_vec())
            .or_default()
            .push(sequence);
    }
    for (k, key) in KEYS.iter().enumerate() {
        let sent: Vec<usize> = (k..RECORDS).step_by(KEYS.len()).collect();
        assert_eq!(by_key[key.as_bytes()], sent, "{key}");
    }
}

/// Makes every broker answer Produce with the retriable NOT_ENOUGH_REPLICAS (nothing is
/// appended) until [`accept_writes`].
fn refuse_writes(broker: &KafkaCluster) {
    let refusals = vec![RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 100_000];
    broker
        .with_mock(move |m| m.request_errors(RDKafkaApiKey::Produce, &refusals))
        .expect("mock");
}

fn accept_writes(broker: &KafkaCluster) {
    broker
        .with_mock(|m| m.clear_request_errors(RDKafkaApiKey::Produce))
        .expect("mock");
}

#[actix::test]
async fn brokers_refusing_writes_for_a_second_delay_but_never_drop_or_duplicate() {
    let broker = cluster_with(&[(TOPIC, 5)]).await;
    let acked = Arc::new(AtomicUsize::new(0));
    let publishing = start_publishing(&broker, acked.clone());
    wait_for_acks(&acked, 50).await;

    refuse_writes(&broker);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let during_outage = acked.load(Ordering::SeqCst);
    accept_writes(&broker);
    publishing.await.expect("publisher finished");

    assert!(
        during_outage < RECORDS,
        "records were waiting during the outage"
    );
    assert_eq!(acked.load(Ordering::SeqCst), RECORDS);
    assert_exactly_once_in_order(&broker).await;
}

/// All three brokers go away for a second (connections cut, new ones refused) while records
/// are being sent.
///
/// The brokers refuse writes for 100 ms first. The reason is a limit of librdkafka's mock
/// broker: it de-duplicates an idempotent producer's retried batch only for transactional
/// producers, so a batch appended just before the cut, whose acknowledgement was lost with the
/// connection, would be stored twice, where a real broker would recognise the retry by its
/// sequence number and drop it. Refusing first means no appended batch is still unacknowledged
/// when the connections drop.
#[actix::test]
async fn all_brokers_down_for_a_second_delays_but_never_drops_or_duplicates() {
    let broker = cluster_with(&[(TOPIC, 5)]).await;
    let acked = Arc::new(AtomicUsize::new(0));
    let publishing = start_publishing(&broker, acked.clone());
    wait_for_acks(&acked, 50).await;

    refuse_writes(&broker);
    tokio::time::sleep(Duration::from_millis(100)).await;
    broker
        .with_mock(|m| m.broker_down(-1))
        .expect("mock")
        .expect("down");
    tokio::time::sleep(Duration::from_secs(1)).await;
    broker
        .with_mock(|m| m.broker_up(-1))
        .expect("mock")
        .expect("up");
    accept_writes(&broker);
    publishing.await.expect("publisher finished");

    assert_eq!(acked.load(Ordering::SeqCst), RECORDS);
    assert_exactly_once_in_order(&broker).await;
}
