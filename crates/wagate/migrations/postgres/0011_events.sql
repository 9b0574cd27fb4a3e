-- PostgreSQL twin of migrations/sqlite/0011_events.sql.

CREATE TABLE events (
    -- UUIDv7, stamped inside the transaction that writes the event, under
    -- the gateway's writer lock (src/store/postgres/mod.rs): id order is
    -- commit order, so "everything after id X" never skips an event that
    -- committed late.
    id          TEXT COLLATE "C" PRIMARY KEY,
    org_id      TEXT COLLATE "C" NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    -- No foreign key: a deleted session's history stays until retention
    -- removes it.
    session_id  TEXT COLLATE "C" NOT NULL,
    type        TEXT NOT NULL,
    -- The envelope as clients receive it (JSON).
    payload     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE INDEX events_by_org ON events (org_id, id);
CREATE INDEX events_by_created ON events (created_at);
