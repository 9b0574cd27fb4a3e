-- Presence subscriptions (issue 22): the contacts whose online, last seen
-- and typing a session asked to hear about. WhatsApp forgets them with
-- the connection, so every connect subscribes again from here. Same
-- portable SQL on both databases.
CREATE TABLE presence_subscriptions (
    session_id  TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    -- The contact's JID (`<digits>@s.whatsapp.net` or `<digits>@lid`).
    contact     TEXT NOT NULL,
    -- Unix milliseconds.
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (session_id, contact)
);
