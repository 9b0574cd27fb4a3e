-- Webhooks and their durable delivery outbox. Same portable SQL as 0001
-- (`$n` placeholders in queries, BIGINT milliseconds, BOOLEAN).

CREATE TABLE webhooks (
    id                   TEXT PRIMARY KEY,
    org_id               TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    url                  TEXT NOT NULL,
    -- JSON array of event type names; NULL means every type, including
    -- types added after the webhook was created.
    event_types          TEXT,
    -- JSON array of session ids; NULL means every session of the
    -- organization. No foreign key: a deleted session simply stops
    -- producing events.
    session_ids          TEXT,
    enabled              BOOLEAN NOT NULL,
    -- Why the gateway disabled it ('gone', 'failing'); NULL when the user
    -- did, or when enabled.
    disabled_reason      TEXT,
    -- Kept in the clear: signing needs the key itself. `whsec_...`.
    secret               TEXT NOT NULL,
    -- The secret before the last rotation, still signing until
    -- `previous_expires_at` so receivers can switch without losing any.
    previous_secret      TEXT,
    previous_expires_at  BIGINT,
    -- Start of the current run of failed attempts (NULL after a success):
    -- a webhook failing for long enough is disabled.
    failing_since        BIGINT,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);

CREATE INDEX webhooks_by_org ON webhooks (org_id, id);

CREATE TABLE webhook_deliveries (
    -- UUIDv7 stamped in the transaction of the event it delivers.
    id                TEXT PRIMARY KEY,
    webhook_id        TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    -- A delivery lives as long as its event: pruning the event log prunes
    -- the delivery log with it.
    event_id          TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    -- Copied from the event: deliveries are ordered per (webhook, session).
    session_id        TEXT NOT NULL,
    event_type        TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   BIGINT NOT NULL,
    -- Start of the retry window (creation, or the last replay): retries
    -- stop, and the delivery fails, once the window has passed.
    retry_from        BIGINT NOT NULL,
    last_attempt_at   BIGINT,
    last_status_code  INTEGER,
    last_error        TEXT,
    -- The start of the receiver's last answer, capped.
    last_response     TEXT,
    delivered_at      BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);

CREATE UNIQUE INDEX webhook_deliveries_once ON webhook_deliveries (webhook_id, event_id);
-- The head of each (webhook, session) queue: its oldest pending event.
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (webhook_id, session_id, event_id)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
-- The delivery log, newest first.
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (webhook_id, id);
-- Cascading deletes from pruned events.
CREATE INDEX webhook_deliveries_by_event ON webhook_deliveries (event_id);
