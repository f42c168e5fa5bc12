-- Issue 18 item 2: a campaign's total cap shared out among its counter rows as allotments
-- (escrow), so that redemptions of a capped campaign do not all wait for one row (they did:
-- 55-96/s on PostgreSQL). A capped redemption counts on a row below its allotment; the
-- allotments add up to the cap they were made for (cap_basis; NULL: not made, or an uncapped
-- count since). promo/totals.py makes them on the first capped redemption that needs them.
ALTER TABLE campaign_totals ADD COLUMN allotment INTEGER;
ALTER TABLE campaign_totals ADD COLUMN cap_basis INTEGER;
