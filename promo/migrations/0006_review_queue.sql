-- Manual review (R-X11, R-X12): a claim without an activation record, with a receipt.
CREATE TABLE review_claims (
    id              INTEGER PRIMARY KEY,
    campaign_id     INTEGER NOT NULL REFERENCES campaigns (id),
    account_email   TEXT NOT NULL,
    product_key     TEXT NOT NULL,
    sku             TEXT NOT NULL REFERENCES skus (sku),
    country         TEXT NOT NULL,
    purchased_at    TEXT NOT NULL,
    activated_at    TEXT NOT NULL,
    receipt_file    TEXT NOT NULL,   -- a random name in reviews.receipts_dir, outside the web root
    receipt_type    TEXT NOT NULL CHECK (receipt_type IN ('application/pdf', 'image/jpeg', 'image/png')),
    locale          TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    reason          TEXT,
    reviewer_email  TEXT,
    redemption_id   INTEGER REFERENCES redemptions (id),
    client_ip       TEXT,
    created_at      TEXT NOT NULL,
    decided_at      TEXT
);
-- One open claim per product key and campaign.
CREATE UNIQUE INDEX review_claims_open ON review_claims (campaign_id, product_key) WHERE status = 'pending';
CREATE INDEX review_claims_status ON review_claims (status, created_at);
