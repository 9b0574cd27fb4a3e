-- The event log: every event the gateway publishes, in publication order,
-- kept for a retention period. Realtime clients resume from it and webhook
-- deliveries are made from it. Same portable SQL as 0001.

CREATE TABLE events (
    -- UUIDv7, stamped inside the transaction that writes the event: with
    -- one writer, id order is commit order, so "everything after id X"
    -- never skips an event that committed late.
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    -- No foreign key: a deleted session's history stays until retention
    -- removes it.
    session_id  TEXT NOT NULL,
    type        TEXT NOT NULL,
    -- The envelope as clients receive it (JSON).
    payload     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE INDEX events_by_org ON events (org_id, id);
CREATE INDEX events_by_created ON events (created_at);
