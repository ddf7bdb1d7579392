//! The dashboard: server-rendered HTML pages, their POST forms, and the
//! static assets they use, embedded in the binary.
//!
//! Invariants: every string that came from WhatsApp, a user or a request
//! reaches the HTML only through `escape()`; every state change is a POST
//! carrying the CSRF token (`read_form` checks it) and answers with a 303;
//! no inline script, style or event handler (the CSP forbids them).

use crate::db::{self, InboxQuery};
use crate::error::ApiError;
use crate::http::{Ctx, Request, Response, percent_encode};
use crate::state::{ConnState, Shared};
use crate::wa::WaCommand;
use crate::{api, auth, clock, webhooks};
use hmac::{KeyInit, Mac};
use serde_json::{Map, Value, json};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

// ───────────────────────────── assets ─────────────────────────────

/// Static files: name, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/app.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../assets/favicon.svg"),
    ),
];

/// Cache headers for assets: a day, then revalidated by a new deploy's version query.
const ASSET_CACHE: &str = "public, max-age=86400";

pub fn asset(_: &mut Ctx, _: &Request, params: &[&str]) -> Result<Response, ApiError> {
    let (_, content_type, bytes) = ASSETS
        .iter()
        .find(|(name, _, _)| *name == params[0])
        .ok_or_else(|| ApiError::NotFound("Asset not found".into()))?;
    Ok(
        Response::bytes(200, content_type, bytes.to_vec())
            .with_header("Cache-Control", ASSET_CACHE),
    )
}

pub fn favicon(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    asset(ctx, req, &["favicon.svg"])
}

// ───────────────────────────── escaping and the frame ─────────────────────────────

/// The one chokepoint for untrusted text into HTML (element content and
/// quoted attribute values alike).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page frame. `{title}`, `{state}`, `{nav}` and `{main}` are filled in
/// that order by `page`, each exactly once.
const FRAME: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · whatsapp-api</title>
<link rel="icon" href="/assets/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/assets/app.css?v={version}">
<script src="/assets/app.js?v={version}" defer></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
<a class="brand" href="/"><img src="/assets/favicon.svg" alt="" width="24" height="24"> whatsapp-api</a>
{state}
<nav aria-label="Main">{nav}</nav>
</header>
<main id="main">
{main}
</main>
<footer class="foot">whatsapp-api {version} · reply-only · <a href="/api/v1/openapi.json">OpenAPI</a></footer>
</body>
</html>
"##;

/// The navigation: path, label.
const NAV: [(&str, &str); 6] = [
    ("/", "Inbox"),
    ("/status", "Connection"),
    ("/login", "Pairing"),
    ("/webhooks", "Webhooks"),
    ("/settings", "Settings"),
    ("/audit-logs", "Audit log"),
];

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A whole page: the frame around `main`, with the pending notice, if any.
fn page(ctx: &Ctx, req: &Request, title: &str, active: &str, main: &str) -> Response {
    let mut nav = String::new();
    for (path, label) in NAV {
        let current = if path == active {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(nav, "<a href=\"{path}\"{current}>{label}</a>");
    }
    let state = ctx.shared.connection().state;
    let state_html = format!(
        "<a class=\"pill state-{s}\" href=\"/status\">WhatsApp: {label}</a>",
        s = state.as_str(),
        label = state_label(state)
    );
    let mut body = String::with_capacity(main.len() + 256);
    if let Some(flash) = req
        .query("flash")
        .and_then(|id| ctx.shared.flashes.take(id))
    {
        write_flash(&mut body, &flash);
    }
    body.push_str(main);
    let title = escape(title);
    let mut out = String::with_capacity(FRAME.len() + body.len() + nav.len() + 256);
    let mut rest = FRAME;
    for (marker, value) in [
        ("{title}", title.as_str()),
        ("{state}", state_html.as_str()),
        ("{nav}", nav.as_str()),
        ("{main}", body.as_str()),
    ] {
        let (before, after) = rest.split_once(marker).expect("the frame has every marker");
        out.push_str(&before.replace("{version}", VERSION));
        out.push_str(value);
        rest = after;
    }
    out.push_str(&rest.replace("{version}", VERSION));
    Response::html(200, out)
}

fn state_label(state: ConnState) -> &'static str {
    match state {
        ConnState::Connecting => "connecting",
        ConnState::Qr => "waiting for pairing",
        ConnState::Connected => "connected",
        ConnState::Disconnected => "disconnected",
        ConnState::LoggedOut => "logged out",
        ConnState::Banned => "temporarily banned by WhatsApp",
        ConnState::ClientOutdated => "stopped: this version is outdated",
        ConnState::Replaced => "stopped: another client took the session",
    }
}

/// `/reply/<id>` and friends: a path segment, percent-encoded.
fn seg(s: &str) -> String {
    percent_encode(s)
}

/// A `?a=b&c=d` query from pairs whose value is not empty.
fn query_string(pairs: &[(&str, &str)]) -> String {
    let mut q = String::new();
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        q.push(if q.is_empty() { '?' } else { '&' });
        q.push_str(k);
        q.push('=');
        q.push_str(&percent_encode(v));
    }
    q
}

fn write_pager(out: &mut String, page: u32, pages: u32, url: impl Fn(u32) -> String) {
    if pages <= 1 {
        return;
    }
    out.push_str("<nav class=\"pager\" aria-label=\"Pages\">");
    if page > 1 {
        let _ = write!(
            out,
            "<a href=\"{}\" rel=\"prev\">← Newer</a>",
            escape(&url(page - 1))
        );
    }
    let _ = write!(out, "<span>Page {page} of {pages}</span>");
    if page < pages {
        let _ = write!(
            out,
            "<a href=\"{}\" rel=\"next\">Older →</a>",
            escape(&url(page + 1))
        );
    }
    out.push_str("</nav>");
}

/// A time for people: UTC, saying so, in a `<time>` that app.js shows in
/// the browser's own time zone (keeping the UTC text as its title).
fn time_html(secs: i64) -> String {
    format!(
        "<time datetime=\"{}\">{} UTC</time>",
        clock::format_iso_millis(secs * 1000),
        clock::format_datetime(secs)
    )
}

fn pages_of(total: i64, limit: u32) -> u32 {
    ((total.max(0) + i64::from(limit) - 1) / i64::from(limit)).clamp(0, i64::from(u32::MAX)) as u32
}

// ───────────────────────────── CSRF, forms, notices ─────────────────────────────

/// The CSRF token: HMAC-SHA256 of the dashboard user under the per-process
/// `csrf_key`. Only a page served to the logged-in user can carry it; it
/// changes with every restart.
pub fn csrf_token(shared: &Shared) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&shared.csrf_key)
        .expect("HMAC takes any key length");
    mac.update(b"whatsapp-api dashboard csrf\0");
    mac.update(shared.config.dashboard_user.as_bytes());
    auth::hex(&mac.finalize().into_bytes())
}

fn csrf_field(ctx: &Ctx) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        csrf_token(&ctx.shared)
    )
}

/// A posted form whose CSRF token has been checked.
struct Form(Vec<(String, String)>);

impl Form {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn text(&self, name: &str) -> &str {
        self.get(name).unwrap_or("").trim()
    }
}

/// Reads a form POST and checks its CSRF token (constant time): 403 without it.
fn read_form(ctx: &Ctx, req: &Request) -> Result<Form, ApiError> {
    let form = Form(req.form()?);
    let expected = csrf_token(&ctx.shared);
    match form.get("csrf") {
        Some(token) if auth::ct_eq(token.as_bytes(), expected.as_bytes()) => Ok(form),
        _ => Err(ApiError::Forbidden(
            "The form's security token is missing or stale; reload the page and try again".into(),
        )),
    }
}

/// Logs a dashboard action in the audit log.
fn audit(ctx: &Ctx, req: &Request, details: String) {
    ctx.audit.event("dashboard_action", Some(&req.ip), details);
}

/// How a notice looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashKind {
    Success,
    Error,
}

/// A one-time notice, shown by the page a POST redirects to.
#[derive(Debug, Clone)]
pub struct Flash {
    pub kind: FlashKind,
    pub text: String,
    /// A secret shown this once (new API key, webhook secret, pairing code).
    pub secret: Option<String>,
}

/// Notices waiting for their redirect's GET, by random id. Taken once;
/// forgotten after `FLASH_TTL` or when `FLASH_MAX` are waiting.
#[derive(Default)]
pub struct Flashes(Mutex<Vec<(String, Instant, Flash)>>);

const FLASH_TTL: Duration = Duration::from_secs(600);
const FLASH_MAX: usize = 256;

impl Flashes {
    pub fn put(&self, flash: Flash) -> String {
        let id = auth::hex(&auth::random_bytes::<16>());
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|(_, at, _)| at.elapsed() < FLASH_TTL);
        if all.len() >= FLASH_MAX {
            all.remove(0);
        }
        all.push((id.clone(), Instant::now(), flash));
        id
    }

    pub fn take(&self, id: &str) -> Option<Flash> {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let at = all.iter().position(|(i, t, _)| {
            auth::ct_eq(i.as_bytes(), id.as_bytes()) && t.elapsed() < FLASH_TTL
        })?;
        Some(all.remove(at).2)
    }
}

fn write_flash(out: &mut String, flash: &Flash) {
    let (class, role) = match flash.kind {
        FlashKind::Success => ("ok", "status"),
        FlashKind::Error => ("error", "alert"),
    };
    let _ = write!(
        out,
        "<div class=\"notice {class}\" role=\"{role}\"><p>{}</p>",
        escape(&flash.text)
    );
    if let Some(secret) = &flash.secret {
        let _ = write!(
            out,
            "<p><code class=\"secret\" id=\"secret\">{}</code></p><p class=\"hint\">Copy it now: it is not shown again.</p>",
            escape(secret)
        );
    }
    out.push_str("</div>");
}

/// 303 to `location` with a notice for the page there.
fn redirect_with(ctx: &Ctx, location: &str, flash: Flash) -> Response {
    let id = ctx.shared.flashes.put(flash);
    let sep = if location.contains('?') { '&' } else { '?' };
    Response::redirect(&format!("{location}{sep}flash={id}"))
}

fn done(ctx: &Ctx, location: &str, text: impl Into<String>) -> Response {
    redirect_with(
        ctx,
        location,
        Flash {
            kind: FlashKind::Success,
            text: text.into(),
            secret: None,
        },
    )
}

fn failed(ctx: &Ctx, location: &str, text: impl Into<String>) -> Response {
    redirect_with(
        ctx,
        location,
        Flash {
            kind: FlashKind::Error,
            text: text.into(),
            secret: None,
        },
    )
}

/// A local path to return to after a form (never another site).
fn safe_back(back: Option<&str>, default: &str) -> String {
    match back {
        Some(b)
            if b.starts_with('/')
                && !b.starts_with("//")
                && !b.contains('\\')
                && !b.chars().any(char::is_control) =>
        {
            b.to_string()
        }
        _ => default.to_string(),
    }
}

/// A 404 inside the frame, for a page whose subject is gone.
fn not_found(ctx: &Ctx, req: &Request, title: &str, back: &str, back_label: &str) -> Response {
    let main = format!(
        "<h1>{title}</h1><p>It may have been deleted, or the link is wrong.</p><p><a href=\"{back}\">{back_label}</a></p>"
    );
    let mut response = page(ctx, req, title, back, &main);
    response.status = 404;
    response
}

fn inline_notice(out: &mut String, text: &str) {
    let _ = write!(
        out,
        "<div class=\"notice error\" role=\"alert\"><p>{}</p></div>",
        escape(text)
    );
}

// ───────────────────────────── inbox ─────────────────────────────

const INBOX_TABS: [(&str, &str); 5] = [
    ("unread", "Unread"),
    ("read", "Read"),
    ("replied", "Replied"),
    ("ignored", "Ignored"),
    ("all", "All"),
];

/// `GET /`: the inbox.
pub fn inbox(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let status = req
        .query("status")
        .filter(|s| INBOX_TABS.iter().any(|(t, _)| t == s))
        .unwrap_or("unread");
    let mut main = String::with_capacity(32 * 1024);
    let q = match api::inbox_query(req, Some(status)) {
        Ok(q) => q,
        Err(e) => {
            inline_notice(&mut main, &e.public_message());
            InboxQuery {
                status: (status != "all").then(|| status.to_string()),
                page: 1,
                limit: 50,
                ..InboxQuery::default()
            }
        }
    };
    let (rows, total) = db::inbox(&ctx.db, &q)?;
    let f = |name: &str| req.query(name).unwrap_or("").trim().to_string();
    let (search, phone, start, end) = (f("search"), f("phone"), f("startDate"), f("endDate"));
    let limit = if req.query("limit").is_some() {
        q.limit.to_string()
    } else {
        String::new()
    };
    let url = |status: &str, page: u32| {
        let page = if page > 1 {
            page.to_string()
        } else {
            String::new()
        };
        format!(
            "/{}",
            query_string(&[
                ("status", if status == "unread" { "" } else { status }),
                ("search", &search),
                ("phone", &phone),
                ("startDate", &start),
                ("endDate", &end),
                ("limit", &limit),
                ("page", &page),
            ])
        )
    };

    main.push_str("<h1>Inbox</h1>");
    main.push_str("<nav class=\"tabs\" aria-label=\"Status\">");
    for (tab, label) in INBOX_TABS {
        let count = db::inbox_count(&ctx.db, (tab != "all").then_some(tab))?;
        let current = if tab == status {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(
            main,
            "<a href=\"{}\"{current}>{label} <span class=\"count\">{count}</span></a>",
            escape(&url(tab, 1))
        );
    }
    main.push_str("</nav>");

    let active = [&search, &phone, &start, &end]
        .iter()
        .filter(|v| !v.is_empty())
        .count();
    // Folded on a phone screen unless a filter is set (app.js unfolds it on
    // a wide one), so the messages come first.
    let _ = write!(
        main,
        "<details class=\"fold\" id=\"filters\"{open}><summary>Filters{count}</summary>\
         <form class=\"filters\" method=\"get\" action=\"/\" role=\"search\">\
         <input type=\"hidden\" name=\"status\" value=\"{status}\">\
         <label>Search text <input type=\"search\" name=\"search\" value=\"{}\"></label>\
         <label>Phone <input type=\"text\" name=\"phone\" inputmode=\"tel\" placeholder=\"+15551234567\" value=\"{}\"></label>\
         <label>From <input type=\"date\" name=\"startDate\" value=\"{}\"></label>\
         <label>Until <input type=\"date\" name=\"endDate\" value=\"{}\"></label>\
         <div class=\"actions\"><button type=\"submit\">Filter</button> <a href=\"{}\">Clear</a></div></form></details>",
        escape(&search),
        escape(&phone),
        escape(&start),
        escape(&end),
        escape(&format!("/{}", query_string(&[("status", status)]))),
        open = if active > 0 { " open" } else { "" },
        count = if active > 0 {
            format!(" <span class=\"count\">{active}</span>")
        } else {
            String::new()
        },
    );

    let pages = pages_of(total, q.limit);
    let _ = write!(
        main,
        "<p class=\"summary\">{total} message{} · page {} of {}</p>",
        if total == 1 { "" } else { "s" },
        q.page,
        pages.max(1)
    );
    if rows.is_empty() {
        main.push_str("<p class=\"empty\">No messages here.</p>");
    } else {
        let back = url(status, q.page);
        let _ = write!(
            main,
            "<form method=\"post\" action=\"/messages/status\">{}\
             <input type=\"hidden\" name=\"back\" value=\"{}\">\
             <div class=\"bulk\"><label class=\"js-only\" hidden><input type=\"checkbox\" id=\"select-all\"> Select all</label>\
             <span class=\"marks\"><span aria-hidden=\"true\">Mark:</span>\
             <button type=\"submit\" name=\"status\" value=\"read\" aria-label=\"Mark selected read\">Read</button>\
             <button type=\"submit\" name=\"status\" value=\"ignored\" aria-label=\"Mark selected ignored\">Ignored</button>\
             <button type=\"submit\" name=\"status\" value=\"unread\" aria-label=\"Mark selected unread\">Unread</button></span></div>\
             <ul class=\"inbox\">",
            csrf_field(ctx),
            escape(&back)
        );
        let groups: Vec<&str> = rows.iter().map(|m| m.phone.as_str()).collect();
        let names = db::chat_names(&ctx.db, &groups)?;
        for m in &rows {
            write_inbox_row(&mut main, m, names.get(&m.phone).map(String::as_str));
        }
        main.push_str("</ul></form>");
    }
    write_pager(&mut main, q.page, pages, |p| url(status, p));
    Ok(page(ctx, req, "Inbox", "/", &main))
}

/// A phone for people: `+15551234567` for a personal JID, the JID otherwise.
fn display_phone(phone: &str) -> String {
    match phone.strip_suffix("@s.whatsapp.net") {
        Some(digits) if digits.bytes().all(|b| b.is_ascii_digit()) => format!("+{digits}"),
        _ => phone.to_string(),
    }
}

fn is_group(phone: &str) -> bool {
    phone.ends_with("@g.us")
}

/// Who wrote a message, for people: a name and number; in a group, the
/// group's name (its JID while the name is unknown) and the member.
fn sender_name(m: &db::Message, chat_name: Option<&str>) -> String {
    let push_name = m.push_name.as_deref().filter(|n| !n.trim().is_empty());
    if is_group(&m.phone) {
        let member = push_name
            .map(str::to_string)
            .unwrap_or_else(|| display_phone(&m.sender_jid));
        return format!("{} · {member}", chat_name.unwrap_or(&m.phone));
    }
    match push_name {
        Some(name) => format!("{name} · {}", display_phone(&m.phone)),
        None => display_phone(&m.phone),
    }
}

fn preview(text: &str, max: usize) -> String {
    let mut p: String = text.chars().take(max).collect();
    if text.chars().nth(max).is_some() {
        p.push('…');
    }
    p
}

fn write_inbox_row(out: &mut String, m: &db::Message, chat_name: Option<&str>) {
    let id = escape(&m.id);
    let text = if m.message.is_empty() {
        m.media_type
            .as_deref()
            .map(|t| format!("[{t}]"))
            .unwrap_or_default()
    } else {
        preview(&m.message, 160)
    };
    let media = m
        .media_type
        .as_deref()
        .map(|t| format!("<span class=\"badge media\">{}</span>", escape(t)))
        .unwrap_or_default();
    let _ = write!(
        out,
        "<li class=\"row st-{st}\"><input type=\"checkbox\" name=\"id\" value=\"{id}\" id=\"sel-{id}\" aria-label=\"Select the message from {from}\">\
         <a class=\"row-link\" href=\"/reply/{href}\"><span class=\"from\" title=\"{from}\">{from}</span>\
         {when}<span class=\"text\">{text}</span></a>\
         <span class=\"badges\">{media}<span class=\"badge st-{st}\">{st}</span></span></li>",
        st = escape(&m.reply_status),
        from = escape(&sender_name(m, chat_name)),
        href = escape(&seg(&m.id)),
        when = time_html(m.created_at),
        text = escape(&text),
    );
}

/// `POST /messages/status`: mark the selected messages.
pub fn messages_status(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let form = read_form(ctx, req)?;
    let back = safe_back(form.get("back"), "/");
    let status = form.text("status").to_string();
    if !matches!(status.as_str(), "read" | "ignored" | "unread" | "replied") {
        return Ok(failed(ctx, &back, "Choose read, ignored or unread"));
    }
    let ids = form.all("id");
    if ids.is_empty() {
        return Ok(failed(ctx, &back, "Select at least one message first"));
    }
    if ids.len() > 1000 {
        return Ok(failed(ctx, &back, "Select at most 1000 messages at once"));
    }
    let updated = db::set_reply_status_many(&mut ctx.db, &ids, &status)?;
    audit(ctx, req, format!("marked {updated} message(s) {status}"));
    Ok(done(
        ctx,
        &back,
        format!(
            "Marked {updated} message{} {status}",
            if updated == 1 { "" } else { "s" }
        ),
    ))
}

// ───────────────────────────── conversation and reply ─────────────────────────────

/// Messages per conversation page.
const CHAT_PAGE: u32 = 100;

/// `GET /reply/:id`: the whole chat of a message, and a reply box.
pub fn conversation(ctx: &mut Ctx, req: &Request, params: &[&str]) -> Result<Response, ApiError> {
    let Some(m) = db::get_message(&ctx.db, params[0])? else {
        return Ok(not_found(
            ctx,
            req,
            "No such message",
            "/",
            "Back to the inbox",
        ));
    };
    let (_, total) = db::conversation_messages(&ctx.db, &m.phone, 1, 1)?;
    let pages = pages_of(total, CHAT_PAGE).max(1);
    let page_no = match req.query("page").map(str::parse::<u32>) {
        Some(Ok(n)) if (1..=pages).contains(&n) => n,
        _ => pages,
    };
    let (rows, _) = db::conversation_messages(&ctx.db, &m.phone, page_no, CHAT_PAGE)?;
    let mut main = String::with_capacity(32 * 1024);
    let chat_name = db::chat_names(&ctx.db, &[m.phone.as_str()])?.remove(&m.phone);
    let name = if is_group(&m.phone) {
        chat_name.clone().unwrap_or_else(|| "Group".to_string())
    } else {
        m.push_name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| display_phone(&m.phone))
    };
    let _ = write!(
        main,
        "<p class=\"crumbs\"><a href=\"/\">← Inbox</a></p>\
         <h1>{}</h1><p class=\"sub\">{} · {total} message{} in this chat</p>",
        escape(&name),
        escape(&display_phone(&m.phone)),
        if total == 1 { "" } else { "s" }
    );
    let self_url = |p: u32| format!("/reply/{}?page={p}", seg(&m.id));
    if page_no > 1 {
        let _ = write!(
            main,
            "<p class=\"older\"><a href=\"{}\">↑ Earlier messages</a></p>",
            escape(&self_url(page_no - 1))
        );
    }
    main.push_str("<ol class=\"chat\">");
    for row in &rows {
        write_bubble(&mut main, row, row.id == m.id);
    }
    main.push_str("</ol>");
    if page_no < pages {
        let _ = write!(
            main,
            "<p class=\"older\"><a href=\"{}\">↓ Later messages</a></p>",
            escape(&self_url(page_no + 1))
        );
    }

    let here = format!("/reply/{}", seg(&m.id));
    if m.direction == "incoming" {
        let _ = write!(
            main,
            "<section class=\"reply\" aria-labelledby=\"reply-h\"><h2 id=\"reply-h\">Reply</h2>\
             <blockquote class=\"quote\"><span class=\"from\">{from}</span> {quoted}</blockquote>\
             <form method=\"post\" action=\"{here}\">{csrf}\
             <input type=\"hidden\" name=\"key\" value=\"dash-{key}\">\
             <label for=\"reply-text\">Your reply (sent quoting this message)</label>\
             <textarea id=\"reply-text\" name=\"message\" rows=\"4\" required maxlength=\"65536\"></textarea>\
             <div class=\"actions\"><button type=\"submit\" class=\"primary\">Send reply</button></div></form>\
             <form method=\"post\" action=\"/messages/status\" class=\"inline\">{csrf}\
             <input type=\"hidden\" name=\"id\" value=\"{id}\"><input type=\"hidden\" name=\"back\" value=\"{here}\">\
             <span>Status: <span class=\"badge st-{st}\">{st}</span></span> \
             <button type=\"submit\" name=\"status\" value=\"read\">Mark read</button> \
             <button type=\"submit\" name=\"status\" value=\"ignored\">Mark ignored</button></form></section>",
            from = escape(&sender_name(&m, chat_name.as_deref())),
            quoted = escape(&preview(&m.message, 200)),
            here = escape(&here),
            csrf = csrf_field(ctx),
            // A fresh idempotency key per rendering: a double submit sends once.
            key = auth::hex(&auth::random_bytes::<16>()),
            id = escape(&m.id),
            st = escape(&m.reply_status),
        );
    } else {
        main.push_str(
            "<p class=\"hint\">This is a message we sent; open an incoming message to reply.</p>",
        );
    }
    Ok(page(ctx, req, &format!("Chat with {name}"), "/", &main))
}

fn write_bubble(out: &mut String, m: &db::Message, selected: bool) {
    let dir = if m.direction == "incoming" {
        "in"
    } else {
        "out"
    };
    let _ = write!(
        out,
        "<li class=\"bubble {dir}{}\" id=\"m-{}\">",
        if selected { " selected" } else { "" },
        escape(&m.id)
    );
    if let Some(kind) = &m.media_type {
        write_media(out, kind, m);
    }
    if !m.message.is_empty() {
        let _ = write!(out, "<p class=\"text\">{}</p>", escape(&m.message));
    }
    let status = if m.direction == "incoming" {
        m.reply_status.clone()
    } else {
        m.delivery_status.clone().unwrap_or_else(|| "sent".into())
    };
    let _ = write!(
        out,
        "<p class=\"meta\">{who}{when} · {status}{link}</p></li>",
        who = if m.direction == "incoming" {
            m.push_name
                .as_deref()
                .map(|n| format!("{} · ", escape(n)))
                .unwrap_or_default()
        } else if m.source.as_deref() == Some("phone") {
            "You, on the phone · ".to_string()
        } else {
            "You · ".to_string()
        },
        when = time_html(m.created_at),
        status = escape(&status),
        link = if m.direction == "incoming" && !selected {
            format!(" · <a href=\"/reply/{}\">reply</a>", escape(&seg(&m.id)))
        } else {
            String::new()
        },
    );
}

fn write_media(out: &mut String, kind: &str, m: &db::Message) {
    // Only our own media route is linked: a stored URL is never trusted as a scheme.
    let url = m
        .media_url
        .as_deref()
        .filter(|u| u.starts_with("/media/") && !u.contains(".."));
    match url {
        Some(url) => {
            let url = escape(url);
            let label = escape(&format!(
                "{kind}{}",
                m.media_size
                    .map(|s| format!(", {} KiB", (s + 1023) / 1024))
                    .unwrap_or_default()
            ));
            let _ = match kind {
                "image" | "sticker" => write!(
                    out,
                    "<a class=\"media\" href=\"{url}\"><img src=\"{url}\" alt=\"{label}\" loading=\"lazy\"></a>"
                ),
                "video" => write!(
                    out,
                    "<video class=\"media\" src=\"{url}\" controls preload=\"metadata\"></video><a href=\"{url}\">{label}</a>"
                ),
                "audio" => write!(
                    out,
                    "<audio class=\"media\" src=\"{url}\" controls preload=\"none\"></audio><a href=\"{url}\">{label}</a>"
                ),
                _ => write!(
                    out,
                    "<p><a class=\"file\" href=\"{url}\">📎 {label}</a></p>"
                ),
            };
        }
        None => {
            let _ = write!(
                out,
                "<p class=\"file missing\">[{}{}]</p>",
                escape(kind),
                m.media_error
                    .as_deref()
                    .map(|e| format!(": {}", escape(e)))
                    .unwrap_or_default()
            );
        }
    }
}

/// `POST /reply/:id`: send the reply (quoted), then back to the chat.
pub fn reply(ctx: &mut Ctx, req: &Request, params: &[&str]) -> Result<Response, ApiError> {
    let form = read_form(ctx, req)?;
    let here = format!("/reply/{}", seg(params[0]));
    // Browsers send a textarea's line breaks as CRLF; WhatsApp wants LF.
    let text = form.get("message").unwrap_or("").replace("\r\n", "\n");
    let text = text.as_str();
    if text.trim().is_empty() {
        return Ok(failed(ctx, &here, "Write a message first"));
    }
    if text.len() > 65_536 {
        return Ok(failed(ctx, &here, "The message is longer than 65536 bytes"));
    }
    let key = form
        .get("key")
        .filter(|k| k.len() <= 255 && !k.is_empty() && k.bytes().all(|b| (0x21..0x7f).contains(&b)))
        .map(|k| {
            api::IdempotencyKey::new(k.to_string(), "POST /reply/:id", params[0], &json!(text))
        });
    match api::send_reply(ctx, params[0], text, key.as_ref(), "dashboard") {
        Ok(_) => {
            audit(ctx, req, format!("replied to message {}", params[0]));
            Ok(done(ctx, &here, "Reply sent"))
        }
        Err(ApiError::NotFound(m)) => Err(ApiError::NotFound(m)),
        Err(e) => {
            let why = e.public_message();
            audit(
                ctx,
                req,
                format!("reply to message {} failed: {why}", params[0]),
            );
            Ok(failed(ctx, &here, format!("Not sent: {why}")))
        }
    }
}

// ───────────────────────────── connection and pairing ─────────────────────────────

/// `GET /status`: the connection.
pub fn status(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let c = ctx.shared.connection();
    let mut main = String::new();
    let uptime = ctx.shared.started.elapsed().as_secs();
    let _ = write!(
        main,
        "<h1>Connection</h1><dl class=\"facts\">\
         <dt>State</dt><dd><span class=\"pill state-{}\">{}</span></dd>\
         <dt>Linked account</dt><dd>{}</dd>\
         <dt>Session stored</dt><dd>{}</dd>\
         <dt>Last error</dt><dd>{}</dd>\
         <dt>Backend</dt><dd>{}</dd>\
         <dt>Uptime</dt><dd>{}h {:02}m</dd></dl>",
        c.state.as_str(),
        state_label(c.state),
        c.me.as_deref().map(escape).unwrap_or_else(|| "none".into()),
        if c.session_exists { "yes" } else { "no" },
        c.last_error
            .as_deref()
            .map(escape)
            .unwrap_or_else(|| "none".into()),
        match ctx.shared.config.backend {
            crate::config::Backend::Simulator => "simulator (sandbox)",
            crate::config::Backend::WhatsApp => "WhatsApp",
        },
        uptime / 3600,
        uptime / 60 % 60,
    );
    if let Some(until) = c.stopped_until {
        let _ = write!(
            main,
            "<p class=\"notice\">WhatsApp banned this account for a while; this server \
             reconnects by itself at {} UTC.</p>",
            clock::format_datetime(until)
        );
    }
    let csrf = csrf_field(ctx);
    if c.state == ConnState::Connected || c.session_exists {
        let _ = write!(
            main,
            "<section class=\"card\"><h2>Log out</h2><p>Unlinks this server from the phone. \
             Messages stay stored; replying needs a new pairing.</p>\
             <div class=\"actions\"><form method=\"post\" action=\"/status/logout\" class=\"inline\">{csrf}\
             <button type=\"submit\" class=\"danger\" data-confirm=\"Log out of WhatsApp now?\">Log out</button></form>\
             <form method=\"post\" action=\"/status/repair\" class=\"inline\">{csrf}\
             <button type=\"submit\" data-confirm=\"Log out and pair again?\">Log out and re-pair</button></form></div></section>"
        );
    }
    let stopped = matches!(
        c.state,
        ConnState::Banned | ConnState::ClientOutdated | ConnState::Replaced
    );
    if c.state != ConnState::Connected && !stopped {
        main.push_str("<p><a class=\"button primary\" href=\"/login\">Pair a phone</a></p>");
    }
    Ok(page(ctx, req, "Connection", "/status", &main))
}

fn logout_backend(ctx: &mut Ctx) -> Result<(), String> {
    ctx.wa.call(|reply| WaCommand::Logout { reply })
}

/// `POST /status/logout`.
pub fn logout(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    read_form(ctx, req)?;
    match logout_backend(ctx) {
        Ok(()) => {
            audit(ctx, req, "logged out of WhatsApp".into());
            Ok(done(ctx, "/status", "Logged out"))
        }
        Err(e) => {
            audit(ctx, req, format!("log out failed: {e}"));
            Ok(failed(ctx, "/status", format!("Could not log out: {e}")))
        }
    }
}

/// `POST /status/repair`: log out, then pair again on `/login`.
pub fn repair(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    read_form(ctx, req)?;
    match logout_backend(ctx) {
        Ok(()) => {
            audit(ctx, req, "logged out of WhatsApp to pair again".into());
            // The logout is applied by the sink a moment later; wait for it so
            // the new pairing is not refused as "already paired".
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while ctx.shared.session_paired() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            if let Err(e) = api::start_pairing(ctx) {
                return Ok(failed(
                    ctx,
                    "/login",
                    format!("Logged out, but {}", e.public_message()),
                ));
            }
            Ok(done(
                ctx,
                "/login",
                "Logged out. Scan the new QR code or request a pairing code.",
            ))
        }
        Err(e) => {
            audit(ctx, req, format!("log out failed: {e}"));
            Ok(failed(ctx, "/status", format!("Could not log out: {e}")))
        }
    }
}

/// `GET /login`: the QR code (refreshed by app.js) and the pairing-code form.
pub fn login(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let c = ctx.shared.connection();
    let mut main = String::from("<h1>Pair a phone</h1>");
    if c.state == ConnState::Connected {
        let _ = write!(
            main,
            "<p>This server is paired{} and connected. To link another phone, \
             <a href=\"/status\">log out and re-pair</a>.</p>",
            c.me.as_deref()
                .map(|me| format!(" as <strong>{}</strong>", escape(me)))
                .unwrap_or_default()
        );
        return Ok(page(ctx, req, "Pairing", "/login", &main));
    }
    if c.state == ConnState::LoggedOut {
        let _ = write!(
            main,
            "<section class=\"card\"><p>WhatsApp is logged out: the old device keys are gone. \
             Start a new pairing to get a QR code.</p>\
             <form method=\"post\" action=\"/login/start\">{}\
             <div class=\"actions\"><button type=\"submit\" class=\"primary\">Start pairing</button></div></form></section>",
            csrf_field(ctx)
        );
    }
    let _ = write!(
        main,
        "<div class=\"pair\"><section class=\"card\"><h2>Scan the QR code</h2>\
         <ol class=\"steps\"><li>Open WhatsApp on the phone.</li><li>Settings → Linked devices → Link a device.</li>\
         <li>Point the camera at this code. WhatsApp replaces it every 20 to 60 seconds; this image follows it.</li></ol>\
         <img id=\"qr\" class=\"qr\" src=\"/login/qr.svg\" data-src=\"/login/qr.svg\" width=\"256\" height=\"256\" \
         alt=\"QR code for linking WhatsApp\"></section>\
         <section class=\"card\"><h2>Or use a pairing code</h2>\
         <form method=\"post\" action=\"/login/pair-code\">{}\
         <label for=\"pair-phone\">Phone number, international format</label>\
         <input id=\"pair-phone\" name=\"phone\" type=\"tel\" inputmode=\"tel\" autocomplete=\"tel\" placeholder=\"15551234567\" required>\
         <div class=\"actions\"><button type=\"submit\" class=\"primary\">Get a pairing code</button></div></form>\
         <p class=\"hint\">On the phone: Linked devices → Link a device → Link with phone number instead, then type the code.</p>\
         </section></div>",
        csrf_field(ctx)
    );
    Ok(page(ctx, req, "Pairing", "/login", &main))
}

/// `GET /login/qr.svg`: the current QR code, or a placeholder image saying why
/// there is none (so the refreshing `<img>` never breaks).
pub fn login_qr(ctx: &mut Ctx, _: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let c = ctx.shared.connection();
    let svg = match c.live_qr() {
        Some(qr) => crate::qr::svg(&qr.code),
        None => {
            let line = match c.state {
                ConnState::Connected => "Paired and connected",
                _ => "Waiting for a QR code…",
            };
            format!(
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"256\" height=\"256\" viewBox=\"0 0 256 256\">\
                 <rect width=\"256\" height=\"256\" fill=\"#f4f6f5\"/>\
                 <text x=\"128\" y=\"132\" text-anchor=\"middle\" font-family=\"sans-serif\" font-size=\"16\" fill=\"#1f2d2a\">{line}</text></svg>"
            )
        }
    };
    Ok(Response::bytes(200, "image/svg+xml", svg.into_bytes()))
}

/// `POST /login/start`: start a new pairing after a logout.
pub fn start_pairing(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    read_form(ctx, req)?;
    match api::start_pairing(ctx) {
        Ok(()) => {
            audit(ctx, req, "started a new pairing".into());
            Ok(done(
                ctx,
                "/login",
                "Pairing started. Scan the QR code or request a pairing code.",
            ))
        }
        Err(e) => Ok(failed(ctx, "/login", e.public_message())),
    }
}

/// `POST /login/pair-code`: ask for a pairing code and show it once.
pub fn pair_code(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let form = read_form(ctx, req)?;
    match api::request_pair_code(ctx, form.text("phone")) {
        Ok(code) => {
            audit(ctx, req, "requested a pairing code".into());
            Ok(redirect_with(
                ctx,
                "/login",
                Flash {
                    kind: FlashKind::Success,
                    text: "Type this code on the phone (Link with phone number instead):".into(),
                    secret: Some(code),
                },
            ))
        }
        Err(e) => Ok(failed(ctx, "/login", e.public_message())),
    }
}

// ───────────────────────────── webhooks ─────────────────────────────

fn write_event_boxes(out: &mut String, checked: impl Fn(&str) -> bool) {
    out.push_str("<fieldset><legend>Events</legend>");
    for event in webhooks::EVENTS {
        let _ = write!(
            out,
            "<label class=\"check\"><input type=\"checkbox\" name=\"events\" value=\"{event}\"{}> {event}</label>",
            if checked(event) { " checked" } else { "" }
        );
    }
    out.push_str("</fieldset>");
}

/// `GET /webhooks`: the list and the create form.
pub fn webhooks_page(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let hooks = db::list_webhooks(&ctx.db)?;
    let csrf = csrf_field(ctx);
    let mut main = String::from("<h1>Webhooks</h1>");
    if hooks.is_empty() {
        main.push_str("<p class=\"empty\">No webhooks yet.</p>");
    } else {
        main.push_str("<ul class=\"hooks\">");
        for h in &hooks {
            let id = escape(&seg(&h.id));
            let health = db::webhook_health(&ctx.db, &h.id)?;
            let _ = write!(
                main,
                "<li class=\"card hook health-{state}\"><p class=\"url\"><a href=\"/webhooks/{id}\">{url}</a></p>\
                 <p class=\"badges\"><span class=\"badge {act}\">{act_label}</span>{signed}{counts}</p>\
                 {last}<p class=\"events\">{events}</p><p class=\"meta\">created {created}</p>\
                 <div class=\"actions\">\
                 <a class=\"button\" href=\"/webhooks/{id}\">Edit &amp; deliveries</a>\
                 <form method=\"post\" action=\"/webhooks/{id}/toggle\" class=\"inline\">{csrf}<button type=\"submit\">{toggle}</button></form>\
                 <form method=\"post\" action=\"/webhooks/{id}/test\" class=\"inline\">{csrf}<button type=\"submit\">Send test</button></form>\
                 <form method=\"post\" action=\"/webhooks/{id}/delete\" class=\"inline\">{csrf}\
                 <button type=\"submit\" class=\"danger\" data-confirm=\"Delete this webhook and its delivery log?\">Delete</button></form>\
                 </div></li>",
                url = escape(&h.url),
                act = if h.active { "active" } else { "paused" },
                act_label = if h.active { "active" } else { "paused" },
                signed = if h.secret.is_some() {
                    "<span class=\"badge\">signed</span>"
                } else {
                    "<span class=\"badge muted\">unsigned</span>"
                },
                events = escape(&h.events.replace(',', ", ")),
                created = time_html(h.created_at),
                toggle = if h.active { "Pause" } else { "Resume" },
                state = health_state(&health),
                counts = health_badges(&health, &id),
                last = last_attempt_html(&health),
            );
        }
        main.push_str("</ul>");
    }
    let _ = write!(
        main,
        "<section class=\"card\" aria-labelledby=\"new-h\"><h2 id=\"new-h\">Add a webhook</h2>\
         <form method=\"post\" action=\"/webhooks\">{csrf}\
         <label for=\"hook-url\">URL</label>\
         <input id=\"hook-url\" name=\"url\" type=\"url\" required placeholder=\"https://example.com/whatsapp\">"
    );
    write_event_boxes(&mut main, |e| e == webhooks::MESSAGE_RECEIVED);
    main.push_str(
        "<label class=\"check\"><input type=\"checkbox\" name=\"generate_secret\" value=\"1\" checked> \
         Sign deliveries with a generated secret (shown once)</label>\
         <label class=\"check\"><input type=\"checkbox\" name=\"active\" value=\"1\" checked> Active</label>\
         <div class=\"actions\"><button type=\"submit\" class=\"primary\">Add webhook</button></div></form></section>",
    );
    Ok(page(ctx, req, "Webhooks", "/webhooks", &main))
}

/// `ok`, `failing` (the newest attempt failed) or `new` (never attempted).
fn health_state(health: &db::WebhookHealth) -> &'static str {
    match &health.last_attempt {
        None => "new",
        Some(a) if a.error.is_none() => "ok",
        Some(_) => "failing",
    }
}

/// The pending and failed counts, linking to the delivery log.
fn health_badges(health: &db::WebhookHealth, id: &str) -> String {
    let mut out = String::new();
    if health.pending > 0 {
        let _ = write!(
            out,
            "<a class=\"badge dl-pending\" href=\"/webhooks/{id}\">{} pending</a>",
            health.pending
        );
    }
    if health.failed > 0 {
        let _ = write!(
            out,
            "<a class=\"badge dl-failed\" href=\"/webhooks/{id}\">{} failed</a>",
            health.failed
        );
    }
    out
}

/// "Last delivery: HTTP 200 …" or why the newest attempt failed.
fn last_attempt_html(health: &db::WebhookHealth) -> String {
    let Some(a) = &health.last_attempt else {
        return "<p class=\"last\">No delivery attempted yet.</p>".into();
    };
    let outcome = match (&a.error, a.status_code) {
        (None, Some(code)) => format!("delivered (HTTP {code})"),
        (None, None) => "delivered".to_string(),
        (Some(e), Some(code)) => format!("failed: HTTP {code}, {}", escape(e)),
        (Some(e), None) => format!("failed: {}", escape(e)),
    };
    format!(
        "<p class=\"last\">Last attempt {}: {outcome}</p>",
        time_html(a.at_ms.div_euclid(1000))
    )
}

/// The JSON body `WebhookInput::parse` validates, from a dashboard form.
fn webhook_body(form: &Form, secret: Option<Value>) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("url".into(), json!(form.text("url")));
    body.insert("events".into(), json!(form.all("events")));
    body.insert("active".into(), json!(form.get("active").is_some()));
    if let Some(secret) = secret {
        body.insert("secret".into(), secret);
    }
    body
}

fn secret_flash(text: &str, secret: Option<String>) -> Flash {
    Flash {
        kind: FlashKind::Success,
        text: match secret {
            Some(_) => format!("{text} Its signing secret:"),
            None => text.to_string(),
        },
        secret,
    }
}

/// `POST /webhooks`: create.
pub fn webhook_create(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let form = read_form(ctx, req)?;
    let secret = form.get("generate_secret").map(|_| json!(true));
    let created = webhooks::WebhookInput::parse(&webhook_body(&form, secret), true)
        .and_then(|input| api::create_webhook(ctx, input));
    match created {
        Ok((hook, secret)) => {
            audit(ctx, req, format!("created webhook {}", hook.id));
            let flash = secret_flash("Webhook added.", secret);
            Ok(redirect_with(ctx, "/webhooks", flash))
        }
        Err(e) => Ok(failed(ctx, "/webhooks", e.public_message())),
    }
}

/// `GET /webhooks/:id`: the edit form and the delivery log.
pub fn webhook_page(ctx: &mut Ctx, req: &Request, params: &[&str]) -> Result<Response, ApiError> {
    let Some(hook) = db::get_webhook(&ctx.db, params[0])? else {
        return Ok(not_found(
            ctx,
            req,
            "No such webhook",
            "/webhooks",
            "Back to webhooks",
        ));
    };
    let id = escape(&seg(&hook.id));
    let csrf = csrf_field(ctx);
    let mut main = String::new();
    let _ = write!(
        main,
        "<p class=\"crumbs\"><a href=\"/webhooks\">← Webhooks</a></p><h1>Webhook</h1>\
         <p class=\"url\">{url}</p>\
         <section class=\"card\"><h2>Edit</h2><form method=\"post\" action=\"/webhooks/{id}\">{csrf}\
         <label for=\"hook-url\">URL</label>\
         <input id=\"hook-url\" name=\"url\" type=\"url\" required value=\"{url}\">",
        url = escape(&hook.url),
    );
    write_event_boxes(&mut main, |e| hook.subscribes_to(e));
    let _ = write!(
        main,
        "<label class=\"check\"><input type=\"checkbox\" name=\"active\" value=\"1\"{}> Active</label>\
         <fieldset><legend>Signing secret ({})</legend>\
         <label class=\"check\"><input type=\"radio\" name=\"secret\" value=\"keep\" checked> Keep as it is</label>\
         <label class=\"check\"><input type=\"radio\" name=\"secret\" value=\"generate\"> Generate a new one (shown once)</label>\
         <label class=\"check\"><input type=\"radio\" name=\"secret\" value=\"remove\"> Remove (send unsigned)</label></fieldset>\
         <div class=\"actions\"><button type=\"submit\" class=\"primary\">Save</button></div></form></section>\
         <div class=\"actions\">\
         <form method=\"post\" action=\"/webhooks/{id}/test\" class=\"inline\">{csrf}<button type=\"submit\">Send test event</button></form>\
         <form method=\"post\" action=\"/webhooks/{id}/delete\" class=\"inline\">{csrf}\
         <button type=\"submit\" class=\"danger\" data-confirm=\"Delete this webhook and its delivery log?\">Delete</button></form></div>",
        if hook.active { " checked" } else { "" },
        if hook.secret.is_some() { "set" } else { "none" },
    );

    let page_no = api::page_param(req.query("page"));
    let limit = 20;
    let (deliveries, total) = db::list_deliveries(&ctx.db, &hook.id, page_no, limit)?;
    let _ = write!(
        main,
        "<h2>Deliveries</h2><p class=\"summary\">{total} deliver{}</p>",
        if total == 1 { "y" } else { "ies" }
    );
    if deliveries.is_empty() {
        main.push_str("<p class=\"empty\">Nothing sent yet.</p>");
    } else {
        main.push_str("<ul class=\"deliveries\">");
        for d in &deliveries {
            write_delivery(&mut main, &id, &csrf, d);
        }
        main.push_str("</ul>");
    }
    write_pager(&mut main, page_no, pages_of(total, limit), |p| {
        format!("/webhooks/{}?page={p}", seg(&hook.id))
    });
    Ok(page(ctx, req, "Webhook", "/webhooks", &main))
}

fn write_delivery(out: &mut String, hook_id: &str, csrf: &str, d: &db::Delivery) {
    let _ = write!(
        out,
        "<li class=\"card delivery\"><p><span class=\"badge dl-{st}\">{st}</span> <strong>{event}</strong> \
         <span class=\"meta\">{created} · <code>{id}</code></span></p>",
        st = escape(&d.status),
        event = escape(&d.event),
        created = time_html(d.created_at),
        id = escape(&d.id),
    );
    if d.attempts.is_empty() {
        out.push_str("<p class=\"meta\">No attempt yet.</p>");
    } else {
        out.push_str("<ol class=\"attempts\">");
        for a in &d.attempts {
            let _ = write!(
                out,
                "<li><time>{}</time> · {} · {} ms{}</li>",
                clock::format_iso_millis(a.at_ms),
                a.status_code
                    .map(|c| format!("HTTP {c}"))
                    .unwrap_or_else(|| "no answer".into()),
                a.duration_ms,
                a.error
                    .as_deref()
                    .map(|e| format!(" · {}", escape(e)))
                    .unwrap_or_default()
            );
        }
        out.push_str("</ol>");
    }
    if d.status != "pending" {
        let _ = write!(
            out,
            "<form method=\"post\" action=\"/webhooks/{hook_id}/deliveries/{}/redeliver\" class=\"inline\">{csrf}\
             <button type=\"submit\">Redeliver</button></form>",
            escape(&seg(&d.id))
        );
    }
    out.push_str("</li>");
}

/// `POST /webhooks/:id`: save the edit form.
pub fn webhook_update(ctx: &mut Ctx, req: &Request, params: &[&str]) -> Result<Response, ApiError> {
    let form = read_form(ctx, req)?;
    let here = format!("/webhooks/{}", seg(params[0]));
    let secret = match form.text("secret") {
        "generate" => Some(json!(true)),
        "remove" => Some(Value::Null),
        _ => None,
    };
    let updated = webhooks::WebhookInput::parse(&webhook_body(&form, secret), true)
        .and_then(|input| api::update_webhook(ctx, params[0], input));
    match updated {
        Ok((hook, secret)) => {
            audit(ctx, req, format!("updated webhook {}", hook.id));
            Ok(redirect_with(ctx, &here, secret_flash("Saved.", secret)))
        }
        Err(ApiError::NotFound(m)) => Err(ApiError::NotFound(m)),
        Err(e) => Ok(failed(ctx, &here, e.public_message())),
    }
}

/// `POST /webhooks/:id/toggle`: pause or resume.
pub fn webhook_toggle(ctx: &mut Ctx, req: &Request, params: &[&str]) -> Result<Response, ApiError> {
    read_form(ctx, req)?;
    let hook = api::find_webhook(ctx, params[0])?;
    db::set_webhook_active(&ctx.db, &hook.id, !hook.active)?;
    let what = if hook.active { "paused" } else { "resumed" };
    audit(ctx, req, format!("{what} webhook {}", hook.id));
    Ok(done(ctx, "/webhooks", format!("Webhook {what}")))
}

/// `POST /webhooks/:id/delete`.
pub fn webhook_delete(ctx: &mut Ctx, req: &Request, params: &[&str]) -> Result<Response, ApiError> {
    read_form(ctx, req)?;
    if !db::delete_webhook(&ctx.db, params[0])? {
        return Err(ApiError::NotFound("Webhook not found".into()));
    }
    audit(ctx, req, format!("deleted webhook {}", params[0]));
    Ok(done(ctx, "/webhooks", "Webhook deleted"))
}

/// `POST /webhooks/:id/test`: queue a `webhook.test` delivery.
pub fn webhook_test(ctx: &mut Ctx, req: &Request, params: &[&str]) -> Result<Response, ApiError> {
    read_form(ctx, req)?;
    let delivery = api::queue_test_delivery(ctx, params[0])?;
    audit(ctx, req, format!("sent a test to webhook {}", params[0]));
    Ok(done(
        ctx,
        &format!("/webhooks/{}", seg(params[0])),
        format!("Test event queued as {delivery}"),
    ))
}

/// `POST /webhooks/:id/deliveries/:delivery/redeliver`.
pub fn redeliver(ctx: &mut Ctx, req: &Request, params: &[&str]) -> Result<Response, ApiError> {
    read_form(ctx, req)?;
    if !db::redeliver(&ctx.db, params[1], Some(params[0]))? {
        return Err(ApiError::NotFound("Delivery not found".into()));
    }
    ctx.webhooks.wake();
    audit(ctx, req, format!("redelivered {}", params[1]));
    Ok(done(
        ctx,
        &format!("/webhooks/{}", seg(params[0])),
        "Delivery queued again",
    ))
}

// ───────────────────────────── settings ─────────────────────────────

/// The base URL clients reach this server at, as this request saw it.
fn base_url(req: &Request) -> String {
    let scheme = match req.header("x-forwarded-proto") {
        Some("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{}", req.header("host").unwrap_or("localhost"))
}

/// `GET /settings`: API key rotation and the quick reference.
pub fn settings(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let prefix = db::active_api_key_prefix(&ctx.db)?;
    let base = escape(&base_url(req));
    let mut main = String::from("<h1>Settings</h1>");
    let _ = write!(
        main,
        "<section class=\"card\"><h2>API key</h2><p>The active key starts with <code>{}…</code>. \
         Rotating creates a new key, shows it once, and stops the old one at once.</p>{}\
         <form method=\"post\" action=\"/settings/api-key\">{}\
         <button type=\"submit\" class=\"danger\" data-confirm=\"The current key stops working immediately. Rotate?\">Rotate the API key</button></form></section>",
        escape(prefix.as_deref().unwrap_or("?")),
        if ctx.shared.config.api_key.is_some() {
            "<p class=\"hint\">API_KEY is set in the environment: that key becomes active again at the next start unless you change it there.</p>"
        } else {
            ""
        },
        csrf_field(ctx)
    );
    let _ = write!(
        main,
        "<section class=\"card\"><h2>API quick reference</h2>\
         <p>Base URL <code>{base}</code>. Send the key as the <code>X-API-Key</code> header. \
         In the examples, <code>KEY</code> holds your API key and <code>ID</code> a message's <code>id</code> \
         from the inbox.</p>\
         <dl class=\"ref\">\
         <dt>Unread messages</dt><dd><pre>curl -H \"X-API-Key: $KEY\" \"{base}/api/v1/inbox/unread?page=1&amp;limit=50\"</pre></dd>\
         <dt>Reply (quoted)</dt><dd><pre>curl -X POST -H \"X-API-Key: $KEY\" -H 'Content-Type: application/json' \\\n  -d '{{\"message\":\"Thanks!\"}}' {base}/api/v1/messages/$ID/reply</pre></dd>\
         <dt>Mark a message</dt><dd><pre>curl -X PATCH -H \"X-API-Key: $KEY\" -H 'Content-Type: application/json' \\\n  -d '{{\"status\":\"read\"}}' {base}/api/v1/messages/$ID/status</pre></dd>\
         <dt>Connection</dt><dd><pre>curl -H \"X-API-Key: $KEY\" {base}/api/v1/status</pre></dd>\
         </dl><p>Everything else: <a href=\"/api/v1/openapi.json\">the OpenAPI document</a>.</p></section>"
    );
    main.push_str(
        "<section class=\"card\"><h2>Lost the key or the password?</h2>\
         <p>On the server, with the same <code>DATA_DIR</code> (or <code>.env</code>), while it runs:</p>\
         <pre>whatsapp-api rotate-key                 # prints a new API key once\n\
whatsapp-api set-password < /dev/null   # prints a new dashboard password once</pre>\
         <p class=\"hint\">The old one stops working within a second. To choose the password, \
         type it: <code>whatsapp-api set-password</code>.</p></section>",
    );
    Ok(page(ctx, req, "Settings", "/settings", &main))
}

/// `POST /settings/api-key`: rotate; the new key is shown once.
pub fn rotate_api_key(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    read_form(ctx, req)?;
    let key = auth::generate_api_key();
    let hash = auth::api_key_hash(&key);
    db::set_active_api_key(&mut ctx.db, &hash, &crate::key_prefix(&key))?;
    ctx.shared.set_api_key_hash(hash);
    audit(ctx, req, "rotated the API key".into());
    Ok(redirect_with(
        ctx,
        "/settings",
        Flash {
            kind: FlashKind::Success,
            text: "New API key. The old one no longer works.".into(),
            secret: Some(key),
        },
    ))
}

// ───────────────────────────── audit log ─────────────────────────────

/// `GET /audit-logs`: filter and page through the audit log.
pub fn audit_logs(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let f = |name: &str| req.query(name).unwrap_or("").trim().to_string();
    let (action, start, end) = (f("action"), f("startDate"), f("endDate"));
    let mut main = String::from("<h1>Audit log</h1>");
    let mut date = |text: &str, name: &str| -> Option<i64> {
        if text.is_empty() {
            return None;
        }
        let d = clock::parse_date(text);
        if d.is_none() {
            inline_notice(&mut main, &format!("{name}: expected a date as YYYY-MM-DD"));
        }
        d
    };
    let from = date(&start, "From");
    let until = date(&end, "Until").map(|d| d + 86_400);
    let q = db::AuditQuery {
        action: (!action.is_empty()).then(|| action.clone()),
        from,
        until,
        page: api::page_param(req.query("page")),
        limit: 50,
    };
    let (rows, total) = db::audit_logs(&ctx.db, &q)?;
    main.push_str(
        "<form class=\"filters\" method=\"get\" action=\"/audit-logs\">\
         <label>Action <select name=\"action\"><option value=\"\">All actions</option>",
    );
    let known = crate::audit::ACTIONS.iter().any(|(a, _)| *a == action);
    let other = (!known && !action.is_empty()).then_some((action.as_str(), action.as_str()));
    for (value, label) in crate::audit::ACTIONS.iter().copied().chain(other) {
        let _ = write!(
            main,
            "<option value=\"{}\"{}>{}</option>",
            escape(value),
            if value == action { " selected" } else { "" },
            escape(label)
        );
    }
    let _ = write!(
        main,
        "</select></label><label>From <input type=\"date\" name=\"startDate\" value=\"{}\"></label>\
         <label>Until <input type=\"date\" name=\"endDate\" value=\"{}\"></label>\
         <div class=\"actions\"><button type=\"submit\">Filter</button> <a href=\"/audit-logs\">Clear</a></div></form>\
         <p class=\"summary\">{total} entr{}</p>",
        escape(&start),
        escape(&end),
        if total == 1 { "y" } else { "ies" }
    );
    if rows.is_empty() {
        main.push_str("<p class=\"empty\">Nothing logged for these filters.</p>");
    } else {
        main.push_str(
            "<div class=\"scroll\"><table class=\"log\"><thead><tr><th scope=\"col\">Time (UTC)</th><th scope=\"col\">Action</th>\
             <th scope=\"col\">Status</th><th scope=\"col\">IP</th><th scope=\"col\">Request</th><th scope=\"col\">ms</th>\
             <th scope=\"col\">Details</th></tr></thead><tbody>",
        );
        for (_, e) in &rows {
            let _ = write!(
                main,
                "<tr><td data-label=\"Time (UTC)\">{}</td><td data-label=\"Action\">{}</td>\
                 <td data-label=\"Status\">{}</td><td data-label=\"IP\">{}</td>\
                 <td data-label=\"Request\">{} {}</td><td data-label=\"ms\">{}</td><td data-label=\"Details\">{}</td></tr>",
                clock::format_datetime(e.created_at),
                escape(&e.action),
                e.status.map(|s| s.to_string()).unwrap_or_default(),
                escape(e.ip.as_deref().unwrap_or("")),
                escape(e.method.as_deref().unwrap_or("")),
                escape(e.path.as_deref().unwrap_or("")),
                e.duration_us
                    .map(|us| format!("{:.1}", us as f64 / 1000.0))
                    .unwrap_or_default(),
                escape(e.details.as_deref().unwrap_or("")),
            );
        }
        main.push_str("</tbody></table></div>");
    }
    write_pager(&mut main, q.page, pages_of(total, q.limit), |p| {
        format!(
            "/audit-logs{}",
            query_string(&[
                ("action", &action),
                ("startDate", &start),
                ("endDate", &end),
                ("page", &p.to_string()),
            ])
        )
    });
    Ok(page(ctx, req, "Audit log", "/audit-logs", &main))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(
            escape("\"><img onerror=x>"),
            "&quot;&gt;&lt;img onerror=x&gt;"
        );
        assert_eq!(escape("plain ü"), "plain ü");
    }

    #[test]
    fn back_paths_stay_local() {
        assert_eq!(safe_back(Some("/?status=read"), "/"), "/?status=read");
        assert_eq!(safe_back(Some("//evil.example"), "/"), "/");
        assert_eq!(safe_back(Some("https://evil.example"), "/"), "/");
        assert_eq!(safe_back(Some("/\\evil"), "/"), "/");
        assert_eq!(safe_back(None, "/x"), "/x");
    }

    #[test]
    fn query_strings_skip_empty_values_and_encode() {
        assert_eq!(
            query_string(&[("a", ""), ("search", "a b&c"), ("page", "2")]),
            "?search=a%20b%26c&page=2"
        );
        assert_eq!(query_string(&[("a", "")]), "");
    }

    #[test]
    fn flashes_are_taken_once() {
        let f = Flashes::default();
        let id = f.put(Flash {
            kind: FlashKind::Success,
            text: "hi".into(),
            secret: None,
        });
        assert_eq!(f.take(&id).unwrap().text, "hi");
        assert!(f.take(&id).is_none());
        assert!(f.take("nope").is_none());
    }

    #[test]
    fn the_frame_has_each_marker_once_in_order() {
        let mut at = 0;
        for marker in ["{title}", "{state}", "{nav}", "{main}"] {
            assert_eq!(FRAME.matches(marker).count(), 1, "{marker}");
            let found = FRAME.find(marker).unwrap();
            assert!(found > at, "{marker} out of order");
            at = found;
        }
        assert!(!FRAME.contains("<script>") && !FRAME.contains("style="));
    }

    #[test]
    fn pages_round_up() {
        assert_eq!(pages_of(0, 50), 0);
        assert_eq!(pages_of(50, 50), 1);
        assert_eq!(pages_of(51, 50), 2);
    }
}
