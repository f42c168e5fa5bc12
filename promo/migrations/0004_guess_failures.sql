-- Failed product-key attempts (R-X11 unknown key, R-X5 somebody else's key) are flagged when
-- logged, and counted through partial indexes that hold only those rows: the guessing
-- limit then costs O(limit) per request, not a scan of every attempt from an address.
ALTER TABLE redemption_attempts ADD COLUMN guess_failure INTEGER NOT NULL DEFAULT 0;
UPDATE redemption_attempts SET guess_failure = 1
    WHERE outcome = 'refused' AND (failed_rules LIKE '% R-X11 %' OR failed_rules LIKE '% R-X5 %');
CREATE INDEX redemption_attempts_guess_account ON redemption_attempts (account_email, attempted_at) WHERE guess_failure = 1;
CREATE INDEX redemption_attempts_guess_ip ON redemption_attempts (client_ip, attempted_at) WHERE guess_failure = 1;
