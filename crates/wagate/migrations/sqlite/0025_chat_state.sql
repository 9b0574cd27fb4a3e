-- A chat's settings as WhatsApp's app state holds them (issue 22):
-- archived, pinned, muted. Written when the account's app state reports a
-- change (from the phone or another companion) and when the API makes one,
-- in the transaction of the `chat.updated` event. Same portable SQL on
-- both databases.
ALTER TABLE chats ADD COLUMN archived BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE chats ADD COLUMN pinned BOOLEAN NOT NULL DEFAULT FALSE;
-- NULL: not muted; -1: muted for ever (WhatsApp's own mark); otherwise
-- muted until then (unix milliseconds), and not muted once it has passed.
ALTER TABLE chats ADD COLUMN muted_until BIGINT;
