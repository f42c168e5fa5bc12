-- Issue 18: no hot row on the audit chain. An event is inserted unsealed (chain_seq,
-- prev_hash and hash NULL) by the transaction that makes the change, with no lock on a
-- chain head; promo/audit_seal.py chains committed events a moment later, one sealer at a
-- time (advisory lock 7001). Every event so far was chained at its id, so chain_seq = seq
-- keeps their hashes valid.
ALTER TABLE audit_events ADD COLUMN chain_seq bigint;
-- When the event was inserted (the database's clock): `promo audit verify --no-seal` names
-- events left unsealed too long. Added without a default first so that existing rows are
-- not rewritten (their NULL: sealed long ago), then new rows get the clock.
ALTER TABLE audit_events ADD COLUMN appended_at timestamptz;
ALTER TABLE audit_events ALTER COLUMN appended_at SET DEFAULT clock_timestamp();
UPDATE audit_events SET chain_seq = seq;
ALTER TABLE audit_events ALTER COLUMN prev_hash DROP NOT NULL, ALTER COLUMN hash DROP NOT NULL;
-- Sealed whole or not at all. hash keeps its UNIQUE: NULLs are distinct, so unsealed
-- events never collide, and sealing only ever writes a new digest.
ALTER TABLE audit_events ADD CONSTRAINT audit_events_sealed_whole CHECK (
    (chain_seq IS NULL AND prev_hash IS NULL AND hash IS NULL)
    OR (chain_seq IS NOT NULL AND prev_hash IS NOT NULL AND hash IS NOT NULL));
-- One event per chain position: a second sealer (a bug) could never fork the chain.
CREATE UNIQUE INDEX audit_events_chain ON audit_events (chain_seq);
-- What the sealer reads each round: small, since events leave it within a round or two.
CREATE INDEX audit_events_unsealed ON audit_events (seq) WHERE chain_seq IS NULL;
