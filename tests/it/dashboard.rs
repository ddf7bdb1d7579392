//! The dashboard over HTTP: Basic Auth on every page, CSRF on every form,
//! escaping of hostile strings, and each page and action end to end.

use crate::support::*;
use base64::Engine as _;
use serde_json::json;
use whatsapp_api::web::percent_encode;

const ALICE: &str = "15551234567@s.whatsapp.net";
const BOB: &str = "15557654321@s.whatsapp.net";
const HOSTILE_TEXT: &str = "<script>window.pwned=1</script>";
const HOSTILE_NAME: &str = "\"><img src=x onerror=alert(1)>";

/// Every page a GET serves.
const PAGES: [&str; 7] = [
    "/",
    "/status",
    "/login",
    "/login/qr.svg",
    "/webhooks",
    "/settings",
    "/audit-logs",
];

/// Every POST form (ids need not exist: CSRF is checked first).
const FORMS: [&str; 12] = [
    "/messages/status",
    "/reply/some-id",
    "/status/logout",
    "/status/repair",
    "/login/pair-code",
    "/webhooks",
    "/webhooks/some-id",
    "/webhooks/some-id/toggle",
    "/webhooks/some-id/delete",
    "/webhooks/some-id/test",
    "/webhooks/some-id/deliveries/d/redeliver",
    "/settings/api-key",
];

pub fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

pub fn dash_get(s: &TestServer, path: &str) -> Resp {
    let auth = basic(DASH_USER, DASH_PASSWORD);
    s.request("GET", path, &[("Authorization", &auth)], None)
}

fn form_body(pairs: &[(&str, &str)]) -> Vec<u8> {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

/// POSTs a form as the logged-in user (the pairs should carry `csrf`).
fn dash_post(s: &TestServer, path: &str, pairs: &[(&str, &str)]) -> Resp {
    let auth = basic(DASH_USER, DASH_PASSWORD);
    s.request(
        "POST",
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        Some(&form_body(pairs)),
    )
}

/// The CSRF token, read from a page as a browser would.
pub fn csrf(s: &TestServer) -> String {
    let page = dash_get(s, "/settings").text;
    let start = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    page[start..start + 64].to_string()
}

/// POSTs a form with the token and follows the 303; returns the page.
fn submit(s: &TestServer, path: &str, pairs: &[(&str, &str)]) -> Resp {
    let token = csrf(s);
    let mut all = vec![("csrf", token.as_str())];
    all.extend_from_slice(pairs);
    let r = dash_post(s, path, &all);
    assert_eq!(r.status, 303, "{path}: {}", r.text);
    let location = r.header("location").expect("a Location").to_string();
    assert!(location.starts_with('/'), "{location}");
    dash_get(s, &location)
}

fn wait_connected(s: &TestServer) {
    eventually(5, "the simulator to connect", || {
        (s.get("/api/v1/status").json()["state"] == "connected").then_some(())
    });
}

#[test]
fn every_page_needs_basic_auth() {
    let s = TestServer::start();
    for path in PAGES {
        for headers in [
            vec![],
            vec![("Authorization", basic(DASH_USER, "wrong"))],
            vec![("Authorization", basic("root", DASH_PASSWORD))],
            vec![("X-API-Key", KEY.to_string())],
        ] {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r = s.request("GET", path, &headers, None);
            assert_eq!(r.status, 401, "{path} {headers:?}");
            assert!(
                r.header("www-authenticate")
                    .is_some_and(|v| v.starts_with("Basic")),
                "{path}"
            );
        }
        let r = dash_get(&s, path);
        assert_eq!(r.status, 200, "{path}: {}", r.text);
    }
    for path in FORMS {
        let r = s.request("POST", path, &[], Some(b"csrf=x"));
        assert_eq!(r.status, 401, "{path}");
    }
}

#[test]
fn pages_are_html_with_the_security_headers_and_no_inline_code() {
    let s = TestServer::start();
    for path in PAGES.iter().filter(|p| !p.ends_with(".svg")) {
        let r = dash_get(&s, path);
        assert_eq!(
            r.header("content-type"),
            Some("text/html; charset=utf-8"),
            "{path}"
        );
        let csp = r.header("content-security-policy").unwrap();
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
        // No inline script, style or event handler anywhere.
        let lower = r.text.to_ascii_lowercase();
        assert!(!lower.contains("<script>"), "{path}");
        assert!(!lower.contains("<style"), "{path}");
        assert!(!lower.contains(" style="), "{path}");
        assert!(!lower.contains(" onclick="), "{path}");
        assert!(r.text.contains("<meta name=\"viewport\""), "{path}");
    }
    let css = s.request("GET", "/assets/app.css", &[], None);
    assert_eq!(css.status, 200);
    assert_eq!(css.header("cache-control"), Some("public, max-age=86400"));
    let js = s.request("GET", "/assets/app.js", &[], None);
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
}

#[test]
fn forms_without_a_valid_csrf_token_are_rejected() {
    let s = TestServer::start();
    let hooks_before = s.get("/api/v1/webhooks").json();
    for path in FORMS {
        for body in [
            vec![],
            vec![("csrf", String::new())],
            vec![("csrf", "0".repeat(64))],
            vec![("csrf", format!("{}x", csrf(&s)))],
        ] {
            let pairs: Vec<(&str, &str)> = body.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let mut pairs = pairs;
            pairs.push(("url", "https://example.com/hook"));
            pairs.push(("events", "message.received"));
            let r = dash_post(&s, path, &pairs);
            assert_eq!(r.status, 403, "{path}: {}", r.text);
            assert!(
                r.json()["error"]
                    .as_str()
                    .unwrap()
                    .contains("security token")
            );
        }
    }
    // Nothing happened: the key still works, no webhook appeared, still connected.
    assert_eq!(s.get("/api/v1/webhooks").json(), hooks_before);
    assert_eq!(s.get("/api/v1/status").json()["state"], "connected");
    // The token does not work with another process's key.
    let other = TestServer::start();
    assert_ne!(csrf(&s), csrf(&other));
}

#[test]
fn hostile_strings_are_escaped_everywhere() {
    let s = TestServer::start();
    let r = s.post(
        "/api/v1/simulator/messages",
        &json!({ "from": ALICE, "text": HOSTILE_TEXT, "push_name": HOSTILE_NAME }),
    );
    assert_eq!(r.status, 201);
    let id = s.newest_id();
    // A hostile webhook URL, as an import of old data could bring one.
    let conn =
        whatsapp_api::db::connect(&s.server.as_ref().unwrap().shared.config.db_path).unwrap();
    whatsapp_api::db::upsert_webhook(
        &conn,
        &whatsapp_api::db::Webhook {
            id: "hook-1".into(),
            url: "https://example.com/\"><img src=x onerror=alert(1)><script>x()</script>".into(),
            events: "message.received".into(),
            secret: None,
            active: true,
            created_at: 0,
            updated_at: 0,
        },
    )
    .unwrap();
    for path in [
        "/".to_string(),
        "/?status=all".to_string(),
        format!("/?search={}", percent_encode("<script>")),
        format!("/reply/{id}"),
        "/webhooks".into(),
        "/webhooks/hook-1".into(),
        format!("/?phone={}", percent_encode(HOSTILE_NAME)),
        format!("/audit-logs?action={}", percent_encode(HOSTILE_NAME)),
    ] {
        let page = dash_get(&s, &path).text;
        assert!(!page.contains("<script>window"), "{path}");
        assert!(!page.contains("<script>x()"), "{path}");
        assert!(!page.contains("<img src=x"), "{path}");
    }
    let inbox = dash_get(&s, "/").text;
    assert!(inbox.contains("&lt;script&gt;window.pwned=1&lt;/script&gt;"));
    assert!(inbox.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
    let hooks = dash_get(&s, "/webhooks").text;
    assert!(hooks.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;&lt;script&gt;"));
    // The search box echoes the term escaped, inside its attribute.
    let searched = dash_get(&s, &format!("/?search={}", percent_encode(HOSTILE_NAME))).text;
    assert!(searched.contains("value=\"&quot;&gt;&lt;img src=x onerror=alert(1)&gt;\""));
}

#[test]
fn inbox_has_tabs_with_counts_filters_and_pages() {
    let s = TestServer::start();
    s.inject(ALICE, "first hello");
    s.inject(BOB, "second, about an invoice");
    s.inject(ALICE, "third hello");
    let page = dash_get(&s, "/").text;
    assert!(page.contains("Unread <span class=\"count\">3</span>"));
    assert!(page.contains("All <span class=\"count\">3</span>"));
    assert!(page.contains("Read <span class=\"count\">0</span>"));
    assert!(page.contains("third hello") && page.contains("first hello"));
    // Newest first.
    assert!(page.find("third hello").unwrap() < page.find("first hello").unwrap());

    let found = dash_get(&s, "/?search=INVOICE").text;
    assert!(found.contains("second, about an invoice"));
    assert!(!found.contains("first hello"));
    let by_phone = dash_get(&s, "/?phone=1555765").text;
    assert!(by_phone.contains("second, about an invoice"));
    assert!(!by_phone.contains("third hello"));
    let today =
        whatsapp_api::clock::format_datetime(whatsapp_api::clock::now_secs())[..10].to_string();
    let dated = dash_get(&s, &format!("/?startDate={today}&endDate={today}")).text;
    assert!(dated.contains("3 messages"));
    let future = dash_get(&s, "/?startDate=2999-01-01").text;
    assert!(future.contains("No messages here."));
    let bad = dash_get(&s, "/?startDate=yesterday");
    assert_eq!(bad.status, 200);
    assert!(bad.text.contains("Invalid startDate"));

    let first = dash_get(&s, "/?limit=1").text;
    assert!(first.contains("Page 1 of 3"));
    assert!(first.contains("third hello") && !first.contains("first hello"));
    assert!(first.contains("href=\"/?limit=1&amp;page=2\""));
    let last = dash_get(&s, "/?limit=1&page=3").text;
    assert!(last.contains("first hello"));
    // An unknown tab falls back to unread.
    assert!(dash_get(&s, "/?status=bogus").text.contains("3 messages"));
}

#[test]
fn selected_messages_are_marked_read_or_ignored() {
    let s = TestServer::start();
    s.inject(ALICE, "one");
    let one = s.newest_id();
    s.inject(ALICE, "two");
    let two = s.newest_id();
    s.inject(BOB, "three");
    let three = s.newest_id();
    let page = submit(
        &s,
        "/messages/status",
        &[
            ("id", &one),
            ("id", &two),
            ("status", "read"),
            ("back", "/?status=unread"),
        ],
    );
    assert!(
        page.text.contains("Marked 2 messages read"),
        "{}",
        page.text
    );
    assert!(page.text.contains("Read <span class=\"count\">2</span>"));
    let read = s.get("/api/v1/inbox/read").json();
    assert_eq!(read["pagination"]["total"], 2);
    let page = submit(
        &s,
        "/messages/status",
        &[("id", &three), ("status", "ignored"), ("back", "/")],
    );
    assert!(page.text.contains("Marked 1 message ignored"));
    assert_eq!(s.get("/api/v1/inbox/ignored").json()["count"], 1);
    // Nothing selected, a bad status and a foreign return address are handled.
    let page = submit(&s, "/messages/status", &[("status", "read")]);
    assert!(page.text.contains("Select at least one message first"));
    let page = submit(&s, "/messages/status", &[("id", &one), ("status", "sent")]);
    assert!(page.text.contains("Choose read, ignored or unread"));
    let token = csrf(&s);
    let r = dash_post(
        &s,
        "/messages/status",
        &[
            ("csrf", &token),
            ("id", &one),
            ("status", "unread"),
            ("back", "//evil.example/"),
        ],
    );
    assert!(r.header("location").unwrap().starts_with("/?flash="));
}

#[test]
fn conversation_shows_the_chat_and_the_reply_is_quoted() {
    let s = TestServer::start();
    wait_connected(&s);
    let wa_id = s.inject(ALICE, "Is the shop open on Sunday?");
    let id = s.newest_id();
    s.inject(BOB, "unrelated chat");
    let page = dash_get(&s, &format!("/reply/{id}"));
    assert_eq!(page.status, 200);
    assert!(page.text.contains("Is the shop open on Sunday?"));
    assert!(!page.text.contains("unrelated chat"));
    assert!(
        page.text
            .contains("<textarea id=\"reply-text\" name=\"message\"")
    );
    assert!(page.text.contains("<label for=\"reply-text\">"));

    let key = {
        let start = page.text.find("name=\"key\" value=\"").unwrap() + 18;
        page.text[start..start + 37].to_string()
    };
    let after = submit(
        &s,
        &format!("/reply/{id}"),
        &[("message", "Yes,\r\n10 to 4."), ("key", &key)],
    );
    assert!(after.text.contains("Reply sent"), "{}", after.text);
    assert!(after.text.contains("Yes,\n10 to 4."));
    assert!(after.text.contains("bubble out"));
    let sent = s.sent_texts();
    assert_eq!(sent.as_array().unwrap().len(), 1);
    assert_eq!(sent[0]["text"], "Yes,\n10 to 4.");
    assert_eq!(sent[0]["quoted_wa_id"], wa_id.as_str());
    assert_eq!(
        s.get(&format!("/api/v1/messages/{id}")).json()["reply_status"],
        "replied"
    );
    // The same form submitted twice (same key) sends once.
    submit(
        &s,
        &format!("/reply/{id}"),
        &[("message", "Yes,\r\n10 to 4."), ("key", &key)],
    );
    assert_eq!(s.sent_texts().as_array().unwrap().len(), 1);
    // An empty reply is refused with a notice; an unknown message is a 404.
    let empty = submit(&s, &format!("/reply/{id}"), &[("message", "  ")]);
    assert!(
        empty
            .text
            .contains("Write a message or choose a file first")
    );
    let missing = dash_get(&s, "/reply/no-such-id");
    assert_eq!(missing.status, 404);
    assert!(missing.text.contains("<h1>No such message</h1>"));
}

#[test]
fn a_failed_reply_is_reported_on_the_page() {
    let s = TestServer::start();
    wait_connected(&s);
    s.inject(ALICE, "hello?");
    let id = s.newest_id();
    s.post(
        "/api/v1/simulator/connection",
        &json!({ "state": "disconnected" }),
    );
    let page = submit(&s, &format!("/reply/{id}"), &[("message", "hi")]);
    assert!(page.text.contains("Not sent: WhatsApp not connected"));
    assert!(page.text.contains("role=\"alert\""));
    s.post(
        "/api/v1/simulator/connection",
        &json!({ "state": "connected" }),
    );
    s.post("/api/v1/simulator/fail-sends", &json!({ "fail": true }));
    let page = submit(&s, &format!("/reply/{id}"), &[("message", "hi")]);
    assert!(page.text.contains("Not sent: Failed to send message"));
    assert_eq!(
        s.get(&format!("/api/v1/messages/{id}")).json()["reply_status"],
        "unread"
    );
    eventually(5, "the failed attempt in the audit log", || {
        dash_get(&s, "/audit-logs?action=dashboard_action")
            .text
            .contains("failed: WhatsApp not connected")
            .then_some(())
    });
}

#[test]
fn the_conversation_shows_reactions_edits_deletions_and_ticks() {
    let s = TestServer::start();
    wait_connected(&s);
    for (wa, text) in [
        ("E", "an order of 2"),
        ("D", "my card number"),
        ("R", "thanks!"),
    ] {
        let r = s.post(
            "/api/v1/simulator/messages",
            &json!({ "from": ALICE, "id": wa, "text": text }),
        );
        assert_eq!(r.status, 201);
    }
    let id = s.newest_id();
    let change = |route: &str, extra: serde_json::Value| {
        let mut body = json!({ "from": ALICE });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        assert_eq!(
            s.post(&format!("/api/v1/simulator/{route}"), &body).status,
            201
        );
    };
    change(
        "edits",
        json!({ "target_wa_id": "E", "text": "an order of 3" }),
    );
    change("revokes", json!({ "target_wa_id": "D" }));
    change("reactions", json!({ "target_wa_id": "R", "emoji": "😍" }));
    let page = dash_get(&s, &format!("/reply/{id}")).text;
    assert!(page.contains("an order of 3"));
    assert!(page.contains("<details class=\"edits\"><summary>edited</summary>"));
    assert!(
        page.contains("<li>an order of 2 "),
        "the earlier text on demand"
    );
    assert!(!page.contains("my card number"));
    assert!(page.contains("This message was deleted"));
    assert!(page.contains("<span class=\"reaction\""));
    assert!(page.contains("😍"));
    // Our reply shows its ticks as receipts arrive.
    let reply = s.post(
        &format!("/api/v1/messages/{id}/reply"),
        &json!({ "message": "glad to help" }),
    );
    let wa_id = reply.json()["waId"].as_str().unwrap().to_string();
    let page = dash_get(&s, &format!("/reply/{id}")).text;
    assert!(page.contains("class=\"ticks sent\""), "{page}");
    s.post(
        "/api/v1/simulator/receipts",
        &json!({ "wa_id": wa_id, "status": "read" }),
    );
    let page = dash_get(&s, &format!("/reply/{id}")).text;
    assert!(page.contains("class=\"ticks read\""));
    // A quick reaction, then taken back by pressing it again.
    let after = submit(
        &s,
        &format!("/reply/{id}/react"),
        &[("emoji", "👍"), ("back", &format!("/reply/{id}"))],
    );
    assert!(after.text.contains("Reaction sent"), "{}", after.text);
    assert!(after.text.contains("aria-pressed=\"true\""));
    let reacted = s.get(&format!("/api/v1/messages/{id}")).json();
    assert_eq!(reacted["reactions"][1]["sender_jid"], "me");
    let after = submit(
        &s,
        &format!("/reply/{id}/react"),
        &[("emoji", ""), ("back", &format!("/reply/{id}"))],
    );
    assert!(after.text.contains("Reaction removed"));
    let reactions = s.get(&format!("/api/v1/messages/{id}")).json()["reactions"].clone();
    assert_eq!(reactions.as_array().unwrap().len(), 1);
    let too_long = submit(
        &s,
        &format!("/reply/{id}/react"),
        &[("emoji", &"👍".repeat(9)), ("back", "//evil.example")],
    );
    assert!(
        too_long
            .text
            .contains("Reaction not sent: emoji must be at most 32 bytes")
    );
}

#[test]
fn a_file_is_sent_from_the_reply_form() {
    let s = TestServer::start();
    wait_connected(&s);
    s.inject(ALICE, "a photo of it?");
    let id = s.newest_id();
    let page = dash_get(&s, &format!("/reply/{id}")).text;
    assert!(page.contains("enctype=\"multipart/form-data\""));
    assert!(page.contains("<input type=\"file\" id=\"reply-file\" name=\"file\">"));
    let png = base64::engine::general_purpose::STANDARD
        .decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkaPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
        .unwrap();
    let boundary = "dash-boundary";
    let mut body = Vec::new();
    for (name, value) in [("csrf", csrf(&s)), ("message", "here".to_string())] {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"dot.png\"\r\n\
             Content-Type: image/png\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(&png);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let auth = basic(DASH_USER, DASH_PASSWORD);
    let r = s.request(
        "POST",
        &format!("/reply/{id}"),
        &[
            ("Authorization", &auth),
            (
                "Content-Type",
                &format!("multipart/form-data; boundary={boundary}"),
            ),
        ],
        Some(&body),
    );
    assert_eq!(r.status, 303, "{}", r.text);
    let after = dash_get(&s, r.header("location").unwrap());
    assert!(after.text.contains("Reply sent"), "{}", after.text);
    assert!(after.text.contains("bubble out"));
    let sent = s.get("/api/v1/simulator/sent").json();
    let media: Vec<_> = sent
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "media")
        .collect();
    assert_eq!(media.len(), 1);
    assert_eq!(media[0]["media_type"], "image");
    assert_eq!(media[0]["text"], "here");
    assert_eq!(media[0]["size"], png.len());
    // The outgoing image shows inline.
    let start = after
        .text
        .rfind("<img src=\"/media/")
        .expect("the image inline");
    assert!(start > after.text.find("bubble out").unwrap());
}

#[test]
fn media_is_shown_in_the_conversation() {
    let s = TestServer::start();
    // A 1x1 PNG.
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkaPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";
    let r = s.post(
        "/api/v1/simulator/messages",
        &json!({ "from": ALICE, "media_type": "image", "media_base64": png, "mime": "image/png" }),
    );
    assert_eq!(r.status, 201);
    s.post(
        "/api/v1/simulator/messages",
        &json!({ "from": ALICE, "media_type": "document", "media_base64": "aGVsbG8=", "mime": "application/pdf", "filename": "a.pdf" }),
    );
    let id = s.newest_id();
    let page = dash_get(&s, &format!("/reply/{id}")).text;
    let start = page.find("<img src=\"/media/").expect("an image") + 10;
    let url = &page[start..start + page[start..].find('"').unwrap()];
    assert!(page.contains("class=\"file\" href=\"/media/"));
    let media = dash_get(&s, url);
    assert_eq!(media.status, 200);
    assert_eq!(media.header("content-type"), Some("image/png"));
}

#[test]
fn connection_page_logs_out_and_re_pairs() {
    let s = TestServer::start();
    wait_connected(&s);
    let page = dash_get(&s, "/status").text;
    assert!(page.contains("15550000000@s.whatsapp.net"));
    assert!(page.contains("state-connected"));
    let page = submit(&s, "/status/logout", &[]);
    assert!(page.text.contains("Logged out"));
    eventually(5, "logged out", || {
        (s.get("/api/v1/status").json()["state"] == "logged_out").then_some(())
    });
    // Logged out, the pairing page offers a new pairing, which shows QR codes.
    assert!(
        dash_get(&s, "/login")
            .text
            .contains("action=\"/login/start\"")
    );
    let page = submit(&s, "/login/start", &[]);
    assert!(page.text.contains("Pairing started"), "{}", page.text);
    assert_eq!(s.get("/api/v1/status").json()["qrReady"], true);
    // "Log out and re-pair" from a connected session goes straight to QR codes.
    s.post(
        "/api/v1/simulator/connection",
        &json!({ "state": "connected" }),
    );
    let token = csrf(&s);
    let r = dash_post(&s, "/status/repair", &[("csrf", &token)]);
    assert!(r.header("location").unwrap().starts_with("/login?flash="));
    let v = s.get("/api/v1/status").json();
    assert_eq!(
        (v["state"].as_str(), v["qrReady"].as_bool()),
        (Some("qr"), Some(true)),
        "{v}"
    );
}

#[test]
fn pairing_page_shows_a_refreshing_qr_and_gives_pairing_codes() {
    let s = TestServer::start();
    wait_connected(&s);
    assert!(dash_get(&s, "/login").text.contains("is paired"));
    let placeholder = dash_get(&s, "/login/qr.svg");
    assert_eq!(placeholder.header("content-type"), Some("image/svg+xml"));
    assert!(placeholder.text.contains("Paired and connected"));

    s.post("/api/v1/simulator/connection", &json!({ "state": "qr" }));
    let page = dash_get(&s, "/login").text;
    assert!(page.contains("<img id=\"qr\""));
    assert!(page.contains("data-src=\"/login/qr.svg\""));
    let qr = dash_get(&s, "/login/qr.svg");
    assert_eq!(qr.status, 200);
    assert!(qr.text.starts_with("<svg"));
    assert!(qr.text.contains("<path") || qr.text.contains("<rect"));
    assert_eq!(qr.header("cache-control"), Some("no-store"));

    let page = submit(&s, "/login/pair-code", &[("phone", "+1 555 123 4567")]);
    assert!(page.text.contains("class=\"secret\""), "{}", page.text);
    let bad = submit(&s, "/login/pair-code", &[("phone", "12")]);
    assert!(bad.text.contains("phone must be the number"));
}

#[test]
fn webhooks_can_be_created_edited_toggled_tested_redelivered_and_deleted() {
    let s = TestServer::start();
    let receiver = WebhookReceiver::start();
    let page = submit(
        &s,
        "/webhooks",
        &[
            ("url", &receiver.url),
            ("events", "message.received"),
            ("events", "message.sent"),
            ("generate_secret", "1"),
            ("active", "1"),
        ],
    );
    assert!(page.text.contains("Webhook added."), "{}", page.text);
    let secret_at = page.text.find("whsec_").expect("the secret, once");
    let secret = &page.text[secret_at..secret_at + page.text[secret_at..].find('<').unwrap()];
    assert_eq!(secret.len(), 50);
    // Shown once: the list itself never has it.
    assert!(!dash_get(&s, "/webhooks").text.contains("whsec_"));
    let hooks = s.get("/api/v1/webhooks").json();
    let hook = &hooks["webhooks"][0];
    assert_eq!(hook["events"], "message.received,message.sent");
    assert_eq!(hook["has_secret"], true);
    let id = hook["id"].as_str().unwrap().to_string();

    let bad = submit(
        &s,
        "/webhooks",
        &[("url", "ftp://x"), ("events", "message.sent")],
    );
    assert!(bad.text.contains("url must be an http"));

    let page = submit(&s, &format!("/webhooks/{id}/toggle"), &[]);
    assert!(page.text.contains("Webhook paused"));
    assert_eq!(s.get("/api/v1/webhooks").json()["webhooks"][0]["active"], 0);

    let page = submit(
        &s,
        &format!("/webhooks/{id}"),
        &[
            ("url", &receiver.url),
            ("events", "message.sent"),
            ("active", "1"),
            ("secret", "remove"),
        ],
    );
    assert!(page.text.contains("Saved."));
    let hook = &s.get("/api/v1/webhooks").json()["webhooks"][0];
    assert_eq!(hook["events"], "message.sent");
    assert_eq!(hook["active"], 1);
    assert_eq!(hook["has_secret"], false);

    let page = submit(&s, &format!("/webhooks/{id}/test"), &[]);
    assert!(page.text.contains("Test event queued"));
    let got = receiver.wait_for(1, 10);
    assert_eq!(got[0].header("x-webhook-event"), Some("webhook.test"));
    let log = eventually(10, "the delivery to be logged", || {
        let page = dash_get(&s, &format!("/webhooks/{id}")).text;
        page.contains("dl-delivered").then_some(page)
    });
    assert!(log.contains("HTTP 200"));
    let start = log.find("/deliveries/").unwrap() + 12;
    let delivery = &log[start..start + log[start..].find('/').unwrap()];
    let page = submit(
        &s,
        &format!("/webhooks/{id}/deliveries/{delivery}/redeliver"),
        &[],
    );
    assert!(page.text.contains("Delivery queued again"));
    let got = receiver.wait_for(2, 10);
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    // A delivery is redelivered only under its own webhook.
    let token = csrf(&s);
    let r = dash_post(
        &s,
        &format!("/webhooks/other/deliveries/{delivery}/redeliver"),
        &[("csrf", &token)],
    );
    assert_eq!(r.status, 404);

    let page = submit(&s, &format!("/webhooks/{id}/delete"), &[]);
    assert!(page.text.contains("Webhook deleted"));
    assert!(
        s.get("/api/v1/webhooks").json()["webhooks"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(dash_get(&s, &format!("/webhooks/{id}")).status, 404);
}

#[test]
fn settings_rotates_the_api_key_and_shows_it_once() {
    let s = TestServer::start();
    let page = dash_get(&s, "/settings").text;
    assert!(page.contains(&format!("<code>{}…</code>", &KEY[..6])));
    assert!(page.contains(&format!("Base URL <code>{}</code>", s.base)));
    let token = csrf(&s);
    let r = dash_post(&s, "/settings/api-key", &[("csrf", &token)]);
    assert_eq!(r.status, 303);
    let location = r.header("location").unwrap().to_string();
    let page = dash_get(&s, &location).text;
    let start = page.find("id=\"secret\">").unwrap() + 12;
    let new_key = &page[start..start + 43];
    assert_eq!(
        s.get("/api/v1/status").status,
        401,
        "the old key is revoked"
    );
    let r = s.request("GET", "/api/v1/status", &[("X-API-Key", new_key)], None);
    assert_eq!(r.status, 200);
    // The notice is gone on reload.
    assert!(!dash_get(&s, &location).text.contains(new_key));
}

#[test]
fn audit_log_page_lists_and_filters_dashboard_actions() {
    let s = TestServer::start();
    s.inject(ALICE, "x");
    let id = s.newest_id();
    submit(
        &s,
        "/messages/status",
        &[("id", &id), ("status", "read"), ("back", "/")],
    );
    let page = eventually(5, "the audit row", || {
        let page = dash_get(&s, "/audit-logs?action=dashboard_action").text;
        page.contains("marked 1 message(s) read").then_some(page)
    });
    assert!(!page.contains("<td data-label=\"Action\">api_request</td>"));
    assert!(
        dash_get(&s, "/audit-logs")
            .text
            .contains("<td data-label=\"Action\">api_request</td>")
    );
    let bad = dash_get(&s, "/audit-logs?startDate=nope").text;
    assert!(bad.contains("From: expected a date as YYYY-MM-DD"));
    let none = dash_get(&s, "/audit-logs?startDate=2999-01-01").text;
    assert!(none.contains("Nothing logged for these filters."));
}

/// A browser asks without credentials first and sends them after the
/// challenge: that is a login, not a failure. A wrong password or key is.
#[test]
fn only_wrong_credentials_count_as_failed_logins() {
    let s = TestServer::start();
    let marker = whatsapp_api::auth::uuid_v4();
    let page = format!("/reply/{marker}");
    let api = format!("/api/v1/messages/{marker}");
    for _ in 0..5 {
        let r = s.request("GET", &page, &[], None);
        assert_eq!(r.status, 401);
        assert!(r.header("www-authenticate").is_some());
        assert_eq!(s.request("GET", &api, &[], None).status, 401);
        assert_eq!(dash_get(&s, &page).status, 404);
    }
    let no_failure = |what: &str| {
        let logs = s.get("/api/v1/audit-logs?action=auth_failed").json();
        assert_eq!(logs["pagination"]["total"], 0, "{what}: {logs}");
        let warned: Vec<String> = log_lines()
            .into_iter()
            .filter(|l| l.starts_with("WARN") && l.contains(&marker))
            .collect();
        assert!(warned.is_empty(), "{what}: {warned:?}");
    };
    // The audit writer commits every 50 ms: wait for the api_request rows.
    eventually(5, "the audit rows", || {
        let v = s
            .get("/api/v1/audit-logs?action=api_request&limit=100")
            .json();
        let n = v["logs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["path"] == api.as_str())
            .count();
        (n == 5).then_some(())
    });
    no_failure("requests without credentials");

    let wrong = basic(DASH_USER, "not-the-password");
    assert_eq!(
        s.request("GET", &page, &[("Authorization", &wrong)], None)
            .status,
        401
    );
    assert_eq!(
        s.request(
            "GET",
            &api,
            &[("X-API-Key", "not-the-key-0123456789")],
            None
        )
        .status,
        401
    );
    let failed = eventually(5, "two auth_failed rows", || {
        let v = s.get("/api/v1/audit-logs?action=auth_failed").json();
        (v["pagination"]["total"] == 2).then_some(v)
    });
    let paths: Vec<&str> = failed["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.contains(&page.as_str()) && paths.contains(&api.as_str()),
        "{paths:?}"
    );
    let warned = log_lines()
        .into_iter()
        .filter(|l| l.starts_with("WARN") && l.contains(&marker))
        .count();
    assert_eq!(warned, 2);
}

#[test]
fn times_say_utc_and_groups_show_their_names() {
    let s = TestServer::start();
    let r = s.post(
        "/api/v1/simulator/messages",
        &json!({
            "from": "15550001111@s.whatsapp.net",
            "group": "120363012345678901@g.us",
            "group_name": "Sunday <League>",
            "push_name": "Carol",
            "text": "who brings the ball?",
        }),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let inbox = dash_get(&s, "/").text;
    assert!(
        inbox.contains("Sunday &lt;League&gt; · Carol"),
        "the group's name, escaped, and the member"
    );
    assert!(inbox.contains(" UTC</time>"), "times say their zone");
    let id = s.newest_id();
    let chat = dash_get(&s, &format!("/reply/{id}")).text;
    assert!(chat.contains("<h1>Sunday &lt;League&gt;</h1>"), "{chat}");
    assert!(chat.contains(" UTC</time>"));
    let list = s.get("/api/v1/conversations").json();
    assert_eq!(list["conversations"][0]["name"], "Sunday <League>");
    // A later name replaces the earlier one; a person's chat has none.
    s.post(
        "/api/v1/simulator/messages",
        &json!({ "from": "15550001111", "group": "120363012345678901",
                 "group_name": "Sunday League 2", "text": "renamed" }),
    );
    s.inject(ALICE, "hello");
    let list = s.get("/api/v1/conversations").json();
    assert_eq!(list["conversations"][0]["name"], serde_json::Value::Null);
    assert_eq!(list["conversations"][1]["name"], "Sunday League 2");
    let bad = s.post(
        "/api/v1/simulator/messages",
        &json!({ "from": ALICE, "group_name": "no group", "text": "x" }),
    );
    assert_eq!(bad.status, 400);
}

#[test]
fn the_webhook_list_shows_each_webhooks_health() {
    let s = TestServer::start();
    let receiver = WebhookReceiver::start();
    let dead = format!("http://127.0.0.1:{}/hook", free_port());
    for url in [&receiver.url, &dead] {
        let r = s.post(
            "/api/v1/webhooks",
            &json!({ "url": url, "events": ["message.received"] }),
        );
        assert_eq!(r.status, 201, "{}", r.text);
    }
    assert!(
        dash_get(&s, "/webhooks")
            .text
            .contains("No delivery attempted yet.")
    );
    s.inject(ALICE, "one");
    s.inject(ALICE, "two");
    // Four attempts each (the test schedule is 50, 100, 200 ms).
    let page = eventually(10, "both deliveries to the dead webhook to fail", || {
        let page = dash_get(&s, "/webhooks").text;
        page.contains("2 failed</a>").then_some(page)
    });
    let cards: Vec<&str> = page.split("<li class=\"card hook").skip(1).collect();
    let healthy = cards.iter().find(|c| c.contains(&receiver.url)).unwrap();
    let failing = cards.iter().find(|c| c.contains(&dead)).unwrap();
    assert!(healthy.starts_with(" health-ok"), "{healthy}");
    assert!(healthy.contains("delivered (HTTP 200)"), "{healthy}");
    assert!(!healthy.contains("failed</a>") && !healthy.contains("pending</a>"));
    assert!(failing.starts_with(" health-failing"), "{failing}");
    assert!(failing.contains("Last attempt <time"), "{failing}");
    assert!(failing.contains(": failed: "), "{failing}");
    // Waiting deliveries are counted too: the healthy receiver turns slow.
    *receiver.delay.lock().unwrap() = std::time::Duration::from_secs(1);
    s.inject(ALICE, "three");
    let card = |page: &str, url: &str| -> String {
        page.split("<li class=\"card hook")
            .find(|c| c.contains(url))
            .unwrap()
            .to_string()
    };
    eventually(5, "a pending delivery", || {
        card(&dash_get(&s, "/webhooks").text, &receiver.url)
            .contains("1 pending</a>")
            .then_some(())
    });
    eventually(10, "the third failure", || {
        card(&dash_get(&s, "/webhooks").text, &dead)
            .contains("3 failed</a>")
            .then_some(())
    });
}

#[test]
fn small_pages_say_what_is_true() {
    let s = TestServer::start();
    wait_connected(&s);
    // The QR page says how often codes really change.
    s.post("/api/v1/simulator/connection", &json!({ "state": "qr" }));
    let login = dash_get(&s, "/login").text;
    assert!(login.contains("every 20 to 60 seconds"), "{login}");
    assert!(!login.contains("every few seconds"));
    // Showing QR codes means nothing is linked: no account, no session.
    let status = dash_get(&s, "/status").text;
    assert!(
        status.contains("<dt>Linked account</dt><dd>none</dd>"),
        "{status}"
    );
    assert!(
        status.contains("<dt>Session stored</dt><dd>no</dd>"),
        "{status}"
    );
    let v = s.get("/api/v1/status").json();
    assert_eq!(
        (v["sessionExists"].as_bool(), v["me"].as_str()),
        (Some(false), None),
        "{v}"
    );
    // The audit log's action filter is a list of the actions.
    let audit = dash_get(&s, "/audit-logs?action=auth_failed").text;
    assert!(audit.contains("<select name=\"action\">"), "{audit}");
    assert!(
        audit.contains("<option value=\"auth_failed\" selected>"),
        "{audit}"
    );
    for (action, _) in whatsapp_api::audit::ACTIONS {
        assert!(
            audit.contains(&format!("<option value=\"{action}\"")),
            "{action}"
        );
    }
    // Settings says what to do about a lost key or password.
    let settings = dash_get(&s, "/settings").text;
    assert!(settings.contains("Lost the key or the password?"));
    assert!(settings.contains("whatsapp-api rotate-key"));
    // Its curl examples work when pasted into a shell: $KEY expands (double
    // quotes) and a URL with & is quoted.
    assert!(
        settings.contains("curl -H \"X-API-Key: $KEY\""),
        "{settings}"
    );
    assert!(!settings.contains("'X-API-Key: $KEY'"));
    assert!(settings.contains("/api/v1/inbox/unread?page=1&amp;limit=50\""));
}
