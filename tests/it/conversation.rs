//! The whole conversation over HTTP with the simulator: a customer's
//! reactions, edits and deletions in (stored, shown, announced), delivery
//! receipts for our replies, read receipts and reactions out, typing.

use crate::support::*;
use base64::Engine as _;
use serde_json::{Value, json};

const ALICE: &str = "15551234567@s.whatsapp.net";
const BOB: &str = "15557654321@s.whatsapp.net";

/// A webhook on `rx` for `events`.
fn subscribe(s: &TestServer, rx: &WebhookReceiver, events: &[&str]) {
    let r = s.post(
        "/api/v1/webhooks",
        &json!({ "url": rx.url, "events": events }),
    );
    assert_eq!(r.status, 201, "{}", r.text);
}

/// Injects a text from `from` with WhatsApp id `wa_id`; its public id.
fn inject(s: &TestServer, from: &str, wa_id: &str, text: &str) -> String {
    let r = s.post(
        "/api/v1/simulator/messages",
        &json!({ "from": from, "id": wa_id, "text": text }),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    s.newest_id()
}

fn message(s: &TestServer, id: &str) -> Value {
    let r = s.get(&format!("/api/v1/messages/{id}"));
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

fn sent(s: &TestServer) -> Vec<Value> {
    s.get("/api/v1/simulator/sent")
        .json()
        .as_array()
        .unwrap()
        .clone()
}

fn sent_of_kind(s: &TestServer, kind: &str) -> Vec<Value> {
    sent(s).into_iter().filter(|r| r["kind"] == kind).collect()
}

fn events(rx: &WebhookReceiver, n: usize) -> Vec<Value> {
    rx.wait_for(n, 10).iter().map(Received::json).collect()
}

#[test]
fn a_customers_reactions_are_kept_per_sender_and_announced() {
    let s = TestServer::start();
    let rx = WebhookReceiver::start();
    subscribe(&s, &rx, &["message.reaction"]);
    let group = "120363000000000001@g.us";
    let r = s.post(
        "/api/v1/simulator/messages",
        &json!({ "from": ALICE, "group": group, "id": "G1", "text": "lunch?" }),
    );
    assert_eq!(r.status, 201);
    let id = s.newest_id();
    let react = |from: &str, emoji: &str| {
        let r = s.post(
            "/api/v1/simulator/reactions",
            &json!({ "from": from, "group": group, "target_wa_id": "G1", "emoji": emoji }),
        );
        assert_eq!(r.status, 201, "{}", r.text);
    };
    react(ALICE, "👍");
    react(BOB, "😂");
    react(ALICE, "❤️");
    let m = message(&s, &id);
    let mut reactions: Vec<(&str, &str)> = m["reactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["sender_jid"].as_str().unwrap(),
                r["emoji"].as_str().unwrap(),
            )
        })
        .collect();
    reactions.sort();
    assert_eq!(reactions, [(ALICE, "❤️"), (BOB, "😂")]);
    react(BOB, "");
    let m = message(&s, &id);
    assert_eq!(m["reactions"].as_array().unwrap().len(), 1);
    // The inbox and the conversation show them too.
    let inbox = s.get("/api/v1/inbox/all").json();
    assert_eq!(inbox["messages"][0]["reactions"][0]["emoji"], "❤️");
    let got = events(&rx, 4);
    let data: Vec<(&str, &str, bool)> = got
        .iter()
        .map(|e| {
            assert_eq!(e["event"], "message.reaction");
            assert_eq!(e["data"]["id"], id.as_str());
            assert_eq!(e["data"]["waId"], "G1");
            assert_eq!(e["data"]["phone"], group);
            (
                e["data"]["senderJid"].as_str().unwrap(),
                e["data"]["emoji"].as_str().unwrap(),
                e["data"]["removed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        data,
        [
            (ALICE, "👍", false),
            (BOB, "😂", false),
            (ALICE, "❤️", false),
            (BOB, "", true)
        ]
    );
}

#[test]
fn an_edit_replaces_the_text_and_keeps_the_earlier_one() {
    let s = TestServer::start();
    let rx = WebhookReceiver::start();
    subscribe(&s, &rx, &["message.edited"]);
    let id = inject(&s, ALICE, "E1", "an order of 2 pizzas");
    let edit = |from: &str, text: &str| {
        s.post(
            "/api/v1/simulator/edits",
            &json!({ "from": from, "target_wa_id": "E1", "text": text }),
        )
        .status
    };
    assert_eq!(edit(ALICE, "an order of 3 pizzas"), 201);
    // Only the author edits: another customer's "edit" changes nothing.
    assert_eq!(edit(BOB, "an order of 9 pizzas"), 201);
    let m = message(&s, &id);
    assert_eq!(m["message"], "an order of 3 pizzas");
    assert!(m["edited_at"].is_string());
    assert_eq!(m["edits"][0]["message"], "an order of 2 pizzas");
    assert_eq!(m["edits"].as_array().unwrap().len(), 1);
    let search = |term: &str| {
        s.get(&format!("/api/v1/inbox/all?search={term}")).json()["pagination"]["total"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(search("of%203"), 1);
    assert_eq!(search("of%202"), 0);
    // Deliveries keep their order: had the refused edit fired, its event
    // would come before the next one's.
    assert_eq!(edit(ALICE, "an order of 4 pizzas"), 201);
    let got = events(&rx, 2);
    assert_eq!(got[0]["event"], "message.edited");
    assert_eq!(got[0]["data"]["id"], id.as_str());
    assert_eq!(got[0]["data"]["message"], "an order of 3 pizzas");
    assert_eq!(got[0]["data"]["previousMessage"], "an order of 2 pizzas");
    assert_eq!(got[1]["data"]["previousMessage"], "an order of 3 pizzas");
    assert_eq!(message(&s, &id)["edits"].as_array().unwrap().len(), 2);
}

#[test]
fn a_deletion_erases_text_and_file_but_keeps_the_row() {
    let s = TestServer::start();
    let rx = WebhookReceiver::start();
    subscribe(&s, &rx, &["message.deleted"]);
    let photo = base64::engine::general_purpose::STANDARD.encode(b"\xff\xd8\xff\xe0 a photo");
    let r = s.post(
        "/api/v1/simulator/messages",
        &json!({ "from": ALICE, "id": "D1", "text": "my address is 1 Main St",
                 "media_type": "image", "media_base64": photo, "mime": "image/jpeg" }),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let id = s.newest_id();
    let before = message(&s, &id);
    let url = before["media_url"].as_str().unwrap().to_string();
    assert_eq!(s.get(&url).status, 200);
    let r = s.post(
        "/api/v1/simulator/revokes",
        &json!({ "from": ALICE, "target_wa_id": "D1" }),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let m = message(&s, &id);
    assert_eq!(m["message"], "[Deleted]");
    assert!(m["deleted_at"].is_string());
    assert_eq!(m["media_url"], Value::Null);
    assert_eq!(m["created_at"], before["created_at"]);
    assert_eq!(m["reply_status"], "unread");
    assert_eq!(s.get(&url).status, 404, "the file is gone");
    let found = s.get("/api/v1/inbox/all?search=Main%20St").json();
    assert_eq!(found["pagination"]["total"], 0);
    let got = events(&rx, 1);
    assert_eq!(got[0]["event"], "message.deleted");
    assert_eq!(got[0]["data"]["id"], id.as_str());
    assert_eq!(got[0]["data"]["waId"], "D1");
}

#[test]
fn changes_aimed_at_messages_never_stored_are_ignored() {
    let s = TestServer::start();
    let rx = WebhookReceiver::start();
    subscribe(
        &s,
        &rx,
        &[
            "message.reaction",
            "message.edited",
            "message.deleted",
            "message.received",
        ],
    );
    inject(&s, ALICE, "K1", "kept");
    for (route, extra) in [
        ("reactions", json!({ "emoji": "👍" })),
        ("edits", json!({ "text": "changed" })),
        ("revokes", json!({})),
    ] {
        let mut body = json!({ "from": ALICE, "target_wa_id": "NEVER-STORED" });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = s.post(&format!("/api/v1/simulator/{route}"), &body);
        assert_eq!(r.status, 201, "{route}: {}", r.text);
        // The same id in another chat is not this chat's message.
        body["from"] = json!(BOB);
        body["target_wa_id"] = json!("K1");
        assert_eq!(
            s.post(&format!("/api/v1/simulator/{route}"), &body).status,
            201
        );
    }
    let m = message(&s, &s.newest_id());
    assert_eq!(m["message"], "kept");
    assert_eq!(m["reactions"], json!([]));
    assert_eq!(
        (m["edited_at"].clone(), m["deleted_at"].clone()),
        (Value::Null, Value::Null)
    );
    // Only the messages themselves were announced (deliveries keep their
    // order, so an event of the ignored changes would come before the second).
    inject(&s, ALICE, "K2", "next");
    let got = events(&rx, 2);
    assert!(
        got.iter().all(|e| e["event"] == "message.received"),
        "{got:?}"
    );
}

#[test]
fn bad_simulator_updates_are_refused() {
    let s = TestServer::start();
    for (route, body) in [
        ("reactions", json!({ "from": ALICE, "target_wa_id": "X" })),
        (
            "reactions",
            json!({ "from": ALICE, "target_wa_id": "X", "emoji": 5 }),
        ),
        (
            "reactions",
            json!({ "from": ALICE, "target_wa_id": "X", "emoji": "👍".repeat(9) }),
        ),
        ("reactions", json!({ "target_wa_id": "X", "emoji": "👍" })),
        (
            "edits",
            json!({ "from": ALICE, "target_wa_id": "X", "text": "" }),
        ),
        ("edits", json!({ "from": ALICE, "text": "y" })),
        (
            "revokes",
            json!({ "from": "not a number", "target_wa_id": "X" }),
        ),
        ("receipts", json!({ "wa_id": "X", "status": "sent" })),
        ("receipts", json!({ "status": "read" })),
    ] {
        let r = s.post(&format!("/api/v1/simulator/{route}"), &body);
        assert_eq!(r.status, 400, "{route} {body}: {}", r.text);
    }
}

/// Replies to `id`; the reply's public and WhatsApp ids.
fn reply(s: &TestServer, id: &str, text: &str) -> (String, String) {
    let r = s.post(
        &format!("/api/v1/messages/{id}/reply"),
        &json!({ "message": text }),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let j = r.json();
    (
        j["replyId"].as_str().unwrap().to_string(),
        j["waId"].as_str().unwrap().to_string(),
    )
}

#[test]
fn receipts_move_our_replies_forward_and_fire_message_status() {
    let s = TestServer::start();
    let rx = WebhookReceiver::start();
    subscribe(&s, &rx, &["message.status"]);
    let id = inject(&s, ALICE, "R1", "is it shipped?");
    let (reply_id, wa_id) = reply(&s, &id, "yes");
    let receipt = |status: &str| {
        let r = s.post(
            "/api/v1/simulator/receipts",
            &json!({ "wa_id": wa_id, "status": status }),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        message(&s, &reply_id)["delivery_status"].clone()
    };
    assert_eq!(receipt("delivered"), "delivered");
    // A voice note listened to counts as read.
    assert_eq!(receipt("played"), "read");
    // Never backwards, and no event for a receipt that changes nothing.
    assert_eq!(receipt("delivered"), "read");
    assert_eq!(receipt("read"), "read");
    // Another reply's receipt: deliveries keep their order, so an event of
    // the receipts that changed nothing would come before it.
    let id2 = inject(&s, ALICE, "R2", "and the other one?");
    let (reply2, wa2) = reply(&s, &id2, "tomorrow");
    let r = s.post(
        "/api/v1/simulator/receipts",
        &json!({ "wa_id": wa2, "status": "delivered" }),
    );
    assert_eq!(r.status, 201);
    let got = events(&rx, 3);
    let statuses: Vec<(&str, &str)> = got
        .iter()
        .map(|e| {
            assert_eq!(e["event"], "message.status");
            assert_eq!(e["data"]["phone"], ALICE);
            (
                e["data"]["id"].as_str().unwrap(),
                e["data"]["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (reply_id.as_str(), "delivered"),
            (reply_id.as_str(), "read"),
            (reply2.as_str(), "delivered")
        ]
    );
    assert_eq!(got[0]["data"]["waId"], wa_id.as_str());
}

#[test]
fn a_failed_send_fires_message_status_failed() {
    let s = TestServer::start();
    let rx = WebhookReceiver::start();
    subscribe(&s, &rx, &["message.status"]);
    let id = inject(&s, ALICE, "F1", "hello?");
    s.post("/api/v1/simulator/fail-sends", &json!({ "fail": true }));
    let r = s.post(
        &format!("/api/v1/messages/{id}/reply"),
        &json!({ "message": "hi" }),
    );
    assert_eq!(r.status, 500);
    let got = events(&rx, 1);
    assert_eq!(got[0]["data"]["status"], "failed");
}

#[test]
fn read_and_replied_messages_are_marked_read_once_per_chat() {
    let s = TestServer::start();
    let a1 = inject(&s, ALICE, "A1", "one");
    let a2 = inject(&s, ALICE, "A2", "two");
    let b1 = inject(&s, BOB, "B1", "three");
    let b2 = inject(&s, BOB, "B2", "four");
    let r = s.patch(
        "/api/v1/messages/batch/status",
        &json!({ "ids": [a1, a2, b1], "status": "read" }),
    );
    assert_eq!(r.status, 200);
    let reads = sent_of_kind(&s, "read");
    let mut got: Vec<(String, Vec<String>)> = reads
        .iter()
        .map(|r| {
            (
                r["to"].as_str().unwrap().to_string(),
                serde_json::from_value(r["wa_ids"].clone()).unwrap(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (ALICE.to_string(), vec!["A1".to_string(), "A2".to_string()]),
            (BOB.to_string(), vec!["B1".to_string()])
        ]
    );
    // Once: marking again, or replying, sends no second receipt for them.
    s.patch(
        &format!("/api/v1/messages/{a1}/status"),
        &json!({ "status": "read" }),
    );
    reply(&s, &a2, "thanks");
    assert_eq!(sent_of_kind(&s, "read").len(), 2);
    // Ignored sends nothing; replied does.
    s.patch(
        &format!("/api/v1/messages/{b2}/status"),
        &json!({ "status": "ignored" }),
    );
    assert_eq!(sent_of_kind(&s, "read").len(), 2);
    let b3 = inject(&s, BOB, "B3", "five");
    reply(&s, &b3, "ok");
    let reads = sent_of_kind(&s, "read");
    assert_eq!(reads.len(), 3);
    assert_eq!(reads[2]["wa_ids"], json!(["B3"]));
}

#[test]
fn read_receipts_can_be_turned_off() {
    let s = TestServer::start_with(|c| c.send_read_receipts = false);
    let a1 = inject(&s, ALICE, "A1", "one");
    s.patch(
        &format!("/api/v1/messages/{a1}/status"),
        &json!({ "status": "read" }),
    );
    reply(&s, &a1, "hi");
    assert!(sent_of_kind(&s, "read").is_empty());
    assert_eq!(sent_of_kind(&s, "text").len(), 1);
}

#[test]
fn receipts_owed_while_disconnected_go_with_the_next_change() {
    let s = TestServer::start();
    let a1 = inject(&s, ALICE, "A1", "one");
    let a2 = inject(&s, ALICE, "A2", "two");
    s.post(
        "/api/v1/simulator/connection",
        &json!({ "state": "disconnected" }),
    );
    let r = s.patch(
        &format!("/api/v1/messages/{a1}/status"),
        &json!({ "status": "read" }),
    );
    assert_eq!(r.status, 200);
    s.post(
        "/api/v1/simulator/connection",
        &json!({ "state": "connected" }),
    );
    assert!(sent_of_kind(&s, "read").is_empty());
    s.patch(
        &format!("/api/v1/messages/{a2}/status"),
        &json!({ "status": "read" }),
    );
    let reads = sent_of_kind(&s, "read");
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0]["wa_ids"], json!(["A1", "A2"]));
}

#[test]
fn we_react_to_any_message_and_can_take_it_back() {
    let s = TestServer::start();
    let id = inject(&s, ALICE, "T1", "thanks a lot");
    let (reply_id, reply_wa) = reply(&s, &id, "you're welcome");
    for (target, wa) in [(&id, "T1"), (&reply_id, reply_wa.as_str())] {
        let r = s.post(
            &format!("/api/v1/messages/{target}/react"),
            &json!({ "emoji": "🙏" }),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json(), json!({ "success": true }));
        let last = sent_of_kind(&s, "reaction").pop().unwrap();
        assert_eq!(
            (&last["to"], &last["target_wa_id"], &last["emoji"]),
            (&json!(ALICE), &json!(wa), &json!("🙏"))
        );
        assert!(last["wa_id"].is_string());
    }
    let m = message(&s, &id);
    assert_eq!(
        m["reactions"],
        json!([{ "sender_jid": "me", "emoji": "🙏", "created_at": m["reactions"][0]["created_at"] }])
    );
    let r = s.post(
        &format!("/api/v1/messages/{id}/react"),
        &json!({ "emoji": "" }),
    );
    assert_eq!(r.status, 200);
    assert_eq!(message(&s, &id)["reactions"], json!([]));
    assert_eq!(sent_of_kind(&s, "reaction").pop().unwrap()["emoji"], "");
}

#[test]
fn bad_reactions_are_refused_and_send_nothing() {
    let s = TestServer::start();
    let id = inject(&s, ALICE, "T1", "hi");
    for (body, status) in [
        (json!({}), 400),
        (json!({ "emoji": null }), 400),
        (json!({ "emoji": 1 }), 400),
        (json!({ "emoji": ["👍"] }), 400),
        (json!({ "emoji": "👍".repeat(9) }), 400),
    ] {
        let r = s.post(&format!("/api/v1/messages/{id}/react"), &body);
        assert_eq!(r.status, status, "{body}: {}", r.text);
        assert!(r.json()["error"].is_string());
    }
    let r = s.post("/api/v1/messages/nope/react", &json!({ "emoji": "👍" }));
    assert_eq!(r.status, 404);
    s.post(
        "/api/v1/simulator/connection",
        &json!({ "state": "disconnected" }),
    );
    let r = s.post(
        &format!("/api/v1/messages/{id}/react"),
        &json!({ "emoji": "👍" }),
    );
    assert_eq!(r.status, 503);
    s.post(
        "/api/v1/simulator/connection",
        &json!({ "state": "connected" }),
    );
    assert!(sent_of_kind(&s, "reaction").is_empty());
    assert_eq!(message(&s, &id)["reactions"], json!([]));
}

#[test]
fn typing_shows_only_in_chats_that_wrote_to_us() {
    let s = TestServer::start();
    inject(&s, ALICE, "T1", "hi");
    for (phone, typing) in [("15551234567", true), (ALICE, false)] {
        let r = s.post(
            &format!("/api/v1/conversations/{phone}/typing"),
            &json!({ "typing": typing }),
        );
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let records = sent_of_kind(&s, "typing");
    assert_eq!(
        records,
        [
            json!({ "kind": "typing", "to": ALICE, "typing": true }),
            json!({ "kind": "typing", "to": ALICE, "typing": false })
        ]
    );
    let r = s.post(
        "/api/v1/conversations/15550001111/typing",
        &json!({ "typing": true }),
    );
    assert_eq!(r.status, 404, "{}", r.text);
    for body in [json!({}), json!({ "typing": "yes" })] {
        let r = s.post("/api/v1/conversations/15551234567/typing", &body);
        assert_eq!(r.status, 400, "{}", r.text);
    }
    let r = s.post(
        "/api/v1/conversations/not%20a%20chat/typing",
        &json!({ "typing": true }),
    );
    assert_eq!(r.status, 400);
    assert_eq!(sent_of_kind(&s, "typing").len(), 2);
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn a_reply_with_a_file_is_stored_sent_and_announced() {
    let s = TestServer::start();
    let rx = WebhookReceiver::start();
    subscribe(&s, &rx, &["message.sent"]);
    let id = inject(&s, ALICE, "Q1", "can I have the invoice and a photo?");
    let photo = b"\xff\xd8\xff\xe0 not really a jpeg".to_vec();
    let r = s.post(
        &format!("/api/v1/messages/{id}/reply"),
        &json!({ "message": "here is the photo", "media_base64": b64(&photo), "mime": "image/jpeg" }),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let reply_id = r.json()["replyId"].as_str().unwrap().to_string();
    let row = message(&s, &reply_id);
    assert_eq!(row["media_type"], "image");
    assert_eq!(row["media_mime"], "image/jpeg");
    assert_eq!(row["media_size"], photo.len());
    assert_eq!(row["message"], "here is the photo");
    let url = row["media_url"].as_str().unwrap();
    let file = s.get(url);
    assert_eq!(file.status, 200);
    assert_eq!(file.bytes, photo);
    let sha = whatsapp_api::auth::hex(&whatsapp_api::auth::sha256(&photo));
    let media = sent_of_kind(&s, "media");
    assert_eq!(media.len(), 1);
    assert_eq!(media[0]["media_type"], "image");
    assert_eq!(media[0]["text"], "here is the photo");
    assert_eq!(media[0]["quoted_wa_id"], "Q1");
    assert_eq!(media[0]["size"], photo.len());
    assert_eq!(media[0]["sha256"], sha.as_str());
    let event = &events(&rx, 1)[0];
    assert_eq!(event["data"]["mediaType"], "image");
    assert_eq!(event["data"]["mediaUrl"], url);
    assert_eq!(event["data"]["mediaSize"], photo.len());
    // A type we cannot name goes as a document with its name; no caption needed.
    let r = s.post(
        &format!("/api/v1/messages/{id}/reply"),
        &json!({ "media_base64": b64(b"%PDF-1.4"), "mime": "application/x-invoice", "filename": "invoice-7.pdf" }),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let doc = sent_of_kind(&s, "media").pop().unwrap();
    assert_eq!(doc["media_type"], "document");
    assert_eq!(doc["filename"], "invoice-7.pdf");
    assert_eq!(doc["text"], "");
    let r = s.post(
        &format!("/api/v1/messages/{id}/reply"),
        &json!({ "media_base64": b64(b"OggS voice"), "mime": "audio/ogg; codecs=opus" }),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        sent_of_kind(&s, "media").pop().unwrap()["media_type"],
        "voice"
    );
}

#[test]
fn a_file_reply_is_idempotent_with_its_key() {
    let s = TestServer::start();
    let id = inject(&s, ALICE, "Q1", "photo please");
    let body = serde_json::to_vec(&json!({ "media_base64": b64(b"\x89PNG"), "mime": "image/png" }))
        .unwrap();
    let path = format!("/api/v1/messages/{id}/reply");
    let headers = [
        ("X-API-Key", KEY),
        ("Content-Type", "application/json"),
        ("Idempotency-Key", "photo-1"),
    ];
    let first = s.request("POST", &path, &headers, Some(&body));
    let second = s.request("POST", &path, &headers, Some(&body));
    assert_eq!((first.status, second.status), (200, 200), "{}", second.text);
    assert_eq!(first.json()["replyId"], second.json()["replyId"]);
    assert_eq!(sent_of_kind(&s, "media").len(), 1);
}

#[test]
fn a_retried_document_reply_keeps_its_file_name() {
    let s = TestServer::start();
    let id = inject(&s, ALICE, "Q1", "the invoice please");
    let path = format!("/api/v1/messages/{id}/reply");
    let json_body = serde_json::to_vec(&json!({
        "media_base64": b64(b"%PDF-1.4 invoice"),
        "mime": "application/pdf",
        "filename": "invoice-7.pdf",
    }))
    .unwrap();
    let (multipart_type, multipart_body) = multipart(
        Some("your receipt"),
        Some(("receipt 7.pdf", "application/pdf", b"%PDF-1.4 receipt")),
    );
    for (key, content_type, body, name) in [
        ("doc-json", "application/json", json_body, "invoice-7.pdf"),
        (
            "doc-form",
            multipart_type.as_str(),
            multipart_body,
            "receipt 7.pdf",
        ),
    ] {
        let headers = [
            ("X-API-Key", KEY),
            ("Content-Type", content_type),
            ("Idempotency-Key", key),
        ];
        // The first try fails at WhatsApp; the row stays, `failed`.
        s.post("/api/v1/simulator/fail-sends", &json!({ "fail": true }));
        let first = s.request("POST", &path, &headers, Some(&body));
        assert_eq!(first.status, 500, "{}", first.text);
        s.post("/api/v1/simulator/fail-sends", &json!({ "fail": false }));
        let retry = s.request("POST", &path, &headers, Some(&body));
        assert_eq!(retry.status, 200, "{}", retry.text);
        // The same row, its file sent under its own name.
        let sent = sent_of_kind(&s, "media").pop().unwrap();
        assert_eq!(sent["media_type"], "document");
        assert_eq!(sent["filename"], name, "{key}");
        let again = s.request("POST", &path, &headers, Some(&body));
        assert_eq!(again.json()["replyId"], retry.json()["replyId"]);
    }
    assert_eq!(sent_of_kind(&s, "media").len(), 2);
    // Each row keeps one file; the retries' copies are gone.
    let files = std::fs::read_dir(s.dir.0.join("media")).unwrap().count();
    assert_eq!(files, 2);
}

#[test]
fn bad_file_replies_are_refused_and_send_nothing() {
    let s = TestServer::start_with(|c| c.media_max_bytes = 16);
    let id = inject(&s, ALICE, "Q1", "photo please");
    let path = format!("/api/v1/messages/{id}/reply");
    for (body, status) in [
        (json!({ "media_base64": "", "mime": "image/png" }), 400),
        (json!({ "media_base64": b64(b"abc") }), 400),
        (
            json!({ "media_base64": "not base64!", "mime": "image/png" }),
            400,
        ),
        (
            json!({ "media_base64": b64(b"abc"), "mime": "nonsense" }),
            400,
        ),
        (
            json!({ "media_base64": b64(b"abc"), "mime": "image/png", "filename": "../x.png" }),
            400,
        ),
        (json!({ "mime": "image/png" }), 400),
        (
            json!({ "media_base64": b64(&[7; 17]), "mime": "image/png" }),
            413,
        ),
    ] {
        let r = s.post(&path, &body);
        assert_eq!(r.status, status, "{body}: {}", r.text);
        assert!(r.json()["error"].is_string());
    }
    s.post(
        "/api/v1/simulator/connection",
        &json!({ "state": "disconnected" }),
    );
    let r = s.post(
        &path,
        &json!({ "media_base64": b64(b"abc"), "mime": "image/png" }),
    );
    assert_eq!(r.status, 503);
    s.post(
        "/api/v1/simulator/connection",
        &json!({ "state": "connected" }),
    );
    assert!(sent_of_kind(&s, "media").is_empty());
    let chat = s
        .get(&format!("/api/v1/conversations/{ALICE}/messages"))
        .json();
    assert_eq!(
        chat["messages"].as_array().unwrap().len(),
        1,
        "nothing stored"
    );
    let files = std::fs::read_dir(s.dir.0.join("media"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(files, 0, "no file left behind");
}

/// A multipart body with a `message` part and a `file` part.
pub fn multipart(message: Option<&str>, file: Option<(&str, &str, &[u8])>) -> (String, Vec<u8>) {
    let boundary = "----wa-test-boundary";
    let mut body = Vec::new();
    if let Some(m) = message {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\n{m}\r\n"
            )
            .as_bytes(),
        );
    }
    if let Some((name, mime, data)) = file {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
                 Content-Type: {mime}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[test]
fn a_file_reply_as_multipart_form_data() {
    let s = TestServer::start();
    let id = inject(&s, ALICE, "Q1", "the menu please");
    let pdf = b"%PDF-1.4\r\n--not a boundary\r\n".to_vec();
    let (content_type, body) = multipart(
        Some("our menu"),
        Some(("menu.pdf", "application/pdf", &pdf)),
    );
    let path = format!("/api/v1/messages/{id}/reply");
    let r = s.request(
        "POST",
        &path,
        &[("X-API-Key", KEY), ("Content-Type", &content_type)],
        Some(&body),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let sent = sent_of_kind(&s, "media").pop().unwrap();
    assert_eq!(
        (
            &sent["media_type"],
            &sent["filename"],
            &sent["text"],
            &sent["size"]
        ),
        (
            &json!("document"),
            &json!("menu.pdf"),
            &json!("our menu"),
            &json!(pdf.len())
        )
    );
    // Neither a file nor a message: refused, nothing sent.
    let (content_type, body) = multipart(None, None);
    let r = s.request(
        "POST",
        &path,
        &[("X-API-Key", KEY), ("Content-Type", &content_type)],
        Some(&body),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let r = s.request(
        "POST",
        &path,
        &[
            ("X-API-Key", KEY),
            ("Content-Type", "multipart/form-data; boundary=x"),
        ],
        Some(b"garbage"),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(sent_of_kind(&s, "media").len(), 1);
}
