-- PostgreSQL twin of migrations/sqlite/0013_incoming.sql.

ALTER TABLE messages ADD COLUMN sender_phone TEXT;
ALTER TABLE messages ADD COLUMN sender_lid TEXT;
ALTER TABLE messages ADD COLUMN push_name TEXT;
-- Written by the session's own account (its phone or another companion).
ALTER TABLE messages ADD COLUMN from_me BOOLEAN NOT NULL DEFAULT FALSE;
-- WhatsApp's timestamp: when the sender sent it.
ALTER TABLE messages ADD COLUMN sent_at BIGINT;
-- The WhatsApp id of the message this one quotes.
ALTER TABLE messages ADD COLUMN reply_to TEXT;
-- Where the attachment is on WhatsApp's CDN and its key (JSON), so it can
-- be downloaded on first request. Never shown through the API.
ALTER TABLE messages ADD COLUMN media_ref TEXT;

-- Listing one direction, newest first.
CREATE INDEX messages_by_direction ON messages (session_id, direction, id);
