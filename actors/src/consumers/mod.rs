//! The consumer side of the Kafka path: four actors that turn the routed topics into tables
//! and counters, each in its own consumer group.
//!
//! The broker loop lives at the edge (the router's Kafka adapter): it hands each record to a
//! consumer actor as [`Consume`], commits the record's offset only after the actor answered
//! `Ok`, retries a `Transient` failure a bounded number of times, and sends a record that keeps
//! failing (or is `Invalid`) to the dead-letter topic without holding up its partition. The
//! actors make every write idempotent by `eventId`, so a redelivered record changes nothing.
//!
//! * [`AnalyticsConsumer`]: per event type and minute counts, and the `nft:{eventType}:count`
//!   counters in the cache.
//! * [`NotificationConsumer`]: one notification per event for its user.
//! * [`AuditConsumer`]: the append-only audit log.
//! * [`OperationsConsumer`]: the admin operations feed.

mod analytics;
mod audit;
mod memory;
mod notification;
mod operations;
mod ports;

pub use analytics::{AnalyticsConsumer, SyncCounters};
pub use audit::AuditConsumer;
pub use memory::{MemoryConsumerStore, MemoryFeedLog};
pub use notification::{notification_for, NotificationConsumer};
pub use operations::OperationsConsumer;
pub use ports::{
    counter_key, AnalyticsStore, AuditStore, Cache, CacheError, CacheFuture, CountedEvent,
    MemoryCache, NewAuditEntry, NewNotification, NotificationStore, OperationsStore, Priority,
};

use crate::event::Envelope;
use actix::prelude::*;

pub const ANALYTICS_GROUP: &str = "nft-analytics-group";
pub const NOTIFICATIONS_GROUP: &str = "nft-notifications-group";
pub const AUDIT_GROUP: &str = "nft-audit-group";
/// One group across all router instances: each record is stored in the feed once.
pub const OPERATIONS_GROUP: &str = "nft-operations-feed-group";

/// A record as read from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

impl ConsumedRecord {
    /// The first header called `name` (the relay sets `eventType`, `eventId`,
    /// `correlationId`).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What applying a record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The record's effects were written.
    Applied,
    /// The record's event had already been applied; nothing changed.
    Duplicate,
}

impl Outcome {
    /// What an idempotent write that answers "did I change anything?" amounts to.
    pub fn of(applied: bool) -> Outcome {
        if applied {
            Outcome::Applied
        } else {
            Outcome::Duplicate
        }
    }
}

/// Why a record was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsumeError {
    /// The record can never be applied (not an event envelope, unknown type, bad payload).
    /// Retrying is pointless: it goes to the dead-letter topic at once.
    #[error("invalid record: {0}")]
    Invalid(String),
    /// A dependency failed (database down); the same record may succeed later.
    #[error("transient failure: {0}")]
    Transient(String),
}

impl From<crate::journal::LogError> for ConsumeError {
    fn from(e: crate::journal::LogError) -> Self {
        ConsumeError::Transient(e.to_string())
    }
}

/// Apply one record.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Outcome, ConsumeError>")]
pub struct Consume(pub ConsumedRecord);

/// Apply records in order: what the broker loop sends when several records are ready at once,
/// so one batch costs one hand-over and, where the store allows it, one transaction.
///
/// The answers are in record order, one per record, and end after the first `Transient`
/// failure: the records without an answer were not applied, and the loop sends them again
/// (after its pause) from there. An `Invalid` answer does not end the list, since what follows
/// an unreadable record can still be applied.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Answers")]
pub struct ConsumeBatch(pub Vec<ConsumedRecord>);

/// A batch's answers, in record order (see [`ConsumeBatch`]).
pub type Answers = Vec<Result<Outcome, ConsumeError>>;

/// The answers to one batch, cut after the first transient failure (the [`ConsumeBatch`]
/// contract) for consumers that apply records one at a time.
fn answer_each(
    records: &[ConsumedRecord],
    mut apply: impl FnMut(&ConsumedRecord) -> Result<Outcome, ConsumeError>,
) -> Answers {
    let mut answers = Vec::with_capacity(records.len());
    for record in records {
        let answer = apply(record);
        let transient = matches!(answer, Err(ConsumeError::Transient(_)));
        answers.push(answer);
        if transient {
            break;
        }
    }
    answers
}

/// [`answer_each`] on the blocking pool, off the actors' thread: one task per batch rather
/// than one per record.
async fn answer_each_blocking(
    records: Vec<ConsumedRecord>,
    apply: impl FnMut(&ConsumedRecord) -> Result<Outcome, ConsumeError> + Send + 'static,
) -> Answers {
    crate::journal::blocking(move || Ok(answer_each(&records, apply)))
        .await
        .unwrap_or_else(|e| vec![Err(e.into())])
}

/// The first answer of a one-record batch, for the [`Consume`] handlers.
fn first_answer(answers: Answers) -> Result<Outcome, ConsumeError> {
    answers.into_iter().next().unwrap_or_else(|| {
        Err(ConsumeError::Transient(
            "the consumer answered no record".to_owned(),
        ))
    })
}

/// Parses a record's payload as an event envelope, typing its data.
pub fn parse_record(record: &ConsumedRecord) -> Result<Envelope, ConsumeError> {
    Envelope::from_json(&record.payload).map_err(|e| ConsumeError::Invalid(e.to_string()))
}
