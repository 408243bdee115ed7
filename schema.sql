-- nft-event-router: the MySQL/MariaDB schema, source of truth for the store's tables.
--
-- Applied by the router itself at start-up (Store::connect), so every statement must stay
-- idempotent: CREATE TABLE IF NOT EXISTS only, with indexes declared inline (MySQL has no
-- CREATE INDEX IF NOT EXISTS). The SQLite twin is src/store/sqlite.sql and diesel's view is
-- src/store/schema.rs; a unit test fails when their tables, columns or index names drift.
--
-- Identifiers use utf8mb4_bin so user and event ids compare byte for byte, as they do on
-- SQLite; a case-insensitive collation would merge the streams of users "U1" and "u1".

-- One row per user: the last sequence number handed out. Appends lock this row first
-- (INSERT ... ON DUPLICATE KEY UPDATE), which serializes a user's appends and makes their
-- commits land in seq order. Never pruned, so a seq is never handed out twice.
CREATE TABLE IF NOT EXISTS user_streams (
    user_id  VARCHAR(128) NOT NULL,
    last_seq BIGINT       NOT NULL,
    PRIMARY KEY (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Every accepted user event, numbered per user. Doubles as the Kafka outbox: a relay reads
-- rows with published_at IS NULL in id order and stamps them once the broker acknowledges.
CREATE TABLE IF NOT EXISTS nft_events (
    id            BIGINT       NOT NULL AUTO_INCREMENT,
    user_id       VARCHAR(128) NOT NULL,
    seq           BIGINT       NOT NULL,
    event_id      VARCHAR(64)  NOT NULL,
    event_type    VARCHAR(64)  NOT NULL,
    envelope_json MEDIUMTEXT   NOT NULL,
    created_at    DATETIME(6)  NOT NULL,
    published_at  DATETIME(6)  NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_nft_events_event_id (event_id),
    UNIQUE KEY uq_nft_events_user_seq (user_id, seq),
    KEY idx_nft_events_created_at (created_at),
    KEY idx_nft_events_unpublished (published_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
