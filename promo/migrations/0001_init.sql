-- Promo schema, version 1. Never edit a released migration: add 0002_….sql instead.
-- Portable SQL (SQLite now, PostgreSQL next). Times are TEXT in UTC, fixed width
-- 'YYYY-MM-DDTHH:MM:SS.ffffffZ', so text order is time order. Days of purchase and
-- activation may be a bare 'YYYY-MM-DD' when the evidence gives no time of day.

-- The SKU catalog (RULES.md, part S: products have attributes).
CREATE TABLE skus (
    sku      TEXT PRIMARY KEY,
    name     TEXT NOT NULL,
    family   TEXT NOT NULL,
    edition  TEXT NOT NULL,
    channel  TEXT NOT NULL CHECK (channel IN ('fpp', 'posa', 'esd', 'subscription', 'military', 'trial', 'nfr', 'volume')),
    term     TEXT NOT NULL CHECK (term IN ('annual', 'monthly', 'perpetual'))
);

-- Where a SKU is sold; no rows means "sold everywhere" (R-X3 per-country availability).
CREATE TABLE sku_countries (
    sku      TEXT NOT NULL REFERENCES skus (sku),
    country  TEXT NOT NULL,
    PRIMARY KEY (sku, country)
);

CREATE TABLE campaigns (
    id          INTEGER PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    definition  TEXT NOT NULL,   -- canonical JSON of the campaign file
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- Purchase evidence: one row per product key (normalised: upper case, no separators).
CREATE TABLE activations (
    product_key    TEXT PRIMARY KEY,
    sku            TEXT NOT NULL REFERENCES skus (sku),
    country        TEXT NOT NULL,
    purchased_at   TEXT NOT NULL,
    activated_at   TEXT NOT NULL,
    account_email  TEXT,          -- lower case; the account the key is bound to, if known
    imported_at    TEXT NOT NULL,
    import_batch   TEXT NOT NULL
);

CREATE TABLE code_batches (
    id           INTEGER PRIMARY KEY,
    campaign_id  INTEGER NOT NULL REFERENCES campaigns (id),
    source       TEXT NOT NULL,
    code_count   INTEGER NOT NULL,
    imported_at  TEXT NOT NULL
);

CREATE TABLE reward_codes (
    id           INTEGER PRIMARY KEY,
    campaign_id  INTEGER NOT NULL REFERENCES campaigns (id),
    batch_id     INTEGER NOT NULL REFERENCES code_batches (id),
    code         TEXT NOT NULL UNIQUE,
    expires_at   TEXT NOT NULL,   -- the code's own expiry, else the campaign's stated one
    issued_at    TEXT,
    voided_at    TEXT
);
-- Finding a free code must not slow down as codes are issued: index only the free ones.
CREATE INDEX reward_codes_available ON reward_codes (campaign_id, expires_at, id)
    WHERE issued_at IS NULL AND voided_at IS NULL;

-- Accepted redemptions. The UNIQUE constraints are the last line of defence:
-- R-X6 (one reward per account: slot runs 1..limit) and one redemption per product key.
CREATE TABLE redemptions (
    id                 INTEGER PRIMARY KEY,
    campaign_id        INTEGER NOT NULL REFERENCES campaigns (id),
    account_email      TEXT NOT NULL,
    slot               INTEGER NOT NULL CHECK (slot >= 1),
    product_key        TEXT NOT NULL,
    code_id            INTEGER NOT NULL UNIQUE REFERENCES reward_codes (id),
    terms_url          TEXT NOT NULL,
    terms_accepted_at  TEXT NOT NULL,  -- R-X8: the acceptance is recorded
    redeemed_at        TEXT NOT NULL,
    client_ip          TEXT,
    UNIQUE (campaign_id, account_email, slot),
    UNIQUE (campaign_id, product_key)
);
CREATE INDEX redemptions_account ON redemptions (account_email);

-- The decision log: every attempt, accepted or refused, with the rules that failed.
CREATE TABLE redemption_attempts (
    id               INTEGER PRIMARY KEY,
    campaign_id      INTEGER NOT NULL REFERENCES campaigns (id),
    account_email    TEXT NOT NULL,
    idempotency_key  TEXT,
    product_key      TEXT NOT NULL,
    sku              TEXT,
    country          TEXT,
    outcome          TEXT NOT NULL CHECK (outcome IN ('redeemed', 'refused')),
    failed_rules     TEXT NOT NULL,   -- ' R-X2 R-X4 ' (spaces around each) for LIKE '% R-X2 %'
    result           TEXT NOT NULL,   -- JSON of what the caller was told (code masked)
    redemption_id    INTEGER REFERENCES redemptions (id),
    attempted_at     TEXT NOT NULL,
    client_ip        TEXT,
    UNIQUE (campaign_id, account_email, idempotency_key)
);
CREATE INDEX redemption_attempts_time ON redemption_attempts (campaign_id, attempted_at);
CREATE INDEX redemption_attempts_key ON redemption_attempts (product_key);

-- Transactional outbox: written in the same transaction as what it announces.
CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY,
    message_id       TEXT NOT NULL UNIQUE,
    template         TEXT NOT NULL,
    recipient        TEXT NOT NULL,
    subject_ref      TEXT NOT NULL,   -- what the template renders from, e.g. 'redemption:42'
    status           TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'failed')),
    attempts         INTEGER NOT NULL,
    next_attempt_at  TEXT NOT NULL,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    sent_at          TEXT
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status = 'queued';

-- Append-only, hash-chained audit log (tags 'source:subject:action').
CREATE TABLE audit_events (
    seq         INTEGER PRIMARY KEY,
    tag         TEXT NOT NULL,
    actor       TEXT NOT NULL,
    subject     TEXT NOT NULL,
    ip          TEXT,
    data        TEXT NOT NULL,   -- canonical JSON; reward codes masked
    created_at  TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE
);
