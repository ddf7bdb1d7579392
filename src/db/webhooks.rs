//! Webhooks and their deliveries: subscriptions, the durable outbox, each
//! attempt, and the health and log the dashboard shows.

use super::DbResult;
use crate::clock;
use crate::status::HookDeliveryStatus;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde_json::{Value, json};

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

/// Writes `event` to the event log and one delivery of it to every active
/// webhook subscribed to it, inside the caller's transaction (the durable
/// outbox): the event and its deliveries commit or vanish with their cause.
/// The deliveries point at the event row, which holds the payload. Returns
/// how many deliveries.
pub fn enqueue_deliveries(tx: &Transaction<'_>, event: &str, payload: &str) -> DbResult<usize> {
    let event_id = super::insert_event(tx, event, payload, clock::now_secs())?;
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
        write_delivery(tx, webhook_id, event, DeliveryPayload::Event(event_id))?;
    }
    Ok(hooks.len())
}

/// Writes one pending delivery carrying its own payload (one that is no
/// event, such as the test button's), due now; returns its public id.
pub fn insert_delivery(
    conn: &Connection,
    webhook_id: &str,
    event: &str,
    payload: &str,
) -> DbResult<String> {
    write_delivery(conn, webhook_id, event, DeliveryPayload::Own(payload))
}

/// Where a delivery's body is kept.
enum DeliveryPayload<'a> {
    /// In the event log, under this id.
    Event(i64),
    /// In the delivery row itself.
    Own(&'a str),
}

fn write_delivery(
    conn: &Connection,
    webhook_id: &str,
    event: &str,
    payload: DeliveryPayload<'_>,
) -> DbResult<String> {
    let id = format!("msg_{}", crate::auth::uuid_v4().replace('-', ""));
    let now = clock::now_secs();
    let (own, event_id) = match payload {
        DeliveryPayload::Event(event_id) => ("", Some(event_id)),
        DeliveryPayload::Own(payload) => (payload, None),
    };
    conn.prepare_cached(
        "INSERT INTO webhook_deliveries (id, webhook_id, event, payload, event_id, next_attempt_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
    )?
    .execute(params![id, webhook_id, event, own, event_id, clock::now_millis(), now])?;
    Ok(id)
}

/// A delivery's body: its event's payload, or its own.
const PAYLOAD: &str =
    "coalesce((SELECT e.payload FROM events e WHERE e.id = d.event_id), d.payload)";

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
        .prepare_cached(&format!(
            "SELECT d.seq, d.id, d.event, {PAYLOAD}, d.next_attempt_at FROM webhook_deliveries d
             WHERE d.webhook_id = ?1 AND d.status = 'pending' ORDER BY d.seq {}",
            super::limit_offset(i64::try_from(limit).unwrap_or(i64::MAX), 0)
        ))?
        .query_map([webhook_id], |r| {
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
pub fn finish_delivery(
    conn: &Connection,
    delivery_seq: i64,
    status: HookDeliveryStatus,
) -> DbResult<()> {
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
    pub status: HookDeliveryStatus,
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
            "next_attempt_at": (self.status == HookDeliveryStatus::Pending).then(|| clock::format_iso_millis(self.next_attempt_at)),
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
            &format!("SELECT d.seq, d.id, d.webhook_id, d.event, {PAYLOAD}, d.status, d.next_attempt_at, d.created_at, d.updated_at
             FROM webhook_deliveries d WHERE d.webhook_id = ?1 ORDER BY d.seq DESC {}",
             super::limit_offset(limit.into(), super::page_offset(page, limit))),
        )?
        .query_map([webhook_id], |r| {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::*;

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
}
