-- R-X12: the redemption itself can hold a claim for manual review (an address that shares its
-- mailbox with an account that already redeemed the campaign, see promo/identifiers.py). Such a
-- claim has an activation record and no receipt, so the receipt becomes optional: both columns
-- are set (a consumer's claim, R-X11) or both are NULL (a held claim). SQLite cannot drop a
-- NOT NULL constraint, so the table is rebuilt with the same columns in the same order.
CREATE TABLE review_claims_0010 (
    id              INTEGER PRIMARY KEY,
    campaign_id     INTEGER NOT NULL REFERENCES campaigns (id),
    account_email   TEXT NOT NULL,
    product_key     TEXT NOT NULL,
    sku             TEXT NOT NULL REFERENCES skus (sku),
    country         TEXT NOT NULL,
    purchased_at    TEXT NOT NULL,
    activated_at    TEXT NOT NULL,
    receipt_file    TEXT,            -- a random name in reviews.receipts_dir; NULL: held by the redemption
    receipt_type    TEXT CHECK (receipt_type IN ('application/pdf', 'image/jpeg', 'image/png')),
    locale          TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    reason          TEXT,
    reviewer_email  TEXT,
    redemption_id   INTEGER REFERENCES redemptions (id),
    client_ip       TEXT,
    created_at      TEXT NOT NULL,
    decided_at      TEXT,
    CHECK ((receipt_file IS NULL) = (receipt_type IS NULL))
);
INSERT INTO review_claims_0010 SELECT * FROM review_claims;
DROP TABLE review_claims;
ALTER TABLE review_claims_0010 RENAME TO review_claims;
-- One open claim per product key and campaign.
CREATE UNIQUE INDEX review_claims_open ON review_claims (campaign_id, product_key) WHERE status = 'pending';
CREATE INDEX review_claims_status ON review_claims (status, created_at);
