//! The store as the actors' [`EventLog`] port.

use super::{Store, StoreError};
use actors::journal::{EventLog, LogError, NewEvent, StoredEvent};
use chrono::{DateTime, Utc};

impl From<StoreError> for LogError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            LogError::Unavailable(e.to_string())
        } else {
            LogError::Failed(e.to_string())
        }
    }
}

impl EventLog for Store {
    fn append(&self, events: &[NewEvent]) -> Result<Vec<StoredEvent>, LogError> {
        Ok(Store::append(self, events)?)
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
}
