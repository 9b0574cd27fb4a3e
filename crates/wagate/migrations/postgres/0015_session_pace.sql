-- PostgreSQL twin of migrations/sqlite/0015_session_pace.sql.
-- A session's own send pace, overriding the gateway's (`send_per_minute`,
-- `send_new_chats_per_minute`). NULL follows the gateway's setting; 0 turns
-- that budget off for the session.
ALTER TABLE sessions ADD COLUMN send_per_minute BIGINT;
ALTER TABLE sessions ADD COLUMN send_new_chats_per_minute BIGINT;
