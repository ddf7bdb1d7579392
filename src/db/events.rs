//! The event log: every event webhooks carry, by a strictly increasing id,
//! written in the transaction of its cause; read by the event stream and
//! by webhook deliveries (which point at it), pruned after its retention.

use super::DbResult;
use rusqlite::{Connection, Transaction, params};

/// One event as the stream sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub id: i64,
    pub event: String,
    /// The JSON body a webhook receives.
    pub payload: String,
}

/// Appends an event inside the caller's transaction; returns its id.
pub fn insert_event(tx: &Transaction<'_>, event: &str, payload: &str, now: i64) -> DbResult<i64> {
    tx.prepare_cached("INSERT INTO events (event, payload, created_at) VALUES (?1, ?2, ?3)")?
        .execute(params![event, payload, now])?;
    Ok(tx.last_insert_rowid())
}

/// Up to `limit` events after `after`, oldest first; with `names`, only
/// events of those exact names.
pub fn events_after(
    conn: &Connection,
    after: i64,
    names: Option<&[String]>,
    limit: usize,
) -> DbResult<Vec<EventRow>> {
    let row = |r: &rusqlite::Row<'_>| {
        Ok(EventRow {
            id: r.get(0)?,
            event: r.get(1)?,
            payload: r.get(2)?,
        })
    };
    let limit = super::limit_offset(i64::try_from(limit).unwrap_or(i64::MAX), 0);
    match names {
        None => conn
            .prepare_cached(&format!(
                "SELECT id, event, payload FROM events WHERE id > ?1 ORDER BY id {limit}"
            ))?
            .query_map([after], row)?
            .collect(),
        Some(names) => {
            // One cached statement whatever the list: the names travel as a
            // JSON array.
            let names = serde_json::to_string(names).unwrap_or_else(|_| "[]".into());
            conn.prepare_cached(&format!(
                "SELECT id, event, payload FROM events
                 WHERE id > ?1 AND event IN (SELECT value FROM json_each(?2))
                 ORDER BY id {limit}"
            ))?
            .query_map(params![after, names], row)?
            .collect()
        }
    }
}

/// The highest event id ever written (0 before the first), pruned or not.
pub fn last_event_id(conn: &Connection) -> DbResult<i64> {
    conn.prepare_cached(
        "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)",
    )?
    .query_row([], |r| r.get(0))
}

/// Deletes events written before `before` (Unix seconds) that no webhook
/// delivery refers to any more; returns how many.
pub fn prune_events(conn: &Connection, before: i64) -> DbResult<usize> {
    conn.prepare_cached(
        "DELETE FROM events WHERE created_at < ?1
         AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = events.id)",
    )?
    .execute([before])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::*;

    fn hook(id: &str, events: &str) -> Webhook {
        Webhook {
            id: id.into(),
            url: "http://127.0.0.1:1/".into(),
            events: events.into(),
            secret: None,
            active: true,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn enqueue(conn: &mut Connection, event: &str, payload: &str) -> usize {
        let tx = conn.transaction().unwrap();
        let n = enqueue_deliveries(&tx, event, payload).unwrap();
        tx.commit().unwrap();
        n
    }

    #[test]
    fn every_event_is_logged_in_order_whether_or_not_a_webhook_wants_it() {
        let mut conn = open_memory().unwrap();
        assert_eq!(last_event_id(&conn).unwrap(), 0);
        upsert_webhook(&conn, &hook("a", "message.sent")).unwrap();
        assert_eq!(enqueue(&mut conn, "message.received", "{\"n\":1}"), 0);
        assert_eq!(enqueue(&mut conn, "message.sent", "{\"n\":2}"), 1);
        assert_eq!(enqueue(&mut conn, "message.received", "{\"n\":3}"), 0);
        let all = events_after(&conn, 0, None, 10).unwrap();
        let ids: Vec<i64> = all.iter().map(|e| e.id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert_eq!(
            all.iter().map(|e| e.payload.as_str()).collect::<Vec<_>>(),
            ["{\"n\":1}", "{\"n\":2}", "{\"n\":3}"]
        );
        assert_eq!(last_event_id(&conn).unwrap(), ids[2]);
        // After an id, and by name.
        assert_eq!(events_after(&conn, ids[0], None, 10).unwrap(), all[1..]);
        assert_eq!(events_after(&conn, ids[0], None, 1).unwrap(), all[1..2]);
        let received = ["message.received".to_string()];
        assert_eq!(
            events_after(&conn, 0, Some(&received), 10).unwrap(),
            [all[0].clone(), all[2].clone()]
        );
        assert!(events_after(&conn, 0, Some(&[]), 10).unwrap().is_empty());
    }

    #[test]
    fn an_event_rolled_back_with_its_cause_is_not_logged() {
        let mut conn = open_memory().unwrap();
        let tx = conn.transaction().unwrap();
        enqueue_deliveries(&tx, "message.received", "{}").unwrap();
        drop(tx);
        assert!(events_after(&conn, 0, None, 10).unwrap().is_empty());
    }

    #[test]
    fn a_delivery_posts_its_event_payload_stored_once() {
        let mut conn = open_memory().unwrap();
        upsert_webhook(&conn, &hook("a", "message.received")).unwrap();
        upsert_webhook(&conn, &hook("b", "message.received")).unwrap();
        let body = "{\"event\":\"message.received\",\"data\":{}}";
        assert_eq!(enqueue(&mut conn, "message.received", body), 2);
        let copies: i64 = conn
            .query_row(
                "SELECT count(*) FROM webhook_deliveries WHERE payload = ?1",
                [body],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(copies, 0, "the payload is kept in the event row only");
        for webhook in ["a", "b"] {
            let due = pending_deliveries(&conn, webhook, 10).unwrap();
            assert_eq!(due.len(), 1);
            assert_eq!(due[0].payload, body);
            let (log, _) = list_deliveries(&conn, webhook, 1, 10).unwrap();
            assert_eq!(log[0].payload, body);
        }
    }

    #[test]
    fn pruning_keeps_recent_events_and_those_deliveries_need() {
        let mut conn = open_memory().unwrap();
        upsert_webhook(&conn, &hook("a", "message.sent")).unwrap();
        enqueue(&mut conn, "message.received", "{}");
        enqueue(&mut conn, "message.sent", "{}");
        enqueue(&mut conn, "message.received", "{}");
        let ids: Vec<i64> = events_after(&conn, 0, None, 10)
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        // The first two are old; the second is still a delivery's payload.
        conn.execute(
            "UPDATE events SET created_at = 0 WHERE id IN (?1, ?2)",
            [ids[0], ids[1]],
        )
        .unwrap();
        assert_eq!(prune_events(&conn, 100).unwrap(), 1);
        let left: Vec<i64> = events_after(&conn, 0, None, 10)
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(left, ids[1..]);
        // Once its webhook is gone, nothing holds it.
        assert!(delete_webhook(&conn, "a").unwrap());
        assert_eq!(prune_events(&conn, 100).unwrap(), 1);
        assert_eq!(events_after(&conn, 0, None, 10).unwrap().len(), 1);
    }

    #[test]
    fn ids_are_never_reused_after_the_newest_are_pruned() {
        let mut conn = open_memory().unwrap();
        enqueue(&mut conn, "message.received", "{}");
        enqueue(&mut conn, "message.received", "{}");
        let last = last_event_id(&conn).unwrap();
        conn.execute("UPDATE events SET created_at = 0", [])
            .unwrap();
        assert_eq!(prune_events(&conn, 100).unwrap(), 2);
        assert_eq!(last_event_id(&conn).unwrap(), last);
        enqueue(&mut conn, "message.received", "{}");
        let next = events_after(&conn, 0, None, 10).unwrap();
        assert_eq!(next.len(), 1);
        assert!(next[0].id > last);
    }
}
