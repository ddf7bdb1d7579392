//! Messages: the inbox and its filters, chats, triage statuses, and
//! replies (stored before they are sent, never sent twice).

use super::{Ctx, Error, page_number, page_size};
use crate::db::{self, IdempotencyClaim, InboxQuery};
use crate::state::ConnState;
use crate::status::{DeliveryStatus, Direction, ReplyStatus, Source};
use crate::wa::{Quote, Target, WaCommand};
use crate::{auth, clock};
use serde_json::{Value, json};
use std::collections::HashMap;

/// Longest text a reply may have, in bytes.
pub const REPLY_MAX_BYTES: usize = 65_536;

/// Most messages one status change may name.
pub const BATCH_MAX: usize = 1000;

// ───────────────────────────── finding messages ─────────────────────────────

/// The inbox filters, from the named parameters `param` looks up
/// (`search`, `phone`, `startDate`, `endDate`, `page`, `limit`) and the
/// status tab (`unread` when None; `all` for every status). Shared by the
/// API's query string and the dashboard's filter form.
pub fn inbox_query<'a>(
    status: Option<&str>,
    param: impl Fn(&str) -> Option<&'a str>,
) -> Result<InboxQuery, Error> {
    let status = match status.unwrap_or("unread") {
        "all" => None,
        tab => match ReplyStatus::parse(tab).filter(|s| ReplyStatus::TRIAGE.contains(s)) {
            Some(status) => Some(status),
            None => return Err(Error::invalid("Invalid status")),
        },
    };
    let from = date_param(param("startDate"), "startDate")?;
    let until = date_param(param("endDate"), "endDate")?.map(|day| day + 86_400);
    // A number as people write it (`+1 555-123 4567`) matches the digits of
    // the chat JID; anything else is a substring of the JID as typed.
    let phone = text_param(param("phone"), "phone")?.map(|p| phone_digits(&p).unwrap_or(p));
    Ok(InboxQuery {
        status,
        search: text_param(param("search"), "search")?,
        phone,
        from,
        until,
        page: page_number(param("page")),
        limit: page_size(param("limit"), 50),
    })
}

/// An optional `YYYY-MM-DD` parameter named `name`.
pub fn date_param(raw: Option<&str>, name: &str) -> Result<Option<i64>, Error> {
    match raw.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(text) => clock::parse_date(text).map(Some).ok_or_else(|| {
            Error::invalid(format!("Invalid {name}: expected a date as YYYY-MM-DD"))
        }),
    }
}

/// A non-empty, trimmed text filter; a NUL character (which no stored text
/// can hold, and which SQLite's full-text query syntax cannot take) is
/// invalid.
pub fn text_param(raw: Option<&str>, name: &str) -> Result<Option<String>, Error> {
    let value = raw.map(str::trim).filter(|s| !s.is_empty());
    if value.is_some_and(|v| v.contains('\0')) {
        return Err(Error::invalid(format!(
            "{name} must not contain a NUL character"
        )));
    }
    Ok(value.map(str::to_string))
}

/// What a person types for a number: digits with an optional `+` and the
/// usual separators (spaces, dashes, dots, parentheses). The digits, or None
/// when it is something else.
pub fn phone_digits(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let rest = raw.strip_prefix('+').unwrap_or(raw);
    let digits: String = rest
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    (!digits.is_empty() && digits.len() <= 32 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then_some(digits)
}

/// A JID as this server accepts one: `user@server`, user of letters,
/// digits and `._:-`, server of lower-case letters, digits and `.-` (as the
/// OpenAPI document says).
pub fn is_jid(s: &str) -> bool {
    let Some((user, server)) = s.split_once('@') else {
        return false;
    };
    (1..=64).contains(&user.len())
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
        && (1..=64).contains(&server.len())
        && server
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".-".contains(&b))
}

/// The JIDs a chat named `raw` may be stored under, most likely first: a
/// JID is itself; a bare number or `+number` is a person's chat, a group
/// whose id is that number, or a LID chat.
pub fn chat_candidates(raw: &str) -> Result<Vec<String>, Error> {
    let raw = raw.trim();
    if raw.contains('@') {
        if is_jid(raw) {
            return Ok(vec![raw.to_string()]);
        }
    } else if let Some(digits) = phone_digits(raw) {
        return Ok(vec![
            format!("{digits}@s.whatsapp.net"),
            format!("{digits}@g.us"),
            format!("{digits}@lid"),
        ]);
    }
    Err(Error::invalid(
        "phone must be a number such as 15551234567 or +15551234567, or a chat JID such as \
         15551234567@s.whatsapp.net or 120363012345678901@g.us",
    ))
}

/// The stored chat `raw` names (see `chat_candidates`); for a chat never
/// seen, its first candidate.
pub fn chat(ctx: &Ctx, raw: &str) -> Result<String, Error> {
    let candidates = chat_candidates(raw)?;
    Ok(db::first_known_chat(&ctx.db, &candidates)?.unwrap_or_else(|| candidates[0].clone()))
}

/// One inbox page and the number of messages the filters match.
pub fn inbox(ctx: &Ctx, q: &InboxQuery) -> Result<(Vec<db::Message>, i64), Error> {
    let (mut rows, total) = db::inbox(&ctx.db, q)?;
    db::attach_reactions(&ctx.db, &mut rows)?;
    Ok((rows, total))
}

/// The number of incoming messages with `status` (every one for None).
pub fn inbox_count(ctx: &Ctx, status: Option<ReplyStatus>) -> Result<i64, Error> {
    Ok(db::inbox_count(&ctx.db, status)?)
}

/// One message by its public id, with its reactions.
pub fn find(ctx: &Ctx, id: &str) -> Result<Option<db::Message>, Error> {
    let Some(m) = db::get_message(&ctx.db, id)? else {
        return Ok(None);
    };
    let mut rows = [m];
    db::attach_reactions(&ctx.db, &mut rows)?;
    let [m] = rows;
    Ok(Some(m))
}

/// The earlier texts of an edited message, oldest first.
pub fn edits(ctx: &Ctx, m: &db::Message) -> Result<Vec<db::Edit>, Error> {
    Ok(db::edits(&ctx.db, m.seq)?)
}

/// The earlier texts of the edited messages among `rows`, by seq.
pub fn edits_of(ctx: &Ctx, rows: &[db::Message]) -> Result<HashMap<i64, Vec<db::Edit>>, Error> {
    let seqs: Vec<i64> = rows
        .iter()
        .filter(|m| m.edited_at.is_some())
        .map(|m| m.seq)
        .collect();
    Ok(db::edits_of(&ctx.db, &seqs)?)
}

/// One message by its public id; a missing one is `NotFound`.
pub fn get(ctx: &Ctx, id: &str) -> Result<db::Message, Error> {
    find(ctx, id)?.ok_or_else(|| Error::NotFound("Message not found".into()))
}

/// One page of a chat's messages (both directions, oldest first) and how
/// many it has.
pub fn conversation(
    ctx: &Ctx,
    chat: &str,
    page: u32,
    limit: u32,
) -> Result<(Vec<db::Message>, i64), Error> {
    let (mut rows, total) = db::conversation_messages(&ctx.db, chat, page, limit)?;
    db::attach_reactions(&ctx.db, &mut rows)?;
    Ok((rows, total))
}

/// One page of chats, most recent first, and how many there are.
pub fn conversations(
    ctx: &Ctx,
    page: u32,
    limit: u32,
) -> Result<(Vec<db::Conversation>, i64), Error> {
    let (mut chats, total) = db::conversations(&ctx.db, page, limit)?;
    let mut lasts: Vec<db::Message> = chats.iter().map(|c| c.last.clone()).collect();
    db::attach_reactions(&ctx.db, &mut lasts)?;
    for (chat, last) in chats.iter_mut().zip(lasts) {
        chat.last = last;
    }
    Ok((chats, total))
}

/// The known display names (a group's subject) of `chats`.
pub fn chat_names(ctx: &Ctx, chats: &[&str]) -> Result<HashMap<String, String>, Error> {
    Ok(db::chat_names(&ctx.db, chats)?)
}

// ───────────────────────────── triage ─────────────────────────────

/// A reply status given by its word, or `Invalid("Invalid status")`.
pub fn reply_status(raw: Option<&str>) -> Result<ReplyStatus, Error> {
    raw.and_then(ReplyStatus::parse)
        .ok_or_else(|| Error::invalid("Invalid status"))
}

/// Sets one message's reply status.
pub fn set_status(ctx: &Ctx, id: &str, status: ReplyStatus) -> Result<(), Error> {
    if !db::set_reply_status(&ctx.db, id, status)? {
        return Err(Error::NotFound("Not found".into()));
    }
    send_read_receipts(ctx, &[id.to_string()])
}

/// Sets the reply status of every message in `ids` (at most `BATCH_MAX`)
/// in one transaction; returns how many exist. Unknown ids are skipped.
pub fn set_statuses(ctx: &mut Ctx, ids: &[String], status: ReplyStatus) -> Result<usize, Error> {
    let updated = db::set_reply_status_many(&mut ctx.db, ids, status)?;
    send_read_receipts(ctx, ids)?;
    Ok(updated)
}

/// Tells WhatsApp that the messages of the chats of `ids` that became
/// `read` or `replied` were read (the customer's blue ticks): once per
/// message, one receipt per chat and author. Off with
/// SEND_READ_RECEIPTS=false. While WhatsApp is not connected, or when it
/// refuses, they stay due and go with the chat's next status change.
pub fn send_read_receipts(ctx: &Ctx, ids: &[String]) -> Result<(), Error> {
    if !ctx.shared.config.send_read_receipts
        || ids.is_empty()
        || ctx.shared.connection().state != ConnState::Connected
    {
        return Ok(());
    }
    let due = db::read_receipts_due(&ctx.db, ids)?;
    let mut groups: Vec<((String, String), Vec<&db::ReadDue>)> = Vec::new();
    for d in &due {
        let key = (d.chat.clone(), d.sender.clone());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, list)) => list.push(d),
            None => groups.push((key, vec![d])),
        }
    }
    for ((chat, sender), list) in groups {
        let wa_ids = list.iter().map(|d| d.wa_id.clone()).collect();
        let sent = ctx.wa.call(|reply| WaCommand::MarkRead {
            chat: chat.clone(),
            sender,
            wa_ids,
            reply,
        });
        match sent {
            Ok(()) => {
                let ids: Vec<&str> = list.iter().map(|d| d.id.as_str()).collect();
                db::read_receipts_sent(&ctx.db, &ids, clock::now_secs())?;
            }
            Err(e) => log::warn!("telling WhatsApp that messages in {chat} were read failed: {e}"),
        }
    }
    Ok(())
}

// ───────────────────────────── reactions and typing ─────────────────────────────

/// Longest emoji a reaction may carry, in bytes.
pub const EMOJI_MAX_BYTES: usize = 32;

/// Reacts to message `id` with `emoji` as our account; an empty emoji
/// removes our reaction. Stored once WhatsApp took it.
pub fn react(ctx: &Ctx, id: &str, emoji: &str) -> Result<(), Error> {
    if emoji.len() > EMOJI_MAX_BYTES {
        return Err(Error::invalid("emoji must be at most 32 bytes"));
    }
    let m = get(ctx, id)?;
    let Some(wa_id) = m.wa_id.clone() else {
        return Err(Error::invalid(
            "This message has no WhatsApp id (it was imported) and cannot be reacted to",
        ));
    };
    if m.deleted_at.is_some() {
        return Err(Error::invalid("A deleted message cannot be reacted to"));
    }
    if ctx.shared.connection().state != ConnState::Connected {
        return Err(Error::Unavailable("WhatsApp not connected".into()));
    }
    let from_me = m.direction == Direction::Outgoing;
    let sender_jid = if from_me {
        String::new()
    } else {
        // The author as WhatsApp named them: a LID chat names the LID.
        db::quote_source(&ctx.db, &m.id)?
            .1
            .unwrap_or_else(|| m.sender_jid.clone())
    };
    let sent = ctx.wa.call(|reply| WaCommand::React {
        to: m.phone.clone(),
        target: Target {
            wa_id,
            sender_jid,
            from_me,
        },
        emoji: emoji.to_string(),
        reply,
    });
    if let Err(e) = sent {
        log::warn!("reacting to a message in {} failed: {e}", m.phone);
        return Err(Error::SendFailed("Failed to send reaction".into()));
    }
    db::set_reaction(&ctx.db, m.seq, db::ME, emoji, clock::now_secs())?;
    Ok(())
}

/// Shows (or clears) "typing…" in the chat `raw` names; only in a chat
/// with a stored message (reply-only).
pub fn typing(ctx: &Ctx, raw: &str, typing: bool) -> Result<(), Error> {
    let candidates = chat_candidates(raw)?;
    let Some(chat) = db::first_known_chat(&ctx.db, &candidates)? else {
        return Err(Error::NotFound("No message of this chat is stored".into()));
    };
    if ctx.shared.connection().state != ConnState::Connected {
        return Err(Error::Unavailable("WhatsApp not connected".into()));
    }
    ctx.wa
        .call(|reply| WaCommand::Typing {
            to: chat.clone(),
            typing,
            reply,
        })
        .map_err(|e| {
            log::warn!("showing typing in {chat} failed: {e}");
            Error::SendFailed("Failed to send the typing state".into())
        })
}

// ───────────────────────────── replies ─────────────────────────────

/// A reply WhatsApp accepted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Replied {
    /// The reply's public id.
    #[serde(rename = "replyId")]
    pub reply_id: String,
    /// Its WhatsApp id.
    #[serde(rename = "waId")]
    pub wa_id: Option<String>,
}

impl Replied {
    /// The API's answer, which is also what an Idempotency-Key keeps.
    pub fn to_json(&self) -> Value {
        json!({ "success": true, "replyId": self.reply_id, "waId": self.wa_id })
    }
}

/// An `Idempotency-Key` and the request it was sent with.
pub struct IdempotencyKey {
    pub key: String,
    /// Hex SHA-256 of the route, the message id and the request's content.
    pub request_hash: String,
}

impl IdempotencyKey {
    /// Binds `key` to a request: `route` (the route template), the message
    /// it answers and its `content` (compared by value: key order and
    /// whitespace of a JSON body do not matter).
    pub fn new(key: String, route: &str, message_id: &str, content: &Value) -> IdempotencyKey {
        let mut text = format!("{route}\0{message_id}\0");
        write_canonical(&mut text, content);
        IdempotencyKey {
            key,
            request_hash: auth::hex(&auth::sha256(text.as_bytes())),
        }
    }

    /// Whether `key` is a usable key: 1 to 255 visible ASCII characters.
    pub fn is_valid(key: &str) -> bool {
        !key.is_empty() && key.len() <= 255 && key.bytes().all(|b| (0x21..0x7f).contains(&b))
    }
}

/// JSON with object keys in sorted order, whatever the map type keeps.
fn write_canonical(out: &mut String, value: &Value) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(out, &map[k]);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(out, item);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Sends `text` as a quoted reply to incoming message `id`; once WhatsApp
/// accepted it, the sink has marked the original replied and queued
/// `message.sent`. With an idempotency key, a repeat of the same request
/// returns the first result, and the key with another request is
/// `KeyReused`.
pub fn send_reply(
    ctx: &mut Ctx,
    id: &str,
    text: &str,
    file: Option<ReplyFile>,
    key: Option<&IdempotencyKey>,
    source: Source,
) -> Result<Replied, Error> {
    if text.trim().is_empty() && file.is_none() {
        return Err(Error::invalid("Missing message"));
    }
    let original = get(ctx, id)?;
    if original.direction != Direction::Incoming {
        return Err(Error::invalid("Only incoming messages can be answered"));
    }
    if let Some(k) = key {
        match db::claim_idempotency(&mut ctx.db, &k.key, id, &k.request_hash)? {
            IdempotencyClaim::New => {}
            IdempotencyClaim::InFlight => {
                return Err(Error::Conflict(
                    "A request with this Idempotency-Key is still in progress".into(),
                ));
            }
            IdempotencyClaim::Done(_, body) => {
                return serde_json::from_str(&body)
                    .map_err(|e| Error::Internal(format!("stored idempotent answer: {e}")));
            }
            IdempotencyClaim::Mismatch => {
                return Err(Error::KeyReused(
                    "This Idempotency-Key was already used for a different request (another message or another body); \
                     send a new key with a new request"
                        .into(),
                ));
            }
        }
    }
    let outcome = deliver_reply(
        ctx,
        &original,
        text,
        file,
        key.map(|k| k.key.as_str()),
        source,
    );
    if let Some(k) = key {
        match &outcome {
            Ok(replied) => {
                db::finish_idempotency(&ctx.db, &k.key, id, 200, &replied.to_json().to_string())?
            }
            Err(_) => db::release_idempotency(&ctx.db, &k.key, id)?,
        }
    }
    outcome
}

/// Sends a reply, stored first: its WhatsApp id is chosen and the row kept
/// `pending` before anything goes out, so a retry with the same
/// Idempotency-Key sends that row again under the same id (the customer
/// sees one message, even if the first try did reach WhatsApp) and a
/// receipt always finds its row. WhatsApp's acceptance (the sink marks the
/// row `sent`, the original `replied`, and fires `message.sent`) comes
/// before the answer; a refusal leaves the row `failed`.
fn deliver_reply(
    ctx: &mut Ctx,
    original: &db::Message,
    text: &str,
    mut file: Option<ReplyFile>,
    key: Option<&str>,
    source: Source,
) -> Result<Replied, Error> {
    if ctx.shared.connection().state != ConnState::Connected {
        return Err(Error::Unavailable("WhatsApp not connected".into()));
    }
    let earlier = match key {
        Some(key) => db::reply_for_key(&ctx.db, &original.id, key)?,
        None => None,
    };
    let mut file_name = file.as_ref().and_then(|f| f.filename.clone());
    let row = match earlier {
        Some(row)
            if !matches!(
                row.delivery_status,
                Some(DeliveryStatus::Pending | DeliveryStatus::Failed)
            ) =>
        {
            // The first try was accepted after its request gave up.
            return Ok(replied(&row));
        }
        Some(row) => {
            db::retry_outgoing(&ctx.db, &row.id)?;
            row
        }
        None => {
            let me = ctx.shared.connection().me.unwrap_or_default();
            let stored = file.as_ref().map(ReplyFile::info);
            let tx = ctx.db.transaction()?;
            let row = db::insert_outgoing(
                &tx,
                &db::Outgoing {
                    id: &auth::uuid_v4(),
                    wa_id: &crate::wa::new_message_id(),
                    phone: &original.phone,
                    sender_jid: &me,
                    text,
                    in_reply_to: &original.id,
                    source,
                    idempotency_key: key,
                    media: stored,
                    created_at: clock::now_secs(),
                },
            )?;
            tx.commit()?;
            if let Some(f) = &mut file {
                f.keep();
            }
            row
        }
    };
    if file.is_none() {
        // A retry of a file reply sends the file its first try stored.
        file_name = None;
    }
    let media = outgoing_media(ctx, &row, file_name);
    let quote = match &original.wa_id {
        Some(wa_id) => {
            let (raw, wa_sender) = db::quote_source(&ctx.db, &original.id)?;
            Some(Quote {
                wa_id: wa_id.clone(),
                // The author as WhatsApp named them: a LID chat quotes the LID.
                sender_jid: wa_sender.unwrap_or_else(|| original.sender_jid.clone()),
                text: original.message.clone(),
                raw,
            })
        }
        None => None,
    };
    let expiration = db::chat_expiration(&ctx.db, &original.phone)?;
    let wa_id = row.wa_id.clone().unwrap_or_default();
    let sent = ctx.wa.call(|reply| WaCommand::Send {
        to: original.phone.clone(),
        text: row.message.clone(),
        media,
        quote,
        wa_id,
        expiration,
        reply,
    });
    if let Err(e) = sent {
        log::warn!("sending a reply to {} failed: {e}", original.phone);
        return Err(Error::SendFailed("Failed to send message".into()));
    }
    // The original is `replied` now: the customer sees it read.
    send_read_receipts(ctx, std::slice::from_ref(&original.id))?;
    Ok(replied(&row))
}

/// `type/subtype`, optionally with parameters, as a content type is written.
pub fn is_mime(m: &str) -> bool {
    let base = m.split(';').next().unwrap_or("").trim();
    let Some((kind, sub)) = base.split_once('/') else {
        return false;
    };
    let token = |t: &str| {
        !t.is_empty()
            && t.len() <= 127
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    token(kind) && token(sub) && m.len() <= 255 && !m.chars().any(char::is_control)
}

/// A file name a reply's document can be sent with: 1 to 255 bytes, no
/// path, no control characters.
pub fn is_plain_filename(n: &str) -> bool {
    !n.is_empty() && n.len() <= 255 && !n.contains(['/', '\\']) && !n.chars().any(char::is_control)
}

/// A file a reply carries, already streamed into `media/` from the
/// request (hashed on the way, never whole in memory). Unless a reply row
/// takes it (`keep`), the file is removed when this is dropped: a refused,
/// failed or repeated request leaves nothing behind.
#[derive(Debug)]
pub struct ReplyFile {
    stored: crate::wa::MediaInfo,
    dir: std::path::PathBuf,
    kept: bool,
    /// Its content type (`application/octet-stream` when unknown).
    pub mime: String,
    /// Its name (a document is sent with it).
    pub filename: Option<String>,
}

impl ReplyFile {
    /// Streams `content` into `media/` as the file of a reply: None when it
    /// is empty (nothing stored); `TooLarge` past MEDIA_MAX_BYTES and
    /// `Invalid` when `content` finds its input malformed (its message
    /// says how), with nothing stored either way.
    pub fn store(
        ctx: &Ctx,
        mime: String,
        filename: Option<String>,
        content: &mut dyn std::io::Read,
    ) -> Result<Option<ReplyFile>, Error> {
        let config = &ctx.shared.config;
        let max = config.media_max_bytes;
        let stored = crate::media::store_stream(
            &config.media_path,
            reply_media_kind(&mime),
            Some(&mime),
            filename.as_deref(),
            content,
            max,
        )
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::FileTooLarge => Error::TooLarge(format!(
                "The file is larger than MEDIA_MAX_BYTES ({max} bytes)"
            )),
            std::io::ErrorKind::InvalidData => Error::Invalid(e.to_string()),
            _ => Error::Internal(format!("storing a reply's file: {e}")),
        })?;
        let file = ReplyFile {
            stored,
            dir: config.media_path.clone(),
            kept: false,
            mime,
            filename,
        };
        Ok((file.size() > 0).then_some(file))
    }

    /// A form's file part as a reply's file: its content type if it names
    /// one (else `application/octet-stream`), its file name if it is a
    /// plain one (`is_plain_filename`; else none).
    pub fn from_upload(
        ctx: &Ctx,
        content_type: Option<&str>,
        filename: Option<&str>,
        content: &mut dyn std::io::Read,
    ) -> Result<Option<ReplyFile>, Error> {
        let mime = content_type
            .filter(|m| is_mime(m))
            .unwrap_or("application/octet-stream");
        let filename = filename.filter(|n| is_plain_filename(n));
        ReplyFile::store(ctx, mime.into(), filename.map(Into::into), content)
    }

    pub fn size(&self) -> u64 {
        self.stored.size.unwrap_or(0)
    }

    /// Its SHA-256, in hex.
    pub fn sha256(&self) -> &str {
        self.stored.sha256.as_deref().unwrap_or("")
    }

    fn info(&self) -> &crate::wa::MediaInfo {
        &self.stored
    }

    /// The stored file is a reply's now: it stays.
    fn keep(&mut self) {
        self.kept = true;
    }
}

impl Drop for ReplyFile {
    fn drop(&mut self) {
        if !self.kept
            && let Some(name) = &self.stored.file_name
            && let Err(e) = std::fs::remove_file(self.dir.join(name))
        {
            log::warn!("could not remove the unused reply file {name}: {e}");
        }
    }
}

/// What a reply's file is sent as, by its content type: jpeg, png and webp
/// images; mp4 video; ogg with opus a voice note, other audio an audio
/// file; anything else a document.
pub fn reply_media_kind(mime: &str) -> &'static str {
    let mime = mime.trim().to_ascii_lowercase();
    let base = mime.split(';').next().unwrap_or("").trim();
    match base {
        "image/jpeg" | "image/png" | "image/webp" => "image",
        "video/mp4" => "video",
        "audio/ogg" | "audio/opus" if base == "audio/opus" || mime.contains("opus") => "voice",
        _ if base.starts_with("audio/") => "audio",
        _ => "document",
    }
}

/// The stored file of a reply row, as the backend sends it.
fn outgoing_media(
    ctx: &Ctx,
    row: &db::Message,
    file_name: Option<String>,
) -> Option<crate::wa::OutgoingMedia> {
    let kind = row.media_type.clone()?;
    let name = row.media_url.as_deref()?.strip_prefix("/media/")?;
    Some(crate::wa::OutgoingMedia {
        kind,
        path: ctx.shared.config.media_path.join(name),
        mime: row.media_mime.clone().unwrap_or_default(),
        file_name,
        size: row.media_size.unwrap_or(0) as u64,
        sha256: row.media_sha256.clone().unwrap_or_default(),
    })
}

fn replied(row: &db::Message) -> Replied {
    Replied {
        reply_id: row.id.clone(),
        wa_id: row.wa_id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both ways a reply names its file (JSON `filename`, a form's file
    /// part) take the same names.
    #[test]
    fn a_file_name_is_plain_or_not_taken() {
        for name in ["invoice.pdf", "Factura nº 7.pdf", "x", &"a".repeat(255)] {
            assert!(is_plain_filename(name), "{name}");
        }
        for name in [
            "",
            "../x.png",
            "a/b.pdf",
            "a\\b.pdf",
            "a\nb.pdf",
            &"a".repeat(256),
        ] {
            assert!(!is_plain_filename(name), "{name:?}");
        }
    }

    #[test]
    fn chats_are_named_by_number_or_jid() {
        let person = "15551234567@s.whatsapp.net".to_string();
        for name in [
            "15551234567",
            "+15551234567",
            " +1 (555) 123-4567 ",
            "1.555.123.4567",
        ] {
            assert_eq!(chat_candidates(name).unwrap()[0], person, "{name}");
        }
        assert_eq!(
            chat_candidates("15551234567").unwrap()[1..],
            ["15551234567@g.us", "15551234567@lid"]
        );
        assert_eq!(chat_candidates(&person).unwrap(), vec![person.clone()]);
        for bad in [
            "",
            "+",
            "abc",
            "1555x",
            "a b@c",
            "' OR 1=1",
            &"1".repeat(33),
        ] {
            assert!(chat_candidates(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_reply_file_goes_as_what_its_type_names() {
        for (mime, kind) in [
            ("image/jpeg", "image"),
            ("image/PNG", "image"),
            ("image/webp", "image"),
            ("image/gif", "document"),
            ("video/mp4", "video"),
            ("audio/ogg; codecs=opus", "voice"),
            ("audio/ogg", "audio"),
            ("audio/mpeg", "audio"),
            ("application/pdf", "document"),
            ("application/x-unknown", "document"),
            ("", "document"),
        ] {
            assert_eq!(reply_media_kind(mime), kind, "{mime}");
        }
    }

    #[test]
    fn jids() {
        assert!(is_jid("15551234567@s.whatsapp.net"));
        assert!(is_jid("1203630@g.us"));
        assert!(!is_jid("15551234567"));
        assert!(!is_jid("@s.whatsapp.net"));
        assert!(!is_jid("a b@c"));
    }

    #[test]
    fn the_stored_answer_reads_back() {
        let first = Replied {
            reply_id: "r1".into(),
            wa_id: Some("3EB0AA".into()),
        };
        let stored = first.to_json().to_string();
        assert_eq!(stored, r#"{"replyId":"r1","success":true,"waId":"3EB0AA"}"#);
        assert_eq!(serde_json::from_str::<Replied>(&stored).unwrap(), first);
    }

    #[test]
    fn inbox_filters_are_checked() {
        let params = [("phone", "+1 555-123"), ("startDate", "2024-02-01")];
        let lookup = |name: &str| params.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        let q = inbox_query(Some("all"), lookup).unwrap();
        assert_eq!(q.status, None);
        assert_eq!(q.phone.as_deref(), Some("1555123"));
        assert_eq!(q.from, clock::parse_date("2024-02-01"));
        assert_eq!((q.page, q.limit), (1, 50));
        assert!(matches!(
            inbox_query(Some("sent"), |_| None),
            Err(Error::Invalid(m)) if m == "Invalid status"
        ));
        assert!(matches!(
            inbox_query(None, |n| (n == "endDate").then_some("01/02/2024")),
            Err(Error::Invalid(m)) if m.starts_with("Invalid endDate")
        ));
    }
}
