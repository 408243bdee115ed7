//! The store as the `actors` crate's ports: the journal's [`EventLog`], the relay's [`Outbox`]
//! and the consumers' stores. Each method is a thin wrapper over the `Store` method of the
//! same meaning; the only translation is [`StoreError`] into [`LogError`].
//!
//! The admin operations feed is a second [`EventLog`] over the same database,
//! [`OperationsLog`], so the session registry and the feed's tailer read it exactly as they
//! read a user's stream.

use super::domain::Refused;
use super::{Store, StoreError};
use actors::consumers::{
    AnalyticsStore, AuditStore, CountedEvent, NewAuditEntry, NewNotification, NotificationStore,
    OperationsStore,
};
use actors::domain::{
    ChangeError, DomainState, FlowRecord, Receipt, StateChange, StoredReceipt, UserState,
};
use actors::journal::{Cause, EventLog, LogError, NewEvent, StoredEvent};
use actors::outbox::{Outbox, OutboxEntry};
use chrono::{DateTime, Utc};

/// The store's error stays the cause (and its diesel error the cause of that), so a log line
/// or an `Error::source` walk reaches what the database said.
impl From<StoreError> for LogError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            LogError::Unavailable(Cause::new(e))
        } else {
            LogError::Failed(Cause::new(e))
        }
    }
}

impl EventLog for Store {
    fn append(&self, events: &[NewEvent]) -> Result<Vec<StoredEvent>, LogError> {
        Ok(Store::append(self, events)?)
    }

    fn event_by_id(&self, event_id: &str) -> Result<Option<StoredEvent>, LogError> {
        Ok(Store::event_by_id(self, event_id)?)
    }

    fn events_after(
        &self,
        user_id: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, LogError> {
        Ok(Store::events_after(self, user_id, after_seq, limit)?)
    }

    fn stream_bounds(&self, user_id: &str) -> Result<(Option<u64>, u64), LogError> {
        Ok(Store::stream_bounds(self, user_id)?)
    }

    fn prune_older_than(&self, cutoff: DateTime<Utc>) -> Result<usize, LogError> {
        Ok(Store::prune_older_than(self, cutoff)?)
    }

    fn apply_change(
        &self,
        change: &StateChange,
        events: &[NewEvent],
        receipt: Option<&Receipt>,
    ) -> Result<Vec<StoredEvent>, ChangeError> {
        match Store::apply_change(self, change, events, receipt) {
            Ok(Ok(stored)) => Ok(stored),
            Ok(Err(Refused::Conflict)) => Err(ChangeError::Conflict),
            Ok(Err(Refused::Receipted)) => Err(ChangeError::Receipted),
            Err(e) => Err(ChangeError::Log(e.into())),
        }
    }
}

impl DomainState for Store {
    fn user_state(&self, user_id: &str) -> Result<UserState, LogError> {
        Ok(Store::user_state(self, user_id)?)
    }

    fn flow(&self, operation_id: &str) -> Result<Option<FlowRecord>, LogError> {
        Ok(Store::flow(self, operation_id)?)
    }

    fn pending_flows(&self) -> Result<Vec<FlowRecord>, LogError> {
        Ok(Store::pending_flows(self)?)
    }

    fn receipt(&self, key: &str) -> Result<Option<StoredReceipt>, LogError> {
        Ok(Store::receipt(self, key)?)
    }
}

impl Outbox for Store {
    fn pending(&self, limit: usize) -> Result<Vec<OutboxEntry>, LogError> {
        Ok(Store::pending_outbox(self, limit)?)
    }

    fn mark_published(&self, ids: &[u64]) -> Result<(), LogError> {
        Ok(Store::mark_published(self, ids)?)
    }

    fn backlog(&self) -> Result<u64, LogError> {
        Ok(Store::outbox_backlog(self)?)
    }
}

impl AnalyticsStore for Store {
    fn count_event(
        &self,
        event_id: &str,
        event_type: &str,
        occurred_at: DateTime<Utc>,
    ) -> Result<Option<u64>, LogError> {
        Ok(Store::count_event_total(
            self,
            event_id,
            event_type,
            occurred_at,
        )?)
    }

    /// One transaction for the whole batch.
    fn count_events(&self, events: &[CountedEvent]) -> Vec<Result<Option<u64>, LogError>> {
        match Store::count_events(self, events) {
            Ok(answers) => answers
                .into_iter()
                .map(|answer| answer.map_err(LogError::from))
                .collect(),
            Err(e) => vec![Err(e.into())],
        }
    }

    fn totals(&self) -> Result<Vec<(String, u64)>, LogError> {
        Ok(Store::totals(self)?)
    }
}

impl NotificationStore for Store {
    fn insert_notification(&self, n: &NewNotification) -> Result<bool, LogError> {
        Ok(Store::insert_notification(self, n)?)
    }
}

impl AuditStore for Store {
    fn append_audit(&self, entry: &NewAuditEntry) -> Result<bool, LogError> {
        Ok(Store::append_audit(self, entry)?)
    }
}

impl OperationsStore for Store {
    fn record_operation(
        &self,
        event_id: &str,
        event_type: &str,
        user_id: &str,
        envelope_json: &str,
    ) -> Result<bool, LogError> {
        Ok(Store::record_operation(
            self,
            event_id,
            event_type,
            user_id,
            envelope_json,
        )?)
    }
}

/// The admin operations feed as an [`EventLog`]: one stream, whatever user id a caller passes,
/// numbered in commit order (see `operations`). Read-only here: its one writer is the
/// operations consumer, through [`OperationsStore`].
#[derive(Clone, Debug)]
pub struct OperationsLog(pub Store);

/// Why the feed refuses journal writes.
const FEED_IS_READ_ONLY: &str = "the operations feed is written by its consumer only";

impl EventLog for OperationsLog {
    fn append(&self, _events: &[NewEvent]) -> Result<Vec<StoredEvent>, LogError> {
        Err(LogError::Failed(FEED_IS_READ_ONLY.into()))
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
        Ok(self.0.operations_after(after_seq, limit)?)
    }

    fn stream_bounds(&self, _user_id: &str) -> Result<(Option<u64>, u64), LogError> {
        Ok(self.0.operations_bounds()?)
    }

    fn prune_older_than(&self, cutoff: DateTime<Utc>) -> Result<usize, LogError> {
        Ok(self.0.prune_operations_older_than(cutoff)?)
    }

    fn apply_change(
        &self,
        _change: &StateChange,
        _events: &[NewEvent],
        _receipt: Option<&Receipt>,
    ) -> Result<Vec<StoredEvent>, ChangeError> {
        Err(ChangeError::Log(LogError::Failed(FEED_IS_READ_ONLY.into())))
    }
}
