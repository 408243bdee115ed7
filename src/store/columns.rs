//! What every table's queries share: column widths checked before writing, the time precision
//! both backends keep, and conversions of 64-bit ids and counters read back.
//!
//! SQLite ignores declared lengths and stores any string; MySQL in strict mode refuses one that
//! does not fit. Checking widths here, before any statement runs, makes both backends refuse
//! exactly the same inputs, and gives the caller a message naming the field.

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};

use super::error::StoreError;

/// Column widths from `schema.sql`, in characters (MySQL's unit for VARCHAR).
pub(crate) const MAX_USER_ID: usize = 128;
pub(crate) const MAX_EVENT_ID: usize = 64;
pub(crate) const MAX_EVENT_TYPE: usize = 64;
pub(crate) const MAX_TITLE: usize = 255;
pub(crate) const MAX_SOURCE: usize = 128;
pub(crate) const MAX_CORRELATION_ID: usize = 128;

/// MySQL's `TEXT` and `MEDIUMTEXT` limits, in bytes (their unit, unlike VARCHAR's).
pub(crate) const MAX_TEXT_BYTES: usize = 65_535;
pub(crate) const MAX_MEDIUMTEXT_BYTES: usize = 16_777_215;

/// An identifier column: required, and at most `max` characters.
pub(crate) fn check_id(name: &str, value: &str, max: usize) -> Result<(), StoreError> {
    if value.is_empty() {
        return Err(StoreError::InvalidEvent(format!("{name} is empty")));
    }
    check_chars(name, value, max)
}

/// A VARCHAR column that may be empty: at most `max` characters.
pub(crate) fn check_chars(name: &str, value: &str, max: usize) -> Result<(), StoreError> {
    if value.chars().count() > max {
        return Err(StoreError::InvalidEvent(format!(
            "{name} is longer than {max} characters"
        )));
    }
    Ok(())
}

/// A TEXT-family column: at most `max` bytes of UTF-8.
pub(crate) fn check_bytes(name: &str, value: &str, max: usize) -> Result<(), StoreError> {
    if value.len() > max {
        return Err(StoreError::InvalidEvent(format!(
            "{name} is longer than {max} bytes"
        )));
    }
    Ok(())
}

/// A time as stored: whole microseconds, UTC. Both backends keep microseconds (MySQL's
/// `DATETIME(6)`, diesel's SQLite text form), so truncating before writing makes what a caller
/// gets back from a write equal to what a later read returns; left alone, MySQL would round and
/// SQLite keep nanoseconds.
pub(crate) fn db_time(at: DateTime<Utc>) -> NaiveDateTime {
    at.trunc_subsecs(6).naive_utc()
}

/// The current time, as stored.
pub(crate) fn db_now() -> NaiveDateTime {
    db_time(Utc::now())
}

/// A row id, sequence number or counter read back. The store never writes a negative one, so
/// one found is reported rather than wrapped into a huge `u64`.
pub(crate) fn u64_from_db(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative {what} {value}")))
}

/// A caller's id or position bound, for comparison with a BIGINT column. Past `i64::MAX` no row
/// can exist, so clamping keeps the query valid (and its answer right) instead of failing.
pub(crate) fn i64_clamped(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A caller's row limit as SQL `LIMIT`.
pub(crate) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Serializes stored JSON text as the JSON it is (an object in the API's response, not a
/// string holding one); text that is somehow not JSON is served as a string.
pub(crate) fn as_json<S: serde::Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
    use serde::Serialize;
    match serde_json::from_str::<&serde_json::value::RawValue>(text) {
        Ok(raw) => raw.serialize(s),
        Err(_) => s.serialize_str(text),
    }
}
