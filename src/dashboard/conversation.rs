//! A conversation (`/reply/:id`): the whole chat of a message, its media,
//! and the reply form.

use super::inbox::{display_phone, is_group, preview, sender_name};
use super::{
    audit, csrf_field, done, escape, failed, not_found, page, read_form, refused, safe_back, seg,
    time_html,
};
use crate::auth;
use crate::db;
use crate::error::ApiError;
use crate::ops::messages::IdempotencyKey;
use crate::ops::{self, Ctx};
use crate::status::{DeliveryStatus, Direction, Source};
use crate::web::{Request, Response};
use serde_json::json;
use std::fmt::Write as _;

/// Messages per conversation page.
const CHAT_PAGE: u32 = 100;

/// `GET /reply/:id`: the whole chat of a message, and a reply box.
pub fn show(ctx: &mut Ctx, req: &Request, params: &[&str]) -> Result<Response, ApiError> {
    let Some(m) = ops::messages::find(ctx, params[0])? else {
        return Ok(not_found(
            ctx,
            req,
            "No such message",
            "/",
            "Back to the inbox",
        ));
    };
    let (_, total) = ops::messages::conversation(ctx, &m.phone, 1, 1)?;
    let pages = ops::page_count(total, CHAT_PAGE).max(1);
    let page_no = match req.query("page").map(str::parse::<u32>) {
        Some(Ok(n)) if (1..=pages).contains(&n) => n,
        _ => pages,
    };
    let (rows, _) = ops::messages::conversation(ctx, &m.phone, page_no, CHAT_PAGE)?;
    let mut main = String::with_capacity(32 * 1024);
    let chat_name = ops::messages::chat_names(ctx, &[m.phone.as_str()])?.remove(&m.phone);
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
         <h1>{}</h1><p class=\"sub\" id=\"chat-sub\">{} · {total} message{} in this chat</p>",
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
    let edits = ops::messages::edits_of(ctx, &rows)?;
    let csrf = csrf_field(ctx);
    let back = format!("/reply/{}?page={page_no}", seg(&m.id));
    // app.js replaces the list (and the line above) when an event of this
    // chat arrives, on the last page only (where new messages go).
    let _ = write!(
        main,
        "<ol class=\"chat\" id=\"chat\" data-phone=\"{}\"{}>",
        escape(&m.phone),
        if page_no == pages {
            format!(" data-after=\"{}\"", ops::events::last_id(ctx)?)
        } else {
            String::new()
        }
    );
    for row in &rows {
        let history = edits.get(&row.seq).map_or(&[][..], Vec::as_slice);
        write_bubble(&mut main, row, row.id == m.id, history);
        if row.wa_id.is_some() && row.deleted_at.is_none() {
            write_quick_reactions(&mut main, row, &csrf, &back);
        }
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
    if m.direction == Direction::Incoming {
        let _ = write!(
            main,
            "<section class=\"reply\" aria-labelledby=\"reply-h\"><h2 id=\"reply-h\">Reply</h2>\
             <blockquote class=\"quote\"><span class=\"from\">{from}</span> {quoted}</blockquote>\
             <form method=\"post\" action=\"{here}\" enctype=\"multipart/form-data\">{csrf}\
             <input type=\"hidden\" name=\"key\" value=\"dash-{key}\">\
             <label for=\"reply-text\">Your reply (sent quoting this message)</label>\
             <textarea id=\"reply-text\" name=\"message\" rows=\"4\" maxlength=\"65536\"></textarea>\
             <label for=\"reply-file\">A file (optional; the text becomes its caption)</label>\
             <input type=\"file\" id=\"reply-file\" name=\"file\">\
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
            st = m.reply_status,
        );
    } else {
        main.push_str(
            "<p class=\"hint\">This is a message we sent; open an incoming message to reply.</p>",
        );
    }
    Ok(page(ctx, req, &format!("Chat with {name}"), "/", &main))
}

/// The emoji of the quick-reaction buttons.
const QUICK_REACTIONS: [&str; 4] = ["👍", "❤️", "😂", "🙏"];

/// One-tap reactions to a message (the one we gave is pressed: tapping it
/// again takes it back).
fn write_quick_reactions(out: &mut String, m: &db::Message, csrf: &str, back: &str) {
    let ours = m
        .reactions
        .iter()
        .find(|r| r.sender_jid == db::ME)
        .map(|r| r.emoji.as_str());
    let _ = write!(
        out,
        "<li class=\"react {dir}\"><form method=\"post\" action=\"/reply/{id}/react\" class=\"inline\">{csrf}\
         <input type=\"hidden\" name=\"back\" value=\"{back}\">",
        dir = if m.direction == Direction::Incoming {
            "in"
        } else {
            "out"
        },
        id = escape(&seg(&m.id)),
        back = escape(back),
    );
    for emoji in QUICK_REACTIONS {
        let pressed = ours == Some(emoji);
        let _ = write!(
            out,
            "<button type=\"submit\" name=\"emoji\" value=\"{value}\" aria-pressed=\"{pressed}\" \
             title=\"{title}\">{emoji}</button>",
            value = if pressed { "" } else { emoji },
            title = if pressed {
                "Remove your reaction"
            } else {
                "React"
            },
        );
    }
    out.push_str("</form></li>");
}

/// Delivery ticks of a message we sent: what WhatsApp Web shows.
fn ticks(status: Option<DeliveryStatus>) -> (&'static str, &'static str, &'static str) {
    match status.unwrap_or(DeliveryStatus::Sent) {
        DeliveryStatus::Pending => ("pending", "🕓", "sending"),
        DeliveryStatus::Sent => ("sent", "✓", "sent"),
        DeliveryStatus::Delivered => ("delivered", "✓✓", "delivered"),
        DeliveryStatus::Read => ("read", "✓✓", "read"),
        DeliveryStatus::Failed => ("failed", "!", "not sent"),
    }
}

fn write_bubble(out: &mut String, m: &db::Message, selected: bool, edits: &[db::Edit]) {
    let dir = if m.direction == Direction::Incoming {
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
    if m.deleted_at.is_some() {
        out.push_str("<p class=\"text deleted\">🚫 This message was deleted</p>");
    } else {
        if let Some(kind) = &m.media_type {
            write_media(out, kind, m);
        }
        if !m.message.is_empty() {
            let _ = write!(out, "<p class=\"text\">{}</p>", escape(&m.message));
        }
    }
    if !edits.is_empty() {
        let _ = write!(
            out,
            "<details class=\"edits\"><summary>edited</summary><ol>"
        );
        for e in edits {
            let _ = write!(
                out,
                "<li>{} <span class=\"meta\">(until {})</span></li>",
                escape(&e.message),
                time_html(e.edited_at)
            );
        }
        out.push_str("</ol></details>");
    } else if m.edited_at.is_some() {
        out.push_str("<p class=\"meta\">edited</p>");
    }
    if !m.reactions.is_empty() {
        out.push_str("<p class=\"reactions\">");
        for r in &m.reactions {
            let who = if r.sender_jid == db::ME {
                "You".to_string()
            } else {
                display_phone(&r.sender_jid)
            };
            let _ = write!(
                out,
                "<span class=\"reaction\" title=\"{who}\">{emoji}</span>",
                who = escape(&who),
                emoji = escape(&r.emoji)
            );
        }
        out.push_str("</p>");
    }
    let status = if m.direction == Direction::Incoming {
        escape(m.reply_status.as_str())
    } else {
        let (class, mark, label) = ticks(m.delivery_status);
        format!(
            "<span class=\"ticks {class}\" title=\"{label}\" aria-label=\"{label}\">{mark}</span>"
        )
    };
    let _ = write!(
        out,
        "<p class=\"meta\">{who}{when} · {status}{link}</p></li>",
        who = if m.direction == Direction::Incoming {
            m.push_name
                .as_deref()
                .map(|n| format!("{} · ", escape(n)))
                .unwrap_or_default()
        } else if m.source == Some(Source::Phone) {
            "You, on the phone · ".to_string()
        } else {
            "You · ".to_string()
        },
        when = time_html(m.created_at),
        link = if m.direction == Direction::Incoming && !selected && m.deleted_at.is_none() {
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
                "audio" | "voice" => write!(
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

/// `POST /reply/:id/react`: our reaction to a message (an empty emoji
/// takes ours back), then back to the chat.
pub fn react(ctx: &mut Ctx, req: &Request, params: &[&str]) -> Result<Response, ApiError> {
    let form = read_form(ctx, req)?;
    let back = safe_back(form.get("back"), &format!("/reply/{}", seg(params[0])));
    let emoji = form.get("emoji").unwrap_or("");
    match ops::messages::react(ctx, params[0], emoji) {
        Ok(()) => {
            audit(ctx, req, format!("reacted to message {}", params[0]));
            Ok(done(
                &back,
                if emoji.is_empty() {
                    "Reaction removed"
                } else {
                    "Reaction sent"
                },
            ))
        }
        Err(e) => refused(&back, "Reaction not sent: ", e),
    }
}

/// `POST /reply/:id`: send the reply (quoted), then back to the chat.
pub fn reply(ctx: &mut Ctx, req: &Request, params: &[&str]) -> Result<Response, ApiError> {
    let mut form = read_form(ctx, req)?;
    let here = format!("/reply/{}", seg(params[0]));
    // Browsers send a textarea's line breaks as CRLF; WhatsApp wants LF.
    let text = form.get("message").unwrap_or("").replace("\r\n", "\n");
    let text = text.as_str();
    let file = match form.1.take() {
        Some(Ok(file)) => Some(file),
        Some(Err(e)) => return refused(&here, "Not sent: ", e),
        None => None,
    };
    if text.trim().is_empty() && file.is_none() {
        return Ok(failed(&here, "Write a message or choose a file first"));
    }
    if text.len() > ops::messages::REPLY_MAX_BYTES {
        return Ok(failed(&here, "The message is longer than 65536 bytes"));
    }
    let key = form
        .get("key")
        .filter(|k| IdempotencyKey::is_valid(k))
        .map(|k| {
            let content = match &file {
                None => json!(text),
                Some(f) => json!([text, f.sha256()]),
            };
            IdempotencyKey::new(k.to_string(), "POST /reply/:id", params[0], &content)
        });
    match ops::messages::send_reply(ctx, params[0], text, file, key.as_ref(), Source::Dashboard) {
        Ok(_) => {
            audit(ctx, req, format!("replied to message {}", params[0]));
            Ok(done(&here, "Reply sent"))
        }
        Err(e) => {
            if !matches!(e, ops::Error::NotFound(_)) {
                let why = e.message();
                audit(
                    ctx,
                    req,
                    format!("reply to message {} failed: {why}", params[0]),
                );
            }
            refused(&here, "Not sent: ", e)
        }
    }
}
