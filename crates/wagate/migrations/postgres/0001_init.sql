-- PostgreSQL twin of migrations/sqlite/0001_init.sql: the same tables and
-- columns, so the queries in src/store/sql/ serve both. Ids are TEXT in the
-- "C" collation (compared and ordered byte by byte, as SQLite does: UUIDv7
-- text order is time order); times are BIGINT unix milliseconds; every
-- integer is BIGINT (decoded as i64 on both).

CREATE TABLE organizations (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id          TEXT COLLATE "C" PRIMARY KEY,
    org_id      TEXT COLLATE "C" NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE sessions (
    id             TEXT COLLATE "C" PRIMARY KEY,
    org_id         TEXT COLLATE "C" NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
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
