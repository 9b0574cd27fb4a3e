-- A session's messages in id order (creation order: UUIDv7), for
-- `GET /sessions/{id}/messages` without a chat: each page is an index
-- range instead of a sort of every message of the session.
CREATE INDEX messages_by_session_id ON messages (session_id, id);
