//! Message rows: the row type and its JSON, replies from their storing to
//! WhatsApp's answer, triage statuses, and rows written by a bulk loader.

use super::DbResult;
use crate::clock;
use crate::status::{DeliveryStatus, Direction, ReplyStatus, Source};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde_json::Value;

/// A stored message, as the API and the dashboard show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub seq: i64,
    pub id: String,
    pub wa_id: Option<String>,
    pub direction: Direction,
    pub phone: String,
    pub sender_jid: String,
    pub push_name: Option<String>,
    pub message: String,
    pub reply_status: ReplyStatus,
    pub delivery_status: Option<DeliveryStatus>,
    pub media_type: Option<String>,
    pub media_url: Option<String>,
    pub media_mime: Option<String>,
    pub media_size: Option<i64>,
    pub media_sha256: Option<String>,
    pub media_error: Option<String>,
    pub in_reply_to: Option<String>,
    pub created_at: i64,
    pub sender_lid: Option<String>,
    /// Outgoing: `api`, `dashboard` or `phone`.
    pub source: Option<Source>,
    /// `view_once` / `undecryptable` while the text is a stand-in.
    pub placeholder: Option<String>,
    /// When this server stored it (rows from before schema 3: created_at).
    pub received_at: i64,
    /// When its author last edited it.
    pub edited_at: Option<i64>,
    /// When it was deleted for everyone (its text is then `[Deleted]`).
    pub deleted_at: Option<i64>,
    /// The current reaction of each sender; filled by `attach_reactions`
    /// (empty until then).
    pub reactions: Vec<super::Reaction>,
}

pub(super) const MESSAGE_COLUMNS: &str = "seq, id, wa_id, direction, phone, sender_jid, push_name, message, \
     reply_status, delivery_status, media_type, media_url, media_mime, media_size, media_sha256, \
     media_error, in_reply_to, created_at, sender_lid, source, placeholder, \
     coalesce(received_at, created_at), edited_at, deleted_at";

/// `MESSAGE_COLUMNS` of the table aliased `m`.
pub(super) const MESSAGE_COLUMNS_M: &str = "m.seq, m.id, m.wa_id, m.direction, m.phone, m.sender_jid, \
     m.push_name, m.message, m.reply_status, m.delivery_status, m.media_type, m.media_url, \
     m.media_mime, m.media_size, m.media_sha256, m.media_error, m.in_reply_to, m.created_at, \
     m.sender_lid, m.source, m.placeholder, coalesce(m.received_at, m.created_at), m.edited_at, \
     m.deleted_at";

/// How many columns `MESSAGE_COLUMNS` reads (a query's own columns follow).
pub(super) const MESSAGE_COLUMN_COUNT: usize = 24;

pub(super) fn message_from_row(r: &rusqlite::Row<'_>) -> DbResult<Message> {
    Ok(Message {
        seq: r.get(0)?,
        id: r.get(1)?,
        wa_id: r.get(2)?,
        direction: r.get(3)?,
        phone: r.get(4)?,
        sender_jid: r.get(5)?,
        push_name: r.get(6)?,
        message: r.get(7)?,
        reply_status: r.get(8)?,
        delivery_status: r.get(9)?,
        media_type: r.get(10)?,
        media_url: r.get(11)?,
        media_mime: r.get(12)?,
        media_size: r.get(13)?,
        media_sha256: r.get(14)?,
        media_error: r.get(15)?,
        in_reply_to: r.get(16)?,
        created_at: r.get(17)?,
        sender_lid: r.get(18)?,
        source: r.get(19)?,
        placeholder: r.get(20)?,
        received_at: r.get(21)?,
        edited_at: r.get(22)?,
        deleted_at: r.get(23)?,
        reactions: Vec::new(),
    })
}

impl Message {
    /// The API's JSON for a message: the Node server's fields, then extras.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The API's JSON for a message, written straight to the output (an inbox
/// page is 50 of these: no intermediate `Value` tree, which was most of the
/// cost of a page). Keys in alphabetical order, byte for byte what `json!`
/// (a sorted map) produced before.
impl serde::Serialize for Message {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(22))?;
        m.serialize_entry("created_at", &clock::Datetime(self.created_at))?;
        m.serialize_entry("deleted_at", &self.deleted_at.map(clock::Datetime))?;
        m.serialize_entry("delivery_status", &self.delivery_status)?;
        m.serialize_entry("direction", &self.direction)?;
        m.serialize_entry("edited_at", &self.edited_at.map(clock::Datetime))?;
        m.serialize_entry("id", &self.id)?;
        m.serialize_entry("in_reply_to", &self.in_reply_to)?;
        m.serialize_entry("media_error", &self.media_error)?;
        m.serialize_entry("media_mime", &self.media_mime)?;
        m.serialize_entry("media_size", &self.media_size)?;
        m.serialize_entry("media_type", &self.media_type)?;
        m.serialize_entry("media_url", &self.media_url)?;
        m.serialize_entry("message", &self.message)?;
        m.serialize_entry("phone", &self.phone)?;
        m.serialize_entry("push_name", &self.push_name)?;
        m.serialize_entry("reactions", &self.reactions)?;
        m.serialize_entry("received_at", &clock::Datetime(self.received_at))?;
        m.serialize_entry("reply_status", &self.reply_status)?;
        m.serialize_entry("sender_jid", &self.sender_jid)?;
        m.serialize_entry("sender_lid", &self.sender_lid)?;
        m.serialize_entry("source", &self.source)?;
        m.serialize_entry("wa_id", &self.wa_id)?;
        m.end()
    }
}

/// What an outgoing row records.
pub struct Outgoing<'a> {
    pub id: &'a str,
    pub wa_id: &'a str,
    pub phone: &'a str,
    pub sender_jid: &'a str,
    pub text: &'a str,
    pub in_reply_to: &'a str,
    /// `api` or `dashboard`.
    pub source: Source,
    /// The request's Idempotency-Key, if it had one.
    pub idempotency_key: Option<&'a str>,
    /// The file it carries, stored under `media/`.
    pub media: Option<&'a crate::wa::MediaInfo>,
    pub created_at: i64,
}

/// Stores a reply before it is sent (delivery status `pending`): its
/// WhatsApp id is chosen and kept first, so that a retry sends the same id
/// and a receipt finds the row whenever it comes.
pub fn insert_outgoing(tx: &Transaction<'_>, o: &Outgoing<'_>) -> DbResult<Message> {
    let media = super::received::MediaColumns::of(o.media);
    tx.prepare_cached(
        "INSERT INTO messages (id, wa_id, direction, phone, sender_jid, message, reply_status,
             delivery_status, in_reply_to, source, idempotency_key, created_at, received_at,
             media_type, media_url, media_mime, media_size, media_sha256)
         VALUES (?1, ?2, 'outgoing', ?3, ?4, ?5, 'sent', 'pending', ?6, ?7, ?8, ?9, ?9,
             ?10, ?11, ?12, ?13, ?14)",
    )?
    .execute(params![
        o.id,
        o.wa_id,
        o.phone,
        o.sender_jid,
        o.text,
        o.in_reply_to,
        o.source,
        o.idempotency_key,
        o.created_at,
        media.kind,
        media.url,
        media.mime,
        media.size,
        media.sha256
    ])?;
    get_message(tx, o.id).map(|m| m.expect("the row was just inserted"))
}

/// The reply to `in_reply_to` an earlier request with this Idempotency-Key
/// stored, if any.
pub fn reply_for_key(conn: &Connection, in_reply_to: &str, key: &str) -> DbResult<Option<Message>> {
    conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages
         WHERE in_reply_to = ?1 AND idempotency_key = ?2 AND direction = 'outgoing'"
    ))?
    .query_row(params![in_reply_to, key], message_from_row)
    .optional()
}

/// A failed reply is about to be sent again (same id): pending once more.
pub fn retry_outgoing(conn: &Connection, id: &str) -> DbResult<()> {
    conn.prepare_cached(
        "UPDATE messages SET delivery_status = 'pending'
         WHERE id = ?1 AND direction = 'outgoing' AND delivery_status = 'failed'",
    )?
    .execute([id])?;
    Ok(())
}

/// WhatsApp accepted (acknowledged, or already delivered) a pending message
/// of ours: it moves to `status` and the message it answers becomes
/// `replied`. The row when this happened now, None when it was not pending
/// (accepted before, or not ours).
pub fn accept_outgoing(
    tx: &Transaction<'_>,
    wa_id: &str,
    status: DeliveryStatus,
) -> DbResult<Option<Message>> {
    let id: Option<String> = tx
        .prepare_cached(
            "UPDATE messages SET delivery_status = ?2
             WHERE wa_id = ?1 AND direction = 'outgoing' AND delivery_status = 'pending'
             RETURNING id",
        )?
        .query_row(params![wa_id, status], |r| r.get(0))
        .optional()?;
    let Some(id) = id else { return Ok(None) };
    let row = get_message(tx, &id)?.expect("the row was just updated");
    if let Some(original) = &row.in_reply_to {
        set_reply_status(tx, original, ReplyStatus::Replied)?;
    }
    Ok(Some(row))
}

/// WhatsApp refused a pending message of ours (or it could not be sent):
/// `failed`. The row when it changed.
pub fn fail_outgoing(tx: &Transaction<'_>, wa_id: &str) -> DbResult<Option<Message>> {
    let id: Option<String> = tx
        .prepare_cached(
            "UPDATE messages SET delivery_status = 'failed'
             WHERE wa_id = ?1 AND direction = 'outgoing' AND delivery_status = 'pending'
             RETURNING id",
        )?
        .query_row([wa_id], |r| r.get(0))
        .optional()?;
    match id {
        Some(id) => get_message(tx, &id),
        None => Ok(None),
    }
}

/// What a quoted reply needs of the original beyond its text: its protobuf
/// and its author exactly as WhatsApp named it (a LID stays a LID).
pub fn quote_source(conn: &Connection, id: &str) -> DbResult<(Option<Vec<u8>>, Option<String>)> {
    Ok(conn
        .prepare_cached("SELECT raw, wa_sender FROM messages WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((None, None)))
}

/// A complete message row as a bulk loader writes it (the benchmark corpus):
/// unlike `insert_incoming`, every triage field is given, and nothing is read back.
#[derive(Debug, Clone, Default)]
pub struct NewMessage<'a> {
    pub id: &'a str,
    pub wa_id: Option<&'a str>,
    pub direction: Direction,
    pub phone: &'a str,
    pub sender_jid: &'a str,
    pub push_name: Option<&'a str>,
    pub message: &'a str,
    pub reply_status: ReplyStatus,
    pub delivery_status: Option<DeliveryStatus>,
    pub media_type: Option<&'a str>,
    pub in_reply_to: Option<&'a str>,
    pub created_at: i64,
}

/// Writes one row inside the caller's transaction (the triggers keep counts,
/// chats and the search index as for any other insert).
pub fn insert_message_row(tx: &Transaction<'_>, m: &NewMessage<'_>) -> DbResult<()> {
    tx.prepare_cached(
        "INSERT INTO messages (id, wa_id, direction, phone, sender_jid, push_name, message,
             reply_status, delivery_status, media_type, in_reply_to, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        m.id,
        m.wa_id,
        m.direction,
        m.phone,
        m.sender_jid,
        m.push_name,
        m.message,
        m.reply_status,
        m.delivery_status,
        m.media_type,
        m.in_reply_to,
        m.created_at
    ])?;
    Ok(())
}

/// One message by public id.
pub fn get_message(conn: &Connection, id: &str) -> DbResult<Option<Message>> {
    conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1"
    ))?
    .query_row([id], message_from_row)
    .optional()
}

/// Sets one message's reply_status; false when there is no such message.
pub fn set_reply_status(conn: &Connection, id: &str, status: ReplyStatus) -> DbResult<bool> {
    Ok(conn
        .prepare_cached("UPDATE messages SET reply_status = ?2 WHERE id = ?1")?
        .execute(params![id, status])?
        > 0)
}

/// Sets the reply_status of many messages in one transaction; returns how
/// many rows exist among `ids`.
pub fn set_reply_status_many(
    conn: &mut Connection,
    ids: &[String],
    status: ReplyStatus,
) -> DbResult<usize> {
    let tx = conn.transaction()?;
    let mut updated = 0;
    {
        let mut stmt = tx.prepare_cached("UPDATE messages SET reply_status = ?2 WHERE id = ?1")?;
        for id in ids {
            updated += stmt.execute(params![id, status])?;
        }
    }
    tx.commit()?;
    Ok(updated)
}

/// Moves one outgoing message's delivery status forward to `status` (never
/// backwards, never out of `failed`); the row when it moved.
pub fn advance_delivery(
    tx: &Transaction<'_>,
    wa_id: &str,
    status: DeliveryStatus,
) -> DbResult<Option<Message>> {
    let id: Option<String> = tx
        .prepare_cached(
            "UPDATE messages SET delivery_status = ?2
             WHERE wa_id = ?1 AND direction = 'outgoing'
               AND (CASE delivery_status WHEN 'pending' THEN 0 WHEN 'sent' THEN 1
                    WHEN 'delivered' THEN 2 WHEN 'read' THEN 3 ELSE 4 END) < ?3
             RETURNING id",
        )?
        .query_row(params![wa_id, status, status.rank()], |r| r.get(0))
        .optional()?;
    match id {
        Some(id) => get_message(tx, &id),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::*;
    use crate::db::*;
    use crate::status::{DeliveryStatus, ReplyStatus, Source};
    use serde_json::json;

    #[test]
    fn message_json_is_the_same_as_the_json_macro_form() {
        let mut conn = open_memory().unwrap();
        let m = store(&mut conn, "a", &incoming("W1", "1@s", "hé \"x\" %"), 10).unwrap();
        let old = json!({
            "id": m.id, "direction": m.direction, "phone": m.phone, "message": m.message,
            "reply_status": m.reply_status, "media_type": m.media_type, "media_url": m.media_url,
            "created_at": clock::format_datetime(m.created_at), "wa_id": m.wa_id,
            "sender_jid": m.sender_jid, "push_name": m.push_name,
            "delivery_status": m.delivery_status, "media_mime": m.media_mime,
            "media_size": m.media_size, "media_error": m.media_error, "in_reply_to": m.in_reply_to,
            "received_at": clock::format_datetime(m.received_at), "sender_lid": m.sender_lid,
            "source": m.source, "edited_at": null, "deleted_at": null, "reactions": [],
        });
        assert_eq!(serde_json::to_string(&m).unwrap(), old.to_string());
    }

    /// A reply is stored pending before it is sent, so its receipt finds it
    /// even when it comes before WhatsApp's acknowledgement: the receipt
    /// accepts it (the original becomes replied) and the late acknowledgement
    /// changes nothing.
    #[test]
    fn an_early_receipt_accepts_a_pending_reply() {
        let mut conn = open_memory().unwrap();
        receive(&mut conn, "q", &incoming_at("1", PN, 10), 10);
        let tx = conn.transaction().unwrap();
        let row = insert_outgoing(
            &tx,
            &Outgoing {
                id: "r",
                wa_id: "OUT1",
                phone: PN,
                sender_jid: "",
                text: "on its way",
                in_reply_to: "q",
                source: Source::Api,
                idempotency_key: Some("k"),
                media: None,
                created_at: 11,
            },
        )
        .unwrap();
        assert_eq!(row.delivery_status, Some(DeliveryStatus::Pending));
        let accepted = accept_outgoing(&tx, "OUT1", DeliveryStatus::Delivered).unwrap();
        assert_eq!(
            accepted.unwrap().delivery_status,
            Some(DeliveryStatus::Delivered)
        );
        assert_eq!(
            accept_outgoing(&tx, "OUT1", DeliveryStatus::Sent).unwrap(),
            None
        );
        assert_eq!(fail_outgoing(&tx, "OUT1").unwrap(), None);
        tx.commit().unwrap();
        assert_eq!(
            get_message(&conn, "q").unwrap().unwrap().reply_status,
            ReplyStatus::Replied
        );
        let again = reply_for_key(&conn, "q", "k").unwrap().unwrap();
        assert_eq!(again.delivery_status, Some(DeliveryStatus::Delivered));
    }

    #[test]
    fn delivery_status_only_moves_forward() {
        let mut conn = open_memory().unwrap();
        store(&mut conn, "in", &incoming("1", "1@s", "x"), 1).unwrap();
        let tx = conn.transaction().unwrap();
        insert_outgoing(
            &tx,
            &Outgoing {
                id: "out",
                wa_id: "W",
                phone: "1@s",
                sender_jid: "",
                text: "y",
                in_reply_to: "in",
                source: Source::Api,
                idempotency_key: None,
                media: None,
                created_at: 2,
            },
        )
        .unwrap();
        let moved = advance_delivery(&tx, "W", DeliveryStatus::Read).unwrap();
        assert_eq!(moved.unwrap().delivery_status, Some(DeliveryStatus::Read));
        assert_eq!(
            advance_delivery(&tx, "W", DeliveryStatus::Delivered).unwrap(),
            None
        );
        assert_eq!(
            advance_delivery(&tx, "W", DeliveryStatus::Read).unwrap(),
            None
        );
        tx.commit().unwrap();
        assert_eq!(
            get_message(&conn, "out").unwrap().unwrap().delivery_status,
            Some(DeliveryStatus::Read)
        );
    }
}
