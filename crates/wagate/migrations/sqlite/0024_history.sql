-- History after linking (issue 22). How much of what the phone sends
-- after a link a session keeps: `none`, `recent` (the default: the
-- initial bootstrap, recent chunks, push names, history asked for) or
-- `full` (also the full-history chunks).
ALTER TABLE sessions ADD COLUMN history TEXT NOT NULL DEFAULT 'recent';
-- A message stored from a history-sync chunk rather than received live.
-- The unique (session, direction, WhatsApp id) keeps it stored once,
-- whichever way it came first.
ALTER TABLE messages ADD COLUMN from_history BOOLEAN NOT NULL DEFAULT FALSE;

-- What the session's account calls the people it talks to, as their
-- push names arrive (history's push-name chunks). Keyed by JID, as
-- WhatsApp names them (a number's or a LID's).
CREATE TABLE contacts (
    session_id  TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    jid         TEXT NOT NULL,
    push_name   TEXT,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (session_id, jid)
);
