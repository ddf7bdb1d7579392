//! State shared by every thread: the configuration, the connection status,
//! the active API key, the rate limiter and the metrics.

use crate::auth;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// Where the WhatsApp connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    /// Starting or reconnecting.
    Connecting,
    /// Not paired: showing QR codes.
    Qr,
    Connected,
    /// Dropped; the backend is reconnecting.
    Disconnected,
    /// Unlinked: a new pairing is needed.
    LoggedOut,
    /// Temporarily banned by WhatsApp: reconnects once the ban ends
    /// (`Connection::stopped_until`).
    Banned,
    /// WhatsApp refused this client version: an upgrade is needed.
    ClientOutdated,
    /// Another client took this session over (the same session running
    /// twice): stopped, so the two do not take turns.
    Replaced,
}

impl ConnState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnState::Connecting => "connecting",
            ConnState::Qr => "qr",
            ConnState::Connected => "connected",
            ConnState::Disconnected => "disconnected",
            ConnState::LoggedOut => "logged_out",
            ConnState::Banned => "banned",
            ConnState::ClientOutdated => "client_outdated",
            ConnState::Replaced => "replaced",
        }
    }
}

/// The current QR code and when it stops being valid.
#[derive(Debug, Clone)]
pub struct QrCode {
    pub code: String,
    pub expires: Instant,
}

/// The connection as the API reports it.
#[derive(Debug, Clone)]
pub struct Connection {
    pub state: ConnState,
    pub qr: Option<QrCode>,
    /// Our own JID once paired.
    pub me: Option<String>,
    /// Whether a paired session is stored (no new scan needed).
    pub session_exists: bool,
    /// The last disconnect reason, if any.
    pub last_error: Option<String>,
    /// When a temporary ban ends (Unix seconds), while `Banned`.
    pub stopped_until: Option<i64>,
}

impl Connection {
    /// The QR code, if one is showing and still valid.
    pub fn live_qr(&self) -> Option<&QrCode> {
        self.qr
            .as_ref()
            .filter(|q| q.expires > Instant::now() && self.state == ConnState::Qr)
    }
}

/// Everything the threads share. Built once by `lib::serve`, held in an `Arc`.
pub struct Shared {
    pub config: Config,
    pub connection: RwLock<Connection>,
    /// Hex SHA-256 of the active API key.
    api_key_hash: RwLock<String>,
    /// `auth::password_hash` of the dashboard password.
    dashboard_password_hash: RwLock<String>,
    /// Key for the dashboard's CSRF tokens (random per process).
    pub csrf_key: [u8; 32],
    pub limiter: RateLimiter,
    pub metrics: Metrics,
    pub started: Instant,
    /// The open event streams (`GET /api/v1/events`).
    pub streams: Arc<crate::events::Streams>,
}

impl Shared {
    pub fn new(config: Config, api_key_hash: String, dashboard_password_hash: String) -> Shared {
        Shared {
            limiter: RateLimiter::new(config.rate_limit_per_minute),
            streams: Arc::new(crate::events::Streams::new(config.event_streams_max)),
            connection: RwLock::new(Connection {
                state: ConnState::Connecting,
                qr: None,
                me: None,
                session_exists: false,
                last_error: None,
                stopped_until: None,
            }),
            config,
            api_key_hash: RwLock::new(api_key_hash),
            dashboard_password_hash: RwLock::new(dashboard_password_hash),
            csrf_key: auth::random_bytes::<32>(),
            metrics: Metrics::default(),
            started: Instant::now(),
        }
    }

    /// A snapshot of the connection.
    pub fn connection(&self) -> Connection {
        self.connection
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Changes the connection under its lock.
    pub fn update_connection(&self, f: impl FnOnce(&mut Connection)) {
        f(&mut self.connection.write().unwrap_or_else(|e| e.into_inner()));
    }

    /// Whether a paired session exists (connected or not): a new pairing
    /// needs a logout first.
    pub fn session_paired(&self) -> bool {
        let c = self.connection();
        c.state == ConnState::Connected || c.session_exists
    }

    /// Whether `presented` is the active API key (constant time).
    pub fn api_key_matches(&self, presented: &str) -> bool {
        let presented = auth::api_key_hash(presented);
        let active = self.api_key_hash.read().unwrap_or_else(|e| e.into_inner());
        auth::ct_eq(presented.as_bytes(), active.as_bytes())
    }

    /// The bucket name of the active key for the rate limiter (a hash
    /// prefix: never the key itself).
    pub fn api_key_bucket(&self) -> String {
        let active = self.api_key_hash.read().unwrap_or_else(|e| e.into_inner());
        format!("key:{}", &active[..16])
    }

    /// Replaces the active key (after the database has been updated);
    /// whether it changed.
    pub fn set_api_key_hash(&self, hash: String) -> bool {
        let mut active = self.api_key_hash.write().unwrap_or_else(|e| e.into_inner());
        let changed = *active != hash;
        *active = hash;
        changed
    }

    /// Replaces the dashboard password (after the database has been
    /// updated); whether it changed.
    pub fn set_dashboard_password_hash(&self, hash: String) -> bool {
        let mut current = self
            .dashboard_password_hash
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let changed = *current != hash;
        *current = hash;
        changed
    }

    /// Whether `user`/`password` are the dashboard credentials (constant time).
    pub fn dashboard_login_matches(&self, user: &str, password: &str) -> bool {
        let user_ok = auth::ct_eq(user.as_bytes(), self.config.dashboard_user.as_bytes());
        let stored = self
            .dashboard_password_hash
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let password_ok = auth::password_matches(password, &stored);
        user_ok & password_ok
    }
}
