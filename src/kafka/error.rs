//! The one error type of the Kafka adapter.

use rdkafka::error::KafkaError as RdKafkaError;

/// Why the Kafka adapter could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// librdkafka refused a configuration or failed an operation.
    #[error("kafka client error: {0}")]
    Client(#[from] RdKafkaError),
    /// A topic could not be created (the broker's reason is kept).
    #[error("cannot create topic `{topic}`: {reason}")]
    Topic { topic: String, reason: String },
    /// The embedded cluster's owner thread is gone, so the mock cluster no longer exists.
    #[error("the embedded kafka cluster has stopped")]
    EmbeddedStopped,
    /// The operation needs the embedded cluster but the broker is a real one.
    #[error("not an embedded cluster (bootstrap servers: {0})")]
    NotEmbedded(String),
    /// A consumer configuration that cannot work (no topics, zero attempts, ...).
    #[error("invalid consumer configuration: {0}")]
    Config(String),
    /// A blocking librdkafka call could not be run on its own thread (spawn failed or panicked).
    #[error("kafka worker thread: {0}")]
    Worker(String),
    /// The standalone cluster's fixed bootstrap address cannot be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The embedded cluster's bootstrap list names no address a forwarder can connect to.
    #[error("the embedded cluster reports no usable listener (bootstrap servers: {0})")]
    NoListener(String),
    /// An OS thread or runtime for the adapter could not be started.
    #[error("cannot start {what}: {source}")]
    Spawn {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}
