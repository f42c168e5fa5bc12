-- Marketer console (issue 4): campaign lifecycle, a redemption counter per campaign for
-- the optional total cap, import jobs with their outcome, low-stock alerts, API tokens.

-- Lifecycle lives beside the definition, so campaign files stay what marketers wrote.
-- Campaigns that existed before the console were published by the CLI.
ALTER TABLE campaigns ADD COLUMN published_at TEXT;
ALTER TABLE campaigns ADD COLUMN paused_at TEXT;
UPDATE campaigns SET published_at = created_at;

-- One row per campaign, bumped in the redemption transaction: a total cap is checked in
-- O(1) instead of counting redemptions.
CREATE TABLE campaign_totals (
    campaign_id  INTEGER PRIMARY KEY REFERENCES campaigns (id),
    redeemed     INTEGER NOT NULL
);
INSERT INTO campaign_totals (campaign_id, redeemed)
    SELECT campaign_id, COUNT(*) FROM redemptions GROUP BY campaign_id;

-- Uploads run in the background; their outcome (and errors by line) stays here.
CREATE TABLE import_jobs (
    id           INTEGER PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('codes', 'activations')),
    campaign_id  INTEGER REFERENCES campaigns (id),
    source       TEXT NOT NULL,
    size_bytes   INTEGER NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    imported     INTEGER,
    errors       TEXT,            -- JSON list of {field, message, line}
    error_total  INTEGER,
    actor        TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    finished_at  TEXT
);

-- A low-stock alert fires once when available codes fall below the campaign's threshold,
-- and is re-armed when a restock lifts them back to it.
CREATE TABLE stock_alerts (
    id           INTEGER PRIMARY KEY,
    campaign_id  INTEGER NOT NULL REFERENCES campaigns (id),
    threshold    INTEGER NOT NULL,
    available    INTEGER NOT NULL,
    fired_at     TEXT NOT NULL,
    rearmed_at   TEXT
);
CREATE UNIQUE INDEX stock_alerts_open ON stock_alerts (campaign_id) WHERE rearmed_at IS NULL;

-- API tokens for automation: only a hash is stored; the token acts with its owner's role.
CREATE TABLE api_tokens (
    id            INTEGER PRIMARY KEY,
    staff_id      INTEGER NOT NULL REFERENCES staff (id),
    name          TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,
    created_at    TEXT NOT NULL,
    last_used_at  TEXT,
    revoked_at    TEXT
);
CREATE INDEX api_tokens_staff ON api_tokens (staff_id);
