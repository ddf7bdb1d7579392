//! The rest of a conversation: reactions per sender, edits with their
//! history, deletions for everyone, and the read receipts WhatsApp is owed.

use super::DbResult;
use super::messages::{MESSAGE_COLUMNS, Message, message_from_row};
use crate::clock;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::collections::HashMap;

/// What a deleted message's text becomes.
pub const DELETED_TEXT: &str = "[Deleted]";

/// Our own account, as the sender of a reaction.
pub const ME: &str = "me";

/// One sender's current reaction to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaction {
    /// The customer's JID, or `me`.
    pub sender_jid: String,
    pub emoji: String,
    pub created_at: i64,
}

impl serde::Serialize for Reaction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("created_at", &clock::format_datetime(self.created_at))?;
        m.serialize_entry("emoji", &self.emoji)?;
        m.serialize_entry("sender_jid", &self.sender_jid)?;
        m.end()
    }
}

/// An earlier text of an edited message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// The text before the edit.
    pub message: String,
    /// When it was replaced.
    pub edited_at: i64,
}

impl serde::Serialize for Edit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("edited_at", &clock::format_datetime(self.edited_at))?;
        m.serialize_entry("message", &self.message)?;
        m.end()
    }
}

/// The message a reaction, edit or deletion in `chat` (as stored, after LID
/// mapping) names by its WhatsApp id; None when this server never stored it.
pub fn message_by_wa_id(conn: &Connection, chat: &str, wa_id: &str) -> DbResult<Option<Message>> {
    conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE wa_id = ?1 AND phone = ?2 ORDER BY seq LIMIT 1"
    ))?
    .query_row(params![wa_id, chat], message_from_row)
    .optional()
}

/// Sets `sender`'s reaction to message `seq` (the latest wins); an empty
/// emoji removes it. True when something changed.
pub fn set_reaction(
    conn: &Connection,
    seq: i64,
    sender: &str,
    emoji: &str,
    now: i64,
) -> DbResult<bool> {
    if emoji.is_empty() {
        return Ok(conn
            .prepare_cached("DELETE FROM reactions WHERE message_seq = ?1 AND sender_jid = ?2")?
            .execute(params![seq, sender])?
            > 0);
    }
    Ok(conn
        .prepare_cached(
            "INSERT INTO reactions (message_seq, sender_jid, emoji, created_at)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (message_seq, sender_jid) DO UPDATE SET
                 emoji = excluded.emoji, created_at = excluded.created_at
             WHERE emoji <> excluded.emoji",
        )?
        .execute(params![seq, sender, emoji, now])?
        > 0)
}

/// Fills in the reactions of `messages` (one query for the whole page).
pub fn attach_reactions(conn: &Connection, messages: &mut [Message]) -> DbResult<()> {
    let (Some(low), Some(high)) = (
        messages.iter().map(|m| m.seq).min(),
        messages.iter().map(|m| m.seq).max(),
    ) else {
        return Ok(());
    };
    // Most pages have no reaction at all: one probe of the primary key says
    // so, where the query below (the page's ids as a JSON list, each looked
    // up) costs about ten times more.
    let any: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM reactions WHERE message_seq BETWEEN ?1 AND ?2)",
        )?
        .query_row([low, high], |r| r.get(0))?;
    if !any {
        for m in messages {
            m.reactions.clear();
        }
        return Ok(());
    }
    let seqs = serde_json::to_string(&messages.iter().map(|m| m.seq).collect::<Vec<_>>())
        .unwrap_or_else(|_| "[]".into());
    let mut by_seq: HashMap<i64, Vec<Reaction>> = HashMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT message_seq, sender_jid, emoji, created_at FROM reactions
         WHERE message_seq IN (SELECT value FROM json_each(?1))
         ORDER BY message_seq, created_at, sender_jid",
    )?;
    let rows = stmt.query_map([seqs], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            Reaction {
                sender_jid: r.get(1)?,
                emoji: r.get(2)?,
                created_at: r.get(3)?,
            },
        ))
    })?;
    for row in rows {
        let (seq, reaction) = row?;
        by_seq.entry(seq).or_default().push(reaction);
    }
    for m in messages {
        m.reactions = by_seq.remove(&m.seq).unwrap_or_default();
    }
    Ok(())
}

/// Message `seq` now reads `text`; its text until now joins its history.
/// The earlier text when it changed, None when the text was already this
/// or the message was deleted.
pub fn edit_message(
    tx: &Transaction<'_>,
    seq: i64,
    text: &str,
    now: i64,
) -> DbResult<Option<String>> {
    let previous: Option<String> = tx
        .prepare_cached("SELECT message FROM messages WHERE seq = ?1 AND deleted_at IS NULL")?
        .query_row([seq], |r| r.get(0))
        .optional()?;
    let Some(previous) = previous.filter(|p| p != text) else {
        return Ok(None);
    };
    tx.prepare_cached(
        "INSERT INTO message_edits (message_seq, message, edited_at) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![seq, previous, now])?;
    tx.prepare_cached("UPDATE messages SET message = ?2, edited_at = ?3 WHERE seq = ?1")?
        .execute(params![seq, text, now])?;
    Ok(Some(previous))
}

/// The earlier texts of message `seq`, oldest first.
pub fn edits(conn: &Connection, seq: i64) -> DbResult<Vec<Edit>> {
    Ok(edits_of(conn, &[seq])?.remove(&seq).unwrap_or_default())
}

/// The earlier texts of several messages, by seq, oldest first.
pub fn edits_of(conn: &Connection, seqs: &[i64]) -> DbResult<HashMap<i64, Vec<Edit>>> {
    let mut out: HashMap<i64, Vec<Edit>> = HashMap::new();
    if seqs.is_empty() {
        return Ok(out);
    }
    let list = serde_json::to_string(seqs).unwrap_or_else(|_| "[]".into());
    let mut stmt = conn.prepare_cached(
        "SELECT message_seq, message, edited_at FROM message_edits
         WHERE message_seq IN (SELECT value FROM json_each(?1)) ORDER BY message_seq, id",
    )?;
    let rows = stmt.query_map([list], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            Edit {
                message: r.get(1)?,
                edited_at: r.get(2)?,
            },
        ))
    })?;
    for row in rows {
        let (seq, edit) = row?;
        out.entry(seq).or_default().push(edit);
    }
    Ok(out)
}

/// Deletes message `seq` for everyone, as the phone does: the row stays (id,
/// chat, times, statuses) but its text becomes `[Deleted]` (which also
/// takes the old text out of search), its media, protobuf and earlier texts
/// are erased. The stored media file's name (`/media/<name>`) for the caller
/// to remove after the commit; None when it was already deleted.
pub fn delete_message(
    tx: &Transaction<'_>,
    seq: i64,
    now: i64,
) -> DbResult<Option<Option<String>>> {
    let media_url: Option<Option<String>> = tx
        .prepare_cached("SELECT media_url FROM messages WHERE seq = ?1 AND deleted_at IS NULL")?
        .query_row([seq], |r| r.get(0))
        .optional()?;
    let Some(media_url) = media_url else {
        return Ok(None);
    };
    tx.prepare_cached(
        "UPDATE messages SET message = ?2, deleted_at = ?3, media_type = NULL, media_url = NULL,
             media_mime = NULL, media_size = NULL, media_sha256 = NULL, media_error = NULL,
             raw = NULL, placeholder = NULL
         WHERE seq = ?1",
    )?
    .execute(params![seq, DELETED_TEXT, now])?;
    tx.prepare_cached("DELETE FROM message_edits WHERE message_seq = ?1")?
        .execute([seq])?;
    Ok(Some(media_url))
}

/// An incoming message WhatsApp is still to be told was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadDue {
    /// Public id.
    pub id: String,
    /// Chat and author as WhatsApp addressed the message.
    pub chat: String,
    pub sender: String,
    pub wa_id: String,
}

/// The receipts due in some chats, from `messages_read_due` by chat. Named,
/// because without statistics SQLite's planner prefers the equality on
/// `reply_status` and walked every read or replied incoming message of the
/// inbox for each reply: about 50 ms at 100,000 messages.
const READ_RECEIPTS_DUE: &str =
    "SELECT id, coalesce(wa_chat, phone), coalesce(wa_sender, sender_jid), wa_id
     FROM messages INDEXED BY messages_read_due
     WHERE phone IN (SELECT phone FROM messages WHERE id IN (SELECT value FROM json_each(?1)))
       AND direction = 'incoming' AND reply_status IN ('read', 'replied')
       AND read_receipt_at IS NULL AND wa_id IS NOT NULL AND deleted_at IS NULL
     ORDER BY seq";

/// The incoming messages of the chats of `ids` that are now `read` or
/// `replied` and whose read receipt was never sent (never `ignored` ones,
/// nor deleted ones): those of `ids`, and any an earlier attempt could not
/// deliver (WhatsApp was not connected).
pub fn read_receipts_due(conn: &Connection, ids: &[String]) -> DbResult<Vec<ReadDue>> {
    let list = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
    conn.prepare_cached(READ_RECEIPTS_DUE)?
        .query_map([list], |r| {
            Ok(ReadDue {
                id: r.get(0)?,
                chat: r.get(1)?,
                sender: r.get(2)?,
                wa_id: r.get(3)?,
            })
        })?
        .collect()
}

/// WhatsApp was told these messages were read.
pub fn read_receipts_sent(conn: &Connection, ids: &[&str], now: i64) -> DbResult<()> {
    let list = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
    conn.prepare_cached(
        "UPDATE messages SET read_receipt_at = ?2
         WHERE id IN (SELECT value FROM json_each(?1)) AND read_receipt_at IS NULL",
    )?
    .execute(params![list, now])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::*;
    use crate::db::*;
    use crate::status::ReplyStatus;

    #[test]
    fn the_latest_reaction_of_each_sender_wins_and_empty_removes_it() {
        let mut conn = open_memory().unwrap();
        let m = store(&mut conn, "a", &incoming("W1", PN, "hi"), 10).unwrap();
        assert!(set_reaction(&conn, m.seq, PN, "👍", 11).unwrap());
        assert!(set_reaction(&conn, m.seq, ME, "🙏", 12).unwrap());
        assert!(set_reaction(&conn, m.seq, PN, "❤️", 13).unwrap());
        // The same emoji again changes nothing.
        assert!(!set_reaction(&conn, m.seq, PN, "❤️", 14).unwrap());
        let mut rows = vec![get_message(&conn, "a").unwrap().unwrap()];
        attach_reactions(&conn, &mut rows).unwrap();
        let got: Vec<(&str, &str, i64)> = rows[0]
            .reactions
            .iter()
            .map(|r| (r.sender_jid.as_str(), r.emoji.as_str(), r.created_at))
            .collect();
        assert_eq!(got, [(ME, "🙏", 12), (PN, "❤️", 13)]);
        assert!(set_reaction(&conn, m.seq, PN, "", 15).unwrap());
        assert!(!set_reaction(&conn, m.seq, PN, "", 16).unwrap());
        attach_reactions(&conn, &mut rows).unwrap();
        assert_eq!(rows[0].reactions.len(), 1);
        let json = serde_json::to_value(&rows[0]).unwrap();
        assert_eq!(json["reactions"][0]["sender_jid"], "me");
        assert_eq!(json["reactions"][0]["emoji"], "🙏");
    }

    #[test]
    fn a_page_gets_exactly_its_own_reactions() {
        let mut conn = open_memory().unwrap();
        let seqs: Vec<i64> = (0..5)
            .map(|n| {
                let m = incoming(&format!("W{n}"), PN, "hi");
                store(&mut conn, &format!("m{n}"), &m, n).unwrap().seq
            })
            .collect();
        let page = |conn: &Connection, ids: &[&str]| {
            let mut rows: Vec<Message> = ids
                .iter()
                .map(|id| get_message(conn, id).unwrap().unwrap())
                .collect();
            attach_reactions(conn, &mut rows).unwrap();
            rows.iter().map(|m| m.reactions.len()).collect::<Vec<_>>()
        };
        assert_eq!(page(&conn, &["m1", "m3"]), [0, 0]);
        // A reaction outside the page, then one between its messages, then
        // one on a message of the page.
        set_reaction(&conn, seqs[4], PN, "👍", 10).unwrap();
        assert_eq!(page(&conn, &["m1", "m3"]), [0, 0]);
        set_reaction(&conn, seqs[2], PN, "👍", 11).unwrap();
        assert_eq!(page(&conn, &["m1", "m3"]), [0, 0]);
        set_reaction(&conn, seqs[3], ME, "🙏", 12).unwrap();
        assert_eq!(page(&conn, &["m3", "m1"]), [1, 0]);
        assert_eq!(page(&conn, &["m4"]), [1]);
        assert_eq!(page(&conn, &[]), [0usize; 0]);
    }

    #[test]
    fn an_edit_keeps_the_history_and_search_follows_the_new_text() {
        let mut conn = open_memory().unwrap();
        let m = store(&mut conn, "a", &incoming("W1", PN, "an order of 2"), 10).unwrap();
        let tx = conn.transaction().unwrap();
        assert_eq!(
            edit_message(&tx, m.seq, "an order of 3", 20)
                .unwrap()
                .as_deref(),
            Some("an order of 2")
        );
        assert_eq!(
            edit_message(&tx, m.seq, "an order of 3!", 30)
                .unwrap()
                .as_deref(),
            Some("an order of 3")
        );
        assert_eq!(
            edit_message(&tx, m.seq, "an order of 3!", 40).unwrap(),
            None
        );
        tx.commit().unwrap();
        let row = get_message(&conn, "a").unwrap().unwrap();
        assert_eq!(
            (row.message.as_str(), row.edited_at),
            ("an order of 3!", Some(30))
        );
        let history: Vec<(String, i64)> = edits(&conn, m.seq)
            .unwrap()
            .into_iter()
            .map(|e| (e.message, e.edited_at))
            .collect();
        assert_eq!(
            history,
            [("an order of 2".into(), 20), ("an order of 3".into(), 30)]
        );
        let search = |term: &str| {
            let q = InboxQuery {
                search: Some(term.into()),
                page: 1,
                limit: 10,
                ..Default::default()
            };
            inbox(&conn, &q).unwrap().1
        };
        assert_eq!(search("order of 3!"), 1);
        assert_eq!(search("order of 2"), 0);
    }

    #[test]
    fn a_deletion_erases_text_media_history_and_search_but_keeps_the_row() {
        let mut conn = open_memory().unwrap();
        let announced = crate::wa::IncomingMessage {
            media: Some(crate::wa::MediaInfo {
                kind: "image".into(),
                ..Default::default()
            }),
            ..incoming("W1", PN, "secret address")
        };
        let m = store(&mut conn, "a", &announced, 10).unwrap();
        let tx = conn.transaction().unwrap();
        let media = crate::wa::MediaInfo {
            kind: "image".into(),
            mime: Some("image/jpeg".into()),
            file_name: Some("x.jpg".into()),
            size: Some(3),
            sha256: Some("ab".into()),
            error: None,
        };
        assert!(set_media(&tx, "a", &media).unwrap().is_some());
        edit_message(&tx, m.seq, "secret address 2", 11).unwrap();
        assert_eq!(
            delete_message(&tx, m.seq, 12).unwrap(),
            Some(Some("/media/x.jpg".into()))
        );
        assert_eq!(delete_message(&tx, m.seq, 13).unwrap(), None);
        // A deleted message takes no more edits.
        assert_eq!(edit_message(&tx, m.seq, "again", 14).unwrap(), None);
        tx.commit().unwrap();
        let row = get_message(&conn, "a").unwrap().unwrap();
        assert_eq!(row.message, DELETED_TEXT);
        assert_eq!(row.deleted_at, Some(12));
        assert_eq!((row.media_type, row.media_url), (None, None));
        assert_eq!(row.reply_status, ReplyStatus::Unread);
        assert_eq!(row.created_at, 10);
        assert!(edits(&conn, m.seq).unwrap().is_empty());
        assert_eq!(quote_source(&conn, "a").unwrap().0, None);
        let q = InboxQuery {
            search: Some("secret".into()),
            page: 1,
            limit: 10,
            ..Default::default()
        };
        assert_eq!(inbox(&conn, &q).unwrap().1, 0);
        assert!(pending_media(&conn, 10).unwrap().is_empty());
        assert_kept_counts_are_exact(&conn);
    }

    #[test]
    fn read_receipts_are_due_once_for_read_and_replied_only() {
        let mut conn = open_memory().unwrap();
        for (id, wa) in [("a", "W1"), ("b", "W2"), ("c", "W3"), ("d", "W4")] {
            store(&mut conn, id, &incoming(wa, PN, "x"), 10).unwrap();
        }
        set_reply_status(&conn, "a", ReplyStatus::Read).unwrap();
        set_reply_status(&conn, "b", ReplyStatus::Replied).unwrap();
        set_reply_status(&conn, "c", ReplyStatus::Ignored).unwrap();
        store(
            &mut conn,
            "other",
            &incoming("W5", "2@s.whatsapp.net", "x"),
            10,
        )
        .unwrap();
        set_reply_status(&conn, "other", ReplyStatus::Read).unwrap();
        // One message names its chat: every receipt due there, no other chat's.
        let ids: Vec<String> = ["c", "nope"].map(String::from).to_vec();
        let due = read_receipts_due(&conn, &ids).unwrap();
        let got: Vec<(&str, &str, &str)> = due
            .iter()
            .map(|d| (d.id.as_str(), d.chat.as_str(), d.wa_id.as_str()))
            .collect();
        assert_eq!(got, [("a", PN, "W1"), ("b", PN, "W2")]);
        read_receipts_sent(&conn, &["a", "b"], 20).unwrap();
        assert!(read_receipts_due(&conn, &ids).unwrap().is_empty());
    }

    /// The receipts due in one chat are found from that chat's entries,
    /// however many read messages other chats hold.
    #[test]
    fn read_receipts_due_reads_only_the_named_chats() {
        let mut conn = open_memory().unwrap();
        let tx = conn.transaction().unwrap();
        for i in 0..2000 {
            insert_message_row(
                &tx,
                &NewMessage {
                    id: &format!("old{i}"),
                    wa_id: Some(&format!("O{i}")),
                    phone: &format!("{}@s.whatsapp.net", i % 50),
                    message: "x",
                    reply_status: ReplyStatus::Read,
                    created_at: 1,
                    ..Default::default()
                },
            )
            .unwrap();
        }
        tx.commit().unwrap();
        store(&mut conn, "a", &incoming("W1", PN, "x"), 10).unwrap();
        set_reply_status(&conn, "a", ReplyStatus::Read).unwrap();
        let due = read_receipts_due(&conn, &["a".to_string()]).unwrap();
        assert_eq!(due.len(), 1);
        let steps = conn
            .prepare_cached(READ_RECEIPTS_DUE)
            .unwrap()
            .get_status(rusqlite::StatementStatus::VmStep);
        assert!(steps < 500, "{steps} steps for one chat's receipt");
    }

    #[test]
    fn targets_are_found_by_wa_id_within_their_chat() {
        let mut conn = open_memory().unwrap();
        store(&mut conn, "a", &incoming("W1", PN, "x"), 10).unwrap();
        assert_eq!(message_by_wa_id(&conn, PN, "W1").unwrap().unwrap().id, "a");
        assert_eq!(
            message_by_wa_id(&conn, "other@s.whatsapp.net", "W1").unwrap(),
            None
        );
        assert_eq!(message_by_wa_id(&conn, PN, "W2").unwrap(), None);
    }
}
