//! The event journal: the durable, per-user numbered log every user event is written to before
//! anyone hears of it, and the actors around it.
//!
//! The log itself is a port ([`EventLog`]): the router implements it with diesel over SQLite or
//! MySQL, the testkit with [`MemoryLog`]. Its sequence numbers are the cursors clients resume
//! from (`Last-Event-ID`, `since`).
//!
//! * [`EventJournal`]: appends in batches, one transaction per batch, then hands each stored
//!   event to the session registry in commit order, then answers the publisher.
//! * [`RetentionPruner`]: deletes events older than the retention window on a schedule.

mod memory;
mod pruner;
mod writer;

pub use memory::MemoryLog;
pub use pruner::{PruneNow, RetentionPruner};
pub use writer::{Append, AppendChange, AppendOnce, Appended, ChangeFailure, EventJournal, Once};

use chrono::{DateTime, Utc};

use crate::event::{EventType, StoredType};

/// An event to append. Its sequence number is assigned by the log.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_id: String,
    pub user_id: String,
    pub event_type: EventType,
    /// The envelope's `correlationId`, stored beside it so the relay's record headers need not
    /// parse the envelope back.
    pub correlation_id: Option<String>,
    pub envelope_json: String,
    pub created_at: DateTime<Utc>,
}

/// An event as stored: `seq` is its position in its user's stream (1, 2, 3, …), the cursor
/// clients resume from.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: u64,
    pub event_id: String,
    pub user_id: String,
    pub event_type: StoredType,
    /// The envelope's `correlationId`, for the log lines that follow the event.
    pub correlation_id: Option<String>,
    pub envelope_json: String,
    pub created_at: DateTime<Utc>,
}

/// What [`EventLog::append_once`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum AppendedOnce {
    /// The event was new and is stored now.
    Stored(StoredEvent),
    /// An event with its id was stored before: this one, untouched.
    Existing(StoredEvent),
}

/// Why the log (or any port of the store) could not answer. The journal answers publishers
/// with it too, so a failure keeps its cause from the adapter up to the HTTP edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// The backing database is unreachable or overloaded; retry later.
    #[error("event log unavailable: {0}")]
    Unavailable(#[source] Cause),
    /// A definite failure (duplicate id, invalid row, a bug).
    #[error("event log error: {0}")]
    Failed(#[source] Cause),
}

impl LogError {
    pub fn unavailable(cause: impl Into<Cause>) -> Self {
        LogError::Unavailable(cause.into())
    }

    pub fn failed(cause: impl Into<Cause>) -> Self {
        LogError::Failed(cause.into())
    }

    pub fn is_unavailable(&self) -> bool {
        matches!(self, LogError::Unavailable(_))
    }
}

/// What made a port call fail: the adapter's own error, kept as the `source` of the chain and
/// shared (`Arc`), so one failed batch answers each of its publishers with the same cause.
#[derive(Debug, Clone)]
pub struct Cause(std::sync::Arc<dyn std::error::Error + Send + Sync>);

impl Cause {
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Cause(std::sync::Arc::new(error))
    }
}

/// A cause that is only a message (the in-memory adapters, a stopped actor).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Message(String);

impl From<&str> for Cause {
    fn from(message: &str) -> Self {
        Cause::new(Message(message.to_owned()))
    }
}

impl From<String> for Cause {
    fn from(message: String) -> Self {
        Cause::new(Message(message))
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Two causes are the same when they say the same (tests compare answers).
impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for Cause {}

/// The durable log behind the journal. Implementations are blocking; the actors call them on
/// tokio's blocking pool, never on an actor's own thread.
pub trait EventLog: Send + Sync + 'static {
    /// Appends a batch in one transaction; each event gets its user's next sequence number.
    /// A reader must never observe seq N+1 before N is visible.
    fn append(&self, events: &[NewEvent]) -> Result<Vec<StoredEvent>, LogError>;

    /// The retained event with this id, if there is one.
    fn event_by_id(&self, event_id: &str) -> Result<Option<StoredEvent>, LogError>;

    /// Appends `event` unless an event with its id is stored already, which it answers
    /// instead: for ids derived from a publisher's idempotency key, where the same id means the
    /// same request. Two writers racing with one id (a retry on another instance while the
    /// first attempt commits) both end with the one stored event: the loser's append fails on
    /// the unique id, and it reads the winner's.
    fn append_once(&self, event: &NewEvent) -> Result<AppendedOnce, LogError> {
        if let Some(existing) = self.event_by_id(&event.event_id)? {
            return Ok(AppendedOnce::Existing(existing));
        }
        match self.append(std::slice::from_ref(event)) {
            Ok(mut stored) => stored
                .pop()
                .map(AppendedOnce::Stored)
                .ok_or_else(|| LogError::failed("the log stored nothing")),
            Err(e) => match self.event_by_id(&event.event_id) {
                Ok(Some(existing)) => Ok(AppendedOnce::Existing(existing)),
                _ => Err(e),
            },
        }
    }

    /// The user's events with `seq > after_seq`, oldest first, at most `limit`.
    fn events_after(
        &self,
        user_id: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, LogError>;

    /// `(lowest retained seq, last assigned seq)` of the user's stream.
    fn stream_bounds(&self, user_id: &str) -> Result<(Option<u64>, u64), LogError>;

    /// The last assigned seq of each of these users' streams (users without events may be
    /// left out). The sweep asks this for every user with sessions on an instance, so a store
    /// answers it in one query where it can.
    fn stream_heads(&self, user_ids: &[String]) -> Result<Vec<(String, u64)>, LogError> {
        user_ids
            .iter()
            .map(|user| Ok((user.clone(), self.stream_bounds(user)?.1)))
            .collect()
    }

    /// Deletes events created before `cutoff`; returns how many.
    fn prune_older_than(&self, cutoff: DateTime<Utc>) -> Result<usize, LogError>;

    /// Applies a domain state change and appends the events it caused, and stores `receipt`
    /// (with the events' cursors and ids) when given, in one transaction; nothing is written
    /// when the change's precondition fails (`Conflict`) or the receipt's key is stored already
    /// (`Receipted`).
    fn apply_change(
        &self,
        change: &crate::domain::StateChange,
        events: &[NewEvent],
        receipt: Option<&crate::domain::Receipt>,
    ) -> Result<Vec<StoredEvent>, crate::domain::ChangeError>;
}

/// Where a reader stands relative to a user's retained stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorCheck {
    /// Everything after the cursor is still retained.
    Resumable,
    /// Events after the cursor were pruned, or the cursor is beyond the stream's end (it came
    /// from another database or was made up): the reader must resync from a snapshot.
    Resync,
}

/// Decides whether a reader at `cursor` can resume exactly, given the stream's bounds.
pub fn check_cursor(cursor: u64, bounds: (Option<u64>, u64)) -> CursorCheck {
    let (first_retained, last) = bounds;
    if cursor > last {
        return CursorCheck::Resync;
    }
    let missing_pruned = match first_retained {
        Some(first) => cursor + 1 < first,
        None => cursor < last,
    };
    if missing_pruned {
        CursorCheck::Resync
    } else {
        CursorCheck::Resumable
    }
}

/// Runs a blocking log call on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, LogError> + Send + 'static,
) -> Result<T, LogError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(LogError::failed(format!("log call panicked: {e}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_resume_only_while_nothing_after_them_was_pruned() {
        assert_eq!(check_cursor(0, (None, 0)), CursorCheck::Resumable);
        assert_eq!(check_cursor(3, (Some(1), 5)), CursorCheck::Resumable);
        assert_eq!(check_cursor(3, (Some(4), 5)), CursorCheck::Resumable);
        assert_eq!(check_cursor(2, (Some(4), 5)), CursorCheck::Resync);
        assert_eq!(check_cursor(5, (None, 5)), CursorCheck::Resumable);
        assert_eq!(check_cursor(4, (None, 5)), CursorCheck::Resync);
        assert_eq!(check_cursor(6, (Some(1), 5)), CursorCheck::Resync);
    }
}
