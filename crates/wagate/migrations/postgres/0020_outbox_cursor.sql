-- The outbox reads a session's pending messages in acceptance order from
-- where its last pass stopped (`id > $cursor`): an index range, so what is
-- already in flight or handled is not read again, however long the queue.
CREATE INDEX messages_pending_by_id ON messages (session_id, id)
    WHERE status = 'pending';
