-- Consumer journey: sign-in links, sessions, the language of each email, mail rate limits.

-- Single-use sign-in links: the signed token carries `jti`; using it sets used_at.
CREATE TABLE signin_tokens (
    jti            TEXT PRIMARY KEY,
    account_email  TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    used_at        TEXT
);

-- Server-side sessions. The cookie holds a random id; only its SHA-256 is stored.
CREATE TABLE sessions (
    id_hash        TEXT PRIMARY KEY,
    account_email  TEXT NOT NULL,
    csrf_token     TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    last_seen_at   TEXT NOT NULL,
    ended_at       TEXT
);
CREATE INDEX sessions_account ON sessions (account_email);

-- The language an email is written in (the user's at the time it was queued).
ALTER TABLE outbox ADD COLUMN locale TEXT NOT NULL DEFAULT 'en';

-- What a template needs beyond its subject_ref (e.g. a sign-in link). Cleared once sent
-- when it holds a secret.
ALTER TABLE outbox ADD COLUMN payload TEXT;
