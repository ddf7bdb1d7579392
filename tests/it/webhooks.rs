//! Webhooks against a real receiver on 127.0.0.1: payloads, both signatures
//! (checked with independent verifiers), retries, 410, FIFO, isolation,
//! crash-and-resume, redelivery, and secrets never shown again.

use crate::support::*;
use serde_json::{Value, json};
use std::time::Duration;

const ALICE: &str = "15551234567@s.whatsapp.net";

fn create(s: &TestServer, url: &str, events: Value, secret: Value) -> Value {
    let r = s.post(
        "/api/v1/webhooks",
        &json!({ "url": url, "events": events, "secret": secret }),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    if let Some(secret) = r.json()["secret"].as_str() {
        remember_secret(secret);
    }
    r.json()
}

fn deliveries(s: &TestServer, webhook_id: &str) -> Vec<Value> {
    s.get(&format!("/api/v1/webhooks/{webhook_id}/deliveries"))
        .json()["deliveries"]
        .as_array()
        .unwrap()
        .clone()
}

fn verify_standard(secret: &str, r: &Received) {
    let wh = if secret.starts_with("whsec_") {
        standardwebhooks::Webhook::new(secret).unwrap()
    } else {
        standardwebhooks::Webhook::from_bytes(secret.as_bytes().to_vec()).unwrap()
    };
    let mut headers = ureq::http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(
            name,
            r.header(name)
                .unwrap_or_else(|| panic!("no {name}"))
                .parse()
                .unwrap(),
        );
    }
    wh.verify(r.body.as_bytes(), &headers)
        .expect("the standardwebhooks library verifies our signature");
    // A changed body must not verify.
    assert!(
        wh.verify(format!("{} ", r.body).as_bytes(), &headers)
            .is_err()
    );
}

fn verify_legacy(secret: &str, r: &Received) {
    let mac = hmac_sha256::HMAC::mac(r.body.as_bytes(), secret.as_bytes());
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        r.header("x-webhook-signature"),
        Some(format!("sha256={hex}").as_str())
    );
}

#[test]
fn message_received_is_delivered_with_both_signatures() {
    let s = TestServer::start();
    let rx = WebhookReceiver::start();
    let hook = create(&s, &rx.url, json!(["message.received"]), json!(true));
    let secret = hook["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    let wa_id = s.inject(ALICE, "Hello webhook");
    let got = rx.wait_for(1, 10);
    let r = &got[0];
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("user-agent").unwrap().starts_with("whatsapp-api/"));
    assert_eq!(r.header("x-webhook-event"), Some("message.received"));
    assert!(r.header("webhook-id").unwrap().starts_with("msg_"));
    verify_standard(&secret, r);
    verify_legacy(&secret, r);
    let body = r.json();
    assert_eq!(body["event"], "message.received");
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    let data = &body["data"];
    assert_eq!(data["phone"], ALICE);
    assert_eq!(data["message"], "Hello webhook");
    assert_eq!(data["waId"], wa_id.as_str());
    assert_eq!(data["id"], s.newest_id().as_str());
    for field in ["mediaType", "mediaUrl", "timestamp"] {
        assert!(data.get(field).is_some(), "data.{field}");
    }
    let log = eventually(5, "delivered status", || {
        let d = deliveries(&s, hook["id"].as_str().unwrap());
        (d[0]["status"] == "delivered").then_some(d)
    });
    assert_eq!(log[0]["attempts"][0]["status_code"], 200);
    assert_eq!(log[0]["id"], r.header("webhook-id").unwrap());
}

#[test]
fn a_plain_secret_signs_with_its_raw_bytes() {
    let s = TestServer::start();
    let rx = WebhookReceiver::start();
    create(
        &s,
        &rx.url,
        json!("message.received"),
        json!("my-plain-shared-secret"),
    );
    s.inject(ALICE, "plain");
    let r = &rx.wait_for(1, 10)[0];
    verify_standard("my-plain-shared-secret", r);
    verify_legacy("my-plain-shared-secret", r);
}

#[test]
fn unsigned_webhooks_carry_no_signature_headers() {
    let s = TestServer::start();
    let rx = WebhookReceiver::start();
    create(&s, &rx.url, json!(["message.received"]), Value::Null);
    s.inject(ALICE, "x");
    let r = &rx.wait_for(1, 10)[0];
    assert!(r.header("webhook-id").is_some());
    assert!(r.header("webhook-signature").is_none());
    assert!(r.header("x-webhook-signature").is_none());
}

#[test]
fn message_sent_and_connection_events() {
    let s = TestServer::start();
    let rx = WebhookReceiver::start();
    create(
        &s,
        &rx.url,
        json!([
            "message.sent",
            "connection.connected",
            "connection.disconnected"
        ]),
        Value::Null,
    );
    s.inject(ALICE, "question");
    let id = s.newest_id();
    let reply = s
        .post(
            &format!("/api/v1/messages/{id}/reply"),
            &json!({ "message": "answer" }),
        )
        .json();
    let sent = rx.wait_for(1, 10)[0].json();
    assert_eq!(sent["event"], "message.sent");
    assert_eq!(sent["data"]["id"], reply["replyId"]);
    assert_eq!(sent["data"]["inReplyTo"], id.as_str());
    assert_eq!(sent["data"]["message"], "answer");
    assert_eq!(sent["data"]["phone"], ALICE);
    s.post(
        "/api/v1/simulator/connection",
        &json!({ "state": "disconnected" }),
    );
    s.post(
        "/api/v1/simulator/connection",
        &json!({ "state": "connected" }),
    );
    let got = rx.wait_for(3, 10);
    let down = got[1].json();
    assert_eq!(down["event"], "connection.disconnected");
    assert!(down["data"]["reason"].is_string());
    assert_eq!(down["data"]["willReconnect"], true);
    assert_eq!(got[2].json()["event"], "connection.connected");
    // Only subscribed events: the incoming message did not go out.
    assert!(got.iter().all(|r| r.json()["event"] != "message.received"));
}

#[test]
fn retries_follow_the_schedule_with_a_stable_id() {
    let s = TestServer::start_with(|c| {
        c.webhook_retry_schedule = vec![
            Duration::from_millis(300),
            Duration::from_millis(600),
            Duration::from_millis(900),
        ]
    });
    let rx = WebhookReceiver::start();
    rx.script
        .lock()
        .unwrap()
        .extend([(500, vec![]), (502, vec![])]);
    let hook = create(&s, &rx.url, json!(["message.received"]), json!(true));
    s.inject(ALICE, "retry me");
    let got = rx.wait_for(3, 20);
    let ids: Vec<&str> = got
        .iter()
        .map(|r| r.header("webhook-id").unwrap())
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let gap1 = got[1].at - got[0].at;
    let gap2 = got[2].at - got[1].at;
    assert!(gap1 >= Duration::from_millis(300), "{gap1:?}");
    assert!(gap2 >= Duration::from_millis(600), "{gap2:?}");
    let d = eventually(5, "delivered", || {
        let d = deliveries(&s, hook["id"].as_str().unwrap());
        (d[0]["status"] == "delivered").then_some(d)
    });
    let codes: Vec<&Value> = d[0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["status_code"])
        .collect();
    assert_eq!(codes, [&json!(500), &json!(502), &json!(200)]);
    assert!(
        d[0]["attempts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("500")
    );
    assert!(d[0]["attempts"][0]["duration_ms"].is_number());
}

#[test]
fn exhausted_deliveries_fail_visibly_and_can_be_redelivered() {
    let s = TestServer::start();
    let rx = WebhookReceiver::start();
    *rx.default_status.lock().unwrap() = 500;
    let hook = create(&s, &rx.url, json!(["message.received"]), json!(true));
    let hook_id = hook["id"].as_str().unwrap();
    s.inject(ALICE, "doomed");
    let d = eventually(10, "failed", || {
        let d = deliveries(&s, hook_id);
        (d[0]["status"] == "failed").then_some(d)
    });
    assert_eq!(
        d[0]["attempts"].as_array().unwrap().len(),
        4,
        "1 attempt + 3 retries"
    );
    assert_eq!(rx.count(), 4);
    *rx.default_status.lock().unwrap() = 200;
    let delivery_id = d[0]["id"].as_str().unwrap();
    let r = s.post(
        &format!("/api/v1/deliveries/{delivery_id}/redeliver"),
        &json!({}),
    );
    assert_eq!(r.status, 202);
    let got = rx.wait_for(5, 10);
    assert_eq!(got[4].header("webhook-id"), Some(delivery_id));
    eventually(5, "delivered after redelivery", || {
        (deliveries(&s, hook_id)[0]["status"] == "delivered").then_some(())
    });
    assert_eq!(
        s.post("/api/v1/deliveries/nope/redeliver", &json!({}))
            .status,
        404
    );
}

#[test]
fn gone_deactivates_the_webhook() {
    let s = TestServer::start();
    let rx = WebhookReceiver::start();
    *rx.default_status.lock().unwrap() = 410;
    let hook = create(&s, &rx.url, json!(["message.received"]), Value::Null);
    s.inject(ALICE, "anyone there?");
    eventually(10, "deactivation", || {
        (s.get("/api/v1/webhooks").json()["webhooks"][0]["active"] == 0).then_some(())
    });
    assert_eq!(
        deliveries(&s, hook["id"].as_str().unwrap())[0]["status"],
        "failed"
    );
    assert_eq!(rx.count(), 1, "no retries after 410");
    s.inject(ALICE, "more");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rx.count(), 1, "an inactive webhook gets nothing");
}

#[test]
fn retry_after_is_honoured() {
    let s = TestServer::start();
    let rx = WebhookReceiver::start();
    rx.script
        .lock()
        .unwrap()
        .push((429, vec![("Retry-After".into(), "1".into())]));
    create(&s, &rx.url, json!(["message.received"]), Value::Null);
    s.inject(ALICE, "slow down");
    let got = rx.wait_for(2, 10);
    // The schedule says 50 ms; the receiver asked for a second.
    assert!(
        got[1].at - got[0].at >= Duration::from_millis(1000),
        "{:?}",
        got[1].at - got[0].at
    );
}

#[test]
fn per_webhook_order_is_kept() {
    let s = TestServer::start();
    let rx = WebhookReceiver::start();
    rx.script.lock().unwrap().push((500, vec![]));
    create(&s, &rx.url, json!(["message.received"]), Value::Null);
    for i in 0..6 {
        s.inject(ALICE, &format!("n{i}"));
    }
    let got = rx.wait_for(7, 10);
    let order: Vec<String> = got
        .iter()
        .map(|r| r.json()["data"]["message"].as_str().unwrap().to_string())
        .collect();
    // The first failed once and was retried before anything behind it.
    assert_eq!(order, ["n0", "n0", "n1", "n2", "n3", "n4", "n5"]);
}

#[test]
fn a_dead_endpoint_does_not_delay_a_healthy_one() {
    let s = TestServer::start_with(|c| c.webhook_timeout = Duration::from_secs(5));
    let dead = Blackhole::start();
    let rx = WebhookReceiver::start();
    let dead_hook = create(&s, &dead.url, json!(["message.received"]), Value::Null);
    create(&s, &rx.url, json!(["message.received"]), Value::Null);
    for i in 0..3 {
        s.inject(ALICE, &format!("m{i}"));
    }
    rx.wait_for(3, 10);
    // Everything reached the healthy receiver while the dead one's first
    // attempt is still hanging (no attempt recorded yet).
    assert!(dead.connections() >= 1);
    let d = deliveries(&s, dead_hook["id"].as_str().unwrap());
    assert!(
        d.iter()
            .all(|d| d["status"] == "pending" && d["attempts"].as_array().unwrap().is_empty()),
        "{d:?}"
    );
}

#[test]
fn a_receiver_that_is_down_gets_everything_when_back() {
    let port = free_port();
    let s = TestServer::start_with(|c| {
        c.webhook_retry_schedule = vec![
            Duration::from_millis(200),
            Duration::from_millis(400),
            Duration::from_millis(800),
            Duration::from_millis(1600),
        ]
    });
    let hook = create(
        &s,
        &format!("http://127.0.0.1:{port}/hook"),
        json!(["message.received"]),
        Value::Null,
    );
    s.inject(ALICE, "while down 1");
    s.inject(ALICE, "while down 2");
    eventually(5, "a refused attempt", || {
        let d = deliveries(&s, hook["id"].as_str().unwrap());
        d.iter()
            .any(|d| !d["attempts"].as_array().unwrap().is_empty())
            .then_some(())
    });
    let d = deliveries(&s, hook["id"].as_str().unwrap());
    let attempt = d
        .iter()
        .flat_map(|d| d["attempts"].as_array().unwrap().clone())
        .next()
        .unwrap();
    assert!(attempt["status_code"].is_null());
    assert!(attempt["error"].is_string());
    let rx = WebhookReceiver::start_on(port);
    let got = rx.wait_for(2, 10);
    assert_eq!(got[0].json()["data"]["message"], "while down 1");
    assert_eq!(got[1].json()["data"]["message"], "while down 2");
}

#[test]
fn pending_deliveries_survive_kill_9() {
    let dir = TempDir::new("crash");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let server = BinServer::start(
        &dir.0,
        &[("WEBHOOK_RETRY_SCHEDULE", "0.3,0.3,0.3,0.3,0.3,0.3")],
    );
    let r = server.request(
        "POST",
        "/api/v1/webhooks",
        Some(&json!({ "url": url, "events": "message.received" })),
    );
    assert_eq!(r.status, 201);
    let r = server.request(
        "POST",
        "/api/v1/simulator/messages",
        Some(&json!({ "from": ALICE, "text": "survive the crash" })),
    );
    assert_eq!(r.status, 201);
    // The receiver is down, so the delivery is pending; kill without shutdown.
    server.kill9();
    let rx = WebhookReceiver::start_on(port);
    let server = BinServer::start(&dir.0, &[("WEBHOOK_RETRY_SCHEDULE", "0.3,0.3,0.3")]);
    let got = rx.wait_for(1, 15);
    assert_eq!(got[0].json()["data"]["message"], "survive the crash");
    // And the message itself is stored once.
    let inbox = server.request("GET", "/api/v1/inbox/all", None).json();
    assert_eq!(inbox["pagination"]["total"], 1);
}

#[test]
fn an_attempt_in_flight_at_a_crash_is_made_again() {
    let dir = TempDir::new("inflight");
    let rx = WebhookReceiver::start();
    *rx.delay.lock().unwrap() = Duration::from_secs(3);
    let server = BinServer::start(&dir.0, &[]);
    server.request(
        "POST",
        "/api/v1/webhooks",
        Some(&json!({ "url": rx.url, "events": "message.received" })),
    );
    server.request(
        "POST",
        "/api/v1/simulator/messages",
        Some(&json!({ "from": ALICE, "text": "in flight" })),
    );
    rx.wait_for(1, 10);
    server.kill9();
    *rx.delay.lock().unwrap() = Duration::ZERO;
    let _server = BinServer::start(&dir.0, &[]);
    let got = rx.wait_for(2, 15);
    // At least once: the same delivery (same webhook-id) arrives again.
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
}

#[test]
fn test_ping_update_delete_and_validation() {
    let s = TestServer::start();
    let rx = WebhookReceiver::start();
    let hook = create(&s, &rx.url, json!(["connection.connected"]), Value::Null);
    let id = hook["id"].as_str().unwrap();
    let r = s.post(&format!("/api/v1/webhooks/{id}/test"), &json!({}));
    assert_eq!(r.status, 202);
    let ping = rx.wait_for(1, 10)[0].json();
    assert_eq!(ping["event"], "webhook.test");
    let r = s.patch(
        &format!("/api/v1/webhooks/{id}"),
        &json!({ "active": false, "events": "message.sent,message.received" }),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["active"], 0);
    assert_eq!(r.json()["events"], "message.sent,message.received");
    let r = s.patch(
        &format!("/api/v1/webhooks/{id}"),
        &json!({ "secret": true }),
    );
    let new_secret = r.json()["secret"].as_str().unwrap().to_string();
    remember_secret(&new_secret);
    assert!(!s.get("/api/v1/webhooks").text.contains(&new_secret));
    for body in [
        json!({ "url": "ftp://x/", "events": ["message.sent"] }),
        json!({ "url": "not a url", "events": ["message.sent"] }),
        json!({ "url": "http://127.0.0.1/\r\nX-Injected: 1", "events": ["message.sent"] }),
        json!({ "url": "http://127.0.0.1/", "events": ["message"] }),
        json!({ "url": "http://127.0.0.1/", "events": [] }),
        json!({ "url": "http://127.0.0.1/", "events": "message.received,bogus" }),
        json!({ "url": "http://127.0.0.1/" }),
        json!({ "events": ["message.sent"] }),
        json!({ "url": "http://127.0.0.1/", "events": ["message.sent"], "secret": 42 }),
        json!({ "url": "http://127.0.0.1/", "events": ["message.sent"], "active": "yes" }),
    ] {
        let r = s.post("/api/v1/webhooks", &body);
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert!(r.json()["error"].is_string());
    }
    assert_eq!(
        s.get("/api/v1/webhooks").json()["webhooks"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        s.patch("/api/v1/webhooks/nope", &json!({ "active": true }))
            .status,
        404
    );
    assert_eq!(s.delete(&format!("/api/v1/webhooks/{id}")).status, 200);
    assert_eq!(s.delete(&format!("/api/v1/webhooks/{id}")).status, 404);
    assert_eq!(
        s.get(&format!("/api/v1/webhooks/{id}/deliveries")).status,
        404
    );
}

#[test]
fn secrets_never_reach_responses_or_logs() {
    let dir = TempDir::new("secrets");
    let rx = WebhookReceiver::start();
    let server = BinServer::start(&dir.0, &[("LOG_LEVEL", "trace")]);
    let created = server.request(
        "POST",
        "/api/v1/webhooks",
        Some(&json!({ "url": rx.url, "events": ["message.received"], "secret": true })),
    );
    let secret = created.json()["secret"].as_str().unwrap().to_string();
    let id = created.json()["id"].as_str().unwrap().to_string();
    server.request(
        "POST",
        "/api/v1/simulator/messages",
        Some(&json!({ "from": ALICE, "text": "hi" })),
    );
    rx.wait_for(1, 10);
    let mut bodies = Vec::new();
    for path in [
        "/api/v1/webhooks".to_string(),
        format!("/api/v1/webhooks/{id}/deliveries"),
        "/api/v1/audit-logs".into(),
        "/metrics".into(),
        "/api/v1/status".into(),
    ] {
        bodies.push(server.request("GET", &path, None).text);
    }
    bodies.push(
        server
            .request("POST", &format!("/api/v1/webhooks/{id}/test"), None)
            .text,
    );
    bodies.push(
        server
            .request(
                "PATCH",
                &format!("/api/v1/webhooks/{id}"),
                Some(&json!({ "active": true })),
            )
            .text,
    );
    for b in &bodies {
        assert!(!b.contains(&secret), "a response shows the secret: {b}");
        assert!(!b.contains(KEY));
    }
    let output = server.output.clone();
    let status = server.terminate();
    assert!(status.success(), "a clean shutdown exits 0: {status:?}");
    let log = output.lock().unwrap().join("\n");
    assert!(
        log.contains("TRACE") || log.contains("DEBUG") || log.contains("INFO"),
        "the log was captured"
    );
    assert!(log.contains("/api/v1/webhooks"), "requests are logged");
    assert!(
        !log.contains(&secret),
        "a log line shows the webhook secret"
    );
    assert!(!log.contains(KEY), "a log line shows the API key");
    assert!(
        !log.contains(DASH_PASSWORD),
        "a log line shows the dashboard password"
    );
}

#[test]
fn private_targets_are_refused_in_every_spelling_when_not_allowed() {
    let rx = WebhookReceiver::start();
    let port = rx.url.rsplit(':').next().unwrap().trim_end_matches("/hook");
    let spellings = [
        "127.0.0.1",
        "2130706433",
        "0x7f000001",
        "127.1",
        "[::ffff:127.0.0.1]",
        "localhost",
    ];
    let urls: Vec<String> = spellings
        .iter()
        .map(|host| format!("http://{host}:{port}/hook"))
        .collect();

    // Allowed (the default): every spelling reaches the local receiver, so
    // each one really is this host.
    let s = TestServer::start();
    for url in &urls {
        let id = create(&s, url, json!(["message.received"]), json!(null))["id"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            s.post(&format!("/api/v1/webhooks/{id}/test"), &json!({}))
                .status,
            202
        );
    }
    rx.wait_for(urls.len(), 10);
    drop(s);

    // Refused: nothing reaches the receiver, and the delivery log says only
    // "connection failed" (never the OS's "connection refused", which would
    // tell an open port from a closed one).
    let s = TestServer::start_with(|c| c.webhook_allow_private = false);
    let closed_port = free_port();
    let mut ids = Vec::new();
    for url in urls
        .iter()
        .cloned()
        .chain([format!("http://127.0.0.1:{closed_port}/hook")])
    {
        let id = create(&s, &url, json!(["message.received"]), json!(null))["id"]
            .as_str()
            .unwrap()
            .to_string();
        s.post(&format!("/api/v1/webhooks/{id}/test"), &json!({}));
        ids.push((url, id));
    }
    for (url, id) in &ids {
        let d = eventually(10, "the delivery to fail", || {
            let d = deliveries(&s, id);
            (d.first()?["status"] == "failed").then_some(d)
        });
        for attempt in d[0]["attempts"].as_array().unwrap() {
            assert_eq!(attempt["error"], "connection failed", "{url}: {attempt}");
            assert!(attempt["status_code"].is_null(), "{url}: {attempt}");
        }
    }
    assert_eq!(rx.count(), urls.len(), "nothing more reached the receiver");
}
