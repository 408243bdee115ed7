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
    correlation_id VARCHAR(128) NULL,
    created_at    DATETIME(6)  NOT NULL,
    published_at  DATETIME(6)  NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_nft_events_event_id (event_id),
    UNIQUE KEY uq_nft_events_user_seq (user_id, seq),
    KEY idx_nft_events_created_at (created_at),
    KEY idx_nft_events_unpublished (published_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Analytics (consumer group nft-analytics-group). An event is counted at most once: its id goes
-- into analytics_processed in the same transaction that bumps its minute bucket and its type's
-- total, so a redelivered record finds the marker and changes nothing.
CREATE TABLE IF NOT EXISTS analytics_processed (
    event_id     VARCHAR(64) NOT NULL,
    processed_at DATETIME(6) NOT NULL,
    PRIMARY KEY (event_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Events per type and UTC minute of their occurrence (minute has no seconds or fraction).
CREATE TABLE IF NOT EXISTS analytics_minute_counts (
    event_type VARCHAR(64) NOT NULL,
    minute     DATETIME    NOT NULL,
    count      BIGINT      NOT NULL,
    PRIMARY KEY (event_type, minute)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Events per type over all time: what the nft:{eventType}:count cache counters are copied from.
-- Kept beside the minute buckets so reading a total never scans them.
CREATE TABLE IF NOT EXISTS analytics_totals (
    event_type VARCHAR(64) NOT NULL,
    total      BIGINT      NOT NULL,
    PRIMARY KEY (event_type)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One notification per event for its user (consumer group nft-notifications-group); the unique
-- event_id makes a redelivered record a no-op. Users page through theirs newest first, by id.
CREATE TABLE IF NOT EXISTS notifications (
    id         BIGINT       NOT NULL AUTO_INCREMENT,
    event_id   VARCHAR(64)  NOT NULL,
    user_id    VARCHAR(128) NOT NULL,
    event_type VARCHAR(64)  NOT NULL,
    title      VARCHAR(255) NOT NULL,
    message    TEXT         NOT NULL,
    priority   VARCHAR(16)  NOT NULL,
    data_json  MEDIUMTEXT   NOT NULL,
    created_at DATETIME(6)  NOT NULL,
    read_at    DATETIME(6)  NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_notifications_event_id (event_id),
    KEY idx_notifications_user_id (user_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The audit log (consumer group nft-audit-group): every event once, its envelope verbatim.
-- Append-only: the store has no statement that updates or deletes a row of it.
CREATE TABLE IF NOT EXISTS audit_log (
    id             BIGINT       NOT NULL AUTO_INCREMENT,
    event_id       VARCHAR(64)  NOT NULL,
    event_type     VARCHAR(64)  NOT NULL,
    user_id        VARCHAR(128) NOT NULL,
    source         VARCHAR(128) NOT NULL,
    correlation_id VARCHAR(128) NULL,
    envelope_json  MEDIUMTEXT   NOT NULL,
    occurred_at    DATETIME(6)  NOT NULL,
    recorded_at    DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_audit_log_event_id (event_id),
    KEY idx_audit_log_event_type (event_type, id),
    KEY idx_audit_log_user_id (user_id, id),
    KEY idx_audit_log_occurred_at (occurred_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The local ledger, the default chain adapter (docs/DOMAIN.md): every mint and burn, once per flow
-- operation and kind, so a resumed flow gets its first result back instead of a second NFT. A
-- ledger in the database with derived base58 addresses and signatures; not a blockchain.
CREATE TABLE IF NOT EXISTS ledger_entries (
    id           BIGINT       NOT NULL AUTO_INCREMENT,
    operation_id VARCHAR(64)  NOT NULL,
    kind         VARCHAR(8)   NOT NULL,
    user_id      VARCHAR(128) NOT NULL,
    tier_id      INT          NULL,
    nft_id       VARCHAR(64)  NOT NULL,
    mint_address VARCHAR(64)  NOT NULL,
    signature    VARCHAR(128) NOT NULL,
    created_at   DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_ledger_entries_operation_kind (operation_id, kind),
    KEY idx_ledger_entries_mint_address (mint_address)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Receipts of keyed domain commands: a trading-volume report or badge award sent with an
-- Idempotency-Key stores its first answer here, in the transaction of the change it answers,
-- so a retry (on any instance, after a restart) gets that answer back instead of a second
-- decision. `events` is JSON, [[cursor, event id], ...]. Pruned with the events.
CREATE TABLE IF NOT EXISTS domain_receipts (
    receipt_key VARCHAR(64)  NOT NULL,
    fingerprint VARCHAR(64)  NOT NULL,
    answer      TEXT         NOT NULL,
    events      TEXT         NOT NULL,
    created_at  DATETIME(6)  NOT NULL,
    PRIMARY KEY (receipt_key),
    KEY idx_domain_receipts_created_at (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The NFT domain's state per user (docs/DOMAIN.md). Written only together with the events the
-- change causes, in one transaction (through the journal), so streams and outbox agree.
CREATE TABLE IF NOT EXISTS user_volumes (
    user_id    VARCHAR(128) NOT NULL,
    volume     DOUBLE       NOT NULL,
    updated_at DATETIME(6)  NOT NULL,
    PRIMARY KEY (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- A user's badges and where each is: earned, activated, consumed.
CREATE TABLE IF NOT EXISTS user_badges (
    user_id    VARCHAR(128) NOT NULL,
    badge_id   VARCHAR(64)  NOT NULL,
    status     VARCHAR(16)  NOT NULL,
    updated_at DATETIME(6)  NOT NULL,
    PRIMARY KEY (user_id, badge_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The NFT each user holds (at most one) and the flow running for them, one row per user once
-- a flow has started; no row means no NFT and no flow. status restates the other columns for
-- readers of the table: unlocking/upgrading while a flow of that kind is active_operation,
-- else active when an NFT is held (nft_id set), else none. Written only by the guarded flow
-- changes, together with their events, so a second router instance racing on the same user
-- is refused instead of starting a second flow.
CREATE TABLE IF NOT EXISTS user_nfts (
    user_id          VARCHAR(128) NOT NULL,
    nft_id           VARCHAR(64)  NULL,
    tier_id          INT          NULL,
    mint_address     VARCHAR(64)  NULL,
    acquired_at      DATETIME(6)  NULL,
    status           VARCHAR(16)  NOT NULL,
    active_operation VARCHAR(64)  NULL,
    updated_at       DATETIME(6)  NOT NULL,
    PRIMARY KEY (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Every unlock and upgrade flow, pending or ended: detail is the whole flow record as JSON, the
-- other columns copy what the queries filter on. A router that stops mid-flow resumes or
-- compensates its pending flows (status index) from the step stored here; a user's operations
-- are listed through the user_id index.
CREATE TABLE IF NOT EXISTS nft_flows (
    operation_id VARCHAR(64)  NOT NULL,
    user_id      VARCHAR(128) NOT NULL,
    kind         VARCHAR(16)  NOT NULL,
    status       VARCHAR(16)  NOT NULL,
    detail       TEXT         NOT NULL,
    created_at   DATETIME(6)  NOT NULL,
    updated_at   DATETIME(6)  NOT NULL,
    PRIMARY KEY (operation_id),
    KEY idx_nft_flows_status (status),
    KEY idx_nft_flows_user_id (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One row per feed: the last sequence number handed out (today the one row 'operations', for
-- operations_feed). Like user_streams: a write locks the row first (INSERT ... ON DUPLICATE KEY
-- UPDATE) and holds it until commit, so the feed's writers, from any router instance, commit
-- one at a time in seq order. Never pruned, so a seq is never handed out twice.
CREATE TABLE IF NOT EXISTS feed_counters (
    name     VARCHAR(64) NOT NULL,
    last_seq BIGINT      NOT NULL,
    PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The admin operations feed (consumer group nft-operations-feed-group): every record of the
-- operations topic once (the unique event_id makes a redelivery a no-op), its envelope verbatim,
-- numbered in commit order from the 'operations' row of feed_counters. Admin sessions tail it
-- and resume from it by seq, so a reader past seq N has seen every row up to N. Pruned oldest
-- seq first, so what remains is always one unbroken run.
CREATE TABLE IF NOT EXISTS operations_feed (
    seq           BIGINT       NOT NULL,
    event_id      VARCHAR(64)  NOT NULL,
    event_type    VARCHAR(64)  NOT NULL,
    user_id       VARCHAR(128) NOT NULL,
    envelope_json MEDIUMTEXT   NOT NULL,
    created_at    DATETIME(6)  NOT NULL,
    PRIMARY KEY (seq),
    UNIQUE KEY uq_operations_feed_event_id (event_id),
    KEY idx_operations_feed_created_at (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
