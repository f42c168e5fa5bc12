-- Issue 18: the audit chain's position is its own column. On PostgreSQL an event is
-- appended unsealed and sealed into the chain a moment later (promo/audit_seal.py), so its
-- place in the chain (chain_seq) is not its row id (seq); SQLite, one writer, keeps
-- sealing at append time, so here chain_seq = seq except after a copy from PostgreSQL.
-- The same columns as PostgreSQL's (promo db copy moves rows column by column); prev_hash
-- and hash stay NOT NULL here: SQLite never holds an unsealed event.
ALTER TABLE audit_events ADD COLUMN chain_seq INTEGER;
ALTER TABLE audit_events ADD COLUMN appended_at TEXT;  -- set on PostgreSQL only (how long an event waited to be sealed)
UPDATE audit_events SET chain_seq = seq;  -- every event so far was chained at its id: their hashes still verify
CREATE UNIQUE INDEX audit_events_chain ON audit_events (chain_seq);
