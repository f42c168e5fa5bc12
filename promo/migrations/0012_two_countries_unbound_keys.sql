-- R-X2: the product must be bought *and* activated in an eligible country, two facts that
-- an activation record now carries apart. activations.country has always held where the
-- product was bought (the purchase country); activation_country is where it was activated.
-- Existing records had one country for both, so they keep meaning both. Code reads
-- COALESCE(activation_country, country), so a record written without it means both too.
ALTER TABLE activations ADD COLUMN activation_country TEXT;
UPDATE activations SET activation_country = country;

-- R-X5: a claim reaches the review queue for one of two causes: the key has no activation
-- record (R-X11), or its record names no account (the campaign does not allow unbound keys).
-- Every claim so far had the first cause.
ALTER TABLE review_claims ADD COLUMN cause TEXT NOT NULL DEFAULT 'no_activation_record'
    CHECK (cause IN ('no_activation_record', 'key_not_bound', 'held_for_review'));
-- A claim the redemption held (migration 0010: no receipt; an address of a mailbox that already
-- redeemed, R-X12) says so.
UPDATE review_claims SET cause = 'held_for_review' WHERE receipt_file IS NULL;
