//! In-memory consumer stores for tests, with the same idempotence rules as the database, and a
//! switch that makes them fail like an unreachable database.

use super::{AnalyticsStore, AuditStore, NewAuditEntry, NewNotification, NotificationStore};
use crate::journal::LogError;
use chrono::{DateTime, DurationRound, Utc};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

#[derive(Default)]
struct Tables {
    counted: HashSet<String>,
    minutes: BTreeMap<(String, DateTime<Utc>), u64>,
    totals: BTreeMap<String, u64>,
    notifications: Vec<NewNotification>,
    audit: Vec<NewAuditEntry>,
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
