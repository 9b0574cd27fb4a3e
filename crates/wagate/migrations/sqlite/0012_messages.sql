-- Messages both ways, their status history, and the idempotency keys of
-- send requests. Same portable SQL as 0001 (BLOB is BYTEA on PostgreSQL).

CREATE TABLE messages (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    session_id       TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    direction        TEXT NOT NULL CHECK (direction IN ('outgoing', 'incoming')),
    -- The WhatsApp message id, chosen before the first attempt: every
    -- resend uses it, so the phone shows the message once.
    wa_id            TEXT NOT NULL,
    chat             TEXT NOT NULL,
    kind             TEXT NOT NULL,
    -- What the user asked to send (JSON), never the media bytes.
    content          TEXT NOT NULL,
    -- Media bytes given in the request, until the message is prepared.
    media            BLOB,
    -- The encoded WhatsApp message once prepared (media uploaded): every
    -- attempt sends exactly these bytes.
    wire             BLOB,
    status           TEXT NOT NULL CHECK (status IN
                         ('pending', 'sent', 'delivered', 'read', 'played', 'failed')),
    failure_reason   TEXT,
    failure_code     INTEGER,
    failure_detail   TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

CREATE UNIQUE INDEX messages_by_wa_id ON messages (session_id, direction, wa_id);
-- Listing, newest first, within one session.
CREATE INDEX messages_by_session ON messages (session_id, created_at, id);
-- The outbox: what is still to be sent.
CREATE INDEX messages_pending ON messages (session_id, next_attempt_at)
    WHERE status = 'pending';

CREATE TABLE message_status_history (
    message_id      TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    status          TEXT NOT NULL,
    failure_reason  TEXT,
    failure_code    INTEGER,
    at              BIGINT NOT NULL
);

CREATE INDEX message_status_history_by_message ON message_status_history (message_id, at);

CREATE TABLE idempotency_keys (
    org_id        TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    idem_key      TEXT NOT NULL,
    -- SHA-256 of what the request asked for: the same key with another
    -- request is refused.
    request_hash  TEXT NOT NULL,
    message_id    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (org_id, idem_key)
);

CREATE INDEX idempotency_keys_by_created ON idempotency_keys (created_at);
