//! `whatsapp-api backup <file>` while the server writes: the copy is a
//! consistent database, and restoring it (the README's procedure) works.

use crate::cli::run_binary;
use crate::support::*;
use rusqlite::Connection;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

const ALICE: &str = "15551234567@s.whatsapp.net";

#[test]
fn a_backup_taken_during_writes_is_consistent_and_restores() {
    let s = TestServer::start();
    let data_dir = s.dir.0.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, written) = (Arc::clone(&stop), Arc::clone(&written));
        let url = format!("{}/api/v1/simulator/messages", s.base);
        std::thread::spawn(move || {
            let agent = agent();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && n < 2000 {
                let body = json!({ "from": ALICE, "text": format!("message {n}") }).to_string();
                let r = request(
                    &agent,
                    "POST",
                    &url,
                    &[("X-API-Key", KEY), ("Content-Type", "application/json")],
                    Some(body.as_bytes()),
                );
                assert_eq!(r.status, 201, "{}", r.text);
                n += 1;
                written.store(n, Ordering::Relaxed);
            }
        })
    };
    eventually(30, "some messages to be written", || {
        (written.load(Ordering::Relaxed) >= 30).then_some(())
    });

    let backups = TempDir::new("backups");
    let target = backups.0.join("backup.db");
    let before = written.load(Ordering::Relaxed);
    let r = run_binary(
        &["backup", target.to_str().unwrap()],
        &[("DATA_DIR", data_dir.to_str().unwrap())],
    );
    let during = written.load(Ordering::Relaxed);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.starts_with("backed up "), "{}", r.stdout);
    // Writes went on after the copy was started, so it raced real work.
    eventually(30, "writes after the backup", || {
        (written.load(Ordering::Relaxed) >= during + 10).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();

    // A second backup to the same file is refused, not overwritten.
    let again = run_binary(
        &["backup", target.to_str().unwrap()],
        &[("DATA_DIR", data_dir.to_str().unwrap())],
    );
    assert_eq!(again.code, Some(2));
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);

    {
        let copy = Connection::open(&target).unwrap();
        let check: String = copy
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        let version: i64 = copy
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, whatsapp_api::db::SCHEMA_VERSION);
        let rows: i64 = copy
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .unwrap();
        assert!(
            rows as usize >= before && rows as usize <= during,
            "{before} <= {rows} <= {during}"
        );
        // One transaction's worth of state: the trigger-kept counters agree
        // with the rows they count.
        let counted: i64 = copy
            .query_row(
                "SELECT n FROM inbox_counts WHERE reply_status = 'unread'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(counted, rows);
        let unread: i64 = copy
            .query_row("SELECT unread FROM chats WHERE phone = ?1", [ALICE], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(unread, rows);
        let texts: Vec<String> = copy
            .prepare("SELECT message FROM messages ORDER BY seq")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let expected: Vec<String> = (0..rows).map(|n| format!("message {n}")).collect();
        assert_eq!(texts, expected, "a prefix of the writes, in order");
    }
    drop(s);

    // Restore, as the README says: the copy becomes DB_PATH of a data dir.
    let restored = Arc::new(TempDir::new("restored"));
    std::fs::copy(&target, restored.0.join("whatsapp-api.db")).unwrap();
    let s = TestServer::start_in(restored, |_| {});
    let page = s.get("/api/v1/inbox/all?limit=1").json();
    let rows = page["pagination"]["total"].as_i64().unwrap();
    assert!(rows as usize >= before);
    assert_eq!(
        page["messages"][0]["message"],
        format!("message {}", rows - 1)
    );
}
