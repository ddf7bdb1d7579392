//! Webhooks (`/webhooks`): the list with each one's health, the create
//! form, one webhook's edit form and delivery log, and their actions.

use super::{
    Flash, FlashKind, Form, audit, csrf_field, done, escape, not_found, page, read_form,
    redirect_with, refused, seg, time_html, write_pager,
};
use crate::clock;
use crate::db;
use crate::error::ApiError;
use crate::ops::webhooks::{SecretChange, WebhookChange};
use crate::ops::{self, Ctx};
use crate::status::HookDeliveryStatus;
use crate::web::{Request, Response};
use crate::webhooks::{EVENTS, MESSAGE_RECEIVED};
use std::fmt::Write as _;

fn write_event_boxes(out: &mut String, checked: impl Fn(&str) -> bool) {
    out.push_str("<fieldset><legend>Events</legend>");
    for event in EVENTS {
        let _ = write!(
            out,
            "<label class=\"check\"><input type=\"checkbox\" name=\"events\" value=\"{event}\"{}> {event}</label>",
            if checked(event) { " checked" } else { "" }
        );
    }
    out.push_str("</fieldset>");
}

/// `GET /webhooks`: the list and the create form.
pub fn list(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let hooks = ops::webhooks::list(ctx)?;
    let csrf = csrf_field(ctx);
    let mut main = String::from("<h1>Webhooks</h1>");
    if hooks.is_empty() {
        main.push_str("<p class=\"empty\">No webhooks yet.</p>");
    } else {
        main.push_str("<ul class=\"hooks\">");
        for h in &hooks {
            let id = escape(&seg(&h.id));
            let health = ops::webhooks::health(ctx, &h.id)?;
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
    write_event_boxes(&mut main, |e| e == MESSAGE_RECEIVED);
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

/// The create and edit forms as a change: they always give the url, the
/// events and whether it is active.
fn webhook_change(form: &Form, secret: Option<SecretChange>) -> Result<WebhookChange, ops::Error> {
    Ok(WebhookChange {
        url: Some(ops::webhooks::url(form.text("url"))?),
        events: Some(ops::webhooks::events(
            form.all("events").iter().map(String::as_str),
        )?),
        secret,
        active: Some(form.get("active").is_some()),
    })
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
pub fn create(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let form = read_form(ctx, req)?;
    let secret = form.get("generate_secret").map(|_| SecretChange::Generate);
    let created =
        webhook_change(&form, secret).and_then(|change| ops::webhooks::create(ctx, change));
    match created {
        Ok((hook, secret)) => {
            audit(ctx, req, format!("created webhook {}", hook.id));
            let flash = secret_flash("Webhook added.", secret);
            Ok(redirect_with("/webhooks", flash))
        }
        Err(e) => refused("/webhooks", "", e),
    }
}

/// `GET /webhooks/:id`: the edit form and the delivery log.
pub fn show(ctx: &mut Ctx, req: &Request, params: &[&str]) -> Result<Response, ApiError> {
    let Some(hook) = ops::webhooks::find(ctx, params[0])? else {
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

    let page_no = ops::page_number(req.query("page"));
    let limit = 20;
    let (deliveries, total) = ops::webhooks::deliveries(ctx, &hook.id, page_no, limit)?;
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
    write_pager(&mut main, page_no, ops::page_count(total, limit), |p| {
        format!("/webhooks/{}?page={p}", seg(&hook.id))
    });
    Ok(page(ctx, req, "Webhook", "/webhooks", &main))
}

fn write_delivery(out: &mut String, hook_id: &str, csrf: &str, d: &db::Delivery) {
    let _ = write!(
        out,
        "<li class=\"card delivery\"><p><span class=\"badge dl-{st}\">{st}</span> <strong>{event}</strong> \
         <span class=\"meta\">{created} · <code>{id}</code></span></p>",
        st = d.status,
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
    if d.status != HookDeliveryStatus::Pending {
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
pub fn update(ctx: &mut Ctx, req: &Request, params: &[&str]) -> Result<Response, ApiError> {
    let form = read_form(ctx, req)?;
    let here = format!("/webhooks/{}", seg(params[0]));
    let secret = match form.text("secret") {
        "generate" => Some(SecretChange::Generate),
        "remove" => Some(SecretChange::Remove),
        _ => None,
    };
    let updated = webhook_change(&form, secret)
        .and_then(|change| ops::webhooks::update(ctx, params[0], change));
    match updated {
        Ok((hook, secret)) => {
            audit(ctx, req, format!("updated webhook {}", hook.id));
            Ok(redirect_with(&here, secret_flash("Saved.", secret)))
        }
        Err(e) => refused(&here, "", e),
    }
}

/// `POST /webhooks/:id/toggle`: pause or resume.
pub fn toggle(ctx: &mut Ctx, req: &Request, params: &[&str]) -> Result<Response, ApiError> {
    read_form(ctx, req)?;
    let hook = ops::webhooks::toggle(ctx, params[0])?;
    let what = if hook.active { "paused" } else { "resumed" };
    audit(ctx, req, format!("{what} webhook {}", hook.id));
    Ok(done("/webhooks", format!("Webhook {what}")))
}

/// `POST /webhooks/:id/delete`.
pub fn delete(ctx: &mut Ctx, req: &Request, params: &[&str]) -> Result<Response, ApiError> {
    read_form(ctx, req)?;
    ops::webhooks::delete(ctx, params[0])?;
    audit(ctx, req, format!("deleted webhook {}", params[0]));
    Ok(done("/webhooks", "Webhook deleted"))
}

/// `POST /webhooks/:id/test`: queue a `webhook.test` delivery.
pub fn test(ctx: &mut Ctx, req: &Request, params: &[&str]) -> Result<Response, ApiError> {
    read_form(ctx, req)?;
    let delivery = ops::webhooks::queue_test(ctx, params[0])?;
    audit(ctx, req, format!("sent a test to webhook {}", params[0]));
    Ok(done(
        &format!("/webhooks/{}", seg(params[0])),
        format!("Test event queued as {delivery}"),
    ))
}

/// `POST /webhooks/:id/deliveries/:delivery/redeliver`.
pub fn redeliver(ctx: &mut Ctx, req: &Request, params: &[&str]) -> Result<Response, ApiError> {
    read_form(ctx, req)?;
    ops::webhooks::redeliver(ctx, params[1], Some(params[0]))?;
    audit(ctx, req, format!("redelivered {}", params[1]));
    Ok(done(
        &format!("/webhooks/{}", seg(params[0])),
        "Delivery queued again",
    ))
}
