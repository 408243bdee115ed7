//! The outbox relay's way out: an idempotent producer behind the actors' [`BrokerSink`] port,
//! and the broker readiness probe.

use super::{common_config, off_thread, KafkaError};
use actors::outbox::{BrokerSink, Record, SinkError, SinkFuture};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use std::collections::VecDeque;
use std::time::Duration;

/// How long a producer may wait to fill a batch. Small: the relay already batches, and the
/// publish latency budget is tens of milliseconds.
const LINGER_MS: &str = "2";

/// Publishes records to Kafka with `enable.idempotence=true` and `acks=all`. Cheap to clone
/// (clones share one librdkafka producer and its threads).
#[derive(Clone)]
pub struct KafkaSink {
    producer: FutureProducer,
}

/// The producer settings the delivery guarantees (docs/DELIVERY.md) rest on.
///
/// * `enable.idempotence=true` + `acks=all`: librdkafka numbers every batch, retries it until
///   the in-sync replicas have it, and the broker drops a retried batch it already holds, so an
///   internal retry never duplicates or reorders a record.
/// * `message.timeout.ms=0` (infinite): a record, once handed to librdkafka, is retried until
///   the broker acknowledges it. A broker outage only delays the batch; it can never fail half a
///   batch after the other half landed, which would make the relay resend (and so duplicate)
///   the landed half. The only failures left are permanent ones (record too large, topic
///   invalid, not authorised), which a resend would not fix either.
/// * `linger.ms` low: the relay's batches are already formed; waiting longer buys nothing.
pub fn producer_config(bootstrap: &str, client_id: &str) -> ClientConfig {
    let mut config = common_config(bootstrap, client_id);
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "0")
        .set("linger.ms", LINGER_MS);
    config
}

impl KafkaSink {
    /// Creates the producer; no broker is contacted until the first send.
    pub fn new(bootstrap: &str, client_id: &str) -> Result<KafkaSink, KafkaError> {
        let producer = producer_config(bootstrap, client_id).create()?;
        Ok(KafkaSink { producer })
    }

    pub(super) fn producer(&self) -> &FutureProducer {
        &self.producer
    }

    /// Sends `records` in order and waits for every acknowledgement; the first failure (in
    /// record order) is returned once nothing of the batch is still in flight.
    pub async fn send_all(&self, records: &[Record]) -> Result<(), SinkError> {
        let mut in_flight: VecDeque<(usize, DeliveryFuture)> = VecDeque::new();
        let mut first_error: Option<SinkError> = None;
        let mut refused: Option<SinkError> = None;
        for (index, record) in records.iter().enumerate() {
            let mut future_record = FutureRecord::to(&record.topic)
                .key(record.key.as_str())
                .payload(record.payload.as_str())
                .headers(kafka_headers(&record.headers));
            let delivery = loop {
                match self.producer.send_result(future_record) {
                    Ok(delivery) => break Some(delivery),
                    Err((e, returned)) if is_queue_full(&e) => {
                        // librdkafka's local queue is full: wait for our oldest record to be
                        // acknowledged (or, if none is ours, briefly) and try again.
                        future_record = returned;
                        match in_flight.pop_front() {
                            Some(oldest) => settle(oldest, records, &mut first_error).await,
                            None => tokio::time::sleep(Duration::from_millis(10)).await,
                        }
                    }
                    Err((e, _)) => {
                        refused = Some(enqueue_error(record, &e));
                        break None;
                    }
                }
            };
            match delivery {
                Some(delivery) => in_flight.push_back((index, delivery)),
                // The rest would fail the batch anyway; the relay retries it as a whole.
                None => break,
            }
        }
        while let Some(oldest) = in_flight.pop_front() {
            settle(oldest, records, &mut first_error).await;
        }
        if let Some(error) = refused {
            keep_first(&mut first_error, error);
        }
        first_error.map_or(Ok(()), Err)
    }

    /// How many brokers the cluster reports, asked through this producer's connections.
    pub async fn broker_count(&self, timeout: Duration) -> Result<usize, String> {
        let producer = self.producer.clone();
        off_thread("kafka-health", move || {
            count_brokers(producer.client().fetch_metadata(None, timeout))
        })
        .await
    }
}

impl BrokerSink for KafkaSink {
    fn publish(&self, records: Vec<Record>) -> SinkFuture {
        let sink = self.clone();
        Box::pin(async move { sink.send_all(&records).await })
    }
}

/// Readiness of the broker: how many brokers the cluster reports within `timeout`. The metadata
/// fetch blocks, so it runs on a short-lived thread, never on the async caller's thread.
pub async fn broker_health(bootstrap: &str, timeout: Duration) -> Result<usize, String> {
    let config = common_config(bootstrap, "nft-event-router-health");
    off_thread("kafka-health", move || {
        let client: BaseProducer = config.create().map_err(|e| e.to_string())?;
        count_brokers(client.client().fetch_metadata(None, timeout))
    })
    .await
}

fn count_brokers(
    metadata: Result<rdkafka::metadata::Metadata, rdkafka::error::KafkaError>,
) -> Result<usize, String> {
    let metadata = metadata.map_err(|e| format!("broker metadata: {e}"))?;
    match metadata.brokers().len() {
        0 => Err("the cluster reports no brokers".to_owned()),
        n => Ok(n),
    }
}

/// Record headers as Kafka headers, in order.
pub(super) fn kafka_headers(headers: &[(String, String)]) -> OwnedHeaders {
    headers.iter().fold(
        OwnedHeaders::new_with_capacity(headers.len()),
        |acc, (k, v)| {
            acc.insert(Header {
                key: k,
                value: Some(v.as_str()),
            })
        },
    )
}

async fn settle(
    (index, delivery): (usize, DeliveryFuture),
    records: &[Record],
    first_error: &mut Option<SinkError>,
) {
    let record = &records[index];
    let error = match delivery.await {
        Ok(Ok(_)) => return,
        Ok(Err((e, _))) => SinkError(format!("{}: {e}", record.topic)),
        // Cannot happen while we hold a producer clone; reported rather than trusted.
        Err(_) => SinkError(format!("{}: producer closed before delivery", record.topic)),
    };
    keep_first(first_error, error);
}

fn keep_first(first: &mut Option<SinkError>, error: SinkError) {
    log::warn!("kafka publish failed: {error}");
    first.get_or_insert(error);
}

fn enqueue_error(record: &Record, e: &rdkafka::error::KafkaError) -> SinkError {
    SinkError(format!("{}: {e}", record.topic))
}

fn is_queue_full(e: &rdkafka::error::KafkaError) -> bool {
    e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull)
}
