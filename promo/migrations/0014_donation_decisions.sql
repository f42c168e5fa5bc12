-- Staff decisions in the nonprofit program (issue 15, item 8: R-N4, R-N7, R-N10, R-N11, R-V4, R-V7).

-- An approved organisation may be reviewed again (a complaint, a discriminatory policy found
-- later, R-N7): while under review its donation requests wait. A review ends cleared (approved
-- again) or with the approval revoked, which is final. `status` keeps the first review's outcome
-- (pending, approved, rejected); these columns say where an approved organisation stands now.
ALTER TABLE organisations ADD COLUMN under_review_since TEXT;
ALTER TABLE organisations ADD COLUMN review_note TEXT;        -- why staff reopened it (staff only)
ALTER TABLE organisations ADD COLUMN revoked_at TEXT;
ALTER TABLE organisations ADD COLUMN revoked_reason TEXT;     -- told to its representatives
ALTER TABLE organisations ADD COLUMN revoked_by TEXT;

-- A request is requested (waiting for staff), held (waiting, with a reason the requester
-- sees), granted (keys sent) or refused (with a reason). Requests stored before this
-- migration were all granted at once. Waiting requests reserve their quantities in the
-- cycle's allocation (R-N2), so granting every waiting request can never exceed a limit;
-- a refusal gives the reservation back.
ALTER TABLE donation_requests ADD COLUMN status TEXT NOT NULL DEFAULT 'granted'
    CHECK (status IN ('requested', 'held', 'granted', 'refused'));
ALTER TABLE donation_requests ADD COLUMN hold_cause TEXT
    CHECK (hold_cause IS NULL OR hold_cause IN ('review', 'staff', 'stock'));
ALTER TABLE donation_requests ADD COLUMN reason TEXT;          -- staff's words to the requester (hold, refusal)
ALTER TABLE donation_requests ADD COLUMN decided_by TEXT;
ALTER TABLE donation_requests ADD COLUMN decided_at TEXT;
ALTER TABLE donation_requests ADD COLUMN granted_at TEXT;      -- when the keys were sent: "received" for returns (R-N9)
ALTER TABLE donation_requests ADD COLUMN terms_version TEXT;   -- R-N10: which terms of use were accepted, and when
ALTER TABLE donation_requests ADD COLUMN terms_accepted_at TEXT;
UPDATE donation_requests SET granted_at = requested_at;
CREATE INDEX donation_requests_waiting ON donation_requests (status, id) WHERE status IN ('requested', 'held');
CREATE INDEX donation_requests_organisation ON donation_requests (organisation_id, id);

-- What each request asked for, whatever its state (donation_lines holds the keys of granted ones).
CREATE TABLE donation_items (
    request_id  INTEGER NOT NULL REFERENCES donation_requests (id),
    sku         TEXT NOT NULL REFERENCES skus (sku),
    quantity    INTEGER NOT NULL CHECK (quantity >= 1),
    PRIMARY KEY (request_id, sku)
);
INSERT INTO donation_items (request_id, sku, quantity) SELECT request_id, sku, quantity FROM donation_lines;
