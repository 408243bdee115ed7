//! What the consumer actors write to. The router implements these with its database (and Redis
//! or the in-process cache); tests use the memory versions in the testkit. Every write is
//! idempotent by `event_id` and reports whether it changed anything.

use crate::journal::LogError;
use chrono::{DateTime, Utc};

/// One event for [`AnalyticsStore::count_events`] to count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountedEvent {
    pub event_id: String,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
}

/// Per event type and minute counts.
pub trait AnalyticsStore: Send + Sync + 'static {
    /// Counts the event in its `(event_type, minute of occurred_at)` bucket unless this event
    /// id was counted before; answers the type's new total if it was counted now, `None` if it
    /// had been counted before. One transaction.
    fn count_event(
        &self,
        event_id: &str,
        event_type: &str,
        occurred_at: DateTime<Utc>,
    ) -> Result<Option<u64>, LogError>;

    /// Counts `events` in order, as [`count_event`](AnalyticsStore::count_event) counts one.
    /// The answers end at the first failure: the events after it were not counted. A store
    /// that can counts them all in one transaction, and then answers each counted event with
    /// its type's total after the whole batch.
    fn count_events(&self, events: &[CountedEvent]) -> Vec<Result<Option<u64>, LogError>> {
        let mut answers = Vec::with_capacity(events.len());
        for event in events {
            let answer = self.count_event(&event.event_id, &event.event_type, event.occurred_at);
            let failed = answer.is_err();
            answers.push(answer);
            if failed {
                break;
            }
        }
        answers
    }

    /// Total count per event type, over all minutes.
    fn totals(&self) -> Result<Vec<(String, u64)>, LogError>;
}

/// How urgent a notification is, derived from its event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Priority {
    Low,
    Normal,
    High,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
        }
    }
}

/// A notification to store for its user.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    pub event_id: String,
    pub user_id: String,
    pub event_type: String,
    pub title: String,
    pub message: String,
    pub priority: Priority,
    /// The event's `data`, as JSON.
    pub data_json: String,
    pub created_at: DateTime<Utc>,
}

pub trait NotificationStore: Send + Sync + 'static {
    /// Inserts unless a notification for this event id exists; answers whether it inserted.
    fn insert_notification(&self, n: &NewNotification) -> Result<bool, LogError>;
}

/// One audit log row: what happened, to whom, when, and the envelope verbatim.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    pub event_id: String,
    pub event_type: String,
    pub user_id: String,
    pub source: String,
    pub correlation_id: Option<String>,
    pub envelope_json: String,
    /// When the event happened (its envelope timestamp).
    pub occurred_at: DateTime<Utc>,
    /// When the audit consumer recorded it.
    pub recorded_at: DateTime<Utc>,
}

pub trait AuditStore: Send + Sync + 'static {
    /// Appends unless an entry for this event id exists; answers whether it appended.
    fn append_audit(&self, entry: &NewAuditEntry) -> Result<bool, LogError>;
}

/// Where the operations consumer stores the admin feed.
pub trait OperationsStore: Send + Sync + 'static {
    /// Stores the record unless its event id is stored; answers whether it stored it.
    fn record_operation(
        &self,
        event_id: &str,
        event_type: &str,
        user_id: &str,
        envelope_json: &str,
    ) -> Result<bool, LogError>;
}

/// Why the cache did not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cache unavailable: {0}")]
pub struct CacheError(pub String);

pub type CacheFuture<T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, CacheError>> + Send>>;

/// The cache (Redis, or in-process): event counters and cached documents such as portfolios.
/// Counters are set to absolute values computed from the database, so setting one twice, or
/// late, never double counts; documents expire and are dropped by whatever changes them.
pub trait Cache: Send + Sync + 'static {
    /// Sets each `(key, value)`.
    fn set_counters(&self, counters: Vec<(String, u64)>) -> CacheFuture<()>;
    fn get_counter(&self, key: String) -> CacheFuture<Option<u64>>;
    /// A round trip, for readiness.
    fn ping(&self) -> CacheFuture<()>;
    /// A cached document (JSON text), unless absent or expired.
    fn get_document(&self, key: String) -> CacheFuture<Option<String>>;
    /// Caches `value` under `key` for `ttl`.
    fn put_document(&self, key: String, value: String, ttl: std::time::Duration)
        -> CacheFuture<()>;
    /// Drops `key`; absent is fine.
    fn remove(&self, key: String) -> CacheFuture<()>;
}

/// The in-process cache used when no Redis is configured (and by tests, where it can be
/// switched off like an unreachable Redis).
#[derive(Default)]
pub struct MemoryCache {
    values: std::sync::Mutex<std::collections::HashMap<String, u64>>,
    /// Documents with their expiry.
    documents: std::sync::Mutex<std::collections::HashMap<String, (String, std::time::Instant)>>,
    down: std::sync::atomic::AtomicBool,
}

impl MemoryCache {
    pub fn new() -> Self {
        MemoryCache::default()
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }

    fn check(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, std::collections::HashMap<String, u64>>, CacheError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(CacheError("memory cache is switched off".into()));
        }
        self.values
            .lock()
            .map_err(|_| CacheError("memory cache lock poisoned".into()))
    }
}

impl MemoryCache {
    #[allow(clippy::type_complexity)]
    fn documents(
        &self,
    ) -> Result<
        std::sync::MutexGuard<'_, std::collections::HashMap<String, (String, std::time::Instant)>>,
        CacheError,
    > {
        drop(self.check()?);
        self.documents
            .lock()
            .map_err(|_| CacheError("memory cache lock poisoned".into()))
    }
}

impl Cache for MemoryCache {
    fn set_counters(&self, counters: Vec<(String, u64)>) -> CacheFuture<()> {
        let result = self.check().map(|mut values| values.extend(counters));
        Box::pin(std::future::ready(result))
    }

    fn get_counter(&self, key: String) -> CacheFuture<Option<u64>> {
        let result = self.check().map(|values| values.get(&key).copied());
        Box::pin(std::future::ready(result))
    }

    fn ping(&self) -> CacheFuture<()> {
        let result = self.check().map(|_| ());
        Box::pin(std::future::ready(result))
    }

    fn get_document(&self, key: String) -> CacheFuture<Option<String>> {
        let result = self.documents().map(|mut docs| match docs.get(&key) {
            Some((value, expires)) if *expires > std::time::Instant::now() => Some(value.clone()),
            Some(_) => {
                docs.remove(&key);
                None
            }
            None => None,
        });
        Box::pin(std::future::ready(result))
    }

    fn put_document(
        &self,
        key: String,
        value: String,
        ttl: std::time::Duration,
    ) -> CacheFuture<()> {
        let result = self.documents().map(|mut docs| {
            docs.insert(key, (value, std::time::Instant::now() + ttl));
        });
        Box::pin(std::future::ready(result))
    }

    fn remove(&self, key: String) -> CacheFuture<()> {
        let result = self.documents().map(|mut docs| {
            docs.remove(&key);
        });
        Box::pin(std::future::ready(result))
    }
}

/// The cache key of an event type's counter: `nft:{event_type}:count`.
pub fn counter_key(event_type: &str) -> String {
    format!("nft:{event_type}:count")
}
