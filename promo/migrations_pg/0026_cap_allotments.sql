-- Issue 18 item 2: a campaign's total cap shared out among its counter rows as allotments
-- (escrow), so that redemptions of a capped campaign do not all wait for one row (they did:
-- 55-96/s). Same columns as SQLite's 0026; promo/totals.py makes the allotments on the first
-- capped redemption that needs them.
ALTER TABLE campaign_totals ADD COLUMN allotment bigint, ADD COLUMN cap_basis bigint;
