//! The API key and the dashboard password: what start-up decides (a generated
//! secret is stored and announced only once the server is up), the
//! `rotate-key` and `set-password` commands, and the thread that makes a
//! running server follow a change another process made to its database.

use crate::config::Config;
use crate::state::Shared;
use crate::threads::Ends;
use crate::{auth, db};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use rusqlite::Connection;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Setting holding the dashboard password hash (generated or set with
/// `set-password`; a `DASHBOARD_PASSWORD` from the environment is never stored).
pub const SETTING_DASHBOARD_PASSWORD: &str = "dashboard.password_hash";

/// How often a running server looks for a key or password changed by
/// `rotate-key`, `set-password` or another worker.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// The first characters of a key, to tell keys apart (never enough to use).
pub fn key_prefix(key: &str) -> String {
    key.chars().take(6).collect()
}

/// The secrets `serve` starts with. `prepare` only reads; `commit` writes
/// what is new and announces what was generated, once everything that can
/// fail at start-up has succeeded, so a failed start uses nothing up.
pub struct Startup {
    pub api_key_hash: String,
    pub password_hash: String,
    /// A key to make active: (hash, prefix).
    store_key: Option<(String, String)>,
    /// A generated key, announced at commit.
    generated_key: Option<String>,
    /// A generated password, announced at commit (its hash is `password_hash`).
    generated_password: Option<String>,
}

/// Decides the API key and password hashes for `config` from the database,
/// generating what is missing, without writing anything.
pub fn prepare(conn: &Connection, config: &Config) -> Result<Startup, String> {
    let key_err = |e: rusqlite::Error| format!("could not read the API key: {e}");
    let stored_key = db::active_api_key_hash(conn).map_err(key_err)?;
    let (api_key_hash, store_key, generated_key) = match (&config.api_key, stored_key) {
        (Some(key), stored) => {
            let hash = auth::api_key_hash(key);
            let store =
                (stored.as_deref() != Some(hash.as_str())).then(|| (hash.clone(), key_prefix(key)));
            (hash, store, None)
        }
        (None, Some(hash)) => (hash, None, None),
        (None, None) => {
            let key = auth::generate_api_key();
            let hash = auth::api_key_hash(&key);
            (hash.clone(), Some((hash, key_prefix(&key))), Some(key))
        }
    };
    let (password_hash, generated_password) = match &config.dashboard_password {
        // Kept only in memory: the environment holds it.
        Some(password) => (new_password_hash(password), None),
        None => {
            match db::get_setting(conn, SETTING_DASHBOARD_PASSWORD)
                .map_err(|e| format!("could not read the dashboard password: {e}"))?
            {
                Some(hash) => (hash, None),
                None => {
                    let password = auth::generate_password();
                    (new_password_hash(&password), Some(password))
                }
            }
        }
    };
    Ok(Startup {
        api_key_hash,
        password_hash,
        store_key,
        generated_key,
        generated_password,
    })
}

fn new_password_hash(password: &str) -> String {
    auth::password_hash(password, &auth::hex(&auth::random_bytes::<16>()))
}

impl Startup {
    /// Stores what `prepare` decided and announces generated secrets (the
    /// one time they are shown).
    pub fn commit(self, conn: &mut Connection, config: &Config) -> Result<(), String> {
        if let Some((hash, prefix)) = &self.store_key {
            db::set_active_api_key(conn, hash, prefix)
                .map_err(|e| format!("could not store the API key: {e}"))?;
            if self.generated_key.is_none() {
                log::info!("API key: using API_KEY from the environment");
            }
        }
        if self.generated_password.is_some() {
            db::set_setting(conn, SETTING_DASHBOARD_PASSWORD, &self.password_hash)
                .map_err(|e| format!("could not store the dashboard password: {e}"))?;
        }
        if let Some(key) = &self.generated_key {
            announce(
                "API key",
                key,
                "send it as the X-API-Key header. Lost it? `whatsapp-api rotate-key` makes a new one.",
            );
        }
        if let Some(password) = &self.generated_password {
            announce(
                &format!("dashboard password for user {:?}", config.dashboard_user),
                password,
                "set DASHBOARD_PASSWORD to choose your own. Lost it? `whatsapp-api set-password`.",
            );
        }
        Ok(())
    }
}

/// The one place a secret is written to the log: at its generation.
fn announce(what: &str, secret: &str, hint: &str) {
    let line = "=".repeat(72);
    log::warn!(
        "\n{line}\nGenerated {what} (shown once, only now - store it):\n\n    {secret}\n\n{hint}\n{line}"
    );
}

/// `rotate-key`: makes a new key the active one and returns it (the caller
/// prints it, once). A running server follows within `FOLLOW_EVERY`.
pub fn rotate_key(conn: &mut Connection) -> Result<String, String> {
    let key = auth::generate_api_key();
    db::set_active_api_key(conn, &auth::api_key_hash(&key), &key_prefix(&key))
        .map_err(|e| format!("could not store the new API key: {e}"))?;
    Ok(key)
}

/// `set-password`: stores `password`'s hash as the dashboard password.
pub fn set_password(conn: &Connection, password: &str) -> Result<(), String> {
    db::set_setting(
        conn,
        SETTING_DASHBOARD_PASSWORD,
        &new_password_hash(password),
    )
    .map_err(|e| format!("could not store the dashboard password: {e}"))
}

/// Starts the thread that keeps `shared`'s API key and (unless it comes from
/// `DASHBOARD_PASSWORD`) password hash equal to the database's. It reads them
/// only after `PRAGMA data_version` says another connection committed. It
/// stops when `stop`'s sender is dropped.
pub fn spawn_follower(
    conn: Connection,
    shared: Arc<Shared>,
    stop: Receiver<()>,
    ends: &Ends,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("secrets".into())
        .spawn(ends.report(move || {
            let mut seen: Option<i64> = None;
            while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(FOLLOW_EVERY) {
                let version = db::data_version(&conn).ok();
                if version.is_some() && version == seen {
                    continue;
                }
                seen = version;
                if let Err(e) = follow(&conn, &shared) {
                    log::warn!("could not read the API key or password: {e}");
                }
            }
        }))
}

fn follow(conn: &Connection, shared: &Shared) -> rusqlite::Result<()> {
    if let Some(hash) = db::active_api_key_hash(conn)?
        && shared.set_api_key_hash(hash)
    {
        log::info!("API key: a new key is active; the previous one no longer works");
    }
    if shared.config.dashboard_password.is_none()
        && let Some(hash) = db::get_setting(conn, SETTING_DASHBOARD_PASSWORD)?
        && shared.set_dashboard_password_hash(hash)
    {
        log::info!("dashboard password: a new password is active");
    }
    Ok(())
}
