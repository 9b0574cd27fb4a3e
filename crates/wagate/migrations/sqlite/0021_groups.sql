-- Groups (issue 23): the groups each session's number is in, as WhatsApp
-- last told the gateway (the participating groups on every connect, then
-- each w:gp2 notification), so listing them reads the store, not WhatsApp.

CREATE TABLE groups (
    session_id   TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    -- The group's JID, `<digits>@g.us`; pages go by it.
    jid          TEXT NOT NULL,
    subject      TEXT NOT NULL,
    description  TEXT,
    -- The creator's phone number, when known.
    owner        TEXT,
    -- WhatsApp's creation time, milliseconds.
    created_at   BIGINT,
    announce     BOOLEAN NOT NULL DEFAULT FALSE,
    locked       BOOLEAN NOT NULL DEFAULT FALSE,
    ephemeral    BIGINT NOT NULL DEFAULT 0,
    approval     BOOLEAN NOT NULL DEFAULT FALSE,
    -- When the gateway last changed the row, milliseconds.
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (session_id, jid)
);

-- A group's members. `member` is who they are to the gateway: `lid:<digits>`
-- once their LID is known, `pn:<digits>` before.
CREATE TABLE group_participants (
    session_id  TEXT NOT NULL,
    group_jid   TEXT NOT NULL,
    member      TEXT NOT NULL,
    -- Digits only.
    phone       TEXT,
    -- `<digits>@lid`.
    lid         TEXT,
    role        TEXT NOT NULL,
    PRIMARY KEY (session_id, group_jid, member),
    FOREIGN KEY (session_id, group_jid) REFERENCES groups (session_id, jid) ON DELETE CASCADE
);

-- The w:gp2 notification actions already applied, so one WhatsApp delivers
-- again (after a lost ack, a restart) changes nothing and reports nothing
-- twice. Pruned with the event log.
CREATE TABLE group_notifications (
    session_id       TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    notification_id  TEXT NOT NULL,
    action_index     BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (session_id, notification_id, action_index)
);

CREATE INDEX group_notifications_by_created ON group_notifications (created_at);
