-- The nodes serving one database (see migrations/postgres/0033): only a
-- PostgreSQL database has several, so SQLite never writes this table; it
-- is here so both schemas stay twins.
CREATE TABLE node_heartbeats (
    node TEXT NOT NULL PRIMARY KEY,
    capacity INTEGER,
    -- Unix milliseconds.
    expires_at INTEGER NOT NULL
);
