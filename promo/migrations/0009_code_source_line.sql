-- Where each imported code came from: its line in its batch's file. Provenance for
-- support and auditors, and it lets an import name the line a duplicate first appeared
-- on without holding every code of a million-row file in memory (promo/codes.py).
ALTER TABLE reward_codes ADD COLUMN source_line INTEGER;
