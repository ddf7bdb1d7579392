//! The app database: `connect()`, schema upgrades, and every SQL statement of
//! the program as small typed functions. No SQL lives anywhere else.

use crate::clock;
use crate::wa::{DeliveryStatus, IncomingMessage, MediaInfo, PendingMedia};
use rusqlite::{
    Connection, OptionalExtension, Transaction, TransactionBehavior, params, params_from_iter,
};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

pub use rusqlite::Error as DbError;
pub type DbResult<T> = Result<T, DbError>;

/// The schema, applied at start-up.
const SCHEMA: &str = include_str!("../schema.sql");
/// `PRAGMA user_version` of a database `SCHEMA` has brought up to date.
pub const SCHEMA_VERSION: i64 = 5;

/// Version 2 added the trigram search index `messages_fts` (schema.sql
/// creates it, empty); an older database also indexes the messages it holds.
const UPGRADE_TO_2: &str = "INSERT INTO messages_fts (rowid, message)
     SELECT seq, message FROM messages WHERE direction = 'incoming';
     INSERT INTO messages_fts (messages_fts) VALUES ('optimize');";

/// Columns version 3 added to existing tables (before schema.sql runs, as
/// its indexes name them): `(table, column, definition)`.
const COLUMNS_OF_3: [(&str, &str, &str); 7] = [
    ("messages", "sender_lid", "TEXT"),
    ("messages", "wa_chat", "TEXT"),
    ("messages", "wa_sender", "TEXT"),
    (
        "messages",
        "placeholder",
        "TEXT CHECK (placeholder IN ('view_once', 'undecryptable'))",
    ),
    (
        "messages",
        "source",
        "TEXT CHECK (source IN ('api', 'dashboard', 'phone'))",
    ),
    ("messages", "received_at", "INTEGER"),
    ("chats", "expiration", "INTEGER"),
];

/// Version 3 keys redelivery on the chat and author as received: existing
/// messages keep theirs (phone and sender_jid were stored as received, or
/// mapped from a LID the old key also missed). Replies get their source.
/// (Older rows have no arrival time apart from created_at, which is what
/// reads show for a NULL received_at.)
const UPGRADE_TO_3: &str = "UPDATE messages SET wa_chat = phone, wa_sender = sender_jid
         WHERE direction = 'incoming' AND wa_id IS NOT NULL;
     UPDATE messages SET source = 'api' WHERE direction = 'outgoing' AND wa_id IS NOT NULL;
     DROP INDEX IF EXISTS messages_wa_key;";

/// Columns version 4 added: an Idempotency-Key is bound to its request.
const COLUMNS_OF_4: [(&str, &str, &str); 1] = [("idempotency_keys", "request_hash", "TEXT")];

/// Columns version 5 added: a reply keeps the Idempotency-Key it was sent
/// with, so a retry finds it.
const COLUMNS_OF_5: [(&str, &str, &str); 1] = [("messages", "idempotency_key", "TEXT")];

/// The five values of `messages.reply_status`.
pub const REPLY_STATUSES: [&str; 5] = ["unread", "read", "replied", "ignored", "sent"];

/// Opens (creating if needed) the app database with the pragmas every
/// connection needs: WAL, synchronous=FULL, foreign keys, a busy timeout.
///
/// FULL because what these connections commit is then acknowledged: a
/// message to WhatsApp (which never sends it again), a write to a client
/// with a 2xx. In WAL mode FULL syncs the log at every commit; NORMAL syncs
/// it only at checkpoints, so a power cut or kernel crash after the
/// acknowledgement would lose the commit. Group commit (the sink) keeps the
/// syncs few.
pub fn connect(path: &Path) -> DbResult<Connection> {
    let mut conn = Connection::open(path)?;
    configure(&mut conn)?;
    Ok(conn)
}

/// `connect` for a thread whose commits nobody is told about: the audit
/// writer (a request is answered before its row is written) and the webhook
/// thread (a delivery outcome lost on a power cut means one more delivery,
/// which at-least-once allows). synchronous=NORMAL: still atomic and never
/// corrupt, durable at the next checkpoint or at the next FULL commit on any
/// connection, since that sync covers the whole log.
pub fn connect_unacknowledged(path: &Path) -> DbResult<Connection> {
    let conn = connect(path)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

/// An in-memory database with the real schema, for tests.
pub fn open_memory() -> DbResult<Connection> {
    let mut conn = Connection::open_in_memory()?;
    configure(&mut conn)?;
    migrate(&conn)?;
    Ok(conn)
}

fn configure(conn: &mut Connection) -> DbResult<()> {
    // Every `transaction()` is a writer's: it takes the write lock at BEGIN,
    // waiting out the busy timeout. A deferred one that reads first and then
    // writes fails at once with SQLITE_BUSY (the busy handler cannot help) if
    // another connection committed in between. Read snapshots ask for
    // `Deferred` explicitly (`read_snapshot`).
    conn.set_transaction_behavior(TransactionBehavior::Immediate);
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// A read-only transaction: one consistent snapshot for several queries,
/// taking no write lock.
fn read_snapshot(conn: &Connection) -> DbResult<Transaction<'_>> {
    Transaction::new_unchecked(conn, TransactionBehavior::Deferred)
}

/// Gives a bulk loader's connection a large page cache (256 MiB), so one big
/// transaction does not spill pages to the WAL and read them back.
pub fn tune_for_bulk_load(conn: &Connection) -> DbResult<()> {
    conn.pragma_update(None, "cache_size", -262_144)
}

/// Merges the search index into one segment. A bulk load in one transaction
/// leaves it in many (each costs a lookup per query term); the live server
/// adds one per stored message and FTS5's automerge keeps those few.
pub fn optimize_search_index(conn: &Connection) -> DbResult<()> {
    conn.execute_batch("INSERT INTO messages_fts (messages_fts) VALUES ('optimize');")
}

/// Brings the schema up to `SCHEMA_VERSION`. Refuses a database written by a
/// newer version of the program rather than guessing.
pub fn migrate(conn: &Connection) -> DbResult<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(DbError::InvalidParameterName(format!(
            "the database has schema version {version}, newer than this program's {SCHEMA_VERSION}; upgrade whatsapp-api"
        )));
    }
    // Every statement in schema.sql is idempotent, so every version simply
    // runs it, after adding the columns it expects to tables that predate
    // them; the steps after it fill what it created for rows that predate it.
    // Version 0 is a new, empty file: nothing to add or fill.
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let mut added: Vec<(&str, &str, &str)> = Vec::new();
    if (1..3).contains(&version) {
        added.extend(COLUMNS_OF_3);
    }
    if (1..4).contains(&version) {
        added.extend(COLUMNS_OF_4);
    }
    if (1..5).contains(&version) {
        added.extend(COLUMNS_OF_5);
    }
    for (table, column, definition) in added {
        if !table_columns(&tx, table)?.iter().any(|c| c == column) {
            tx.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {column} {definition};"
            ))?;
        }
    }
    let mut steps = String::new();
    if version == 1 {
        steps.push_str(UPGRADE_TO_2);
    }
    if (1..3).contains(&version) {
        steps.push_str(UPGRADE_TO_3);
    }
    tx.execute_batch(&format!(
        "{SCHEMA}\n{steps}\nPRAGMA user_version = {SCHEMA_VERSION};"
    ))?;
    tx.commit()
}

// ───────────────────────────── messages ─────────────────────────────

/// A stored message, as the API and the dashboard show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub seq: i64,
    pub id: String,
    pub wa_id: Option<String>,
    pub direction: String,
    pub phone: String,
    pub sender_jid: String,
    pub push_name: Option<String>,
    pub message: String,
    pub reply_status: String,
    pub delivery_status: Option<String>,
    pub media_type: Option<String>,
    pub media_url: Option<String>,
    pub media_mime: Option<String>,
    pub media_size: Option<i64>,
    pub media_sha256: Option<String>,
    pub media_error: Option<String>,
    pub in_reply_to: Option<String>,
    pub created_at: i64,
    pub sender_lid: Option<String>,
    /// Outgoing: `api`, `dashboard` or `phone`.
    pub source: Option<String>,
    /// `view_once` / `undecryptable` while the text is a stand-in.
    pub placeholder: Option<String>,
    /// When this server stored it (rows from before schema 3: created_at).
    pub received_at: i64,
}

const MESSAGE_COLUMNS: &str = "seq, id, wa_id, direction, phone, sender_jid, push_name, message, \
     reply_status, delivery_status, media_type, media_url, media_mime, media_size, media_sha256, \
     media_error, in_reply_to, created_at, sender_lid, source, placeholder, \
     coalesce(received_at, created_at)";

/// `MESSAGE_COLUMNS` of the table aliased `m`.
const MESSAGE_COLUMNS_M: &str = "m.seq, m.id, m.wa_id, m.direction, m.phone, m.sender_jid, \
     m.push_name, m.message, m.reply_status, m.delivery_status, m.media_type, m.media_url, \
     m.media_mime, m.media_size, m.media_sha256, m.media_error, m.in_reply_to, m.created_at, \
     m.sender_lid, m.source, m.placeholder, coalesce(m.received_at, m.created_at)";

/// How many columns `MESSAGE_COLUMNS` reads (a query's own columns follow).
const MESSAGE_COLUMN_COUNT: usize = 22;

fn message_from_row(r: &rusqlite::Row<'_>) -> DbResult<Message> {
    Ok(Message {
        seq: r.get(0)?,
        id: r.get(1)?,
        wa_id: r.get(2)?,
        direction: r.get(3)?,
        phone: r.get(4)?,
        sender_jid: r.get(5)?,
        push_name: r.get(6)?,
        message: r.get(7)?,
        reply_status: r.get(8)?,
        delivery_status: r.get(9)?,
        media_type: r.get(10)?,
        media_url: r.get(11)?,
        media_mime: r.get(12)?,
        media_size: r.get(13)?,
        media_sha256: r.get(14)?,
        media_error: r.get(15)?,
        in_reply_to: r.get(16)?,
        created_at: r.get(17)?,
        sender_lid: r.get(18)?,
        source: r.get(19)?,
        placeholder: r.get(20)?,
        received_at: r.get(21)?,
    })
}

impl Message {
    /// The API's JSON for a message: the Node server's fields, then extras.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The API's JSON for a message, written straight to the output (an inbox
/// page is 50 of these: no intermediate `Value` tree, which was most of the
/// cost of a page). Keys in alphabetical order, byte for byte what `json!`
/// (a sorted map) produced before.
impl serde::Serialize for Message {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(19))?;
        m.serialize_entry("created_at", &clock::format_datetime(self.created_at))?;
        m.serialize_entry("delivery_status", &self.delivery_status)?;
        m.serialize_entry("direction", &self.direction)?;
        m.serialize_entry("id", &self.id)?;
        m.serialize_entry("in_reply_to", &self.in_reply_to)?;
        m.serialize_entry("media_error", &self.media_error)?;
        m.serialize_entry("media_mime", &self.media_mime)?;
        m.serialize_entry("media_size", &self.media_size)?;
        m.serialize_entry("media_type", &self.media_type)?;
        m.serialize_entry("media_url", &self.media_url)?;
        m.serialize_entry("message", &self.message)?;
        m.serialize_entry("phone", &self.phone)?;
        m.serialize_entry("push_name", &self.push_name)?;
        m.serialize_entry("received_at", &clock::format_datetime(self.received_at))?;
        m.serialize_entry("reply_status", &self.reply_status)?;
        m.serialize_entry("sender_jid", &self.sender_jid)?;
        m.serialize_entry("sender_lid", &self.sender_lid)?;
        m.serialize_entry("source", &self.source)?;
        m.serialize_entry("wa_id", &self.wa_id)?;
        m.end()
    }
}

/// What storing a received message did.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// A new row: a customer's message, or our own sent from the phone.
    New(Message),
    /// The placeholder row of this message now holds its content (same id).
    Filled(Message),
    /// Stored before: a redelivery.
    Duplicate,
}

/// Stores a message as WhatsApp delivered it, in the caller's transaction:
/// learns the LID pairs it carries (merging a LID chat into its phone-number
/// chat), maps a LID chat and author to phone numbers, and inserts it once —
/// keyed on (chat, author, id) as received — or fills in the placeholder row
/// it was waiting for. Our own messages from the phone become outgoing rows
/// (source `phone`) and mark the chat's newest incoming message before them
/// `replied`. `id` is the public id a new row gets; `now` is its arrival.
pub fn store_received(
    tx: &Transaction<'_>,
    id: &str,
    m: &IncomingMessage,
    now: i64,
) -> DbResult<Received> {
    for (lid, pn) in &m.mappings {
        learn_lid(tx, lid, pn, now)?;
    }
    let chat = phone_of(tx, &m.chat)?;
    let sender = phone_of(tx, &m.sender)?;
    let sender_lid = if is_lid(&m.sender) {
        Some(m.sender.clone())
    } else {
        lid_of(tx, &sender)?
    };
    let existing: Option<(String, Option<String>)> = tx
        .prepare_cached(
            "SELECT id, placeholder FROM messages WHERE wa_chat = ?1 AND wa_sender = ?2 AND wa_id = ?3",
        )?
        .query_row(params![m.chat, m.sender, m.wa_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    if let Some((existing_id, placeholder)) = existing {
        if placeholder.is_some() && m.placeholder.is_none() {
            fill_placeholder(tx, &existing_id, m)?;
            let row = get_message(tx, &existing_id)?.expect("the row was just updated");
            return Ok(Received::Filled(row));
        }
        return Ok(Received::Duplicate);
    }
    if m.from_me && outgoing_exists(tx, &chat, &m.wa_id)? {
        // A reply this server sent, echoed back by another of our devices.
        return Ok(Received::Duplicate);
    }
    // WhatsApp's time, unless it is missing or absurd (a clock a day ahead).
    let created_at = m
        .timestamp
        .filter(|t| *t > 0 && *t <= now + 86_400)
        .unwrap_or(now);
    let media = MediaColumns::of(m.media.as_ref());
    let (direction, reply_status, delivery_status, source) = if m.from_me {
        ("outgoing", "sent", Some("sent"), Some("phone"))
    } else {
        ("incoming", "unread", None, None)
    };
    let inserted = tx
        .prepare_cached(
            "INSERT INTO messages (id, wa_id, direction, phone, sender_jid, sender_lid, wa_chat,
                 wa_sender, push_name, message, reply_status, delivery_status, source, placeholder,
                 media_type, media_url, media_mime, media_size, media_sha256, media_error, raw,
                 created_at, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                 ?18, ?19, ?20, ?21, ?22, ?23)
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            id,
            m.wa_id,
            direction,
            chat,
            sender,
            sender_lid,
            m.chat,
            m.sender,
            m.push_name,
            m.text,
            reply_status,
            delivery_status,
            source,
            m.placeholder.map(|p| p.as_str()),
            media.kind,
            media.url,
            media.mime,
            media.size,
            media.sha256,
            media.error,
            m.raw,
            created_at,
            now,
        ])?;
    if inserted == 0 {
        return Ok(Received::Duplicate);
    }
    if m.from_me {
        // Answered on the phone: nobody should answer again.
        tx.prepare_cached(
            "UPDATE messages SET reply_status = 'replied'
             WHERE seq = (SELECT seq FROM messages
                          WHERE phone = ?1 AND direction = 'incoming' AND created_at <= ?2
                          ORDER BY created_at DESC, seq DESC LIMIT 1)
               AND reply_status IN ('unread', 'read')",
        )?
        .execute(params![chat, created_at])?;
    }
    if let Some(seconds) = m.expiration {
        set_chat_expiration(tx, &chat, seconds)?;
    }
    let row = get_message(tx, id)?.expect("the row was just inserted");
    Ok(Received::New(row))
}

/// Records the fetched media of a row still waiting for it; the row when
/// it was waiting (None: another download got there first).
pub fn set_media(tx: &Transaction<'_>, id: &str, media: &MediaInfo) -> DbResult<Option<Message>> {
    let media = MediaColumns::of(Some(media));
    let changed = tx
        .prepare_cached(
            "UPDATE messages SET media_url = ?2, media_mime = coalesce(?3, media_mime),
                 media_size = coalesce(?4, media_size), media_sha256 = ?5, media_error = ?6
             WHERE id = ?1 AND media_type IS NOT NULL AND media_url IS NULL
               AND media_error IS NULL",
        )?
        .execute(params![
            id,
            media.url,
            media.mime,
            media.size,
            media.sha256,
            media.error
        ])?;
    if changed == 0 {
        return Ok(None);
    }
    get_message(tx, id)
}

/// Stored messages still waiting for their media, oldest first.
pub fn pending_media(conn: &Connection, limit: u32) -> DbResult<Vec<PendingMedia>> {
    conn.prepare_cached(
        "SELECT id, wa_id, wa_chat, wa_sender, direction, raw FROM messages
         WHERE media_type IS NOT NULL AND media_url IS NULL AND media_error IS NULL
           AND raw IS NOT NULL AND wa_chat IS NOT NULL
         ORDER BY seq LIMIT ?1",
    )?
    .query_map([limit], |r| {
        Ok(PendingMedia {
            id: r.get(0)?,
            wa_id: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
            chat: r.get(2)?,
            sender: r.get(3)?,
            from_me: r.get::<_, String>(4)? == "outgoing",
            raw: r.get(5)?,
        })
    })?
    .collect()
}

/// A message's media as the six media columns of its row.
struct MediaColumns<'a> {
    kind: Option<&'a str>,
    url: Option<String>,
    mime: Option<&'a str>,
    size: Option<i64>,
    sha256: Option<&'a str>,
    error: Option<&'a str>,
}

impl<'a> MediaColumns<'a> {
    fn of(media: Option<&'a MediaInfo>) -> MediaColumns<'a> {
        MediaColumns {
            kind: media.map(|x| x.kind.as_str()),
            url: media
                .and_then(|x| x.file_name.as_ref())
                .map(|f| format!("/media/{f}")),
            mime: media.and_then(|x| x.mime.as_deref()),
            size: media.and_then(|x| x.size).map(|s| s as i64),
            sha256: media.and_then(|x| x.sha256.as_deref()),
            error: media.and_then(|x| x.error.as_deref()),
        }
    }
}

/// A placeholder row takes the content that arrived for it.
fn fill_placeholder(tx: &Transaction<'_>, id: &str, m: &IncomingMessage) -> DbResult<()> {
    let media = MediaColumns::of(m.media.as_ref());
    tx.prepare_cached(
        "UPDATE messages SET message = ?2, placeholder = NULL, raw = ?3,
             push_name = coalesce(?4, push_name), media_type = ?5, media_url = ?6,
             media_mime = ?7, media_size = ?8, media_sha256 = ?9, media_error = ?10
         WHERE id = ?1",
    )?
    .execute(params![
        id,
        m.text,
        m.raw,
        m.push_name,
        media.kind,
        media.url,
        media.mime,
        media.size,
        media.sha256,
        media.error,
    ])?;
    Ok(())
}

/// Whether an outgoing message with this WhatsApp id exists in the chat.
fn outgoing_exists(tx: &Transaction<'_>, chat: &str, wa_id: &str) -> DbResult<bool> {
    tx.prepare_cached(
        "SELECT 1 FROM messages WHERE wa_id = ?1 AND direction = 'outgoing' AND phone = ?2",
    )?
    .query_row(params![wa_id, chat], |_| Ok(()))
    .optional()
    .map(|found| found.is_some())
}

fn is_lid(jid: &str) -> bool {
    jid.ends_with("@lid")
}

/// The phone-number JID of a mapped LID; any other JID as it is.
pub fn phone_of(conn: &Connection, jid: &str) -> DbResult<String> {
    if !is_lid(jid) {
        return Ok(jid.to_string());
    }
    Ok(conn
        .prepare_cached("SELECT pn FROM lid_map WHERE lid = ?1")?
        .query_row([jid], |r| r.get(0))
        .optional()?
        .unwrap_or_else(|| jid.to_string()))
}

/// The LID known for a phone-number JID.
pub fn lid_of(conn: &Connection, pn: &str) -> DbResult<Option<String>> {
    conn.prepare_cached("SELECT lid FROM lid_map WHERE pn = ?1 ORDER BY updated_at DESC LIMIT 1")?
        .query_row([pn], |r| r.get(0))
        .optional()
}

/// A LID's messages in groups take its number (`?1` the LID, `?2` the
/// number). The LIKE repeats the partial index's condition, so the index of
/// unmapped LID authors is used instead of a scan of every message.
const MAP_LID_AUTHOR: &str = "UPDATE messages SET sender_jid = ?2, sender_lid = ?1
     WHERE sender_jid = ?1 AND sender_jid LIKE '%@lid'";

/// Records that `lid` is `pn`. When the pair is new (or the LID moved to
/// another number), the LID's chat is merged into the phone-number chat and
/// its messages' authors take the number (keeping the LID as sender_lid).
/// True when something changed.
pub fn learn_lid(tx: &Transaction<'_>, lid: &str, pn: &str, now: i64) -> DbResult<bool> {
    if !is_lid(lid) || is_lid(pn) || lid == pn {
        return Ok(false);
    }
    let changed = tx
        .prepare_cached(
            "INSERT INTO lid_map (lid, pn, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (lid) DO UPDATE SET pn = excluded.pn, updated_at = excluded.updated_at
                 WHERE pn <> excluded.pn",
        )?
        .execute(params![lid, pn, now])?;
    if changed == 0 {
        return Ok(false);
    }
    tx.prepare_cached(
        "UPDATE messages SET phone = ?2,
             sender_lid = CASE WHEN sender_jid = ?1 THEN ?1 ELSE sender_lid END,
             sender_jid = CASE WHEN sender_jid = ?1 THEN ?2 ELSE sender_jid END
         WHERE phone = ?1",
    )?
    .execute(params![lid, pn])?;
    tx.prepare_cached(MAP_LID_AUTHOR)?
        .execute(params![lid, pn])?;
    // The per-chat counters follow their messages.
    tx.prepare_cached(
        "INSERT INTO chats (phone, last_seq, unread, expiration)
             SELECT ?2, last_seq, unread, expiration FROM chats WHERE phone = ?1
         ON CONFLICT (phone) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq),
             unread = unread + excluded.unread,
             expiration = coalesce(expiration, excluded.expiration)",
    )?
    .execute(params![lid, pn])?;
    tx.prepare_cached("DELETE FROM chats WHERE phone = ?1")?
        .execute([lid])?;
    Ok(true)
}

/// Records a chat's disappearing-messages timer (0: off).
pub fn set_chat_expiration(conn: &Connection, chat: &str, seconds: u32) -> DbResult<()> {
    conn.prepare_cached("UPDATE chats SET expiration = ?2 WHERE phone = ?1")?
        .execute(params![chat, seconds])?;
    Ok(())
}

/// A chat's disappearing-messages timer, when it has one on.
pub fn chat_expiration(conn: &Connection, chat: &str) -> DbResult<Option<u32>> {
    Ok(conn
        .prepare_cached("SELECT expiration FROM chats WHERE phone = ?1")?
        .query_row([chat], |r| r.get::<_, Option<u32>>(0))
        .optional()?
        .flatten()
        .filter(|s| *s > 0))
}

/// What an outgoing row records.
pub struct Outgoing<'a> {
    pub id: &'a str,
    pub wa_id: &'a str,
    pub phone: &'a str,
    pub sender_jid: &'a str,
    pub text: &'a str,
    pub in_reply_to: &'a str,
    /// `api` or `dashboard`.
    pub source: &'a str,
    /// The request's Idempotency-Key, if it had one.
    pub idempotency_key: Option<&'a str>,
    pub created_at: i64,
}

/// Stores a reply before it is sent (delivery status `pending`): its
/// WhatsApp id is chosen and kept first, so that a retry sends the same id
/// and a receipt finds the row whenever it comes.
pub fn insert_outgoing(tx: &Transaction<'_>, o: &Outgoing<'_>) -> DbResult<Message> {
    tx.prepare_cached(
        "INSERT INTO messages (id, wa_id, direction, phone, sender_jid, message, reply_status,
             delivery_status, in_reply_to, source, idempotency_key, created_at, received_at)
         VALUES (?1, ?2, 'outgoing', ?3, ?4, ?5, 'sent', 'pending', ?6, ?7, ?8, ?9, ?9)",
    )?
    .execute(params![
        o.id,
        o.wa_id,
        o.phone,
        o.sender_jid,
        o.text,
        o.in_reply_to,
        o.source,
        o.idempotency_key,
        o.created_at
    ])?;
    get_message(tx, o.id).map(|m| m.expect("the row was just inserted"))
}

/// The reply to `in_reply_to` an earlier request with this Idempotency-Key
/// stored, if any.
pub fn reply_for_key(conn: &Connection, in_reply_to: &str, key: &str) -> DbResult<Option<Message>> {
    conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages
         WHERE in_reply_to = ?1 AND idempotency_key = ?2 AND direction = 'outgoing'"
    ))?
    .query_row(params![in_reply_to, key], message_from_row)
    .optional()
}

/// A failed reply is about to be sent again (same id): pending once more.
pub fn retry_outgoing(conn: &Connection, id: &str) -> DbResult<()> {
    conn.prepare_cached(
        "UPDATE messages SET delivery_status = 'pending'
         WHERE id = ?1 AND direction = 'outgoing' AND delivery_status = 'failed'",
    )?
    .execute([id])?;
    Ok(())
}

/// WhatsApp accepted (acknowledged, or already delivered) a pending message
/// of ours: it moves to `status` and the message it answers becomes
/// `replied`. The row when this happened now, None when it was not pending
/// (accepted before, or not ours).
pub fn accept_outgoing(
    tx: &Transaction<'_>,
    wa_id: &str,
    status: DeliveryStatus,
) -> DbResult<Option<Message>> {
    let id: Option<String> = tx
        .prepare_cached(
            "UPDATE messages SET delivery_status = ?2
             WHERE wa_id = ?1 AND direction = 'outgoing' AND delivery_status = 'pending'
             RETURNING id",
        )?
        .query_row(params![wa_id, status.as_str()], |r| r.get(0))
        .optional()?;
    let Some(id) = id else { return Ok(None) };
    let row = get_message(tx, &id)?.expect("the row was just updated");
    if let Some(original) = &row.in_reply_to {
        set_reply_status(tx, original, "replied")?;
    }
    Ok(Some(row))
}

/// WhatsApp refused a pending message of ours (or it could not be sent):
/// `failed`. The row when it changed.
pub fn fail_outgoing(tx: &Transaction<'_>, wa_id: &str) -> DbResult<Option<Message>> {
    let id: Option<String> = tx
        .prepare_cached(
            "UPDATE messages SET delivery_status = 'failed'
             WHERE wa_id = ?1 AND direction = 'outgoing' AND delivery_status = 'pending'
             RETURNING id",
        )?
        .query_row([wa_id], |r| r.get(0))
        .optional()?;
    match id {
        Some(id) => get_message(tx, &id),
        None => Ok(None),
    }
}

/// What a quoted reply needs of the original beyond its text: its protobuf
/// and its author exactly as WhatsApp named it (a LID stays a LID).
pub fn quote_source(conn: &Connection, id: &str) -> DbResult<(Option<Vec<u8>>, Option<String>)> {
    Ok(conn
        .prepare_cached("SELECT raw, wa_sender FROM messages WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((None, None)))
}

/// A complete message row as a bulk loader writes it (the benchmark corpus):
/// unlike `insert_incoming`, every triage field is given, and nothing is read back.
#[derive(Debug, Clone, Default)]
pub struct NewMessage<'a> {
    pub id: &'a str,
    pub wa_id: Option<&'a str>,
    pub direction: &'a str,
    pub phone: &'a str,
    pub sender_jid: &'a str,
    pub push_name: Option<&'a str>,
    pub message: &'a str,
    pub reply_status: &'a str,
    pub delivery_status: Option<&'a str>,
    pub media_type: Option<&'a str>,
    pub in_reply_to: Option<&'a str>,
    pub created_at: i64,
}

/// Writes one row inside the caller's transaction (the triggers keep counts,
/// chats and the search index as for any other insert).
pub fn insert_message_row(tx: &Transaction<'_>, m: &NewMessage<'_>) -> DbResult<()> {
    tx.prepare_cached(
        "INSERT INTO messages (id, wa_id, direction, phone, sender_jid, push_name, message,
             reply_status, delivery_status, media_type, in_reply_to, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        m.id,
        m.wa_id,
        m.direction,
        m.phone,
        m.sender_jid,
        m.push_name,
        m.message,
        m.reply_status,
        m.delivery_status,
        m.media_type,
        m.in_reply_to,
        m.created_at
    ])?;
    Ok(())
}

/// One message by public id.
pub fn get_message(conn: &Connection, id: &str) -> DbResult<Option<Message>> {
    conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1"
    ))?
    .query_row([id], message_from_row)
    .optional()
}

/// Sets one message's reply_status; false when there is no such message.
pub fn set_reply_status(conn: &Connection, id: &str, status: &str) -> DbResult<bool> {
    Ok(conn
        .prepare_cached("UPDATE messages SET reply_status = ?2 WHERE id = ?1")?
        .execute(params![id, status])?
        > 0)
}

/// Sets the reply_status of many messages in one transaction; returns how
/// many rows exist among `ids`.
pub fn set_reply_status_many(
    conn: &mut Connection,
    ids: &[String],
    status: &str,
) -> DbResult<usize> {
    let tx = conn.transaction()?;
    let mut updated = 0;
    {
        let mut stmt = tx.prepare_cached("UPDATE messages SET reply_status = ?2 WHERE id = ?1")?;
        for id in ids {
            updated += stmt.execute(params![id, status])?;
        }
    }
    tx.commit()?;
    Ok(updated)
}

/// Moves outgoing messages' delivery status forward (never backwards, and
/// never out of `failed`); returns how many rows changed.
pub fn advance_delivery_status(
    conn: &Connection,
    wa_ids: &[String],
    status: DeliveryStatus,
) -> DbResult<usize> {
    let mut stmt = conn.prepare_cached(
        "UPDATE messages SET delivery_status = ?2
         WHERE wa_id = ?1 AND direction = 'outgoing'
           AND (CASE delivery_status WHEN 'pending' THEN 0 WHEN 'sent' THEN 1
                WHEN 'delivered' THEN 2 WHEN 'read' THEN 3 ELSE 4 END) < ?3",
    )?;
    let mut n = 0;
    for wa_id in wa_ids {
        n += stmt.execute(params![wa_id, status.as_str(), status.rank()])?;
    }
    Ok(n)
}

/// Filters of an inbox page. `status` None means every status.
#[derive(Debug, Clone, Default)]
pub struct InboxQuery {
    pub status: Option<String>,
    pub search: Option<String>,
    pub phone: Option<String>,
    /// First second included.
    pub from: Option<i64>,
    /// First second excluded.
    pub until: Option<i64>,
    pub page: u32,
    pub limit: u32,
}

/// `%term%` for LIKE, with the term's own `%`, `_` and `\` matched literally.
fn like_pattern(term: &str) -> String {
    let mut p = String::with_capacity(term.len() + 2);
    p.push('%');
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// How long a measured trigram document frequency is used before it is
/// measured again. It only steers which trigrams filter the candidates,
/// never which rows match, so a stale value costs time, not correctness.
const TRIGRAM_DF_TTL: Duration = Duration::from_secs(600);
/// Most trigram frequencies remembered per thread (then it starts afresh).
const TRIGRAM_DF_MAX: usize = 4096;

thread_local! {
    /// Per thread, as every HTTP worker owns its connection: how many indexed
    /// messages hold a trigram (the FTS5 query string), and when it was counted.
    static TRIGRAM_DF: std::cell::RefCell<std::collections::HashMap<String, (i64, std::time::Instant)>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// `"xyz"`: one trigram as an FTS5 string (the index folds its case).
fn fts_string(trigram: &str) -> String {
    format!("\"{}\"", trigram.replace('"', "\"\""))
}

/// How many indexed messages hold `trigram` (an FTS5 string), remembered.
fn trigram_df(conn: &Connection, trigram: &str) -> DbResult<i64> {
    let now = std::time::Instant::now();
    if let Some(n) = TRIGRAM_DF.with(|m| {
        m.borrow()
            .get(trigram)
            .filter(|(_, at)| now.duration_since(*at) < TRIGRAM_DF_TTL)
            .map(|(n, _)| *n)
    }) {
        return Ok(n);
    }
    let n: i64 = conn
        .prepare_cached("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH ?1")?
        .query_row([trigram], |r| r.get(0))?;
    TRIGRAM_DF.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() >= TRIGRAM_DF_MAX {
            m.clear();
        }
        m.insert(trigram.to_string(), (n, now));
    });
    Ok(n)
}

/// The FTS5 query whose rows are the candidates for a substring search of
/// `term`: the AND of two of its trigrams. Every row that contains the term
/// contains each of its trigrams (the index folds case at least as widely as
/// LIKE), so any subset of them is a sound filter. Chosen: the rarest one
/// (a trigram such as "der", from "order", is in a quarter of all messages,
/// and reading its list costs milliseconds at 1M), and the rarest from
/// another word of the term (two trigrams of one word mostly find the same
/// rows) or else one that does not overlap it. None when the term is too
/// short to have a trigram.
fn fts_candidates_query(conn: &Connection, term: &str) -> DbResult<Option<String>> {
    let chars: Vec<char> = term.chars().collect();
    // FTS5 query strings end at a NUL; such a term takes the plain LIKE path.
    if chars.len() < 3 || term.contains('\0') {
        return Ok(None);
    }
    // (document frequency, start, word of the trigram or None when it
    // spans whitespace, FTS5 string)
    let mut word = 0;
    let mut trigrams = Vec::with_capacity(chars.len() - 2);
    for (start, w) in chars.windows(3).enumerate() {
        if start > 0 && chars[start - 1].is_whitespace() && !chars[start].is_whitespace() {
            word += 1;
        }
        let in_word = (!w.iter().any(|c| c.is_whitespace())).then_some(word);
        let text = fts_string(&w.iter().collect::<String>());
        trigrams.push((trigram_df(conn, &text)?, start, in_word, text));
    }
    trigrams.sort_unstable();
    let (_, first_start, first_word, first) = &trigrams[0];
    let other_word = trigrams
        .iter()
        .find(|t| t.2.is_some() && first_word.is_some() && t.2 != *first_word);
    let apart = || trigrams.iter().find(|t| t.1.abs_diff(*first_start) >= 3);
    Ok(Some(match other_word.or_else(apart) {
        Some((_, _, _, second)) => format!("{first} {second}"),
        None => first.clone(),
    }))
}

/// The phone filter as a set: messages of the chats whose JID matches.
/// Same rows as `m.phone LIKE ?`, as every message's phone has a `chats` row.
const MATCHING_CHATS: &str = "m.phone IN (SELECT phone FROM chats WHERE phone LIKE ? ESCAPE '\\')";

/// How to apply a phone filter.
#[derive(Debug, PartialEq)]
enum PhonePlan {
    /// No chat matches: no message can.
    NoChat,
    /// Few messages match: one pass over their chats' entries in
    /// `messages_chat_inbox`, then only the page's rows; costs per matching
    /// message.
    ByChat,
    /// Many match: one pass over the inbox, checking each phone; costs per
    /// message of the inbox, about a tenth of a matching one.
    Scan,
}

/// Picks the cheaper way to filter by the phone `pattern` (a LIKE pattern):
/// it counts the matching chats' messages (both directions, an upper bound)
/// in the `messages_chat` index, microseconds per thousand, and compares
/// that with the number of incoming messages.
fn phone_plan(conn: &Connection, pattern: &str) -> DbResult<PhonePlan> {
    let matching: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM messages
             WHERE phone IN (SELECT phone FROM chats WHERE phone LIKE ?1 ESCAPE '\\')",
        )?
        .query_row([pattern], |r| r.get(0))?;
    Ok(if matching == 0 {
        PhonePlan::NoChat
    } else if matching.saturating_mul(10) <= inbox_count(conn, None)? {
        PhonePlan::ByChat
    } else {
        PhonePlan::Scan
    })
}

/// One inbox page (incoming messages, newest first) and the total count.
///
/// Three shapes, all with the same WHERE semantics as the plain query
/// (`direction = 'incoming' AND <filters> ORDER BY created_at DESC, seq DESC`):
/// - no filter but the status: the page walks `messages_inbox_status` /
///   `messages_inbox_all` and stops after `limit` rows; the total comes from
///   `inbox_counts`;
/// - a search of 3+ characters: the trigram index yields the candidate rows
///   (`fts_candidates_query`), each still checked with the exact LIKE and
///   the other filters; the total and the page come from one pass over the
///   candidates (a CROSS JOIN fixes that join order), so the cost follows
///   the candidates and matches, not the size of the inbox;
/// - a phone filter matching few messages (`phone_plan`): the same one
///   pass, over those chats' entries in `messages_chat_inbox`;
/// - other filters: one count and one page over the status index.
pub fn inbox(conn: &Connection, q: &InboxQuery) -> DbResult<(Vec<Message>, i64)> {
    let fts = match q.search.as_deref() {
        Some(term) => fts_candidates_query(conn, term)?,
        None => None,
    };
    let mut clauses = vec!["m.direction = 'incoming'"];
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    let mut by_chat = false;
    if let Some(phrase) = &fts {
        clauses.push("messages_fts MATCH ?");
        args.push(phrase.clone().into());
    }
    if let Some(status) = &q.status {
        clauses.push("m.reply_status = ?");
        args.push(status.clone().into());
    }
    if let Some(search) = &q.search {
        clauses.push("m.message LIKE ? ESCAPE '\\'");
        args.push(like_pattern(search).into());
    }
    if let Some(phone) = &q.phone {
        let pattern = like_pattern(phone);
        let plan = phone_plan(conn, &pattern)?;
        by_chat = plan == PhonePlan::ByChat;
        let clause = match plan {
            PhonePlan::NoChat => return Ok((Vec::new(), 0)),
            PhonePlan::ByChat => MATCHING_CHATS,
            PhonePlan::Scan => "m.phone LIKE ? ESCAPE '\\'",
        };
        clauses.push(clause);
        args.push(pattern.into());
    }
    if let Some(from) = q.from {
        clauses.push("m.created_at >= ?");
        args.push(from.into());
    }
    if let Some(until) = q.until {
        clauses.push("m.created_at < ?");
        args.push(until.into());
    }
    let where_sql = clauses.join(" AND ");
    let limit = i64::from(q.limit);
    let offset = i64::from(q.page.saturating_sub(1)) * limit;
    if fts.is_some() {
        let from = "messages_fts CROSS JOIN messages m ON m.seq = messages_fts.rowid";
        return inbox_from_candidates(conn, from, &where_sql, &args, offset, limit);
    }
    if by_chat {
        // (created_at, seq) of the chats' messages come from the
        // `messages_chat_inbox` index; only the page's rows are read. Named,
        // because with a status filter too the planner (without ANALYZE
        // statistics) would walk every message of that status instead.
        let from = "messages m INDEXED BY messages_chat_inbox";
        return inbox_from_candidates(conn, from, &where_sql, &args, offset, limit);
    }
    let from_sql = "messages m";
    let filtered = q.search.is_some() || q.phone.is_some() || q.from.is_some() || q.until.is_some();
    let total: i64 = if filtered {
        conn.prepare_cached(&format!(
            "SELECT count(*) FROM {from_sql} WHERE {where_sql}"
        ))?
        .query_row(params_from_iter(args.iter()), |r| r.get(0))?
    } else {
        inbox_count(conn, q.status.as_deref())?
    };
    let mut page_args = args;
    page_args.push(limit.into());
    page_args.push(offset.into());
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS_M} FROM {from_sql} WHERE {where_sql}
             ORDER BY m.created_at DESC, m.seq DESC LIMIT ? OFFSET ?"
        ))?
        .query_map(params_from_iter(page_args.iter()), message_from_row)?
        .collect::<DbResult<Vec<_>>>()?;
    Ok((rows, total))
}

/// The search and by-chat paths of `inbox`: one pass over the candidates
/// (`from_sql`: the trigram index's rows, or the chats' index entries) that
/// pass every filter collects (created_at, seq) of each match, which gives
/// both the total and, sorted, the page; then only the page's rows are read.
/// (A count query plus a page query would run the index lookup and the LIKE
/// checks twice.) One read transaction, so the page and the total agree.
fn inbox_from_candidates(
    conn: &Connection,
    from_sql: &str,
    where_sql: &str,
    args: &[rusqlite::types::Value],
    offset: i64,
    limit: i64,
) -> DbResult<(Vec<Message>, i64)> {
    let tx = read_snapshot(conn)?;
    let mut matches: Vec<(i64, i64)> = tx
        .prepare_cached(&format!(
            "SELECT m.created_at, m.seq FROM {from_sql} WHERE {where_sql}"
        ))?
        .query_map(params_from_iter(args.iter()), |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<DbResult<_>>()?;
    // ORDER BY created_at DESC, seq DESC.
    matches.sort_unstable_by(|a, b| b.cmp(a));
    let mut by_seq = tx.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE seq = ?1"
    ))?;
    let rows = matches
        .iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(0))
        .map(|(_, seq)| by_seq.query_row([seq], message_from_row))
        .collect::<DbResult<Vec<_>>>()?;
    drop(by_seq);
    tx.commit()?;
    Ok((rows, matches.len() as i64))
}

/// Number of incoming messages with `status` (all of them for None), from the
/// counts the triggers keep.
pub fn inbox_count(conn: &Connection, status: Option<&str>) -> DbResult<i64> {
    match status {
        Some(s) => conn
            .prepare_cached("SELECT n FROM inbox_counts WHERE reply_status = ?1")?
            .query_row([s], |r| r.get(0))
            .optional()
            .map(|n| n.unwrap_or(0)),
        None => conn
            .prepare_cached("SELECT coalesce(sum(n), 0) FROM inbox_counts")?
            .query_row([], |r| r.get(0)),
    }
}

/// A chat in the conversation list.
#[derive(Debug, Clone)]
pub struct Conversation {
    pub phone: String,
    pub unread: i64,
    pub last: Message,
}

/// Chats, most recent first, with their last message and unread count.
pub fn conversations(
    conn: &Connection,
    page: u32,
    limit: u32,
) -> DbResult<(Vec<Conversation>, i64)> {
    let total: i64 = conn
        .prepare_cached("SELECT count(*) FROM chats")?
        .query_row([], |r| r.get(0))?;
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS_M}, c.unread FROM chats c JOIN messages m ON m.seq = c.last_seq
             ORDER BY c.last_seq DESC LIMIT ?1 OFFSET ?2"
        ))?
        .query_map(
            params![limit, i64::from(page.saturating_sub(1)) * i64::from(limit)],
            |r| {
                let last = message_from_row(r)?;
                Ok(Conversation {
                    phone: last.phone.clone(),
                    unread: r.get(MESSAGE_COLUMN_COUNT)?,
                    last,
                })
            },
        )?
        .collect::<DbResult<Vec<_>>>()?;
    Ok((rows, total))
}

/// The first of `candidates` (chat JIDs) that names a stored chat.
pub fn first_known_chat(conn: &Connection, candidates: &[String]) -> DbResult<Option<String>> {
    let mut known = conn.prepare_cached("SELECT 1 FROM chats WHERE phone = ?1")?;
    for jid in candidates {
        if known.exists([jid])? {
            return Ok(Some(jid.clone()));
        }
    }
    Ok(None)
}

/// Records the display name of `phone` (a group's subject).
pub fn set_chat_name(conn: &Connection, phone: &str, name: &str) -> DbResult<()> {
    conn.prepare_cached(
        "INSERT INTO chat_names (phone, name, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (phone) DO UPDATE SET name = excluded.name, updated_at = excluded.updated_at",
    )?
    .execute(params![phone, name, clock::now_secs()])?;
    Ok(())
}

/// The known display names of `phones`.
pub fn chat_names(
    conn: &Connection,
    phones: &[&str],
) -> DbResult<std::collections::HashMap<String, String>> {
    let mut names = std::collections::HashMap::new();
    let mut stmt = conn.prepare_cached("SELECT name FROM chat_names WHERE phone = ?1")?;
    for phone in phones {
        if names.contains_key(*phone) {
            continue;
        }
        if let Some(name) = stmt
            .query_row([phone], |r| r.get::<_, String>(0))
            .optional()?
        {
            names.insert(phone.to_string(), name);
        }
    }
    Ok(names)
}

/// One chat's messages (both directions), oldest first, and their count.
pub fn conversation_messages(
    conn: &Connection,
    phone: &str,
    page: u32,
    limit: u32,
) -> DbResult<(Vec<Message>, i64)> {
    let total: i64 = conn
        .prepare_cached("SELECT count(*) FROM messages WHERE phone = ?1")?
        .query_row([phone], |r| r.get(0))?;
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE phone = ?1 ORDER BY seq LIMIT ?2 OFFSET ?3"
        ))?
        .query_map(
            params![phone, limit, i64::from(page.saturating_sub(1)) * i64::from(limit)],
            message_from_row,
        )?
        .collect::<DbResult<Vec<_>>>()?;
    Ok((rows, total))
}

// ───────────────────────────── idempotency ─────────────────────────────

/// What an Idempotency-Key claim found.
#[derive(Debug, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// First use: go ahead, then `finish_idempotency` or `release_idempotency`.
    New,
    /// A request with this key is still being answered.
    InFlight,
    /// Answered before: return this status and body.
    Done(u16, String),
    /// The key was used for another request (another message or body).
    Mismatch,
}

/// Claims `key` for a reply to `message_id` whose request hashes to
/// `request_hash`. A key belongs to one request: the same key with another
/// message or another body is a `Mismatch`.
pub fn claim_idempotency(
    conn: &mut Connection,
    key: &str,
    message_id: &str,
    request_hash: &str,
) -> DbResult<IdempotencyClaim> {
    let tx = conn.transaction()?;
    // The earlier use of the key: its message, request hash, status, body.
    type Earlier = (String, Option<String>, Option<u16>, Option<String>);
    let earlier: Option<Earlier> = tx
        .prepare_cached(
            "SELECT message_id, request_hash, status, body FROM idempotency_keys
             WHERE key = ?1 ORDER BY message_id = ?2 DESC LIMIT 1",
        )?
        .query_row(params![key, message_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let claim = match earlier {
        None => {
            tx.prepare_cached(
                "INSERT INTO idempotency_keys (key, message_id, request_hash, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![key, message_id, request_hash, clock::now_secs()])?;
            IdempotencyClaim::New
        }
        Some((earlier_message, earlier_hash, status, body)) => {
            // Rows from before version 4 have no hash: the message decides.
            let same = earlier_message == message_id
                && earlier_hash.as_deref().is_none_or(|h| h == request_hash);
            match (same, status, body) {
                (false, _, _) => IdempotencyClaim::Mismatch,
                (true, Some(status), Some(body)) => IdempotencyClaim::Done(status, body),
                (true, _, _) => IdempotencyClaim::InFlight,
            }
        }
    };
    tx.commit()?;
    Ok(claim)
}

/// Records the answer to a claimed key.
pub fn finish_idempotency(
    conn: &Connection,
    key: &str,
    message_id: &str,
    status: u16,
    body: &str,
) -> DbResult<()> {
    conn.prepare_cached(
        "UPDATE idempotency_keys SET status = ?3, body = ?4 WHERE key = ?1 AND message_id = ?2",
    )?
    .execute(params![key, message_id, status, body])?;
    Ok(())
}

/// Gives a key back after a failure that sent nothing, so a retry may try again.
pub fn release_idempotency(conn: &Connection, key: &str, message_id: &str) -> DbResult<()> {
    conn.prepare_cached(
        "DELETE FROM idempotency_keys WHERE key = ?1 AND message_id = ?2 AND status IS NULL",
    )?
    .execute(params![key, message_id])?;
    Ok(())
}

/// Forgets idempotency keys older than `before` (Unix seconds).
pub fn prune_idempotency(conn: &Connection, before: i64) -> DbResult<usize> {
    conn.prepare_cached("DELETE FROM idempotency_keys WHERE created_at < ?1")?
        .execute([before])
}

// ───────────────────────────── api keys & settings ─────────────────────────────

/// Hex SHA-256 of the active API key, if there is one.
pub fn active_api_key_hash(conn: &Connection) -> DbResult<Option<String>> {
    conn.prepare_cached(
        "SELECT key_hash FROM api_keys WHERE revoked_at IS NULL ORDER BY id DESC LIMIT 1",
    )?
    .query_row([], |r| r.get(0))
    .optional()
}

/// The shown prefix of the active API key (never enough to use), if any.
pub fn active_api_key_prefix(conn: &Connection) -> DbResult<Option<String>> {
    conn.prepare_cached(
        "SELECT prefix FROM api_keys WHERE revoked_at IS NULL ORDER BY id DESC LIMIT 1",
    )?
    .query_row([], |r| r.get(0))
    .optional()
}

/// Makes `key_hash` the one active key, revoking every other at once.
pub fn set_active_api_key(conn: &mut Connection, key_hash: &str, prefix: &str) -> DbResult<()> {
    let tx = conn.transaction()?;
    let now = clock::now_secs();
    tx.prepare_cached(
        "UPDATE api_keys SET revoked_at = ?1 WHERE revoked_at IS NULL AND key_hash <> ?2",
    )?
    .execute(params![now, key_hash])?;
    tx.prepare_cached(
        "INSERT INTO api_keys (key_hash, prefix, created_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (key_hash) DO UPDATE SET revoked_at = NULL",
    )?
    .execute(params![key_hash, prefix, now])?;
    tx.commit()
}

/// A stored setting.
pub fn get_setting(conn: &Connection, key: &str) -> DbResult<Option<String>> {
    conn.prepare_cached("SELECT value FROM settings WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()
}

/// Stores a setting.
pub fn set_setting(conn: &Connection, key: &str, value: &str) -> DbResult<()> {
    conn.prepare_cached(
        "INSERT INTO settings (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![key, value])?;
    Ok(())
}

// ───────────────────────────── webhooks ─────────────────────────────

/// A webhook subscription. `secret` never leaves the server after creation.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub events: String,
    pub secret: Option<String>,
    pub active: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Webhook {
    /// The API's JSON: the Node server's fields, `has_secret` instead of the secret.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "url": self.url,
            "events": self.events,
            "active": i32::from(self.active),
            "created_at": clock::format_datetime(self.created_at),
            "updated_at": clock::format_datetime(self.updated_at),
            "has_secret": self.secret.is_some(),
        })
    }

    /// Whether this webhook subscribes to `event` (exact names only).
    pub fn subscribes_to(&self, event: &str) -> bool {
        self.events.split(',').any(|e| e.trim() == event)
    }
}

const WEBHOOK_COLUMNS: &str = "id, url, events, secret, active, created_at, updated_at";

fn webhook_from_row(r: &rusqlite::Row<'_>) -> DbResult<Webhook> {
    Ok(Webhook {
        id: r.get(0)?,
        url: r.get(1)?,
        events: r.get(2)?,
        secret: r.get(3)?,
        active: r.get::<_, i64>(4)? != 0,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
    })
}

/// Every webhook, oldest first.
pub fn list_webhooks(conn: &Connection) -> DbResult<Vec<Webhook>> {
    conn.prepare_cached(&format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY created_at, rowid"
    ))?
    .query_map([], webhook_from_row)?
    .collect()
}

/// One webhook.
pub fn get_webhook(conn: &Connection, id: &str) -> DbResult<Option<Webhook>> {
    conn.prepare_cached(&format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?1"
    ))?
    .query_row([id], webhook_from_row)
    .optional()
}

/// Inserts a webhook, or replaces one with the same id (import-legacy).
pub fn upsert_webhook(conn: &Connection, w: &Webhook) -> DbResult<()> {
    conn.prepare_cached(
        "INSERT INTO webhooks (id, url, events, secret, active, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (id) DO UPDATE SET url = excluded.url, events = excluded.events,
             secret = excluded.secret, active = excluded.active, updated_at = excluded.updated_at",
    )?
    .execute(params![
        w.id,
        w.url,
        w.events,
        w.secret,
        w.active,
        w.created_at,
        w.updated_at
    ])?;
    Ok(())
}

/// Deletes a webhook and its deliveries; false when there was none.
pub fn delete_webhook(conn: &Connection, id: &str) -> DbResult<bool> {
    Ok(conn
        .prepare_cached("DELETE FROM webhooks WHERE id = ?1")?
        .execute([id])?
        > 0)
}

/// Writes one delivery of `event` to every active webhook subscribed to it,
/// inside the caller's transaction (the durable outbox). Returns how many.
pub fn enqueue_deliveries(tx: &Transaction<'_>, event: &str, payload: &str) -> DbResult<usize> {
    let hooks: Vec<String> = tx
        .prepare_cached("SELECT id, events FROM webhooks WHERE active = 1")?
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        .filter_map(|row| match row {
            Ok((id, events)) if events.split(',').any(|e| e.trim() == event) => Some(Ok(id)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
        .collect::<DbResult<_>>()?;
    for webhook_id in &hooks {
        insert_delivery(tx, webhook_id, event, payload)?;
    }
    Ok(hooks.len())
}

/// Writes one pending delivery, due now; returns its public id.
pub fn insert_delivery(
    conn: &Connection,
    webhook_id: &str,
    event: &str,
    payload: &str,
) -> DbResult<String> {
    let id = format!("msg_{}", crate::auth::uuid_v4().replace('-', ""));
    let now = clock::now_secs();
    conn.prepare_cached(
        "INSERT INTO webhook_deliveries (id, webhook_id, event, payload, next_attempt_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    )?
    .execute(params![id, webhook_id, event, payload, clock::now_millis(), now])?;
    Ok(id)
}

/// The oldest pending delivery of each active webhook (its queue's head).
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryHead {
    pub webhook_id: String,
    pub url: String,
    pub secret: Option<String>,
    /// Unix milliseconds.
    pub next_attempt_at: i64,
}

/// The head of every active webhook's queue.
pub fn delivery_heads(conn: &Connection) -> DbResult<Vec<DeliveryHead>> {
    conn.prepare_cached(
        "SELECT w.id, w.url, w.secret, d.next_attempt_at
         FROM webhooks w
         JOIN webhook_deliveries d ON d.seq = (
             SELECT min(seq) FROM webhook_deliveries p WHERE p.webhook_id = w.id AND p.status = 'pending')
         WHERE w.active = 1",
    )?
    .query_map([], |r| {
        Ok(DeliveryHead { webhook_id: r.get(0)?, url: r.get(1)?, secret: r.get(2)?, next_attempt_at: r.get(3)? })
    })?
    .collect()
}

/// Up to `limit` pending deliveries of a webhook that are due, in order.
/// Stops at the first one not yet due (FIFO).
pub fn pending_deliveries(
    conn: &Connection,
    webhook_id: &str,
    limit: usize,
) -> DbResult<Vec<DueDelivery>> {
    let now = clock::now_millis();
    let rows = conn
        .prepare_cached(
            "SELECT seq, id, event, payload, next_attempt_at FROM webhook_deliveries
             WHERE webhook_id = ?1 AND status = 'pending' ORDER BY seq LIMIT ?2",
        )?
        .query_map(params![webhook_id, limit as i64], |r| {
            Ok((
                DueDelivery {
                    seq: r.get(0)?,
                    id: r.get(1)?,
                    event: r.get(2)?,
                    payload: r.get(3)?,
                },
                r.get::<_, i64>(4)?,
            ))
        })?
        .collect::<DbResult<Vec<_>>>()?;
    Ok(rows
        .into_iter()
        .take_while(|(_, due_at)| *due_at <= now)
        .map(|(d, _)| d)
        .collect())
}

/// A delivery that is due: what a lane needs to POST it.
#[derive(Debug, Clone, PartialEq)]
pub struct DueDelivery {
    pub seq: i64,
    /// Public id (the `webhook-id` header).
    pub id: String,
    pub event: String,
    pub payload: String,
}

/// Records one attempt.
pub fn insert_attempt(
    conn: &Connection,
    delivery_seq: i64,
    at_ms: i64,
    status_code: Option<u16>,
    error: Option<&str>,
    duration_ms: i64,
) -> DbResult<()> {
    conn.prepare_cached(
        "INSERT INTO webhook_attempts (delivery_seq, at, status_code, error, duration_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![delivery_seq, at_ms, status_code, error, duration_ms])?;
    Ok(())
}

/// Counts a failed attempt in the current run; returns the attempts made so far.
pub fn count_attempt(conn: &Connection, delivery_seq: i64) -> DbResult<i64> {
    conn.prepare_cached(
        "UPDATE webhook_deliveries SET attempt_count = attempt_count + 1, updated_at = ?2
         WHERE seq = ?1 RETURNING attempt_count",
    )?
    .query_row(params![delivery_seq, clock::now_secs()], |r| r.get(0))
}

/// Ends a delivery as `delivered` or `failed`.
pub fn finish_delivery(conn: &Connection, delivery_seq: i64, status: &str) -> DbResult<()> {
    conn.prepare_cached(
        "UPDATE webhook_deliveries SET status = ?2, updated_at = ?3 WHERE seq = ?1",
    )?
    .execute(params![delivery_seq, status, clock::now_secs()])?;
    Ok(())
}

/// Sets when a pending delivery is tried next (Unix ms).
pub fn schedule_retry(conn: &Connection, delivery_seq: i64, at_ms: i64) -> DbResult<()> {
    conn.prepare_cached("UPDATE webhook_deliveries SET next_attempt_at = ?2 WHERE seq = ?1")?
        .execute(params![delivery_seq, at_ms])?;
    Ok(())
}

/// Pauses or resumes a webhook.
pub fn set_webhook_active(conn: &Connection, id: &str, active: bool) -> DbResult<()> {
    conn.prepare_cached("UPDATE webhooks SET active = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![id, active, clock::now_secs()])?;
    Ok(())
}

/// Starts a fresh run of the retry schedule for a delivery (same id, so the
/// same `webhook-id`); false when there is no such delivery (of `webhook_id`,
/// when given).
pub fn redeliver(conn: &Connection, id: &str, webhook_id: Option<&str>) -> DbResult<bool> {
    Ok(conn
        .prepare_cached(
            "UPDATE webhook_deliveries SET status = 'pending', attempt_count = 0, next_attempt_at = ?2, updated_at = ?3
             WHERE id = ?1 AND (?4 IS NULL OR webhook_id = ?4)",
        )?
        .execute(params![id, clock::now_millis(), clock::now_secs(), webhook_id])?
        > 0)
}

/// Deliveries waiting for an attempt.
pub fn pending_delivery_count(conn: &Connection) -> DbResult<i64> {
    conn.prepare_cached("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'")?
        .query_row([], |r| r.get(0))
}

/// How a webhook is doing, for the webhooks page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebhookHealth {
    /// Deliveries waiting for an attempt or a retry.
    pub pending: i64,
    /// Deliveries whose retry schedule ran out.
    pub failed: i64,
    /// The newest attempt: when, its HTTP status, its error.
    pub last_attempt: Option<AttemptRow>,
}

/// The health of webhook `id`: two counts from the partial indexes and its
/// newest attempt (walking its newest deliveries).
pub fn webhook_health(conn: &Connection, id: &str) -> DbResult<WebhookHealth> {
    // The status is written into each statement, not bound: only a literal
    // lets the planner use the partial index of that status.
    let count =
        |sql: &str| -> DbResult<i64> { conn.prepare_cached(sql)?.query_row([id], |r| r.get(0)) };
    let last_attempt = conn
        .prepare_cached(
            "SELECT a.at, a.status_code, a.error, a.duration_ms
             FROM webhook_deliveries d JOIN webhook_attempts a ON a.delivery_seq = d.seq
             WHERE d.webhook_id = ?1 ORDER BY d.seq DESC, a.id DESC LIMIT 1",
        )?
        .query_row([id], |r| {
            Ok(AttemptRow {
                at_ms: r.get(0)?,
                status_code: r.get(1)?,
                error: r.get(2)?,
                duration_ms: r.get(3)?,
            })
        })
        .optional()?;
    Ok(WebhookHealth {
        pending: count(
            "SELECT count(*) FROM webhook_deliveries WHERE webhook_id = ?1 AND status = 'pending'",
        )?,
        failed: count(
            "SELECT count(*) FROM webhook_deliveries WHERE webhook_id = ?1 AND status = 'failed'",
        )?,
        last_attempt,
    })
}

/// One attempt, for the delivery log.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRow {
    pub at_ms: i64,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// A delivery with its attempts, for the delivery log.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: String,
    pub webhook_id: String,
    pub event: String,
    pub payload: String,
    pub status: String,
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub attempts: Vec<AttemptRow>,
}

impl Delivery {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "webhook_id": self.webhook_id,
            "event": self.event,
            "status": self.status,
            "attempts": self.attempts.iter().map(|a| json!({
                "at": clock::format_iso_millis(a.at_ms),
                "status_code": a.status_code,
                "error": a.error,
                "duration_ms": a.duration_ms,
            })).collect::<Vec<_>>(),
            "next_attempt_at": (self.status == "pending").then(|| clock::format_iso_millis(self.next_attempt_at)),
            "created_at": clock::format_datetime(self.created_at),
            "updated_at": clock::format_datetime(self.updated_at),
            "payload": serde_json::from_str::<Value>(&self.payload).unwrap_or(Value::Null),
        })
    }
}

/// A webhook's deliveries, newest first, with their attempts.
pub fn list_deliveries(
    conn: &Connection,
    webhook_id: &str,
    page: u32,
    limit: u32,
) -> DbResult<(Vec<Delivery>, i64)> {
    let total: i64 = conn
        .prepare_cached("SELECT count(*) FROM webhook_deliveries WHERE webhook_id = ?1")?
        .query_row([webhook_id], |r| r.get(0))?;
    let rows = conn
        .prepare_cached(
            "SELECT seq, id, webhook_id, event, payload, status, next_attempt_at, created_at, updated_at
             FROM webhook_deliveries WHERE webhook_id = ?1 ORDER BY seq DESC LIMIT ?2 OFFSET ?3",
        )?
        .query_map(params![webhook_id, limit, i64::from(page.saturating_sub(1)) * i64::from(limit)], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                Delivery {
                    id: r.get(1)?,
                    webhook_id: r.get(2)?,
                    event: r.get(3)?,
                    payload: r.get(4)?,
                    status: r.get(5)?,
                    next_attempt_at: r.get(6)?,
                    created_at: r.get(7)?,
                    updated_at: r.get(8)?,
                    attempts: Vec::new(),
                },
            ))
        })?
        .collect::<DbResult<Vec<_>>>()?;
    let mut attempts = conn.prepare_cached(
        "SELECT at, status_code, error, duration_ms FROM webhook_attempts WHERE delivery_seq = ?1 ORDER BY id",
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for (seq, mut d) in rows {
        d.attempts = attempts
            .query_map([seq], |r| {
                Ok(AttemptRow {
                    at_ms: r.get(0)?,
                    status_code: r.get(1)?,
                    error: r.get(2)?,
                    duration_ms: r.get(3)?,
                })
            })?
            .collect::<DbResult<Vec<_>>>()?;
        out.push(d);
    }
    Ok((out, total))
}

// ───────────────────────────── audit log ─────────────────────────────

/// One audit row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditEntry {
    pub action: String,
    pub method: Option<String>,
    pub path: Option<String>,
    pub status: Option<u16>,
    pub ip: Option<String>,
    pub duration_us: Option<i64>,
    pub details: Option<String>,
    pub created_at: i64,
}

/// Writes a batch of audit rows in one transaction.
pub fn insert_audit_batch(conn: &mut Connection, entries: &[AuditEntry]) -> DbResult<()> {
    let tx = conn.transaction()?;
    for e in entries {
        insert_audit(&tx, e)?;
    }
    tx.commit()
}

/// Writes one audit row inside the caller's transaction.
pub fn insert_audit(tx: &Transaction<'_>, e: &AuditEntry) -> DbResult<()> {
    tx.prepare_cached(
        "INSERT INTO audit_logs (action, method, path, status, ip_address, duration_us, details, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        e.action,
        e.method,
        e.path,
        e.status,
        e.ip,
        e.duration_us,
        e.details,
        e.created_at
    ])?;
    Ok(())
}

/// Filters of an audit log page.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub action: Option<String>,
    pub from: Option<i64>,
    pub until: Option<i64>,
    pub page: u32,
    pub limit: u32,
}

/// One page of the audit log (newest first) and the filtered total.
pub fn audit_logs(conn: &Connection, q: &AuditQuery) -> DbResult<(Vec<(i64, AuditEntry)>, i64)> {
    let mut clauses = vec!["1 = 1"];
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(a) = &q.action {
        clauses.push("action = ?");
        args.push(a.clone().into());
    }
    if let Some(from) = q.from {
        clauses.push("created_at >= ?");
        args.push(from.into());
    }
    if let Some(until) = q.until {
        clauses.push("created_at < ?");
        args.push(until.into());
    }
    let where_sql = clauses.join(" AND ");
    let total: i64 = conn
        .prepare_cached(&format!(
            "SELECT count(*) FROM audit_logs WHERE {where_sql}"
        ))?
        .query_row(params_from_iter(args.iter()), |r| r.get(0))?;
    args.push(i64::from(q.limit).into());
    args.push((i64::from(q.page.saturating_sub(1)) * i64::from(q.limit)).into());
    let rows = conn
        .prepare_cached(&format!(
            "SELECT id, action, method, path, status, ip_address, duration_us, details, created_at
             FROM audit_logs WHERE {where_sql} ORDER BY id DESC LIMIT ? OFFSET ?"
        ))?
        .query_map(params_from_iter(args.iter()), |r| {
            Ok((
                r.get(0)?,
                AuditEntry {
                    action: r.get(1)?,
                    method: r.get(2)?,
                    path: r.get(3)?,
                    status: r.get(4)?,
                    ip: r.get(5)?,
                    duration_us: r.get(6)?,
                    details: r.get(7)?,
                    created_at: r.get(8)?,
                },
            ))
        })?
        .collect::<DbResult<Vec<_>>>()?;
    Ok((rows, total))
}

/// Deletes audit rows older than `before` (Unix seconds).
pub fn prune_audit(conn: &Connection, before: i64) -> DbResult<usize> {
    conn.prepare_cached("DELETE FROM audit_logs WHERE created_at < ?1")?
        .execute([before])
}

// ───────────────────────────── backup ─────────────────────────────

/// Copies the database at `source` into the new file `target` with SQLite's
/// online backup API, in one step: a single read transaction, which in WAL
/// mode neither blocks the server's writers nor is restarted by them (copying
/// in chunks restarts whenever another process writes, and may never end
/// under steady traffic). The copy is written to `<target>.partial` and
/// renamed into place once complete, so a failed backup leaves no half file.
/// Errors are one line, for the user.
pub fn online_backup(source: &Path, target: &Path) -> Result<(), String> {
    use rusqlite::backup::{Backup, StepResult};
    let src = Connection::open_with_flags(
        source,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .and_then(|c| c.busy_timeout(Duration::from_secs(10)).map(|()| c))
    .map_err(|e| format!("could not open {}: {e}", source.display()))?;
    let mut partial = target.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let _ = std::fs::remove_file(&partial);
    let copied = (|| -> DbResult<()> {
        let mut dst = Connection::open(&partial)?;
        let backup = Backup::new(&src, &mut dst)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match backup.step(-1)? {
                StepResult::Done => return Ok(()),
                StepResult::More => {}
                _ if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    return Err(DbError::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                        Some("the database stayed locked for 30 s".into()),
                    ));
                }
            }
        }
    })();
    let renamed = copied
        .map_err(|e| e.to_string())
        .and_then(|()| std::fs::rename(&partial, target).map_err(|e| e.to_string()));
    if let Err(e) = renamed {
        let _ = std::fs::remove_file(&partial);
        return Err(format!("backup to {} failed: {e}", target.display()));
    }
    Ok(())
}

// ───────────────────────────── legacy import (Node server) ─────────────────────────────
//
// Statements of `import-legacy`: reading the Node.js server's messages.db
// (opened read-only) and writing its rows here without touching rows this
// server already has.

/// Column names of `table` (empty when there is no such table).
pub fn table_columns(conn: &Connection, table: &str) -> DbResult<Vec<String>> {
    conn.prepare("SELECT name FROM pragma_table_info(?1)")?
        .query_map([table], |r| r.get(0))?
        .collect()
}

/// Any SQLite value as text (ids were TEXT or INTEGER in Node versions).
fn value_text(v: rusqlite::types::Value) -> Option<String> {
    use rusqlite::types::Value as V;
    match v {
        V::Null => None,
        V::Integer(n) => Some(n.to_string()),
        V::Real(f) => Some(f.to_string()),
        V::Text(s) => Some(s),
        V::Blob(b) => Some(String::from_utf8_lossy(&b).into_owned()),
    }
}

/// `name` when the table has that column, else `NULL`, for a SELECT list.
fn column_or_null<'a>(columns: &[String], name: &'a str) -> &'a str {
    if columns.iter().any(|c| c == name) {
        name
    } else {
        "NULL"
    }
}

/// One row of the Node server's `messages` table, as it is stored there.
#[derive(Debug, Clone)]
pub struct LegacyMessage {
    pub id: Option<String>,
    pub direction: Option<String>,
    pub phone: Option<String>,
    pub message: Option<String>,
    pub reply_status: Option<String>,
    pub media_type: Option<String>,
    pub media_url: Option<String>,
    /// `YYYY-MM-DD HH:MM:SS` text in the Node server, Unix time in some versions.
    pub created_at: rusqlite::types::Value,
}

/// Calls `each` for every legacy message in arrival order (created_at, then
/// rowid), streaming, so a large database is never held in memory.
pub fn legacy_messages(
    conn: &Connection,
    mut each: impl FnMut(LegacyMessage) -> DbResult<()>,
) -> DbResult<()> {
    let columns = table_columns(conn, "messages")?;
    let opt = |name| column_or_null(&columns, name);
    let mut stmt = conn.prepare(&format!(
        "SELECT id, direction, phone, message, {}, {}, {}, created_at
         FROM messages ORDER BY created_at, rowid",
        opt("reply_status"),
        opt("media_type"),
        opt("media_url")
    ))?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        each(LegacyMessage {
            id: value_text(r.get(0)?),
            direction: value_text(r.get(1)?),
            phone: value_text(r.get(2)?),
            message: value_text(r.get(3)?),
            reply_status: value_text(r.get(4)?),
            media_type: value_text(r.get(5)?),
            media_url: value_text(r.get(6)?),
            created_at: r.get(7)?,
        })?;
    }
    Ok(())
}

/// A legacy message converted for this schema (`wa_id` stays NULL).
#[derive(Debug, Clone)]
pub struct ImportedMessage<'a> {
    pub id: &'a str,
    pub direction: &'a str,
    pub phone: &'a str,
    pub sender_jid: &'a str,
    pub message: &'a str,
    pub reply_status: &'a str,
    pub delivery_status: Option<&'a str>,
    pub media_type: Option<&'a str>,
    pub media_url: Option<&'a str>,
    pub created_at: i64,
}

/// Stores an imported message unless one with its id exists (then this
/// server's row wins); true when it was added.
pub fn insert_imported_message(tx: &Transaction<'_>, m: &ImportedMessage<'_>) -> DbResult<bool> {
    Ok(tx
        .prepare_cached(
            "INSERT INTO messages (id, wa_id, direction, phone, sender_jid, message, reply_status,
                 delivery_status, media_type, media_url, created_at)
             VALUES (?1, NULL, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (id) DO NOTHING",
        )?
        .execute(params![
            m.id,
            m.direction,
            m.phone,
            m.sender_jid,
            m.message,
            m.reply_status,
            m.delivery_status,
            m.media_type,
            m.media_url,
            m.created_at
        ])?
        > 0)
}

/// One row of the Node server's `webhooks` table.
#[derive(Debug, Clone)]
pub struct LegacyWebhook {
    pub id: Option<String>,
    pub url: Option<String>,
    /// A comma-separated list, or a JSON array in some versions.
    pub events: Option<String>,
    pub secret: Option<String>,
    pub active: rusqlite::types::Value,
    pub created_at: rusqlite::types::Value,
}

/// Every legacy webhook, oldest first.
pub fn legacy_webhooks(conn: &Connection) -> DbResult<Vec<LegacyWebhook>> {
    let columns = table_columns(conn, "webhooks")?;
    if columns.is_empty() {
        return Ok(Vec::new());
    }
    let opt = |name| column_or_null(&columns, name);
    conn.prepare(&format!(
        "SELECT id, url, {}, {}, {}, {} FROM webhooks ORDER BY {}, rowid",
        opt("events"),
        opt("secret"),
        opt("active"),
        opt("created_at"),
        opt("created_at")
    ))?
    .query_map([], |r| {
        Ok(LegacyWebhook {
            id: value_text(r.get(0)?),
            url: value_text(r.get(1)?),
            events: value_text(r.get(2)?),
            secret: value_text(r.get(3)?),
            active: r.get(4)?,
            created_at: r.get(5)?,
        })
    })?
    .collect()
}

/// The newest key of the Node server's `api_keys` table (the one it used).
pub fn legacy_newest_api_key(conn: &Connection) -> DbResult<Option<String>> {
    let columns = table_columns(conn, "api_keys")?;
    if !columns.iter().any(|c| c == "key") {
        return Ok(None);
    }
    conn.prepare(&format!(
        "SELECT key FROM api_keys WHERE key IS NOT NULL AND key <> ''
         ORDER BY {} DESC, rowid DESC LIMIT 1",
        column_or_null(&columns, "created_at")
    ))?
    .query_row([], |r| r.get::<_, rusqlite::types::Value>(0))
    .optional()
    .map(|v| v.and_then(value_text))
}

/// Whether a key with this hash was ever stored here (active or revoked).
pub fn api_key_known(conn: &Connection, key_hash: &str) -> DbResult<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM api_keys WHERE key_hash = ?1)")?
        .query_row([key_hash], |r| r.get(0))
}

/// One row of the Node server's `audit_logs` table.
#[derive(Debug, Clone)]
pub struct LegacyAudit {
    pub action: Option<String>,
    pub details: Option<String>,
    pub ip_address: Option<String>,
    pub created_at: rusqlite::types::Value,
}

/// Calls `each` for every legacy audit row, oldest first, streaming.
pub fn legacy_audit_logs(
    conn: &Connection,
    mut each: impl FnMut(LegacyAudit) -> DbResult<()>,
) -> DbResult<()> {
    let columns = table_columns(conn, "audit_logs")?;
    if columns.is_empty() {
        return Ok(());
    }
    let opt = |name| column_or_null(&columns, name);
    let mut stmt = conn.prepare(&format!(
        "SELECT {}, {}, {}, {} FROM audit_logs ORDER BY {}, rowid",
        opt("action"),
        opt("details"),
        opt("ip_address"),
        opt("created_at"),
        opt("created_at")
    ))?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        each(LegacyAudit {
            action: value_text(r.get(0)?),
            details: value_text(r.get(1)?),
            ip_address: value_text(r.get(2)?),
            created_at: r.get(3)?,
        })?;
    }
    Ok(())
}

/// How many audit rows equal an imported one (same action, details, address
/// and second, and none of the columns only this server fills).
pub fn count_imported_audit(conn: &Connection, e: &AuditEntry) -> DbResult<i64> {
    conn.prepare_cached(
        "SELECT count(*) FROM audit_logs
         WHERE created_at = ?1 AND action = ?2 AND details IS ?3 AND ip_address IS ?4
           AND method IS NULL AND path IS NULL AND status IS NULL AND duration_us IS NULL",
    )?
    .query_row(params![e.created_at, e.action, e.details, e.ip], |r| {
        r.get(0)
    })
}

/// The keys of the Node server's `settings` table (values may be secret).
pub fn legacy_setting_keys(conn: &Connection) -> DbResult<Vec<String>> {
    if !table_columns(conn, "settings")?.iter().any(|c| c == "key") {
        return Ok(Vec::new());
    }
    conn.prepare("SELECT key FROM settings ORDER BY key")?
        .query_map([], |r| r.get::<_, rusqlite::types::Value>(0))?
        .map(|v| v.map(|v| value_text(v).unwrap_or_default()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn incoming(wa_id: &str, chat: &str, text: &str) -> IncomingMessage {
        IncomingMessage {
            wa_id: wa_id.into(),
            chat: chat.into(),
            sender: chat.into(),
            text: text.into(),
            ..Default::default()
        }
    }

    /// Stores `m` as sent and received at `at`; the row when it is new.
    fn store(conn: &mut Connection, id: &str, m: &IncomingMessage, at: i64) -> Option<Message> {
        let tx = conn.transaction().unwrap();
        let m = IncomingMessage {
            timestamp: Some(at),
            ..m.clone()
        };
        let row = match store_received(&tx, id, &m, at).unwrap() {
            Received::New(row) | Received::Filled(row) => Some(row),
            Received::Duplicate => None,
        };
        tx.commit().unwrap();
        row
    }

    /// A writer that reads before it writes while another connection
    /// commits must wait its turn, not fail: a deferred transaction would get
    /// SQLITE_BUSY here (its snapshot is stale) and lose its write.
    #[test]
    fn read_then_write_transactions_survive_a_concurrent_writer() {
        let dir = std::env::temp_dir().join(format!("wa-db-{}", crate::auth::uuid_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("app.db");
        let mut first = connect(&path).unwrap();
        migrate(&first).unwrap();
        let second = connect(&path).unwrap();
        let tx = first.transaction().unwrap();
        assert_eq!(get_setting(&tx, "k").unwrap(), None);
        let other = std::thread::spawn(move || set_setting(&second, "other", "2"));
        std::thread::sleep(Duration::from_millis(100));
        set_setting(&tx, "k", "1").unwrap();
        tx.commit().unwrap();
        other.join().unwrap().unwrap();
        assert_eq!(get_setting(&first, "k").unwrap().as_deref(), Some("1"));
        assert_eq!(get_setting(&first, "other").unwrap().as_deref(), Some("2"));
        drop(first);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn migrate_is_idempotent_and_sets_the_version() {
        let conn = open_memory().unwrap();
        migrate(&conn).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        conn.pragma_update(None, "user_version", 99).unwrap();
        assert!(migrate(&conn).is_err());
    }

    #[test]
    fn redelivered_message_is_stored_once() {
        let mut conn = open_memory().unwrap();
        let m = incoming("WA1", "1@s.whatsapp.net", "hi");
        assert!(store(&mut conn, "a", &m, 10).is_some());
        assert!(store(&mut conn, "b", &m, 11).is_none());
        // Same id from another chat is another message.
        assert!(
            store(
                &mut conn,
                "c",
                &incoming("WA1", "2@s.whatsapp.net", "hi"),
                12
            )
            .is_some()
        );
        assert_eq!(inbox_count(&conn, None).unwrap(), 2);
    }

    #[test]
    fn message_json_is_the_same_as_the_json_macro_form() {
        let mut conn = open_memory().unwrap();
        let m = store(&mut conn, "a", &incoming("W1", "1@s", "hé \"x\" %"), 10).unwrap();
        let old = json!({
            "id": m.id, "direction": m.direction, "phone": m.phone, "message": m.message,
            "reply_status": m.reply_status, "media_type": m.media_type, "media_url": m.media_url,
            "created_at": clock::format_datetime(m.created_at), "wa_id": m.wa_id,
            "sender_jid": m.sender_jid, "push_name": m.push_name,
            "delivery_status": m.delivery_status, "media_mime": m.media_mime,
            "media_size": m.media_size, "media_error": m.media_error, "in_reply_to": m.in_reply_to,
            "received_at": clock::format_datetime(m.received_at), "sender_lid": m.sender_lid,
            "source": m.source,
        });
        assert_eq!(serde_json::to_string(&m).unwrap(), old.to_string());
    }

    #[test]
    fn media_fields_are_stored() {
        let mut conn = open_memory().unwrap();
        let mut m = incoming("WA1", "1@s.whatsapp.net", "[Image]");
        m.media = Some(MediaInfo {
            kind: "image".into(),
            mime: Some("image/png".into()),
            file_name: Some("x.png".into()),
            size: Some(3),
            sha256: Some("ab".into()),
            error: None,
        });
        let row = store(&mut conn, "a", &m, 10).unwrap();
        assert_eq!(row.media_url.as_deref(), Some("/media/x.png"));
        assert_eq!(row.media_size, Some(3));
        assert_eq!(row.to_json()["created_at"], "1970-01-01 00:00:10");
    }

    #[test]
    fn counts_follow_status_changes() {
        let mut conn = open_memory().unwrap();
        for i in 0..5 {
            store(
                &mut conn,
                &format!("m{i}"),
                &incoming(&format!("W{i}"), "1@s", "x"),
                i,
            )
            .unwrap();
        }
        assert_eq!(inbox_count(&conn, Some("unread")).unwrap(), 5);
        assert!(set_reply_status(&conn, "m0", "read").unwrap());
        assert!(!set_reply_status(&conn, "nope", "read").unwrap());
        let n = set_reply_status_many(
            &mut conn,
            &["m1".into(), "m2".into(), "zz".into()],
            "ignored",
        )
        .unwrap();
        assert_eq!(n, 2);
        assert_eq!(inbox_count(&conn, Some("unread")).unwrap(), 2);
        assert_eq!(inbox_count(&conn, Some("read")).unwrap(), 1);
        assert_eq!(inbox_count(&conn, Some("ignored")).unwrap(), 2);
        assert_eq!(inbox_count(&conn, None).unwrap(), 5);
        let (chats, total) = conversations(&conn, 1, 10).unwrap();
        assert_eq!(total, 1);
        assert_eq!(chats[0].unread, 2);
        assert_eq!(chats[0].last.id, "m4");
    }

    #[test]
    fn inbox_orders_newest_first_with_ties_by_arrival() {
        let mut conn = open_memory().unwrap();
        store(&mut conn, "a", &incoming("1", "1@s", "x"), 100).unwrap();
        store(&mut conn, "b", &incoming("2", "1@s", "x"), 100).unwrap();
        store(&mut conn, "c", &incoming("3", "1@s", "x"), 50).unwrap();
        let q = InboxQuery {
            page: 1,
            limit: 10,
            ..Default::default()
        };
        let (rows, total) = inbox(&conn, &q).unwrap();
        assert_eq!(
            rows.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
            ["b", "a", "c"]
        );
        assert_eq!(total, 3);
    }

    #[test]
    fn search_treats_like_metacharacters_literally() {
        let mut conn = open_memory().unwrap();
        store(&mut conn, "a", &incoming("1", "1@s", "100% sure"), 1).unwrap();
        store(&mut conn, "b", &incoming("2", "1@s", "100 percent"), 2).unwrap();
        store(&mut conn, "c", &incoming("3", "1@s", "a_b"), 3).unwrap();
        store(&mut conn, "d", &incoming("4", "1@s", "axb HELLO"), 4).unwrap();
        let find = |term: &str| {
            let q = InboxQuery {
                search: Some(term.into()),
                page: 1,
                limit: 10,
                ..Default::default()
            };
            inbox(&conn, &q)
                .unwrap()
                .0
                .into_iter()
                .map(|m| m.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(find("0%"), ["a"]);
        assert_eq!(find("a_b"), ["c"]);
        assert_eq!(find("hello"), ["d"]);
        assert_eq!(find("'; DROP TABLE messages; --"), Vec::<String>::new());
    }

    /// Text pieces with the cases that matter: ASCII case, LIKE's `%`, `_`
    /// and `\`, quotes, non-ASCII letters whose case LIKE does not fold (but
    /// the trigram index does), the Kelvin sign and dotted I (which fold to
    /// ASCII letters), emoji.
    const PIECES: [&str; 26] = [
        "a",
        "B",
        "order",
        "Order",
        "ORDER",
        " ",
        " ",
        "%",
        "_",
        "\\",
        "\"",
        "'",
        "x%y",
        "a_b",
        "é",
        "É",
        "ß",
        "ç",
        "Ç",
        "😀",
        "\u{212A}",
        "k",
        "\u{130}",
        "i",
        "Ünïcödé",
        "42",
    ];

    fn random_text(rng: &mut Rng) -> String {
        (0..rng.below(9)).map(|_| rng.pick(&PIECES)).collect()
    }

    /// The plain query every fast path must agree with: no trigram index,
    /// no kept counts, a full count.
    fn reference_inbox(conn: &Connection, q: &InboxQuery) -> (Vec<String>, i64) {
        let mut sql = String::from("SELECT id FROM messages WHERE direction = 'incoming'");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(s) = &q.status {
            sql.push_str(" AND reply_status = ?");
            args.push(s.clone().into());
        }
        if let Some(t) = &q.search {
            sql.push_str(" AND message LIKE ? ESCAPE '\\'");
            args.push(like_pattern(t).into());
        }
        if let Some(p) = &q.phone {
            sql.push_str(" AND phone LIKE ? ESCAPE '\\'");
            args.push(like_pattern(p).into());
        }
        if let Some(f) = q.from {
            sql.push_str(" AND created_at >= ?");
            args.push(f.into());
        }
        if let Some(u) = q.until {
            sql.push_str(" AND created_at < ?");
            args.push(u.into());
        }
        sql.push_str(" ORDER BY created_at DESC, seq DESC");
        let all: Vec<String> = conn
            .prepare(&sql)
            .unwrap()
            .query_map(params_from_iter(args.iter()), |r| r.get(0))
            .unwrap()
            .collect::<DbResult<_>>()
            .unwrap();
        let total = all.len() as i64;
        let start = ((q.page as usize - 1) * q.limit as usize).min(all.len());
        let end = (start + q.limit as usize).min(all.len());
        (all[start..end].to_vec(), total)
    }

    /// The counts the triggers (and the chat merge) keep equal a fresh count.
    fn assert_kept_counts_are_exact(conn: &Connection) {
        let counted = |sql: &str| -> Vec<(String, i64)> {
            conn.prepare(sql)
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<DbResult<_>>()
                .unwrap()
        };
        assert_eq!(
            counted(
                "SELECT reply_status, n FROM inbox_counts WHERE reply_status <> 'sent' AND n > 0 ORDER BY 1"
            ),
            counted(
                "SELECT reply_status, count(*) FROM messages WHERE direction = 'incoming'
                 GROUP BY 1 ORDER BY 1"
            )
        );
        assert_eq!(
            counted("SELECT phone, unread FROM chats WHERE unread > 0 ORDER BY 1"),
            counted(
                "SELECT phone, count(*) FROM messages
                 WHERE direction = 'incoming' AND reply_status = 'unread' GROUP BY 1 ORDER BY 1"
            )
        );
        // Every chat with messages has its row, pointing at one of its own.
        let orphans: i64 = conn
            .query_row(
                "SELECT count(*) FROM (SELECT phone, max(seq) AS s FROM messages GROUP BY phone) m
                 LEFT JOIN chats c ON c.phone = m.phone WHERE c.last_seq IS NULL OR c.last_seq < m.s",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(orphans, 0);
        let mapped_chats: i64 = conn
            .query_row(
                "SELECT count(*) FROM chats WHERE phone IN (SELECT lid FROM lid_map)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(mapped_chats, 0, "a mapped LID kept its own chat");
    }

    #[test]
    fn inbox_fast_paths_match_the_plain_query() {
        let mut rng = Rng(0x5EED_1234_ABCD_0001);
        let mut conn = open_memory().unwrap();
        let phones = [
            "15551@s.whatsapp.net",
            "15552@s.whatsapp.net",
            "1555_3@s",
            "12036%@g.us",
            "4479@s",
        ];
        let statuses = ["unread", "read", "replied", "ignored"];
        let mut texts = Vec::new();
        let tx = conn.transaction().unwrap();
        for i in 0..800 {
            let text = random_text(&mut rng);
            let incoming = rng.below(5) > 0;
            insert_message_row(
                &tx,
                &NewMessage {
                    id: &format!("m{i}"),
                    wa_id: Some(&format!("w{i}")),
                    direction: if incoming { "incoming" } else { "outgoing" },
                    // One chat with few messages, for the phone filter's
                    // by-chat plan.
                    phone: if rng.below(40) == 0 {
                        "33612@s.whatsapp.net"
                    } else {
                        rng.pick(&phones)
                    },
                    message: &text,
                    reply_status: if incoming {
                        rng.pick(&statuses)
                    } else {
                        "sent"
                    },
                    // Few distinct seconds, so ties are common.
                    created_at: 1_700_000_000 + 3600 * rng.below(40) as i64,
                    ..Default::default()
                },
            )
            .unwrap();
            texts.push(text);
        }
        tx.commit().unwrap();
        // The triggers must follow later changes too: deletes, status changes,
        // edits; and so must the received-message paths: new messages from
        // LID chats, LIDs mapped to numbers (merging chats), our own messages
        // from the phone, placeholders filled in.
        let lids = ["77001@lid", "77002@lid", "77003@lid"];
        let numbers = ["77001@s.whatsapp.net", "15551@s.whatsapp.net", "4479@s"];
        let mut received = 0;
        for _ in 0..240 {
            let id = format!("m{}", rng.below(800));
            match rng.below(7) {
                0 => {
                    conn.execute("DELETE FROM messages WHERE id = ?1", [&id])
                        .unwrap();
                }
                1 => {
                    set_reply_status(&conn, &id, rng.pick(&statuses)).unwrap();
                }
                2 => {
                    let text = random_text(&mut rng);
                    conn.execute(
                        "UPDATE messages SET message = ?2 WHERE id = ?1",
                        params![id, text],
                    )
                    .unwrap();
                    texts.push(text);
                }
                3 | 4 => {
                    received += 1;
                    let chat = if rng.below(2) == 0 {
                        rng.pick(&lids)
                    } else {
                        rng.pick(&phones)
                    };
                    let text = random_text(&mut rng);
                    let placeholder = rng.below(4) == 0;
                    let m = IncomingMessage {
                        wa_id: format!("r{received}"),
                        chat: chat.into(),
                        sender: chat.into(),
                        text: text.clone(),
                        from_me: rng.below(4) == 0,
                        placeholder: placeholder.then_some(crate::wa::Placeholder::Undecryptable),
                        timestamp: Some(1_700_000_000 + 3600 * rng.below(40) as i64),
                        ..Default::default()
                    };
                    let tx = conn.transaction().unwrap();
                    store_received(&tx, &format!("r{received}"), &m, 1_800_000_000).unwrap();
                    if placeholder && rng.below(2) == 0 {
                        let filled = IncomingMessage {
                            placeholder: None,
                            text: random_text(&mut rng),
                            ..m
                        };
                        let again = store_received(&tx, "unused", &filled, 1_800_000_000).unwrap();
                        assert!(matches!(again, Received::Filled(_)), "{again:?}");
                        texts.push(filled.text);
                    }
                    tx.commit().unwrap();
                    texts.push(text);
                }
                5 => {
                    let tx = conn.transaction().unwrap();
                    learn_lid(&tx, rng.pick(&lids), rng.pick(&numbers), 1_800_000_000).unwrap();
                    tx.commit().unwrap();
                }
                _ => {}
            }
        }
        assert_kept_counts_are_exact(&conn);
        let mut searched_with_hits = 0;
        let mut phone_plans = std::collections::HashMap::new();
        for round in 0..1500 {
            // Mostly substrings of stored texts (so there are hits), with
            // their ASCII case flipped at random; sometimes random pieces.
            let search = match rng.below(6) {
                0 => None,
                1 => Some(random_text(&mut rng)),
                _ => {
                    let t: Vec<char> = texts[rng.below(texts.len())].chars().collect();
                    let a = rng.below(t.len() + 1);
                    let b = (a + 1 + rng.below(6)).min(t.len());
                    let flip = rng.below(2) == 0;
                    Some(
                        t[a..b]
                            .iter()
                            .map(|c| {
                                if flip {
                                    c.to_ascii_uppercase()
                                } else {
                                    c.to_ascii_lowercase()
                                }
                            })
                            .collect(),
                    )
                }
            }
            .filter(|s: &String| !s.trim().is_empty());
            let q = InboxQuery {
                status: (rng.below(3) > 0).then(|| rng.pick(&statuses).to_string()),
                search,
                phone: (rng.below(3) == 0).then(|| {
                    rng.pick(&["1555", "_", "%", "g.us", "2@", "336", "12@S", "7@"])
                        .to_string()
                }),
                from: (rng.below(4) == 0).then(|| 1_700_000_000 + 3600 * rng.below(40) as i64),
                until: (rng.below(4) == 0).then(|| 1_700_000_000 + 3600 * rng.below(40) as i64),
                page: 1 + rng.below(4) as u32,
                limit: 1 + rng.below(20) as u32,
            };
            if let Some(p) = &q.phone {
                let plan = phone_plan(&conn, &like_pattern(p)).unwrap();
                *phone_plans.entry(format!("{plan:?}")).or_insert(0) += 1;
            }
            let (rows, total) = inbox(&conn, &q).unwrap();
            let ids: Vec<String> = rows.into_iter().map(|m| m.id).collect();
            assert_eq!(
                (ids, total),
                reference_inbox(&conn, &q),
                "round {round}: {q:?}"
            );
            if total > 0 && q.search.as_deref().is_some_and(|t| t.chars().count() >= 3) {
                searched_with_hits += 1;
            }
        }
        // The trigram path really ran, on queries that find something.
        assert!(searched_with_hits > 100, "{searched_with_hits}");
        // So did each way of filtering by phone.
        for plan in ["NoChat", "ByChat", "Scan"] {
            assert!(phone_plans.get(plan) > Some(&20), "{phone_plans:?}");
        }
    }

    #[test]
    fn upgrade_to_version_2_indexes_existing_messages() {
        let mut conn = open_memory().unwrap();
        store(
            &mut conn,
            "a",
            &incoming("1", "1@s", "Where is my ORDER?"),
            1,
        )
        .unwrap();
        store(&mut conn, "b", &incoming("2", "1@s", "no match"), 2).unwrap();
        // A version 1 database: the same rows, no search index.
        conn.execute_batch("DROP TABLE messages_fts; PRAGMA user_version = 1;")
            .unwrap();
        conn.execute_batch(
            "DROP TRIGGER messages_fts_insert; DROP TRIGGER messages_fts_delete; DROP TRIGGER messages_fts_update;",
        )
        .unwrap_or(());
        migrate(&conn).unwrap();
        let q = InboxQuery {
            search: Some("my order".into()),
            page: 1,
            limit: 10,
            ..Default::default()
        };
        let (rows, total) = inbox(&conn, &q).unwrap();
        assert_eq!((rows.len(), total), (1, 1));
        assert_eq!(rows[0].id, "a");
        // Migrating again does not index the rows twice.
        migrate(&conn).unwrap();
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH '\"order\"'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1);
    }

    /// A database written by schema version 2 (its schema.sql, kept as a
    /// fixture) upgrades in place: rows keep their data and gain the new
    /// columns, and a redelivery of a stored message is still recognised.
    #[test]
    fn upgrade_from_version_2_keeps_every_message() {
        let mut conn = Connection::open_in_memory().unwrap();
        configure(&mut conn).unwrap();
        conn.execute_batch(include_str!("../tests/fixtures/schema-v2.sql"))
            .unwrap();
        conn.execute_batch(
            "INSERT INTO messages (id, wa_id, direction, phone, sender_jid, message, reply_status,
                 created_at)
             VALUES ('in1', 'W1', 'incoming', '1@s.whatsapp.net', '1@s.whatsapp.net',
                 'where is my order', 'unread', 100);
             INSERT INTO messages (id, wa_id, direction, phone, sender_jid, message, reply_status,
                 delivery_status, in_reply_to, created_at)
             VALUES ('out1', 'W2', 'outgoing', '1@s.whatsapp.net', 'me', 'on its way', 'sent',
                 'delivered', 'in1', 101);
             PRAGMA user_version = 2;",
        )
        .unwrap();
        migrate(&conn).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let incoming = get_message(&conn, "in1").unwrap().unwrap();
        assert_eq!(
            (
                incoming.message.as_str(),
                incoming.created_at,
                incoming.received_at
            ),
            ("where is my order", 100, 100)
        );
        let outgoing = get_message(&conn, "out1").unwrap().unwrap();
        assert_eq!(outgoing.source.as_deref(), Some("api"));
        assert_eq!(outgoing.delivery_status.as_deref(), Some("delivered"));
        // The old key is gone, the received key holds the old row.
        let old_index: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'messages_wa_key'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(old_index, 0);
        let tx = conn.transaction().unwrap();
        let again = store_received(&tx, "dup", &incoming_at("W1", "1@s.whatsapp.net", 100), 200);
        assert_eq!(again.unwrap(), Received::Duplicate);
        tx.commit().unwrap();
        // Counts, chats and search still agree.
        assert_eq!(inbox_count(&conn, Some("unread")).unwrap(), 1);
        let q = InboxQuery {
            search: Some("my order".into()),
            page: 1,
            limit: 10,
            ..Default::default()
        };
        assert_eq!(inbox(&conn, &q).unwrap().1, 1);
        assert_eq!(chat_expiration(&conn, "1@s.whatsapp.net").unwrap(), None);
        assert_kept_counts_are_exact(&conn);
        // Upgrading again changes nothing.
        migrate(&conn).unwrap();
        assert_eq!(get_message(&conn, "in1").unwrap().unwrap(), incoming);
    }

    fn incoming_at(wa_id: &str, chat: &str, at: i64) -> IncomingMessage {
        IncomingMessage {
            timestamp: Some(at),
            ..incoming(wa_id, chat, "x")
        }
    }

    fn receive(conn: &mut Connection, id: &str, m: &IncomingMessage, now: i64) -> Received {
        let tx = conn.transaction().unwrap();
        let got = store_received(&tx, id, m, now).unwrap();
        tx.commit().unwrap();
        got
    }

    const LID: &str = "123456789012345@lid";
    const PN: &str = "15551234567@s.whatsapp.net";

    #[test]
    fn a_lid_chat_merges_into_the_phone_number_chat() {
        let mut conn = open_memory().unwrap();
        // Before its number is known, the customer writes under a LID …
        receive(&mut conn, "a", &incoming_at("1", LID, 10), 10);
        receive(&mut conn, "b", &incoming_at("2", LID, 11), 11);
        // … and in a group, too.
        let in_group = IncomingMessage {
            sender: LID.into(),
            ..incoming_at("3", "9@g.us", 12)
        };
        receive(&mut conn, "c", &in_group, 12);
        assert_eq!(get_message(&conn, "a").unwrap().unwrap().phone, LID);
        // A message revealing the pair: one chat from now on.
        let with_pair = IncomingMessage {
            mappings: vec![(LID.into(), PN.into())],
            ..incoming_at("4", LID, 13)
        };
        let Received::New(row) = receive(&mut conn, "d", &with_pair, 13) else {
            panic!()
        };
        assert_eq!((row.phone.as_str(), row.sender_jid.as_str()), (PN, PN));
        assert_eq!(row.sender_lid.as_deref(), Some(LID));
        for id in ["a", "b"] {
            let m = get_message(&conn, id).unwrap().unwrap();
            assert_eq!((m.phone.as_str(), m.sender_jid.as_str()), (PN, PN), "{id}");
            assert_eq!(m.sender_lid.as_deref(), Some(LID));
        }
        let member = get_message(&conn, "c").unwrap().unwrap();
        assert_eq!(
            (member.phone.as_str(), member.sender_jid.as_str()),
            ("9@g.us", PN)
        );
        // One chat with every unread message; the LID's chat is gone.
        let (chats, total) = conversations(&conn, 1, 10).unwrap();
        assert_eq!(total, 2);
        let chat = chats.iter().find(|c| c.phone == PN).unwrap();
        assert_eq!((chat.unread, chat.last.id.as_str()), (3, "d"));
        assert_eq!(conversation_messages(&conn, PN, 1, 10).unwrap().1, 3);
        // Later messages under the LID alone land in the same chat.
        let Received::New(later) = receive(&mut conn, "e", &incoming_at("5", LID, 14), 14) else {
            panic!()
        };
        assert_eq!(later.phone, PN);
        // A message from the number shows the LID it is known by.
        let Received::New(by_number) = receive(&mut conn, "f", &incoming_at("6", PN, 15), 15)
        else {
            panic!()
        };
        assert_eq!(by_number.sender_lid.as_deref(), Some(LID));
        assert_kept_counts_are_exact(&conn);
    }

    /// Learning a LID finds that LID's messages in groups through the small
    /// index of unmapped LID authors, not by scanning every message.
    #[test]
    fn a_learnt_lid_finds_its_group_messages_by_index() {
        let conn = open_memory().unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {MAP_LID_AUTHOR}"))
            .unwrap()
            .query_map(params![LID, PN], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<DbResult<_>>()
            .unwrap();
        assert!(
            plan.iter().any(|p| p.contains("messages_lid_sender")),
            "{plan:?}"
        );
    }

    #[test]
    fn a_redelivery_after_a_mapping_is_stored_once() {
        let mut conn = open_memory().unwrap();
        let first = incoming_at("W1", LID, 10);
        assert!(matches!(
            receive(&mut conn, "a", &first, 10),
            Received::New(_)
        ));
        // The mapping arrives in between (with another message) …
        let other = IncomingMessage {
            mappings: vec![(LID.into(), PN.into())],
            ..incoming_at("W2", LID, 11)
        };
        receive(&mut conn, "b", &other, 11);
        // … and WhatsApp redelivers the first one, now with the pair.
        let again = IncomingMessage {
            mappings: vec![(LID.into(), PN.into())],
            ..first
        };
        assert_eq!(receive(&mut conn, "c", &again, 12), Received::Duplicate);
        assert_eq!(inbox_count(&conn, None).unwrap(), 2);
    }

    #[test]
    fn own_messages_from_the_phone_are_replies() {
        let mut conn = open_memory().unwrap();
        receive(&mut conn, "q1", &incoming_at("1", PN, 100), 100);
        receive(&mut conn, "q2", &incoming_at("2", PN, 200), 200);
        // Typed on the phone at 150: it answers the first question only.
        let own = IncomingMessage {
            sender: "15550000000@s.whatsapp.net".into(),
            from_me: true,
            ..incoming_at("3", PN, 150)
        };
        let Received::New(row) = receive(&mut conn, "r", &own, 300) else {
            panic!()
        };
        assert_eq!(row.direction, "outgoing");
        assert_eq!(
            (
                row.reply_status.as_str(),
                row.delivery_status.as_deref(),
                row.source.as_deref()
            ),
            ("sent", Some("sent"), Some("phone"))
        );
        assert_eq!(
            get_message(&conn, "q1").unwrap().unwrap().reply_status,
            "replied"
        );
        assert_eq!(
            get_message(&conn, "q2").unwrap().unwrap().reply_status,
            "unread"
        );
        // A reply this server sent, echoed back from another device, is not
        // stored twice.
        let tx = conn.transaction().unwrap();
        insert_outgoing(
            &tx,
            &Outgoing {
                id: "api",
                wa_id: "SENT",
                phone: PN,
                sender_jid: "",
                text: "y",
                in_reply_to: "q2",
                source: "api",
                idempotency_key: None,
                created_at: 400,
            },
        )
        .unwrap();
        tx.commit().unwrap();
        let echo = IncomingMessage {
            wa_id: "SENT".into(),
            ..own
        };
        assert_eq!(receive(&mut conn, "x", &echo, 401), Received::Duplicate);
        assert_kept_counts_are_exact(&conn);
    }

    /// A reply is stored pending before it is sent, so its receipt finds it
    /// even when it comes before WhatsApp's acknowledgement: the receipt
    /// accepts it (the original becomes replied) and the late acknowledgement
    /// changes nothing.
    #[test]
    fn an_early_receipt_accepts_a_pending_reply() {
        let mut conn = open_memory().unwrap();
        receive(&mut conn, "q", &incoming_at("1", PN, 10), 10);
        let tx = conn.transaction().unwrap();
        let row = insert_outgoing(
            &tx,
            &Outgoing {
                id: "r",
                wa_id: "OUT1",
                phone: PN,
                sender_jid: "",
                text: "on its way",
                in_reply_to: "q",
                source: "api",
                idempotency_key: Some("k"),
                created_at: 11,
            },
        )
        .unwrap();
        assert_eq!(row.delivery_status.as_deref(), Some("pending"));
        let accepted = accept_outgoing(&tx, "OUT1", DeliveryStatus::Delivered).unwrap();
        assert_eq!(
            accepted.unwrap().delivery_status.as_deref(),
            Some("delivered")
        );
        assert_eq!(
            accept_outgoing(&tx, "OUT1", DeliveryStatus::Sent).unwrap(),
            None
        );
        assert_eq!(fail_outgoing(&tx, "OUT1").unwrap(), None);
        tx.commit().unwrap();
        assert_eq!(
            get_message(&conn, "q").unwrap().unwrap().reply_status,
            "replied"
        );
        let again = reply_for_key(&conn, "q", "k").unwrap().unwrap();
        assert_eq!(again.delivery_status.as_deref(), Some("delivered"));
    }

    #[test]
    fn a_placeholder_is_filled_in_place() {
        let mut conn = open_memory().unwrap();
        let placeholder = IncomingMessage {
            text: "[Message could not be decrypted yet]".into(),
            placeholder: Some(crate::wa::Placeholder::Undecryptable),
            ..incoming_at("W", PN, 10)
        };
        let Received::New(row) = receive(&mut conn, "p", &placeholder, 10) else {
            panic!()
        };
        assert_eq!(row.placeholder.as_deref(), Some("undecryptable"));
        // The same placeholder again changes nothing.
        assert_eq!(
            receive(&mut conn, "x", &placeholder, 11),
            Received::Duplicate
        );
        let content = IncomingMessage {
            text: "the real text".into(),
            placeholder: None,
            ..placeholder.clone()
        };
        let Received::Filled(row) = receive(&mut conn, "y", &content, 12) else {
            panic!()
        };
        assert_eq!(
            (row.id.as_str(), row.message.as_str()),
            ("p", "the real text")
        );
        assert_eq!(row.placeholder, None);
        // Once filled, neither the content nor a placeholder replaces it.
        assert_eq!(receive(&mut conn, "z", &content, 13), Received::Duplicate);
        assert_eq!(
            receive(&mut conn, "z", &placeholder, 13),
            Received::Duplicate
        );
        let q = InboxQuery {
            search: Some("real text".into()),
            page: 1,
            limit: 10,
            ..Default::default()
        };
        assert_eq!(inbox(&conn, &q).unwrap().1, 1);
        assert_eq!(inbox_count(&conn, None).unwrap(), 1);
    }

    #[test]
    fn a_backlog_keeps_whatsapps_times() {
        let mut conn = open_memory().unwrap();
        let Received::New(row) = receive(&mut conn, "a", &incoming_at("1", PN, 1_000), 5_000)
        else {
            panic!()
        };
        assert_eq!((row.created_at, row.received_at), (1_000, 5_000));
        // No time, or one from the future: the arrival.
        let none = IncomingMessage {
            timestamp: None,
            ..incoming("2", PN, "x")
        };
        let Received::New(row) = receive(&mut conn, "b", &none, 5_000) else {
            panic!()
        };
        assert_eq!(row.created_at, 5_000);
        let Received::New(row) = receive(
            &mut conn,
            "c",
            &incoming_at("3", PN, 5_000 + 2 * 86_400),
            5_000,
        ) else {
            panic!()
        };
        assert_eq!(row.created_at, 5_000);
    }

    #[test]
    fn a_chat_remembers_its_disappearing_timer() {
        let mut conn = open_memory().unwrap();
        let timed = IncomingMessage {
            expiration: Some(604_800),
            ..incoming_at("1", PN, 10)
        };
        receive(&mut conn, "a", &timed, 10);
        assert_eq!(chat_expiration(&conn, PN).unwrap(), Some(604_800));
        // A message without a timer says nothing about it.
        receive(&mut conn, "b", &incoming_at("2", PN, 11), 11);
        assert_eq!(chat_expiration(&conn, PN).unwrap(), Some(604_800));
        set_chat_expiration(&conn, PN, 0).unwrap();
        assert_eq!(chat_expiration(&conn, PN).unwrap(), None);
    }

    #[test]
    fn delivery_status_only_moves_forward() {
        let mut conn = open_memory().unwrap();
        store(&mut conn, "in", &incoming("1", "1@s", "x"), 1).unwrap();
        let tx = conn.transaction().unwrap();
        insert_outgoing(
            &tx,
            &Outgoing {
                id: "out",
                wa_id: "W",
                phone: "1@s",
                sender_jid: "",
                text: "y",
                in_reply_to: "in",
                source: "api",
                idempotency_key: None,
                created_at: 2,
            },
        )
        .unwrap();
        tx.commit().unwrap();
        let w = vec!["W".to_string()];
        assert_eq!(
            advance_delivery_status(&conn, &w, DeliveryStatus::Read).unwrap(),
            1
        );
        assert_eq!(
            advance_delivery_status(&conn, &w, DeliveryStatus::Delivered).unwrap(),
            0
        );
        assert_eq!(
            get_message(&conn, "out")
                .unwrap()
                .unwrap()
                .delivery_status
                .as_deref(),
            Some("read")
        );
    }

    #[test]
    fn idempotency_claims() {
        let mut conn = open_memory().unwrap();
        let c = &mut conn;
        assert_eq!(
            claim_idempotency(c, "k", "m", "h").unwrap(),
            IdempotencyClaim::New
        );
        assert_eq!(
            claim_idempotency(c, "k", "m", "h").unwrap(),
            IdempotencyClaim::InFlight
        );
        finish_idempotency(c, "k", "m", 200, "{}").unwrap();
        assert_eq!(
            claim_idempotency(c, "k", "m", "h").unwrap(),
            IdempotencyClaim::Done(200, "{}".into())
        );
        // The key belongs to its first request: another body, or another
        // message, is refused.
        assert_eq!(
            claim_idempotency(c, "k", "m", "other body").unwrap(),
            IdempotencyClaim::Mismatch
        );
        assert_eq!(
            claim_idempotency(c, "k", "m2", "h").unwrap(),
            IdempotencyClaim::Mismatch
        );
        assert_eq!(
            claim_idempotency(c, "k2", "m", "h").unwrap(),
            IdempotencyClaim::New
        );
        release_idempotency(c, "k2", "m").unwrap();
        assert_eq!(
            claim_idempotency(c, "k2", "m", "h2").unwrap(),
            IdempotencyClaim::New
        );
    }

    #[test]
    fn version_3_databases_gain_the_request_hash() {
        let conn = open_memory().unwrap();
        conn.execute_batch(
            "ALTER TABLE idempotency_keys DROP COLUMN request_hash;
             INSERT INTO idempotency_keys (key, message_id, status, body, created_at)
             VALUES ('old', 'm', 200, '{}', 1);
             PRAGMA user_version = 3;",
        )
        .unwrap();
        migrate(&conn).unwrap();
        assert!(
            table_columns(&conn, "idempotency_keys")
                .unwrap()
                .contains(&"request_hash".to_string())
        );
        let mut conn = conn;
        // A row from before: the message decides, whatever the hash.
        assert_eq!(
            claim_idempotency(&mut conn, "old", "m", "any").unwrap(),
            IdempotencyClaim::Done(200, "{}".into())
        );
    }

    #[test]
    fn api_key_rotation_revokes_the_old_key() {
        let mut conn = open_memory().unwrap();
        set_active_api_key(&mut conn, "h1", "p1").unwrap();
        assert_eq!(active_api_key_hash(&conn).unwrap().as_deref(), Some("h1"));
        set_active_api_key(&mut conn, "h2", "p2").unwrap();
        assert_eq!(active_api_key_hash(&conn).unwrap().as_deref(), Some("h2"));
        let active: i64 = conn
            .query_row(
                "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(active, 1);
    }

    #[test]
    fn deliveries_go_to_exact_subscribers_only() {
        let mut conn = open_memory().unwrap();
        let hook = |id: &str, events: &str, active: bool| Webhook {
            id: id.into(),
            url: "http://127.0.0.1:1/".into(),
            events: events.into(),
            secret: None,
            active,
            created_at: 0,
            updated_at: 0,
        };
        upsert_webhook(&conn, &hook("a", "message.received,message.sent", true)).unwrap();
        upsert_webhook(&conn, &hook("b", "message.received.extra", true)).unwrap();
        upsert_webhook(&conn, &hook("c", "message.received", false)).unwrap();
        let tx = conn.transaction().unwrap();
        assert_eq!(
            enqueue_deliveries(&tx, "message.received", "{}").unwrap(),
            1
        );
        tx.commit().unwrap();
        assert!(delete_webhook(&conn, "a").unwrap());
        let left: i64 = conn
            .query_row("SELECT count(*) FROM webhook_deliveries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
    }

    #[test]
    fn audit_batches_and_pages() {
        let mut conn = open_memory().unwrap();
        let entries: Vec<_> = (0..30)
            .map(|i| AuditEntry {
                action: if i % 2 == 0 {
                    "api_request"
                } else {
                    "auth_failed"
                }
                .into(),
                created_at: i,
                ..Default::default()
            })
            .collect();
        insert_audit_batch(&mut conn, &entries).unwrap();
        let q = AuditQuery {
            action: Some("auth_failed".into()),
            page: 2,
            limit: 10,
            ..Default::default()
        };
        let (rows, total) = audit_logs(&conn, &q).unwrap();
        assert_eq!(total, 15);
        assert_eq!(rows.len(), 5);
        assert_eq!(prune_audit(&conn, 10).unwrap(), 10);
    }
}
