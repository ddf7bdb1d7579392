//! The dashboard: server-rendered HTML pages, their POST forms, and the
//! static assets they use, embedded in the binary. This file holds what
//! every page shares: the frame, `escape()`, CSRF tokens, forms, one-time
//! notices and how a failed operation shows (`refused`); each page family
//! has its own file. A handler parses the request or form, calls an
//! operation (`ops`) and writes the HTML.
//!
//! Invariants: every string that came from WhatsApp, a user or a request
//! reaches the HTML only through `escape()`; every state change is a POST
//! carrying the CSRF token (`read_form` checks it) and answers with a 303;
//! no inline script, style or event handler (the CSP forbids them).

pub mod audit;
pub mod conversation;
pub mod inbox;
pub mod pairing;
pub mod settings;
pub mod webhooks;

use crate::error::ApiError;
use crate::ops::{self, Ctx};
use crate::state::{ConnState, Shared};
use crate::web::{Request, Response, percent_encode};
use crate::{auth, clock};
use hmac::{KeyInit, Mac};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

// ───────────────────────────── assets ─────────────────────────────

/// Static files: name, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/app.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../assets/favicon.svg"),
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
    if let Some(flash) = req.query("flash").and_then(|id| FLASHES.take(id)) {
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

/// A posted form whose CSRF token has been checked, and the file it
/// carried (a `multipart/form-data` form with a chosen file), already
/// streamed into `media/`, or why it could not be stored.
struct Form(
    Vec<(String, String)>,
    Option<Result<ops::messages::ReplyFile, ops::Error>>,
);

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
    let parsed = crate::multipart::of(req, |head, content| {
        Ok(ops::messages::ReplyFile::from_upload(
            ctx,
            head.content_type.as_deref(),
            head.filename.as_deref(),
            content,
        ))
    });
    let form = match parsed {
        None => Form(req.form()?, None),
        Some(parsed) => {
            let parsed = parsed?;
            let fields = parsed
                .fields
                .into_iter()
                .map(|(name, value)| {
                    String::from_utf8(value)
                        .map(|value| (name, value))
                        .map_err(|_| ApiError::bad("Form field is not UTF-8"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            // The first file chosen: a file input left empty sends an empty
            // part, which stored nothing. Any other is removed when dropped.
            let file = parsed.files.into_iter().find_map(|(_, f)| f.transpose());
            Form(fields, file)
        }
    };
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

/// The process's notices: one store for every worker, since the redirect's
/// GET may reach another worker than the POST. Owned here, not in the
/// state every thread shares, because only the dashboard reads it.
static FLASHES: Flashes = Flashes(Mutex::new(Vec::new()));

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
fn redirect_with(location: &str, flash: Flash) -> Response {
    let id = FLASHES.put(flash);
    let sep = if location.contains('?') { '&' } else { '?' };
    Response::redirect(&format!("{location}{sep}flash={id}"))
}

fn done(location: &str, text: impl Into<String>) -> Response {
    redirect_with(
        location,
        Flash {
            kind: FlashKind::Success,
            text: text.into(),
            secret: None,
        },
    )
}

fn failed(location: &str, text: impl Into<String>) -> Response {
    redirect_with(
        location,
        Flash {
            kind: FlashKind::Error,
            text: text.into(),
            secret: None,
        },
    )
}

/// How an operation's failure answers a form: what it was about being gone
/// is a 404, and an internal failure a 500 (logged), as for any request;
/// anything else goes back to `location` with `what` and the sentence as an
/// error notice.
fn refused(location: &str, what: &str, e: ops::Error) -> Result<Response, ApiError> {
    match e {
        ops::Error::NotFound(_) | ops::Error::Internal(_) => Err(e.into()),
        e => Ok(failed(location, format!("{what}{}", e.message()))),
    }
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
}
