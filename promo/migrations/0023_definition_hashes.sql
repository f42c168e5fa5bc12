-- Campaigns saved before migration 0013 had no definition_sha256 until their next save, and
-- each read of one missed the cache of parsed campaigns (promo/campaign_store.py): a read of
-- the whole definition and a hash, on every redemption (90 µs instead of 11 µs measured).
-- sha256_hex is promo.db.sha256_hex, registered on every connection.
UPDATE campaigns SET definition_sha256 = sha256_hex(definition) WHERE definition_sha256 IS NULL;
