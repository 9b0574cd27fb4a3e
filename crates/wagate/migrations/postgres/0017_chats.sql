-- Chats and contacts (issue 22). What a session does on its own on
-- WhatsApp: the presence it shows after each connect (`unavailable` keeps
-- the phone's notifications), and whether it rejects incoming calls, with
-- a text for the caller.
ALTER TABLE sessions ADD COLUMN presence TEXT NOT NULL DEFAULT 'unavailable';
ALTER TABLE sessions ADD COLUMN reject_calls BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE sessions ADD COLUMN reject_calls_message TEXT;
