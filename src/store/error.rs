//! The store's one error type.
//!
//! Callers mostly need one decision: is this worth retrying later (the database is down, the
//! pool is exhausted, SQLite's write lock stayed busy) or is it the request's fault? The first
//! group is [`StoreError::Unavailable`], which the HTTP edge maps to 503 and readiness reports as
//! not ready; everything else is a definite answer about this request or a bug.

use diesel::result::{ConnectionError, DatabaseErrorKind, Error as DieselError};

/// Everything [`Store`](super::Store) can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or did not answer in time: connection refused, pool
    /// checkout timed out, the server went away mid-query, or SQLite's write lock stayed taken
    /// past the busy timeout. Transient by nature; retry later.
    #[error("event store unavailable: {0}")]
    Unavailable(String),

    /// An event with this `event_id` is already stored (or appears twice in one batch). The
    /// whole batch was rolled back, so no sequence numbers were consumed.
    #[error("duplicate event id {event_id:?}")]
    DuplicateEvent { event_id: String },

    /// The event, or a record made from it (a notification, an audit entry), does not fit the
    /// schema (an id too long, an empty user id). Checked before touching the database so
    /// SQLite and MySQL reject exactly the same inputs.
    #[error("invalid event: {0}")]
    InvalidEvent(String),

    /// The store URL or pool settings cannot work (unknown scheme, `mysql://` in a build
    /// without the `mysql` feature, a pool of size 0).
    #[error("invalid store configuration: {0}")]
    Config(String),

    /// A stored row holds a value this code never writes (a negative sequence number).
    #[error("corrupt row in event store: {0}")]
    Corrupt(String),

    /// Any other database error: a bug or a schema mismatch rather than an outage.
    #[error("database error: {0}")]
    Database(#[source] DieselError),
}

impl StoreError {
    /// True when the failure is about the database being unreachable or overloaded rather
    /// than about the request, so the caller should answer "try again later".
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// MySQL reports a deadlock (1213) as a serialization failure; InnoDB has already rolled
    /// the transaction back, so running it again from the start is safe.
    pub(crate) fn is_deadlock(&self) -> bool {
        matches!(
            self,
            StoreError::Database(DieselError::DatabaseError(
                DatabaseErrorKind::SerializationFailure,
                _
            ))
        )
    }
}

/// Whether an insert failed only because its row is already there. The consumer tables have one
/// unique key besides their primary key (the event id), so for them this means "already
/// applied", which the idempotent writes answer with `false` rather than an error.
pub(crate) fn is_unique_violation(err: &DieselError) -> bool {
    matches!(
        err,
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)
    )
}

/// Messages by which the backends report a lost or busy server without a dedicated error kind:
/// MySQL client errors 2006 / 2013 and SQLite's `SQLITE_BUSY` after the busy timeout.
const UNAVAILABLE_MESSAGES: [&str; 3] = [
    "server has gone away",
    "lost connection to",
    "database is locked",
];

impl From<DieselError> for StoreError {
    fn from(err: DieselError) -> Self {
        let unavailable = match &err {
            DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => true,
            DieselError::DatabaseError(_, info) => {
                let message = info.message().to_ascii_lowercase();
                UNAVAILABLE_MESSAGES.iter().any(|m| message.contains(m))
            }
            _ => false,
        };
        if unavailable {
            StoreError::Unavailable(err.to_string())
        } else {
            StoreError::Database(err)
        }
    }
}

impl From<ConnectionError> for StoreError {
    fn from(err: ConnectionError) -> Self {
        match err {
            ConnectionError::InvalidConnectionUrl(msg) => StoreError::Config(msg),
            ConnectionError::InvalidCString(e) => StoreError::Config(e.to_string()),
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

impl From<diesel::r2d2::Error> for StoreError {
    fn from(err: diesel::r2d2::Error) -> Self {
        match err {
            diesel::r2d2::Error::ConnectionError(e) => e.into(),
            diesel::r2d2::Error::QueryError(e) => e.into(),
        }
    }
}

impl From<diesel::r2d2::PoolError> for StoreError {
    /// r2d2 only fails a checkout after its timeout, having tried to open connections
    /// meanwhile: the database is down or every connection is busy.
    fn from(err: diesel::r2d2::PoolError) -> Self {
        StoreError::Unavailable(err.to_string())
    }
}
