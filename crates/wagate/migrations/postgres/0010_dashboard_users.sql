-- PostgreSQL twin of migrations/sqlite/0010_dashboard_users.sql.

CREATE TABLE users (
    id             TEXT COLLATE "C" PRIMARY KEY,
    -- Stored lower-cased, so uniqueness ignores case.
    email          TEXT NOT NULL UNIQUE,
    -- PHC string: $argon2id$v=19$m=...,t=...,p=...$salt$hash
    password_hash  TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);

CREATE TABLE memberships (
    user_id     TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id      TEXT COLLATE "C" NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, org_id)
);

CREATE INDEX memberships_by_org ON memberships (org_id);

CREATE TABLE web_sessions (
    -- SHA-256 of the cookie value: a stolen database does not hold live
    -- cookies.
    id_hash     TEXT PRIMARY KEY,
    user_id     TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The organization the user is looking at.
    org_id      TEXT COLLATE "C" NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    csrf_token  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);

-- Tokens created from the dashboard carry a name to tell them apart.
ALTER TABLE api_tokens ADD COLUMN name TEXT;
