//! API keys (stored as hashes) and settings.

use super::DbResult;
use crate::clock;
use rusqlite::{Connection, OptionalExtension, params};

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

/// SQLite's `data_version`: it changes when another connection commits,
/// so a reader can tell cheaply whether anything it follows may have changed.
pub fn data_version(conn: &Connection) -> DbResult<i64> {
    conn.pragma_query_value(None, "data_version", |r| r.get(0))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::*;

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
}
