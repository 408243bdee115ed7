//! The notification consumer's table and the user-facing reads over it.
//!
//! One notification per event: the unique `event_id` turns a redelivered Kafka record into a
//! no-op. Users read theirs newest first and page backwards by id (`before_id`), which stays
//! stable while new notifications arrive, unlike an offset.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;

use super::columns::{
    self, check_bytes, check_chars, check_id, db_now, db_time, MAX_EVENT_ID, MAX_EVENT_TYPE,
    MAX_MEDIUMTEXT_BYTES, MAX_TEXT_BYTES, MAX_TITLE, MAX_USER_ID,
};
use super::connection::StoreConnection;
use super::error::{is_unique_violation, StoreError};
use super::schema::notifications;
use super::Store;
use actors::consumers::NewNotification;

/// A stored notification, as the HTTP edge returns it (camelCase JSON).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationRow {
    /// Position in the table; pass the last one seen as `before_id` for the next page.
    pub id: u64,
    pub event_id: String,
    pub user_id: String,
    pub event_type: String,
    pub title: String,
    pub message: String,
    /// `low`, `normal` or `high` (the consumer's `Priority`).
    pub priority: String,
    /// The event's `data`, as JSON text (served as the object itself, under `data`).
    #[serde(rename = "data", serialize_with = "super::columns::as_json")]
    pub data_json: String,
    pub created_at: DateTime<Utc>,
    /// When the user first marked it read; `None` while unread.
    pub read_at: Option<DateTime<Utc>>,
}

#[derive(Insertable)]
#[diesel(table_name = notifications)]
struct NotificationInsert<'a> {
    event_id: &'a str,
    user_id: &'a str,
    event_type: &'a str,
    title: &'a str,
    message: &'a str,
    priority: &'a str,
    data_json: &'a str,
    created_at: NaiveDateTime,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = notifications)]
struct Row {
    id: i64,
    event_id: String,
    user_id: String,
    event_type: String,
    title: String,
    message: String,
    priority: String,
    data_json: String,
    created_at: NaiveDateTime,
    read_at: Option<NaiveDateTime>,
}

impl TryFrom<Row> for NotificationRow {
    type Error = StoreError;

    fn try_from(row: Row) -> Result<Self, StoreError> {
        Ok(NotificationRow {
            id: columns::u64_from_db(row.id, "notification id")?,
            event_id: row.event_id,
            user_id: row.user_id,
            event_type: row.event_type,
            title: row.title,
            message: row.message,
            priority: row.priority,
            data_json: row.data_json,
            created_at: row.created_at.and_utc(),
            read_at: row.read_at.map(|at| at.and_utc()),
        })
    }
}

impl Store {
    /// Stores a notification unless one for its event id exists; answers whether it stored.
    /// `created_at` is kept to the microsecond, like every stored time.
    pub fn insert_notification(&self, n: &NewNotification) -> Result<bool, StoreError> {
        insert(&mut *self.checkout()?, n)
    }

    /// The user's notifications with `id < before_id` (all of them without one), newest first,
    /// at most `limit`. Never another user's.
    pub fn list_notifications(
        &self,
        user_id: &str,
        before_id: Option<u64>,
        limit: usize,
    ) -> Result<Vec<NotificationRow>, StoreError> {
        list(&mut *self.checkout()?, user_id, before_id, limit)
    }

    /// Marks the user's notification `id` read. `false` when the user has no such
    /// notification (including another user's: the answer does not reveal that it exists).
    /// Marking one already read answers `true` and keeps the first `read_at`.
    pub fn mark_notification_read(&self, user_id: &str, id: u64) -> Result<bool, StoreError> {
        mark_read(&mut *self.checkout()?, user_id, id)
    }

    /// How many of the user's notifications are unread.
    pub fn unread_count(&self, user_id: &str) -> Result<u64, StoreError> {
        unread_count(&mut *self.checkout()?, user_id)
    }
}

fn validate(n: &NewNotification) -> Result<(), StoreError> {
    check_id("event_id", &n.event_id, MAX_EVENT_ID)?;
    check_id("user_id", &n.user_id, MAX_USER_ID)?;
    check_id("event_type", &n.event_type, MAX_EVENT_TYPE)?;
    check_chars("title", &n.title, MAX_TITLE)?;
    check_bytes("message", &n.message, MAX_TEXT_BYTES)?;
    check_bytes("data_json", &n.data_json, MAX_MEDIUMTEXT_BYTES)
}

fn insert(conn: &mut StoreConnection, n: &NewNotification) -> Result<bool, StoreError> {
    validate(n)?;
    let row = NotificationInsert {
        event_id: &n.event_id,
        user_id: &n.user_id,
        event_type: &n.event_type,
        title: &n.title,
        message: &n.message,
        priority: n.priority.as_str(),
        data_json: &n.data_json,
        created_at: db_time(n.created_at),
    };
    // A single statement, so no explicit transaction: it either inserts or, for a known event
    // id, fails on the unique key with nothing written.
    match diesel::insert_into(notifications::table)
        .values(&row)
        .execute(conn)
    {
        Ok(_) => Ok(true),
        Err(err) if is_unique_violation(&err) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

fn list(
    conn: &mut StoreConnection,
    user_id: &str,
    before_id: Option<u64>,
    limit: usize,
) -> Result<Vec<NotificationRow>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut query = notifications::table
        .filter(notifications::user_id.eq(user_id))
        .order(notifications::id.desc())
        .limit(columns::sql_limit(limit))
        .select(Row::as_select())
        .into_boxed();
    if let Some(before) = before_id {
        query = query.filter(notifications::id.lt(columns::i64_clamped(before)));
    }
    query
        .load(conn)?
        .into_iter()
        .map(NotificationRow::try_from)
        .collect()
}

fn mark_read(conn: &mut StoreConnection, user_id: &str, id: u64) -> Result<bool, StoreError> {
    let Ok(id) = i64::try_from(id) else {
        return Ok(false);
    };
    let owned = notifications::table
        .filter(notifications::id.eq(id))
        .filter(notifications::user_id.eq(user_id));
    // Stamping only unread rows keeps the first read time; a row that is not stamped is then
    // either already read (true) or not this user's (false), which the second query tells.
    let stamped = diesel::update(owned.filter(notifications::read_at.is_null()))
        .set(notifications::read_at.eq(db_now()))
        .execute(conn)?;
    if stamped > 0 {
        return Ok(true);
    }
    Ok(diesel::select(diesel::dsl::exists(owned)).get_result::<bool>(conn)?)
}

fn unread_count(conn: &mut StoreConnection, user_id: &str) -> Result<u64, StoreError> {
    let count = notifications::table
        .filter(notifications::user_id.eq(user_id))
        .filter(notifications::read_at.is_null())
        .count()
        .get_result::<i64>(conn)?;
    columns::u64_from_db(count, "unread count")
}
