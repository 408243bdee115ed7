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
        correlation_id -> Nullable<Text>,
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

diesel::table! {
    /// Event ids the analytics consumer has counted: the marker that makes counting idempotent.
    analytics_processed (event_id) {
        event_id -> Text,
        processed_at -> Timestamp,
    }
}

diesel::table! {
    /// Events per type and UTC minute of occurrence (`minute` has no seconds or fraction).
    analytics_minute_counts (event_type, minute) {
        event_type -> Text,
        minute -> Timestamp,
        count -> BigInt,
    }
}

diesel::table! {
    /// Events per type over all time; the source of the cache's `nft:{type}:count` counters.
    analytics_totals (event_type) {
        event_type -> Text,
        total -> BigInt,
    }
}

diesel::table! {
    /// One notification per event for its user; `read_at` is set once, when first read.
    notifications (id) {
        id -> BigInt,
        event_id -> Text,
        user_id -> Text,
        event_type -> Text,
        title -> Text,
        message -> Text,
        priority -> Text,
        data_json -> Text,
        created_at -> Timestamp,
        read_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// The append-only audit log: every event once, its envelope verbatim.
    audit_log (id) {
        id -> BigInt,
        event_id -> Text,
        event_type -> Text,
        user_id -> Text,
        source -> Text,
        correlation_id -> Nullable<Text>,
        envelope_json -> Text,
        occurred_at -> Timestamp,
        recorded_at -> Timestamp,
    }
}

diesel::table! {
    /// The local ledger: one mint or burn per (operation, kind).
    ledger_entries (id) {
        id -> BigInt,
        operation_id -> Text,
        kind -> Text,
        user_id -> Text,
        tier_id -> Nullable<Integer>,
        nft_id -> Text,
        mint_address -> Text,
        signature -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// Cumulative trading volume per user.
    user_volumes (user_id) {
        user_id -> Text,
        volume -> Double,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// A user's badges: earned, activated, consumed.
    user_badges (user_id, badge_id) {
        user_id -> Text,
        badge_id -> Text,
        status -> Text,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// The NFT each user holds and the flow running for them; no row: neither.
    user_nfts (user_id) {
        user_id -> Text,
        nft_id -> Nullable<Text>,
        tier_id -> Nullable<Integer>,
        mint_address -> Nullable<Text>,
        acquired_at -> Nullable<Timestamp>,
        status -> Text,
        active_operation -> Nullable<Text>,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// Unlock and upgrade flows; `detail` is the whole flow record as JSON.
    nft_flows (operation_id) {
        operation_id -> Text,
        user_id -> Text,
        kind -> Text,
        status -> Text,
        detail -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// One counter row per feed (`operations`): the last sequence number handed out. Outlives
    /// the rows it numbered, so pruning never lets a number be reused.
    feed_counters (name) {
        name -> Text,
        last_seq -> BigInt,
    }
}

diesel::table! {
    /// The admin operations feed: every operations-topic record once, numbered in commit order.
    operations_feed (seq) {
        seq -> BigInt,
        event_id -> Text,
        event_type -> Text,
        user_id -> Text,
        envelope_json -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// Receipts of keyed domain commands: the first answer per idempotency key, stored with
    /// the change it answers.
    domain_receipts (receipt_key) {
        receipt_key -> Text,
        fingerprint -> Text,
        answer -> Text,
        events -> Text,
        created_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(nft_events, user_streams);
