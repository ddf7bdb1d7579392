//! Crash and disk tests on the real binary: `kill -9` at random moments during
//! ingest with webhooks pending, then every acknowledged message is stored
//! exactly once and delivered at least once; a full disk, or a data dir
//! that turns read-only under the server, gives clear errors and no
//! corruption, and the server recovers when the disk does.
//!
//! `CRASH_CYCLES` sets how many kill/restart cycles run (3 in `make test`,
//! more in `make stress`).

use crate::support::*;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use whatsapp_api::rng::Rng;

fn all_wa_ids(server: &BinServer) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    let mut page = 1;
    loop {
        let v = server
            .request(
                "GET",
                &format!("/api/v1/inbox/all?limit=100&page={page}"),
                None,
            )
            .json();
        let messages = v["messages"].as_array().unwrap().clone();
        for m in &messages {
            *counts
                .entry(m["wa_id"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
        }
        if messages.len() < 100 {
            return counts;
        }
        page += 1;
    }
}

#[test]
fn kill_9_during_ingest_loses_and_duplicates_nothing() {
    let cycles: usize = std::env::var("CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    // Printed, so a failure can be replayed.
    eprintln!("crash test: {cycles} cycles, seed {seed}");
    let mut rng = Rng(seed);
    let dir = TempDir::new("kill9");
    let rx = WebhookReceiver::start();
    // Some deliveries fail at first, so retries are pending when the kill comes.
    *rx.default_status.lock().unwrap() = 200;
    let env = [("WEBHOOK_RETRY_SCHEDULE", "0.05,0.1,0.2,0.4,0.8,1,1,1,1,1")];
    let acked: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let mut next_id = 0usize;
    for cycle in 0..cycles {
        let server = BinServer::start(&dir.0, &env);
        if cycle == 0 {
            let r = server.request(
                "POST",
                "/api/v1/webhooks",
                Some(&json!({ "url": rx.url, "events": ["message.received"] })),
            );
            assert_eq!(r.status, 201);
        }
        {
            let mut script = rx.script.lock().unwrap();
            script.clear();
            for _ in 0..(rng.next_u64() % 5) {
                script.push((503, vec![]));
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let base = server.base.clone();
        let (acked2, stop2) = (acked.clone(), stop.clone());
        let start_id = next_id;
        // Two clients inject concurrently; ids are unique per message, and the
        // first one of each cycle re-sends an id from before (a client retry).
        let clients: Vec<_> = (0..2)
            .map(|c| {
                let (base, acked, stop) = (base.clone(), acked2.clone(), stop2.clone());
                std::thread::spawn(move || {
                    let agent = agent();
                    let mut i = 0;
                    while !stop.load(Ordering::SeqCst) {
                        let id = if i == 0 && start_id > 0 { "3EBCRASH-0-0".to_string() } else { format!("3EBCRASH-{}-{c}-{i}", start_id) };
                        i += 1;
                        let body = serde_json::to_vec(&json!({ "from": "15551234567@s.whatsapp.net", "text": format!("msg {id}"), "id": id })).unwrap();
                        let url = format!("{base}/api/v1/simulator/messages");
                        let mut req = ureq::http::Request::builder().method("POST").uri(&url).header("X-API-Key", KEY);
                        req = req.header("Content-Type", "application/json");
                        match agent.run(req.body(body).unwrap()) {
                            Ok(r) if r.status().as_u16() == 201 => {
                                acked.lock().unwrap().insert(id);
                            }
                            Ok(_) => {}
                            Err(_) => break, // the server is gone
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100 + rng.next_u64() % 400));
        server.kill9();
        stop.store(true, Ordering::SeqCst);
        for c in clients {
            c.join().unwrap();
        }
        next_id += 1_000_000;
    }
    // Recovery: everything acknowledged is stored once and delivered.
    *rx.default_status.lock().unwrap() = 200;
    rx.script.lock().unwrap().clear();
    let server = BinServer::start(&dir.0, &env);
    let acked = acked.lock().unwrap().clone();
    assert!(!acked.is_empty(), "no message was acknowledged");
    let stored = all_wa_ids(&server);
    for id in &acked {
        assert_eq!(
            stored.get(id),
            Some(&1),
            "acknowledged message {id} stored {:?} times",
            stored.get(id)
        );
    }
    assert!(
        stored.values().all(|n| *n == 1),
        "a message is stored twice"
    );
    let delivered = |rx: &WebhookReceiver| -> BTreeSet<String> {
        rx.all()
            .iter()
            .filter_map(|r| r.json()["data"]["waId"].as_str().map(str::to_string))
            .collect()
    };
    eventually(60, "every acknowledged message delivered", || {
        acked.is_subset(&delivered(&rx)).then_some(())
    });
    // Every stored message (acknowledged or not) was delivered too.
    let stored_ids: BTreeSet<String> = stored.keys().cloned().collect();
    eventually(30, "every stored message delivered", || {
        stored_ids.is_subset(&delivered(&rx)).then_some(())
    });
    eprintln!(
        "crash test: {} acknowledged, {} stored, {} webhook requests",
        acked.len(),
        stored.len(),
        rx.count()
    );
}

/// Mounts a small tmpfs (root only); None where mounting is not allowed.
struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let path = std::env::temp_dir().join(format!("wa-disk-{}", whatsapp_api::auth::uuid_v4()));
        std::fs::create_dir_all(&path).ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then_some(SmallDisk { path })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The answer to a message the disk could not take: 503 and a clear reason.
fn assert_not_stored(r: &Resp) {
    assert_eq!(r.status, 503, "{}", r.text);
    let error = r.json()["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("could not be stored"), "{}", r.text);
}

fn integrity(db: &std::path::Path) -> String {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_full_disk_fails_clearly_and_recovers() {
    let Some(disk) = SmallDisk::mount("8m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let server = BinServer::start(&disk.path, &[]);
    let inject = |text: &str| {
        server.request(
            "POST",
            "/api/v1/simulator/messages",
            Some(&json!({ "from": "15551234567@s.whatsapp.net", "text": text })),
        )
    };
    assert_eq!(inject("before").status, 201);
    // Fill the disk.
    let filler = disk.path.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
    }
    let mut refused = 0;
    for i in 0..50 {
        let r = inject(&format!("while full {i} {}", "x".repeat(4000)));
        assert!(
            r.status == 201 || r.status == 503,
            "{} {}",
            r.status,
            r.text
        );
        if r.status == 503 {
            refused += 1;
            assert_not_stored(&r);
        }
    }
    assert!(refused > 0, "the disk never filled up");
    // Reads still work while the disk is full.
    assert_eq!(server.request("GET", "/api/v1/health", None).status, 200);
    assert_eq!(
        server
            .request("GET", "/api/v1/inbox/all?limit=1", None)
            .status,
        200
    );
    std::fs::remove_file(&filler).unwrap();
    eventually(10, "ingest to work again", || {
        (inject("after").status == 201).then_some(())
    });
    let output = server.output.clone();
    assert!(server.terminate().success());
    assert!(
        output
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("full") || l.contains("disk")),
        "the log names the problem"
    );
    assert_eq!(integrity(&disk.path.join("whatsapp-api.db")), "ok");
}

/// An ext4 image on a loop device, mounted with `errors=remount-ro`, so a
/// test can turn it read-only under a running server: the kernel refuses a
/// plain `mount -o remount,ro` while files are open for writing (`EBUSY`),
/// but an ext4 error (`trigger_fs_error` in sysfs) remounts it read-only at
/// once, as a failing disk would.
struct Ext4Disk {
    image: std::path::PathBuf,
    path: std::path::PathBuf,
}

fn run(cmd: &str, args: &[&std::ffi::OsStr]) -> bool {
    std::process::Command::new(cmd)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Ext4Disk {
    fn create() -> Option<Ext4Disk> {
        let base = std::env::temp_dir().join(format!("wa-ext4-{}", whatsapp_api::auth::uuid_v4()));
        let disk = Ext4Disk {
            image: base.with_extension("img"),
            path: base,
        };
        std::fs::create_dir_all(&disk.path).ok()?;
        std::fs::File::create(&disk.image)
            .and_then(|f| f.set_len(32 << 20))
            .ok()?;
        let made = run(
            "mkfs.ext4",
            &["-q".as_ref(), "-F".as_ref(), disk.image.as_os_str()],
        );
        (made && disk.mount()).then_some(disk)
    }

    fn mount(&self) -> bool {
        run(
            "mount",
            &[
                "-o".as_ref(),
                "loop,errors=remount-ro".as_ref(),
                self.image.as_os_str(),
                self.path.as_os_str(),
            ],
        )
    }

    /// The loop device's name (`loop0`), from /proc/mounts.
    fn device(&self) -> Option<String> {
        let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
        let path = self.path.to_str()?;
        mounts
            .lines()
            .map(|l| l.split(' ').collect::<Vec<_>>())
            .find(|f| f.len() > 1 && f[1] == path)
            .and_then(|f| f[0].rsplit('/').next().map(str::to_string))
    }

    /// False where the kernel offers no trigger (the test is then skipped).
    fn force_read_only(&self) -> bool {
        let Some(device) = self.device() else {
            return false;
        };
        std::fs::write(format!("/sys/fs/ext4/{device}/trigger_fs_error"), "1").is_ok()
    }

    /// Unmounts, repairs the journal the error aborted, mounts read-write.
    fn repair_and_remount(&self) {
        assert!(run("umount", &[self.path.as_os_str()]), "umount");
        // e2fsck: 0 clean, 1 errors corrected.
        let fsck = std::process::Command::new("e2fsck")
            .arg("-fy")
            .arg(&self.image)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(matches!(fsck.code(), Some(0 | 1)), "e2fsck: {fsck}");
        assert!(self.mount(), "mount again");
    }
}

impl Drop for Ext4Disk {
    fn drop(&mut self) {
        let _ = run("umount", &["-l".as_ref(), self.path.as_os_str()]);
        let _ = std::fs::remove_dir_all(&self.path);
        let _ = std::fs::remove_file(&self.image);
    }
}

#[test]
fn a_data_dir_turning_read_only_fails_clearly_and_recovers() {
    let Some(disk) = Ext4Disk::create() else {
        eprintln!("skipped: cannot make and mount an ext4 image here (needs root, loop devices)");
        return;
    };
    let data = disk.path.join("data");
    let server = BinServer::start(&data, &[]);
    let inject = |server: &BinServer, text: &str| {
        server.request(
            "POST",
            "/api/v1/simulator/messages",
            Some(&json!({ "from": "15551234567@s.whatsapp.net", "text": text })),
        )
    };
    let total = |server: &BinServer| {
        server
            .request("GET", "/api/v1/inbox/all?limit=10", None)
            .json()["pagination"]["total"]
            .clone()
    };
    // Acknowledged, so already on disk (synchronous=FULL): the disk failing
    // right after, as on a power cut, must not lose it. (With NORMAL it
    // would sit in the OS's cache until written back, and be lost here.)
    assert_eq!(inject(&server, "before").status, 201);
    if !disk.force_read_only() {
        eprintln!("skipped: this kernel has no ext4 trigger_fs_error");
        return;
    }
    for i in 0..5 {
        assert_not_stored(&inject(&server, &format!("while read-only {i}")));
    }
    // Reads keep working; nothing half-written shows.
    assert_eq!(server.request("GET", "/api/v1/health", None).status, 200);
    assert_eq!(total(&server), 1);
    let log = server.output.clone();
    assert!(server.terminate().success(), "a clean exit");
    assert!(
        log.lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("storing message") && l.contains("failed")),
        "the log names the problem"
    );
    // Starting on it while it is read-only: one line, exit 2.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_whatsapp-api"))
        .args(["--env-file", "/dev/null"])
        .env_clear()
        .env("DATA_DIR", &data)
        .env("PORT", "0")
        .env("WHATSAPP_BACKEND", "simulator")
        .env("API_KEY", KEY)
        .env("DASHBOARD_PASSWORD", DASH_PASSWORD)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("not writable"), "{stderr}");
    // Repaired and writable again: the data is intact and ingest resumes.
    disk.repair_and_remount();
    assert_eq!(integrity(&data.join("whatsapp-api.db")), "ok");
    let server = BinServer::start(&data, &[]);
    assert_eq!(total(&server), 1);
    assert_eq!(inject(&server, "after").status, 201);
    assert_eq!(total(&server), 2);
    assert!(server.terminate().success());
}
