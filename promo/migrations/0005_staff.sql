-- Staff: marketers, auditors, support and admins, with their own sign-in and sessions.
CREATE TABLE staff (
    id               INTEGER PRIMARY KEY,
    email            TEXT NOT NULL UNIQUE,   -- lower case
    role             TEXT NOT NULL CHECK (role IN ('admin', 'marketer', 'auditor', 'support')),
    password_hash    TEXT NOT NULL,          -- argon2id
    failed_attempts  INTEGER NOT NULL DEFAULT 0,  -- consecutive failures
    locked_until     TEXT,
    created_at       TEXT NOT NULL,
    disabled_at      TEXT
);

-- Every staff sign-in attempt (also an audit event); counted per IP for rate limits.
CREATE TABLE staff_signin_attempts (
    id           INTEGER PRIMARY KEY,
    email        TEXT NOT NULL,
    ip           TEXT,
    succeeded    INTEGER NOT NULL,
    attempted_at TEXT NOT NULL
);
CREATE INDEX staff_signin_attempts_ip ON staff_signin_attempts (ip, attempted_at) WHERE succeeded = 0;

CREATE TABLE staff_sessions (
    id_hash       TEXT PRIMARY KEY,
    staff_id      INTEGER NOT NULL REFERENCES staff (id),
    csrf_token    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL,
    ended_at      TEXT
);
