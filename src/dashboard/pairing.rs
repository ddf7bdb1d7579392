//! The connection (`/status`: state, log out, re-pair) and pairing
//! (`/login`: the QR code, a pairing code).

use super::{
    Flash, FlashKind, audit, csrf_field, done, escape, page, read_form, redirect_with, refused,
    state_label,
};
use crate::clock;
use crate::error::ApiError;
use crate::ops::{self, Ctx};
use crate::state::ConnState;
use crate::web::{Request, Response};
use std::fmt::Write as _;

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

/// `POST /status/logout`.
pub fn logout(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    read_form(ctx, req)?;
    match ops::session::logout(ctx) {
        Ok(()) => {
            audit(ctx, req, "logged out of WhatsApp".into());
            Ok(done("/status", "Logged out"))
        }
        Err(e) => {
            audit(ctx, req, format!("log out failed: {}", e.reason()));
            refused("/status", "", e)
        }
    }
}

/// `POST /status/repair`: log out, then pair again on `/login`.
pub fn repair(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    read_form(ctx, req)?;
    if let Err(e) = ops::session::logout(ctx) {
        audit(ctx, req, format!("log out failed: {}", e.reason()));
        return refused("/status", "", e);
    }
    audit(ctx, req, "logged out of WhatsApp to pair again".into());
    // The backend answers a logout once the sink applied it, so the new
    // pairing is not refused as "already paired".
    match ops::session::start_pairing(ctx) {
        Ok(()) => Ok(done(
            "/login",
            "Logged out. Scan the new QR code or request a pairing code.",
        )),
        Err(e) => refused("/login", "Logged out, but ", e),
    }
}

/// `GET /login`: the QR code (refreshed by app.js) and the pairing-code form.
pub fn login(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let c = ctx.shared.connection();
    // app.js reloads the page when the connection changes (the stream's
    // connection events), so it shows "paired" as soon as the scan succeeds.
    let mut main = format!(
        "<h1 id=\"pairing\" data-after=\"{}\">Pair a phone</h1>",
        ops::events::last_id(ctx)?
    );
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
    match ops::session::start_pairing(ctx) {
        Ok(()) => {
            audit(ctx, req, "started a new pairing".into());
            Ok(done(
                "/login",
                "Pairing started. Scan the QR code or request a pairing code.",
            ))
        }
        Err(e) => refused("/login", "", e),
    }
}

/// `POST /login/pair-code`: ask for a pairing code and show it once.
pub fn pair_code(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let form = read_form(ctx, req)?;
    match ops::session::pair_code(ctx, form.text("phone")) {
        Ok(code) => {
            audit(ctx, req, "requested a pairing code".into());
            Ok(redirect_with(
                "/login",
                Flash {
                    kind: FlashKind::Success,
                    text: "Type this code on the phone (Link with phone number instead):".into(),
                    secret: Some(code),
                },
            ))
        }
        Err(e) => refused("/login", "", e),
    }
}
