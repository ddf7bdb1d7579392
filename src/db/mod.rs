//! The app database: `connect()` and schema upgrades here, and every SQL
//! statement of the program as small typed functions in the files beside
//! this one, one per table family, each with its tests. No SQL lives
//! anywhere else (the schema itself is `schema.sql`).

mod audit;
mod backup;
mod chats;
mod conversation;
mod events;
mod idempotency;
mod inbox;
mod legacy;
mod messages;
mod received;
mod settings;
mod webhooks;

pub use self::audit::*;
pub use self::backup::*;
pub use self::chats::*;
pub use self::conversation::*;
pub use self::events::*;
pub use self::idempotency::*;
pub use self::inbox::*;
pub use self::legacy::*;
pub use self::messages::*;
pub use self::received::*;
pub use self::settings::*;
pub use self::webhooks::*;

use rusqlite::{Connection, Transaction, TransactionBehavior};
use std::path::Path;
use std::time::Duration;

pub use rusqlite::Error as DbError;
pub type DbResult<T> = Result<T, DbError>;

/// The schema, applied at start-up.
const SCHEMA: &str = include_str!("../../schema.sql");
/// `PRAGMA user_version` of a database `SCHEMA` has brought up to date.
pub const SCHEMA_VERSION: i64 = 10;

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

/// Columns version 6 added: edits, deletions and read receipts.
const COLUMNS_OF_6: [(&str, &str, &str); 3] = [
    ("messages", "edited_at", "INTEGER"),
    ("messages", "deleted_at", "INTEGER"),
    ("messages", "read_receipt_at", "INTEGER"),
];

/// Version 6 tells WhatsApp when a message is read; messages read before
/// the upgrade count as told, so an upgrade sends no old receipts.
const UPGRADE_TO_6: &str = "UPDATE messages SET read_receipt_at = coalesce(received_at, created_at)
         WHERE direction = 'incoming' AND reply_status IN ('read', 'replied');";

/// Columns version 7 added: a delivery points at its row in the event log
/// (`events`, new in version 7), which holds the payload. Deliveries written
/// before keep their own payload.
const COLUMNS_OF_7: [(&str, &str, &str); 1] = [(
    "webhook_deliveries",
    "event_id",
    "INTEGER REFERENCES events (id)",
)];

/// Version 8 added the chats' trigram index (`chat_search`, `chats_fts`;
/// schema.sql creates them, empty, and the narrow `messages_inbox_text`
/// index, which SQLite fills itself): an older database indexes the chats it
/// holds.
const UPGRADE_TO_8: &str = "INSERT OR IGNORE INTO chat_search (phone) SELECT phone FROM chats;
     INSERT INTO chats_fts (chats_fts) VALUES ('optimize');";

/// Columns version 9 added: each chat's incoming messages, counted.
/// (Databases before version 8 have no `chat_search`; schema.sql creates it
/// whole.)
const COLUMNS_OF_9: [(&str, &str, &str); 1] =
    [("chat_search", "incoming", "INTEGER NOT NULL DEFAULT 0")];

/// Version 9 counts each chat's incoming messages (`chat_search.incoming`)
/// for the rows it holds.
const UPGRADE_TO_9: &str = "UPDATE chat_search SET incoming = (SELECT count(*) FROM messages
         WHERE messages.phone = chat_search.phone AND direction = 'incoming');";

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

/// `LIMIT n OFFSET m` with the numbers written into the SQL. SQLite's
/// planner reads a LIMIT or OFFSET given as a parameter, so binding one
/// expires the prepared statement and every run compiles it again (about
/// 280,000 instructions, a sixth of an inbox page); with the numbers in its
/// text, the cached statement is reused while they stay the same.
pub(super) fn limit_offset(limit: i64, offset: i64) -> String {
    format!("LIMIT {limit} OFFSET {offset}")
}

/// The rows a page skips: those of the pages before it (pages count from 1).
pub(super) fn page_offset(page: u32, limit: u32) -> i64 {
    i64::from(page.saturating_sub(1)) * i64::from(limit)
}

/// A read-only transaction: one consistent snapshot for several queries,
/// taking no write lock.
pub(super) fn read_snapshot(conn: &Connection) -> DbResult<Transaction<'_>> {
    Transaction::new_unchecked(conn, TransactionBehavior::Deferred)
}

/// Gives a bulk loader's connection a large page cache (256 MiB), so one big
/// transaction does not spill pages to the WAL and read them back.
pub fn tune_for_bulk_load(conn: &Connection) -> DbResult<()> {
    conn.pragma_update(None, "cache_size", -262_144)
}

/// Merges each search index (messages, chats) into one segment. A bulk load
/// in one transaction leaves them in many (each costs a lookup per query
/// term); the live server adds one per commit and FTS5's automerge keeps
/// those few.
pub fn optimize_search_index(conn: &Connection) -> DbResult<()> {
    conn.execute_batch(
        "INSERT INTO messages_fts (messages_fts) VALUES ('optimize');
         INSERT INTO chats_fts (chats_fts) VALUES ('optimize');",
    )
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
    if (1..6).contains(&version) {
        added.extend(COLUMNS_OF_6);
    }
    if (1..7).contains(&version) {
        added.extend(COLUMNS_OF_7);
    }
    if version == 8 {
        added.extend(COLUMNS_OF_9);
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
    if (1..6).contains(&version) {
        steps.push_str(UPGRADE_TO_6);
    }
    if (1..8).contains(&version) {
        steps.push_str(UPGRADE_TO_8);
    }
    if (1..9).contains(&version) {
        steps.push_str(UPGRADE_TO_9);
    }
    tx.execute_batch(&format!(
        "{SCHEMA}\n{steps}\nPRAGMA user_version = {SCHEMA_VERSION};"
    ))?;
    tx.commit()
}

/// Column names of `table` (empty when there is no such table).
pub fn table_columns(conn: &Connection, table: &str) -> DbResult<Vec<String>> {
    conn.prepare("SELECT name FROM pragma_table_info(?1)")?
        .query_map([table], |r| r.get(0))?
        .collect()
}

/// What the tests of every table family build on.
#[cfg(test)]
mod testing {
    use super::*;
    use crate::wa::IncomingMessage;

    pub fn incoming(wa_id: &str, chat: &str, text: &str) -> IncomingMessage {
        IncomingMessage {
            wa_id: wa_id.into(),
            chat: chat.into(),
            sender: chat.into(),
            text: text.into(),
            ..Default::default()
        }
    }

    /// Stores `m` as sent and received at `at`; the row when it is new.
    pub fn store(conn: &mut Connection, id: &str, m: &IncomingMessage, at: i64) -> Option<Message> {
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

    pub fn incoming_at(wa_id: &str, chat: &str, at: i64) -> IncomingMessage {
        IncomingMessage {
            timestamp: Some(at),
            ..incoming(wa_id, chat, "x")
        }
    }

    pub fn receive(conn: &mut Connection, id: &str, m: &IncomingMessage, now: i64) -> Received {
        let tx = conn.transaction().unwrap();
        let got = store_received(&tx, id, m, now).unwrap();
        tx.commit().unwrap();
        got
    }

    pub const LID: &str = "123456789012345@lid";
    pub const PN: &str = "15551234567@s.whatsapp.net";

    /// The counts the triggers (and the chat merge) keep equal a fresh count.
    pub fn assert_kept_counts_are_exact(conn: &Connection) {
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
        // The phone filter's index holds exactly the chats.
        let phones = |sql: &str| -> Vec<String> {
            conn.prepare(sql)
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<DbResult<_>>()
                .unwrap()
        };
        assert_eq!(
            phones("SELECT phone FROM chat_search ORDER BY 1"),
            phones("SELECT phone FROM chats ORDER BY 1")
        );
        assert_eq!(
            counted("SELECT phone, incoming FROM chat_search WHERE incoming <> 0 ORDER BY 1"),
            counted(
                "SELECT phone, count(*) FROM messages WHERE direction = 'incoming'
                 GROUP BY 1 ORDER BY 1"
            )
        );
        let indexed: i64 = conn
            .query_row(
                "SELECT count(*) FROM chat_search s
                 WHERE s.id IN (SELECT rowid FROM chats_fts
                     WHERE chats_fts MATCH '\"' || replace(substr(s.phone, 1, 3), '\"', '\"\"') || '\"')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let long: i64 = conn
            .query_row(
                "SELECT count(*) FROM chat_search WHERE length(phone) >= 3",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexed, long, "a chat missing from chats_fts");
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use crate::status::*;

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

    /// How many times the statements prepared on `conn` were compiled again.
    fn recompiles(conn: &Connection) -> i32 {
        use rusqlite::ffi;
        let mut total = 0;
        // SAFETY: the handle is valid while `conn` lives, and nothing else
        // uses the connection meanwhile; sqlite3_next_stmt walks the
        // statements it owns, which stay alive in its statement cache.
        unsafe {
            let db = conn.handle();
            let mut stmt = ffi::sqlite3_next_stmt(db, std::ptr::null_mut());
            while !stmt.is_null() {
                total += ffi::sqlite3_stmt_status(stmt, ffi::SQLITE_STMTSTATUS_REPREPARE, 0);
                stmt = ffi::sqlite3_next_stmt(db, stmt);
            }
        }
        total
    }

    /// Pages of messages (searched and filtered too), chats, deliveries,
    /// audit rows and events, asked for again and again, reuse their
    /// compiled statements.
    #[test]
    fn paged_queries_are_not_compiled_again_on_every_run() {
        let mut conn = open_memory().unwrap();
        // What `recompiles` sees: a bound LIMIT is compiled again on each run.
        for limit in [1, 2, 1] {
            conn.prepare_cached("SELECT 1 LIMIT ?1")
                .unwrap()
                .query_row([limit], |_| Ok(()))
                .unwrap();
        }
        assert!(recompiles(&conn) >= 2);

        for n in 0..3 {
            store(
                &mut conn,
                &format!("m{n}"),
                &incoming(&format!("W{n}"), "1@s", "hi"),
                n,
            );
        }
        let before = recompiles(&conn);
        let all = InboxQuery {
            page: 1,
            limit: 2,
            ..Default::default()
        };
        let unread = InboxQuery {
            status: Some(ReplyStatus::Unread),
            ..all.clone()
        };
        let search = InboxQuery {
            search: Some("hi".into()),
            phone: Some("1".into()),
            ..all.clone()
        };
        for _ in 0..3 {
            assert_eq!(inbox(&conn, &all).unwrap().0.len(), 2);
            assert_eq!(inbox(&conn, &unread).unwrap().1, 3);
            assert_eq!(inbox(&conn, &search).unwrap().1, 3);
            assert_eq!(
                conversation_messages(&conn, "1@s", 1, 2).unwrap().0.len(),
                2
            );
            assert_eq!(conversations(&conn, 1, 2).unwrap().0.len(), 1);
            pending_deliveries(&conn, "hook", 10).unwrap();
            list_deliveries(&conn, "hook", 1, 10).unwrap();
            events_after(&conn, 0, None, 10).unwrap();
            events_after(&conn, 0, Some(&["message.received".to_string()]), 10).unwrap();
            audit_logs(
                &conn,
                &AuditQuery {
                    action: None,
                    from: None,
                    until: None,
                    page: 1,
                    limit: 5,
                },
            )
            .unwrap();
        }
        assert_eq!(recompiles(&conn), before);
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
        conn.execute_batch(include_str!("../../tests/fixtures/schema-v2.sql"))
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
             INSERT INTO webhooks (id, url, events, created_at, updated_at)
             VALUES ('h', 'http://127.0.0.1:1/', 'message.received', 1, 1);
             INSERT INTO webhook_deliveries (id, webhook_id, event, payload, next_attempt_at,
                 created_at, updated_at)
             VALUES ('d1', 'h', 'message.received', '{\"old\":true}', 0, 1, 1);
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
        assert_eq!(outgoing.source, Some(Source::Api));
        assert_eq!(outgoing.delivery_status, Some(DeliveryStatus::Delivered));
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
        assert_eq!(inbox_count(&conn, Some(ReplyStatus::Unread)).unwrap(), 1);
        let q = InboxQuery {
            search: Some("my order".into()),
            page: 1,
            limit: 10,
            ..Default::default()
        };
        assert_eq!(inbox(&conn, &q).unwrap().1, 1);
        assert_eq!(chat_expiration(&conn, "1@s.whatsapp.net").unwrap(), None);
        assert_kept_counts_are_exact(&conn);
        // A delivery written before the event log still posts its own
        // payload; a new one points at its event.
        let due = pending_deliveries(&conn, "h", 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].payload, "{\"old\":true}");
        let tx = conn.transaction().unwrap();
        assert_eq!(
            enqueue_deliveries(&tx, "message.received", "{}").unwrap(),
            1
        );
        tx.commit().unwrap();
        let due = pending_deliveries(&conn, "h", 10).unwrap();
        assert_eq!(due[1].payload, "{}");
        assert_eq!(events_after(&conn, 0, None, 10).unwrap().len(), 1);
        // Upgrading again changes nothing.
        migrate(&conn).unwrap();
        assert_eq!(get_message(&conn, "in1").unwrap().unwrap(), incoming);
    }

    /// A version 5 database gains the conversation columns and tables; the
    /// messages already read count as told, so no old receipt is sent.
    #[test]
    fn version_5_databases_owe_no_read_receipts_for_old_messages() {
        let mut conn = open_memory().unwrap();
        store(&mut conn, "old", &incoming("W1", PN, "x"), 10).unwrap();
        set_reply_status(&conn, "old", ReplyStatus::Read).unwrap();
        conn.execute_batch(
            "DROP TABLE reactions; DROP TABLE message_edits;
             DROP INDEX messages_read_due; DROP INDEX messages_wa_id_chat;
             ALTER TABLE messages DROP COLUMN edited_at;
             ALTER TABLE messages DROP COLUMN deleted_at;
             ALTER TABLE messages DROP COLUMN read_receipt_at;
             PRAGMA user_version = 5;",
        )
        .unwrap();
        migrate(&conn).unwrap();
        assert!(
            read_receipts_due(&conn, &["old".to_string()])
                .unwrap()
                .is_empty()
        );
        let row = get_message(&conn, "old").unwrap().unwrap();
        assert_eq!((row.edited_at, row.deleted_at), (None, None));
        assert!(set_reaction(&conn, row.seq, ME, "👍", 20).unwrap());
        // A message read after the upgrade is owed its receipt.
        store(&mut conn, "new", &incoming("W2", PN, "y"), 30).unwrap();
        set_reply_status(&conn, "new", ReplyStatus::Read).unwrap();
        let due = read_receipts_due(&conn, &["new".to_string()]).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].id, "new");
    }

    /// A version 8 database (no per-chat incoming counts) gains them, counted
    /// from the rows it holds, and they follow later messages.
    #[test]
    fn upgrade_to_version_9_counts_each_chats_incoming_messages() {
        let mut conn = open_memory().unwrap();
        for (i, chat) in [
            "4470001@s.whatsapp.net",
            "4470001@s.whatsapp.net",
            "4471002@s.whatsapp.net",
        ]
        .iter()
        .enumerate()
        {
            store(
                &mut conn,
                &format!("m{i}"),
                &incoming(&format!("W{i}"), chat, "hello"),
                i as i64,
            )
            .unwrap();
        }
        conn.execute_batch(
            "DROP TRIGGER messages_incoming_insert; DROP TRIGGER messages_incoming_delete;
             DROP TRIGGER messages_incoming_update;
             DROP TRIGGER chats_search_insert; DROP TRIGGER chats_search_delete;
             CREATE TABLE old_search AS SELECT id, phone FROM chat_search;
             DROP TABLE chat_search;
             CREATE TABLE chat_search (id INTEGER PRIMARY KEY, phone TEXT NOT NULL UNIQUE);
             INSERT INTO chat_search SELECT id, phone FROM old_search;
             DROP TABLE old_search;
             PRAGMA user_version = 8;",
        )
        .unwrap();
        migrate(&conn).unwrap();
        assert_kept_counts_are_exact(&conn);
        let counts = |conn: &Connection| -> Vec<i64> {
            conn.prepare("SELECT incoming FROM chat_search ORDER BY phone")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<DbResult<_>>()
                .unwrap()
        };
        assert_eq!(counts(&conn), [2, 1]);
        store(
            &mut conn,
            "m3",
            &incoming("W3", "4471002@s.whatsapp.net", "hi"),
            3,
        )
        .unwrap();
        assert_eq!(counts(&conn), [2, 2]);
        // Migrating again counts nothing twice.
        migrate(&conn).unwrap();
        assert_eq!(counts(&conn), [2, 2]);
    }

    /// A version 7 database (no chat index, no narrow text index) gains
    /// both, filled from the rows it holds, and its phone filters and
    /// searches take them.
    #[test]
    fn upgrade_to_version_8_indexes_existing_chats() {
        let mut conn = open_memory().unwrap();
        for (i, chat) in ["4470001@s.whatsapp.net", "4471002@s.whatsapp.net"]
            .iter()
            .enumerate()
        {
            store(
                &mut conn,
                &format!("m{i}"),
                &incoming(&format!("W{i}"), chat, "where is my refund"),
                i as i64,
            )
            .unwrap();
        }
        conn.execute_batch(
            "DROP TRIGGER chats_search_insert; DROP TRIGGER chats_search_delete;
             DROP TRIGGER chat_search_insert; DROP TRIGGER chat_search_delete;
             DROP TABLE chats_fts; DROP TABLE chat_search; DROP INDEX messages_inbox_text;
             PRAGMA user_version = 7;",
        )
        .unwrap();
        migrate(&conn).unwrap();
        assert_kept_counts_are_exact(&conn);
        let text_index: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'messages_inbox_text'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(text_index, 1);
        let q = InboxQuery {
            phone: Some("4470".into()),
            search: Some("my refund".into()),
            page: 1,
            limit: 10,
            ..Default::default()
        };
        let (rows, total) = inbox(&conn, &q).unwrap();
        assert_eq!((rows[0].id.as_str(), total), ("m0", 1));
        // Migrating again indexes nothing twice.
        migrate(&conn).unwrap();
        assert_kept_counts_are_exact(&conn);
        let indexed: i64 = conn
            .query_row(
                "SELECT count(*) FROM chats_fts WHERE chats_fts MATCH '\"447\"'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexed, 2);
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
}
