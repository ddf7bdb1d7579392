//! Idempotency keys: a reply request's key, bound to its request, and the
//! answer it got.

use super::DbResult;
use crate::clock;
use rusqlite::{Connection, OptionalExtension, params};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::*;

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
}
