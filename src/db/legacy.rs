//! Statements of `import-legacy`: reading the Node.js server's messages.db
//! (opened read-only) and writing its rows here without touching rows this
//! server already has.

use super::{AuditEntry, DbResult, table_columns};
use crate::status::{DeliveryStatus, Direction, ReplyStatus};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

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
    pub direction: Direction,
    pub phone: &'a str,
    pub sender_jid: &'a str,
    pub message: &'a str,
    pub reply_status: ReplyStatus,
    pub delivery_status: Option<DeliveryStatus>,
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
