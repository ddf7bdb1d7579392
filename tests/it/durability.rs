//! Power-loss durability: every commit that is acknowledged (to WhatsApp, or
//! with a 2xx to a client) is on disk first. A power cut loses whatever the
//! OS has not yet written back, so "on disk" means the commit's WAL frames
//! were fsynced before the answer went out. These tests count the syncs
//! SQLite asks for, per file, through a VFS that wraps the default one.

use crate::support::*;
use serde_json::json;
use std::ffi::{CStr, c_char, c_int};
use std::path::Path;
use std::sync::{Mutex, Once};

/// SQLite's `synchronous` decides when it calls `xSync`; counting those calls
/// is counting what a power cut cannot take back. The counting VFS is the
/// process's default from its installation on, so the in-process server's
/// connections (and whatsapp-rust's, which share this SQLite) go through it.
mod counting_vfs {
    use super::*;
    use rusqlite::ffi;

    /// Every file opened through the VFS: its path, how often it was
    /// synced, and whether it was written since its last sync.
    static FILES: Mutex<Vec<Opened>> = Mutex::new(Vec::new());

    struct Opened {
        path: String,
        syncs: u64,
        unsynced_writes: bool,
    }

    fn with_file<T>(counter: usize, f: impl FnOnce(&mut Opened) -> T) -> T {
        f(&mut FILES.lock().unwrap_or_else(|e| e.into_inner())[counter])
    }
    static INSTALL: Once = Once::new();
    /// The wrapped (previous default) VFS.
    static mut BASE: *mut ffi::sqlite3_vfs = std::ptr::null_mut();
    /// Where our bookkeeping sits inside each file object, after the base's.
    static mut EXTRA_OFFSET: usize = 0;

    /// Appended to every file object: the base's methods and our counter.
    #[repr(C)]
    struct Extra {
        methods: *const ffi::sqlite3_io_methods,
        counter: usize,
    }

    /// Method tables: a copy of a base table with `xWrite` and `xSync` replaced, one per
    /// distinct base table (leaked: they live as long as the process).
    static TABLES: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

    fn table_for(base: *const ffi::sqlite3_io_methods) -> *const ffi::sqlite3_io_methods {
        let mut tables = TABLES.lock().unwrap();
        if let Some((_, ours)) = tables.iter().find(|(b, _)| *b == base as usize) {
            return *ours as *const ffi::sqlite3_io_methods;
        }
        // SAFETY: `base` is the live method table SQLite's own VFS installed.
        let mut copy = unsafe { std::ptr::read(base) };
        copy.xWrite = Some(counting_write);
        copy.xSync = Some(counting_sync);
        let ours = Box::leak(Box::new(copy)) as *const ffi::sqlite3_io_methods;
        tables.push((base as usize, ours as usize));
        ours
    }

    unsafe fn extra(file: *mut ffi::sqlite3_file) -> *mut Extra {
        // SAFETY: every file this VFS opens was allocated with room for
        // `Extra` at `EXTRA_OFFSET` (see `szOsFile` in `install`).
        unsafe { (file as *mut u8).add(EXTRA_OFFSET) as *mut Extra }
    }

    unsafe extern "C" fn counting_write(
        file: *mut ffi::sqlite3_file,
        data: *const std::ffi::c_void,
        amount: c_int,
        offset: ffi::sqlite3_int64,
    ) -> c_int {
        // SAFETY: only files opened by `counting_open` carry this table.
        unsafe {
            let extra = extra(file);
            let real = (*(*extra).methods).xWrite.expect("the base VFS writes");
            let rc = real(file, data, amount, offset);
            with_file((*extra).counter, |f| f.unsynced_writes = true);
            rc
        }
    }

    unsafe extern "C" fn counting_sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
        // SAFETY: only files opened by `counting_open` carry this table.
        unsafe {
            let extra = extra(file);
            let real = (*(*extra).methods).xSync.expect("the base VFS syncs");
            let rc = real(file, flags);
            if rc == ffi::SQLITE_OK {
                with_file((*extra).counter, |f| {
                    f.syncs += 1;
                    f.unsynced_writes = false;
                });
            }
            rc
        }
    }

    unsafe extern "C" fn counting_open(
        vfs: *mut ffi::sqlite3_vfs,
        name: *const c_char,
        file: *mut ffi::sqlite3_file,
        flags: c_int,
        out_flags: *mut c_int,
    ) -> c_int {
        // SAFETY: the base VFS opens into the same object (it is at least
        // as large as the base asked for); we then swap its method table
        // for a copy whose xSync counts, and keep the original beside it.
        unsafe {
            let _ = vfs;
            let base = BASE;
            let open = (*base).xOpen.expect("the base VFS opens files");
            let rc = open(base, name, file, flags, out_flags);
            if rc != ffi::SQLITE_OK || (*file).pMethods.is_null() {
                return rc;
            }
            let path = if name.is_null() {
                String::new()
            } else {
                CStr::from_ptr(name).to_string_lossy().into_owned()
            };
            let counter = {
                let mut files = FILES.lock().unwrap_or_else(|e| e.into_inner());
                files.push(Opened {
                    path,
                    syncs: 0,
                    unsynced_writes: false,
                });
                files.len() - 1
            };
            let extra = extra(file);
            (*extra).methods = (*file).pMethods;
            (*extra).counter = counter;
            (*file).pMethods = table_for((*file).pMethods);
            rc
        }
    }

    /// Makes the counting VFS the default (once per process).
    pub fn install() {
        INSTALL.call_once(|| {
            // SAFETY: registration happens once, before any connection of
            // the tests that count is opened; the VFS struct is leaked and
            // so outlives every connection.
            unsafe {
                let base = ffi::sqlite3_vfs_find(std::ptr::null());
                assert!(!base.is_null(), "SQLite has a default VFS");
                BASE = base;
                let align = std::mem::align_of::<Extra>();
                let offset = ((*base).szOsFile as usize).div_ceil(align) * align;
                EXTRA_OFFSET = offset;
                let mut ours = std::ptr::read(base);
                ours.zName = c"counting-syncs".as_ptr();
                ours.szOsFile = (offset + std::mem::size_of::<Extra>()) as c_int;
                ours.xOpen = Some(counting_open);
                ours.pNext = std::ptr::null_mut();
                let ours = Box::leak(Box::new(ours));
                assert_eq!(ffi::sqlite3_vfs_register(ours, 1), ffi::SQLITE_OK);
            }
        });
    }

    /// How often files named `path` were synced since the process started.
    pub fn syncs(path: &Path) -> u64 {
        let path = path.to_string_lossy();
        let files = FILES.lock().unwrap_or_else(|e| e.into_inner());
        files
            .iter()
            .filter(|f| f.path == path)
            .map(|f| f.syncs)
            .sum()
    }

    /// Whether any handle of `path` was written since its last sync: what
    /// a power cut now would lose.
    pub fn has_unsynced_writes(path: &Path) -> bool {
        let path = path.to_string_lossy();
        let files = FILES.lock().unwrap_or_else(|e| e.into_inner());
        files.iter().any(|f| f.path == path && f.unsynced_writes)
    }
}

/// The app database's write-ahead log, where every commit lands first.
fn wal_of(server: &TestServer) -> std::path::PathBuf {
    let db = &server.server.as_ref().unwrap().shared.config.db_path;
    let mut wal = db.clone().into_os_string();
    wal.push("-wal");
    wal.into()
}

/// Runs `act`, which must answer success only after a commit, and asserts
/// that the WAL was synced between its start and its answer.
fn assert_synced_before_answer(wal: &Path, what: &str, act: impl FnOnce()) {
    let before = counting_vfs::syncs(wal);
    act();
    let after = counting_vfs::syncs(wal);
    assert!(
        after > before,
        "{what}: answered without syncing {} ({before} syncs before, {after} after)",
        wal.display()
    );
}

#[test]
fn every_acknowledged_message_is_synced_before_its_acknowledgement() {
    counting_vfs::install();
    let server = TestServer::start();
    let wal = wal_of(&server);
    for n in 0..20 {
        // The simulator answers 201 only after the sink's commit, exactly
        // when the real backend acknowledges a message to WhatsApp.
        assert_synced_before_answer(&wal, &format!("injected message {n}"), || {
            server.inject("15550001111@s.whatsapp.net", &format!("order {n}"));
        });
    }
    assert_eq!(
        server.get("/api/v1/inbox/all").json()["pagination"]["total"],
        20
    );
}

#[test]
fn every_successful_api_write_is_synced_before_its_answer() {
    counting_vfs::install();
    let server = TestServer::start();
    let wal = wal_of(&server);
    server.inject("15550002222@s.whatsapp.net", "where is my order?");
    let id = server.newest_id();
    assert_synced_before_answer(&wal, "a status change", || {
        let r = server.patch(
            &format!("/api/v1/messages/{id}/status"),
            &json!({ "status": "read" }),
        );
        assert_eq!(r.status, 200, "{}", r.text);
    });
    assert_synced_before_answer(&wal, "a reply", || {
        let r = server.post(
            &format!("/api/v1/messages/{id}/reply"),
            &json!({ "message": "on its way" }),
        );
        assert_eq!(r.status, 200, "{}", r.text);
    });
    assert_synced_before_answer(&wal, "a new webhook", || {
        let r = server.post(
            "/api/v1/webhooks",
            &json!({ "url": "http://127.0.0.1:9/hook", "events": ["message.received"] }),
        );
        assert_eq!(r.status, 201, "{}", r.text);
    });
}

#[test]
fn the_session_store_syncs_its_key_writes() {
    use crate::whatsapp_fake::{Scenario, qr, start};
    counting_vfs::install();
    // The real backend against the offline fake server: before its first QR
    // code the client creates the device's keys and stores them.
    let (server, _) = start(&[Scenario::Qr]);
    eventually(60, "a QR code from the real client", || qr(&server));
    let session = &server.server.as_ref().unwrap().shared.config.session_path;
    let mut wal = session.clone().into_os_string();
    wal.push("-wal");
    let wal = Path::new(&wal);
    assert!(
        counting_vfs::syncs(wal) > 0,
        "{} was never synced",
        wal.display()
    );
    assert!(
        !counting_vfs::has_unsynced_writes(wal),
        "the device keys are in {} but not yet on disk",
        wal.display()
    );
}
