//! Webhooks: their settings, and what is delivered to them (the delivery
//! thread itself is `crate::webhooks`).

use super::{Ctx, Error};
use crate::webhooks::{self as delivery, EVENTS, WEBHOOK_TEST};
use crate::{auth, clock, db};
use serde_json::json;

/// A webhook's fields as a create or an update gives them (None: not
/// given), each already checked by `url`, `events` or `secret` below.
#[derive(Debug, Default)]
pub struct WebhookChange {
    pub url: Option<String>,
    /// Comma-separated event names.
    pub events: Option<String>,
    pub secret: Option<SecretChange>,
    pub active: Option<bool>,
}

/// What becomes of a webhook's signing secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretChange {
    /// A new random one, shown once.
    Generate,
    /// This one.
    Set(String),
    /// None: deliveries go out unsigned.
    Remove,
}

/// An http(s) URL with a host and nothing that could break a header line.
pub fn url(raw: &str) -> Result<String, Error> {
    let url = raw.trim();
    let bad = || Error::invalid("url must be an http:// or https:// URL");
    if url.len() > 2048 || url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad());
    }
    let uri: ureq::http::Uri = url.parse().map_err(|_| bad())?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http") | Some("https"), Some(host)) if !host.is_empty() => Ok(url.to_string()),
        _ => Err(bad()),
    }
}

/// Event names, each an exact known event (surrounding spaces and empty
/// names ignored, repeats dropped), as the comma-separated list stored.
pub fn events<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<String, Error> {
    let mut out: Vec<&str> = Vec::new();
    for name in names.into_iter().map(str::trim).filter(|n| !n.is_empty()) {
        if !EVENTS.contains(&name) {
            return Err(Error::invalid(format!(
                "Unknown event {name:?}; known events: {}",
                EVENTS.join(", ")
            )));
        }
        if !out.contains(&name) {
            out.push(name);
        }
    }
    if out.is_empty() {
        return Err(Error::invalid(format!(
            "events must name at least one of: {}",
            EVENTS.join(", ")
        )));
    }
    Ok(out.join(","))
}

/// What a signing secret may be.
pub const SECRET_RULE: &str =
    "secret must be true (generate one) or a string of 1 to 256 characters";

/// A signing secret someone chose: 1 to 256 characters, none a control.
pub fn secret(raw: &str) -> Result<String, Error> {
    if !raw.is_empty() && raw.len() <= 256 && !raw.chars().any(char::is_control) {
        Ok(raw.to_string())
    } else {
        Err(Error::invalid(SECRET_RULE))
    }
}

/// Every webhook, oldest first.
pub fn list(ctx: &Ctx) -> Result<Vec<db::Webhook>, Error> {
    Ok(db::list_webhooks(&ctx.db)?)
}

/// One webhook, if it exists.
pub fn find(ctx: &Ctx, id: &str) -> Result<Option<db::Webhook>, Error> {
    Ok(db::get_webhook(&ctx.db, id)?)
}

/// One webhook; a missing one is `NotFound`.
pub fn get(ctx: &Ctx, id: &str) -> Result<db::Webhook, Error> {
    find(ctx, id)?.ok_or_else(|| Error::NotFound("Webhook not found".into()))
}

/// How a webhook's deliveries are going.
pub fn health(ctx: &Ctx, id: &str) -> Result<db::WebhookHealth, Error> {
    Ok(db::webhook_health(&ctx.db, id)?)
}

/// One page of a webhook's deliveries, newest first, and how many it has.
pub fn deliveries(
    ctx: &Ctx,
    id: &str,
    page: u32,
    limit: u32,
) -> Result<(Vec<db::Delivery>, i64), Error> {
    Ok(db::list_deliveries(&ctx.db, id, page, limit)?)
}

/// The secret a change leaves set, when it sets one (to show it once).
fn new_secret(change: &Option<SecretChange>) -> Option<Option<String>> {
    match change {
        None => None,
        Some(SecretChange::Remove) => Some(None),
        Some(SecretChange::Generate) => Some(Some(auth::generate_webhook_secret())),
        Some(SecretChange::Set(s)) => Some(Some(s.clone())),
    }
}

/// Stores a new webhook (`url` and `events` are required; active unless
/// said otherwise). Returns it and its secret, for the one time it is shown.
pub fn create(
    ctx: &mut Ctx,
    change: WebhookChange,
) -> Result<(db::Webhook, Option<String>), Error> {
    let now = clock::now_secs();
    let secret = new_secret(&change.secret).flatten();
    let hook = db::Webhook {
        id: auth::uuid_v4(),
        url: change
            .url
            .ok_or_else(|| Error::invalid("url is required"))?,
        events: change
            .events
            .ok_or_else(|| Error::invalid("events is required"))?,
        secret: secret.clone(),
        active: change.active.unwrap_or(true),
        created_at: now,
        updated_at: now,
    };
    db::upsert_webhook(&ctx.db, &hook)?;
    Ok((hook, secret))
}

/// Applies a change to webhook `id`. Returns it and a newly set secret, for
/// the one time it is shown.
pub fn update(
    ctx: &mut Ctx,
    id: &str,
    change: WebhookChange,
) -> Result<(db::Webhook, Option<String>), Error> {
    let mut hook = get(ctx, id)?;
    let secret = new_secret(&change.secret);
    if let Some(url) = change.url {
        hook.url = url;
    }
    if let Some(events) = change.events {
        hook.events = events;
    }
    if let Some(secret) = &secret {
        hook.secret = secret.clone();
    }
    if let Some(active) = change.active {
        hook.active = active;
    }
    hook.updated_at = clock::now_secs();
    db::upsert_webhook(&ctx.db, &hook)?;
    Ok((hook, secret.flatten()))
}

/// Deletes webhook `id` and its delivery log.
pub fn delete(ctx: &mut Ctx, id: &str) -> Result<(), Error> {
    if !db::delete_webhook(&ctx.db, id)? {
        return Err(Error::NotFound("Webhook not found".into()));
    }
    Ok(())
}

/// Pauses an active webhook or resumes a paused one; returns it as it was.
pub fn toggle(ctx: &mut Ctx, id: &str) -> Result<db::Webhook, Error> {
    let hook = get(ctx, id)?;
    db::set_webhook_active(&ctx.db, &hook.id, !hook.active)?;
    Ok(hook)
}

/// Queues a `webhook.test` delivery to webhook `id`, whatever it
/// subscribes to; returns the delivery's id.
pub fn queue_test(ctx: &mut Ctx, id: &str) -> Result<String, Error> {
    let hook = get(ctx, id)?;
    let data = json!({ "webhookId": hook.id, "message": "This is a test event from whatsapp-api" });
    let payload = delivery::payload(WEBHOOK_TEST, data);
    let delivery_id = db::insert_delivery(&ctx.db, &hook.id, WEBHOOK_TEST, &payload)?;
    ctx.webhooks.wake();
    Ok(delivery_id)
}

/// Queues delivery `id` again (of webhook `webhook`, when given): pending,
/// its attempts kept.
pub fn redeliver(ctx: &mut Ctx, id: &str, webhook: Option<&str>) -> Result<(), Error> {
    if !db::redeliver(&ctx.db, id, webhook)? {
        return Err(Error::NotFound("Delivery not found".into()));
    }
    ctx.webhooks.wake();
    Ok(())
}

/// Deliveries waiting for an attempt, over every webhook.
pub fn pending_count(ctx: &Ctx) -> Result<i64, Error> {
    Ok(db::pending_delivery_count(&ctx.db)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_checked_exactly() {
        assert_eq!(
            events("message.received, message.sent".split(',')).unwrap(),
            "message.received,message.sent"
        );
        assert_eq!(
            events(["message.sent", " message.sent"]).unwrap(),
            "message.sent"
        );
        assert!(events(["message"]).is_err());
        assert!(events(["message.received.x"]).is_err());
        assert!(events([]).is_err());
        assert!(events(["", " "]).is_err());
    }

    #[test]
    fn urls_are_checked() {
        assert!(url("http://127.0.0.1:8080/hook").is_ok());
        assert_eq!(
            url(" https://example.com/a?b=c ").unwrap(),
            "https://example.com/a?b=c"
        );
        for bad in [
            "ftp://x/",
            "example.com",
            "http://",
            "http://a b/",
            "http://x/\r\nX-Evil: 1",
            "javascript:alert(1)",
            "",
        ] {
            assert!(url(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn secrets_are_checked_and_generated() {
        assert_eq!(secret("abc").unwrap(), "abc");
        assert!(secret("").is_err());
        assert!(secret(&"x".repeat(257)).is_err());
        assert!(secret("a\nb").is_err());
        assert!(
            matches!(new_secret(&Some(SecretChange::Generate)), Some(Some(s)) if s.starts_with("whsec_"))
        );
        assert_eq!(new_secret(&Some(SecretChange::Remove)), Some(None));
        assert_eq!(new_secret(&None), None);
    }
}
