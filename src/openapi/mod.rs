//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`. A test walks
//! it against `router::ROUTES` in both directions, so it cannot drift.

use crate::status::{DeliveryStatus, Direction, HookDeliveryStatus, ReplyStatus, Source};
use serde_json::{Value, json};

mod conversation;
#[cfg(test)]
mod tests;

use conversation::conversation;

/// The words of a status, for a schema's `enum`; with `null` too when the
/// field may be absent.
fn words<T: Copy>(all: &[T], word: fn(T) -> &'static str, nullable: bool) -> Value {
    let mut list: Vec<Value> = all.iter().map(|v| json!(word(*v))).collect();
    if nullable {
        list.push(Value::Null);
    }
    Value::Array(list)
}

fn error_ref() -> Value {
    json!({ "$ref": "#/components/schemas/Error" })
}

/// `schema` with a description (every field and parameter has one).
fn d(mut schema: Value, description: &str) -> Value {
    schema["description"] = json!(description);
    schema
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
            "Page number, from 1 (default 1; not a whole number, or below 1, means 1).",
        ),
        query(
            "limit",
            json!({ "type": "integer", "minimum": 1, "maximum": 100 }),
            "Items per page (default 50; below 1 means 1, above 100 means 100).",
        ),
    ]
}

fn pagination_ref() -> Value {
    d(
        json!({ "$ref": "#/components/schemas/Pagination" }),
        "Where this page is in the whole list.",
    )
}

/// Standard error responses of an authenticated JSON route.
fn secured(mut responses: Value) -> Value {
    let map = responses.as_object_mut().expect("responses is an object");
    map.insert("401".into(), err("missing or wrong API key"));
    map.insert("429".into(), err("over the rate limit"));
    responses
}

/// One operation: a one-line summary and a description saying what it does.
fn op(
    summary: &str,
    description: &str,
    params: Vec<Value>,
    request: Option<Value>,
    responses: Value,
    public: bool,
) -> Value {
    let mut o = json!({
        "summary": summary,
        "description": description,
        "parameters": params,
        "responses": if public { responses } else { secured(responses) },
    });
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
            "count": d(json!({ "type": "integer" }), "Number of messages on this page."),
            "messages": d(
                json!({ "type": "array", "items": { "$ref": "#/components/schemas/Message" } }),
                "The messages of this page.",
            ),
            "pagination": pagination_ref()
        }
    })
}

/// How a chat may be named wherever a route takes one.
const CHAT_NAMING: &str = "A chat: its JID (15551234567@s.whatsapp.net, 120363012345678901@g.us), \
     or a number, bare or with + (15551234567, +15551234567; spaces and dashes allowed), \
     which names that person's chat (or the group or LID chat of that number, when one is stored).";

fn inbox_params(with_status: bool) -> Vec<Value> {
    let mut p = Vec::new();
    if with_status {
        p.push(json!({ "name": "status", "in": "path", "required": true,
            "description": "Which messages: unread, read, replied, ignored, or all of them.",
            "schema": { "type": "string", "enum": ReplyStatus::TRIAGE.iter().map(|s| s.as_str()).chain(["all"]).collect::<Vec<_>>() } }));
    }
    p.extend(paging());
    p.push(query(
        "search",
        json!({ "type": "string" }),
        "Only messages whose text contains this, case-insensitively.",
    ));
    p.push(query(
        "phone",
        json!({ "type": "string" }),
        "Only chats whose JID contains this. A number as people write it (+1 555-123 4567) \
         is matched by its digits.",
    ));
    p.push(query(
        "startDate",
        json!({ "type": "string", "format": "date" }),
        "First day included, YYYY-MM-DD (UTC).",
    ));
    p.push(query(
        "endDate",
        json!({ "type": "string", "format": "date" }),
        "Last day included, YYYY-MM-DD (UTC).",
    ));
    p
}

fn success() -> Value {
    json!({ "type": "object", "required": ["success"], "properties": {
        "success": d(json!({ "type": "boolean" }), "Always true: the change was made.")
    } })
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
            "url": d(
                json!({ "type": "string", "pattern": "^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$", "maxLength": 2048 }),
                "Where deliveries are POSTed (http or https).",
            ),
            "events": d(json!({ "oneOf": [
                { "type": "array", "minItems": 1, "items": { "type": "string", "enum": crate::webhooks::EVENTS } },
                { "type": "string", "pattern": events_pattern() }
            ] }), "The events to receive: an array, or a comma-separated string, of exact event names."),
            "secret": d(
                json!({ "oneOf": [ { "type": "string", "pattern": "^[^\\x00-\\x1f\\x7f]{1,256}$" }, { "type": "boolean" }, { "type": "null" } ] }),
                "The signing secret: a string of your own, true to have one generated (whsec_ and base64), \
                 or null (or absent at creation) to send unsigned.",
            ),
            "active": d(
                json!({ "oneOf": [ { "type": "boolean" }, { "type": "integer", "enum": [0, 1] } ] }),
                "Whether deliveries are sent (true or 1; default true). A paused webhook's deliveries wait.",
            )
        }
    });
    if required {
        s["required"] = json!(["url", "events"]);
    }
    s
}

fn queued() -> Value {
    json!({ "type": "object", "properties": {
        "success": d(json!({ "type": "boolean" }), "Always true: the delivery is queued."),
        "deliveryId": d(json!({ "type": "string" }), "The delivery's id (also its webhook-id header).")
    } })
}

/// The whole document.
/// A simulator route: 404 without the simulator backend, 400 on bad input,
/// and its answer `ok` (status, description, schema).
fn sim_op(
    summary: &str,
    description: &str,
    request: Option<Value>,
    ok: (&str, &str, Value),
) -> Value {
    let mut responses =
        json!({ "400": err("invalid input"), "404": err("not running the simulator backend") });
    responses[ok.0] = resp(ok.1, ok.2);
    op(summary, description, vec![], request, responses, false)
}

pub fn document() -> Value {
    let id = || {
        path_param(
            "id",
            "The message's public id: the `id` field of a message (not its WhatsApp `wa_id`).",
        )
    };
    let hook_id = || path_param("id", "The webhook's id.");
    let wh = || json!({ "$ref": "#/components/schemas/Webhook" });
    let status_enum = |what: &str| {
        d(
            json!({ "type": "string", "enum": words(ReplyStatus::ALL, ReplyStatus::as_str, false) }),
            what,
        )
    };
    let sim = sim_op;
    let jid_or_number = "^(\\+?[0-9][0-9 ().-]{0,31}|[A-Za-z0-9._:-]{1,64}@[a-z0-9.-]{1,64})$";
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "whatsapp-api",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A self-hosted, reply-only WhatsApp HTTP API. Authenticate with the X-API-Key header. \
                Errors are {\"error\": \"<sentence>\"}. Times are UTC: created_at is YYYY-MM-DD HH:MM:SS \
                (no zone), other times ISO 8601 with Z."
        },
        "servers": [ { "url": "/" } ],
        "security": [ { "apiKey": [] } ],
        "paths": {
            "/api/v1/health": { "get": op("Connection health (no auth)",
                "Whether WhatsApp is connected. Needs no key and is not rate limited; always 200.",
                vec![], None, json!({
                "200": resp("health", json!({ "type": "object", "required": ["status"],
                    "properties": { "status": d(json!({ "type": "string", "enum": ["connected", "disconnected"] }),
                        "connected when WhatsApp is connected, disconnected otherwise.") } }))
            }), true) },
            "/api/v1/status": { "get": op("Connection status",
                "The connection to WhatsApp: the Node server's three fields, plus the state, the linked account and the last error.",
                vec![], None, json!({
                "200": resp("status", json!({ "type": "object", "required": ["connected", "qrReady", "sessionExists"],
                    "properties": {
                        "connected": d(json!({ "type": "boolean" }), "Whether WhatsApp is connected."),
                        "qrReady": d(json!({ "type": "boolean" }), "Whether a pairing QR code is available at /api/v1/qr."),
                        "sessionExists": d(json!({ "type": "boolean" }), "Whether a linked device is stored (no new scan needed)."),
                        "state": d(json!({ "type": "string", "enum": ["connecting", "qr", "connected", "disconnected", "logged_out", "banned", "client_outdated", "replaced"] }),
                            "Where the connection stands; qr: waiting for a pairing, logged_out: unlinked, pair again; \
                             stopped by WhatsApp: banned (temporarily, until stoppedUntil), client_outdated (upgrade), \
                             replaced (another copy of this session runs: stop it, then restart this server)."),
                        "me": d(json!({ "type": ["string", "null"] }), "The linked account's JID, or null."),
                        "lastError": d(json!({ "type": ["string", "null"] }), "Why the connection last dropped, or null."),
                        "stoppedUntil": d(json!({ "type": ["string", "null"] }), "When a temporary ban ends (ISO 8601, UTC); null otherwise."),
                        "backend": d(json!({ "type": "string", "enum": ["whatsapp", "simulator"] }), "whatsapp (real) or simulator (sandbox).")
                    } }))
            }), false) },
            "/api/v1/inbox": { "get": op("Unread incoming messages, newest first",
                "The inbox's unread tab: incoming messages only, newest first (ties in one second by arrival, newest first).",
                inbox_params(false), None, json!({
                "200": resp("a page of messages", messages_page()), "400": err("malformed date")
            }), false) },
            "/api/v1/inbox/{status}": { "get": op("Incoming messages with a status, newest first",
                "Incoming messages with this status (or all), newest first, filtered and paginated.",
                inbox_params(true), None, json!({
                "200": resp("a page of messages", messages_page()), "400": err("invalid status or malformed date")
            }), false) },
            "/api/v1/messages/batch/status": { "patch": op("Set the status of many messages",
                "Sets the reply_status of every listed message; unknown ids are skipped (see `updated`).",
                vec![],
                Some(body(json!({ "type": "object", "required": ["ids", "status"], "properties": {
                    "ids": d(json!({ "type": "array", "items": { "type": "string" }, "minItems": 1, "maxItems": 1000 }),
                        "The messages' public ids (1 to 1000)."),
                    "status": status_enum("The new reply_status.") } }))),
                json!({
                    "200": resp("updated", json!({ "type": "object", "required": ["success", "updated"],
                        "properties": {
                            "success": d(json!({ "type": "boolean" }), "Always true."),
                            "updated": d(json!({ "type": "integer" }), "How many messages were found and set.") } })),
                    "400": err("missing or invalid ids array, or invalid status")
                }), false) },
            "/api/v1/messages/{id}": { "get": op("One message",
                "One stored message (incoming or outgoing) by its public id.",
                vec![id()], None, json!({
                "200": resp("the message", json!({ "$ref": "#/components/schemas/Message" })),
                "404": err("no such message")
            }), false) },
            "/api/v1/messages/{id}/reply": { "post": {
                "summary": "Reply to an incoming message (quoted on WhatsApp)",
                "description": "Sends the text to the message's chat, quoting it; the reply is stored as an outgoing \
                    message, the original becomes replied and message.sent fires. With an Idempotency-Key, a retry \
                    of the same request (same message, same body) returns the first answer and sends nothing; the \
                    same key with a different request is refused with 422.",
                "parameters": [id(), { "name": "Idempotency-Key", "in": "header", "required": false,
                    "description": "Your id for this reply (1 to 255 visible ASCII characters), kept a day.",
                    "schema": { "type": "string", "pattern": "^[!-~]{1,255}$" } }],
                "requestBody": body(json!({ "type": "object", "required": ["message"],
                    "properties": { "message": d(json!({ "type": "string", "pattern": "\\S", "maxLength": 65536 }),
                        "The reply's text (not blank, at most 65536 bytes).") } })),
                "responses": secured(json!({
                    "200": resp("sent", json!({ "type": "object", "required": ["success", "replyId"],
                        "properties": {
                            "success": d(json!({ "type": "boolean" }), "Always true."),
                            "replyId": d(json!({ "type": "string" }), "The public id of the stored reply."),
                            "waId": d(json!({ "type": "string" }), "WhatsApp's id of the sent message.") } })),
                    "400": err("missing message, or not an incoming message"),
                    "404": err("no such message"),
                    "409": err("the same Idempotency-Key is in flight"),
                    "422": err("the Idempotency-Key was used for a different request"),
                    "500": err("the send failed"),
                    "503": err("WhatsApp not connected")
                }))
            } },
            "/api/v1/messages/{id}/status": { "patch": op("Set a message's status",
                "Sets one message's reply_status (triage).",
                vec![id()],
                Some(body(json!({ "type": "object", "required": ["status"], "properties": { "status": status_enum("The new reply_status.") } }))),
                json!({ "200": resp("updated", success()), "400": err("invalid status"), "404": err("no such message") }), false) },
            "/api/v1/webhooks": {
                "get": op("List webhooks (secrets are never returned)",
                    "Every webhook, in the Node server's shape: events a comma-separated string, active 1 or 0.",
                    vec![], None, json!({
                    "200": resp("webhooks", json!({ "type": "object", "required": ["webhooks"],
                        "properties": { "webhooks": d(json!({ "type": "array", "items": wh() }), "Every webhook.") } }))
                }), false),
                "post": op("Create a webhook",
                    "Subscribes a URL to events. The answer carries the secret this one time.",
                    vec![], Some(body(webhook_input(true))), json!({
                    "201": resp("created; `secret` is shown this once", wh()), "400": err("invalid input")
                }), false)
            },
            "/api/v1/webhooks/{id}": {
                "patch": op("Update a webhook",
                    "Changes the fields given; a new secret is shown in this answer only.",
                    vec![hook_id()], Some(body(webhook_input(false))), json!({
                    "200": resp("updated", wh()), "400": err("invalid input"), "404": err("no such webhook")
                }), false),
                "delete": op("Delete a webhook and its delivery log",
                    "Removes the webhook, its pending deliveries and its delivery log.",
                    vec![hook_id()], None, json!({
                    "200": resp("deleted", success()), "404": err("no such webhook")
                }), false)
            },
            "/api/v1/webhooks/{id}/test": { "post": op("Send a webhook.test event",
                "Queues a webhook.test delivery to this webhook, whatever it subscribes to.",
                vec![hook_id()], None, json!({
                "202": resp("queued", queued()),
                "404": err("no such webhook")
            }), false) },
            "/api/v1/webhooks/{id}/deliveries": { "get": op("A webhook's deliveries with their attempts, newest first",
                "The delivery log: each delivery's status and every attempt (time, HTTP status, error, duration).",
                { let mut p = vec![hook_id()]; p.extend(paging()); p }, None, json!({
                "200": resp("deliveries", json!({ "type": "object", "required": ["deliveries"], "properties": {
                    "deliveries": d(json!({ "type": "array", "items": { "$ref": "#/components/schemas/Delivery" } }), "This page's deliveries."),
                    "pagination": pagination_ref() } })),
                "404": err("no such webhook")
            }), false) },
            "/api/v1/deliveries/{id}/redeliver": { "post": op("Run a delivery's retry schedule again",
                "Sends a delivery again from the start of the retry schedule, with the same webhook-id.",
                vec![path_param("id", "The delivery's id.")], None, json!({
                "202": resp("queued", queued()),
                "404": err("no such delivery")
            }), false) },
            "/media/{file}": { "get": {
                "summary": "A stored media file (API key or dashboard Basic Auth)",
                "description": "The file a message's media_url names, with its content type.",
                "security": [ { "apiKey": [] }, { "basic": [] } ],
                "parameters": [path_param("file", "The file name from media_url (after /media/).")],
                "responses": {
                    "200": { "description": "the file", "content": { "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } } },
                    "401": err("no credentials"), "404": err("no such file"), "429": err("over the rate limit")
                }
            } },
            "/api/v1/openapi.json": { "get": op("This document (no auth)",
                "This OpenAPI 3.1 description of every API route.",
                vec![], None, json!({
                "200": resp("OpenAPI 3.1", json!({ "type": "object" }))
            }), true) },
            "/api/v1/conversations": { "get": op("Chats, most recent first",
                "One row per chat: its JID, its name when known (a group's subject), the unread count and the last message.",
                paging(), None, json!({
                "200": resp("chats", json!({ "type": "object", "required": ["conversations", "pagination"], "properties": {
                    "count": d(json!({ "type": "integer" }), "Number of chats on this page."),
                    "conversations": d(json!({ "type": "array", "items": { "type": "object", "properties": {
                        "phone": d(json!({ "type": "string" }), "The chat's JID."),
                        "name": d(json!({ "type": ["string", "null"] }), "The chat's name (a group's subject), or null while unknown."),
                        "unread": d(json!({ "type": "integer" }), "Its incoming messages still unread."),
                        "lastMessage": d(json!({ "$ref": "#/components/schemas/Message" }), "Its newest message.") } } }),
                        "This page's chats."),
                    "pagination": pagination_ref() } }))
            }), false) },
            "/api/v1/conversations/{phone}/messages": { "get": op("One chat, both directions, oldest first",
                "Every message of one chat, incoming and outgoing, oldest first.",
                {
                    let mut phone = path_param("phone", CHAT_NAMING);
                    phone["schema"]["pattern"] = json!(
                        "^(\\+?[0-9][0-9 ().-]{0,31}|[A-Za-z0-9._:-]{1,64}@[a-z0-9.-]{1,64})$"
                    );
                    let mut p = vec![phone];
                    p.extend(paging());
                    p
                }, None, json!({
                "200": resp("messages", {
                    let mut page = messages_page();
                    page["properties"]["phone"] = d(json!({ "type": "string" }), "The chat's JID the name resolved to.");
                    page
                }),
                "400": err("not a number or a JID")
            }), false) },
            "/api/v1/qr": { "get": op("The current pairing QR code",
                "The QR code to scan with the phone (WhatsApp replaces it every 20 to 60 seconds); 404 when none is showing.",
                vec![
                    query("format", json!({ "type": "string", "enum": ["json", "svg"] }), "json (default) for the code's text, svg for an image.")
                ], None, json!({
                "200": { "description": "the code", "content": {
                    "application/json": { "schema": { "type": "object", "properties": {
                        "qr": d(json!({ "type": "string" }), "The code's text (what the QR image encodes)."),
                        "expiresIn": d(json!({ "type": "integer" }), "Seconds until it is replaced.") } } },
                    "image/svg+xml": { "schema": { "type": "string" } } } },
                "400": err("bad format"),
                "404": err("no QR code right now")
            }), false) },
            "/api/v1/session/pair-code": { "post": op("Pair by phone-number code",
                "A code to type on the phone (Linked devices > Link with phone number instead), instead of scanning.",
                vec![],
                Some(body(json!({ "type": "object", "required": ["phone"], "properties": {
                    "phone": d(json!({ "type": "string", "pattern": "^\\+?[0-9]{7,15}$" }),
                        "The account's number, international format (country code first).") } }))),
                json!({
                    "200": resp("the code to type on the phone", json!({ "type": "object", "properties": {
                        "code": d(json!({ "type": "string" }), "The pairing code, such as ABCD-EFGH.") } })),
                    "400": err("bad phone number"), "409": err("already connected"), "503": err("the backend could not make a code")
                }), false) },
            "/api/v1/session/logout": { "post": op("Unlink this device",
                "Logs out of WhatsApp and deletes the device keys; messages stay. Pair again to reconnect.",
                vec![], None, json!({
                "200": resp("logged out", success()), "503": err("the backend could not log out")
            }), false) },
            "/api/v1/session/pair": { "post": op("Start a new pairing after a logout (QR codes follow)",
                "Starts a new pairing from fresh keys: QR codes then appear at /api/v1/qr.",
                vec![], None, json!({
                "200": resp("pairing started", success()), "409": err("already paired, or the backend could not start")
            }), false) },
            "/api/v1/audit-logs": { "get": op("The audit log, newest first",
                "API requests, failed logins (a wrong key or password), dashboard actions and command-line changes.",
                {
                    let mut p = paging();
                    p.push(query("action", json!({ "type": "string" }),
                        "Only this action: api_request, auth_failed, dashboard_action, session_logout, session_pair, \
                         server_start, api_key_rotated, password_set, legacy_import."));
                    p.push(query("startDate", date_schema(), "First day included, YYYY-MM-DD (UTC)."));
                    p.push(query("endDate", date_schema(), "Last day included, YYYY-MM-DD (UTC)."));
                    p
                }, None, json!({
                "200": resp("rows", json!({ "type": "object", "required": ["logs", "pagination"], "properties": {
                    "count": d(json!({ "type": "integer" }), "Number of rows on this page."),
                    "logs": d(json!({ "type": "array", "items": { "$ref": "#/components/schemas/AuditRow" } }), "This page's rows."),
                    "pagination": pagination_ref() } })),
                "400": err("malformed date")
            }), false) },
            "/api/v1/events": { "get": {
                "summary": "The event stream (Server-Sent Events; API key or dashboard Basic Auth)",
                "description": "Every event webhooks carry, as Server-Sent Events: `id: <n>`, `event: <name>`, \
                    `data: <the JSON body a webhook receives>` (an EventBody), then a blank line. n is durable and \
                    strictly increasing: an event is written in the same transaction as its cause. Without \
                    Last-Event-ID or after, the stream starts with live events; with either, it first sends every \
                    retained event after that id, in order (events are kept at least EVENTS_RETENTION_DAYS). A live \
                    event arrives within 100 ms of its commit; a `: ping` comment comes after 15 s without one. \
                    A client that stops reading is disconnected once its buffer is full, and resumes with \
                    Last-Event-ID. The answer has no end: the stream lasts until either side closes it.",
                "security": [ { "apiKey": [] }, { "basic": [] } ],
                "parameters": [
                    { "name": "Last-Event-ID", "in": "header", "required": false,
                      "description": "Resume after this event id (an EventSource sends it when it reconnects); wins over after.",
                      "schema": { "type": "string", "pattern": "^[0-9]{1,18}$" } },
                    query("after", json!({ "type": "integer", "minimum": 0 }),
                        "Resume after this event id: every retained event after it, in order, then live ones."),
                    query("events", json!({ "type": "string", "pattern": events_pattern() }),
                        "Only these events: a comma-separated list of exact names.")
                ],
                "responses": {
                    "200": { "description": "the stream", "content": { "text/event-stream": {
                        "schema": { "type": "string", "description":
                            "Events, each `id: <n>`, `event: <name>`, `data: <an EventBody as one line of JSON>` and \
                             a blank line; `retry:` and `: ping` lines between them." } } } },
                    "400": err("after or Last-Event-ID is not an event id, or events names an unknown event"),
                    "401": err("no credentials, or wrong ones"),
                    "429": err("over the rate limit"),
                    "503": {
                        "description": "EVENT_STREAMS_MAX streams are open; try again after Retry-After seconds",
                        "headers": { "Retry-After": { "description": "Seconds to wait.", "schema": { "type": "integer" } } },
                        "content": { "application/json": { "schema": error_ref() } } }
                }
            } },
            "/metrics": { "get": {
                "summary": "Prometheus metrics (API key or dashboard Basic Auth)",
                "description": "Messages in and out, webhook deliveries, HTTP requests with latency, the connection state, uptime.",
                "security": [ { "apiKey": [] }, { "basic": [] } ],
                "responses": {
                    "200": { "description": "text exposition format", "content": { "text/plain": { "schema": { "type": "string" } } } },
                    "401": err("no credentials"), "429": err("over the rate limit")
                }
            } },
            "/api/v1/simulator/messages": { "post": sim("Inject an incoming message (simulator only)",
                "An incoming message, taking exactly the real path (storage, media, webhooks). Answers 201 once it is stored.",
                Some(body(json!({ "type": "object", "required": ["from"],
                    "anyOf": [ { "required": ["text"] }, { "required": ["media_type"] } ],
                    "dependentRequired": { "media_base64": ["media_type"], "group_name": ["group"] },
                    "properties": {
                    "from": d(json!({ "type": "string", "pattern": jid_or_number }),
                        "Who wrote it: a number (15551234567 or +15551234567) or a JID. In a group, the member."),
                    "text": d(json!({ "type": "string", "minLength": 1 }), "The text (or a media message's caption)."),
                    "id": d(json!({ "type": "string", "minLength": 1, "maxLength": 128 }),
                        "WhatsApp's message id (the stored wa_id); the same id twice stores one message. Generated when absent."),
                    "push_name": d(json!({ "type": "string" }), "The sender's display name."),
                    "media_type": d(json!({ "type": "string", "enum": ["image", "video", "audio", "document", "sticker"] }), "The kind of media."),
                    "media_base64": d(json!({ "type": "string", "pattern": "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$" }),
                        "The media file, base64."),
                    "mime": d(json!({ "type": "string" }), "The media's mime type."),
                    "filename": d(json!({ "type": "string" }), "A document's file name."),
                    "group": d(json!({ "type": "string", "pattern": "^([0-9]{1,40}|[A-Za-z0-9._:-]{1,64}@g\\.us)$" }),
                        "Sent in this group (its JID, or its number): the chat is the group, `from` the member."),
                    "group_name": d(json!({ "type": "string", "minLength": 1, "maxLength": 100, "pattern": "\\S" }),
                        "The group's name (its subject), shown instead of its JID.") } }))),
                ("201", "stored", json!({ "type": "object", "properties": {
                    "wa_id": d(json!({ "type": "string" }), "WhatsApp's id of the message (not the inbox's `id`).") } }))) },
            "/api/v1/simulator/raw": { "post": sim("Inject a WhatsApp message as its protobuf, translated by the real backend's code (simulator only)",
                "A whatsapp.Message as the real backend receives it, translated by exactly its code: a message, an update \
                 of one (reaction, edit, deletion), or ignored. Answers 201 once applied.",
                Some(body(json!({ "type": "object", "required": ["from", "proto_base64"], "properties": {
                    "from": d(json!({ "type": "string", "pattern": jid_or_number }),
                        "The customer (a number or a JID, a LID too): the chat of a direct message, the author in a group (with from_me, the chat)."),
                    "from_alt": d(json!({ "type": "string", "pattern": jid_or_number }),
                        "The phone-number JID WhatsApp names alongside a LID from (or the LID alongside a phone number)."),
                    "proto_base64": d(json!({ "type": "string", "minLength": 1, "pattern": "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$" }),
                        "A whatsapp.Message (the WhatsApp Web schema whatsapp-rust ships), protobuf-encoded, base64."),
                    "id": d(json!({ "type": "string", "minLength": 1, "maxLength": 128 }),
                        "WhatsApp's message id (the stored wa_id). Generated when absent."),
                    "push_name": d(json!({ "type": "string" }), "The sender's display name."),
                    "group": d(json!({ "type": "string", "pattern": "^([0-9]{1,40}|[A-Za-z0-9._:-]{1,64}@g\\.us)$" }),
                        "Sent in this group (its JID or number): the chat is the group, from the member."),
                    "timestamp": d(json!({ "type": "integer", "minimum": 0, "maximum": 253_402_300_799_i64 }),
                        "When WhatsApp says it was sent, Unix seconds."),
                    "media_base64": d(json!({ "type": "string", "pattern": "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$" }),
                        "Stands in for the downloaded file of a media message."),
                    "from_me": d(json!({ "type": "boolean" }), "Sent by our own account from the phone.") } }))),
                ("201", "applied", json!({ "type": "object", "properties": {
                    "wa_id": d(json!({ "type": "string" }), "WhatsApp's id of the message."),
                    "result": d(json!({ "type": "string", "enum": ["message", "update", "ignored"] }),
                        "message (stored, or already stored), update (of a stored message), or ignored.") } }))) },
            "/api/v1/simulator/connection": { "post": sim("Drive the connection state (simulator only)",
                "Moves the simulated connection to a state; answered once it applies, with its webhooks queued.",
                Some(body(json!({ "type": "object", "required": ["state"], "properties": {
                    "state": d(json!({ "type": "string", "enum": ["qr", "connected", "disconnected", "logged_out"] }), "The new state.") } }))),
                ("200", "done", success())) },
            "/api/v1/simulator/sent": { "get": sim("What the app sent (simulator only)",
                "Every message the app sent through the simulator, oldest first.",
                None,
                ("200", "sent messages", json!({ "type": "array", "items": { "type": "object", "properties": {
                    "to": d(json!({ "type": "string" }), "The chat's JID."),
                    "text": d(json!({ "type": "string" }), "The text sent."),
                    "quoted_wa_id": d(json!({ "type": ["string", "null"] }), "The quoted message's WhatsApp id."),
                    "quoted_participant": d(json!({ "type": ["string", "null"] }), "The quoted message's author, as the quote names them."),
                    "wa_id": d(json!({ "type": "string" }), "The sent message's WhatsApp id (a retried reply keeps its id: one record)."),
                    "expiration": d(json!({ "type": ["integer", "null"] }), "The disappearing-messages timer the message carried, in seconds.") } } }))) },
            "/api/v1/simulator/fail-sends": { "post": sim("Make sends fail (simulator only)",
                "While set, every send fails (replies answer 500), to try error handling.",
                Some(body(json!({ "type": "object", "required": ["fail"], "properties": {
                    "fail": d(json!({ "type": "boolean" }), "true: sends fail; false: they work again.") } }))),
                ("200", "done", success())) }
        },
        "components": {
            "securitySchemes": {
                "apiKey": { "type": "apiKey", "in": "header", "name": "X-API-Key" },
                "basic": { "type": "http", "scheme": "basic" }
            },
            "schemas": {
                "Error": { "type": "object", "description": "What went wrong.", "required": ["error"], "properties": {
                    "error": d(json!({ "type": "string" }), "A sentence saying what went wrong.") } },
                "Pagination": { "type": "object", "description": "Where a page is in its list.",
                    "required": ["page", "limit", "total", "totalPages"], "properties": {
                    "page": d(json!({ "type": "integer" }), "This page's number, from 1."),
                    "limit": d(json!({ "type": "integer" }), "Items per page."),
                    "total": d(json!({ "type": "integer" }), "Items in the whole list."),
                    "totalPages": d(json!({ "type": "integer" }), "Pages in the whole list.") } },
                "Message": { "type": "object",
                    "description": "A stored message. The Node server's fields (id, direction, phone, message, reply_status, media_type, media_url, created_at) and extras.",
                    "required": ["id", "direction", "phone", "message", "reply_status", "created_at"], "properties": {
                    "id": d(json!({ "type": "string" }), "The public id: use it in /api/v1/messages/{id} routes."),
                    "direction": d(json!({ "type": "string", "enum": words(Direction::ALL, Direction::as_str, false) }), "incoming (a customer wrote it) or outgoing (a reply)."),
                    "phone": d(json!({ "type": "string" }), "The chat's JID: the customer's, or the group's (then sender_jid is the member)."),
                    "message": d(json!({ "type": "string" }), "The text, the caption, or a placeholder such as [Image]."),
                    "reply_status": d(json!({ "type": "string", "enum": words(ReplyStatus::ALL, ReplyStatus::as_str, false) }),
                        "Triage state of an incoming message; sent for outgoing ones."),
                    "media_type": d(json!({ "type": ["string", "null"] }), "image, video, audio, document or sticker; null for text."),
                    "media_url": d(json!({ "type": ["string", "null"] }), "/media/<file> once the file is stored, else null."),
                    "created_at": d(json!({ "type": "string" }), "When it was sent: YYYY-MM-DD HH:MM:SS, UTC (no zone, as the Node server wrote it)."),
                    "wa_id": d(json!({ "type": ["string", "null"] }), "WhatsApp's own id of the message (null for messages imported from the Node server)."),
                    "sender_jid": d(json!({ "type": "string" }), "Who wrote it: the customer's JID; ours for outgoing messages."),
                    "push_name": d(json!({ "type": ["string", "null"] }), "The sender's WhatsApp display name at the time."),
                    "delivery_status": d(json!({ "type": ["string", "null"], "enum": words(DeliveryStatus::ALL, DeliveryStatus::as_str, true) }),
                        "Outgoing only: how far it got."),
                    "media_mime": d(json!({ "type": ["string", "null"] }), "The media's mime type."),
                    "media_size": d(json!({ "type": ["integer", "null"] }), "The media's size in bytes."),
                    "media_error": d(json!({ "type": ["string", "null"] }), "Why there is no media file (too large, download failed)."),
                    "in_reply_to": d(json!({ "type": ["string", "null"] }), "Outgoing only: the id of the message it answers."),
                    "received_at": d(json!({ "type": "string" }),
                        "When this server stored it: YYYY-MM-DD HH:MM:SS, UTC (created_at is when WhatsApp says it was sent)."),
                    "sender_lid": d(json!({ "type": ["string", "null"] }), "The author's LID (WhatsApp's privacy id), when known."),
                    "source": d(json!({ "type": ["string", "null"], "enum": words(Source::ALL, Source::as_str, true) }),
                        "Outgoing only: who sent it (phone: our own account from the phone or WhatsApp Web).") } },
                "Webhook": { "type": "object", "description": "A webhook, in the Node server's shape.",
                    "required": ["id", "url", "events", "active", "created_at", "has_secret"], "properties": {
                    "id": d(json!({ "type": "string" }), "The webhook's id."),
                    "url": d(json!({ "type": "string" }), "Where deliveries are POSTed."),
                    "events": d(json!({ "type": "string" }), "The subscribed events, comma-separated (as the Node server kept them)."),
                    "active": d(json!({ "type": "integer", "enum": [0, 1] }), "1 when deliveries are sent, 0 when paused (as the Node server kept it)."),
                    "created_at": d(json!({ "type": "string" }), "When it was created: YYYY-MM-DD HH:MM:SS, UTC."),
                    "updated_at": d(json!({ "type": "string" }), "When it last changed: YYYY-MM-DD HH:MM:SS, UTC."),
                    "has_secret": d(json!({ "type": "boolean" }), "Whether deliveries are signed (the secret itself is never returned)."),
                    "secret": d(json!({ "type": "string" }), "Only in the answer that created or set it: the signing secret.") } },
                "Delivery": { "type": "object", "description": "One event sent to one webhook, with its attempts.",
                    "required": ["id", "event", "status", "attempts"], "properties": {
                    "id": d(json!({ "type": "string" }), "The delivery's id, also its webhook-id header (the same on every retry)."),
                    "webhook_id": d(json!({ "type": "string" }), "The webhook it goes to."),
                    "event": d(json!({ "type": "string" }), "The event name."),
                    "status": d(json!({ "type": "string", "enum": words(HookDeliveryStatus::ALL, HookDeliveryStatus::as_str, false) }),
                        "pending (waiting or retrying), delivered (a 2xx), failed (the retry schedule ran out)."),
                    "attempts": d(json!({ "type": "array", "items": { "type": "object", "properties": {
                        "at": d(json!({ "type": "string" }), "When it started, ISO 8601 UTC."),
                        "status_code": d(json!({ "type": ["integer", "null"] }), "The receiver's HTTP status, or null without an answer."),
                        "error": d(json!({ "type": ["string", "null"] }), "Why it failed, or null."),
                        "duration_ms": d(json!({ "type": "integer" }), "How long it took, milliseconds.") } } }),
                        "Every attempt of the current run of the schedule, oldest first."),
                    "next_attempt_at": d(json!({ "type": ["string", "null"] }), "Pending only: when the next attempt is due, ISO 8601 UTC."),
                    "created_at": d(json!({ "type": "string" }), "When it was queued: YYYY-MM-DD HH:MM:SS, UTC."),
                    "updated_at": d(json!({ "type": "string" }), "When its status last changed: YYYY-MM-DD HH:MM:SS, UTC."),
                    "payload": d(json!({}), "The exact JSON body POSTed: {event, timestamp, data}.") } },
                "EventBody": { "type": "object",
                    "description": "An event: the body a webhook receives, and the data of an event stream's event.",
                    "required": ["event", "timestamp", "data"], "properties": {
                    "event": d(json!({ "type": "string", "enum": crate::webhooks::EVENTS }), "The event name."),
                    "timestamp": d(json!({ "type": "string" }), "When it happened, ISO 8601 UTC."),
                    "data": d(json!({ "type": "object" }),
                        "message.received and message.sent: id, phone, message, mediaType, mediaUrl, timestamp, \
                         waId, direction, senderJid, pushName, mediaMime, mediaSize, isGroup, senderLid, receivedAt \
                         (message.sent adds inReplyTo and source: api, dashboard or phone). message.status: id, waId, \
                         phone, status, error, inReplyTo, timestamp. message.reaction: id (the reacted message's), waId, phone, \
                         senderJid, emoji, removed, timestamp. message.edited: id, waId, phone, message, previousMessage, \
                         timestamp. message.deleted: id, waId, phone, timestamp. connection.connected: me, timestamp. connection.disconnected: \
                         reason, willReconnect, timestamp (and state and until when WhatsApp stopped the session).") } },
                "AuditRow": { "type": "object", "description": "One audit log entry.", "properties": {
                    "id": d(json!({ "type": "integer" }), "The row's number (also its order)."),
                    "action": d(json!({ "type": "string" }), "What happened: api_request, auth_failed, dashboard_action, …"),
                    "method": d(json!({ "type": ["string", "null"] }), "The request's HTTP method, or null."),
                    "path": d(json!({ "type": ["string", "null"] }), "The request's path, or null."),
                    "status": d(json!({ "type": ["integer", "null"] }), "The HTTP status answered, or null."),
                    "ip_address": d(json!({ "type": ["string", "null"] }), "The client's address."),
                    "duration_ms": d(json!({ "type": ["number", "null"] }), "Time spent answering, milliseconds."),
                    "details": d(json!({ "type": ["string", "null"] }), "What was done (never a secret)."),
                    "created_at": d(json!({ "type": "string" }), "When: YYYY-MM-DD HH:MM:SS, UTC.") } }
            }
        }
    });
    conversation(&mut doc, jid_or_number);
    doc
}
