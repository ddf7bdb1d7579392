//! The operations: everything a person or a script can do, as typed
//! functions over a `Ctx`, under both front ends. The JSON API (`api/`) and
//! the dashboard (`dashboard/`) each parse a request, call an operation
//! here and render its result; neither calls the other, and neither reads
//! or writes the database except through these functions.
//!
//! A failed operation returns an `Error`, which each front end turns into
//! its answer in one place: `From<Error> for ApiError` (a status and
//! `{"error": …}`) and `dashboard::refused` (a notice, or the 404 page).

pub mod audit;
pub mod events;
pub mod messages;
pub mod session;
pub mod settings;
pub mod simulator;
pub mod webhooks;

use crate::audit::AuditHandle;
use crate::state::Shared;
use crate::wa::WaHandle;
use crate::webhooks::WebhookWaker;
use rusqlite::Connection;
use std::fmt;
use std::sync::Arc;

/// What every operation works with: the calling thread's own database
/// connection and the handles to the other threads. Each HTTP worker owns
/// one.
pub struct Ctx {
    pub db: Connection,
    pub shared: Arc<Shared>,
    pub wa: WaHandle,
    pub audit: AuditHandle,
    pub webhooks: WebhookWaker,
}

/// Why an operation failed. The `String`s are sentences a person or a
/// client may see.
#[derive(Debug)]
pub enum Error {
    /// The input is invalid; the sentence says how to fix it.
    Invalid(String),
    /// A file over MEDIA_MAX_BYTES (the sentence says so).
    TooLarge(String),
    /// What the operation is about does not exist (the sentence says which).
    NotFound(String),
    /// It cannot be done in the current state (already paired, the same
    /// Idempotency-Key still being answered, …).
    Conflict(String),
    /// An Idempotency-Key already used for another request.
    KeyReused(String),
    /// WhatsApp is not connected, or the event sink did not answer.
    Unavailable(String),
    /// The WhatsApp backend could not `action` ("log out", "get a pairing
    /// code"): stopped, no answer in time, or refused, as `reason` says.
    Backend {
        action: &'static str,
        reason: String,
    },
    /// WhatsApp did not take a message; the sentence is safe to show.
    SendFailed(String),
    /// A bug or an I/O failure: logged in full, shown as a generic sentence.
    Internal(String),
}

impl Error {
    /// The sentence a person or a client sees.
    pub fn message(&self) -> String {
        match self {
            Error::Invalid(m)
            | Error::TooLarge(m)
            | Error::NotFound(m)
            | Error::Conflict(m)
            | Error::KeyReused(m)
            | Error::Unavailable(m)
            | Error::SendFailed(m) => m.clone(),
            Error::Backend { action, reason } => format!("Could not {action}: {reason}"),
            Error::Internal(_) => "Internal server error".into(),
        }
    }

    /// Why, without what could not be done: a `Backend` failure's reason,
    /// any other failure's sentence.
    pub fn reason(&self) -> String {
        match self {
            Error::Backend { reason, .. } => reason.clone(),
            other => other.message(),
        }
    }

    /// Shorthand for invalid input.
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::Invalid(message.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Internal(detail) => write!(f, "internal error: {detail}"),
            other => f.write_str(&other.message()),
        }
    }
}

impl std::error::Error for Error {}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Internal(format!("database: {e}"))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Internal(format!("i/o: {e}"))
    }
}

/// A page number as the Node server read it: absent, not an integer or
/// below 1 → 1.
pub fn page_number(raw: Option<&str>) -> u32 {
    match raw.map(|s| s.trim().parse::<i64>()) {
        Some(Ok(n)) if n >= 1 => n.min(1_000_000) as u32,
        _ => 1,
    }
}

/// A page size: absent → `default`; not an integer or below 1 → 1; above
/// 100 → 100.
pub fn page_size(raw: Option<&str>, default: u32) -> u32 {
    match raw.map(|s| s.trim().parse::<i64>()) {
        None => default,
        Some(Ok(n)) => n.clamp(1, 100) as u32,
        Some(Err(_)) => 1,
    }
}

/// How many pages `total` rows make at `limit` a page.
pub fn page_count(total: i64, limit: u32) -> u32 {
    ((total.max(0) + i64::from(limit) - 1) / i64::from(limit)).clamp(0, i64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_parameters_follow_the_node_server() {
        assert_eq!(page_number(None), 1);
        assert_eq!(page_number(Some("3")), 3);
        assert_eq!(page_number(Some("0")), 1);
        assert_eq!(page_number(Some("-4")), 1);
        assert_eq!(page_number(Some("x")), 1);
        assert_eq!(page_size(None, 50), 50);
        assert_eq!(page_size(Some("500"), 50), 100);
        assert_eq!(page_size(Some("0"), 50), 1);
        assert_eq!(page_size(Some("abc"), 50), 1);
        assert_eq!(page_size(Some("20"), 50), 20);
    }

    #[test]
    fn pages_round_up() {
        assert_eq!(page_count(0, 50), 0);
        assert_eq!(page_count(50, 50), 1);
        assert_eq!(page_count(51, 50), 2);
    }

    #[test]
    fn a_backend_failure_says_what_could_not_be_done() {
        let e = Error::Backend {
            action: "log out",
            reason: "the WhatsApp backend has stopped".into(),
        };
        assert_eq!(
            e.message(),
            "Could not log out: the WhatsApp backend has stopped"
        );
        assert_eq!(
            Error::Internal("database: disk I/O error".into()).message(),
            "Internal server error"
        );
    }
}
