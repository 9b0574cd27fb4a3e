-- Ownership of sessions by lease (see migrations/postgres/0022): only a
-- PostgreSQL database is served by several processes, so SQLite never
-- writes this table; it is here so both schemas stay twins.
CREATE TABLE session_leases (
    session_id TEXT NOT NULL PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
    node TEXT,
    epoch INTEGER NOT NULL,
    -- Unix milliseconds.
    expires_at INTEGER NOT NULL
);
CREATE INDEX session_leases_by_node ON session_leases (node);
