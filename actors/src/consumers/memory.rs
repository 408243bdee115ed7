//! In-memory consumer stores for tests, with the same idempotence rules as the database, and a
//! switch that makes them fail like an unreachable database.

use super::{
    AnalyticsStore, AuditStore, NewAuditEntry, NewNotification, NotificationStore, OperationsStore,
};
use crate::domain::{ChangeError, StateChange};
use crate::event::StoredType;
use crate::journal::{EventLog, LogError, NewEvent, StoredEvent};
use chrono::{DateTime, DurationRound, Utc};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Tables {
    counted: HashSet<String>,
    minutes: BTreeMap<(String, DateTime<Utc>), u64>,
    totals: BTreeMap<String, u64>,
    notifications: Vec<NewNotification>,
    audit: Vec<NewAuditEntry>,
    /// The operations feed, in the order entries were stored (seq = index + 1).
    feed: Vec<StoredEvent>,
    feed_ids: HashSet<String>,
}

#[derive(Default)]
pub struct MemoryConsumerStore {
    tables: Mutex<Tables>,
    down: AtomicBool,
}

impl MemoryConsumerStore {
    pub fn new() -> Self {
        MemoryConsumerStore::default()
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Tables>, LogError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(LogError::Unavailable("memory store is switched off".into()));
        }
        self.tables
            .lock()
            .map_err(|_| LogError::Failed("memory store lock poisoned".into()))
    }

    pub fn notifications(&self) -> Vec<NewNotification> {
        self.lock()
            .map(|t| t.notifications.clone())
            .unwrap_or_default()
    }

    pub fn audit(&self) -> Vec<NewAuditEntry> {
        self.lock().map(|t| t.audit.clone()).unwrap_or_default()
    }

    pub fn minute_counts(&self) -> Vec<(String, DateTime<Utc>, u64)> {
        self.lock()
            .map(|t| {
                t.minutes
                    .iter()
                    .map(|((k, m), n)| (k.clone(), *m, *n))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl AnalyticsStore for MemoryConsumerStore {
    fn count_event(
        &self,
        event_id: &str,
        event_type: &str,
        occurred_at: DateTime<Utc>,
    ) -> Result<Option<u64>, LogError> {
        let mut t = self.lock()?;
        if !t.counted.insert(event_id.to_owned()) {
            return Ok(None);
        }
        let minute = occurred_at
            .duration_trunc(chrono::Duration::minutes(1))
            .unwrap_or(occurred_at);
        *t.minutes
            .entry((event_type.to_owned(), minute))
            .or_default() += 1;
        let total = t.totals.entry(event_type.to_owned()).or_default();
        *total += 1;
        Ok(Some(*total))
    }

    fn totals(&self) -> Result<Vec<(String, u64)>, LogError> {
        Ok(self
            .lock()?
            .totals
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect())
    }
}

impl NotificationStore for MemoryConsumerStore {
    fn insert_notification(&self, n: &NewNotification) -> Result<bool, LogError> {
        let mut t = self.lock()?;
        if t.notifications.iter().any(|x| x.event_id == n.event_id) {
            return Ok(false);
        }
        t.notifications.push(n.clone());
        Ok(true)
    }
}

impl AuditStore for MemoryConsumerStore {
    fn append_audit(&self, entry: &NewAuditEntry) -> Result<bool, LogError> {
        let mut t = self.lock()?;
        if t.audit.iter().any(|x| x.event_id == entry.event_id) {
            return Ok(false);
        }
        t.audit.push(entry.clone());
        Ok(true)
    }
}

impl OperationsStore for MemoryConsumerStore {
    fn record_operation(
        &self,
        event_id: &str,
        event_type: &str,
        user_id: &str,
        envelope_json: &str,
    ) -> Result<bool, LogError> {
        let mut t = self.lock()?;
        if !t.feed_ids.insert(event_id.to_owned()) {
            return Ok(false);
        }
        let seq = t.feed.len() as u64 + 1;
        t.feed.push(StoredEvent {
            seq,
            event_id: event_id.to_owned(),
            user_id: user_id.to_owned(),
            event_type: StoredType::parse(event_type),
            correlation_id: None,
            envelope_json: envelope_json.to_owned(),
            created_at: Utc::now(),
        });
        Ok(true)
    }
}

/// The operations feed of a [`MemoryConsumerStore`] as an [`EventLog`]: one stream, whatever
/// user id a caller passes, read-only (its one writer is the operations consumer), as the
/// database's feed is.
#[derive(Clone)]
pub struct MemoryFeedLog(pub Arc<MemoryConsumerStore>);

const FEED_IS_READ_ONLY: &str = "the operations feed is written by its consumer only";

impl EventLog for MemoryFeedLog {
    fn append(&self, _events: &[NewEvent]) -> Result<Vec<StoredEvent>, LogError> {
        Err(LogError::failed(FEED_IS_READ_ONLY))
    }

    fn event_by_id(&self, _event_id: &str) -> Result<Option<StoredEvent>, LogError> {
        // Never appended to by a publisher, so there is no keyed event to find.
        Ok(None)
    }

    fn events_after(
        &self,
        _user_id: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, LogError> {
        let t = self.0.lock()?;
        Ok(t.feed
            .iter()
            .filter(|e| e.seq > after_seq)
            .take(limit)
            .cloned()
            .collect())
    }

    fn stream_bounds(&self, _user_id: &str) -> Result<(Option<u64>, u64), LogError> {
        let t = self.0.lock()?;
        Ok((t.feed.first().map(|e| e.seq), t.feed.len() as u64))
    }

    fn prune_older_than(&self, _cutoff: DateTime<Utc>) -> Result<usize, LogError> {
        Ok(0)
    }

    fn apply_change(
        &self,
        _change: &StateChange,
        _events: &[NewEvent],
        _receipt: Option<&crate::domain::Receipt>,
    ) -> Result<Vec<StoredEvent>, ChangeError> {
        Err(ChangeError::Log(LogError::failed(FEED_IS_READ_ONLY)))
    }
}
