-- Ownership of sessions by lease, when several gateway processes serve one
-- database: at most one node owns a session at a time. A node takes a
-- session only when its row is absent, released (node NULL) or expired,
-- and taking it increments `epoch` in the same statement; every write the
-- owner makes for the session carries that epoch and the store refuses it
-- once the epoch is not the current one (fencing). `expires_at` is stamped
-- by the database's clock only (`now()`), never a node's.
CREATE TABLE session_leases (
    session_id TEXT COLLATE "C" PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
    node TEXT,
    epoch BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
-- A node's renewal reads its own leases.
CREATE INDEX session_leases_by_node ON session_leases (node);
