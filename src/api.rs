//! The JSON API handlers: one function per route of `router::ROUTES`, each
//! `fn(&mut Ctx, &Request, params) -> Result<Response, ApiError>`.

use crate::db::{self, IdempotencyClaim, InboxQuery};
use crate::error::ApiError;
use crate::http::{Body, Ctx, Request, Response};
use crate::state::ConnState;
use crate::wa::{Quote, SimMessage, WaCommand};
use crate::{auth, clock, media, openapi, webhooks};
use base64::Engine as _;
use serde_json::{Map, Value, json};

// ───────────────────────────── helpers ─────────────────────────────

/// `page` as the Node server read it: absent, not an integer or < 1 -> 1.
pub fn page_param(raw: Option<&str>) -> u32 {
    match raw.map(|s| s.trim().parse::<i64>()) {
        Some(Ok(n)) if n >= 1 => n.min(1_000_000) as u32,
        _ => 1,
    }
}

/// `limit`: absent -> `default`; not an integer or < 1 -> 1; > 100 -> 100.
pub fn limit_param(raw: Option<&str>, default: u32) -> u32 {
    match raw.map(|s| s.trim().parse::<i64>()) {
        None => default,
        Some(Ok(n)) => n.clamp(1, 100) as u32,
        Some(Err(_)) => 1,
    }
}

/// An optional `YYYY-MM-DD` query parameter; malformed -> 400.
fn date_param(req: &Request, name: &str) -> Result<Option<i64>, ApiError> {
    match req.query(name).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(text) => clock::parse_date(text)
            .map(Some)
            .ok_or_else(|| ApiError::bad(format!("Invalid {name}: expected a date as YYYY-MM-DD"))),
    }
}

/// A non-empty, trimmed text filter.
/// A non-empty, trimmed text filter; a NUL byte (which no stored text can
/// hold, and which SQLite's full-text query syntax cannot take) is a 400.
fn text_param(req: &Request, name: &str) -> Result<Option<String>, ApiError> {
    let value = req.query(name).map(str::trim).filter(|s| !s.is_empty());
    if value.is_some_and(|v| v.contains('\0')) {
        return Err(ApiError::bad(format!(
            "{name} must not contain a NUL character"
        )));
    }
    Ok(value.map(str::to_string))
}

/// What a person types for a number: digits with an optional `+` and the
/// usual separators (spaces, dashes, dots, parentheses). The digits, or None
/// when it is something else.
fn phone_digits(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let rest = raw.strip_prefix('+').unwrap_or(raw);
    let digits: String = rest
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    (!digits.is_empty() && digits.len() <= 32 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then_some(digits)
}

/// The JIDs a chat named `raw` may be stored under, most likely first: a
/// JID is itself; a bare number or `+number` is a person's chat, a group
/// whose id is that number, or a LID chat.
pub fn chat_candidates(raw: &str) -> Result<Vec<String>, ApiError> {
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
    Err(ApiError::bad(
        "phone must be a number such as 15551234567 or +15551234567, or a chat JID such as \
         15551234567@s.whatsapp.net or 120363012345678901@g.us",
    ))
}

/// The stored chat a `:phone` path parameter names (see `chat_candidates`);
/// for a chat never seen, its first candidate. Shared by every route that
/// names a chat.
pub fn chat_param(ctx: &Ctx, raw: &str) -> Result<String, ApiError> {
    let candidates = chat_candidates(raw)?;
    Ok(db::first_known_chat(&ctx.db, &candidates)?.unwrap_or_else(|| candidates[0].clone()))
}

/// A JID for an address given as a JID, a bare number or `+number` (the
/// simulator's `from`): a number is a person's chat.
fn jid_or_number(raw: &str) -> Option<String> {
    if raw.contains('@') {
        is_jid(raw).then(|| raw.to_string())
    } else {
        phone_digits(raw).map(|d| format!("{d}@s.whatsapp.net"))
    }
}

fn pagination(page: u32, limit: u32, total: i64) -> Value {
    json!({
        "page": page,
        "limit": limit,
        "total": total,
        "totalPages": (total + i64::from(limit) - 1) / i64::from(limit),
    })
}

/// An optional string field of a JSON body: absent/null -> None, a string ->
/// Some, anything else -> 400 naming the field.
fn opt_string(body: &Map<String, Value>, field: &str) -> Result<Option<String>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::bad(format!("{field} must be a string"))),
    }
}

fn require_connected(ctx: &Ctx) -> Result<(), ApiError> {
    if ctx.shared.connection().state == ConnState::Connected {
        Ok(())
    } else {
        Err(ApiError::Unavailable("WhatsApp not connected".into()))
    }
}

fn is_reply_status(s: &str) -> bool {
    db::REPLY_STATUSES.contains(&s)
}

// ───────────────────────────── the v1 contract ─────────────────────────────

pub fn health(ctx: &mut Ctx, _: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let connected = ctx.shared.connection().state == ConnState::Connected;
    Ok(Response::ok(
        &json!({ "status": if connected { "connected" } else { "disconnected" } }),
    ))
}

pub fn status(ctx: &mut Ctx, _: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let c = ctx.shared.connection();
    Ok(Response::ok(&json!({
        "connected": c.state == ConnState::Connected,
        "qrReady": c.live_qr().is_some(),
        "sessionExists": c.session_exists,
        "state": c.state.as_str(),
        "me": c.me,
        "lastError": c.last_error,
        "stoppedUntil": c.stopped_until.map(|t| clock::format_iso_millis(t * 1000)),
        "backend": match ctx.shared.config.backend {
            crate::config::Backend::Simulator => "simulator",
            crate::config::Backend::WhatsApp => "whatsapp",
        },
    })))
}

/// Parses the inbox filters shared by the API and the dashboard.
pub fn inbox_query(req: &Request, status: Option<&str>) -> Result<InboxQuery, ApiError> {
    let status = match status.unwrap_or("unread") {
        "all" => None,
        s if matches!(s, "unread" | "read" | "replied" | "ignored") => Some(s.to_string()),
        _ => return Err(ApiError::bad("Invalid status")),
    };
    let from = date_param(req, "startDate")?;
    let until = date_param(req, "endDate")?.map(|day| day + 86_400);
    // A number as people write it (`+1 555-123 4567`) matches the digits of
    // the chat JID; anything else is a substring of the JID as typed.
    let phone = text_param(req, "phone")?.map(|p| phone_digits(&p).unwrap_or(p));
    Ok(InboxQuery {
        status,
        search: text_param(req, "search")?,
        phone,
        from,
        until,
        page: page_param(req.query("page")),
        limit: limit_param(req.query("limit"), 50),
    })
}

/// An inbox page, serialised straight from the rows (fields in the
/// alphabetical order `json!` used).
#[derive(serde::Serialize)]
struct MessagePage<'a> {
    count: usize,
    messages: &'a [db::Message],
    pagination: Value,
}

/// A conversation page, likewise.
#[derive(serde::Serialize)]
struct ConversationPage<'a> {
    count: usize,
    messages: &'a [db::Message],
    pagination: Value,
    phone: &'a str,
}

pub fn inbox(ctx: &mut Ctx, req: &Request, params: &[&str]) -> Result<Response, ApiError> {
    let q = inbox_query(req, params.first().copied())?;
    let (rows, total) = db::inbox(&ctx.db, &q)?;
    let page = MessagePage {
        count: rows.len(),
        messages: &rows,
        pagination: pagination(q.page, q.limit, total),
    };
    Ok(Response::json_sized(200, &page, 256 + 512 * rows.len()))
}

pub fn message(ctx: &mut Ctx, _: &Request, params: &[&str]) -> Result<Response, ApiError> {
    let m = db::get_message(&ctx.db, params[0])?
        .ok_or_else(|| ApiError::NotFound("Message not found".into()))?;
    Ok(Response::ok(&m.to_json()))
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

/// Validates an `Idempotency-Key` header value.
pub fn idempotency_key(req: &Request) -> Result<Option<String>, ApiError> {
    match req.header("idempotency-key") {
        None => Ok(None),
        Some(k)
            if !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| (0x21..0x7f).contains(&b)) =>
        {
            Ok(Some(k.to_string()))
        }
        Some(_) => Err(ApiError::bad(
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )),
    }
}

pub fn reply(ctx: &mut Ctx, req: &Request, params: &[&str]) -> Result<Response, ApiError> {
    let body = req.json_object()?;
    let text = match body.get("message") {
        None | Some(Value::Null) => return Err(ApiError::bad("Missing message")),
        Some(Value::String(s)) if s.trim().is_empty() => {
            return Err(ApiError::bad("Missing message"));
        }
        Some(Value::String(s)) if s.len() > 65_536 => {
            return Err(ApiError::bad("message is longer than 65536 bytes"));
        }
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(ApiError::bad("message must be a string")),
    };
    let key = idempotency_key(req)?.map(|key| {
        IdempotencyKey::new(
            key,
            "POST /api/v1/messages/:id/reply",
            params[0],
            &Value::Object(body.clone()),
        )
    });
    let result = send_reply(ctx, params[0], &text, key.as_ref(), "api")?;
    Ok(Response::ok(&result))
}

/// Sends `text` as a quoted reply to incoming message `id`, stores it, marks
/// the original replied and fires `message.sent`. Shared by the API and the
/// dashboard (`source`). With an idempotency key, a repeat of the same
/// request returns the first result; the key with another request is a 422.
pub fn send_reply(
    ctx: &mut Ctx,
    id: &str,
    text: &str,
    key: Option<&IdempotencyKey>,
    source: &str,
) -> Result<Value, ApiError> {
    let original = db::get_message(&ctx.db, id)?
        .ok_or_else(|| ApiError::NotFound("Message not found".into()))?;
    if original.direction != "incoming" {
        return Err(ApiError::bad("Only incoming messages can be answered"));
    }
    if let Some(k) = key {
        match db::claim_idempotency(&mut ctx.db, &k.key, id, &k.request_hash)? {
            IdempotencyClaim::New => {}
            IdempotencyClaim::InFlight => {
                return Err(ApiError::Conflict(
                    "A request with this Idempotency-Key is still in progress".into(),
                ));
            }
            IdempotencyClaim::Done(_, body) => {
                return serde_json::from_str(&body)
                    .map_err(|e| ApiError::Internal(format!("stored idempotent answer: {e}")));
            }
            IdempotencyClaim::Mismatch => {
                return Err(ApiError::Unprocessable(
                    "This Idempotency-Key was already used for a different request (another message or another body); \
                     send a new key with a new request"
                        .into(),
                ));
            }
        }
    }
    let outcome = deliver_reply(ctx, &original, text, key.map(|k| k.key.as_str()), source);
    if let Some(k) = key {
        match &outcome {
            Ok(value) => db::finish_idempotency(&ctx.db, &k.key, id, 200, &value.to_string())?,
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
    key: Option<&str>,
    source: &str,
) -> Result<Value, ApiError> {
    require_connected(ctx)?;
    let earlier = match key {
        Some(key) => db::reply_for_key(&ctx.db, &original.id, key)?,
        None => None,
    };
    let row = match earlier {
        Some(row)
            if row.delivery_status.as_deref() != Some("pending")
                && row.delivery_status.as_deref() != Some("failed") =>
        {
            // The first try was accepted after its request gave up.
            return Ok(reply_answer(&row));
        }
        Some(row) => {
            db::retry_outgoing(&ctx.db, &row.id)?;
            row
        }
        None => {
            let me = ctx.shared.connection().me.unwrap_or_default();
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
                    created_at: clock::now_secs(),
                },
            )?;
            tx.commit()?;
            row
        }
    };
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
        quote,
        wa_id,
        expiration,
        reply,
    });
    if let Err(e) = sent {
        log::warn!("sending a reply to {} failed: {e}", original.phone);
        return Err(ApiError::SendFailed("Failed to send message".into()));
    }
    Ok(reply_answer(&row))
}

fn reply_answer(row: &db::Message) -> Value {
    json!({ "success": true, "replyId": row.id, "waId": row.wa_id })
}

pub fn message_status(ctx: &mut Ctx, req: &Request, params: &[&str]) -> Result<Response, ApiError> {
    let body = req.json_object()?;
    let status = body
        .get("status")
        .and_then(Value::as_str)
        .filter(|s| is_reply_status(s));
    let Some(status) = status else {
        return Err(ApiError::bad("Invalid status"));
    };
    if !db::set_reply_status(&ctx.db, params[0], status)? {
        return Err(ApiError::NotFound("Not found".into()));
    }
    Ok(Response::ok(&json!({ "success": true })))
}

/// Most ids one batch may name.
const BATCH_MAX: usize = 1000;

pub fn batch_status(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let body = req.json_object()?;
    let ids: Vec<String> = match body.get("ids") {
        Some(Value::Array(ids)) if !ids.is_empty() && ids.len() <= BATCH_MAX => ids
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| ApiError::bad("Missing or invalid ids array"))?,
        _ => return Err(ApiError::bad("Missing or invalid ids array")),
    };
    let Some(status) = body
        .get("status")
        .and_then(Value::as_str)
        .filter(|s| is_reply_status(s))
    else {
        return Err(ApiError::bad("Invalid status"));
    };
    let updated = db::set_reply_status_many(&mut ctx.db, &ids, status)?;
    Ok(Response::ok(
        &json!({ "success": true, "updated": updated }),
    ))
}

pub fn webhooks_list(ctx: &mut Ctx, _: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let hooks = db::list_webhooks(&ctx.db)?;
    Ok(Response::ok(
        &json!({ "webhooks": hooks.iter().map(db::Webhook::to_json).collect::<Vec<_>>() }),
    ))
}

pub fn media(ctx: &mut Ctx, _: &Request, params: &[&str]) -> Result<Response, ApiError> {
    let name = params[0];
    let path = media::find(&ctx.shared.config.media_path, name)
        .ok_or_else(|| ApiError::NotFound("Media not found".into()))?;
    let file = std::fs::File::open(&path)?;
    let len = file.metadata()?.len() as usize;
    Ok(Response {
        status: 200,
        headers: vec![
            ("Content-Type", media::content_type(name).to_string()),
            (
                "Cache-Control",
                "private, max-age=86400, immutable".to_string(),
            ),
            (
                "Content-Disposition",
                format!("inline; filename=\"{name}\""),
            ),
        ],
        body: Body::File(file, len),
    })
}

// ───────────────────────────── extensions ─────────────────────────────

pub fn openapi(_: &mut Ctx, _: &Request, _: &[&str]) -> Result<Response, ApiError> {
    Ok(Response::ok(&openapi::document()))
}

pub fn conversations(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let page = page_param(req.query("page"));
    let limit = limit_param(req.query("limit"), 50);
    let (rows, total) = db::conversations(&ctx.db, page, limit)?;
    let phones: Vec<&str> = rows.iter().map(|c| c.phone.as_str()).collect();
    let names = db::chat_names(&ctx.db, &phones)?;
    let list: Vec<Value> = rows
        .iter()
        .map(|c| {
            json!({
                "phone": c.phone,
                "name": names.get(&c.phone),
                "unread": c.unread,
                "lastMessage": c.last.to_json(),
            })
        })
        .collect();
    Ok(Response::ok(
        &json!({ "count": list.len(), "conversations": list, "pagination": pagination(page, limit, total) }),
    ))
}

pub fn conversation_messages(
    ctx: &mut Ctx,
    req: &Request,
    params: &[&str],
) -> Result<Response, ApiError> {
    let page = page_param(req.query("page"));
    let limit = limit_param(req.query("limit"), 50);
    let phone = chat_param(ctx, params[0])?;
    let (rows, total) = db::conversation_messages(&ctx.db, &phone, page, limit)?;
    let page = ConversationPage {
        count: rows.len(),
        messages: &rows,
        pagination: pagination(page, limit, total),
        phone: &phone,
    };
    Ok(Response::json_sized(200, &page, 256 + 512 * rows.len()))
}

pub fn qr(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let c = ctx.shared.connection();
    let Some(qr) = c.live_qr() else {
        return Err(ApiError::NotFound(
            "No QR code is available (already paired, or not yet generated)".into(),
        ));
    };
    let expires_in = qr
        .expires
        .saturating_duration_since(std::time::Instant::now())
        .as_secs();
    match req.query("format") {
        Some("svg") => Ok(Response::bytes(
            200,
            "image/svg+xml",
            crate::qr::svg(&qr.code).into_bytes(),
        )),
        None | Some("json") => Ok(Response::ok(
            &json!({ "qr": qr.code, "expiresIn": expires_in }),
        )),
        Some(_) => Err(ApiError::bad("format must be json or svg")),
    }
}

pub fn pair_code(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let body = req.json_object()?;
    let phone = opt_string(&body, "phone")?.unwrap_or_default();
    let code = request_pair_code(ctx, &phone)?;
    Ok(Response::ok(&json!({ "code": code })))
}

/// Asks the backend for a pairing code for `phone` (international format;
/// spaces, dashes, `+` and parentheses are dropped). Shared with the dashboard.
pub fn request_pair_code(ctx: &mut Ctx, phone: &str) -> Result<String, ApiError> {
    let phone: String = phone
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '+' | '(' | ')'))
        .collect();
    if !(7..=15).contains(&phone.len()) || !phone.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad(
            "phone must be the number in international format, digits only (7 to 15)",
        ));
    }
    if ctx.shared.connection().state == ConnState::Connected {
        return Err(ApiError::Conflict(
            "Already paired and connected; log out first".into(),
        ));
    }
    ctx.wa
        .call(|reply| WaCommand::PairCode { phone, reply })
        .map_err(|e| ApiError::Unavailable(format!("Could not get a pairing code: {e}")))
}

pub fn logout(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    ctx.wa
        .call(|reply| WaCommand::Logout { reply })
        .map_err(|e| ApiError::Unavailable(format!("Could not log out: {e}")))?;
    ctx.audit.event(
        "session_logout",
        Some(&req.ip),
        "logged out through the API",
    );
    Ok(Response::ok(&json!({ "success": true })))
}

/// `POST /api/v1/session/pair`: start a new pairing after a logout (QR codes
/// then appear at `/api/v1/qr` and on the dashboard's `/login`).
pub fn session_pair(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    start_pairing(ctx)?;
    ctx.audit.event(
        "session_pair",
        Some(&req.ip),
        "new pairing started through the API",
    );
    Ok(Response::ok(&json!({ "success": true })))
}

/// Asks the backend for a new pairing; 409 while a paired session exists.
pub fn start_pairing(ctx: &mut Ctx) -> Result<(), ApiError> {
    if ctx.shared.session_paired() {
        return Err(ApiError::Conflict("Already paired; log out first".into()));
    }
    ctx.wa
        .call(|reply| WaCommand::Pair { reply })
        .map_err(|e| ApiError::Conflict(format!("Could not start a pairing: {e}")))
}

pub fn webhook_create(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let body = req.json_object()?;
    let input = webhooks::WebhookInput::parse(&body, true)?;
    let (hook, secret) = create_webhook(ctx, input)?;
    let mut out = hook.to_json();
    if let Some(secret) = secret {
        // The one time the secret is shown.
        out["secret"] = json!(secret);
    }
    Ok(Response::json(201, &out))
}

/// Stores a new webhook from validated input (`parse(.., true)`); returns it
/// and its secret, for the one time it is shown. Shared with the dashboard.
pub fn create_webhook(
    ctx: &mut Ctx,
    input: webhooks::WebhookInput,
) -> Result<(db::Webhook, Option<String>), ApiError> {
    let now = clock::now_secs();
    let secret = input.secret.clone().flatten();
    let hook = db::Webhook {
        id: auth::uuid_v4(),
        url: input.url.ok_or_else(|| ApiError::bad("url is required"))?,
        events: input
            .events
            .ok_or_else(|| ApiError::bad("events is required"))?,
        secret: secret.clone(),
        active: input.active.unwrap_or(true),
        created_at: now,
        updated_at: now,
    };
    db::upsert_webhook(&ctx.db, &hook)?;
    Ok((hook, secret))
}

pub fn find_webhook(ctx: &Ctx, id: &str) -> Result<db::Webhook, ApiError> {
    db::get_webhook(&ctx.db, id)?.ok_or_else(|| ApiError::NotFound("Webhook not found".into()))
}

pub fn webhook_update(ctx: &mut Ctx, req: &Request, params: &[&str]) -> Result<Response, ApiError> {
    let body = req.json_object()?;
    let input = webhooks::WebhookInput::parse(&body, false)?;
    let (hook, new_secret) = update_webhook(ctx, params[0], input)?;
    let mut out = hook.to_json();
    if let Some(secret) = new_secret {
        out["secret"] = json!(secret);
    }
    Ok(Response::ok(&out))
}

/// Applies validated input to webhook `id`; returns it and a newly set
/// secret, for the one time it is shown. Shared with the dashboard.
pub fn update_webhook(
    ctx: &mut Ctx,
    id: &str,
    input: webhooks::WebhookInput,
) -> Result<(db::Webhook, Option<String>), ApiError> {
    let mut hook = find_webhook(ctx, id)?;
    let new_secret = input.secret.clone().flatten();
    if let Some(url) = input.url {
        hook.url = url;
    }
    if let Some(events) = input.events {
        hook.events = events;
    }
    if let Some(secret) = input.secret {
        hook.secret = secret;
    }
    if let Some(active) = input.active {
        hook.active = active;
    }
    hook.updated_at = clock::now_secs();
    db::upsert_webhook(&ctx.db, &hook)?;
    Ok((hook, new_secret))
}

pub fn webhook_delete(ctx: &mut Ctx, _: &Request, params: &[&str]) -> Result<Response, ApiError> {
    if !db::delete_webhook(&ctx.db, params[0])? {
        return Err(ApiError::NotFound("Webhook not found".into()));
    }
    Ok(Response::ok(&json!({ "success": true })))
}

pub fn webhook_test(ctx: &mut Ctx, _: &Request, params: &[&str]) -> Result<Response, ApiError> {
    let delivery_id = queue_test_delivery(ctx, params[0])?;
    Ok(Response::json(
        202,
        &json!({ "success": true, "deliveryId": delivery_id }),
    ))
}

/// Queues a `webhook.test` delivery to webhook `id`, whatever it subscribes
/// to; returns the delivery's id. Shared with the dashboard.
pub fn queue_test_delivery(ctx: &mut Ctx, id: &str) -> Result<String, ApiError> {
    let hook = find_webhook(ctx, id)?;
    let data = json!({ "webhookId": hook.id, "message": "This is a test event from whatsapp-api" });
    let payload = webhooks::payload(webhooks::WEBHOOK_TEST, data);
    let delivery_id = db::insert_delivery(&ctx.db, &hook.id, webhooks::WEBHOOK_TEST, &payload)?;
    ctx.webhooks.wake();
    Ok(delivery_id)
}

pub fn webhook_deliveries(
    ctx: &mut Ctx,
    req: &Request,
    params: &[&str],
) -> Result<Response, ApiError> {
    let hook = find_webhook(ctx, params[0])?;
    let page = page_param(req.query("page"));
    let limit = limit_param(req.query("limit"), 50);
    let (rows, total) = db::list_deliveries(&ctx.db, &hook.id, page, limit)?;
    Ok(Response::ok(&json!({
        "deliveries": rows.iter().map(db::Delivery::to_json).collect::<Vec<_>>(),
        "pagination": pagination(page, limit, total),
    })))
}

pub fn redeliver(ctx: &mut Ctx, _: &Request, params: &[&str]) -> Result<Response, ApiError> {
    if !db::redeliver(&ctx.db, params[0], None)? {
        return Err(ApiError::NotFound("Delivery not found".into()));
    }
    ctx.webhooks.wake();
    Ok(Response::json(
        202,
        &json!({ "success": true, "deliveryId": params[0] }),
    ))
}

pub fn audit_logs(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let q = db::AuditQuery {
        action: text_param(req, "action")?,
        from: date_param(req, "startDate")?,
        until: date_param(req, "endDate")?.map(|d| d + 86_400),
        page: page_param(req.query("page")),
        limit: limit_param(req.query("limit"), 50),
    };
    let (rows, total) = db::audit_logs(&ctx.db, &q)?;
    let logs: Vec<Value> = rows
        .iter()
        .map(|(id, e)| {
            json!({
                "id": id,
                "action": e.action,
                "method": e.method,
                "path": e.path,
                "status": e.status,
                "ip_address": e.ip,
                "duration_ms": e.duration_us.map(|us| us as f64 / 1000.0),
                "details": e.details,
                "created_at": clock::format_datetime(e.created_at),
            })
        })
        .collect();
    Ok(Response::ok(
        &json!({ "count": logs.len(), "logs": logs, "pagination": pagination(q.page, q.limit, total) }),
    ))
}

pub fn metrics(ctx: &mut Ctx, _: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let conn = ctx.shared.connection();
    let gauges = crate::metrics::Gauges {
        webhook_pending: db::pending_delivery_count(&ctx.db)?,
        connection_state: conn.state.as_str(),
        uptime_secs: ctx.shared.started.elapsed().as_secs_f64(),
        inbox_unread: db::inbox_count(&ctx.db, Some("unread"))?,
    };
    Ok(Response::bytes(
        200,
        "text/plain; version=0.0.4; charset=utf-8",
        ctx.shared.metrics.render(&gauges).into_bytes(),
    ))
}

// ───────────────────────────── simulator ─────────────────────────────

/// Largest decoded simulator media (the request body is capped at 1 MiB anyway).
const SIM_MEDIA_KINDS: [&str; 5] = ["image", "video", "audio", "document", "sticker"];

pub fn sim_inject(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let body = req.json_object()?;
    let from = opt_string(&body, "from")?.unwrap_or_default();
    let Some(from) = jid_or_number(&from) else {
        return Err(ApiError::bad(
            "from must be a number such as 15551234567 (or +15551234567) or a JID such as 15551234567@s.whatsapp.net",
        ));
    };
    let group = match opt_string(&body, "group")? {
        Some(g) if g.contains('@') => Some(g),
        Some(g) => Some(format!("{g}@g.us")),
        None => None,
    };
    if let Some(g) = &group
        && !(is_jid(g) && g.ends_with("@g.us"))
    {
        return Err(ApiError::bad(
            "group must be a group JID such as 120363012345678901@g.us (or its number)",
        ));
    }
    let id = opt_string(&body, "id")?;
    if let Some(id) = &id
        && (id.is_empty() || id.len() > 128)
    {
        return Err(ApiError::bad("id must be 1 to 128 characters"));
    }
    let media_type = opt_string(&body, "media_type")?;
    if let Some(kind) = &media_type
        && !SIM_MEDIA_KINDS.contains(&kind.as_str())
    {
        return Err(ApiError::bad(
            "media_type must be one of image, video, audio, document, sticker",
        ));
    }
    let media = match opt_string(&body, "media_base64")? {
        Some(b64) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|_| ApiError::bad("media_base64 is not valid base64"))?,
        ),
        None => None,
    };
    if media.is_some() && media_type.is_none() {
        return Err(ApiError::bad("media_base64 needs a media_type"));
    }
    let text = opt_string(&body, "text")?;
    if text.as_deref() == Some("") {
        return Err(ApiError::bad("text must not be empty"));
    }
    if text.is_none() && media_type.is_none() {
        return Err(ApiError::bad("A message needs text or a media_type"));
    }
    let message = SimMessage {
        from,
        text,
        id,
        push_name: opt_string(&body, "push_name")?,
        media_type,
        media,
        mime: opt_string(&body, "mime")?,
        filename: opt_string(&body, "filename")?,
        group_name: group_name(&body, group.is_some())?,
        group,
    };
    let injected = ctx
        .wa
        .call(|reply| WaCommand::SimInject { message, reply })
        .map_err(ApiError::Unavailable)?;
    // 201 only once the message is committed, as the real backend
    // acknowledges WhatsApp only then.
    match injected.committed.recv_timeout(crate::wa::COMMAND_TIMEOUT) {
        Ok(Ok(_)) => Ok(Response::json(201, &json!({ "wa_id": injected.wa_id }))),
        Ok(Err(e)) => Err(ApiError::Unavailable(format!(
            "the message could not be stored: {e}"
        ))),
        Err(_) => Err(ApiError::Unavailable(
            "the event sink did not answer".into(),
        )),
    }
}

/// Largest timestamp the raw route takes (9999-12-31).
const MAX_TIMESTAMP: i64 = 253_402_300_799;

pub fn sim_raw(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let body = req.json_object()?;
    // A number or a JID, as the simulator's other routes take them.
    let jid = |field: &str| -> Result<Option<String>, ApiError> {
        match opt_string(&body, field)? {
            Some(v) => jid_or_number(&v).map(Some).ok_or_else(|| {
                ApiError::bad(format!(
                    "{field} must be a number such as 15551234567 (or +15551234567) or a JID such as 15551234567@s.whatsapp.net"
                ))
            }),
            None => Ok(None),
        }
    };
    let Some(from) = jid("from")? else {
        return Err(ApiError::bad(
            "from must be a number such as 15551234567 (or +15551234567) or a JID such as 15551234567@s.whatsapp.net",
        ));
    };
    let from_alt = jid("from_alt")?;
    let group = match opt_string(&body, "group")? {
        Some(g) if g.contains('@') => Some(g),
        Some(g) => Some(format!("{g}@g.us")),
        None => None,
    };
    if group
        .as_deref()
        .is_some_and(|g| !(is_jid(g) && g.ends_with("@g.us")))
    {
        return Err(ApiError::bad(
            "group must be a group JID such as 120363012345678901@g.us (or its number)",
        ));
    }
    let base64 = |field: &str| -> Result<Option<Vec<u8>>, ApiError> {
        opt_string(&body, field)?
            .map(|b64| {
                base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|_| ApiError::bad(format!("{field} is not valid base64")))
            })
            .transpose()
    };
    let Some(proto) = base64("proto_base64")?.filter(|p| !p.is_empty()) else {
        return Err(ApiError::bad("proto_base64 is required"));
    };
    if !crate::whatsapp::is_message(&proto) {
        return Err(ApiError::bad(
            "proto_base64 is not a protobuf-encoded whatsapp.Message",
        ));
    }
    let id = opt_string(&body, "id")?;
    if id
        .as_ref()
        .is_some_and(|id| id.is_empty() || id.len() > 128)
    {
        return Err(ApiError::bad("id must be 1 to 128 characters"));
    }
    let timestamp = match body.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64().filter(|t| (0..=MAX_TIMESTAMP).contains(t)) {
            Some(t) => Some(t),
            None => {
                return Err(ApiError::bad(
                    "timestamp must be Unix seconds (an integer from 0)",
                ));
            }
        },
    };
    let from_me = match body.get("from_me") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::bad("from_me must be true or false")),
    };
    let message = crate::wa::RawMessage {
        from,
        from_alt,
        proto,
        id,
        push_name: opt_string(&body, "push_name")?,
        group,
        timestamp,
        media: base64("media_base64")?,
        from_me,
    };
    let outcome = ctx
        .wa
        .call(|reply| WaCommand::SimRaw { message, reply })
        .map_err(ApiError::Unavailable)?;
    Ok(Response::json(
        201,
        &json!({ "wa_id": outcome.wa_id, "result": outcome.kind }),
    ))
}

/// The simulator's `group_name`: 1 to 100 characters, only with a `group`.
fn group_name(body: &Map<String, Value>, has_group: bool) -> Result<Option<String>, ApiError> {
    let name = opt_string(body, "group_name")?.map(|n| n.trim().to_string());
    match name {
        Some(_) if !has_group => Err(ApiError::bad("group_name needs a group")),
        Some(n) if n.is_empty() || n.chars().count() > 100 => {
            Err(ApiError::bad("group_name must be 1 to 100 characters"))
        }
        name => Ok(name),
    }
}

/// A JID as the simulator accepts it: `user@server`, user of letters, digits
/// and `._:-`, server of lower-case letters, digits and `.-` (as the OpenAPI
/// document says).
fn is_jid(s: &str) -> bool {
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

pub fn sim_connection(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let body = req.json_object()?;
    let state = opt_string(&body, "state")?.unwrap_or_default();
    if !matches!(
        state.as_str(),
        "qr" | "connected" | "disconnected" | "logged_out"
    ) {
        return Err(ApiError::bad(
            "state must be one of qr, connected, disconnected, logged_out",
        ));
    }
    ctx.wa
        .call(|reply| WaCommand::SimConnection {
            state: state.clone(),
            reply,
        })
        .map_err(ApiError::Unavailable)?;
    // The simulator answers once the sink applied the state: the client's
    // next request (/status, /qr) sees it.
    Ok(Response::ok(&json!({ "success": true })))
}

pub fn sim_sent(ctx: &mut Ctx, _: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let sent = ctx
        .wa
        .call(|reply| WaCommand::SimSent { reply })
        .map_err(ApiError::Unavailable)?;
    Ok(Response::ok(
        &serde_json::to_value(sent).unwrap_or_default(),
    ))
}

pub fn sim_fail_sends(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let body = req.json_object()?;
    let Some(fail) = body.get("fail").and_then(Value::as_bool) else {
        return Err(ApiError::bad("fail must be true or false"));
    };
    ctx.wa
        .call(|reply| WaCommand::SimFailSends { fail, reply })
        .map_err(ApiError::Unavailable)?;
    Ok(Response::ok(&json!({ "success": true, "fail": fail })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_parameters_follow_the_node_server() {
        assert_eq!(page_param(None), 1);
        assert_eq!(page_param(Some("3")), 3);
        assert_eq!(page_param(Some("0")), 1);
        assert_eq!(page_param(Some("-4")), 1);
        assert_eq!(page_param(Some("x")), 1);
        assert_eq!(limit_param(None, 50), 50);
        assert_eq!(limit_param(Some("500"), 50), 100);
        assert_eq!(limit_param(Some("0"), 50), 1);
        assert_eq!(limit_param(Some("abc"), 50), 1);
        assert_eq!(limit_param(Some("20"), 50), 20);
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
    fn jids() {
        assert!(is_jid("15551234567@s.whatsapp.net"));
        assert!(is_jid("1203630@g.us"));
        assert!(!is_jid("15551234567"));
        assert!(!is_jid("@s.whatsapp.net"));
        assert!(!is_jid("a b@c"));
    }
}
