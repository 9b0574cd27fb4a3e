-- Portable SQL: TEXT ids, BIGINT unix-millisecond timestamps, no
-- engine-specific types, so the same schema serves SQLite and PostgreSQL.

CREATE TABLE organizations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE sessions (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    label          TEXT,
    status         TEXT NOT NULL CHECK (status IN
                       ('starting', 'scan_qr_code', 'working', 'stopped', 'failed', 'logged_out')),
    status_reason  TEXT,
    phone          TEXT,
    push_name      TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

-- Keyset pagination walks (created_at, id) within one organization.
CREATE INDEX sessions_by_org_created ON sessions (org_id, created_at, id);
