//! What WhatsApp delivered: storing a received message once (redeliveries,
//! placeholders filled in place, our own messages from the phone), its
//! media, and the LID ↔ phone-number map that keeps one chat per customer.

use super::{DbResult, Message, get_message, set_chat_expiration};
use crate::status::{DeliveryStatus, Direction, ReplyStatus, Source};
use crate::wa::{IncomingMessage, MediaInfo, PendingMedia};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

/// What storing a received message did.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// A new row: a customer's message, or our own sent from the phone.
    New(Message),
    /// The placeholder row of this message now holds its content (same id).
    Filled(Message),
    /// Stored before: a redelivery.
    Duplicate,
}

/// Stores a message as WhatsApp delivered it, in the caller's transaction:
/// learns the LID pairs it carries (merging a LID chat into its phone-number
/// chat), maps a LID chat and author to phone numbers, and inserts it once —
/// keyed on (chat, author, id) as received — or fills in the placeholder row
/// it was waiting for. Our own messages from the phone become outgoing rows
/// (source `phone`) and mark the chat's newest incoming message before them
/// `replied`. `id` is the public id a new row gets; `now` is its arrival.
pub fn store_received(
    tx: &Transaction<'_>,
    id: &str,
    m: &IncomingMessage,
    now: i64,
) -> DbResult<Received> {
    for (lid, pn) in &m.mappings {
        learn_lid(tx, lid, pn, now)?;
    }
    let chat = phone_of(tx, &m.chat)?;
    let sender = phone_of(tx, &m.sender)?;
    let sender_lid = if is_lid(&m.sender) {
        Some(m.sender.clone())
    } else {
        lid_of(tx, &sender)?
    };
    let existing: Option<(String, Option<String>)> = tx
        .prepare_cached(
            "SELECT id, placeholder FROM messages WHERE wa_chat = ?1 AND wa_sender = ?2 AND wa_id = ?3",
        )?
        .query_row(params![m.chat, m.sender, m.wa_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    if let Some((existing_id, placeholder)) = existing {
        if placeholder.is_some() && m.placeholder.is_none() {
            fill_placeholder(tx, &existing_id, m)?;
            let row = get_message(tx, &existing_id)?.expect("the row was just updated");
            return Ok(Received::Filled(row));
        }
        return Ok(Received::Duplicate);
    }
    if m.from_me && outgoing_exists(tx, &chat, &m.wa_id)? {
        // A reply this server sent, echoed back by another of our devices.
        return Ok(Received::Duplicate);
    }
    // WhatsApp's time, unless it is missing or absurd (a clock a day ahead).
    let created_at = m
        .timestamp
        .filter(|t| *t > 0 && *t <= now + 86_400)
        .unwrap_or(now);
    let media = MediaColumns::of(m.media.as_ref());
    let (direction, reply_status, delivery_status, source) = if m.from_me {
        (
            Direction::Outgoing,
            ReplyStatus::Sent,
            Some(DeliveryStatus::Sent),
            Some(Source::Phone),
        )
    } else {
        (Direction::Incoming, ReplyStatus::Unread, None, None)
    };
    let inserted = tx
        .prepare_cached(
            "INSERT INTO messages (id, wa_id, direction, phone, sender_jid, sender_lid, wa_chat,
                 wa_sender, push_name, message, reply_status, delivery_status, source, placeholder,
                 media_type, media_url, media_mime, media_size, media_sha256, media_error, raw,
                 created_at, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                 ?18, ?19, ?20, ?21, ?22, ?23)
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            id,
            m.wa_id,
            direction,
            chat,
            sender,
            sender_lid,
            m.chat,
            m.sender,
            m.push_name,
            m.text,
            reply_status,
            delivery_status,
            source,
            m.placeholder.map(|p| p.as_str()),
            media.kind,
            media.url,
            media.mime,
            media.size,
            media.sha256,
            media.error,
            m.raw,
            created_at,
            now,
        ])?;
    if inserted == 0 {
        return Ok(Received::Duplicate);
    }
    if m.from_me {
        // Answered on the phone: nobody should answer again.
        tx.prepare_cached(
            "UPDATE messages SET reply_status = 'replied'
             WHERE seq = (SELECT seq FROM messages
                          WHERE phone = ?1 AND direction = 'incoming' AND created_at <= ?2
                          ORDER BY created_at DESC, seq DESC LIMIT 1)
               AND reply_status IN ('unread', 'read')",
        )?
        .execute(params![chat, created_at])?;
    }
    if let Some(seconds) = m.expiration {
        set_chat_expiration(tx, &chat, seconds)?;
    }
    let row = get_message(tx, id)?.expect("the row was just inserted");
    Ok(Received::New(row))
}

/// Records the fetched media of a row still waiting for it; the row when
/// it was waiting (None: another download got there first).
pub fn set_media(tx: &Transaction<'_>, id: &str, media: &MediaInfo) -> DbResult<Option<Message>> {
    let media = MediaColumns::of(Some(media));
    let changed = tx
        .prepare_cached(
            "UPDATE messages SET media_url = ?2, media_mime = coalesce(?3, media_mime),
                 media_size = coalesce(?4, media_size), media_sha256 = ?5, media_error = ?6
             WHERE id = ?1 AND media_type IS NOT NULL AND media_url IS NULL
               AND media_error IS NULL",
        )?
        .execute(params![
            id,
            media.url,
            media.mime,
            media.size,
            media.sha256,
            media.error
        ])?;
    if changed == 0 {
        return Ok(None);
    }
    get_message(tx, id)
}

/// Stored messages still waiting for their media, oldest first.
pub fn pending_media(conn: &Connection, limit: u32) -> DbResult<Vec<PendingMedia>> {
    conn.prepare_cached(
        "SELECT id, wa_id, wa_chat, wa_sender, direction, raw FROM messages
         WHERE media_type IS NOT NULL AND media_url IS NULL AND media_error IS NULL
           AND raw IS NOT NULL AND wa_chat IS NOT NULL
         ORDER BY seq LIMIT ?1",
    )?
    .query_map([limit], |r| {
        Ok(PendingMedia {
            id: r.get(0)?,
            wa_id: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
            chat: r.get(2)?,
            sender: r.get(3)?,
            from_me: r.get::<_, Direction>(4)? == Direction::Outgoing,
            raw: r.get(5)?,
        })
    })?
    .collect()
}

/// A message's media as the six media columns of its row.
pub(super) struct MediaColumns<'a> {
    pub(super) kind: Option<&'a str>,
    pub(super) url: Option<String>,
    pub(super) mime: Option<&'a str>,
    pub(super) size: Option<i64>,
    pub(super) sha256: Option<&'a str>,
    pub(super) error: Option<&'a str>,
}

impl<'a> MediaColumns<'a> {
    pub(super) fn of(media: Option<&'a MediaInfo>) -> MediaColumns<'a> {
        MediaColumns {
            kind: media.map(|x| x.kind.as_str()),
            url: media
                .and_then(|x| x.file_name.as_ref())
                .map(|f| format!("/media/{f}")),
            mime: media.and_then(|x| x.mime.as_deref()),
            size: media.and_then(|x| x.size).map(|s| s as i64),
            sha256: media.and_then(|x| x.sha256.as_deref()),
            error: media.and_then(|x| x.error.as_deref()),
        }
    }
}

/// A placeholder row takes the content that arrived for it.
fn fill_placeholder(tx: &Transaction<'_>, id: &str, m: &IncomingMessage) -> DbResult<()> {
    let media = MediaColumns::of(m.media.as_ref());
    tx.prepare_cached(
        "UPDATE messages SET message = ?2, placeholder = NULL, raw = ?3,
             push_name = coalesce(?4, push_name), media_type = ?5, media_url = ?6,
             media_mime = ?7, media_size = ?8, media_sha256 = ?9, media_error = ?10
         WHERE id = ?1",
    )?
    .execute(params![
        id,
        m.text,
        m.raw,
        m.push_name,
        media.kind,
        media.url,
        media.mime,
        media.size,
        media.sha256,
        media.error,
    ])?;
    Ok(())
}

/// Whether an outgoing message with this WhatsApp id exists in the chat.
fn outgoing_exists(tx: &Transaction<'_>, chat: &str, wa_id: &str) -> DbResult<bool> {
    tx.prepare_cached(
        "SELECT 1 FROM messages WHERE wa_id = ?1 AND direction = 'outgoing' AND phone = ?2",
    )?
    .query_row(params![wa_id, chat], |_| Ok(()))
    .optional()
    .map(|found| found.is_some())
}

pub(super) fn is_lid(jid: &str) -> bool {
    jid.ends_with("@lid")
}

/// The phone-number JID of a mapped LID; any other JID as it is.
pub fn phone_of(conn: &Connection, jid: &str) -> DbResult<String> {
    if !is_lid(jid) {
        return Ok(jid.to_string());
    }
    Ok(conn
        .prepare_cached("SELECT pn FROM lid_map WHERE lid = ?1")?
        .query_row([jid], |r| r.get(0))
        .optional()?
        .unwrap_or_else(|| jid.to_string()))
}

/// The LID known for a phone-number JID.
pub fn lid_of(conn: &Connection, pn: &str) -> DbResult<Option<String>> {
    conn.prepare_cached("SELECT lid FROM lid_map WHERE pn = ?1 ORDER BY updated_at DESC LIMIT 1")?
        .query_row([pn], |r| r.get(0))
        .optional()
}

/// A LID's messages in groups take its number (`?1` the LID, `?2` the
/// number). The LIKE repeats the partial index's condition, so the index of
/// unmapped LID authors is used instead of a scan of every message.
const MAP_LID_AUTHOR: &str = "UPDATE messages SET sender_jid = ?2, sender_lid = ?1
     WHERE sender_jid = ?1 AND sender_jid LIKE '%@lid'";

/// Records that `lid` is `pn`. When the pair is new (or the LID moved to
/// another number), the LID's chat is merged into the phone-number chat and
/// its messages' authors take the number (keeping the LID as sender_lid).
/// True when something changed.
pub fn learn_lid(tx: &Transaction<'_>, lid: &str, pn: &str, now: i64) -> DbResult<bool> {
    if !is_lid(lid) || is_lid(pn) || lid == pn {
        return Ok(false);
    }
    let changed = tx
        .prepare_cached(
            "INSERT INTO lid_map (lid, pn, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (lid) DO UPDATE SET pn = excluded.pn, updated_at = excluded.updated_at
                 WHERE pn <> excluded.pn",
        )?
        .execute(params![lid, pn, now])?;
    if changed == 0 {
        return Ok(false);
    }
    tx.prepare_cached(
        "UPDATE messages SET phone = ?2,
             sender_lid = CASE WHEN sender_jid = ?1 THEN ?1 ELSE sender_lid END,
             sender_jid = CASE WHEN sender_jid = ?1 THEN ?2 ELSE sender_jid END
         WHERE phone = ?1",
    )?
    .execute(params![lid, pn])?;
    tx.prepare_cached(MAP_LID_AUTHOR)?
        .execute(params![lid, pn])?;
    // The per-chat counters follow their messages.
    tx.prepare_cached(
        "INSERT INTO chats (phone, last_seq, unread, expiration)
             SELECT ?2, last_seq, unread, expiration FROM chats WHERE phone = ?1
         ON CONFLICT (phone) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq),
             unread = unread + excluded.unread,
             expiration = coalesce(expiration, excluded.expiration)",
    )?
    .execute(params![lid, pn])?;
    tx.prepare_cached("DELETE FROM chats WHERE phone = ?1")?
        .execute([lid])?;
    Ok(true)
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::*;
    use crate::db::*;
    use crate::status::*;
    use crate::wa::{IncomingMessage, MediaInfo};
    use rusqlite::params;

    #[test]
    fn redelivered_message_is_stored_once() {
        let mut conn = open_memory().unwrap();
        let m = incoming("WA1", "1@s.whatsapp.net", "hi");
        assert!(store(&mut conn, "a", &m, 10).is_some());
        assert!(store(&mut conn, "b", &m, 11).is_none());
        // Same id from another chat is another message.
        assert!(
            store(
                &mut conn,
                "c",
                &incoming("WA1", "2@s.whatsapp.net", "hi"),
                12
            )
            .is_some()
        );
        assert_eq!(inbox_count(&conn, None).unwrap(), 2);
    }

    #[test]
    fn media_fields_are_stored() {
        let mut conn = open_memory().unwrap();
        let mut m = incoming("WA1", "1@s.whatsapp.net", "[Image]");
        m.media = Some(MediaInfo {
            kind: "image".into(),
            mime: Some("image/png".into()),
            file_name: Some("x.png".into()),
            size: Some(3),
            sha256: Some("ab".into()),
            error: None,
        });
        let row = store(&mut conn, "a", &m, 10).unwrap();
        assert_eq!(row.media_url.as_deref(), Some("/media/x.png"));
        assert_eq!(row.media_size, Some(3));
        assert_eq!(row.to_json()["created_at"], "1970-01-01 00:00:10");
    }

    #[test]
    fn a_lid_chat_merges_into_the_phone_number_chat() {
        let mut conn = open_memory().unwrap();
        // Before its number is known, the customer writes under a LID …
        receive(&mut conn, "a", &incoming_at("1", LID, 10), 10);
        receive(&mut conn, "b", &incoming_at("2", LID, 11), 11);
        // … and in a group, too.
        let in_group = IncomingMessage {
            sender: LID.into(),
            ..incoming_at("3", "9@g.us", 12)
        };
        receive(&mut conn, "c", &in_group, 12);
        assert_eq!(get_message(&conn, "a").unwrap().unwrap().phone, LID);
        // A message revealing the pair: one chat from now on.
        let with_pair = IncomingMessage {
            mappings: vec![(LID.into(), PN.into())],
            ..incoming_at("4", LID, 13)
        };
        let Received::New(row) = receive(&mut conn, "d", &with_pair, 13) else {
            panic!()
        };
        assert_eq!((row.phone.as_str(), row.sender_jid.as_str()), (PN, PN));
        assert_eq!(row.sender_lid.as_deref(), Some(LID));
        for id in ["a", "b"] {
            let m = get_message(&conn, id).unwrap().unwrap();
            assert_eq!((m.phone.as_str(), m.sender_jid.as_str()), (PN, PN), "{id}");
            assert_eq!(m.sender_lid.as_deref(), Some(LID));
        }
        let member = get_message(&conn, "c").unwrap().unwrap();
        assert_eq!(
            (member.phone.as_str(), member.sender_jid.as_str()),
            ("9@g.us", PN)
        );
        // One chat with every unread message; the LID's chat is gone.
        let (chats, total) = conversations(&conn, 1, 10).unwrap();
        assert_eq!(total, 2);
        let chat = chats.iter().find(|c| c.phone == PN).unwrap();
        assert_eq!((chat.unread, chat.last.id.as_str()), (3, "d"));
        assert_eq!(conversation_messages(&conn, PN, 1, 10).unwrap().1, 3);
        // Later messages under the LID alone land in the same chat.
        let Received::New(later) = receive(&mut conn, "e", &incoming_at("5", LID, 14), 14) else {
            panic!()
        };
        assert_eq!(later.phone, PN);
        // A message from the number shows the LID it is known by.
        let Received::New(by_number) = receive(&mut conn, "f", &incoming_at("6", PN, 15), 15)
        else {
            panic!()
        };
        assert_eq!(by_number.sender_lid.as_deref(), Some(LID));
        assert_kept_counts_are_exact(&conn);
    }

    /// Learning a LID finds that LID's messages in groups through the small
    /// index of unmapped LID authors, not by scanning every message.
    #[test]
    fn a_learnt_lid_finds_its_group_messages_by_index() {
        let conn = open_memory().unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {MAP_LID_AUTHOR}"))
            .unwrap()
            .query_map(params![LID, PN], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<DbResult<_>>()
            .unwrap();
        assert!(
            plan.iter().any(|p| p.contains("messages_lid_sender")),
            "{plan:?}"
        );
    }

    #[test]
    fn a_redelivery_after_a_mapping_is_stored_once() {
        let mut conn = open_memory().unwrap();
        let first = incoming_at("W1", LID, 10);
        assert!(matches!(
            receive(&mut conn, "a", &first, 10),
            Received::New(_)
        ));
        // The mapping arrives in between (with another message) …
        let other = IncomingMessage {
            mappings: vec![(LID.into(), PN.into())],
            ..incoming_at("W2", LID, 11)
        };
        receive(&mut conn, "b", &other, 11);
        // … and WhatsApp redelivers the first one, now with the pair.
        let again = IncomingMessage {
            mappings: vec![(LID.into(), PN.into())],
            ..first
        };
        assert_eq!(receive(&mut conn, "c", &again, 12), Received::Duplicate);
        assert_eq!(inbox_count(&conn, None).unwrap(), 2);
    }

    #[test]
    fn own_messages_from_the_phone_are_replies() {
        let mut conn = open_memory().unwrap();
        receive(&mut conn, "q1", &incoming_at("1", PN, 100), 100);
        receive(&mut conn, "q2", &incoming_at("2", PN, 200), 200);
        // Typed on the phone at 150: it answers the first question only.
        let own = IncomingMessage {
            sender: "15550000000@s.whatsapp.net".into(),
            from_me: true,
            ..incoming_at("3", PN, 150)
        };
        let Received::New(row) = receive(&mut conn, "r", &own, 300) else {
            panic!()
        };
        assert_eq!(row.direction, Direction::Outgoing);
        assert_eq!(
            (row.reply_status, row.delivery_status, row.source),
            (
                ReplyStatus::Sent,
                Some(DeliveryStatus::Sent),
                Some(Source::Phone)
            )
        );
        assert_eq!(
            get_message(&conn, "q1").unwrap().unwrap().reply_status,
            ReplyStatus::Replied
        );
        assert_eq!(
            get_message(&conn, "q2").unwrap().unwrap().reply_status,
            ReplyStatus::Unread
        );
        // A reply this server sent, echoed back from another device, is not
        // stored twice.
        let tx = conn.transaction().unwrap();
        insert_outgoing(
            &tx,
            &Outgoing {
                id: "api",
                wa_id: "SENT",
                phone: PN,
                sender_jid: "",
                text: "y",
                in_reply_to: "q2",
                source: Source::Api,
                idempotency_key: None,
                media: None,
                created_at: 400,
            },
        )
        .unwrap();
        tx.commit().unwrap();
        let echo = IncomingMessage {
            wa_id: "SENT".into(),
            ..own
        };
        assert_eq!(receive(&mut conn, "x", &echo, 401), Received::Duplicate);
        assert_kept_counts_are_exact(&conn);
    }

    #[test]
    fn a_placeholder_is_filled_in_place() {
        let mut conn = open_memory().unwrap();
        let placeholder = IncomingMessage {
            text: "[Message could not be decrypted yet]".into(),
            placeholder: Some(crate::wa::Placeholder::Undecryptable),
            ..incoming_at("W", PN, 10)
        };
        let Received::New(row) = receive(&mut conn, "p", &placeholder, 10) else {
            panic!()
        };
        assert_eq!(row.placeholder.as_deref(), Some("undecryptable"));
        // The same placeholder again changes nothing.
        assert_eq!(
            receive(&mut conn, "x", &placeholder, 11),
            Received::Duplicate
        );
        let content = IncomingMessage {
            text: "the real text".into(),
            placeholder: None,
            ..placeholder.clone()
        };
        let Received::Filled(row) = receive(&mut conn, "y", &content, 12) else {
            panic!()
        };
        assert_eq!(
            (row.id.as_str(), row.message.as_str()),
            ("p", "the real text")
        );
        assert_eq!(row.placeholder, None);
        // Once filled, neither the content nor a placeholder replaces it.
        assert_eq!(receive(&mut conn, "z", &content, 13), Received::Duplicate);
        assert_eq!(
            receive(&mut conn, "z", &placeholder, 13),
            Received::Duplicate
        );
        let q = InboxQuery {
            search: Some("real text".into()),
            page: 1,
            limit: 10,
            ..Default::default()
        };
        assert_eq!(inbox(&conn, &q).unwrap().1, 1);
        assert_eq!(inbox_count(&conn, None).unwrap(), 1);
    }

    #[test]
    fn a_backlog_keeps_whatsapps_times() {
        let mut conn = open_memory().unwrap();
        let Received::New(row) = receive(&mut conn, "a", &incoming_at("1", PN, 1_000), 5_000)
        else {
            panic!()
        };
        assert_eq!((row.created_at, row.received_at), (1_000, 5_000));
        // No time, or one from the future: the arrival.
        let none = IncomingMessage {
            timestamp: None,
            ..incoming("2", PN, "x")
        };
        let Received::New(row) = receive(&mut conn, "b", &none, 5_000) else {
            panic!()
        };
        assert_eq!(row.created_at, 5_000);
        let Received::New(row) = receive(
            &mut conn,
            "c",
            &incoming_at("3", PN, 5_000 + 2 * 86_400),
            5_000,
        ) else {
            panic!()
        };
        assert_eq!(row.created_at, 5_000);
    }
}
