-- Every session's WhatsApp keys and protocol state (what whatsapp-rust's
-- `Backend` stores), in the gateway's own database instead of one SQLite
-- file per session. One table per kind; `session_id` leads every primary
-- key, so a session's rows are one index range, and deleting the session
-- deletes them (ON DELETE CASCADE). PostgreSQL twin of
-- migrations/sqlite/0016_keys.sql: BYTEA for BLOB, text keys
-- `COLLATE "C"` so they compare (and `LIKE` matches) bytewise as on
-- SQLite; unix seconds unless a column says otherwise.

-- The device: identity, noise and signed pre-keys, registration, account
-- (serde JSON of whatsapp-rust's `Device`; the library marks the fields it
-- adds `#[serde(default)]`, so a newer version reads an older row).
CREATE TABLE key_devices (
    session_id  TEXT COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    device      TEXT NOT NULL,
    PRIMARY KEY (session_id)
);

CREATE TABLE key_identities (
    session_id  TEXT COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    address     TEXT COLLATE "C" NOT NULL,
    identity    BYTEA NOT NULL,
    PRIMARY KEY (session_id, address)
);

-- Signal sessions (ratchets), by `user[:device]@server`.
CREATE TABLE key_sessions (
    session_id  TEXT COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    address     TEXT COLLATE "C" NOT NULL,
    record      BYTEA NOT NULL,
    PRIMARY KEY (session_id, address)
);

CREATE TABLE key_prekeys (
    session_id  TEXT COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    id          BIGINT NOT NULL,
    record      BYTEA NOT NULL,
    uploaded    BOOLEAN NOT NULL,
    PRIMARY KEY (session_id, id)
);

CREATE TABLE key_signed_prekeys (
    session_id  TEXT COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    id          BIGINT NOT NULL,
    record      BYTEA NOT NULL,
    PRIMARY KEY (session_id, id)
);

CREATE TABLE key_sender_keys (
    session_id  TEXT COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    address     TEXT COLLATE "C" NOT NULL,
    record      BYTEA NOT NULL,
    PRIMARY KEY (session_id, address)
);

CREATE TABLE key_app_state_sync_keys (
    session_id  TEXT COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    key_id      BYTEA NOT NULL,
    key_data    BYTEA NOT NULL,
    fingerprint BYTEA NOT NULL,
    -- The key's own timestamp, as the phone sent it.
    created     BIGINT NOT NULL,
    PRIMARY KEY (session_id, key_id)
);

-- One app-state collection's hash state. `index_value_map` is the
-- collection's index -> value MAC map, length-prefixed (see
-- store/sql/keys.rs).
CREATE TABLE key_app_state_versions (
    session_id          TEXT COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    name                TEXT COLLATE "C" NOT NULL,
    version             BIGINT NOT NULL,
    hash                BYTEA NOT NULL,
    index_value_map     BYTEA NOT NULL,
    mac_mismatch_fatal  BOOLEAN NOT NULL,
    PRIMARY KEY (session_id, name)
);

CREATE TABLE key_app_state_mutation_macs (
    session_id  TEXT COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    name        TEXT COLLATE "C" NOT NULL,
    index_mac   BYTEA NOT NULL,
    version     BIGINT NOT NULL,
    value_mac   BYTEA NOT NULL,
    PRIMARY KEY (session_id, name, index_mac)
);

-- Which devices of a group hold this session's sender key.
CREATE TABLE key_sender_key_devices (
    session_id  TEXT COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    group_jid   TEXT COLLATE "C" NOT NULL,
    device_jid  TEXT COLLATE "C" NOT NULL,
    has_key     BOOLEAN NOT NULL,
    PRIMARY KEY (session_id, group_jid, device_jid)
);

CREATE TABLE key_lid_pn_mappings (
    session_id       TEXT COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    lid              TEXT COLLATE "C" NOT NULL,
    phone_number     TEXT COLLATE "C" NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    learning_source  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (session_id, lid)
);

-- A number's most recent LID.
CREATE INDEX key_lid_pn_mappings_by_phone
    ON key_lid_pn_mappings (session_id, phone_number, updated_at);

CREATE TABLE key_base_keys (
    session_id  TEXT COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    address     TEXT COLLATE "C" NOT NULL,
    message_id  TEXT COLLATE "C" NOT NULL,
    base_key    BYTEA NOT NULL,
    PRIMARY KEY (session_id, address, message_id)
);

-- A user's known devices (serde JSON of whatsapp-rust's `DeviceInfo` list).
CREATE TABLE key_device_lists (
    session_id  TEXT COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    user_id     TEXT COLLATE "C" NOT NULL,
    devices     TEXT NOT NULL,
    listed_at   BIGINT NOT NULL,
    phash       TEXT COLLATE "C",
    raw_id      BIGINT,
    PRIMARY KEY (session_id, user_id)
);

CREATE TABLE key_group_metadata (
    session_id  TEXT COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    group_jid   TEXT COLLATE "C" NOT NULL,
    info        BYTEA NOT NULL,
    PRIMARY KEY (session_id, group_jid)
);

-- Trusted-contact privacy tokens; an empty `token` is a placeholder that
-- only carries `sender_timestamp`.
CREATE TABLE key_tc_tokens (
    session_id        TEXT COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    jid               TEXT COLLATE "C" NOT NULL,
    token             BYTEA NOT NULL,
    token_timestamp   BIGINT NOT NULL,
    sender_timestamp  BIGINT,
    PRIMARY KEY (session_id, jid)
);

-- What was sent, for answering retry receipts; pruned by age.
CREATE TABLE key_sent_messages (
    session_id  TEXT COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    chat_jid    TEXT COLLATE "C" NOT NULL,
    message_id  TEXT COLLATE "C" NOT NULL,
    payload     BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (session_id, chat_jid, message_id)
);

CREATE INDEX key_sent_messages_by_age ON key_sent_messages (session_id, created_at);

-- Decrypted incoming messages between the ratchet's advance and the
-- durability hook's commit (the client replays them on redelivery).
CREATE TABLE key_pending_inbound (
    session_id   TEXT COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    chat         TEXT COLLATE "C" NOT NULL,
    sender       TEXT COLLATE "C" NOT NULL,
    id           TEXT COLLATE "C" NOT NULL,
    message      BYTEA NOT NULL,
    inserted_at  BIGINT NOT NULL,
    PRIMARY KEY (session_id, chat, sender, id)
);

-- `messageSecret`s of messages, for decrypting reactions, votes and edits
-- that refer to them; `expires_at` 0 is never.
CREATE TABLE key_msg_secrets (
    session_id  TEXT COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    chat        TEXT COLLATE "C" NOT NULL,
    sender      TEXT COLLATE "C" NOT NULL,
    msg_id      TEXT COLLATE "C" NOT NULL,
    secret      BYTEA NOT NULL,
    expires_at  BIGINT NOT NULL,
    message_ts  BIGINT NOT NULL,
    PRIMARY KEY (session_id, chat, sender, msg_id)
);
