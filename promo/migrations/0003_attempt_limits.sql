-- Counting recent failed product-key attempts per account and per IP (guessing limits).
CREATE INDEX redemption_attempts_account ON redemption_attempts (account_email, attempted_at);
CREATE INDEX redemption_attempts_ip ON redemption_attempts (client_ip, attempted_at);
