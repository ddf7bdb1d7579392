//! `import-legacy`: a database with the Node server's exact schema is
//! imported, twice, and the server started on the result answers with the
//! old ids, the old key and the old webhooks (secrets intact).

use crate::cli::run_binary;
use crate::support::*;
use hmac::{KeyInit, Mac};
use rusqlite::Connection;
use serde_json::json;
use std::sync::Arc;

/// The Node server's `src/database.js` schema, verbatim in substance.
const NODE_SCHEMA: &str = "
CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    direction TEXT,
    phone TEXT,
    message TEXT,
    reply_status TEXT,
    media_type TEXT,
    media_url TEXT,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    url TEXT,
    events TEXT,
    secret TEXT,
    active INTEGER,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE api_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE audit_logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    action TEXT,
    details TEXT,
    ip_address TEXT,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT
);
";

const OLD_KEY: &str = "node-old-key-11111111111111111111";
const NEW_KEY: &str = "node-current-key-2222222222222222222";
const SECRET: &str = "node-webhook-secret";
const ALICE: &str = "15551234567@s.whatsapp.net";

/// Writes a Node database with a few of everything; `hook_url` is where its
/// webhook points.
fn node_database(path: &std::path::Path, hook_url: &str) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(NODE_SCHEMA).unwrap();
    // One instant for every row, so rows meant to share a second do.
    let base = whatsapp_api::clock::now_secs();
    let now = |offset_days: i64| whatsapp_api::clock::format_datetime(base - offset_days * 86_400);
    // Inserted out of time order on purpose; two share a second.
    let rows = [
        (
            "m-3",
            "incoming",
            ALICE,
            "third",
            "unread",
            None,
            None,
            now(1),
        ),
        (
            "m-1",
            "incoming",
            ALICE,
            "first",
            "read",
            None,
            None,
            now(3),
        ),
        (
            "m-2",
            "incoming",
            "15557654321",
            "[Image]",
            "pending",
            Some("image"),
            Some("/media/abc.jpg"),
            now(2),
        ),
        (
            "m-2r",
            "outgoing",
            ALICE,
            "a reply",
            "sent",
            None,
            None,
            now(2),
        ),
        (
            "m-4",
            "incoming",
            ALICE,
            "same second",
            "replied",
            None,
            None,
            now(1),
        ),
        (
            "m-x",
            "sideways",
            ALICE,
            "???",
            "unread",
            None,
            None,
            now(1),
        ),
    ];
    for (id, direction, phone, text, status, media_type, media_url, at) in rows {
        conn.execute(
            "INSERT INTO messages (id, direction, phone, message, reply_status, media_type, media_url, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            rusqlite::params![id, direction, phone, text, status, media_type, media_url, at],
        )
        .unwrap();
    }
    conn.execute(
        "INSERT INTO webhooks (id, url, events, secret, active, created_at)
         VALUES ('wh-1', ?1, 'message.received,message.sent', ?2, 1, ?3),
                ('wh-2', 'http://127.0.0.1:9/off', 'connection.connected', NULL, 0, ?3)",
        rusqlite::params![hook_url, SECRET, now(10)],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO api_keys (key, created_at) VALUES (?1, ?2), (?3, ?4)",
        rusqlite::params![OLD_KEY, now(30), NEW_KEY, now(5)],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO audit_logs (action, details, ip_address, created_at) VALUES
            ('api_request', '{\"method\":\"GET\",\"path\":\"/api/v1/inbox\"}', '10.0.0.1', ?1),
            ('api_request', '{\"method\":\"GET\",\"path\":\"/api/v1/inbox\"}', '10.0.0.1', ?1),
            ('webhook_created', ?2, '10.0.0.2', ?1),
            ('ancient', 'older than the retention', '10.0.0.3', ?3)",
        rusqlite::params![
            now(2),
            format!("{{\"body\":{{\"url\":\"x\",\"secret\":\"{SECRET}\"}}}}"),
            now(400)
        ],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO settings (key, value) VALUES ('dashboard_password', 'hunter2')",
        [],
    )
    .unwrap();
}

/// Every row of the tables an import writes, as text, to compare runs.
fn snapshot(db: &std::path::Path) -> Vec<String> {
    let conn = Connection::open(db).unwrap();
    let mut out = Vec::new();
    for table in [
        "messages",
        "webhooks",
        "api_keys",
        "audit_logs",
        "inbox_counts",
        "chats",
    ] {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM {table} ORDER BY rowid"))
            .unwrap();
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                let cells: Vec<String> = (0..n)
                    .map(|i| format!("{:?}", r.get::<_, rusqlite::types::Value>(i).unwrap()))
                    .collect();
                Ok(format!("{table}: {}", cells.join(" | ")))
            })
            .unwrap();
        out.extend(rows.map(Result::unwrap));
    }
    out
}

fn import(data_dir: &std::path::Path, source: &std::path::Path) -> crate::cli::Run {
    run_binary(
        &["import-legacy", source.to_str().unwrap()],
        &[
            ("DATA_DIR", data_dir.to_str().unwrap()),
            ("LOG_LEVEL", "warn"),
        ],
    )
}

#[test]
fn a_node_database_is_imported_once_and_served() {
    let receiver = WebhookReceiver::start();
    let legacy_dir = TempDir::new("node");
    let source = legacy_dir.0.join("messages.db");
    node_database(&source, &receiver.url);
    let data = Arc::new(TempDir::new("imported"));

    let source_bytes = std::fs::read(&source).unwrap();
    let first = import(&data.0, &source);
    assert_eq!(first.code, Some(0), "{}{}", first.stdout, first.stderr);
    for secret in [OLD_KEY, NEW_KEY, SECRET, "hunter2"] {
        assert!(
            !first.stdout.contains(secret) && !first.stderr.contains(secret),
            "a secret was printed: {}{}",
            first.stdout,
            first.stderr
        );
    }
    assert!(
        first
            .stdout
            .contains("messages:   5 added, 0 already here, 1 skipped"),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("webhooks:   2 added"),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("now the active key"),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("audit log:  3 added"),
        "{}",
        first.stdout
    );
    assert!(first.stdout.contains("dashboard_password"));
    let db_path = data.0.join("whatsapp-api.db");
    let after_first = snapshot(&db_path);

    // Idempotent: a second run adds nothing and changes nothing.
    let second = import(&data.0, &source);
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    assert!(
        second
            .stdout
            .contains("messages:   0 added, 5 already here, 1 skipped"),
        "{}",
        second.stdout
    );
    assert!(second.stdout.contains("already the active key"));
    assert_eq!(snapshot(&db_path), after_first);
    // The source was opened read-only: not a byte of it changed.
    assert!(std::fs::read(&source).unwrap() == source_bytes);

    // The server on the imported data dir, with no API_KEY configured.
    let s = TestServer::start_in(Arc::clone(&data), |c| c.api_key = None);
    let with_key = |key: &str, path: &str| s.request("GET", path, &[("X-API-Key", key)], None);
    assert_eq!(with_key(KEY, "/api/v1/inbox/all").status, 401);
    assert_eq!(with_key(OLD_KEY, "/api/v1/inbox/all").status, 401);
    let all = with_key(NEW_KEY, "/api/v1/inbox/all");
    assert_eq!(all.status, 200, "{}", all.text);
    let v = all.json();
    let ids: Vec<&str> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    // Newest first; m-4 arrived after m-3 in the same second.
    assert_eq!(ids, ["m-4", "m-3", "m-2", "m-1"]);
    assert_eq!(v["pagination"]["total"], 4);

    let m2 = with_key(NEW_KEY, "/api/v1/messages/m-2").json();
    assert_eq!(m2["phone"], "15557654321@s.whatsapp.net");
    assert_eq!(m2["reply_status"], "unread", "unknown 'pending' -> unread");
    assert_eq!(m2["media_url"], "/media/abc.jpg");
    assert_eq!(m2["wa_id"], serde_json::Value::Null);
    let m1 = with_key(NEW_KEY, "/api/v1/messages/m-1").json();
    assert_eq!(m1["reply_status"], "read");
    assert_eq!(
        m1["created_at"].as_str().unwrap().len(),
        "YYYY-MM-DD HH:MM:SS".len()
    );
    let reply = with_key(NEW_KEY, "/api/v1/messages/m-2r").json();
    assert_eq!(reply["direction"], "outgoing");
    assert_eq!(reply["reply_status"], "sent");
    assert_eq!(with_key(NEW_KEY, "/api/v1/inbox").json()["count"], 2);

    let hooks = with_key(NEW_KEY, "/api/v1/webhooks");
    assert!(!hooks.text.contains(SECRET));
    let hooks = hooks.json();
    assert_eq!(hooks["webhooks"][0]["id"], "wh-1");
    assert_eq!(
        hooks["webhooks"][0]["events"],
        "message.received,message.sent"
    );
    assert_eq!(hooks["webhooks"][0]["has_secret"], true);
    assert_eq!(hooks["webhooks"][0]["active"], 1);
    assert_eq!(hooks["webhooks"][1]["has_secret"], false);
    assert_eq!(hooks["webhooks"][1]["active"], 0);

    let audit = with_key(NEW_KEY, "/api/v1/audit-logs?limit=100");
    assert!(!audit.text.contains(SECRET), "{}", audit.text);
    assert!(audit.text.contains("webhook_created"));

    // The imported secret signs deliveries the way the Node server did.
    let r = s.request(
        "POST",
        "/api/v1/simulator/messages",
        &[("X-API-Key", NEW_KEY), ("Content-Type", "application/json")],
        Some(
            json!({ "from": ALICE, "text": "after the move" })
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let got = receiver.wait_for(1, 10);
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(got[0].body.as_bytes());
    let expected = format!(
        "sha256={}",
        whatsapp_api::auth::hex(&mac.finalize().into_bytes())
    );
    assert_eq!(
        got[0].header("X-Webhook-Signature"),
        Some(expected.as_str())
    );
}

#[test]
fn a_rotated_key_is_not_brought_back_by_a_second_import() {
    let legacy_dir = TempDir::new("node-rot");
    let source = legacy_dir.0.join("messages.db");
    node_database(&source, "http://127.0.0.1:9/hook");
    let data = TempDir::new("imported-rot");
    assert_eq!(import(&data.0, &source).code, Some(0));
    let db_path = data.0.join("whatsapp-api.db");
    let mut conn = whatsapp_api::db::connect(&db_path).unwrap();
    let rotated = whatsapp_api::auth::api_key_hash("a-key-rotated-on-the-new-server");
    whatsapp_api::db::set_active_api_key(&mut conn, &rotated, "a-key-").unwrap();
    let again = import(&data.0, &source);
    assert!(again.stdout.contains("stays revoked"), "{}", again.stdout);
    assert!(!again.stdout.contains("API_KEY is set"));
    let with_env = run_binary(
        &["import-legacy", source.to_str().unwrap()],
        &[
            ("DATA_DIR", data.0.to_str().unwrap()),
            ("API_KEY", "an-api-key-from-the-environment"),
        ],
    );
    assert!(
        with_env.stdout.contains("API_KEY is set"),
        "{}",
        with_env.stdout
    );
    assert_eq!(
        whatsapp_api::db::active_api_key_hash(&conn).unwrap(),
        Some(rotated)
    );
}

#[test]
fn a_missing_or_foreign_file_is_one_clear_line() {
    let dir = TempDir::new("node-bad");
    let data = dir.0.join("data");
    let check = |source: &std::path::Path, needle: &str| {
        let r = import(&data, source);
        assert_eq!(r.code, Some(2), "{}", r.stdout);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(r.stderr.contains(needle), "{}", r.stderr);
        assert!(!r.stderr.contains("panicked"));
    };
    check(&dir.0.join("nope.db"), "no such file");
    let text = dir.0.join("notes.txt");
    std::fs::write(
        &text,
        "this is not a database, just some words\n".repeat(100),
    )
    .unwrap();
    check(&text, "not an SQLite database");
    let other = dir.0.join("other.db");
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE things (id INTEGER);")
        .unwrap();
    check(&other, "no messages table");
    let ours = dir.0.join("ours.db");
    whatsapp_api::db::migrate(&whatsapp_api::db::connect(&ours).unwrap()).unwrap();
    check(&ours, "a database of this server");
    // Nothing was created for a refused import.
    assert!(!data.join("whatsapp-api.db").exists());
}
