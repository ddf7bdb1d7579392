-- whatsapp-api: the one definition of the application database.
--
-- Applied by db::migrate() at start-up. Every statement is idempotent
-- (IF NOT EXISTS), so this whole file describes the current schema version
-- (db::SCHEMA_VERSION). Upgrades of older databases that need more than a new
-- object (a column added to an existing table, or filling a new object from
-- existing rows) are numbered blocks in db/mod.rs, gated on PRAGMA user_version.
--
-- Timestamps are UTC, stored as Unix seconds (INTEGER) unless noted.

-- Every message the account received or sent. The inbox is the incoming rows.
CREATE TABLE IF NOT EXISTS messages (
    -- Arrival order. The rowid alias; breaks ties between rows created in the
    -- same second ("newest first" means highest seq first).
    seq             INTEGER PRIMARY KEY,
    -- Public id handed out by the API (UUID v4 text, or the Node server's id
    -- for imported rows).
    id              TEXT    NOT NULL UNIQUE,
    -- WhatsApp's own message id (key.id); NULL only for imported legacy rows.
    wa_id           TEXT,
    -- 'incoming' (from a customer) or 'outgoing' (a reply we sent).
    direction       TEXT    NOT NULL CHECK (direction IN ('incoming', 'outgoing')),
    -- Chat JID: the customer's JID in a direct chat (the phone-number JID once
    -- the customer's LID is mapped, see lid_map), the group JID in a group.
    phone           TEXT    NOT NULL,
    -- Who wrote it: the customer's JID (phone-number JID when known, else LID);
    -- for outgoing rows our own JID or ''.
    sender_jid      TEXT    NOT NULL DEFAULT '',
    -- The author's LID (WhatsApp's privacy id) when known; NULL otherwise.
    -- Added in schema version 3.
    sender_lid      TEXT,
    -- The chat and author exactly as WhatsApp addressed the message (before
    -- any LID mapping): with wa_id, the key redelivery is recognised by. NULL
    -- for replies sent by this server and for imported rows. Version 3.
    wa_chat         TEXT,
    wa_sender       TEXT,
    -- The sender's WhatsApp display name at the time, if any.
    push_name       TEXT,
    -- Text, caption, or a placeholder such as '[Image]' or '[Location: 1, 2]'.
    message         TEXT    NOT NULL,
    -- Set while the text is a stand-in for content still to come: 'view_once'
    -- (kept from linked devices) or 'undecryptable' (a retry may bring it).
    -- A later delivery of the content replaces the row in place. Version 3.
    placeholder     TEXT    CHECK (placeholder IN ('view_once', 'undecryptable')),
    -- Outgoing only: who sent it, 'api', 'dashboard', or 'phone' (our own
    -- account from the phone or WhatsApp Web). Version 3.
    source          TEXT    CHECK (source IN ('api', 'dashboard', 'phone')),
    -- Triage state: unread/read/replied/ignored for incoming, 'sent' for outgoing.
    reply_status    TEXT    NOT NULL
                    CHECK (reply_status IN ('unread', 'read', 'replied', 'ignored', 'sent')),
    -- Outgoing only: pending (stored, not yet accepted by WhatsApp) -> sent
    -- (WhatsApp's server acknowledged it) -> delivered -> read, or failed
    -- (WhatsApp refused it, or it could not be sent).
    delivery_status TEXT
                    CHECK (delivery_status IN ('pending', 'sent', 'delivered', 'read', 'failed')),
    -- image, video, audio, document, sticker (NULL for text, location, contact).
    media_type      TEXT,
    -- '/media/<file>' once the file is stored; NULL when there is none.
    media_url       TEXT,
    -- The media's mime type as WhatsApp announced it.
    media_mime      TEXT,
    -- Size in bytes of the stored file (or as announced when not downloaded).
    media_size      INTEGER,
    -- Hex SHA-256 of the stored file.
    media_sha256    TEXT,
    -- Why a media file is missing (over MEDIA_MAX_BYTES, download failed, ...).
    media_error     TEXT,
    -- Outgoing rows: the public id of the incoming message this one answers.
    in_reply_to     TEXT,
    -- Outgoing rows: the Idempotency-Key of the request that sent it; a
    -- retry with the same key sends this row again, under the same wa_id,
    -- instead of a new message. Version 5.
    idempotency_key TEXT,
    -- The original WhatsApp message, protobuf-encoded, when the backend keeps it:
    -- what a quoted reply needs besides wa_id and sender_jid.
    raw             BLOB,
    -- When the message was sent (Unix seconds, UTC): WhatsApp's timestamp for
    -- a received message (a backlog delivered after downtime keeps its real
    -- times), the moment of sending for our replies.
    created_at      INTEGER NOT NULL,
    -- When this server stored it (Unix seconds, UTC); NULL for rows older
    -- than schema version 3 that had none apart from created_at.
    received_at     INTEGER,
    -- When the author last edited it (Unix seconds); NULL if never. The
    -- earlier texts are in message_edits. Version 6.
    edited_at       INTEGER,
    -- When it was deleted for everyone (Unix seconds): the row stays, its
    -- text is '[Deleted]' and its media, protobuf and edits are erased.
    -- NULL while it stands. Version 6.
    deleted_at      INTEGER,
    -- Incoming only: when WhatsApp was told it was read (the customer's blue
    -- ticks), once; NULL while not. Version 6.
    read_receipt_at INTEGER
);

-- Redelivery of the same WhatsApp message stores nothing twice: unique on the
-- chat, author and id as received (a LID learned in between changes `phone`,
-- never this key). Version 3; it replaces a key on (phone, sender_jid, wa_id).
CREATE UNIQUE INDEX IF NOT EXISTS messages_wa_received
    ON messages (wa_chat, wa_sender, wa_id) WHERE wa_chat IS NOT NULL;
-- Rows whose author is a LID not yet mapped to a phone number: found when the
-- mapping arrives (stays small: mapped rows leave it).
CREATE INDEX IF NOT EXISTS messages_lid_sender
    ON messages (sender_jid) WHERE sender_jid LIKE '%@lid';
-- The inbox pages: one status, newest first.
CREATE INDEX IF NOT EXISTS messages_inbox_status
    ON messages (reply_status, created_at DESC, seq DESC) WHERE direction = 'incoming';
-- The "all" inbox page, newest first.
CREATE INDEX IF NOT EXISTS messages_inbox_all
    ON messages (created_at DESC, seq DESC) WHERE direction = 'incoming';
-- A conversation: one chat, oldest first.
CREATE INDEX IF NOT EXISTS messages_chat
    ON messages (phone, seq);
-- The inbox filtered by chat (the phone filter's by-chat plan): a chat's
-- incoming messages, newest first, so its count and pages need no row reads.
CREATE INDEX IF NOT EXISTS messages_chat_inbox
    ON messages (phone, created_at DESC, seq DESC) WHERE direction = 'incoming';
-- Messages whose media is still to be fetched (a download a restart cut
-- short is resumed from here). Version 3.
CREATE INDEX IF NOT EXISTS messages_media_pending
    ON messages (seq) WHERE media_type IS NOT NULL AND media_url IS NULL AND media_error IS NULL;
-- A reply retried with its Idempotency-Key finds the row of its first try.
-- Version 5.
CREATE UNIQUE INDEX IF NOT EXISTS messages_reply_key
    ON messages (in_reply_to, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- Receipts find outgoing messages by WhatsApp id.
CREATE INDEX IF NOT EXISTS messages_wa_id
    ON messages (wa_id) WHERE direction = 'outgoing';
-- Reactions, edits and deletions find their message by WhatsApp id within
-- its chat, whichever direction it has. Version 6.
CREATE INDEX IF NOT EXISTS messages_wa_id_chat
    ON messages (wa_id, phone);

-- Incoming messages read or replied whose read receipt WhatsApp has not
-- had yet (stays small: sent ones leave it). Version 6.
CREATE INDEX IF NOT EXISTS messages_read_due
    ON messages (phone) WHERE read_receipt_at IS NULL AND direction = 'incoming'
        AND reply_status IN ('read', 'replied');

-- The current reaction of each sender to a message (the latest one wins; an
-- empty reaction removes the row). Version 6.
CREATE TABLE IF NOT EXISTS reactions (
    -- The message reacted to (messages.seq).
    message_seq INTEGER NOT NULL REFERENCES messages (seq) ON DELETE CASCADE,
    -- Who reacted: the customer's JID (phone-number JID when known), or
    -- 'me' for our own account.
    sender_jid  TEXT    NOT NULL,
    -- The emoji.
    emoji       TEXT    NOT NULL,
    -- When it was set (Unix seconds).
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (message_seq, sender_jid)
) WITHOUT ROWID;

-- The earlier texts of edited messages, oldest first. Version 6.
CREATE TABLE IF NOT EXISTS message_edits (
    -- Order of the edits.
    id          INTEGER PRIMARY KEY,
    -- The message edited (messages.seq).
    message_seq INTEGER NOT NULL REFERENCES messages (seq) ON DELETE CASCADE,
    -- Its text before this edit.
    message     TEXT    NOT NULL,
    -- When that text was replaced (Unix seconds).
    edited_at   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS message_edits_message ON message_edits (message_seq, id);

-- LID ↔ phone number: WhatsApp addresses a customer by a privacy id (LID) or
-- by phone number; every pair the WhatsApp backend reports is kept here (it
-- outlives a logout, unlike the session store), so one customer stays one
-- chat. Version 3.
CREATE TABLE IF NOT EXISTS lid_map (
    -- The LID JID, e.g. 123456789012345@lid.
    lid         TEXT    PRIMARY KEY,
    -- Its phone-number JID, e.g. 15551234567@s.whatsapp.net.
    pn          TEXT    NOT NULL,
    -- When the pair was last reported (Unix seconds).
    updated_at  INTEGER NOT NULL
);
-- A phone number's LID (the author's sender_lid).
CREATE INDEX IF NOT EXISTS lid_map_pn ON lid_map (pn);

-- Substring search over the text of incoming messages (the inbox `search`
-- filter): a trigram index, so a search reads the rows holding the term's
-- trigrams instead of every message. Contentless: the text itself stays in
-- `messages`. It is only a candidate filter (its case folding is wider than
-- LIKE's); the inbox query still applies the exact LIKE to each candidate,
-- so results are identical with or without it. Terms under 3 characters have
-- no trigram and fall back to the LIKE scan. Added in schema version 2.
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(
    -- messages.message of the incoming row whose seq is this rowid.
    message,
    tokenize = 'trigram',
    content = '',
    contentless_delete = 1
);
CREATE TRIGGER IF NOT EXISTS messages_fts_insert AFTER INSERT ON messages
WHEN NEW.direction = 'incoming' BEGIN
    INSERT INTO messages_fts (rowid, message) VALUES (NEW.seq, NEW.message);
END;
CREATE TRIGGER IF NOT EXISTS messages_fts_delete AFTER DELETE ON messages
WHEN OLD.direction = 'incoming' BEGIN
    DELETE FROM messages_fts WHERE rowid = OLD.seq;
END;
CREATE TRIGGER IF NOT EXISTS messages_fts_update AFTER UPDATE OF message, direction ON messages
BEGIN
    DELETE FROM messages_fts WHERE rowid = OLD.seq AND OLD.direction = 'incoming';
    INSERT INTO messages_fts (rowid, message)
        SELECT NEW.seq, NEW.message WHERE NEW.direction = 'incoming';
END;

-- The inbox search's second pass: each incoming message's order keys, status
-- and text in seq order, so checking a candidate from `messages_fts` (or
-- scanning every text when a term is in most messages) reads this narrow
-- index instead of the whole row. Version 8.
CREATE INDEX IF NOT EXISTS messages_inbox_text
    ON messages (seq, created_at, reply_status, message) WHERE direction = 'incoming';

-- Number of incoming messages per reply_status, kept by the triggers below so
-- an inbox page never counts the whole table.
CREATE TABLE IF NOT EXISTS inbox_counts (
    -- unread, read, replied, ignored (sent is never an incoming status).
    reply_status TEXT    PRIMARY KEY,
    -- How many incoming rows have it.
    n            INTEGER NOT NULL DEFAULT 0
);
INSERT OR IGNORE INTO inbox_counts (reply_status, n) VALUES
    ('unread', 0), ('read', 0), ('replied', 0), ('ignored', 0), ('sent', 0);

CREATE TRIGGER IF NOT EXISTS messages_count_insert AFTER INSERT ON messages
WHEN NEW.direction = 'incoming' BEGIN
    UPDATE inbox_counts SET n = n + 1 WHERE reply_status = NEW.reply_status;
END;
CREATE TRIGGER IF NOT EXISTS messages_count_delete AFTER DELETE ON messages
WHEN OLD.direction = 'incoming' BEGIN
    UPDATE inbox_counts SET n = n - 1 WHERE reply_status = OLD.reply_status;
END;
CREATE TRIGGER IF NOT EXISTS messages_count_update AFTER UPDATE OF reply_status, direction ON messages
BEGIN
    UPDATE inbox_counts SET n = n - 1
        WHERE OLD.direction = 'incoming' AND reply_status = OLD.reply_status;
    UPDATE inbox_counts SET n = n + 1
        WHERE NEW.direction = 'incoming' AND reply_status = NEW.reply_status;
END;

-- API keys. Only the hash is stored; one row is active at a time.
CREATE TABLE IF NOT EXISTS api_keys (
    -- Row id.
    id          INTEGER PRIMARY KEY,
    -- SHA-256 of the key, hex.
    key_hash    TEXT    NOT NULL UNIQUE,
    -- The first characters of the key, to tell keys apart in the dashboard.
    prefix      TEXT    NOT NULL,
    -- When it was created (Unix seconds).
    created_at  INTEGER NOT NULL,
    -- When it was revoked by a rotation; NULL while active.
    revoked_at  INTEGER
);

-- Webhook subscriptions.
CREATE TABLE IF NOT EXISTS webhooks (
    -- Public id (UUID text, or the Node server's id for imported rows).
    id          TEXT    PRIMARY KEY,
    -- Where to POST (http or https).
    url         TEXT    NOT NULL,
    -- Comma-separated exact event names, as the Node server stored them.
    events      TEXT    NOT NULL,
    -- Signing secret; never returned by the API after creation. NULL: unsigned.
    secret      TEXT,
    -- 1 active, 0 paused (also set to 0 when the receiver answers 410 Gone).
    active      INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    -- When it was created (Unix seconds).
    created_at  INTEGER NOT NULL,
    -- When it was last changed (Unix seconds).
    updated_at  INTEGER NOT NULL
);

-- The event log: every event webhooks carry, written in the same transaction
-- as the change that caused it (whether or not a webhook subscribes). The
-- event stream (GET /api/v1/events) reads it by id, live and on resume.
CREATE TABLE IF NOT EXISTS events (
    -- The stream's `id:`. AUTOINCREMENT: strictly increasing and never
    -- reused, even after the newest rows were pruned, so a client resuming
    -- after id n can never be handed an older event under a newer id.
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Event name, e.g. message.received.
    event       TEXT    NOT NULL,
    -- The exact JSON body a webhook receives ({"event","timestamp","data"}).
    payload     TEXT    NOT NULL,
    -- When it was written (Unix seconds); kept EVENTS_RETENTION_DAYS, and as
    -- long as a webhook delivery refers to it.
    created_at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_created ON events (created_at);

-- The durable outbox: one row per (event, webhook), written in the same
-- transaction as the change that caused it.
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    -- Order of creation; per-webhook FIFO follows it.
    seq             INTEGER PRIMARY KEY,
    -- Public id; also the Standard Webhooks `webhook-id` header, stable across
    -- retries and redeliveries.
    id              TEXT    NOT NULL UNIQUE,
    -- The webhook it goes to.
    webhook_id      TEXT    NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    -- Event name, e.g. message.received.
    event           TEXT    NOT NULL,
    -- The exact JSON body that is POSTed (signatures cover these bytes), when
    -- the delivery has no event row (the test button's, and deliveries
    -- written before schema version 7); '' when `event_id` holds it.
    payload         TEXT    NOT NULL,
    -- pending (waiting or retrying), delivered, failed (schedule exhausted).
    status          TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    -- Attempts made in the current run of the retry schedule.
    attempt_count   INTEGER NOT NULL DEFAULT 0,
    -- When the next attempt is due (Unix milliseconds).
    next_attempt_at INTEGER NOT NULL,
    -- When it was created (Unix seconds).
    created_at      INTEGER NOT NULL,
    -- When it last changed state (Unix seconds).
    updated_at      INTEGER NOT NULL,
    -- The event it delivers, whose payload it POSTs (stored once for every
    -- webhook and the event stream); NULL for the test button's.
    event_id        INTEGER REFERENCES events (id)
);
-- Which events deliveries still need (pruning keeps those).
CREATE INDEX IF NOT EXISTS webhook_deliveries_event ON webhook_deliveries (event_id);
-- The head of each webhook's queue (per-webhook FIFO) without scanning
-- delivered rows.
CREATE INDEX IF NOT EXISTS webhook_deliveries_pending
    ON webhook_deliveries (webhook_id, seq) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS webhook_deliveries_by_webhook
    ON webhook_deliveries (webhook_id, seq);
-- Each webhook's failed deliveries, counted on the webhooks page.
CREATE INDEX IF NOT EXISTS webhook_deliveries_failed
    ON webhook_deliveries (webhook_id) WHERE status = 'failed';

-- Every attempt at a delivery, for the delivery log.
CREATE TABLE IF NOT EXISTS webhook_attempts (
    -- Row id.
    id           INTEGER PRIMARY KEY,
    -- The delivery attempted.
    delivery_seq INTEGER NOT NULL REFERENCES webhook_deliveries (seq) ON DELETE CASCADE,
    -- When it started (Unix milliseconds).
    at           INTEGER NOT NULL,
    -- HTTP status of the answer; NULL when there was none.
    status_code  INTEGER,
    -- Why it failed (connection refused, timeout, non-2xx, ...); NULL on success.
    error        TEXT,
    -- How long it took, milliseconds.
    duration_ms  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_attempts_delivery
    ON webhook_attempts (delivery_seq, id);

-- The audit log: API requests, dashboard actions, failed authentications.
CREATE TABLE IF NOT EXISTS audit_logs (
    -- Row id (also the order).
    id          INTEGER PRIMARY KEY,
    -- What happened: 'api_request', 'auth_failed', 'dashboard_action', ...
    action      TEXT    NOT NULL,
    -- HTTP method, or NULL.
    method      TEXT,
    -- Request path without the query string, or NULL.
    path        TEXT,
    -- HTTP status answered, or NULL.
    status      INTEGER,
    -- Client address.
    ip_address  TEXT,
    -- Time spent answering, microseconds.
    duration_us INTEGER,
    -- Free text (never a secret).
    details     TEXT,
    -- When (Unix seconds).
    created_at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_logs_created ON audit_logs (created_at);

-- Replies that carried an Idempotency-Key header: a retry of the same request
-- returns the first answer and sends nothing twice.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    -- The header value, scoped to the message it replies to.
    key         TEXT    NOT NULL,
    -- Public id of the message being answered.
    message_id  TEXT    NOT NULL,
    -- HTTP status of the first answer; NULL while that request is in flight.
    status      INTEGER,
    -- JSON body of the first answer.
    body        TEXT,
    -- When (Unix seconds); rows older than a day are pruned.
    created_at  INTEGER NOT NULL,
    -- Hex SHA-256 of what the first request asked (its route, the message and
    -- its body): the same key sent with another request is refused (422).
    -- NULL for rows written before schema version 4.
    request_hash TEXT,
    PRIMARY KEY (key, message_id)
);

-- Small key/value settings: dashboard password hash, linked account, ...
CREATE TABLE IF NOT EXISTS settings (
    -- Setting name.
    key    TEXT PRIMARY KEY,
    -- Its value.
    value  TEXT NOT NULL
);

-- One row per chat, kept by the triggers below, so the conversation list
-- never groups the whole messages table.
CREATE TABLE IF NOT EXISTS chats (
    -- Chat JID (messages.phone).
    phone     TEXT    PRIMARY KEY,
    -- seq of the newest message in the chat.
    last_seq  INTEGER NOT NULL,
    -- Incoming messages of this chat whose reply_status is 'unread'.
    unread    INTEGER NOT NULL DEFAULT 0,
    -- The chat's disappearing-messages timer in seconds as its messages last
    -- said (0: off; NULL: never said); our replies carry it. Version 3.
    expiration INTEGER
);
CREATE INDEX IF NOT EXISTS chats_recent ON chats (last_seq DESC);

CREATE TRIGGER IF NOT EXISTS messages_chat_insert AFTER INSERT ON messages BEGIN
    INSERT INTO chats (phone, last_seq, unread)
    VALUES (NEW.phone, NEW.seq,
            NEW.direction = 'incoming' AND NEW.reply_status = 'unread')
    ON CONFLICT (phone) DO UPDATE SET
        last_seq = max(last_seq, excluded.last_seq),
        unread = unread + excluded.unread;
END;
CREATE TRIGGER IF NOT EXISTS messages_chat_delete AFTER DELETE ON messages
WHEN OLD.direction = 'incoming' AND OLD.reply_status = 'unread' BEGIN
    UPDATE chats SET unread = unread - 1 WHERE phone = OLD.phone;
END;
CREATE TRIGGER IF NOT EXISTS messages_chat_update AFTER UPDATE OF reply_status ON messages
WHEN NEW.direction = 'incoming' BEGIN
    UPDATE chats SET unread = unread
        - (OLD.reply_status = 'unread') + (NEW.reply_status = 'unread')
    WHERE phone = NEW.phone;
END;

-- The phone filter is a substring of the chat JID. `chat_search` gives every
-- chat a stable id (a plain rowid may change on VACUUM) and `chats_fts`, a
-- trigram index of the JIDs keyed by it, yields the candidate chats, each
-- then checked with the exact LIKE; so a filter reads the chats that hold
-- the term's trigrams instead of every chat. Kept by the triggers on
-- `chats` below. Version 8.
CREATE TABLE IF NOT EXISTS chat_search (
    -- The id `chats_fts` keys the chat by.
    id     INTEGER PRIMARY KEY,
    -- Chat JID (chats.phone).
    phone  TEXT    NOT NULL UNIQUE,
    -- Incoming messages of this chat (kept by the triggers below), so the
    -- total of a phone filter that matches many chats adds one number per
    -- chat instead of counting each one's messages. Version 9.
    incoming INTEGER NOT NULL DEFAULT 0
);
CREATE VIRTUAL TABLE IF NOT EXISTS chats_fts USING fts5(
    -- chat_search.phone of the row whose id is this rowid.
    phone,
    tokenize = 'trigram',
    content = '',
    contentless_delete = 1,
    detail = 'none'
);
CREATE TRIGGER IF NOT EXISTS chat_search_insert AFTER INSERT ON chat_search BEGIN
    INSERT INTO chats_fts (rowid, phone) VALUES (NEW.id, NEW.phone);
END;
CREATE TRIGGER IF NOT EXISTS chat_search_delete AFTER DELETE ON chat_search BEGIN
    DELETE FROM chats_fts WHERE rowid = OLD.id;
END;
CREATE TRIGGER IF NOT EXISTS chats_search_insert AFTER INSERT ON chats BEGIN
    INSERT OR IGNORE INTO chat_search (phone) VALUES (NEW.phone);
END;
CREATE TRIGGER IF NOT EXISTS chats_search_delete AFTER DELETE ON chats BEGIN
    DELETE FROM chat_search WHERE phone = OLD.phone;
END;
-- The incoming counts. An upsert, as the chat's row may not be there yet
-- (the order in which triggers on `messages` fire is not defined).
CREATE TRIGGER IF NOT EXISTS messages_incoming_insert AFTER INSERT ON messages
WHEN NEW.direction = 'incoming' BEGIN
    INSERT INTO chat_search (phone, incoming) VALUES (NEW.phone, 1)
    ON CONFLICT (phone) DO UPDATE SET incoming = incoming + 1;
END;
CREATE TRIGGER IF NOT EXISTS messages_incoming_delete AFTER DELETE ON messages
WHEN OLD.direction = 'incoming' BEGIN
    UPDATE chat_search SET incoming = incoming - 1 WHERE phone = OLD.phone;
END;
CREATE TRIGGER IF NOT EXISTS messages_incoming_update AFTER UPDATE OF phone, direction ON messages
BEGIN
    UPDATE chat_search SET incoming = incoming - 1
        WHERE phone = OLD.phone AND OLD.direction = 'incoming';
    INSERT INTO chat_search (phone, incoming) SELECT NEW.phone, 1
        WHERE NEW.direction = 'incoming'
    ON CONFLICT (phone) DO UPDATE SET incoming = incoming + 1;
END;

-- Two numbers that grow whenever an incoming message changes in a way that
-- can change which inbox filters it matches: `n` for its text, chat, time,
-- direction or seq, a deletion, or an insert anywhere but after the newest
-- seq; `status_n` for its reply status. While they stay the same, the only
-- change to the inbox is new messages at the end, so a total counted before
-- stays exact once the messages after it are added: the server keeps the
-- totals of filtered pages this way (src/db/inbox/totals.rs), and a total
-- with no status filter outlives status changes. Version 10.
CREATE TABLE IF NOT EXISTS inbox_changes (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    n        INTEGER NOT NULL,
    status_n INTEGER NOT NULL
);
INSERT OR IGNORE INTO inbox_changes (id, n, status_n) VALUES (1, 0, 0);
CREATE TRIGGER IF NOT EXISTS messages_changes_insert AFTER INSERT ON messages
WHEN NEW.direction = 'incoming' AND NEW.seq < (SELECT max(seq) FROM messages) BEGIN
    UPDATE inbox_changes SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS messages_changes_delete AFTER DELETE ON messages
WHEN OLD.direction = 'incoming' BEGIN
    UPDATE inbox_changes SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS messages_changes_update AFTER UPDATE ON messages
WHEN (OLD.direction = 'incoming' OR NEW.direction = 'incoming')
    AND (OLD.seq IS NOT NEW.seq OR OLD.direction IS NOT NEW.direction
        OR OLD.message IS NOT NEW.message OR OLD.phone IS NOT NEW.phone
        OR OLD.created_at IS NOT NEW.created_at) BEGIN
    UPDATE inbox_changes SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS messages_status_changes AFTER UPDATE OF reply_status ON messages
WHEN NEW.direction = 'incoming' AND OLD.reply_status IS NOT NEW.reply_status BEGIN
    UPDATE inbox_changes SET status_n = status_n + 1;
END;

-- Display names of chats (a group's subject), as WhatsApp reports them.
CREATE TABLE IF NOT EXISTS chat_names (
    -- Chat JID (messages.phone).
    phone       TEXT    PRIMARY KEY,
    -- The name, as last reported.
    name        TEXT    NOT NULL,
    -- When it was last reported (Unix seconds).
    updated_at  INTEGER NOT NULL
);
