//! Diesel's view of the tables in `schema.sql` (MySQL) and `src/store/sqlite.sql` (SQLite).
//!
//! `diesel.toml` points `diesel print_schema` here, but regenerate with care: the store talks to
//! both backends through one `MultiConnection`, so every column must use a SQL type both
//! backends share (`Text`, `BigInt`, `Timestamp`), not MySQL's `Varchar`/`Mediumtext`/`Datetime`
//! or SQLite's `Integer`. A unit test fails if these columns drift from either DDL file.

diesel::table! {
    /// Every stored user event, in per-user `seq` order; also the Kafka outbox
    /// (`published_at IS NULL` rows in `id` order).
    nft_events (id) {
        id -> BigInt,
        user_id -> Text,
        seq -> BigInt,
        event_id -> Text,
        event_type -> Text,
        envelope_json -> Text,
        created_at -> Timestamp,
        published_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// One counter row per user: the last sequence number handed out. Outlives the events
    /// it numbered, so pruning never lets a number be reused.
    user_streams (user_id) {
        user_id -> Text,
        last_seq -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(nft_events, user_streams);
