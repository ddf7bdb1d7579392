//! `POST /api/v1/simulator/raw`: WhatsApp messages given as their protobuf
//! (built with whatsapp-rust's own generated types), translated by the real
//! backend's code and stored end to end — every kind a customer can send,
//! wrappers, placeholders, timestamps, our own replies from the phone, LID
//! chats, redelivery.

use crate::support::*;
use base64::Engine as _;
use serde_json::{Value, json};
use whatsapp_rust::buffa::{Message as _, MessageField};
use whatsapp_rust::waproto::whatsapp as wa;

const ALICE: &str = "15551234567@s.whatsapp.net";
const ALICE_LID: &str = "123456789012345@lid";
const GROUP: &str = "120363000000000001@g.us";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Posts a raw message; the answer's JSON (201 expected).
fn raw(s: &TestServer, message: &wa::Message, extra: Value) -> Value {
    let mut body = json!({ "from": ALICE, "proto_base64": b64(&message.encode_to_vec()) });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = s.post("/api/v1/simulator/raw", &body);
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()
}

/// The stored message with this WhatsApp id (any direction).
fn by_wa_id(s: &TestServer, wa_id: &str) -> Value {
    let chats = s.get("/api/v1/conversations?limit=100").json();
    for chat in chats["conversations"].as_array().unwrap() {
        let phone = chat["phone"].as_str().unwrap();
        let page = s
            .get(&format!("/api/v1/conversations/{phone}/messages?limit=100"))
            .json();
        for m in page["messages"].as_array().unwrap() {
            if m["wa_id"] == wa_id {
                return m.clone();
            }
        }
    }
    panic!("no message {wa_id}");
}

fn text(t: &str) -> wa::Message {
    wa::Message {
        conversation: Some(t.into()),
        ..Default::default()
    }
}

fn image(caption: &str, mime: &str) -> wa::Message {
    wa::Message {
        image_message: MessageField::some(wa::message::ImageMessage {
            mimetype: Some(mime.into()),
            caption: Some(caption.into()),
            file_length: Some(4),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn total(s: &TestServer) -> i64 {
    s.get("/api/v1/inbox/all").json()["pagination"]["total"]
        .as_i64()
        .unwrap()
}

#[test]
fn album_parent_and_each_child_with_its_photo() {
    let s = TestServer::start();
    let parent = wa::Message {
        album_message: MessageField::some(wa::message::AlbumMessage {
            expected_image_count: Some(2),
            ..Default::default()
        }),
        ..Default::default()
    };
    raw(&s, &parent, json!({ "id": "ALBUM" }));
    let key = wa::MessageKey {
        remote_jid: Some(ALICE.into()),
        id: Some("ALBUM".into()),
        ..Default::default()
    };
    for (i, bytes) in [b"img1".as_slice(), b"img2"].into_iter().enumerate() {
        let child = whatsapp_rust::proto_helpers::wrap_as_album_child(
            image(&format!("photo {i}"), "image/jpeg"),
            key.clone(),
        );
        raw(
            &s,
            &child,
            json!({ "id": format!("CHILD{i}"), "media_base64": b64(bytes) }),
        );
    }
    assert_eq!(by_wa_id(&s, "ALBUM")["message"], "[Album: 2 photos]");
    for (i, bytes) in [b"img1".as_slice(), b"img2"].into_iter().enumerate() {
        let m = by_wa_id(&s, &format!("CHILD{i}"));
        assert_eq!(m["message"], format!("photo {i}"));
        assert_eq!(m["media_type"], "image");
        let url = m["media_url"].as_str().expect("the photo is stored");
        assert!(url.ends_with(".jpg"), "{url}");
        assert_eq!(s.get(url).text.as_bytes(), bytes);
    }
    assert_eq!(total(&s), 3);
}

#[test]
fn round_video_note_is_stored_with_its_file() {
    let s = TestServer::start();
    let ptv = wa::Message {
        ptv_message: MessageField::some(wa::message::VideoMessage {
            mimetype: Some("video/mp4".into()),
            file_length: Some(5),
            ..Default::default()
        }),
        ..Default::default()
    };
    raw(
        &s,
        &ptv,
        json!({ "id": "PTV", "media_base64": b64(b"video") }),
    );
    let m = by_wa_id(&s, "PTV");
    assert_eq!(
        (
            &m["message"],
            &m["media_type"],
            &m["media_mime"],
            &m["media_size"]
        ),
        (
            &json!("[Video note]"),
            &json!("video_note"),
            &json!("video/mp4"),
            &json!(5)
        )
    );
    assert_eq!(s.get(m["media_url"].as_str().unwrap()).text, "video");
    // Announced but never fetched: the message stays, with the reason.
    raw(&s, &ptv, json!({ "id": "PTV2" }));
    let m = by_wa_id(&s, "PTV2");
    assert_eq!(m["media_url"], Value::Null);
    assert!(
        m["media_error"]
            .as_str()
            .unwrap()
            .contains("download failed")
    );
}

#[test]
fn what_a_customer_taps_polls_and_orders_become_text() {
    let s = TestServer::start();
    let cases = [
        (
            wa::Message {
                buttons_response_message: MessageField::some(wa::message::ButtonsResponseMessage {
                    selected_button_id: Some("yes".into()),
                    response: Some(
                        wa::message::buttons_response_message::Response::SelectedDisplayText(
                            "Yes, deliver it".into(),
                        ),
                    ),
                    ..Default::default()
                }),
                ..Default::default()
            },
            "Yes, deliver it",
        ),
        (
            wa::Message {
                list_response_message: MessageField::some(wa::message::ListResponseMessage {
                    title: Some("Medium size".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            "Medium size",
        ),
        (
            wa::Message {
                template_button_reply_message: MessageField::some(
                    wa::message::TemplateButtonReplyMessage {
                        selected_display_text: Some("Call me back".into()),
                        ..Default::default()
                    },
                ),
                ..Default::default()
            },
            "Call me back",
        ),
        (
            wa::Message {
                interactive_response_message: MessageField::some(
                    wa::message::InteractiveResponseMessage {
                        body: MessageField::some(wa::message::interactive_response_message::Body {
                            text: Some("Friday 10:00".into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                ),
                ..Default::default()
            },
            "Friday 10:00",
        ),
        (
            wa::Message {
                poll_creation_message_v3: MessageField::some(wa::message::PollCreationMessage {
                    name: Some("Which colour?".into()),
                    options: vec![
                        wa::message::poll_creation_message::Option {
                            option_name: Some("Red".into()),
                            ..Default::default()
                        },
                        wa::message::poll_creation_message::Option {
                            option_name: Some("Blue".into()),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }),
                ..Default::default()
            },
            "[Poll: Which colour?] Red / Blue",
        ),
        (
            wa::Message {
                poll_update_message: MessageField::some(wa::message::PollUpdateMessage::default()),
                ..Default::default()
            },
            "[Poll vote]",
        ),
        (
            wa::Message {
                order_message: MessageField::some(wa::message::OrderMessage {
                    order_title: Some("Cart".into()),
                    item_count: Some(2),
                    ..Default::default()
                }),
                ..Default::default()
            },
            "[Order: Cart, 2 items]",
        ),
    ];
    for (i, (message, expected)) in cases.iter().enumerate() {
        raw(&s, message, json!({ "id": format!("K{i}") }));
        assert_eq!(by_wa_id(&s, &format!("K{i}"))["message"], *expected);
    }
    // Searchable like any text.
    let found = s.get("/api/v1/inbox/all?search=deliver%20it").json();
    assert_eq!(found["pagination"]["total"], 1);
}

#[test]
fn unknown_kinds_are_kept_never_dropped() {
    let s = TestServer::start();
    let payment = wa::Message {
        request_payment_message: MessageField::some(wa::message::RequestPaymentMessage::default()),
        ..Default::default()
    };
    let answer = raw(&s, &payment, json!({ "id": "PAY" }));
    assert_eq!(answer["result"], "message");
    assert_eq!(
        by_wa_id(&s, "PAY")["message"],
        "[Unsupported message: requestPaymentMessage]"
    );
    // A field number newer than the schema (here 4000): decoded as an empty
    // message, still stored.
    let r = s.post(
        "/api/v1/simulator/raw",
        &json!({ "from": ALICE, "id": "NEW", "proto_base64": b64(&[0x82, 0xfa, 0x01, 0x01, 0x00]) }),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        by_wa_id(&s, "NEW")["message"],
        "[Unsupported message: unknown]"
    );
    assert_eq!(total(&s), 2);
}

#[test]
fn view_once_placeholder_is_replaced_in_place_by_the_content() {
    let s = TestServer::start();
    let receiver = WebhookReceiver::start();
    s.post(
        "/api/v1/webhooks",
        &json!({ "url": receiver.url, "events": ["message.received"] }),
    );
    // The phone keeps view-once content from linked devices.
    let hidden = wa::Message {
        placeholder_message: MessageField::some(wa::message::PlaceholderMessage::default()),
        ..Default::default()
    };
    raw(&s, &hidden, json!({ "id": "VO" }));
    let first = by_wa_id(&s, "VO");
    assert_eq!(
        first["message"],
        "[View-once message: open it on the phone]"
    );
    // Then the content arrives under the same id: same row, same public id.
    let content = wa::Message {
        view_once_message_v2: MessageField::some(wa::message::FutureProofMessage {
            message: MessageField::some(image("just once", "image/png")),
        }),
        ..Default::default()
    };
    raw(
        &s,
        &content,
        json!({ "id": "VO", "media_base64": b64(b"\x89PNG") }),
    );
    let filled = by_wa_id(&s, "VO");
    assert_eq!(filled["id"], first["id"]);
    assert_eq!(filled["message"], "just once");
    assert!(filled["media_url"].as_str().unwrap().ends_with(".png"));
    assert_eq!(total(&s), 1);
    // Webhooks learnt both: the placeholder, then the content, same id.
    let got = receiver.wait_for(2, 10);
    let data: Vec<Value> = got.iter().map(|r| r.json()["data"].clone()).collect();
    assert_eq!(data[0]["id"], first["id"]);
    assert_eq!(data[1]["id"], first["id"]);
    assert_eq!(data[1]["message"], "just once");
    assert!(data[1]["mediaUrl"].as_str().is_some());
}

#[test]
fn a_backlog_keeps_the_times_whatsapp_gave_it() {
    let s = TestServer::start();
    let receiver = WebhookReceiver::start();
    s.post(
        "/api/v1/webhooks",
        &json!({ "url": receiver.url, "events": ["message.received"] }),
    );
    // Delivered after downtime, newest first.
    raw(
        &s,
        &text("second"),
        json!({ "id": "B2", "timestamp": 1_700_000_600 }),
    );
    raw(
        &s,
        &text("first"),
        json!({ "id": "B1", "timestamp": 1_700_000_000 }),
    );
    let page = s.get("/api/v1/inbox/all").json();
    let messages = page["messages"].as_array().unwrap();
    // Newest first by the time it was sent, not by arrival.
    assert_eq!(messages[0]["message"], "second");
    assert_eq!(messages[0]["created_at"], "2023-11-14 22:23:20");
    assert_eq!(messages[1]["created_at"], "2023-11-14 22:13:20");
    assert_ne!(messages[1]["received_at"], messages[1]["created_at"]);
    let got = receiver.wait_for(2, 10);
    let first = got
        .iter()
        .map(|r| r.json()["data"].clone())
        .find(|d| d["waId"] == "B1")
        .unwrap();
    assert_eq!(first["timestamp"], "2023-11-14T22:13:20.000Z");
    // The date filter sees the real day.
    let day = s
        .get("/api/v1/inbox/all?startDate=2023-11-14&endDate=2023-11-14")
        .json();
    assert_eq!(day["pagination"]["total"], 2);
}

#[test]
fn a_reply_typed_on_the_phone_is_an_outgoing_message() {
    let s = TestServer::start();
    let receiver = WebhookReceiver::start();
    s.post(
        "/api/v1/webhooks",
        &json!({ "url": receiver.url, "events": ["message.sent"] }),
    );
    raw(
        &s,
        &text("is it open today?"),
        json!({ "id": "Q", "timestamp": 1_700_000_000 }),
    );
    let question = by_wa_id(&s, "Q");
    assert_eq!(question["reply_status"], "unread");
    raw(
        &s,
        &text("yes, until 6"),
        json!({ "id": "A", "from_me": true, "timestamp": 1_700_000_060 }),
    );
    let answer = by_wa_id(&s, "A");
    assert_eq!(
        (
            &answer["direction"],
            &answer["source"],
            &answer["reply_status"]
        ),
        (&json!("outgoing"), &json!("phone"), &json!("sent"))
    );
    assert_eq!(answer["phone"], ALICE);
    // Nobody answers twice: the question is replied.
    assert_eq!(by_wa_id(&s, "Q")["reply_status"], "replied");
    assert_eq!(
        s.get("/api/v1/inbox/unread").json()["pagination"]["total"],
        0
    );
    let sent = receiver.wait_for(1, 10)[0].json();
    assert_eq!(sent["event"], "message.sent");
    assert_eq!(sent["data"]["source"], "phone");
    assert_eq!(sent["data"]["message"], "yes, until 6");
    // Not an inbox item.
    assert_eq!(total(&s), 1);
}

#[test]
fn lid_then_phone_number_is_one_chat() {
    let s = TestServer::start();
    let from_lid = |t: &str, id: &str, alt: Option<&str>| {
        let mut extra = json!({ "id": id, "from": ALICE_LID });
        if let Some(alt) = alt {
            extra["from_alt"] = json!(alt);
        }
        raw(&s, &text(t), extra)
    };
    from_lid("hi, it's me", "L1", None);
    assert_eq!(by_wa_id(&s, "L1")["phone"], ALICE_LID);
    // WhatsApp names the number alongside the LID: the chats merge.
    from_lid("my order?", "L2", Some(ALICE));
    // And a redelivery of the first, now with the pair, is the same message.
    from_lid("hi, it's me", "L1", Some(ALICE));
    let chats = s.get("/api/v1/conversations").json();
    assert_eq!(chats["pagination"]["total"], 1, "{chats}");
    assert_eq!(chats["conversations"][0]["phone"], ALICE);
    assert_eq!(chats["conversations"][0]["unread"], 2, "{chats}");
    let first = by_wa_id(&s, "L1");
    assert_eq!(
        (&first["phone"], &first["sender_jid"], &first["sender_lid"]),
        (&json!(ALICE), &json!(ALICE), &json!(ALICE_LID))
    );
    // Messages by number land there too.
    raw(&s, &text("hello?"), json!({ "id": "P1" }));
    assert_eq!(
        s.get("/api/v1/conversations").json()["pagination"]["total"],
        1
    );
    assert_eq!(total(&s), 3);
    // A reply goes to the phone-number chat.
    let id = first["id"].as_str().unwrap();
    let r = s.post(
        &format!("/api/v1/messages/{id}/reply"),
        &json!({ "message": "yes" }),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(s.sent_texts()[0]["to"], ALICE);
}

#[test]
fn a_redelivery_is_stored_once_and_a_group_keeps_its_member() {
    let s = TestServer::start();
    for _ in 0..3 {
        raw(&s, &text("once"), json!({ "id": "SAME" }));
    }
    assert_eq!(total(&s), 1);
    raw(
        &s,
        &text("hello group"),
        json!({ "id": "G", "group": GROUP, "push_name": "Alice" }),
    );
    let m = by_wa_id(&s, "G");
    assert_eq!(
        (&m["phone"], &m["sender_jid"], &m["push_name"]),
        (&json!(GROUP), &json!(ALICE), &json!("Alice"))
    );
    // The same id from another member of the group is another message.
    raw(
        &s,
        &text("me too"),
        json!({ "id": "G", "group": GROUP, "from": "15557654321@s.whatsapp.net" }),
    );
    assert_eq!(total(&s), 3);
}

/// Reactions, edits (both forms WhatsApp sends: the protocol message, and
/// the same wrapped as an edited message) and deletions, as protobufs the
/// real backend receives, change the message they name and store no row.
#[test]
fn reactions_edits_and_deletions_change_the_message_they_name() {
    let s = TestServer::start();
    raw(&s, &text("an order of 2"), json!({ "id": "T" }));
    let key = wa::MessageKey {
        remote_jid: Some(ALICE.into()),
        id: Some("T".into()),
        ..Default::default()
    };
    let reaction = whatsapp_rust::proto_helpers::build_reaction_message(key.clone(), "❤️", 1);
    let protocol = |kind, edited: &str| wa::Message {
        protocol_message: MessageField::some(wa::message::ProtocolMessage {
            key: MessageField::some(key.clone()),
            r#type: Some(kind),
            edited_message: MessageField::some(text(edited)),
            ..Default::default()
        }),
        ..Default::default()
    };
    use wa::message::protocol_message::Type;
    assert_eq!(raw(&s, &reaction, json!({}))["result"], "update");
    let m = by_wa_id(&s, "T");
    assert_eq!(m["reactions"][0]["emoji"], "❤️");
    assert_eq!(m["reactions"][0]["sender_jid"], ALICE);
    assert_eq!(
        raw(
            &s,
            &protocol(Type::MESSAGE_EDIT, "an order of 3"),
            json!({})
        )["result"],
        "update"
    );
    let wrapped = wa::Message {
        edited_message: MessageField::some(wa::message::FutureProofMessage {
            message: MessageField::some(protocol(Type::MESSAGE_EDIT, "an order of 4")),
        }),
        ..Default::default()
    };
    assert_eq!(raw(&s, &wrapped, json!({}))["result"], "update");
    let m = by_wa_id(&s, "T");
    assert_eq!(m["message"], "an order of 4");
    let id = m["id"].as_str().unwrap();
    let edits = s.get(&format!("/api/v1/messages/{id}")).json()["edits"].clone();
    assert_eq!(edits[0]["message"], "an order of 2");
    assert_eq!(edits[1]["message"], "an order of 3");
    assert_eq!(
        raw(&s, &protocol(Type::REVOKE, ""), json!({}))["result"],
        "update"
    );
    let m = by_wa_id(&s, "T");
    assert_eq!(m["message"], "[Deleted]");
    assert!(m["deleted_at"].is_string());
    assert_eq!(total(&s), 1);
}

#[test]
fn bad_raw_input_is_refused_and_changes_nothing() {
    let s = TestServer::start();
    let good = b64(&text("x").encode_to_vec());
    for (body, error) in [
        (json!({ "proto_base64": good }), "from must be a number"),
        (
            json!({ "from": "nope", "proto_base64": good }),
            "from must be a number",
        ),
        (json!({ "from": ALICE }), "proto_base64 is required"),
        (
            json!({ "from": ALICE, "proto_base64": "%%%" }),
            "not valid base64",
        ),
        (
            json!({ "from": ALICE, "proto_base64": b64(&[0xff, 0xff, 0xff]) }),
            "not a protobuf-encoded whatsapp.Message",
        ),
        (
            json!({ "from": ALICE, "proto_base64": good, "group": ALICE }),
            "group must be a group JID",
        ),
        (
            json!({ "from": ALICE, "proto_base64": good, "timestamp": "yesterday" }),
            "timestamp must be Unix seconds",
        ),
        (
            json!({ "from": ALICE, "proto_base64": good, "from_me": "yes" }),
            "from_me must be true or false",
        ),
        (
            json!({ "from": ALICE, "proto_base64": good, "from_alt": "x" }),
            "from_alt must be a number",
        ),
    ] {
        let r = s.post("/api/v1/simulator/raw", &body);
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        let text = r.json()["error"].as_str().unwrap().to_string();
        assert!(text.contains(error), "{body}: {text}");
    }
    assert_eq!(total(&s), 0);
    // A number is taken as the phone-number JID.
    raw(
        &s,
        &text("by number"),
        json!({ "from": "+1 555 123 4567", "id": "N" }),
    );
    assert_eq!(by_wa_id(&s, "N")["phone"], ALICE);
}

/// A reply to whatever message a test stored last; the answer's JSON.
fn reply(s: &TestServer, id: &str, text: &str, key: Option<&str>) -> (u16, Value) {
    let body = serde_json::to_vec(&json!({ "message": text })).unwrap();
    let mut headers = vec![("X-API-Key", KEY), ("Content-Type", "application/json")];
    if let Some(key) = key {
        headers.push(("Idempotency-Key", key));
    }
    let r = s.request(
        "POST",
        &format!("/api/v1/messages/{id}/reply"),
        &headers,
        Some(&body),
    );
    (r.status, r.json())
}

fn sent(s: &TestServer) -> Vec<Value> {
    s.sent_texts().as_array().unwrap().clone()
}

#[test]
fn a_reply_is_stored_before_it_is_sent_and_settled_by_whatsapps_answer() {
    let s = TestServer::start();
    let receiver = WebhookReceiver::start();
    s.post(
        "/api/v1/webhooks",
        &json!({ "url": receiver.url, "events": ["message.sent", "message.status"] }),
    );
    raw(&s, &text("where is it?"), json!({ "id": "Q" }));
    let question = by_wa_id(&s, "Q");
    let id = question["id"].as_str().unwrap();
    // WhatsApp refuses it: the row is kept, failed, and webhooks learn it.
    s.post("/api/v1/simulator/fail-sends", &json!({ "fail": true }));
    let (status, _) = reply(&s, id, "on its way", Some("k-1"));
    assert_eq!(status, 500);
    let failed = receiver.wait_for(1, 10)[0].json();
    assert_eq!(failed["event"], "message.status");
    assert_eq!(failed["data"]["status"], "failed");
    assert_eq!(failed["data"]["inReplyTo"], json!(id));
    let wa_id = failed["data"]["waId"].as_str().unwrap().to_string();
    let row = by_wa_id(&s, &wa_id);
    assert_eq!(row["delivery_status"], "failed");
    assert_eq!(by_wa_id(&s, "Q")["reply_status"], "unread");
    // The retry with the same key sends the same message again, same id.
    s.post("/api/v1/simulator/fail-sends", &json!({ "fail": false }));
    let (status, answer) = reply(&s, id, "on its way", Some("k-1"));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["waId"], json!(wa_id));
    assert_eq!(answer["replyId"], row["id"]);
    let records = sent(&s);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["wa_id"], json!(wa_id));
    let row = by_wa_id(&s, &wa_id);
    assert_eq!(
        (&row["delivery_status"], &row["source"]),
        (&json!("sent"), &json!("api"))
    );
    assert_eq!(by_wa_id(&s, "Q")["reply_status"], "replied");
    let got = receiver.wait_for(2, 10);
    let accepted = got[1].json();
    assert_eq!(accepted["event"], "message.sent");
    assert_eq!(accepted["data"]["source"], "api");
    assert_eq!(accepted["data"]["waId"], json!(wa_id));
    // One conversation row for the reply, whatever the tries.
    let chat = s
        .get(&format!("/api/v1/conversations/{ALICE}/messages"))
        .json();
    assert_eq!(chat["pagination"]["total"], 2);
}

#[test]
fn a_reply_in_a_disappearing_chat_carries_its_timer() {
    let s = TestServer::start();
    let timed = wa::Message {
        extended_text_message: MessageField::some(wa::message::ExtendedTextMessage {
            text: Some("this chat disappears".into()),
            context_info: MessageField::some(wa::ContextInfo {
                expiration: Some(604_800),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    raw(&s, &timed, json!({ "id": "T" }));
    let id = by_wa_id(&s, "T")["id"].as_str().unwrap().to_string();
    assert_eq!(reply(&s, &id, "ok", None).0, 200);
    assert_eq!(sent(&s)[0]["expiration"], 604_800);
    // The customer turns the timer off: replies stop carrying it.
    let off = wa::Message {
        protocol_message: MessageField::some(wa::message::ProtocolMessage {
            r#type: Some(wa::message::protocol_message::Type::EPHEMERAL_SETTING),
            ephemeral_expiration: Some(0),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(raw(&s, &off, json!({}))["result"], "update");
    assert_eq!(reply(&s, &id, "ok again", None).0, 200);
    assert_eq!(sent(&s)[1]["expiration"], Value::Null);
}

#[test]
fn a_quote_in_a_lid_chat_names_the_author_as_received() {
    let s = TestServer::start();
    raw(
        &s,
        &text("from my privacy id"),
        json!({ "id": "L", "from": ALICE_LID, "from_alt": ALICE }),
    );
    let m = by_wa_id(&s, "L");
    // Shown and answered as the phone-number chat …
    assert_eq!(m["phone"], ALICE);
    assert_eq!(reply(&s, m["id"].as_str().unwrap(), "hi", None).0, 200);
    let record = &sent(&s)[0];
    assert_eq!(record["to"], ALICE);
    // … while the quote names the author as WhatsApp did.
    assert_eq!(record["quoted_wa_id"], "L");
    assert_eq!(record["quoted_participant"], ALICE_LID);
}
