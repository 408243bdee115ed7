//! An in-memory [`EventLog`] for tests and the testkit, with a switch that makes it behave like
//! an unreachable database.

use super::{EventLog, LogError, NewEvent, StoredEvent};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

#[derive(Default)]
struct Streams {
    events: HashMap<String, Vec<StoredEvent>>,
    last_seq: HashMap<String, u64>,
    ids: HashSet<String>,
}

#[derive(Default)]
pub struct MemoryLog {
    streams: Mutex<Streams>,
    down: AtomicBool,
}

impl MemoryLog {
    pub fn new() -> Self {
        MemoryLog::default()
    }

    /// While down, every call fails with [`LogError::Unavailable`].
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Streams>, LogError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(LogError::Unavailable("memory log is switched off".into()));
        }
        self.streams
            .lock()
            .map_err(|_| LogError::Failed("memory log lock poisoned".into()))
    }
}

impl EventLog for MemoryLog {
    fn append(&self, events: &[NewEvent]) -> Result<Vec<StoredEvent>, LogError> {
        let mut s = self.lock()?;
        let mut batch_ids = HashSet::new();
        for e in events {
            if s.ids.contains(&e.event_id) || !batch_ids.insert(e.event_id.as_str()) {
                return Err(LogError::Failed(format!(
                    "duplicate event id {}",
                    e.event_id
                )));
            }
        }
        let mut stored = Vec::with_capacity(events.len());
        for e in events {
            let seq = {
                let last = s.last_seq.entry(e.user_id.clone()).or_insert(0);
                *last += 1;
                *last
            };
            let row = StoredEvent {
                seq,
                event_id: e.event_id.clone(),
                user_id: e.user_id.clone(),
                event_type: e.event_type.clone(),
                envelope_json: e.envelope_json.clone(),
                created_at: e.created_at,
            };
            s.ids.insert(e.event_id.clone());
            s.events
                .entry(e.user_id.clone())
                .or_default()
                .push(row.clone());
            stored.push(row);
        }
        Ok(stored)
    }

    fn events_after(
        &self,
        user_id: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, LogError> {
        let s = self.lock()?;
        Ok(s.events
            .get(user_id)
            .map(|v| {
                v.iter()
                    .filter(|e| e.seq > after_seq)
                    .take(limit)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    fn stream_bounds(&self, user_id: &str) -> Result<(Option<u64>, u64), LogError> {
        let s = self.lock()?;
        let first = s.events.get(user_id).and_then(|v| v.first()).map(|e| e.seq);
        Ok((first, s.last_seq.get(user_id).copied().unwrap_or(0)))
    }

    fn prune_older_than(&self, cutoff: DateTime<Utc>) -> Result<usize, LogError> {
        let mut s = self.lock()?;
        let mut removed = Vec::new();
        for events in s.events.values_mut() {
            events.retain(|e| {
                let keep = e.created_at >= cutoff;
                if !keep {
                    removed.push(e.event_id.clone());
                }
                keep
            });
        }
        for id in &removed {
            s.ids.remove(id);
        }
        Ok(removed.len())
    }
}
