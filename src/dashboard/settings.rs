//! Settings (`/settings`): the API key and a quick reference of the API.

use super::{Flash, FlashKind, audit, csrf_field, escape, page, read_form, redirect_with};
use crate::error::ApiError;
use crate::ops::{self, Ctx};
use crate::web::{Request, Response};
use std::fmt::Write as _;

/// The base URL clients reach this server at, as this request saw it.
fn base_url(req: &Request) -> String {
    let scheme = match req.header("x-forwarded-proto") {
        Some("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{}", req.header("host").unwrap_or("localhost"))
}

/// `GET /settings`: API key rotation and the quick reference.
pub fn show(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let prefix = ops::settings::api_key_prefix(ctx)?;
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
    let key = ops::settings::rotate_api_key(ctx)?;
    audit(ctx, req, "rotated the API key".into());
    Ok(redirect_with(
        "/settings",
        Flash {
            kind: FlashKind::Success,
            text: "New API key. The old one no longer works.".into(),
            secret: Some(key),
        },
    ))
}
