-- Where each imported code and activation record came from: its line in its import's
-- file. Provenance for support and auditors, and it lets an import name the line a
-- duplicate first appeared on without holding every row of a million-row file in memory
-- (promo/codes.py, promo/activations.py).
ALTER TABLE reward_codes ADD COLUMN source_line INTEGER;
ALTER TABLE activations ADD COLUMN source_line INTEGER;
