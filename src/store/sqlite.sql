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
    created_at    TEXT    NOT NULL,
    published_at  TEXT    NULL,
    CONSTRAINT uq_nft_events_event_id UNIQUE (event_id),
    CONSTRAINT uq_nft_events_user_seq UNIQUE (user_id, seq)
);

CREATE INDEX IF NOT EXISTS idx_nft_events_created_at ON nft_events (created_at);
CREATE INDEX IF NOT EXISTS idx_nft_events_unpublished ON nft_events (published_at, id);
