-- Findable records (issue 19, items 2 and 8): indexes only, nothing to backfill.

-- Staff actions: every audit event except consumer redemptions, newest first, filtered by
-- actor, tag, subject or time. Partial indexes hold only those events, so the redemption
-- path (nearly every event) never writes to them, and a page never reads past them. The
-- WHERE must read exactly as promo/staff_actions.py's STAFF_EVENTS for SQLite to use them.
CREATE INDEX audit_events_staff ON audit_events (seq) WHERE tag NOT LIKE 'redemption:%';
CREATE INDEX audit_events_staff_actor ON audit_events (actor, seq) WHERE tag NOT LIKE 'redemption:%';
CREATE INDEX audit_events_staff_tag ON audit_events (tag, seq) WHERE tag NOT LIKE 'redemption:%';
CREATE INDEX audit_events_staff_subject ON audit_events (subject, seq) WHERE tag NOT LIKE 'redemption:%';
CREATE INDEX audit_events_staff_time ON audit_events (created_at) WHERE tag NOT LIKE 'redemption:%';

-- Finding a redemption by the last characters of its product key or of its reward code
-- (what a customer reads out to support): an index on the last five, so the search is a
-- lookup, not a scan of every redemption or code. Codes are compared without their dashes,
-- and only issued codes are indexed (a million-code import adds nothing to it).
-- (PostgreSQL: right(product_key, 5); SQLite has substr with a negative start instead.)
CREATE INDEX redemptions_key_tail ON redemptions (substr(product_key, -5));
CREATE INDEX reward_codes_issued_tail ON reward_codes (substr(replace(code, '-', ''), -5)) WHERE issued_at IS NOT NULL;
