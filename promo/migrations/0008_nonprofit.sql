-- The nonprofit donation program (issue 8; RULES.md R-N1 … R-N9, R-V1 … R-V8).

-- Donation products carry a class (R-N2 limits are per class): desktop, cal,
-- windows_server_standard, server. NULL for products outside the program.
ALTER TABLE skus ADD COLUMN product_class TEXT
    CHECK (product_class IS NULL OR product_class IN ('desktop', 'cal', 'windows_server_standard', 'server'));

-- Licence keys are reward codes of the program's pool, one pool per product.
ALTER TABLE reward_codes ADD COLUMN sku TEXT REFERENCES skus (sku);
CREATE INDEX reward_codes_available_sku ON reward_codes (campaign_id, sku, expires_at, id)
    WHERE issued_at IS NULL AND voided_at IS NULL AND sku IS NOT NULL;

CREATE TABLE organisations (
    id                   INTEGER PRIMARY KEY,
    campaign_id          INTEGER NOT NULL REFERENCES campaigns (id),
    holder_email         TEXT NOT NULL,   -- the account holder (R-V2), lower case
    name                 TEXT NOT NULL,
    short_name           TEXT NOT NULL,   -- the part after '@' in validation codes (R-V1)
    country              TEXT NOT NULL,
    registration_number  TEXT NOT NULL,
    mission              TEXT NOT NULL,
    org_type             TEXT NOT NULL,
    health_kind          TEXT,            -- for health-care organisations: the R-N6 exception, if any
    non_discrimination   INTEGER NOT NULL, -- R-N7 declaration
    status               TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    failed_rules         TEXT NOT NULL,   -- rules the registration fails, as checked at submission
    reason               TEXT,
    reviewer_email       TEXT,
    created_at           TEXT NOT NULL,
    decided_at           TEXT,
    UNIQUE (campaign_id, short_name),
    UNIQUE (campaign_id, country, registration_number)
);
CREATE INDEX organisations_holder ON organisations (holder_email);
CREATE INDEX organisations_status ON organisations (status, created_at);

-- Validation codes (R-V1 … R-V8): `token@ShortName`, valid until expires_at; a refresh
-- replaces a code (replaced_at) with a new row.
CREATE TABLE validation_codes (
    id               INTEGER PRIMARY KEY,
    organisation_id  INTEGER NOT NULL REFERENCES organisations (id),
    code             TEXT NOT NULL UNIQUE,
    first_name       TEXT NOT NULL,
    last_name        TEXT NOT NULL,
    email            TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    expires_at       TEXT NOT NULL,
    replaced_at      TEXT,
    replaces_id      INTEGER REFERENCES validation_codes (id)
);
CREATE INDEX validation_codes_org ON validation_codes (organisation_id);

-- Partners that confirm validation codes (R-V6); only a hash of their token is kept.
CREATE TABLE partners (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);

-- Every use of a code: a partner's verification or a donation request (R-V6, R-V7).
CREATE TABLE validation_code_uses (
    id          INTEGER PRIMARY KEY,
    code_id     INTEGER REFERENCES validation_codes (id),   -- NULL: no such code
    partner_id  INTEGER REFERENCES partners (id),
    purpose     TEXT NOT NULL CHECK (purpose IN ('verify', 'request')),
    valid       INTEGER NOT NULL,
    used_at     TEXT NOT NULL
);
CREATE INDEX validation_code_uses_partner ON validation_code_uses (partner_id, used_at) WHERE valid = 0;
CREATE INDEX validation_code_uses_code ON validation_code_uses (code_id);

-- Allocation cycles (R-N1): one row per organisation and cycle.
CREATE TABLE donation_cycles (
    id               INTEGER PRIMARY KEY,
    organisation_id  INTEGER NOT NULL REFERENCES organisations (id),
    starts_at        TEXT NOT NULL,
    ends_at          TEXT NOT NULL,
    UNIQUE (organisation_id, starts_at)
);

CREATE TABLE donation_requests (
    id               INTEGER PRIMARY KEY,
    organisation_id  INTEGER NOT NULL REFERENCES organisations (id),
    cycle_id         INTEGER NOT NULL REFERENCES donation_cycles (id),
    code_id          INTEGER NOT NULL REFERENCES validation_codes (id),
    account_email    TEXT NOT NULL,
    locale           TEXT NOT NULL,
    requested_at     TEXT NOT NULL,   -- fulfilled at once: also when the keys were sent (received, R-N9)
    returned_at      TEXT              -- a completed return gives the allocation back (R-N9)
);
CREATE INDEX donation_requests_cycle ON donation_requests (cycle_id) WHERE returned_at IS NULL;

CREATE TABLE donation_lines (
    id          INTEGER PRIMARY KEY,
    request_id  INTEGER NOT NULL REFERENCES donation_requests (id),
    sku         TEXT NOT NULL REFERENCES skus (sku),
    quantity    INTEGER NOT NULL CHECK (quantity >= 1),
    code_id     INTEGER NOT NULL UNIQUE REFERENCES reward_codes (id)   -- the licence key
);
CREATE INDEX donation_lines_request ON donation_lines (request_id);

CREATE TABLE donation_returns (
    id              INTEGER PRIMARY KEY,
    request_id      INTEGER NOT NULL REFERENCES donation_requests (id),
    declared_not_installed INTEGER NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'completed', 'rejected')),
    reason          TEXT,
    reviewer_email  TEXT,
    created_at      TEXT NOT NULL,
    decided_at      TEXT
);
CREATE UNIQUE INDEX donation_returns_open ON donation_returns (request_id) WHERE status IN ('pending', 'completed');
