-- The SQLite twin of schema.sql (the source of truth); same tables, columns and index names.
-- Applied idempotently at start-up by Store::connect. A unit test fails if the two drift.
--
-- Types: ids and sequence numbers are 64-bit INTEGERs; timestamps are TEXT in diesel's UTC
-- form 'YYYY-MM-DD HH:MM:SS[.ffffff]', which sorts chronologically as text, so the
-- created_at index serves pruning exactly as DATETIME(6) does on MySQL. SQLite ignores
-- declared lengths; the store checks them in Rust so both backends refuse the same inputs.

CREATE TABLE IF NOT EXISTS user_streams (
    user_id  TEXT    NOT NULL PRIMARY KEY,
    last_seq INTEGER NOT NULL
);

-- AUTOINCREMENT (not just INTEGER PRIMARY KEY) so an id is never reused after pruning: the
-- outbox relay reads in id order and must never see a new row behind its position.
CREATE TABLE IF NOT EXISTS nft_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       TEXT    NOT NULL,
    seq           INTEGER NOT NULL,
    event_id      TEXT    NOT NULL,
    event_type    TEXT    NOT NULL,
    envelope_json TEXT    NOT NULL,
    correlation_id TEXT    NULL,
    created_at    TEXT    NOT NULL,
    published_at  TEXT    NULL,
    CONSTRAINT uq_nft_events_event_id UNIQUE (event_id),
    CONSTRAINT uq_nft_events_user_seq UNIQUE (user_id, seq)
);

CREATE INDEX IF NOT EXISTS idx_nft_events_created_at ON nft_events (created_at);
CREATE INDEX IF NOT EXISTS idx_nft_events_unpublished ON nft_events (published_at, id);

CREATE TABLE IF NOT EXISTS analytics_processed (
    event_id     TEXT NOT NULL PRIMARY KEY,
    processed_at TEXT NOT NULL
);

-- minute is always written whole ('YYYY-MM-DD HH:MM:00', no fraction), so equal minutes are
-- equal texts and the primary key merges them.
CREATE TABLE IF NOT EXISTS analytics_minute_counts (
    event_type TEXT    NOT NULL,
    minute     TEXT    NOT NULL,
    count      INTEGER NOT NULL,
    PRIMARY KEY (event_type, minute)
);

CREATE TABLE IF NOT EXISTS analytics_totals (
    event_type TEXT    NOT NULL PRIMARY KEY,
    total      INTEGER NOT NULL
);

-- AUTOINCREMENT, as for nft_events, so a page cursor (before_id) always names one position.
CREATE TABLE IF NOT EXISTS notifications (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id   TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    event_type TEXT    NOT NULL,
    title      TEXT    NOT NULL,
    message    TEXT    NOT NULL,
    priority   TEXT    NOT NULL,
    data_json  TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    read_at    TEXT    NULL,
    CONSTRAINT uq_notifications_event_id UNIQUE (event_id)
);

CREATE INDEX IF NOT EXISTS idx_notifications_user_id ON notifications (user_id, id);

CREATE TABLE IF NOT EXISTS audit_log (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id       TEXT    NOT NULL,
    event_type     TEXT    NOT NULL,
    user_id        TEXT    NOT NULL,
    source         TEXT    NOT NULL,
    correlation_id TEXT    NULL,
    envelope_json  TEXT    NOT NULL,
    occurred_at    TEXT    NOT NULL,
    recorded_at    TEXT    NOT NULL,
    CONSTRAINT uq_audit_log_event_id UNIQUE (event_id)
);

CREATE INDEX IF NOT EXISTS idx_audit_log_event_type ON audit_log (event_type, id);
CREATE INDEX IF NOT EXISTS idx_audit_log_user_id ON audit_log (user_id, id);
CREATE INDEX IF NOT EXISTS idx_audit_log_occurred_at ON audit_log (occurred_at);

CREATE TABLE IF NOT EXISTS ledger_entries (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    operation_id TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    user_id      TEXT    NOT NULL,
    tier_id      INTEGER NULL,
    nft_id       TEXT    NOT NULL,
    mint_address TEXT    NOT NULL,
    signature    TEXT    NOT NULL,
    created_at   TEXT    NOT NULL,
    CONSTRAINT uq_ledger_entries_operation_kind UNIQUE (operation_id, kind)
);

CREATE INDEX IF NOT EXISTS idx_ledger_entries_mint_address ON ledger_entries (mint_address);

-- Receipts of keyed domain commands (see schema.sql).
CREATE TABLE IF NOT EXISTS domain_receipts (
    receipt_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    answer      TEXT NOT NULL,
    events      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (receipt_key)
);

CREATE INDEX IF NOT EXISTS idx_domain_receipts_created_at ON domain_receipts (created_at);

CREATE TABLE IF NOT EXISTS user_volumes (
    user_id    TEXT NOT NULL,
    volume     REAL NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (user_id)
);

CREATE TABLE IF NOT EXISTS user_badges (
    user_id    TEXT NOT NULL,
    badge_id   TEXT NOT NULL,
    status     TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (user_id, badge_id)
);

CREATE TABLE IF NOT EXISTS user_nfts (
    user_id          TEXT    NOT NULL,
    nft_id           TEXT    NULL,
    tier_id          INTEGER NULL,
    mint_address     TEXT    NULL,
    acquired_at      TEXT    NULL,
    status           TEXT    NOT NULL,
    active_operation TEXT    NULL,
    updated_at       TEXT    NOT NULL,
    PRIMARY KEY (user_id)
);

CREATE TABLE IF NOT EXISTS nft_flows (
    operation_id TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    status       TEXT NOT NULL,
    detail       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (operation_id)
);

CREATE INDEX IF NOT EXISTS idx_nft_flows_status ON nft_flows (status);
CREATE INDEX IF NOT EXISTS idx_nft_flows_user_id ON nft_flows (user_id);

CREATE TABLE IF NOT EXISTS feed_counters (
    name     TEXT    NOT NULL PRIMARY KEY,
    last_seq INTEGER NOT NULL
);

-- seq is assigned from feed_counters, never by SQLite, hence a plain primary key.
CREATE TABLE IF NOT EXISTS operations_feed (
    seq           INTEGER NOT NULL PRIMARY KEY,
    event_id      TEXT    NOT NULL,
    event_type    TEXT    NOT NULL,
    user_id       TEXT    NOT NULL,
    envelope_json TEXT    NOT NULL,
    created_at    TEXT    NOT NULL,
    CONSTRAINT uq_operations_feed_event_id UNIQUE (event_id)
);

CREATE INDEX IF NOT EXISTS idx_operations_feed_created_at ON operations_feed (created_at);
