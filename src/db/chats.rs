//! Chats: the conversation list, one chat's messages, chat names and
//! disappearing-message timers.

use super::messages::{MESSAGE_COLUMN_COUNT, MESSAGE_COLUMNS, MESSAGE_COLUMNS_M, message_from_row};
use super::{DbResult, Message, limit_offset, page_offset};
use crate::clock;
use rusqlite::{Connection, OptionalExtension, params};

/// Records a chat's disappearing-messages timer (0: off).
pub fn set_chat_expiration(conn: &Connection, chat: &str, seconds: u32) -> DbResult<()> {
    conn.prepare_cached("UPDATE chats SET expiration = ?2 WHERE phone = ?1")?
        .execute(params![chat, seconds])?;
    Ok(())
}

/// A chat's disappearing-messages timer, when it has one on.
pub fn chat_expiration(conn: &Connection, chat: &str) -> DbResult<Option<u32>> {
    Ok(conn
        .prepare_cached("SELECT expiration FROM chats WHERE phone = ?1")?
        .query_row([chat], |r| r.get::<_, Option<u32>>(0))
        .optional()?
        .flatten()
        .filter(|s| *s > 0))
}

/// A chat in the conversation list.
#[derive(Debug, Clone)]
pub struct Conversation {
    pub phone: String,
    pub unread: i64,
    pub last: Message,
}

/// Chats, most recent first, with their last message and unread count.
pub fn conversations(
    conn: &Connection,
    page: u32,
    limit: u32,
) -> DbResult<(Vec<Conversation>, i64)> {
    let total: i64 = conn
        .prepare_cached("SELECT count(*) FROM chats")?
        .query_row([], |r| r.get(0))?;
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS_M}, c.unread FROM chats c JOIN messages m ON m.seq = c.last_seq
             ORDER BY c.last_seq DESC {}",
            limit_offset(limit.into(), page_offset(page, limit))
        ))?
        .query_map([], |r| {
            let last = message_from_row(r)?;
            Ok(Conversation {
                phone: last.phone.clone(),
                unread: r.get(MESSAGE_COLUMN_COUNT)?,
                last,
            })
        })?
        .collect::<DbResult<Vec<_>>>()?;
    Ok((rows, total))
}

/// The first of `candidates` (chat JIDs) that names a stored chat.
pub fn first_known_chat(conn: &Connection, candidates: &[String]) -> DbResult<Option<String>> {
    let mut known = conn.prepare_cached("SELECT 1 FROM chats WHERE phone = ?1")?;
    for jid in candidates {
        if known.exists([jid])? {
            return Ok(Some(jid.clone()));
        }
    }
    Ok(None)
}

/// Records the display name of `phone` (a group's subject).
pub fn set_chat_name(conn: &Connection, phone: &str, name: &str) -> DbResult<()> {
    conn.prepare_cached(
        "INSERT INTO chat_names (phone, name, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (phone) DO UPDATE SET name = excluded.name, updated_at = excluded.updated_at",
    )?
    .execute(params![phone, name, clock::now_secs()])?;
    Ok(())
}

/// The known display names of `phones`.
pub fn chat_names(
    conn: &Connection,
    phones: &[&str],
) -> DbResult<std::collections::HashMap<String, String>> {
    let mut names = std::collections::HashMap::new();
    let mut stmt = conn.prepare_cached("SELECT name FROM chat_names WHERE phone = ?1")?;
    for phone in phones {
        if names.contains_key(*phone) {
            continue;
        }
        if let Some(name) = stmt
            .query_row([phone], |r| r.get::<_, String>(0))
            .optional()?
        {
            names.insert(phone.to_string(), name);
        }
    }
    Ok(names)
}

/// One chat's messages (both directions), oldest first, and their count.
pub fn conversation_messages(
    conn: &Connection,
    phone: &str,
    page: u32,
    limit: u32,
) -> DbResult<(Vec<Message>, i64)> {
    let total: i64 = conn
        .prepare_cached("SELECT count(*) FROM messages WHERE phone = ?1")?
        .query_row([phone], |r| r.get(0))?;
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE phone = ?1 ORDER BY seq {}",
            limit_offset(limit.into(), page_offset(page, limit))
        ))?
        .query_map([phone], message_from_row)?
        .collect::<DbResult<Vec<_>>>()?;
    Ok((rows, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::*;
    use crate::db::*;
    use crate::wa::IncomingMessage;

    #[test]
    fn a_chat_remembers_its_disappearing_timer() {
        let mut conn = open_memory().unwrap();
        let timed = IncomingMessage {
            expiration: Some(604_800),
            ..incoming_at("1", PN, 10)
        };
        receive(&mut conn, "a", &timed, 10);
        assert_eq!(chat_expiration(&conn, PN).unwrap(), Some(604_800));
        // A message without a timer says nothing about it.
        receive(&mut conn, "b", &incoming_at("2", PN, 11), 11);
        assert_eq!(chat_expiration(&conn, PN).unwrap(), Some(604_800));
        set_chat_expiration(&conn, PN, 0).unwrap();
        assert_eq!(chat_expiration(&conn, PN).unwrap(), None);
    }
}
