//! The JSON API: one handler per route of `router::ROUTES`, each
//! `fn(&mut Ctx, &Request, params) -> Result<Response, ApiError>`. A handler
//! parses the request, calls an operation (`ops`) and serialises what it
//! returns; an operation's failure becomes its status through
//! `From<ops::Error> for ApiError`.

use crate::error::ApiError;
use crate::ops::messages::{IdempotencyKey, Replied, ReplyFile};
use crate::ops::webhooks::{SecretChange, WebhookChange};
use crate::ops::{self, Ctx, page_number, page_size};
use crate::state::ConnState;
use crate::status::{ReplyStatus, Source};
use crate::wa::{DeliveryStatus, RawMessage, SimMessage, Update, UpdateAction};
use crate::web::{Body, Request, Response};
use crate::{clock, db, media, openapi};
use base64::Engine as _;
use serde_json::{Map, Value, json};
use std::io::Read;

// ───────────────────────────── helpers ─────────────────────────────

/// An optional `YYYY-MM-DD` query parameter; malformed -> 400.
fn date_param(req: &Request, name: &str) -> Result<Option<i64>, ApiError> {
    Ok(ops::messages::date_param(req.query(name), name)?)
}

/// A non-empty, trimmed text filter (see `ops::messages::text_param`).
fn text_param(req: &Request, name: &str) -> Result<Option<String>, ApiError> {
    Ok(ops::messages::text_param(req.query(name), name)?)
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

/// An optional base64 field of a JSON body, decoded.
fn opt_base64(body: &Map<String, Value>, field: &str) -> Result<Option<Vec<u8>>, ApiError> {
    opt_string(body, field)?
        .map(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|_| ApiError::bad(format!("{field} is not valid base64")))
        })
        .transpose()
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
    let q = ops::messages::inbox_query(params.first().copied(), |name| req.query(name))?;
    let (rows, total) = ops::messages::inbox(ctx, &q)?;
    let page = MessagePage {
        count: rows.len(),
        messages: &rows,
        pagination: pagination(q.page, q.limit, total),
    };
    Ok(Response::json_sized(200, &page, 256 + 512 * rows.len()))
}

pub fn message(ctx: &mut Ctx, _: &Request, params: &[&str]) -> Result<Response, ApiError> {
    let m = ops::messages::get(ctx, params[0])?;
    let mut out = m.to_json();
    out["edits"] = serde_json::to_value(ops::messages::edits(ctx, &m)?).unwrap_or_default();
    Ok(Response::ok(&out))
}

/// Validates an `Idempotency-Key` header value.
fn idempotency_key(req: &Request) -> Result<Option<String>, ApiError> {
    match req.header("idempotency-key") {
        None => Ok(None),
        Some(k) if IdempotencyKey::is_valid(k) => Ok(Some(k.to_string())),
        Some(_) => Err(ApiError::bad(
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )),
    }
}

pub fn reply(ctx: &mut Ctx, req: &Request, params: &[&str]) -> Result<Response, ApiError> {
    let parsed = crate::multipart::of(req, |head, content| {
        if head.name == "file" {
            Ok(Some(ReplyFile::from_upload(
                ctx,
                head.content_type.as_deref(),
                head.filename.as_deref(),
                content,
            )?))
        } else {
            Ok(None)
        }
    });
    if let Some(form) = parsed {
        return reply_multipart(ctx, req, params, form?);
    }
    let mut body = req.json_object()?;
    let file = reply_file(ctx, &mut body)?;
    if file.is_none() && req.body_len() > crate::web::MAX_BODY as u64 {
        // Only a file may take a body past the 1 MiB of every other.
        return Err(ApiError::PayloadTooLarge);
    }
    let text = match body.get("message") {
        None | Some(Value::Null) if file.is_some() => String::new(),
        None | Some(Value::Null) => return Err(ApiError::bad("Missing message")),
        Some(Value::String(s)) if s.trim().is_empty() && file.is_none() => {
            return Err(ApiError::bad("Missing message"));
        }
        Some(Value::String(s)) if s.len() > ops::messages::REPLY_MAX_BYTES => {
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
            &Value::Object(body),
        )
    });
    let replied: Replied =
        ops::messages::send_reply(ctx, params[0], &text, file, key.as_ref(), Source::Api)?;
    Ok(Response::ok(&replied.to_json()))
}

/// `POST /api/v1/messages/:id/react`: `{"emoji"}`, `""` removes ours.
pub fn react(ctx: &mut Ctx, req: &Request, params: &[&str]) -> Result<Response, ApiError> {
    let body = req.json_object()?;
    let emoji = match body.get("emoji") {
        None | Some(Value::Null) => return Err(ApiError::bad("Missing emoji")),
        Some(Value::String(e)) => e.clone(),
        Some(_) => return Err(ApiError::bad("emoji must be a string")),
    };
    ops::messages::react(ctx, params[0], &emoji)?;
    Ok(Response::ok(&json!({ "success": true })))
}

/// `POST /api/v1/conversations/:phone/typing`: `{"typing": true|false}`.
pub fn typing(ctx: &mut Ctx, req: &Request, params: &[&str]) -> Result<Response, ApiError> {
    let body = req.json_object()?;
    let Some(typing) = body.get("typing").and_then(Value::as_bool) else {
        return Err(ApiError::bad("typing must be true or false"));
    };
    ops::messages::typing(ctx, params[0], typing)?;
    Ok(Response::ok(&json!({ "success": true })))
}

/// A reply as `multipart/form-data`: a `file` part (its filename and
/// content type are used; already streamed into `media/`) and an optional
/// `message` part, the caption.
fn reply_multipart(
    ctx: &mut Ctx,
    req: &Request,
    params: &[&str],
    form: crate::multipart::Form<Option<Option<ReplyFile>>>,
) -> Result<Response, ApiError> {
    let text = match form.field("message") {
        Some(m) => String::from_utf8(m.to_vec())
            .map_err(|_| ApiError::bad("message must be UTF-8 text"))?,
        None => String::new(),
    };
    if text.len() > ops::messages::REPLY_MAX_BYTES {
        return Err(ApiError::bad("message is longer than 65536 bytes"));
    }
    let file = match form.files.into_iter().find_map(|(_, f)| f) {
        Some(None) => return Err(ApiError::bad("The file is empty")),
        Some(Some(file)) => Some(file),
        None if text.trim().is_empty() => return Err(ApiError::bad("Missing message")),
        None => None,
    };
    // The key binds the caption and the file's content.
    let content = json!({
        "message": text,
        "file": file.as_ref().map(ReplyFile::sha256),
        "mime": file.as_ref().map(|f| f.mime.clone()),
        "filename": file.as_ref().and_then(|f| f.filename.clone()),
    });
    let key = idempotency_key(req)?.map(|key| {
        IdempotencyKey::new(key, "POST /api/v1/messages/:id/reply", params[0], &content)
    });
    let replied =
        ops::messages::send_reply(ctx, params[0], &text, file, key.as_ref(), Source::Api)?;
    Ok(Response::ok(&replied.to_json()))
}

/// The file of a JSON reply: `media_base64` with its `mime` and an
/// optional `filename` (1 to 255 characters, no path), decoded as it is
/// streamed into `media/`. The base64 text itself is part of the parsed
/// body: a JSON string serde_json holds whole (and, while parsing from a
/// reader, once more in its buffer), bounded by the upload limit; its
/// decoded bytes are never whole in memory. Multipart holds neither.
/// In `body`, the text is replaced by the file's SHA-256, which is what the
/// Idempotency-Key binds.
fn reply_file(ctx: &Ctx, body: &mut Map<String, Value>) -> Result<Option<ReplyFile>, ApiError> {
    opt_string(body, "media_base64")?; // a string, or absent
    let Some(Value::String(b64)) = body.remove("media_base64") else {
        for field in ["mime", "filename"] {
            if !matches!(body.get(field), None | Some(Value::Null)) {
                return Err(ApiError::bad(format!("{field} needs media_base64")));
            }
        }
        return Ok(None);
    };
    let mime = match opt_string(body, "mime")? {
        Some(m) if ops::messages::is_mime(&m) => m,
        Some(_) => {
            return Err(ApiError::bad(
                "mime must be a media type such as image/jpeg",
            ));
        }
        None => return Err(ApiError::bad("mime is required with media_base64")),
    };
    let filename = opt_string(body, "filename")?;
    if let Some(name) = &filename
        && !ops::messages::is_plain_filename(name)
    {
        return Err(ApiError::bad(
            "filename must be 1 to 255 characters, without a path",
        ));
    }
    let text = b64.trim();
    if text.is_empty() {
        return Err(ApiError::bad("media_base64 is an empty file"));
    }
    let mut decoded = Base64Content(base64::read::DecoderReader::new(
        text.as_bytes(),
        &base64::engine::general_purpose::STANDARD,
    ));
    let file = ReplyFile::store(ctx, mime, filename, &mut decoded)?
        .ok_or_else(|| ApiError::bad("media_base64 is an empty file"))?;
    body.insert("media_base64".into(), Value::String(file.sha256().into()));
    Ok(Some(file))
}

/// Decoded base64: text that does not decode is malformed input.
struct Base64Content<R>(R);

impl<R: Read> Read for Base64Content<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "media_base64 is not valid base64",
            )
        })
    }
}

/// The `status` field of a body, as a reply status.
fn status_field(body: &Map<String, Value>) -> Result<ReplyStatus, ApiError> {
    Ok(ops::messages::reply_status(
        body.get("status").and_then(Value::as_str),
    )?)
}

pub fn message_status(ctx: &mut Ctx, req: &Request, params: &[&str]) -> Result<Response, ApiError> {
    let body = req.json_object()?;
    let status = status_field(&body)?;
    ops::messages::set_status(ctx, params[0], status)?;
    Ok(Response::ok(&json!({ "success": true })))
}

pub fn batch_status(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let body = req.json_object()?;
    let ids: Vec<String> = match body.get("ids") {
        Some(Value::Array(ids)) if !ids.is_empty() && ids.len() <= ops::messages::BATCH_MAX => ids
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| ApiError::bad("Missing or invalid ids array"))?,
        _ => return Err(ApiError::bad("Missing or invalid ids array")),
    };
    let status = status_field(&body)?;
    let updated = ops::messages::set_statuses(ctx, &ids, status)?;
    Ok(Response::ok(
        &json!({ "success": true, "updated": updated }),
    ))
}

pub fn webhooks_list(ctx: &mut Ctx, _: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let hooks = ops::webhooks::list(ctx)?;
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
    let page = page_number(req.query("page"));
    let limit = page_size(req.query("limit"), 50);
    let (rows, total) = ops::messages::conversations(ctx, page, limit)?;
    let phones: Vec<&str> = rows.iter().map(|c| c.phone.as_str()).collect();
    let names = ops::messages::chat_names(ctx, &phones)?;
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
    let page = page_number(req.query("page"));
    let limit = page_size(req.query("limit"), 50);
    let phone = ops::messages::chat(ctx, params[0])?;
    let (rows, total) = ops::messages::conversation(ctx, &phone, page, limit)?;
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
    let code = ops::session::pair_code(ctx, &phone)?;
    Ok(Response::ok(&json!({ "code": code })))
}

pub fn logout(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    ops::session::logout(ctx)?;
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
    ops::session::start_pairing(ctx)?;
    ctx.audit.event(
        "session_pair",
        Some(&req.ip),
        "new pairing started through the API",
    );
    Ok(Response::ok(&json!({ "success": true })))
}

/// A webhook create (`create`: url and events required) or update body,
/// checked field by field in order.
fn webhook_change(body: &Map<String, Value>, create: bool) -> Result<WebhookChange, ApiError> {
    let mut change = WebhookChange::default();
    match body.get("url") {
        None | Some(Value::Null) if create => return Err(ApiError::bad("url is required")),
        None | Some(Value::Null) => {}
        Some(Value::String(url)) => change.url = Some(ops::webhooks::url(url)?),
        Some(_) => return Err(ApiError::bad("url must be a string")),
    }
    let not_a_list =
        || ApiError::bad("events must be an array of strings or a comma-separated string");
    change.events = match body.get("events") {
        None | Some(Value::Null) if create => return Err(ApiError::bad("events is required")),
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(ops::webhooks::events(s.split(','))?),
        Some(Value::Array(items)) => {
            let names = items
                .iter()
                .map(Value::as_str)
                .collect::<Option<Vec<&str>>>()
                .ok_or_else(not_a_list)?;
            Some(ops::webhooks::events(names)?)
        }
        Some(_) => return Err(not_a_list()),
    };
    change.secret = match body.get("secret") {
        None => None,
        Some(Value::Null) | Some(Value::Bool(false)) => Some(SecretChange::Remove),
        Some(Value::Bool(true)) => Some(SecretChange::Generate),
        Some(Value::String(s)) => Some(SecretChange::Set(ops::webhooks::secret(s)?)),
        Some(_) => return Err(ApiError::bad(ops::webhooks::SECRET_RULE)),
    };
    change.active = match body.get("active") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::Number(n)) if n.as_i64() == Some(1) => Some(true),
        Some(Value::Number(n)) if n.as_i64() == Some(0) => Some(false),
        Some(_) => return Err(ApiError::bad("active must be true or false")),
    };
    Ok(change)
}

/// A webhook's JSON, with the secret the one time it is shown.
fn webhook_json(hook: &db::Webhook, secret: Option<String>) -> Value {
    let mut out = hook.to_json();
    if let Some(secret) = secret {
        out["secret"] = json!(secret);
    }
    out
}

pub fn webhook_create(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let change = webhook_change(&req.json_object()?, true)?;
    let (hook, secret) = ops::webhooks::create(ctx, change)?;
    Ok(Response::json(201, &webhook_json(&hook, secret)))
}

pub fn webhook_update(ctx: &mut Ctx, req: &Request, params: &[&str]) -> Result<Response, ApiError> {
    let change = webhook_change(&req.json_object()?, false)?;
    let (hook, secret) = ops::webhooks::update(ctx, params[0], change)?;
    Ok(Response::ok(&webhook_json(&hook, secret)))
}

pub fn webhook_delete(ctx: &mut Ctx, _: &Request, params: &[&str]) -> Result<Response, ApiError> {
    ops::webhooks::delete(ctx, params[0])?;
    Ok(Response::ok(&json!({ "success": true })))
}

pub fn webhook_test(ctx: &mut Ctx, _: &Request, params: &[&str]) -> Result<Response, ApiError> {
    let delivery_id = ops::webhooks::queue_test(ctx, params[0])?;
    Ok(Response::json(
        202,
        &json!({ "success": true, "deliveryId": delivery_id }),
    ))
}

pub fn webhook_deliveries(
    ctx: &mut Ctx,
    req: &Request,
    params: &[&str],
) -> Result<Response, ApiError> {
    let hook = ops::webhooks::get(ctx, params[0])?;
    let page = page_number(req.query("page"));
    let limit = page_size(req.query("limit"), 50);
    let (rows, total) = ops::webhooks::deliveries(ctx, &hook.id, page, limit)?;
    Ok(Response::ok(&json!({
        "deliveries": rows.iter().map(db::Delivery::to_json).collect::<Vec<_>>(),
        "pagination": pagination(page, limit, total),
    })))
}

pub fn redeliver(ctx: &mut Ctx, _: &Request, params: &[&str]) -> Result<Response, ApiError> {
    ops::webhooks::redeliver(ctx, params[0], None)?;
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
        page: page_number(req.query("page")),
        limit: page_size(req.query("limit"), 50),
    };
    let (rows, total) = ops::audit::logs(ctx, &q)?;
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
        webhook_pending: ops::webhooks::pending_count(ctx)?,
        connection_state: conn.state.as_str(),
        uptime_secs: ctx.shared.started.elapsed().as_secs_f64(),
        inbox_unread: ops::messages::inbox_count(ctx, Some(ReplyStatus::Unread))?,
        streams: &ctx.shared.streams,
    };
    Ok(Response::bytes(
        200,
        "text/plain; version=0.0.4; charset=utf-8",
        ctx.shared.metrics.render(&gauges).into_bytes(),
    ))
}

/// `GET /api/v1/events`: Server-Sent Events, live or resumed. The body is
/// read by the connection's own thread, never by this worker.
pub fn events(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let subscription = crate::events::Subscription::from_request(req)?;
    match ops::events::open_stream(ctx, subscription) {
        Ok(stream) => Ok(Response {
            status: 200,
            headers: vec![
                ("Content-Type", "text/event-stream; charset=utf-8".into()),
                // Proxies such as nginx would otherwise hold events back.
                ("X-Accel-Buffering", "no".into()),
            ],
            body: crate::web::Body::Stream(Box::new(stream)),
        }),
        Err(ops::Error::Unavailable(busy)) => {
            let busy = ApiError::Unavailable(busy);
            Ok(crate::web::error_response(&busy).with_header("Retry-After", "5"))
        }
        Err(e) => Err(e.into()),
    }
}

// ───────────────────────────── simulator ─────────────────────────────

/// `from` of a simulator body: a number or a JID.
fn sim_address(body: &Map<String, Value>, field: &str) -> Result<Option<String>, ApiError> {
    match opt_string(body, field)? {
        Some(v) => ops::simulator::address(&v).map(Some).ok_or_else(|| {
            ApiError::bad(format!(
                "{field} must be a number such as 15551234567 (or +15551234567) or a JID such as 15551234567@s.whatsapp.net"
            ))
        }),
        None => Ok(None),
    }
}

/// `from` of a simulator body, required.
fn sim_from(body: &Map<String, Value>) -> Result<String, ApiError> {
    sim_address(body, "from")?.ok_or_else(|| {
        ApiError::bad(
            "from must be a number such as 15551234567 (or +15551234567) or a JID such as 15551234567@s.whatsapp.net",
        )
    })
}

/// `group` of a simulator body: a group JID or its number.
fn sim_group(body: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    match opt_string(body, "group")? {
        Some(g) => ops::simulator::group(&g).map(Some).ok_or_else(|| {
            ApiError::bad(
                "group must be a group JID such as 120363012345678901@g.us (or its number)",
            )
        }),
        None => Ok(None),
    }
}

/// `id` of a simulator body: 1 to 128 characters.
fn sim_id(body: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    let id = opt_string(body, "id")?;
    if id
        .as_ref()
        .is_some_and(|id| id.is_empty() || id.len() > 128)
    {
        return Err(ApiError::bad("id must be 1 to 128 characters"));
    }
    Ok(id)
}

pub fn sim_inject(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let body = req.json_object()?;
    let from = sim_from(&body)?;
    let group = sim_group(&body)?;
    let id = sim_id(&body)?;
    let media_type = opt_string(&body, "media_type")?;
    if let Some(kind) = &media_type
        && !ops::simulator::MEDIA_KINDS.contains(&kind.as_str())
    {
        return Err(ApiError::bad(
            "media_type must be one of image, video, audio, document, sticker",
        ));
    }
    let media = opt_base64(&body, "media_base64")?;
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
    let wa_id = ops::simulator::inject(ctx, message)?;
    Ok(Response::json(201, &json!({ "wa_id": wa_id })))
}

/// Largest timestamp the raw route takes (9999-12-31).
const MAX_TIMESTAMP: i64 = 253_402_300_799;

pub fn sim_raw(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let body = req.json_object()?;
    let from = sim_from(&body)?;
    let from_alt = sim_address(&body, "from_alt")?;
    let group = sim_group(&body)?;
    let Some(proto) = opt_base64(&body, "proto_base64")?.filter(|p| !p.is_empty()) else {
        return Err(ApiError::bad("proto_base64 is required"));
    };
    let proto = ops::simulator::proto(proto)?;
    let id = sim_id(&body)?;
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
    let message = RawMessage {
        from,
        from_alt,
        proto,
        id,
        push_name: opt_string(&body, "push_name")?,
        group,
        timestamp,
        media: opt_base64(&body, "media_base64")?,
        from_me,
    };
    let outcome = ops::simulator::raw(ctx, message)?;
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

/// `target_wa_id` of a simulator body: 1 to 128 characters.
fn sim_target(body: &Map<String, Value>) -> Result<String, ApiError> {
    match opt_string(body, "target_wa_id")? {
        Some(id) if !id.is_empty() && id.len() <= 128 => Ok(id),
        _ => Err(ApiError::bad("target_wa_id must be 1 to 128 characters")),
    }
}

/// A customer's change to a stored message, as the real backend hands it on.
fn sim_update(
    ctx: &mut Ctx,
    body: &Map<String, Value>,
    action: UpdateAction,
) -> Result<Response, ApiError> {
    let from = sim_from(body)?;
    let group = sim_group(body)?;
    let wa_id = crate::wa::new_message_id();
    let update = Update {
        wa_id: wa_id.clone(),
        chat: group.unwrap_or_else(|| from.clone()),
        sender: from,
        from_me: false,
        mappings: Vec::new(),
        action,
    };
    ops::simulator::update(ctx, update)?;
    Ok(Response::json(201, &json!({ "wa_id": wa_id })))
}

pub fn sim_reaction(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let body = req.json_object()?;
    let target = sim_target(&body)?;
    let emoji = match body.get("emoji") {
        Some(Value::String(e)) if e.len() <= ops::messages::EMOJI_MAX_BYTES => e.clone(),
        _ => {
            return Err(ApiError::bad(
                "emoji must be a string of at most 32 bytes (\"\" removes the reaction)",
            ));
        }
    };
    sim_update(ctx, &body, UpdateAction::Reaction { target, emoji })
}

pub fn sim_edit(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let body = req.json_object()?;
    let target = sim_target(&body)?;
    let text = match opt_string(&body, "text")? {
        Some(t) if !t.is_empty() && t.len() <= ops::messages::REPLY_MAX_BYTES => t,
        _ => return Err(ApiError::bad("text must be 1 to 65536 bytes")),
    };
    sim_update(ctx, &body, UpdateAction::Edit { target, text })
}

pub fn sim_revoke(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let body = req.json_object()?;
    let target = sim_target(&body)?;
    sim_update(ctx, &body, UpdateAction::Revoke { target })
}

pub fn sim_receipt(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let body = req.json_object()?;
    let wa_id = match opt_string(&body, "wa_id")? {
        Some(id) if !id.is_empty() && id.len() <= 128 => id,
        _ => return Err(ApiError::bad("wa_id must be 1 to 128 characters")),
    };
    let status = match opt_string(&body, "status")?.as_deref() {
        Some("delivered") => DeliveryStatus::Delivered,
        // A voice note listened to counts as read.
        Some("read" | "played") => DeliveryStatus::Read,
        _ => return Err(ApiError::bad("status must be delivered, read or played")),
    };
    ops::simulator::receipt(ctx, wa_id, status)?;
    Ok(Response::json(201, &json!({ "success": true })))
}

pub fn sim_connection(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let body = req.json_object()?;
    let state = opt_string(&body, "state")?.unwrap_or_default();
    ops::simulator::set_connection(ctx, &state)?;
    Ok(Response::ok(&json!({ "success": true })))
}

pub fn sim_sent(ctx: &mut Ctx, _: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let sent = ops::simulator::sent(ctx)?;
    Ok(Response::ok(
        &serde_json::to_value(sent).unwrap_or_default(),
    ))
}

pub fn sim_fail_sends(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let body = req.json_object()?;
    let Some(fail) = body.get("fail").and_then(Value::as_bool) else {
        return Err(ApiError::bad("fail must be true or false"));
    };
    ops::simulator::fail_sends(ctx, fail)?;
    Ok(Response::ok(&json!({ "success": true, "fail": fail })))
}
