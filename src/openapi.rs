//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`. A test walks
//! it against `router::ROUTES` in both directions, so it cannot drift.

use serde_json::{Value, json};

fn error_ref() -> Value {
    json!({ "$ref": "#/components/schemas/Error" })
}

fn resp(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

fn err(description: &str) -> Value {
    resp(description, error_ref())
}

fn path_param(name: &str, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": { "type": "string", "minLength": 1 } })
}

fn query(name: &str, schema: Value, description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

/// An optional `YYYY-MM-DD` (an empty value means "no filter").
fn date_schema() -> Value {
    json!({ "type": "string", "pattern": "^([0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01]))?$" })
}

fn body(schema: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema } } })
}

fn paging() -> Vec<Value> {
    vec![
        query(
            "page",
            json!({ "type": "integer", "minimum": 1 }),
            "page number (default 1)",
        ),
        query(
            "limit",
            json!({ "type": "integer", "minimum": 1, "maximum": 100 }),
            "page size (default 50, at most 100)",
        ),
    ]
}

/// Standard error responses of an authenticated JSON route.
fn secured(mut responses: Value) -> Value {
    let map = responses.as_object_mut().expect("responses is an object");
    map.insert("401".into(), err("missing or wrong API key"));
    map.insert("429".into(), err("over the rate limit"));
    responses
}

fn op(
    summary: &str,
    params: Vec<Value>,
    request: Option<Value>,
    responses: Value,
    public: bool,
) -> Value {
    let mut o = json!({ "summary": summary, "parameters": params, "responses": if public { responses } else { secured(responses) } });
    if let Some(r) = request {
        o["requestBody"] = r;
    }
    if public {
        o["security"] = json!([]);
    }
    o
}

fn messages_page() -> Value {
    json!({
        "type": "object",
        "required": ["count", "messages", "pagination"],
        "properties": {
            "count": { "type": "integer" },
            "messages": { "type": "array", "items": { "$ref": "#/components/schemas/Message" } },
            "pagination": { "$ref": "#/components/schemas/Pagination" }
        }
    })
}

fn inbox_params(with_status: bool) -> Vec<Value> {
    let mut p = Vec::new();
    if with_status {
        p.push(json!({ "name": "status", "in": "path", "required": true,
            "schema": { "type": "string", "enum": ["unread", "read", "replied", "ignored", "all"] } }));
    }
    p.extend(paging());
    p.push(query(
        "search",
        json!({ "type": "string" }),
        "case-insensitive substring of the text",
    ));
    p.push(query(
        "phone",
        json!({ "type": "string" }),
        "substring of the chat JID",
    ));
    p.push(query(
        "startDate",
        json!({ "type": "string", "format": "date" }),
        "first day included (YYYY-MM-DD)",
    ));
    p.push(query(
        "endDate",
        json!({ "type": "string", "format": "date" }),
        "last day included (YYYY-MM-DD)",
    ));
    p
}

fn success() -> Value {
    json!({ "type": "object", "required": ["success"], "properties": { "success": { "type": "boolean" } } })
}

/// A comma-separated list of known event names.
fn events_pattern() -> String {
    let one = format!(
        "({})",
        crate::webhooks::EVENTS
            .map(|e| e.replace('.', "\\."))
            .join("|")
    );
    format!("^{one}(,{one})*$")
}

fn webhook_input(required: bool) -> Value {
    let mut s = json!({
        "type": "object",
        "properties": {
            "url": { "type": "string", "pattern": "^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$", "maxLength": 2048 },
            "events": { "oneOf": [
                { "type": "array", "minItems": 1, "items": { "type": "string", "enum": crate::webhooks::EVENTS } },
                { "type": "string", "pattern": events_pattern() }
            ] },
            "secret": { "oneOf": [ { "type": "string", "pattern": "^[^\\x00-\\x1f\\x7f]{1,256}$" }, { "type": "boolean" }, { "type": "null" } ] },
            "active": { "oneOf": [ { "type": "boolean" }, { "type": "integer", "enum": [0, 1] } ] }
        }
    });
    if required {
        s["required"] = json!(["url", "events"]);
    }
    s
}

/// The whole document.
pub fn document() -> Value {
    let id = || path_param("id", "public id");
    let wh = || json!({ "$ref": "#/components/schemas/Webhook" });
    let status_enum =
        json!({ "type": "string", "enum": ["unread", "read", "replied", "ignored", "sent"] });
    let sim = |summary: &str, request: Option<Value>, ok: (&str, &str, Value)| {
        let mut responses =
            json!({ "400": err("invalid input"), "404": err("not running the simulator backend") });
        responses[ok.0] = resp(ok.1, ok.2);
        op(summary, vec![], request, responses, false)
    };
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "whatsapp-api",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A self-hosted, reply-only WhatsApp HTTP API. Authenticate with the X-API-Key header."
        },
        "servers": [ { "url": "/" } ],
        "security": [ { "apiKey": [] } ],
        "paths": {
            "/api/v1/health": { "get": op("Connection health (no auth)", vec![], None, json!({
                "200": resp("health", json!({ "type": "object", "required": ["status"],
                    "properties": { "status": { "type": "string", "enum": ["connected", "disconnected"] } } }))
            }), true) },
            "/api/v1/status": { "get": op("Connection status", vec![], None, json!({
                "200": resp("status", json!({ "type": "object", "required": ["connected", "qrReady", "sessionExists"],
                    "properties": {
                        "connected": { "type": "boolean" }, "qrReady": { "type": "boolean" },
                        "sessionExists": { "type": "boolean" },
                        "state": { "type": "string", "enum": ["connecting", "qr", "connected", "disconnected", "logged_out"] },
                        "me": { "type": ["string", "null"] }
                    } }))
            }), false) },
            "/api/v1/inbox": { "get": op("Unread incoming messages, newest first", inbox_params(false), None, json!({
                "200": resp("a page of messages", messages_page()), "400": err("malformed date")
            }), false) },
            "/api/v1/inbox/{status}": { "get": op("Incoming messages with a status, newest first", inbox_params(true), None, json!({
                "200": resp("a page of messages", messages_page()), "400": err("invalid status or malformed date")
            }), false) },
            "/api/v1/messages/batch/status": { "patch": op("Set the status of many messages", vec![],
                Some(body(json!({ "type": "object", "required": ["ids", "status"], "properties": {
                    "ids": { "type": "array", "items": { "type": "string" }, "minItems": 1, "maxItems": 1000 },
                    "status": status_enum } }))),
                json!({
                    "200": resp("updated", json!({ "type": "object", "required": ["success", "updated"],
                        "properties": { "success": { "type": "boolean" }, "updated": { "type": "integer" } } })),
                    "400": err("missing or invalid ids array, or invalid status")
                }), false) },
            "/api/v1/messages/{id}": { "get": op("One message", vec![id()], None, json!({
                "200": resp("the message", json!({ "$ref": "#/components/schemas/Message" })),
                "404": err("no such message")
            }), false) },
            "/api/v1/messages/{id}/reply": { "post": {
                "summary": "Reply to an incoming message (quoted on WhatsApp)",
                "parameters": [id(), { "name": "Idempotency-Key", "in": "header", "required": false,
                    "schema": { "type": "string", "pattern": "^[!-~]{1,255}$" } }],
                "requestBody": body(json!({ "type": "object", "required": ["message"],
                    "properties": { "message": { "type": "string", "pattern": "\\S", "maxLength": 65536 } } })),
                "responses": secured(json!({
                    "200": resp("sent", json!({ "type": "object", "required": ["success", "replyId"],
                        "properties": { "success": { "type": "boolean" }, "replyId": { "type": "string" }, "waId": { "type": "string" } } })),
                    "400": err("missing message, or not an incoming message"),
                    "404": err("no such message"),
                    "409": err("the same Idempotency-Key is in flight"),
                    "500": err("the send failed"),
                    "503": err("WhatsApp not connected")
                }))
            } },
            "/api/v1/messages/{id}/status": { "patch": op("Set a message's status", vec![id()],
                Some(body(json!({ "type": "object", "required": ["status"], "properties": { "status": status_enum } }))),
                json!({ "200": resp("updated", success()), "400": err("invalid status"), "404": err("no such message") }), false) },
            "/api/v1/webhooks": {
                "get": op("List webhooks (secrets are never returned)", vec![], None, json!({
                    "200": resp("webhooks", json!({ "type": "object", "required": ["webhooks"],
                        "properties": { "webhooks": { "type": "array", "items": wh() } } }))
                }), false),
                "post": op("Create a webhook", vec![], Some(body(webhook_input(true))), json!({
                    "201": resp("created; `secret` is shown this once", wh()), "400": err("invalid input")
                }), false)
            },
            "/api/v1/webhooks/{id}": {
                "patch": op("Update a webhook", vec![id()], Some(body(webhook_input(false))), json!({
                    "200": resp("updated", wh()), "400": err("invalid input"), "404": err("no such webhook")
                }), false),
                "delete": op("Delete a webhook and its delivery log", vec![id()], None, json!({
                    "200": resp("deleted", success()), "404": err("no such webhook")
                }), false)
            },
            "/api/v1/webhooks/{id}/test": { "post": op("Send a webhook.test event", vec![id()], None, json!({
                "202": resp("queued", json!({ "type": "object", "properties": { "success": { "type": "boolean" }, "deliveryId": { "type": "string" } } })),
                "404": err("no such webhook")
            }), false) },
            "/api/v1/webhooks/{id}/deliveries": { "get": op("A webhook's deliveries with their attempts, newest first",
                { let mut p = vec![id()]; p.extend(paging()); p }, None, json!({
                "200": resp("deliveries", json!({ "type": "object", "required": ["deliveries"], "properties": {
                    "deliveries": { "type": "array", "items": { "$ref": "#/components/schemas/Delivery" } },
                    "pagination": { "$ref": "#/components/schemas/Pagination" } } })),
                "404": err("no such webhook")
            }), false) },
            "/api/v1/deliveries/{id}/redeliver": { "post": op("Run a delivery's retry schedule again", vec![id()], None, json!({
                "202": resp("queued", json!({ "type": "object", "properties": { "success": { "type": "boolean" }, "deliveryId": { "type": "string" } } })),
                "404": err("no such delivery")
            }), false) },
            "/media/{file}": { "get": {
                "summary": "A stored media file (API key or dashboard Basic Auth)",
                "security": [ { "apiKey": [] }, { "basic": [] } ],
                "parameters": [path_param("file", "file name from media_url")],
                "responses": {
                    "200": { "description": "the file", "content": { "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } } },
                    "401": err("no credentials"), "404": err("no such file"), "429": err("over the rate limit")
                }
            } },
            "/api/v1/openapi.json": { "get": op("This document (no auth)", vec![], None, json!({
                "200": resp("OpenAPI 3.1", json!({ "type": "object" }))
            }), true) },
            "/api/v1/conversations": { "get": op("Chats, most recent first", paging(), None, json!({
                "200": resp("chats", json!({ "type": "object", "required": ["conversations", "pagination"], "properties": {
                    "count": { "type": "integer" },
                    "conversations": { "type": "array", "items": { "type": "object", "properties": {
                        "phone": { "type": "string" }, "unread": { "type": "integer" },
                        "lastMessage": { "$ref": "#/components/schemas/Message" } } } },
                    "pagination": { "$ref": "#/components/schemas/Pagination" } } }))
            }), false) },
            "/api/v1/conversations/{phone}/messages": { "get": op("One chat, both directions, oldest first",
                { let mut p = vec![path_param("phone", "chat JID")]; p.extend(paging()); p }, None, json!({
                "200": resp("messages", messages_page())
            }), false) },
            "/api/v1/qr": { "get": op("The current pairing QR code", vec![
                    query("format", json!({ "type": "string", "enum": ["json", "svg"] }), "json (default) or svg")
                ], None, json!({
                "200": { "description": "the code", "content": {
                    "application/json": { "schema": { "type": "object", "properties": { "qr": { "type": "string" }, "expiresIn": { "type": "integer" } } } },
                    "image/svg+xml": { "schema": { "type": "string" } } } },
                "400": err("bad format"),
                "404": err("no QR code right now")
            }), false) },
            "/api/v1/session/pair-code": { "post": op("Pair by phone-number code", vec![],
                Some(body(json!({ "type": "object", "required": ["phone"], "properties": {
                    "phone": { "type": "string", "pattern": "^\\+?[0-9]{7,15}$" } } }))),
                json!({
                    "200": resp("the code to type on the phone", json!({ "type": "object", "properties": { "code": { "type": "string" } } })),
                    "400": err("bad phone number"), "409": err("already connected"), "503": err("the backend could not make a code")
                }), false) },
            "/api/v1/session/logout": { "post": op("Unlink this device", vec![], None, json!({
                "200": resp("logged out", success()), "503": err("the backend could not log out")
            }), false) },
            "/api/v1/session/pair": { "post": op("Start a new pairing after a logout (QR codes follow)", vec![], None, json!({
                "200": resp("pairing started", success()), "409": err("already paired, or the backend could not start")
            }), false) },
            "/api/v1/audit-logs": { "get": op("The audit log, newest first", {
                    let mut p = paging();
                    p.push(query("action", json!({ "type": "string" }), "exact action"));
                    p.push(query("startDate", date_schema(), "first day included"));
                    p.push(query("endDate", date_schema(), "last day included"));
                    p
                }, None, json!({
                "200": resp("rows", json!({ "type": "object", "required": ["logs", "pagination"], "properties": {
                    "count": { "type": "integer" }, "logs": { "type": "array", "items": { "type": "object" } },
                    "pagination": { "$ref": "#/components/schemas/Pagination" } } })),
                "400": err("malformed date")
            }), false) },
            "/metrics": { "get": {
                "summary": "Prometheus metrics (API key or dashboard Basic Auth)",
                "security": [ { "apiKey": [] }, { "basic": [] } ],
                "responses": {
                    "200": { "description": "text exposition format", "content": { "text/plain": { "schema": { "type": "string" } } } },
                    "401": err("no credentials"), "429": err("over the rate limit")
                }
            } },
            "/api/v1/simulator/messages": { "post": sim("Inject an incoming message (simulator only)",
                Some(body(json!({ "type": "object", "required": ["from"],
                    "anyOf": [ { "required": ["text"] }, { "required": ["media_type"] } ],
                    "dependentRequired": { "media_base64": ["media_type"] },
                    "properties": {
                    "from": { "type": "string", "pattern": "^[A-Za-z0-9._:-]{1,64}@[a-z0-9.-]{1,64}$" },
                    "text": { "type": "string", "minLength": 1 },
                    "id": { "type": "string", "minLength": 1, "maxLength": 128 },
                    "push_name": { "type": "string" },
                    "media_type": { "type": "string", "enum": ["image", "video", "audio", "document", "sticker"] },
                    "media_base64": { "type": "string", "pattern": "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$" },
                    "mime": { "type": "string" }, "filename": { "type": "string" },
                    "group": { "type": "string", "pattern": "^[A-Za-z0-9._:-]{1,64}@g\\.us$" } } }))),
                ("201", "stored", json!({ "type": "object", "properties": { "wa_id": { "type": "string" } } }))) },
            "/api/v1/simulator/raw": { "post": sim("Inject a WhatsApp message as its protobuf, translated by the real backend's code (simulator only)",
                Some(body(json!({ "type": "object", "required": ["from", "proto_base64"], "properties": {
                    "from": { "type": "string", "pattern": "^[A-Za-z0-9._:-]{1,64}@[a-z0-9.-]{1,64}$",
                        "description": "the customer: the chat of a direct message, the author in a group (with from_me, the chat)" },
                    "from_alt": { "type": "string", "pattern": "^[A-Za-z0-9._:-]{1,64}@[a-z0-9.-]{1,64}$",
                        "description": "the phone-number JID WhatsApp names alongside a LID from (or the LID alongside a phone number)" },
                    "proto_base64": { "type": "string", "minLength": 1, "pattern": "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
                        "description": "a whatsapp.Message (the WhatsApp Web schema whatsapp-rust ships), protobuf-encoded" },
                    "id": { "type": "string", "minLength": 1, "maxLength": 128 },
                    "push_name": { "type": "string" },
                    "group": { "type": "string", "pattern": "^[A-Za-z0-9._:-]{1,64}@g\\.us$" },
                    "timestamp": { "type": "integer", "minimum": 0, "maximum": 253_402_300_799_i64, "description": "when WhatsApp says it was sent, Unix seconds" },
                    "media_base64": { "type": "string", "pattern": "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
                        "description": "stands in for the downloaded file of a media message" },
                    "from_me": { "type": "boolean", "description": "sent by our own account from the phone" } } }))),
                ("201", "applied", json!({ "type": "object", "properties": { "wa_id": { "type": "string" },
                    "result": { "type": "string", "enum": ["message", "update", "ignored"] } } }))) },
            "/api/v1/simulator/connection": { "post": sim("Drive the connection state (simulator only)",
                Some(body(json!({ "type": "object", "required": ["state"], "properties": {
                    "state": { "type": "string", "enum": ["qr", "connected", "disconnected", "logged_out"] } } }))),
                ("200", "done", success())) },
            "/api/v1/simulator/sent": { "get": sim("What the app sent (simulator only)", None,
                ("200", "sent messages", json!({ "type": "array", "items": { "type": "object", "properties": {
                    "to": { "type": "string" }, "text": { "type": "string" },
                    "quoted_wa_id": { "type": ["string", "null"] }, "wa_id": { "type": "string" } } } }))) },
            "/api/v1/simulator/fail-sends": { "post": sim("Make sends fail (simulator only)",
                Some(body(json!({ "type": "object", "required": ["fail"], "properties": { "fail": { "type": "boolean" } } }))),
                ("200", "done", success())) }
        },
        "components": {
            "securitySchemes": {
                "apiKey": { "type": "apiKey", "in": "header", "name": "X-API-Key" },
                "basic": { "type": "http", "scheme": "basic" }
            },
            "schemas": {
                "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "string" } } },
                "Pagination": { "type": "object", "required": ["page", "limit", "total", "totalPages"], "properties": {
                    "page": { "type": "integer" }, "limit": { "type": "integer" },
                    "total": { "type": "integer" }, "totalPages": { "type": "integer" } } },
                "Message": { "type": "object", "required": ["id", "direction", "phone", "message", "reply_status", "created_at"], "properties": {
                    "id": { "type": "string" },
                    "direction": { "type": "string", "enum": ["incoming", "outgoing"] },
                    "phone": { "type": "string" }, "message": { "type": "string" },
                    "reply_status": { "type": "string", "enum": ["unread", "read", "replied", "ignored", "sent"] },
                    "media_type": { "type": ["string", "null"] }, "media_url": { "type": ["string", "null"] },
                    "created_at": { "type": "string", "description": "YYYY-MM-DD HH:MM:SS, UTC" },
                    "wa_id": { "type": ["string", "null"] }, "sender_jid": { "type": "string" },
                    "push_name": { "type": ["string", "null"] },
                    "delivery_status": { "type": ["string", "null"], "enum": ["pending", "sent", "delivered", "read", "failed", null] },
                    "media_mime": { "type": ["string", "null"] }, "media_size": { "type": ["integer", "null"] },
                    "media_error": { "type": ["string", "null"] }, "in_reply_to": { "type": ["string", "null"] },
                    "received_at": { "type": "string", "description": "when this server stored it, YYYY-MM-DD HH:MM:SS, UTC (created_at is when WhatsApp says it was sent)" },
                    "sender_lid": { "type": ["string", "null"], "description": "the author's LID (WhatsApp privacy id), when known" },
                    "source": { "type": ["string", "null"], "enum": ["api", "dashboard", "phone", null], "description": "outgoing: who sent it (phone: our own account from the phone or WhatsApp Web)" } } },
                "Webhook": { "type": "object", "required": ["id", "url", "events", "active", "created_at", "has_secret"], "properties": {
                    "id": { "type": "string" }, "url": { "type": "string" },
                    "events": { "type": "string", "description": "comma-separated event names" },
                    "active": { "type": "integer", "enum": [0, 1] },
                    "created_at": { "type": "string" }, "updated_at": { "type": "string" },
                    "has_secret": { "type": "boolean" },
                    "secret": { "type": "string", "description": "only in the answer that created or set it" } } },
                "Delivery": { "type": "object", "required": ["id", "event", "status", "attempts"], "properties": {
                    "id": { "type": "string" }, "webhook_id": { "type": "string" }, "event": { "type": "string" },
                    "status": { "type": "string", "enum": ["pending", "delivered", "failed"] },
                    "attempts": { "type": "array", "items": { "type": "object", "properties": {
                        "at": { "type": "string" }, "status_code": { "type": ["integer", "null"] },
                        "error": { "type": ["string", "null"] }, "duration_ms": { "type": "integer" } } } },
                    "next_attempt_at": { "type": ["string", "null"] },
                    "created_at": { "type": "string" }, "updated_at": { "type": "string" },
                    "payload": {} } }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::{Access, ROUTES};
    use std::collections::BTreeSet;

    /// `/a/:b/c` -> `/a/{b}/c`.
    fn openapi_path(template: &str) -> String {
        template
            .split('/')
            .map(|s| match s.strip_prefix(':') {
                Some(name) => format!("{{{name}}}"),
                None => s.to_string(),
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    fn documented() -> BTreeSet<(String, String)> {
        let doc = document();
        let mut set = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                set.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
        set
    }

    #[test]
    fn router_and_document_are_equal() {
        let served: BTreeSet<(String, String)> = ROUTES
            .iter()
            .filter(|r| {
                r.access != Access::Dashboard
                    && r.path != "/favicon.ico"
                    && !r.path.starts_with("/assets/")
            })
            .map(|r| (r.method.as_str().to_string(), openapi_path(r.path)))
            .collect();
        let documented = documented();
        let missing: Vec<_> = served.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&served).collect();
        assert!(missing.is_empty(), "served but not documented: {missing:?}");
        assert!(extra.is_empty(), "documented but not served: {extra:?}");
    }

    #[test]
    fn every_path_parameter_is_declared() {
        let doc = document();
        for (path, item) in doc["paths"].as_object().unwrap() {
            let names: Vec<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            for (method, op) in item.as_object().unwrap() {
                for name in &names {
                    let declared = op["parameters"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|p| p["in"] == "path" && p["name"] == *name);
                    assert!(declared, "{method} {path} does not declare {name}");
                }
            }
        }
    }
}
