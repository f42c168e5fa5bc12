-- Campaign dashboards (issue 19): figures from maintained counters and indexed ranges, so
-- a dashboard, the overview and the campaign list cost the same at a million codes as at
-- ten, instead of a scan of every code, redemption and decision per view.

-- Attempts per campaign, hour and outcome ('redeemed', 'refused'), refusals per reason
-- ('refused_for', reason 'R-X4 product_excluded': a refusal counts once per reason it
-- failed) and the campaign's emails sent ('mail_sent'): upserted in the transaction that
-- logs the attempt or marks the email sent (promo/activity.py). `hour` is the
-- start of the campaign-local hour as a UTC instant (db_time text), so days and hours in the
-- campaign's zone (also +05:30 or +05:45 ones) are sums of whole rows. No hot row for many
-- writers (PostgreSQL): a row per hour, outcome and shard (the attempt's id modulo 4), not
-- one per campaign. Every figure is a range of the key. SQLite stores it clustered by it.
CREATE TABLE campaign_activity (
    campaign_id  INTEGER NOT NULL REFERENCES campaigns (id),
    outcome      TEXT NOT NULL CHECK (outcome IN ('redeemed', 'refused', 'refused_for', 'mail_sent')),
    hour         TEXT NOT NULL,
    reason       TEXT NOT NULL,   -- '' but for 'refused_for'
    shard        INTEGER NOT NULL,
    n            INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, outcome, hour, reason, shard)
) WITHOUT ROWID;

-- The decisions logged before this migration, in UTC hours (exact for every zone a whole
-- number of hours from UTC; a +05:30 campaign's older hours start half an hour off).
INSERT INTO campaign_activity (campaign_id, outcome, hour, reason, shard, n)
    SELECT campaign_id, outcome, substr(attempted_at, 1, 13) || ':00:00.000000Z', '', 0, COUNT(*)
    FROM redemption_attempts GROUP BY campaign_id, outcome, substr(attempted_at, 1, 13);
INSERT INTO campaign_activity (campaign_id, outcome, hour, reason, shard, n)
    SELECT a.campaign_id, 'refused_for', substr(a.attempted_at, 1, 13) || ':00:00.000000Z',
           json_extract(f.value, '$.rule') || ' ' || json_extract(f.value, '$.reason'), 0, COUNT(DISTINCT a.id)
    FROM redemption_attempts a, json_each(a.result, '$.failures') f
    WHERE a.outcome = 'refused'
    GROUP BY a.campaign_id, substr(a.attempted_at, 1, 13), json_extract(f.value, '$.rule') || ' ' || json_extract(f.value, '$.reason');

-- Which campaign an email belongs to (reward codes, resends, review outcomes, stock alerts),
-- so its delivery state is counted per campaign: the few queued and failed ones through this
-- partial index, the many sent ones by the 'mail_sent' counter above.
ALTER TABLE outbox ADD COLUMN campaign_id INTEGER REFERENCES campaigns (id);
UPDATE outbox SET campaign_id = (SELECT r.campaign_id FROM redemptions r WHERE r.id = CAST(substr(outbox.subject_ref, 12) AS INTEGER))
    WHERE subject_ref LIKE 'redemption:%';
UPDATE outbox SET campaign_id = (SELECT c.campaign_id FROM review_claims c WHERE c.id = CAST(substr(outbox.subject_ref, 8) AS INTEGER))
    WHERE subject_ref LIKE 'review:%';
UPDATE outbox SET campaign_id = (SELECT s.campaign_id FROM stock_alerts s WHERE s.id = CAST(substr(outbox.subject_ref, 13) AS INTEGER))
    WHERE subject_ref LIKE 'stock-alert:%';
CREATE INDEX outbox_campaign_unsent ON outbox (campaign_id, status) WHERE status IN ('queued', 'failed');
INSERT INTO campaign_activity (campaign_id, outcome, hour, reason, shard, n)
    SELECT campaign_id, 'mail_sent', substr(sent_at, 1, 13) || ':00:00.000000Z', '', 0, COUNT(*)
    FROM outbox WHERE status = 'sent' AND campaign_id IS NOT NULL GROUP BY campaign_id, substr(sent_at, 1, 13);

-- Stock without reading the pool: codes per batch are known at import, issued codes are
-- campaign_totals.redeemed, voided ones are counted here when a batch is voided; only codes
-- past their expiry are counted from the index of free codes (few, while a campaign runs).
ALTER TABLE code_batches ADD COLUMN voided INTEGER NOT NULL DEFAULT 0;
UPDATE code_batches SET voided = (SELECT COUNT(*) FROM reward_codes c
    WHERE c.batch_id = code_batches.id AND c.issued_at IS NULL AND c.voided_at IS NOT NULL);
CREATE INDEX code_batches_campaign ON code_batches (campaign_id);
