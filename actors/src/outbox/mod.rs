//! The Kafka half of delivery: the journal's rows are the outbox, and [`OutboxRelay`] publishes
//! them to their routed topics, marking each published only once the broker acknowledged it.
//! A broker outage delays events; it never drops them.
//!
//! Both ends are ports: [`Outbox`] (the router's store; a memory outbox in tests) and
//! [`BrokerSink`] (the router's idempotent Kafka producer; [`MemoryBroker`] in tests).

mod memory;
mod relay;

pub use memory::{MemoryBroker, MemoryOutbox};
pub use relay::{GetRelayStatus, OutboxRelay, RelayNow, RelayStatus};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::event::StoredType;
use crate::journal::LogError;
use chrono::{DateTime, Utc};
use std::future::Future;
use std::pin::Pin;

/// Whether this instance's relay is the one that publishes the shared outbox.
///
/// Several instances read one outbox. Were they all to relay it, each row would reach Kafka
/// once per instance and a user's records could interleave out of order between relays, so
/// the cluster elects one holder (a Redis lease, see the router's `cluster::relay_turn`) and
/// the others stand by. A single instance always holds it.
#[derive(Debug, Clone)]
pub struct RelayTurn(Arc<AtomicBool>);

impl RelayTurn {
    /// The turn of an instance alone: always held.
    pub fn always() -> Self {
        RelayTurn(Arc::new(AtomicBool::new(true)))
    }

    /// A turn to be won: not held until [`RelayTurn::set`] says so.
    pub fn contested() -> Self {
        RelayTurn(Arc::new(AtomicBool::new(false)))
    }

    pub fn holds(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Records whether the turn is held; answers whether that changed.
    pub fn set(&self, held: bool) -> bool {
        self.0.swap(held, Ordering::Relaxed) != held
    }
}

/// A stored event not yet acknowledged by the broker.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    /// The store's row id: commit order, which the relay publishes in.
    pub id: u64,
    pub event_id: String,
    pub user_id: String,
    pub event_type: StoredType,
    /// The envelope's `correlationId`, for the record headers.
    pub correlation_id: Option<String>,
    pub envelope_json: String,
    /// When the event was created (stored with its row): where the publish latency starts.
    pub created_at: DateTime<Utc>,
}

/// Where unpublished events are read from. Blocking; called on the blocking pool.
pub trait Outbox: Send + Sync + 'static {
    /// The oldest unpublished events, in id order, at most `limit`.
    fn pending(&self, limit: usize) -> Result<Vec<OutboxEntry>, LogError>;
    /// Records that these events are on every topic they route to.
    fn mark_published(&self, ids: &[u64]) -> Result<(), LogError>;
    /// How many events wait to be published.
    fn backlog(&self) -> Result<u64, LogError>;
}

/// One Kafka record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    /// The user id: all of a user's events share a partition, which keeps them in order.
    pub key: String,
    pub headers: Vec<(String, String)>,
    pub payload: String,
}

/// Why a batch was not acknowledged. Nothing of a failed batch is marked published; the relay
/// retries it (an idempotent producer keeps the retry from duplicating records).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("broker did not acknowledge: {0}")]
pub struct SinkError(pub String);

pub type SinkFuture = Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send>>;

/// Publishes records to the broker.
pub trait BrokerSink: Send + Sync + 'static {
    /// Sends `records` in order; resolves once every one is acknowledged, or with the first
    /// failure.
    fn publish(&self, records: Vec<Record>) -> SinkFuture;
}
