//! The v1 contract of the Node server, and the core extensions, over HTTP.

use crate::support::*;
use serde_json::json;

const ALICE: &str = "15551234567@s.whatsapp.net";
const BOB: &str = "15557654321@s.whatsapp.net";

#[test]
fn health_needs_no_key_and_follows_the_connection() {
    let s = TestServer::start();
    let r = s.request("GET", "/api/v1/health", &[], None);
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({ "status": "connected" }));
    s.post(
        "/api/v1/simulator/connection",
        &json!({ "state": "disconnected" }),
    );
    let r = s.request("GET", "/api/v1/health", &[], None);
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({ "status": "disconnected" }));
}

/// A simulator state change is applied when its call returns, so a script
/// can act on it at once. (Before, it reached the sink a moment later; the
/// dashboard's re-pair test saw the stale state about once in 50 loaded runs.)
#[test]
fn simulator_state_changes_are_visible_when_the_call_returns() {
    let s = TestServer::start();
    for round in 0..25 {
        for state in ["disconnected", "qr", "connected", "logged_out"] {
            let r = s.post("/api/v1/simulator/connection", &json!({ "state": state }));
            assert_eq!(r.status, 200, "{}", r.text);
            let seen = s.get("/api/v1/status").json();
            assert_eq!(seen["state"], state, "round {round}: {seen}");
        }
    }
}

#[test]
fn status_has_the_node_fields_and_extras() {
    let s = TestServer::start();
    let v = s.get("/api/v1/status").json();
    assert_eq!(v["connected"], true);
    assert_eq!(v["qrReady"], false);
    assert_eq!(v["sessionExists"], true);
    assert_eq!(v["state"], "connected");
    assert_eq!(v["me"], "15550000000@s.whatsapp.net");
    s.post("/api/v1/simulator/connection", &json!({ "state": "qr" }));
    let v = s.get("/api/v1/status").json();
    assert_eq!(v["qrReady"], true);
    assert_eq!(v["connected"], false);
    let qr = s.get("/api/v1/qr");
    assert_eq!(qr.status, 200);
    assert!(qr.json()["qr"].as_str().unwrap().starts_with("2@"));
    assert!(qr.json()["expiresIn"].as_u64().unwrap() <= 60);
    let svg = s.get("/api/v1/qr?format=svg");
    assert_eq!(svg.header("content-type"), Some("image/svg+xml"));
    assert!(svg.text.starts_with("<svg"));
    s.post(
        "/api/v1/simulator/connection",
        &json!({ "state": "connected" }),
    );
    assert_eq!(s.get("/api/v1/qr").status, 404);
}

#[test]
fn missing_or_wrong_key_is_401_everywhere_but_health_and_openapi() {
    let s = TestServer::start();
    for path in [
        "/api/v1/status",
        "/api/v1/inbox",
        "/api/v1/inbox/all",
        "/api/v1/webhooks",
        "/api/v1/conversations",
        "/api/v1/audit-logs",
    ] {
        for headers in [vec![], vec![("X-API-Key", "wrong-key-wrong-key")]] {
            let r = s.request("GET", path, &headers, None);
            assert_eq!(r.status, 401, "{path}");
            assert_eq!(r.json(), json!({ "error": "Unauthorized" }));
        }
    }
    // A key in the query string is not accepted.
    assert_eq!(
        s.request("GET", &format!("/api/v1/status?apiKey={KEY}"), &[], None)
            .status,
        401
    );
    assert_eq!(
        s.request("GET", "/api/v1/openapi.json", &[], None).status,
        200
    );
}

#[test]
fn inbox_lists_incoming_newest_first_with_pagination() {
    let s = TestServer::start();
    for i in 0..7 {
        s.inject(
            if i % 2 == 0 { ALICE } else { BOB },
            &format!("message {i}"),
        );
    }
    let v = s.get("/api/v1/inbox?limit=3").json();
    assert_eq!(v["count"], 3);
    assert_eq!(
        v["pagination"],
        json!({ "page": 1, "limit": 3, "total": 7, "totalPages": 3 })
    );
    let texts: Vec<&str> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["message 6", "message 5", "message 4"]);
    let m = &v["messages"][0];
    for field in [
        "id",
        "direction",
        "phone",
        "message",
        "reply_status",
        "media_type",
        "media_url",
        "created_at",
    ] {
        assert!(m.get(field).is_some(), "missing {field}");
    }
    assert_eq!(m["direction"], "incoming");
    assert_eq!(m["reply_status"], "unread");
    let created = m["created_at"].as_str().unwrap();
    assert_eq!(created.len(), 19, "{created}");
    assert_eq!(&created[10..11], " ");
    let page3 = s.get("/api/v1/inbox?limit=3&page=3").json();
    assert_eq!(page3["count"], 1);
    assert_eq!(page3["messages"][0]["message"], "message 0");
}

#[test]
fn inbox_paging_parameters_are_clamped_like_the_node_server() {
    let s = TestServer::start();
    s.inject(ALICE, "one");
    let p = |q: &str| s.get(&format!("/api/v1/inbox/all?{q}")).json()["pagination"].clone();
    assert_eq!(p("limit=500")["limit"], 100);
    assert_eq!(p("limit=0")["limit"], 1);
    assert_eq!(p("limit=abc")["limit"], 1);
    assert_eq!(p("")["limit"], 50);
    assert_eq!(p("page=0")["page"], 1);
    assert_eq!(p("page=-3")["page"], 1);
    assert_eq!(p("page=x")["page"], 1);
}

#[test]
fn inbox_status_filters_and_invalid_status() {
    let s = TestServer::start();
    for i in 0..4 {
        s.inject(ALICE, &format!("m{i}"));
    }
    let ids: Vec<String> = s.get("/api/v1/inbox/all").json()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        s.patch(
            &format!("/api/v1/messages/{}/status", ids[0]),
            &json!({ "status": "read" })
        )
        .json(),
        json!({ "success": true })
    );
    assert_eq!(
        s.patch(
            &format!("/api/v1/messages/{}/status", ids[1]),
            &json!({ "status": "ignored" })
        )
        .status,
        200
    );
    let count = |path: &str| s.get(path).json()["pagination"]["total"].as_i64().unwrap();
    assert_eq!(count("/api/v1/inbox"), 2);
    assert_eq!(count("/api/v1/inbox/unread"), 2);
    assert_eq!(count("/api/v1/inbox/read"), 1);
    assert_eq!(count("/api/v1/inbox/ignored"), 1);
    assert_eq!(count("/api/v1/inbox/replied"), 0);
    assert_eq!(count("/api/v1/inbox/all"), 4);
    let bad = s.get("/api/v1/inbox/bogus");
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json(), json!({ "error": "Invalid status" }));
}

#[test]
fn inbox_search_phone_and_dates() {
    let s = TestServer::start();
    s.inject(ALICE, "Hello World, order 100%");
    s.inject(BOB, "hello there");
    s.inject(BOB, "Goodbye");
    let total = |q: &str| {
        let r = s.get(&format!("/api/v1/inbox/all?{q}"));
        assert_eq!(r.status, 200, "{q}: {}", r.text);
        r.json()["pagination"]["total"].as_i64().unwrap()
    };
    assert_eq!(total("search=hello"), 2);
    assert_eq!(total("search=HELLO%20world"), 1);
    assert_eq!(total("search=100%25"), 1);
    assert_eq!(total("search=%25"), 1);
    assert_eq!(total("search=_"), 0);
    assert_eq!(total("search=%27%20OR%201%3D1%20--"), 0);
    assert_eq!(total("phone=7654"), 2);
    assert_eq!(total("phone=7654&search=good"), 1);
    let today = &s.get("/api/v1/inbox/all").json()["messages"][0]["created_at"]
        .as_str()
        .unwrap()[..10]
        .to_string();
    assert_eq!(total(&format!("startDate={today}&endDate={today}")), 3);
    assert_eq!(total("endDate=2000-01-01"), 0);
    assert_eq!(total("startDate=2999-01-01"), 0);
    for bad in [
        "startDate=2024-13-01",
        "endDate=yesterday",
        "startDate=2024-1-1",
        "endDate=2023-02-29",
    ] {
        let r = s.get(&format!("/api/v1/inbox/all?{bad}"));
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.json()["error"].as_str().unwrap().contains("YYYY-MM-DD"));
    }
}

#[test]
fn reinjected_message_is_stored_once() {
    let s = TestServer::start();
    let body = json!({ "from": ALICE, "text": "same", "id": "3EB0DUPLICATE" });
    assert_eq!(s.post("/api/v1/simulator/messages", &body).status, 201);
    assert_eq!(s.post("/api/v1/simulator/messages", &body).status, 201);
    assert_eq!(s.get("/api/v1/inbox/all").json()["pagination"]["total"], 1);
    // The same id in another chat is another message.
    assert_eq!(
        s.post(
            "/api/v1/simulator/messages",
            &json!({ "from": BOB, "text": "same", "id": "3EB0DUPLICATE" })
        )
        .status,
        201
    );
    assert_eq!(s.get("/api/v1/inbox/all").json()["pagination"]["total"], 2);
}

#[test]
fn reply_quotes_the_original_and_marks_it_replied() {
    let s = TestServer::start();
    let wa_id = s.inject(ALICE, "Where is my order?");
    let id = s.newest_id();
    let r = s.post(
        &format!("/api/v1/messages/{id}/reply"),
        &json!({ "message": "On its way" }),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["success"], true);
    let reply_id = v["replyId"].as_str().unwrap();
    let sent = s.sent_texts();
    assert_eq!(sent[0]["to"], ALICE);
    assert_eq!(sent[0]["text"], "On its way");
    assert_eq!(sent[0]["quoted_wa_id"], wa_id.as_str());
    let original = s.get(&format!("/api/v1/messages/{id}")).json();
    assert_eq!(original["reply_status"], "replied");
    let reply = s.get(&format!("/api/v1/messages/{reply_id}")).json();
    assert_eq!(reply["direction"], "outgoing");
    assert_eq!(reply["in_reply_to"], id.as_str());
    assert_eq!(reply["delivery_status"], "sent");
    assert_eq!(reply["wa_id"], sent[0]["wa_id"]);
    // The inbox stays incoming-only; the conversation has both.
    assert_eq!(s.get("/api/v1/inbox/all").json()["pagination"]["total"], 1);
    let convo = s
        .get(&format!(
            "/api/v1/conversations/{}/messages",
            ALICE.replace('@', "%40")
        ))
        .json();
    let texts: Vec<&str> = convo["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["Where is my order?", "On its way"]);
    // Replies cannot be answered (reply-only).
    let again = s.post(
        &format!("/api/v1/messages/{reply_id}/reply"),
        &json!({ "message": "x" }),
    );
    assert_eq!(again.status, 400);
}

#[test]
fn reply_errors_match_the_node_server() {
    let s = TestServer::start();
    s.inject(ALICE, "hi");
    let id = s.newest_id();
    let path = format!("/api/v1/messages/{id}/reply");
    for body in [
        json!({}),
        json!({ "message": "" }),
        json!({ "message": null }),
    ] {
        let r = s.post(&path, &body);
        assert_eq!(
            (r.status, r.json()),
            (400, json!({ "error": "Missing message" }))
        );
    }
    let r = s.post(&path, &json!({ "message": 5 }));
    assert_eq!(r.status, 400);
    let r = s.post("/api/v1/messages/nope/reply", &json!({ "message": "x" }));
    assert_eq!(
        (r.status, r.json()),
        (404, json!({ "error": "Message not found" }))
    );
    s.post(
        "/api/v1/simulator/connection",
        &json!({ "state": "disconnected" }),
    );
    let r = s.post(&path, &json!({ "message": "x" }));
    assert_eq!(
        (r.status, r.json()),
        (503, json!({ "error": "WhatsApp not connected" }))
    );
    s.post(
        "/api/v1/simulator/connection",
        &json!({ "state": "connected" }),
    );
    // Not connected: refused before anything is stored.
    assert_eq!(
        s.get("/api/v1/conversations").json()["conversations"][0]["lastMessage"]["direction"],
        "incoming"
    );
    s.post("/api/v1/simulator/fail-sends", &json!({ "fail": true }));
    let r = s.post(&path, &json!({ "message": "x" }));
    assert_eq!(r.status, 500);
    assert!(r.json()["error"].is_string());
    // A send WhatsApp did not take is kept, failed; the original is not
    // replied.
    assert_eq!(
        s.get(&format!("/api/v1/messages/{id}")).json()["reply_status"],
        "unread"
    );
    let last = &s.get("/api/v1/conversations").json()["conversations"][0]["lastMessage"];
    assert_eq!(
        (
            &last["direction"],
            &last["delivery_status"],
            &last["in_reply_to"]
        ),
        (&json!("outgoing"), &json!("failed"), &json!(id))
    );
}

#[test]
fn idempotency_key_sends_once() {
    let s = TestServer::start();
    s.inject(ALICE, "hi");
    let id = s.newest_id();
    let body = serde_json::to_vec(&json!({ "message": "only once" })).unwrap();
    let headers = [
        ("X-API-Key", KEY),
        ("Content-Type", "application/json"),
        ("Idempotency-Key", "retry-123"),
    ];
    let path = format!("/api/v1/messages/{id}/reply");
    let first = s.request("POST", &path, &headers, Some(&body));
    let second = s.request("POST", &path, &headers, Some(&body));
    assert_eq!(first.status, 200);
    assert_eq!(second.status, 200);
    assert_eq!(first.json()["replyId"], second.json()["replyId"]);
    assert_eq!(s.sent_texts().as_array().unwrap().len(), 1);
    // A failed send does not burn the key: the retry sends.
    s.inject(BOB, "hello");
    let id2 = s.newest_id();
    let path2 = format!("/api/v1/messages/{id2}/reply");
    let headers2 = [("X-API-Key", KEY), ("Idempotency-Key", "retry-456")];
    s.post("/api/v1/simulator/fail-sends", &json!({ "fail": true }));
    assert_eq!(
        s.request("POST", &path2, &headers2, Some(&body)).status,
        500
    );
    s.post("/api/v1/simulator/fail-sends", &json!({ "fail": false }));
    assert_eq!(
        s.request("POST", &path2, &headers2, Some(&body)).status,
        200
    );
    assert_eq!(s.sent_texts().as_array().unwrap().len(), 2);
    let bad = s.request(
        "POST",
        &path2,
        &[("X-API-Key", KEY), ("Idempotency-Key", "has space")],
        Some(&body),
    );
    assert_eq!(bad.status, 400);
}

#[test]
fn status_and_batch_status_errors() {
    let s = TestServer::start();
    s.inject(ALICE, "a");
    s.inject(ALICE, "b");
    let ids: Vec<String> = s.get("/api/v1/inbox/all").json()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    let r = s.patch(
        &format!("/api/v1/messages/{}/status", ids[0]),
        &json!({ "status": "archived" }),
    );
    assert_eq!(
        (r.status, r.json()),
        (400, json!({ "error": "Invalid status" }))
    );
    let r = s.patch(
        "/api/v1/messages/missing/status",
        &json!({ "status": "read" }),
    );
    assert_eq!((r.status, r.json()), (404, json!({ "error": "Not found" })));
    for body in [
        json!({ "status": "read" }),
        json!({ "ids": [], "status": "read" }),
        json!({ "ids": "x", "status": "read" }),
        json!({ "ids": [1], "status": "read" }),
    ] {
        let r = s.patch("/api/v1/messages/batch/status", &body);
        assert_eq!(
            (r.status, r.json()),
            (400, json!({ "error": "Missing or invalid ids array" })),
            "{body}"
        );
    }
    let r = s.patch(
        "/api/v1/messages/batch/status",
        &json!({ "ids": ids, "status": "nope" }),
    );
    assert_eq!(
        (r.status, r.json()),
        (400, json!({ "error": "Invalid status" }))
    );
    let r = s.patch(
        "/api/v1/messages/batch/status",
        &json!({ "ids": [ids[0], ids[1], "unknown"], "status": "ignored" }),
    );
    assert_eq!(r.json(), json!({ "success": true, "updated": 2 }));
    assert_eq!(
        s.get("/api/v1/inbox/ignored").json()["pagination"]["total"],
        2
    );
}

#[test]
fn malformed_bodies_and_unknown_routes() {
    let s = TestServer::start();
    s.inject(ALICE, "a");
    let id = s.newest_id();
    let path = format!("/api/v1/messages/{id}/status");
    for body in [&b"{not json"[..], b"[1,2]", b"\"x\"", b"\xff\xfe"] {
        let r = s.request("PATCH", &path, &[("X-API-Key", KEY)], Some(body));
        assert_eq!(r.status, 400, "{:?}", String::from_utf8_lossy(body));
        assert!(r.json()["error"].is_string());
    }
    let big = vec![b'a'; 1024 * 1024 + 10];
    let r = s.request(
        "POST",
        &format!("/api/v1/messages/{id}/reply"),
        &[("X-API-Key", KEY)],
        Some(&big),
    );
    assert_eq!(r.status, 413);
    let r = s.get("/api/v1/nothing-here");
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].is_string());
    let r = s.request("DELETE", "/api/v1/health", &[], None);
    assert_eq!(r.status, 405);
    assert!(r.json()["error"].is_string());
    assert_eq!(
        s.get(&format!("/api/v1/messages/{id}")).json()["reply_status"],
        "unread"
    );
}

#[test]
fn webhooks_list_never_shows_secrets() {
    let s = TestServer::start();
    let created = s.post("/api/v1/webhooks", &json!({ "url": "http://127.0.0.1:9/hook", "events": ["message.received"], "secret": "s3cret-value" }));
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.json()["secret"], "s3cret-value");
    let list = s.get("/api/v1/webhooks");
    assert_eq!(list.status, 200);
    assert!(!list.text.contains("s3cret-value"));
    let w = &list.json()["webhooks"][0];
    assert_eq!(w["url"], "http://127.0.0.1:9/hook");
    assert_eq!(w["events"], "message.received");
    assert_eq!(w["active"], 1);
    assert_eq!(w["has_secret"], true);
    assert!(w["created_at"].is_string());
}

#[test]
fn rate_limit_headers_and_429() {
    let s = TestServer::start_with(|c| c.rate_limit_per_minute = 5);
    for left in (0..5).rev() {
        let r = s.get("/api/v1/status");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-ratelimit-limit"), Some("5"));
        assert_eq!(
            r.header("x-ratelimit-remaining"),
            Some(left.to_string().as_str())
        );
        let reset: i64 = r.header("x-ratelimit-reset").unwrap().parse().unwrap();
        assert!(
            reset > 1_700_000_000_000,
            "reset is in milliseconds: {reset}"
        );
    }
    let r = s.get("/api/v1/status");
    assert_eq!(r.status, 429);
    let v = r.json();
    assert_eq!(v["error"], "Too many requests, please try again later");
    let retry = v["retryAfter"].as_u64().unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(r.header("retry-after"), Some(retry.to_string().as_str()));
    // Health is never limited.
    assert_eq!(s.request("GET", "/api/v1/health", &[], None).status, 200);
}

#[test]
fn wrong_keys_cannot_buy_fresh_buckets() {
    let s = TestServer::start_with(|c| c.rate_limit_per_minute = 3);
    let statuses: Vec<u16> = (0..5)
        .map(|i| {
            s.request(
                "GET",
                "/api/v1/status",
                &[("X-API-Key", &format!("wrong-key-number-{i}"))],
                None,
            )
            .status
        })
        .collect();
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    // The real key has its own bucket.
    assert_eq!(s.get("/api/v1/status").status, 200);
}

#[test]
fn conversations_list_chats_with_unread_counts() {
    let s = TestServer::start();
    s.inject(ALICE, "a1");
    s.inject(BOB, "b1");
    s.inject(ALICE, "a2");
    let v = s.get("/api/v1/conversations").json();
    assert_eq!(v["pagination"]["total"], 2);
    assert_eq!(v["conversations"][0]["phone"], ALICE);
    assert_eq!(v["conversations"][0]["unread"], 2);
    assert_eq!(v["conversations"][0]["lastMessage"]["message"], "a2");
    assert_eq!(v["conversations"][1]["unread"], 1);
    let m = s
        .get(&format!(
            "/api/v1/conversations/{ALICE}/messages?limit=1&page=2"
        ))
        .json();
    assert_eq!(m["messages"][0]["message"], "a2");
    assert_eq!(m["pagination"]["total"], 2);
}

#[test]
fn group_messages_keep_the_group_and_the_sender() {
    let s = TestServer::start();
    let r = s.post("/api/v1/simulator/messages", &json!({ "from": ALICE, "group": "120363041234567890@g.us", "text": "in the group", "push_name": "Alice" }));
    assert_eq!(r.status, 201);
    let m = &s.get("/api/v1/inbox").json()["messages"][0];
    assert_eq!(m["phone"], "120363041234567890@g.us");
    assert_eq!(m["sender_jid"], ALICE);
    assert_eq!(m["push_name"], "Alice");
}

#[test]
fn media_is_stored_and_served_with_key_or_basic_auth() {
    use base64::Engine as _;
    let s = TestServer::start();
    let png = b"\x89PNG\r\n\x1a\nfake image bytes";
    let b64 = base64::engine::general_purpose::STANDARD.encode(png);
    let r = s.post(
        "/api/v1/simulator/messages",
        &json!({ "from": ALICE, "media_type": "image", "media_base64": b64, "mime": "image/png" }),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let m = s.get("/api/v1/inbox").json()["messages"][0].clone();
    assert_eq!(m["message"], "[Image]");
    assert_eq!(m["media_type"], "image");
    assert_eq!(m["media_mime"], "image/png");
    assert_eq!(m["media_size"], png.len());
    let url = m["media_url"].as_str().unwrap().to_string();
    assert!(url.starts_with("/media/") && url.ends_with(".png"));
    let file = s.get(&url);
    assert_eq!(file.status, 200);
    assert_eq!(file.header("content-type"), Some("image/png"));
    assert_eq!(file.bytes, png);
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{DASH_USER}:{DASH_PASSWORD}"))
    );
    assert_eq!(
        s.request("GET", &url, &[("Authorization", &basic)], None)
            .status,
        200
    );
    let none = s.request("GET", &url, &[], None);
    assert_eq!(none.status, 401);
    assert!(
        none.header("www-authenticate")
            .unwrap()
            .starts_with("Basic")
    );
    for evil in [
        "/media/..%2Fwhatsapp-api.db",
        "/media/%2e%2e",
        "/media/..",
        "/media/%2Fetc%2Fpasswd",
        "/media/a%00b.png",
        "/media/.hidden",
    ] {
        let r = s.get(evil);
        assert!(matches!(r.status, 400 | 404), "{evil}: {}", r.status);
    }
    // A caption replaces the placeholder; a document keeps its name.
    s.post("/api/v1/simulator/messages", &json!({ "from": ALICE, "media_type": "document", "media_base64": "aGk=", "filename": "invoice.pdf", "mime": "application/pdf" }));
    assert_eq!(
        s.get("/api/v1/inbox").json()["messages"][0]["message"],
        "[Document: invoice.pdf]"
    );
    s.post("/api/v1/simulator/messages", &json!({ "from": ALICE, "media_type": "image", "media_base64": "aGk=", "text": "look at this" }));
    assert_eq!(
        s.get("/api/v1/inbox").json()["messages"][0]["message"],
        "look at this"
    );
}

#[test]
fn oversize_media_keeps_the_message_with_the_reason() {
    let s = TestServer::start_with(|c| c.media_max_bytes = 4);
    let r = s.post(
        "/api/v1/simulator/messages",
        &json!({ "from": ALICE, "media_type": "video", "media_base64": "aGVsbG8gd29ybGQ=" }),
    );
    assert_eq!(r.status, 201);
    let m = &s.get("/api/v1/inbox").json()["messages"][0];
    assert_eq!(m["message"], "[Video]");
    assert_eq!(m["media_url"], serde_json::Value::Null);
    assert!(
        m["media_error"]
            .as_str()
            .unwrap()
            .contains("MEDIA_MAX_BYTES")
    );
}

#[test]
fn simulator_input_is_validated() {
    let s = TestServer::start();
    for body in [
        json!({ "text": "no sender" }),
        json!({ "from": "not-a-jid", "text": "x" }),
        json!({ "from": ALICE }),
        json!({ "from": ALICE, "media_type": "hologram" }),
        json!({ "from": ALICE, "media_type": "image", "media_base64": "***" }),
        json!({ "from": ALICE, "text": 5 }),
        json!({ "from": ALICE, "text": "x", "group": "not-a-group@s.whatsapp.net" }),
    ] {
        let r = s.post("/api/v1/simulator/messages", &body);
        assert_eq!(r.status, 400, "{body}: {}", r.text);
    }
    assert_eq!(
        s.post(
            "/api/v1/simulator/connection",
            &json!({ "state": "sideways" })
        )
        .status,
        400
    );
    assert_eq!(
        s.post("/api/v1/simulator/fail-sends", &json!({ "fail": "yes" }))
            .status,
        400
    );
    assert_eq!(s.get("/api/v1/inbox/all").json()["pagination"]["total"], 0);
}

#[test]
fn openapi_is_served_and_lists_the_routes() {
    let s = TestServer::start();
    let doc = s.request("GET", "/api/v1/openapi.json", &[], None).json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/inbox/{status}",
        "/api/v1/messages/{id}/reply",
        "/api/v1/messages/batch/status",
        "/media/{file}",
    ] {
        assert!(paths.contains_key(p), "{p}");
    }
}

#[test]
fn audit_log_records_requests_and_failed_auth() {
    let s = TestServer::start();
    s.get("/api/v1/status");
    s.request(
        "GET",
        "/api/v1/status",
        &[("X-API-Key", "nope-nope-nope-nope")],
        None,
    );
    let logs = eventually(5, "audit rows", || {
        let v = s.get("/api/v1/audit-logs?limit=100").json();
        let logs = v["logs"].as_array().unwrap().clone();
        let has_fail = logs.iter().any(|l| l["action"] == "auth_failed");
        let has_ok = logs.iter().any(|l| {
            l["action"] == "api_request" && l["path"] == "/api/v1/status" && l["status"] == 200
        });
        (has_fail && has_ok).then_some(logs)
    });
    let failed = logs.iter().find(|l| l["action"] == "auth_failed").unwrap();
    assert_eq!(failed["status"], 401);
    assert_eq!(failed["ip_address"], "127.0.0.1");
    assert!(failed["duration_ms"].is_number());
    let only = s.get("/api/v1/audit-logs?action=auth_failed").json();
    assert!(
        only["logs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["action"] == "auth_failed")
    );
    assert_eq!(s.get("/api/v1/audit-logs?startDate=nope").status, 400);
}

#[test]
fn no_response_contains_the_api_key() {
    let s = TestServer::start();
    s.inject(ALICE, "hi");
    for path in [
        "/api/v1/status",
        "/api/v1/inbox/all",
        "/api/v1/webhooks",
        "/api/v1/audit-logs",
        "/api/v1/openapi.json",
        "/metrics",
        "/api/v1/conversations",
    ] {
        let r = s.get(path);
        assert!(!r.text.contains(KEY), "{path} leaks the key");
        assert!(
            r.headers.iter().all(|(_, v)| !v.contains(KEY)),
            "{path} leaks the key in a header"
        );
    }
}

#[test]
fn messages_survive_a_restart() {
    let s = TestServer::start();
    s.inject(ALICE, "persisted");
    let dir = s.stop();
    let s = TestServer::start_in(dir, |_| {});
    assert_eq!(
        s.get("/api/v1/inbox").json()["messages"][0]["message"],
        "persisted"
    );
}

#[test]
fn logout_then_pair_again() {
    let s = TestServer::start();
    let r = s.post("/api/v1/session/pair", &json!({}));
    assert_eq!(r.status, 409, "a paired session must be logged out first");
    assert_eq!(s.post("/api/v1/session/logout", &json!({})).status, 200);
    let v = eventually(5, "logged out", || {
        let v = s.get("/api/v1/status").json();
        (v["state"] == "logged_out").then_some(v)
    });
    assert_eq!(v["sessionExists"], false);
    assert_eq!(v["me"], serde_json::Value::Null);
    assert_eq!(
        s.post("/api/v1/session/pair", &json!({})).json(),
        json!({ "success": true })
    );
    eventually(5, "a QR code", || {
        (s.get("/api/v1/status").json()["qrReady"] == true).then_some(())
    });
    assert_eq!(s.get("/api/v1/qr").status, 200);
}

#[test]
fn concurrent_injections_are_stored_and_announced_once_each() {
    let s = TestServer::start();
    let hook = WebhookReceiver::start();
    let r = s.post(
        "/api/v1/webhooks",
        &json!({ "url": hook.url, "events": ["message.received"] }),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    // Eight clients at once, so the sink finds several messages waiting and
    // commits them together (group commit); the same WhatsApp id sent by
    // every client is still stored once.
    std::thread::scope(|scope| {
        for t in 0..8 {
            let s = &s;
            scope.spawn(move || {
                for i in 0..10 {
                    s.inject(
                        &format!("1555000{t:04}@s.whatsapp.net"),
                        &format!("t{t} m{i}"),
                    );
                }
                let r = s.post(
                    "/api/v1/simulator/messages",
                    &json!({ "from": ALICE, "id": "SAME-ID", "text": "once" }),
                );
                assert_eq!(r.status, 201, "{}", r.text);
            });
        }
    });
    let v = s.get("/api/v1/inbox/all?limit=1").json();
    assert_eq!(v["pagination"]["total"], 81);
    let got = hook.wait_for(81, 10);
    let mut ids: Vec<String> = got
        .iter()
        .map(|r| r.json()["data"]["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 81);
}

#[test]
fn a_chat_is_named_by_its_jid_its_number_or_plus_number() {
    let s = TestServer::start();
    s.inject(ALICE, "first");
    s.inject(ALICE, "second");
    let id = s.newest_id();
    assert_eq!(
        s.post(
            &format!("/api/v1/messages/{id}/reply"),
            &json!({ "message": "ours" })
        )
        .status,
        200
    );
    s.inject(BOB, "someone else");
    let texts = |path: &str| -> (String, Vec<String>) {
        let r = s.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        let v = r.json();
        let texts = v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["message"].as_str().unwrap().to_string())
            .collect();
        (v["phone"].as_str().unwrap().to_string(), texts)
    };
    let expected = (
        ALICE.to_string(),
        vec!["first".to_string(), "second".into(), "ours".into()],
    );
    for name in [
        "15551234567@s.whatsapp.net",
        "15551234567",
        "+15551234567",
        "%2B15551234567",
        "%2B1%20555%20123%204567",
    ] {
        assert_eq!(
            texts(&format!("/api/v1/conversations/{name}/messages")),
            expected,
            "{name}"
        );
    }
    // A group by its number, and the simulator's `from` and `group` as numbers.
    let r = s.post(
        "/api/v1/simulator/messages",
        &json!({ "from": "+15550001111", "group": "120363012345678901", "text": "in the group" }),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let (phone, group_texts) = texts("/api/v1/conversations/120363012345678901/messages");
    assert_eq!(phone, "120363012345678901@g.us");
    assert_eq!(group_texts, ["in the group"]);
    let m = s.get("/api/v1/inbox?limit=1").json()["messages"][0].clone();
    assert_eq!(m["sender_jid"], "15550001111@s.whatsapp.net");
    // A number with no chat yet is an empty chat of that person, not an error.
    assert_eq!(
        texts("/api/v1/conversations/19998887777/messages"),
        ("19998887777@s.whatsapp.net".to_string(), vec![])
    );
    let bad = s.get("/api/v1/conversations/not-a-number/messages");
    assert_eq!(bad.status, 400);
    assert!(
        bad.json()["error"]
            .as_str()
            .unwrap()
            .contains("15551234567")
    );

    // The inbox's phone filter takes the number as the dashboard shows it.
    for filter in ["%2B15551234567", "%2B1%20555-123", "1555123", ALICE] {
        let v = s.get(&format!("/api/v1/inbox/all?phone={filter}")).json();
        assert_eq!(v["pagination"]["total"], 2, "{filter}: {v}");
    }
}

#[test]
fn an_idempotency_key_is_bound_to_its_request() {
    let s = TestServer::start();
    s.inject(ALICE, "one");
    let first_id = s.newest_id();
    s.inject(BOB, "two");
    let second_id = s.newest_id();
    let send = |id: &str, key: &str, body: &str| {
        s.request(
            "POST",
            &format!("/api/v1/messages/{id}/reply"),
            &[
                ("X-API-Key", KEY),
                ("Content-Type", "application/json"),
                ("Idempotency-Key", key),
            ],
            Some(body.as_bytes()),
        )
    };
    let first = send(&first_id, "order-1", r#"{"message":"on its way"}"#);
    assert_eq!(first.status, 200, "{}", first.text);
    // The same request (key order and spacing aside): the first answer.
    let again = send(&first_id, "order-1", r#"{ "message" : "on its way" }"#);
    assert_eq!(again.status, 200);
    assert_eq!(again.json(), first.json());
    // The same key with another body, or for another message: refused.
    for (id, body) in [
        (&first_id, r#"{"message":"something else"}"#),
        (&second_id, r#"{"message":"on its way"}"#),
    ] {
        let r = send(id, "order-1", body);
        assert_eq!(r.status, 422, "{}", r.text);
        let error = r.json()["error"].as_str().unwrap().to_string();
        assert!(
            error.contains("Idempotency-Key") && error.contains("different request"),
            "{error}"
        );
    }
    let sent = s.sent_texts();
    assert_eq!(sent.as_array().unwrap().len(), 1, "{sent}");
    assert_eq!(
        s.get(&format!("/api/v1/messages/{second_id}")).json()["reply_status"],
        "unread"
    );
}
