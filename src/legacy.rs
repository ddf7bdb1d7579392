//! `import-legacy <messages.db>`: moves the Node.js server's database
//! (messages, webhooks, its API key, audit logs) into this server's, keeping
//! message and webhook ids. Idempotent: a row this server already has is left
//! as it is, so a second run changes nothing.

use crate::config::Config;
use crate::db::{self, AuditEntry, DbError, ImportedMessage, LegacyMessage};
use crate::status::{DeliveryStatus, Direction, ReplyStatus};
use crate::{auth, clock};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags};
use std::fmt;
use std::path::Path;

/// What happened to the Node server's API key.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum KeyOutcome {
    /// The legacy database has no key.
    #[default]
    NoneFound,
    /// It is now this server's active key (any other was revoked).
    Activated,
    /// It already was the active key.
    AlreadyActive,
    /// It was rotated away here since an earlier import; it stays revoked.
    RevokedHere,
}

/// What one import did; printed as a few lines.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub messages_added: u64,
    pub messages_present: u64,
    /// Rows without an id, a phone, or with an unknown direction.
    pub messages_skipped: u64,
    /// Incoming rows whose reply_status was not one of ours (mapped, counted).
    pub statuses_mapped: u64,
    /// Rows whose created_at could not be read (given the previous row's time).
    pub undated: u64,
    /// Added messages that point at a media file.
    pub media_files: u64,
    pub webhooks_added: u64,
    pub webhooks_present: u64,
    pub webhooks_skipped: u64,
    pub api_key: KeyOutcome,
    /// API_KEY is configured, so `serve` will use it instead of the import.
    pub api_key_overridden: bool,
    pub audit_added: u64,
    pub audit_present: u64,
    /// Rows older than AUDIT_RETENTION_DAYS (the server would prune them).
    pub audit_expired: u64,
    /// Keys of the legacy settings table, which are not imported.
    pub settings_ignored: Vec<String>,
}

impl Report {
    fn changed_rows(&self) -> bool {
        self.messages_added + self.webhooks_added + self.audit_added > 0
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "messages:   {} added, {} already here, {} skipped",
            self.messages_added, self.messages_present, self.messages_skipped
        )?;
        if self.statuses_mapped > 0 {
            writeln!(
                f,
                "            {} with an unknown reply_status were imported as unread",
                self.statuses_mapped
            )?;
        }
        if self.undated > 0 {
            writeln!(
                f,
                "            {} with an unreadable created_at were given the previous message's time (or the import's)",
                self.undated
            )?;
        }
        writeln!(
            f,
            "webhooks:   {} added, {} already here, {} skipped",
            self.webhooks_added, self.webhooks_present, self.webhooks_skipped
        )?;
        writeln!(
            f,
            "api key:    {}",
            match self.api_key {
                KeyOutcome::NoneFound => "none in the Node database; this server's key is kept",
                KeyOutcome::Activated => {
                    "the Node server's key is now the active key (restart a running server)"
                }
                KeyOutcome::AlreadyActive => "the Node server's key is already the active key",
                KeyOutcome::RevokedHere => {
                    "the Node server's key was rotated away here; it stays revoked"
                }
            }
        )?;
        if self.api_key_overridden {
            writeln!(
                f,
                "            note: API_KEY is set, and `serve` uses it rather than the imported key"
            )?;
        }
        writeln!(
            f,
            "audit log:  {} added, {} already here, {} older than AUDIT_RETENTION_DAYS left out",
            self.audit_added, self.audit_present, self.audit_expired
        )?;
        if !self.settings_ignored.is_empty() {
            writeln!(
                f,
                "settings:   not imported ({}); configure this server through its environment",
                self.settings_ignored.join(", ")
            )?;
        }
        if self.media_files > 0 {
            writeln!(
                f,
                "media:      {} imported messages refer to /media/ files: copy the Node server's media directory into MEDIA_PATH",
                self.media_files
            )?;
        }
        Ok(())
    }
}

/// Imports `source` (the Node server's messages.db, opened read-only) into
/// the database of `config`, creating it if needed.
pub fn import(config: &Config, source: &Path) -> Result<Report, String> {
    let legacy = open_legacy(source)?;
    if let (Ok(a), Ok(b)) = (
        std::fs::canonicalize(source),
        std::fs::canonicalize(&config.db_path),
    ) && a == b
    {
        return Err(format!(
            "{} is this server's own database (DB_PATH); give the Node server's messages.db",
            source.display()
        ));
    }
    let mut conn = crate::open_data_dir(config)?;
    let failed =
        |e: DbError| format!("import failed ({e}); the rows of this step were not changed");
    let api_key = import_api_key(&legacy, &mut conn).map_err(failed)?;
    let mut report = Report {
        api_key,
        api_key_overridden: config.api_key.is_some() && api_key != KeyOutcome::NoneFound,
        ..Report::default()
    };
    let tx = conn.transaction().map_err(failed)?;
    import_messages(&legacy, &tx, &mut report).map_err(failed)?;
    import_webhooks(&legacy, &tx, &mut report).map_err(failed)?;
    let cutoff = clock::now_secs() - i64::from(config.audit_retention_days) * 86_400;
    import_audit(&legacy, &tx, cutoff, &mut report).map_err(failed)?;
    if report.changed_rows() {
        db::insert_audit(
            &tx,
            &AuditEntry {
                action: "legacy_import".into(),
                details: Some(format!(
                    "{} messages, {} webhooks, {} audit rows from {}",
                    report.messages_added,
                    report.webhooks_added,
                    report.audit_added,
                    source.display()
                )),
                created_at: clock::now_secs(),
                ..AuditEntry::default()
            },
        )
        .map_err(failed)?;
    }
    tx.commit().map_err(failed)?;
    report.settings_ignored = db::legacy_setting_keys(&legacy).map_err(failed)?;
    Ok(report)
}

/// Setting (in the database an automatic import wrote) naming the Node
/// database it was imported from.
const SETTING_IMPORTED_FROM: &str = "legacy.imported_from";

/// The Node server's `.env` names its own files: `DB_PATH` its
/// `messages.db`, `SESSION_PATH` the directory of its Baileys session. This
/// server can use neither, and must never write into the first, so it uses
/// files beside them instead:
/// - a Node database: `whatsapp-api.db` in the same directory, into which
///   the Node database is imported once (when `import` is set: `serve`,
///   `rotate-key`, `set-password`), read-only;
/// - a session directory: `<directory>.db` (the phone is linked once more).
///
/// Returns what was done, as sentences for the log.
pub fn adopt_node_paths(config: &mut Config, import: bool) -> Result<Vec<String>, String> {
    let mut notes = Vec::new();
    if config.session_path.is_dir() {
        let dir = config.session_path.clone();
        let file = dir.with_file_name(format!(
            "{}.db",
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "session".into())
        ));
        if file.is_dir() {
            return Err(format!(
                "SESSION_PATH {} is a directory (the Node server's Baileys session, which this server cannot read), \
                 and so is {}: set SESSION_PATH to a file such as ./session.db",
                dir.display(),
                file.display()
            ));
        }
        notes.push(format!(
            "SESSION_PATH {} is a directory: the Node server's Baileys session, which this server cannot read. \
             Using {} beside it (left untouched) instead: link the phone once more (scan the QR code on /login). \
             Set SESSION_PATH={} to make this permanent.",
            dir.display(),
            file.display(),
            file.display()
        ));
        config.session_path = file;
    }
    if !is_node_database(&config.db_path) {
        return Ok(notes);
    }
    let node_db = config.db_path.clone();
    let mut ours = node_db.with_file_name("whatsapp-api.db");
    if ours == node_db {
        ours = node_db.with_file_name("whatsapp-api-imported.db");
    }
    if is_node_database(&ours) {
        return Err(format!(
            "DB_PATH {} is the Node server's database, and so is {}: set DB_PATH to a new file such as ./whatsapp-api.db",
            node_db.display(),
            ours.display()
        ));
    }
    config.db_path = ours.clone();
    let canonical = std::fs::canonicalize(&node_db)
        .unwrap_or_else(|_| node_db.clone())
        .display()
        .to_string();
    let already = import_done(&ours, &canonical);
    let how = if import && !already {
        let report = self::import(config, &node_db)?;
        let conn = crate::open_data_dir(config)?;
        db::set_setting(&conn, SETTING_IMPORTED_FROM, &canonical)
            .map_err(|e| format!("could not record the import in {}: {e}", ours.display()))?;
        let count =
            |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        format!(
            "imported into {} ({}, {} and {} added{})",
            ours.display(),
            count(report.messages_added, "message", "messages"),
            count(report.webhooks_added, "webhook", "webhooks"),
            count(report.audit_added, "audit row", "audit rows"),
            match report.api_key {
                KeyOutcome::Activated if !report.api_key_overridden => {
                    "; its API key is this server's key now"
                }
                _ => "",
            }
        )
    } else if already {
        format!(
            "imported into {} at an earlier start (to bring over what the Node server wrote since: \
             whatsapp-api import-legacy {})",
            ours.display(),
            node_db.display()
        )
    } else {
        format!("not imported; using {}", ours.display())
    };
    notes.push(format!(
        "DB_PATH {} is the Node server's database (only read, never written): {how}. \
         This server uses {}; set DB_PATH={} to make this permanent.",
        node_db.display(),
        ours.display(),
        ours.display()
    ));
    Ok(notes)
}

/// Whether `path` is an SQLite database of the Node server (a `messages`
/// table without this server's `wa_id`), looked at read-only.
fn is_node_database(path: &Path) -> bool {
    if !path.is_file() {
        return false;
    }
    let Ok(conn) = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) else {
        return false;
    };
    match db::table_columns(&conn, "messages") {
        Ok(columns) => !columns.is_empty() && !columns.iter().any(|c| c == "wa_id"),
        Err(_) => false,
    }
}

/// Whether `ours` records an automatic import of `node_db`.
fn import_done(ours: &Path, node_db: &str) -> bool {
    if !ours.is_file() {
        return false;
    }
    let Ok(conn) = Connection::open_with_flags(
        ours,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) else {
        return false;
    };
    db::get_setting(&conn, SETTING_IMPORTED_FROM)
        .ok()
        .flatten()
        .is_some_and(|from| from == node_db)
}

/// Opens the Node database read-only and checks that it is one.
fn open_legacy(source: &Path) -> Result<Connection, String> {
    if !source.is_file() {
        return Err(format!(
            "{}: no such file; give the path of the Node server's messages.db",
            source.display()
        ));
    }
    let conn = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("could not open {}: {e}", source.display()))?;
    let columns = db::table_columns(&conn, "messages").map_err(|e| {
        format!(
            "{} is not an SQLite database of the Node server ({e})",
            source.display()
        )
    })?;
    if columns.iter().any(|c| c == "wa_id") {
        return Err(format!(
            "{} is a database of this server, not of the Node one; to restore a backup, see README \"Backup and restore\"",
            source.display()
        ));
    }
    let required = ["id", "direction", "phone", "message", "created_at"];
    if let Some(missing) = required.iter().find(|c| !columns.iter().any(|x| x == *c)) {
        return Err(format!(
            "{} is not a Node whatsapp-api database: {}",
            source.display(),
            if columns.is_empty() {
                "it has no messages table".to_string()
            } else {
                format!("its messages table has no {missing} column")
            }
        ));
    }
    Ok(conn)
}

/// The newest legacy key becomes the active one, unless it is already, or
/// unless it was revoked here after an earlier import (a rotation wins).
fn import_api_key(legacy: &Connection, conn: &mut Connection) -> Result<KeyOutcome, DbError> {
    let Some(key) = db::legacy_newest_api_key(legacy)? else {
        return Ok(KeyOutcome::NoneFound);
    };
    let hash = auth::api_key_hash(&key);
    if db::active_api_key_hash(conn)?.as_deref() == Some(hash.as_str()) {
        return Ok(KeyOutcome::AlreadyActive);
    }
    if db::api_key_known(conn, &hash)? {
        return Ok(KeyOutcome::RevokedHere);
    }
    db::set_active_api_key(conn, &hash, &crate::key_prefix(&key))?;
    Ok(KeyOutcome::Activated)
}

fn import_messages(
    legacy: &Connection,
    tx: &rusqlite::Transaction<'_>,
    report: &mut Report,
) -> Result<(), DbError> {
    let mut previous_time: Option<i64> = None;
    db::legacy_messages(legacy, |m: LegacyMessage| {
        let created_at = match legacy_time(&m.created_at) {
            Some(t) => t,
            None => {
                report.undated += 1;
                previous_time.unwrap_or_else(clock::now_secs)
            }
        };
        previous_time = Some(created_at);
        let (Some(id), Some(phone), Some(direction)) = (
            m.id.as_deref().filter(|s| !s.is_empty()),
            m.phone.as_deref().filter(|s| !s.trim().is_empty()),
            direction(m.direction.as_deref()),
        ) else {
            report.messages_skipped += 1;
            return Ok(());
        };
        let phone = chat_jid(phone);
        let (reply_status, delivery_status, sender_jid) = if direction == Direction::Incoming {
            let (status, known) = incoming_status(m.reply_status.as_deref());
            if !known {
                report.statuses_mapped += 1;
            }
            // In a direct chat the customer wrote it; a group's writer is unknown.
            let sender = if phone.ends_with("@g.us") { "" } else { &phone };
            (status, None, sender.to_string())
        } else {
            // The Node server stored a reply only after WhatsApp took it.
            (ReplyStatus::Sent, Some(DeliveryStatus::Sent), String::new())
        };
        let media_url = m.media_url.as_deref().filter(|u| !u.is_empty());
        let added = db::insert_imported_message(
            tx,
            &ImportedMessage {
                id,
                direction,
                phone: &phone,
                sender_jid: &sender_jid,
                message: m.message.as_deref().unwrap_or_default(),
                reply_status,
                delivery_status,
                media_type: m.media_type.as_deref().filter(|t| !t.is_empty()),
                media_url,
                created_at,
            },
        )?;
        if added {
            report.messages_added += 1;
            report.media_files += u64::from(media_url.is_some());
        } else {
            report.messages_present += 1;
        }
        Ok(())
    })
}

fn import_webhooks(
    legacy: &Connection,
    tx: &rusqlite::Transaction<'_>,
    report: &mut Report,
) -> Result<(), DbError> {
    for w in db::legacy_webhooks(legacy)? {
        let (Some(id), Some(url)) = (
            w.id.filter(|s| !s.is_empty()),
            w.url.filter(|s| !s.is_empty()),
        ) else {
            report.webhooks_skipped += 1;
            continue;
        };
        if db::get_webhook(tx, &id)?.is_some() {
            report.webhooks_present += 1;
            continue;
        }
        let created_at = legacy_time(&w.created_at).unwrap_or_else(clock::now_secs);
        db::upsert_webhook(
            tx,
            &db::Webhook {
                id,
                url,
                events: legacy_events(w.events.as_deref().unwrap_or_default()),
                // Kept exactly: receivers verify with it.
                secret: w.secret.filter(|s| !s.is_empty()),
                active: legacy_flag(&w.active),
                created_at,
                updated_at: created_at,
            },
        )?;
        report.webhooks_added += 1;
    }
    Ok(())
}

/// Copies audit rows newer than `cutoff`. Rows have no id in common, so an
/// imported row counts as present when as many equal rows exist here as the
/// legacy log has up to it (equal rows in one second stay distinct).
fn import_audit(
    legacy: &Connection,
    tx: &rusqlite::Transaction<'_>,
    cutoff: i64,
    report: &mut Report,
) -> Result<(), DbError> {
    let mut seen: std::collections::HashMap<(i64, String, Option<String>, Option<String>), i64> =
        std::collections::HashMap::new();
    db::legacy_audit_logs(legacy, |a| {
        let Some(created_at) = legacy_time(&a.created_at) else {
            report.audit_expired += 1;
            return Ok(());
        };
        if created_at < cutoff {
            report.audit_expired += 1;
            return Ok(());
        }
        let entry = AuditEntry {
            action: a.action.unwrap_or_else(|| "legacy".into()),
            ip: a.ip_address,
            details: a.details.map(|d| redact_details(&d)),
            created_at,
            ..AuditEntry::default()
        };
        let key = (
            entry.created_at,
            entry.action.clone(),
            entry.details.clone(),
            entry.ip.clone(),
        );
        let nth = seen.entry(key).or_insert(0);
        *nth += 1;
        if db::count_imported_audit(tx, &entry)? >= *nth {
            report.audit_present += 1;
        } else {
            db::insert_audit(tx, &entry)?;
            report.audit_added += 1;
        }
        Ok(())
    })
}

/// Unix seconds of a legacy timestamp: SQLite's `YYYY-MM-DD HH:MM:SS` text
/// (or ISO 8601), or a number of seconds or milliseconds.
pub fn legacy_time(value: &SqlValue) -> Option<i64> {
    // Anything past the year 5138 in seconds is a millisecond count.
    let from_number = |n: i64| if n > 99_999_999_999 { n / 1000 } else { n };
    match value {
        SqlValue::Integer(n) => Some(from_number(*n)),
        SqlValue::Real(f) if f.is_finite() => Some(from_number(*f as i64)),
        SqlValue::Text(t) => clock::parse_datetime(t).or_else(|| {
            let t = t.trim();
            (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                .then(|| t.parse().ok().map(from_number))
                .flatten()
        }),
        _ => None,
    }
}

/// A row's direction, from the words Node versions used; None for
/// anything else.
fn direction(raw: Option<&str>) -> Option<Direction> {
    match raw?.trim().to_ascii_lowercase().as_str() {
        "incoming" | "in" | "inbound" | "received" => Some(Direction::Incoming),
        "outgoing" | "out" | "outbound" | "sent" => Some(Direction::Outgoing),
        _ => None,
    }
}

/// An incoming row's reply_status here, and whether the legacy value was one
/// this server knows. Unknown values become `unread`, so a person sees them.
pub fn incoming_status(raw: Option<&str>) -> (ReplyStatus, bool) {
    let word = raw
        .map(|s| s.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match ReplyStatus::parse(&word) {
        // 'sent' belongs to outgoing rows; on an incoming one it means answered.
        Some(ReplyStatus::Sent) => (ReplyStatus::Replied, true),
        Some(status) => (status, true),
        None => (ReplyStatus::Unread, word.is_empty()),
    }
}

/// The chat JID: kept when it is one; a bare number (some Node versions
/// stored `remoteJid` without its domain) becomes a direct-chat JID, which
/// replies need.
pub fn chat_jid(phone: &str) -> String {
    let phone = phone.trim();
    let digits = phone.strip_prefix('+').unwrap_or(phone);
    if !phone.contains('@') && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        format!("{digits}@s.whatsapp.net")
    } else {
        phone.to_string()
    }
}

/// Webhook events as this server stores them: a comma-separated list (some
/// Node versions stored a JSON array).
pub fn legacy_events(raw: &str) -> String {
    let raw = raw.trim();
    let list: Vec<String> = match serde_json::from_str::<Vec<String>>(raw) {
        Ok(list) if raw.starts_with('[') => list,
        _ => raw.split(',').map(str::to_string).collect(),
    };
    list.iter()
        .map(|e| e.trim())
        .filter(|e| !e.is_empty())
        .collect::<Vec<_>>()
        .join(",")
}

/// A legacy `active` value: 0, '0', 'false' and 'no' are off; anything else
/// (including NULL, the column's default being on) is on.
fn legacy_flag(value: &SqlValue) -> bool {
    match value {
        SqlValue::Integer(n) => *n != 0,
        SqlValue::Real(f) => *f != 0.0,
        SqlValue::Text(t) => !matches!(
            t.trim().to_ascii_lowercase().as_str(),
            "0" | "false" | "no" | "off"
        ),
        _ => true,
    }
}

/// The Node server logged request bodies in `details`; values under names
/// that hold secrets are replaced, since this server returns audit rows over
/// its API. Text that is not JSON, or has nothing to hide, is kept as it is.
pub fn redact_details(details: &str) -> String {
    fn is_secret(name: &str) -> bool {
        let n = name.to_ascii_lowercase().replace(['_', '-'], "");
        ["secret", "password", "apikey", "token", "authorization"]
            .iter()
            .any(|s| n.contains(s))
            || n == "key"
    }
    fn walk(v: &mut serde_json::Value) -> bool {
        match v {
            serde_json::Value::Object(map) => {
                let mut changed = false;
                for (k, v) in map.iter_mut() {
                    if is_secret(k) && !v.is_null() {
                        *v = serde_json::Value::String("[redacted]".into());
                        changed = true;
                    } else {
                        changed |= walk(v);
                    }
                }
                changed
            }
            serde_json::Value::Array(items) => {
                // Every item is walked (no short-circuit): all must be redacted.
                let mut changed = false;
                for v in items.iter_mut() {
                    changed |= walk(v);
                }
                changed
            }
            _ => false,
        }
    }
    match serde_json::from_str::<serde_json::Value>(details) {
        Ok(mut v) => {
            if walk(&mut v) {
                v.to_string()
            } else {
                details.to_string()
            }
        }
        Err(_) => details.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_of_every_node_version() {
        let t = 1_764_072_000;
        assert_eq!(
            legacy_time(&SqlValue::Text("2025-11-25 12:00:00".into())),
            Some(t)
        );
        assert_eq!(
            legacy_time(&SqlValue::Text("2025-11-25T12:00:00.123Z".into())),
            Some(t)
        );
        assert_eq!(legacy_time(&SqlValue::Integer(t)), Some(t));
        assert_eq!(legacy_time(&SqlValue::Integer(t * 1000 + 5)), Some(t));
        assert_eq!(legacy_time(&SqlValue::Text(t.to_string())), Some(t));
        assert_eq!(legacy_time(&SqlValue::Text("yesterday".into())), None);
        assert_eq!(legacy_time(&SqlValue::Null), None);
    }

    #[test]
    fn statuses_directions_and_jids() {
        assert_eq!(incoming_status(Some("read")), (ReplyStatus::Read, true));
        assert_eq!(
            incoming_status(Some("IGNORED ")),
            (ReplyStatus::Ignored, true)
        );
        assert_eq!(incoming_status(Some("sent")), (ReplyStatus::Replied, true));
        assert_eq!(incoming_status(None), (ReplyStatus::Unread, true));
        assert_eq!(
            incoming_status(Some("archived")),
            (ReplyStatus::Unread, false)
        );
        assert_eq!(direction(Some("incoming")), Some(Direction::Incoming));
        assert_eq!(direction(Some("OUTGOING")), Some(Direction::Outgoing));
        assert_eq!(direction(Some("sideways")), None);
        assert_eq!(chat_jid("15551234567"), "15551234567@s.whatsapp.net");
        assert_eq!(chat_jid("+15551234567"), "15551234567@s.whatsapp.net");
        assert_eq!(chat_jid("1203630@g.us"), "1203630@g.us");
        assert_eq!(
            chat_jid("15551234567@s.whatsapp.net"),
            "15551234567@s.whatsapp.net"
        );
    }

    #[test]
    fn events_as_list_or_json() {
        assert_eq!(
            legacy_events("message.received, message.sent"),
            "message.received,message.sent"
        );
        assert_eq!(
            legacy_events(r#"["message.received","connection.connected"]"#),
            "message.received,connection.connected"
        );
        assert_eq!(legacy_events(""), "");
        assert!(legacy_flag(&SqlValue::Integer(1)) && !legacy_flag(&SqlValue::Integer(0)));
        assert!(legacy_flag(&SqlValue::Null) && !legacy_flag(&SqlValue::Text("false".into())));
    }

    #[test]
    fn secrets_in_details_are_redacted() {
        let d = r#"{"method":"POST","body":{"url":"https://x","secret":"s3cr3t","events":["a"]}}"#;
        let r = redact_details(d);
        assert!(!r.contains("s3cr3t") && r.contains("[redacted]") && r.contains("https://x"));
        assert_eq!(
            redact_details(r#"{"method":"GET","path":"/api/v1/inbox"}"#),
            r#"{"method":"GET","path":"/api/v1/inbox"}"#
        );
        assert_eq!(redact_details("Webhook created"), "Webhook created");
        assert!(!redact_details(r#"{"apiKey":"abc"}"#).contains("abc"));
    }
}
