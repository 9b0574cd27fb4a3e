-- The nodes serving one database (`--nats`), each renewed with its
-- leases: a node counts for balancing while its heartbeat has not
-- expired (the database's clock, as for leases), whether it holds
-- sessions or has just joined.
CREATE TABLE node_heartbeats (
    node TEXT COLLATE "C" PRIMARY KEY,
    -- Sessions it runs at most; NULL: no limit.
    capacity BIGINT,
    expires_at TIMESTAMPTZ NOT NULL
);
