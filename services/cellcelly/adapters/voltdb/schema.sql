-- CellCelly balance store on VoltDB: every table is partitioned on the subscriber, so everything one
-- charging commit touches lives in one partition and one single-partition procedure writes it.
-- Loaded by cellcelly.adapters.balance_voltdb.ensure_schema (statement by statement, then the
-- procedure classes, then procedures.sql). Forms of the bodies: cellcelly.codec, as JSON.

-- the account without its sessions (codec.header_to_list); `version` counts commits (optimistic check)
CREATE TABLE account (
    msisdn  VARCHAR(32 BYTES) NOT NULL,
    version BIGINT NOT NULL,
    header  VARCHAR(1048576 BYTES) NOT NULL,
    PRIMARY KEY (msisdn)
);
PARTITION TABLE account ON COLUMN msisdn;

-- one row per live or recently finished session (codec.session_to_list), written only when it changes
CREATE TABLE account_session (
    msisdn     VARCHAR(32 BYTES) NOT NULL,
    session_id VARCHAR(1024 BYTES) NOT NULL,
    body       VARCHAR(1048576 BYTES) NOT NULL,
    PRIMARY KEY (msisdn, session_id)
);
PARTITION TABLE account_session ON COLUMN msisdn;
-- for the session-owner lookup (a multi-partition read; see the adapter's docstring)
CREATE INDEX account_session_by_id ON account_session (session_id);

-- events waiting for the relay (codec.event_to_dict). (uid, idx) identifies an event cluster-wide:
-- uid is the committing transaction's VoltDB unique id, idx its place in that commit.
CREATE TABLE outbox (
    msisdn VARCHAR(32 BYTES) NOT NULL,
    uid    BIGINT NOT NULL,
    idx    INTEGER NOT NULL,
    body   VARCHAR(65536 BYTES) NOT NULL,
    PRIMARY KEY (msisdn, uid, idx)
);
PARTITION TABLE outbox ON COLUMN msisdn;
CREATE INDEX outbox_order ON outbox (uid, idx);

-- multi-partition reads off the charging path
CREATE PROCEDURE BalanceSessionOwner AS
    SELECT msisdn FROM account_session WHERE session_id = ? ORDER BY msisdn LIMIT 1;
CREATE PROCEDURE BalanceOutboxSize AS SELECT COUNT(*) FROM outbox;
CREATE PROCEDURE BalanceMsisdns AS SELECT msisdn FROM account WHERE msisdn > ? ORDER BY msisdn LIMIT ?;
