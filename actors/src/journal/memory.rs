//! An in-memory [`EventLog`] for tests and the testkit, with a switch that makes it behave like
//! an unreachable database.

use super::{EventLog, LogError, NewEvent, StoredEvent};
use crate::domain::{
    ChangeError, DomainState, FlowRecord, FlowStatus, Receipt, StateChange, StoredReceipt,
    UserState,
};
use crate::outbox::{Outbox, OutboxEntry};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Default)]
struct Streams {
    events: HashMap<String, Vec<StoredEvent>>,
    last_seq: HashMap<String, u64>,
    ids: HashSet<String>,
    /// Outbox view, in commit order.
    rows: BTreeMap<u64, Row>,
    next_row: u64,
    /// Domain state: what `apply_change` writes and `user_state` reads.
    users: HashMap<String, UserState>,
    /// Flow records by operation id.
    flows: BTreeMap<String, FlowRecord>,
    /// Receipts of keyed domain commands, by key.
    receipts: HashMap<String, StoredReceipt>,
}

/// An event as the outbox sees it.
struct Row {
    event: StoredEvent,
    correlation_id: Option<String>,
    published: bool,
}

#[derive(Default)]
pub struct MemoryLog {
    streams: Mutex<Streams>,
    down: AtomicBool,
    /// While set, `mark_published` fails and everything else works (a store that can read but
    /// not commit the relay's marks).
    marks_down: AtomicBool,
    /// Milliseconds each `stream_bounds` call takes (a slow head read, for races at open).
    bounds_delay_ms: AtomicU64,
}

impl MemoryLog {
    pub fn new() -> Self {
        MemoryLog::default()
    }

    /// While down, every call fails with [`LogError::Unavailable`].
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// While down, only `mark_published` fails.
    pub fn set_marks_down(&self, down: bool) {
        self.marks_down.store(down, Ordering::SeqCst);
    }

    /// Makes every `stream_bounds` call take `delay` first.
    pub fn set_bounds_delay(&self, delay: std::time::Duration) {
        self.bounds_delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
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

impl MemoryLog {
    fn append_locked(s: &mut Streams, events: &[NewEvent]) -> Result<Vec<StoredEvent>, LogError> {
        let mut batch_ids = HashSet::new();
        for e in events {
            if s.ids.contains(&e.event_id) || !batch_ids.insert(e.event_id.as_str()) {
                return Err(LogError::failed(format!(
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
                event_type: e.event_type.into(),
                correlation_id: e.correlation_id.clone(),
                envelope_json: e.envelope_json.clone(),
                created_at: e.created_at,
            };
            s.ids.insert(e.event_id.clone());
            s.next_row += 1;
            let row_id = s.next_row;
            s.rows.insert(
                row_id,
                Row {
                    event: row.clone(),
                    correlation_id: e.correlation_id.clone(),
                    published: false,
                },
            );
            s.events
                .entry(e.user_id.clone())
                .or_default()
                .push(row.clone());
            stored.push(row);
        }
        Ok(stored)
    }
}

impl EventLog for MemoryLog {
    fn append(&self, events: &[NewEvent]) -> Result<Vec<StoredEvent>, LogError> {
        let mut s = self.lock()?;
        MemoryLog::append_locked(&mut s, events)
    }

    fn event_by_id(&self, event_id: &str) -> Result<Option<StoredEvent>, LogError> {
        let s = self.lock()?;
        Ok(s.events
            .values()
            .flat_map(|events| events.iter())
            .find(|e| e.event_id == event_id)
            .cloned())
    }

    fn apply_change(
        &self,
        change: &StateChange,
        events: &[NewEvent],
        receipt: Option<&Receipt>,
    ) -> Result<Vec<StoredEvent>, ChangeError> {
        let mut s = self.lock()?;
        if receipt.is_some_and(|r| s.receipts.contains_key(&r.key)) {
            return Err(ChangeError::Receipted);
        }
        let state = s.users.get(change.user_id()).cloned().unwrap_or_default();
        let stored_flow = match change {
            StateChange::StartFlow { flow }
            | StateChange::AdvanceFlow { flow }
            | StateChange::CompleteFlow { flow }
            | StateChange::FailFlow { flow } => s.flows.get(&flow.operation_id).cloned(),
            _ => None,
        };
        let (next, flow) = state.apply(stored_flow.as_ref(), change)?;
        let stored = MemoryLog::append_locked(&mut s, events)?;
        s.users.insert(change.user_id().to_owned(), next);
        if let Some(flow) = flow {
            s.flows.insert(flow.operation_id.clone(), flow);
        }
        if let Some(receipt) = receipt {
            s.receipts.insert(
                receipt.key.clone(),
                StoredReceipt {
                    fingerprint: receipt.fingerprint.clone(),
                    answer: receipt.answer.clone(),
                    events: stored.iter().map(|e| (e.seq, e.event_id.clone())).collect(),
                },
            );
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
        let delay = self.bounds_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(std::time::Duration::from_millis(delay));
        }
        let s = self.lock()?;
        let first = s.events.get(user_id).and_then(|v| v.first()).map(|e| e.seq);
        Ok((first, s.last_seq.get(user_id).copied().unwrap_or(0)))
    }

    fn prune_older_than(&self, cutoff: DateTime<Utc>) -> Result<usize, LogError> {
        let mut s = self.lock()?;
        // Events the broker has not acknowledged are kept whatever their age.
        let unpublished: HashSet<String> = s
            .rows
            .values()
            .filter(|row| !row.published)
            .map(|row| row.event.event_id.clone())
            .collect();
        s.rows
            .retain(|_, row| !row.published || row.event.created_at >= cutoff);
        let mut removed = Vec::new();
        for events in s.events.values_mut() {
            events.retain(|e| {
                let keep = e.created_at >= cutoff || unpublished.contains(&e.event_id);
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

impl Outbox for MemoryLog {
    fn pending(&self, limit: usize) -> Result<Vec<OutboxEntry>, LogError> {
        let s = self.lock()?;
        Ok(s.rows
            .iter()
            .filter(|(_, row)| !row.published)
            .take(limit)
            .map(|(id, row)| OutboxEntry {
                id: *id,
                event_id: row.event.event_id.clone(),
                user_id: row.event.user_id.clone(),
                event_type: row.event.event_type.clone(),
                correlation_id: row.correlation_id.clone(),
                envelope_json: row.event.envelope_json.clone(),
                created_at: row.event.created_at,
            })
            .collect())
    }

    fn mark_published(&self, ids: &[u64]) -> Result<(), LogError> {
        if self.marks_down.load(Ordering::SeqCst) {
            return Err(LogError::Unavailable(
                "memory log marks are switched off".into(),
            ));
        }
        let mut s = self.lock()?;
        for id in ids {
            if let Some(row) = s.rows.get_mut(id) {
                row.published = true;
            }
        }
        Ok(())
    }

    fn backlog(&self) -> Result<u64, LogError> {
        let s = self.lock()?;
        Ok(s.rows.values().filter(|row| !row.published).count() as u64)
    }
}

impl DomainState for MemoryLog {
    fn user_state(&self, user_id: &str) -> Result<UserState, LogError> {
        Ok(self.lock()?.users.get(user_id).cloned().unwrap_or_default())
    }

    fn flow(&self, operation_id: &str) -> Result<Option<FlowRecord>, LogError> {
        Ok(self.lock()?.flows.get(operation_id).cloned())
    }

    fn pending_flows(&self) -> Result<Vec<FlowRecord>, LogError> {
        let mut pending: Vec<FlowRecord> = self
            .lock()?
            .flows
            .values()
            .filter(|f| f.status == FlowStatus::Pending)
            .cloned()
            .collect();
        pending.sort_by_key(|f| f.created_at);
        Ok(pending)
    }

    fn receipt(&self, key: &str) -> Result<Option<StoredReceipt>, LogError> {
        Ok(self.lock()?.receipts.get(key).cloned())
    }
}
