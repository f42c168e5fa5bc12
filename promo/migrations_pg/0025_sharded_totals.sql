-- Issue 18 item 2: the campaign's redemption counter in shards, so that redemptions do not
-- all wait for one row (88-93 % of lock waits at 64 connections were on it). An uncapped
-- campaign counts each redemption on the first shard no other transaction holds (SKIP
-- LOCKED); a campaign with a total cap counts on shard 0 only, checking the cap in the same statement (promo/totals.py). Readers
-- sum the shards. The existing totals become shard 0. Same columns as SQLite's 0025.
ALTER TABLE campaign_totals ADD COLUMN shard integer NOT NULL DEFAULT 0 CHECK (shard >= 0);
ALTER TABLE campaign_totals ALTER COLUMN shard DROP DEFAULT;
ALTER TABLE campaign_totals DROP CONSTRAINT campaign_totals_pkey;
ALTER TABLE campaign_totals ADD PRIMARY KEY (campaign_id, shard);
