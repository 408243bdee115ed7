//! The Kafka adapter: the edge between librdkafka (through `rdkafka`) and the actors' ports.
//! The actors never see rdkafka types; they see [`actors::outbox::BrokerSink`] on the way out and
//! [`actors::consumers::Consume`] on the way in.
//!
//! # Layout
//!
//! * [`cluster`]: [`KafkaCluster`], the cluster in use: a real bootstrap list, or `"embedded"`, an
//!   in-process librdkafka mock cluster on loopback (plus its fault injection for tests).
//! * [`topics`]: [`ensure_topics`], idempotent topic creation at start-up.
//! * [`standalone`]: [`standalone::Forwarder`], the fixed bootstrap address in front of an
//!   embedded cluster run on its own (`kafka-cluster`), so several instances can share it.
//! * [`producer`]: [`KafkaSink`], the idempotent producer behind `BrokerSink`, and
//!   [`broker_health`] for readiness.
//! * [`dead_letter`]: [`DeadLetter`], a record that cannot be applied and its headers.
//! * [`consumer`]: [`spawn_consumer`], [`ConsumerConfig`], [`ConsumerHandle`]: starting and
//!   stopping one consumer-group member that feeds a consumer actor.
//! * `runner`: that member's loop: hand over, commit after the answer, retry, dead-letter.
//! * `lag`: that member's consumer lag per partition, for the metrics.
//! * `error`: [`KafkaError`].

pub mod cluster;
pub mod consumer;
pub mod dead_letter;
pub mod error;
mod lag;
pub mod producer;
mod runner;
pub mod standalone;
pub mod topics;

#[cfg(test)]
mod tests;

pub use cluster::{Brokers, KafkaCluster, Mock, EMBEDDED};
pub use consumer::{spawn_consumer, ConsumerConfig, ConsumerHandle, StopReason};
pub use dead_letter::DeadLetter;
pub use error::KafkaError;
pub use producer::{broker_health, KafkaSink};
pub use topics::ensure_topics;

use rdkafka::ClientConfig;

/// Settings every client of the router shares.
///
/// `reconnect.backoff.max.ms` is lowered from librdkafka's 10 s so that, once a broker is back
/// after an outage, the outbox and the consumers reconnect within about a second instead of
/// idling for up to ten.
fn common_config(bootstrap: &str, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("client.id", client_id)
        .set("reconnect.backoff.max.ms", "1000");
    config
}

/// Runs blocking librdkafka calls (metadata fetches) on a short-lived thread and awaits the
/// result, so no async executor thread is blocked. Works under any executor.
async fn off_thread<T, F>(name: &str, f: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, String> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    rx.await
        .map_err(|_| "the worker thread panicked".to_owned())?
}
