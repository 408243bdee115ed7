//! The audit consumer's append-only log and the admin-facing query over it.
//!
//! Append-only by construction: this module has an insert and a select, and nothing in the
//! store updates or deletes an `audit_log` row (retention pruning covers `nft_events` only).
//! The unique `event_id` makes a redelivered Kafka record a no-op.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;

use super::columns::{
    self, check_bytes, check_chars, check_id, db_time, MAX_CORRELATION_ID, MAX_EVENT_ID,
    MAX_EVENT_TYPE, MAX_MEDIUMTEXT_BYTES, MAX_SOURCE, MAX_USER_ID,
};
use super::connection::StoreConnection;
use super::error::{is_unique_violation, StoreError};
use super::schema::audit_log;
use super::Store;
use actors::consumers::NewAuditEntry;

/// Which audit entries to return. Every filter is optional; `None` does not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub event_type: Option<String>,
    pub user_id: Option<String>,
    /// Entries whose event occurred at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Entries whose event occurred strictly before this time, so consecutive windows
    /// (`from = t0, to = t1`, then `from = t1, to = t2`) never return an entry twice.
    pub to: Option<DateTime<Utc>>,
    /// Entries with `id < before_id`: the last id of the previous page, to page backwards.
    pub before_id: Option<u64>,
    /// At most this many entries; 0 returns none.
    pub limit: usize,
}

/// A stored audit entry, as the HTTP edge returns it (camelCase JSON).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRow {
    /// Position in the log; pass the last one seen as `before_id` for the next page.
    pub id: u64,
    pub event_id: String,
    pub event_type: String,
    pub user_id: String,
    pub source: String,
    pub correlation_id: Option<String>,
    /// The event's envelope exactly as consumed (served as the object itself, under
    /// `envelope`).
    #[serde(rename = "envelope", serialize_with = "super::columns::as_json")]
    pub envelope_json: String,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = audit_log)]
struct AuditInsert<'a> {
    event_id: &'a str,
    event_type: &'a str,
    user_id: &'a str,
    source: &'a str,
    correlation_id: Option<&'a str>,
    envelope_json: &'a str,
    occurred_at: NaiveDateTime,
    recorded_at: NaiveDateTime,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = audit_log)]
struct Row {
    id: i64,
    event_id: String,
    event_type: String,
    user_id: String,
    source: String,
    correlation_id: Option<String>,
    envelope_json: String,
    occurred_at: NaiveDateTime,
    recorded_at: NaiveDateTime,
}

impl TryFrom<Row> for AuditRow {
    type Error = StoreError;

    fn try_from(row: Row) -> Result<Self, StoreError> {
        Ok(AuditRow {
            id: columns::u64_from_db(row.id, "audit entry id")?,
            event_id: row.event_id,
            event_type: row.event_type,
            user_id: row.user_id,
            source: row.source,
            correlation_id: row.correlation_id,
            envelope_json: row.envelope_json,
            occurred_at: row.occurred_at.and_utc(),
            recorded_at: row.recorded_at.and_utc(),
        })
    }
}

impl Store {
    /// Appends an audit entry unless one for its event id exists; answers whether it
    /// appended. Times are kept to the microsecond, like every stored time.
    pub fn append_audit(&self, entry: &NewAuditEntry) -> Result<bool, StoreError> {
        append(&mut *self.checkout()?, entry)
    }

    /// The entries matching every filter of `query`, newest first (by id).
    ///
    /// `from` and `to` are compared at the stored microsecond precision.
    pub fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
        select(&mut *self.checkout()?, query)
    }
}

fn validate(entry: &NewAuditEntry) -> Result<(), StoreError> {
    check_id("event_id", &entry.event_id, MAX_EVENT_ID)?;
    check_id("event_type", &entry.event_type, MAX_EVENT_TYPE)?;
    check_id("user_id", &entry.user_id, MAX_USER_ID)?;
    check_chars("source", &entry.source, MAX_SOURCE)?;
    if let Some(correlation_id) = &entry.correlation_id {
        check_chars("correlation_id", correlation_id, MAX_CORRELATION_ID)?;
    }
    check_bytes("envelope_json", &entry.envelope_json, MAX_MEDIUMTEXT_BYTES)
}

fn append(conn: &mut StoreConnection, entry: &NewAuditEntry) -> Result<bool, StoreError> {
    validate(entry)?;
    let row = AuditInsert {
        event_id: &entry.event_id,
        event_type: &entry.event_type,
        user_id: &entry.user_id,
        source: &entry.source,
        correlation_id: entry.correlation_id.as_deref(),
        envelope_json: &entry.envelope_json,
        occurred_at: db_time(entry.occurred_at),
        recorded_at: db_time(entry.recorded_at),
    };
    // One statement: it appends, or fails on the event id's unique key having written nothing.
    match diesel::insert_into(audit_log::table)
        .values(&row)
        .execute(conn)
    {
        Ok(_) => Ok(true),
        Err(err) if is_unique_violation(&err) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

fn select(conn: &mut StoreConnection, q: &AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
    if q.limit == 0 {
        return Ok(Vec::new());
    }
    // Boxed so each optional filter is added only when present; every value is a bound
    // parameter, never text spliced into the SQL.
    let mut query = audit_log::table
        .order(audit_log::id.desc())
        .limit(columns::sql_limit(q.limit))
        .select(Row::as_select())
        .into_boxed();
    if let Some(event_type) = &q.event_type {
        query = query.filter(audit_log::event_type.eq(event_type.as_str()));
    }
    if let Some(user_id) = &q.user_id {
        query = query.filter(audit_log::user_id.eq(user_id.as_str()));
    }
    if let Some(from) = q.from {
        query = query.filter(audit_log::occurred_at.ge(db_time(from)));
    }
    if let Some(to) = q.to {
        query = query.filter(audit_log::occurred_at.lt(db_time(to)));
    }
    if let Some(before) = q.before_id {
        query = query.filter(audit_log::id.lt(columns::i64_clamped(before)));
    }
    query
        .load(conn)?
        .into_iter()
        .map(AuditRow::try_from)
        .collect()
}
