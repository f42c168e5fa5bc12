-- Issue 15, items 3 and 6.
-- R-X13: the sponsor, the governing law and the support contact follow where the customer
-- lives, asked on the redeem form (default: the country of purchase). NULL on redemptions
-- made before this column: their activation record's country stands in.
ALTER TABLE redemptions ADD COLUMN residence_country TEXT;
-- R-X22: the version of the offer's terms the customer accepted (the sha256 of the campaign's
-- terms in every language, promo/campaigns/terms.py); NULL for a campaign without terms.
ALTER TABLE redemptions ADD COLUMN terms_version TEXT;
-- Every version of a campaign's terms, whole, written when the campaign is saved: an auditor
-- reads the exact text a redemption's terms_version names, and so does the customer's link.
CREATE TABLE terms_versions (
    campaign_id  INTEGER NOT NULL REFERENCES campaigns (id),
    version      TEXT NOT NULL,  -- sha256 hex of `terms`
    terms        TEXT NOT NULL,  -- the canonical JSON that was hashed
    recorded_at  TEXT NOT NULL,
    PRIMARY KEY (campaign_id, version)
);
-- A campaign's definition now carries its terms (tens of kB): reading it on every redemption
-- cost 0.19 ms. Its sha256 keys the cache of parsed campaigns instead (promo/campaign_store.py),
-- and the definition is read only when it changed. NULL until the campaign is next saved.
ALTER TABLE campaigns ADD COLUMN definition_sha256 TEXT;
