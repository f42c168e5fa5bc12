-- Issue 14: every attempt limit counts its window through an index, and no further than the
-- limit (SELECT COUNT(*) FROM (SELECT 1 ... LIMIT :limit)), so no check costs more as an
-- attacker tries harder.

-- The per-address sign-in cap (auth.signin_requests_since) scanned every sign-in link ever sent.
CREATE INDEX signin_tokens_account ON signin_tokens (account_email, created_at);

-- The resend limit (R-X10, outbox.sends_since) scanned the whole outbox; the reconciliation's
-- and the decision log's "first email of this redemption" look-ups use it too.
CREATE INDEX outbox_subject ON outbox (subject_ref, created_at);
