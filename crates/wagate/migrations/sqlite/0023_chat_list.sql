-- The chat list (issue 22): one row per chat of a session, written in the
-- transaction that stores each of its messages, so the list by latest
-- activity reads one index instead of every message. Same portable SQL on
-- both databases.
CREATE TABLE chats (
    session_id       TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    -- The chat's JID, as the messages' `chat`.
    chat             TEXT NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('person', 'group')),
    -- The latest push name a person's chat was written to with.
    name             TEXT,
    last_message_id  TEXT NOT NULL,
    -- When the gateway stored its latest message (unix milliseconds).
    last_at          BIGINT NOT NULL,
    -- Incoming messages since the session's own side last wrote there.
    unread           BIGINT NOT NULL DEFAULT 0 CHECK (unread >= 0),
    PRIMARY KEY (session_id, chat)
);

-- The list, latest activity first: message ids (UUIDv7) sort by when
-- they were made, so the latest message's id orders the chats and is the
-- cursor.
CREATE INDEX chats_by_activity ON chats (session_id, last_message_id);
-- One chat's messages, both ways, by id (creation order).
CREATE INDEX messages_by_chat ON messages (session_id, chat, id);

-- Chats of the messages stored before this table existed. Reactions,
-- edits, revokes and poll votes point at a message and do not make a
-- chat active (`store::chats::ACTIVITY_EXCLUDED`).
INSERT INTO chats (session_id, chat, kind, name, last_message_id, last_at, unread)
SELECT session_id,
       chat,
       CASE WHEN chat LIKE '%@g.us' THEN 'group' ELSE 'person' END,
       NULL,
       MAX(id),
       MAX(created_at),
       0
FROM messages
WHERE kind NOT IN ('reaction', 'edit', 'revoke', 'poll_vote')
GROUP BY session_id, chat;
