-- Issue 18 item 2: the campaign's redemption counter in shards, so that redemptions on
-- PostgreSQL do not all wait for one row (88-93 % of lock waits at 64 connections were on
-- it). An uncapped campaign counts each redemption on the first shard no other transaction
-- holds (SKIP LOCKED); a campaign with a total cap counts on shard 0 only, checking the cap in the same statement
-- (promo/totals.py). Readers sum the shards. The existing totals become shard 0.
CREATE TABLE campaign_totals_sharded (
    campaign_id  INTEGER NOT NULL REFERENCES campaigns (id),
    shard        INTEGER NOT NULL CHECK (shard >= 0),
    redeemed     INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, shard)
);
INSERT INTO campaign_totals_sharded (campaign_id, shard, redeemed)
    SELECT campaign_id, 0, redeemed FROM campaign_totals;
DROP TABLE campaign_totals;
ALTER TABLE campaign_totals_sharded RENAME TO campaign_totals;
