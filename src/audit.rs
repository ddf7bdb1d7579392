//! The audit writer thread: collects audit rows from every other thread and
//! writes them in one transaction every few milliseconds, off the request path.
//! Once a day it prunes rows older than AUDIT_RETENTION_DAYS, and events
//! older than EVENTS_RETENTION_DAYS that no webhook delivery needs.

use crate::clock;
use crate::db::{self, AuditEntry};
use crate::threads::Ends;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use rusqlite::Connection;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long rows are gathered before a batch is written. Every commit makes
/// each other connection (every HTTP worker) drop its page cache at its next
/// read, so under load fewer, larger batches are much cheaper for the
/// workers than one every few milliseconds; 50 ms keeps the log current to
/// the eye.
const BATCH_WINDOW: Duration = Duration::from_millis(50);
/// Largest batch written in one transaction.
const BATCH_MAX: usize = 4096;
/// Half a second of requests at the target rate (8,000/s), ten windows; when
/// it is full, `record` blocks (backpressure) rather than dropping audit rows.
/// Not larger: a bounded crossbeam channel allocates every slot up front (an
/// entry is ~160 bytes: 65,536 slots were 10 MB resident at idle).
const CHANNEL_CAPACITY: usize = 4096;
const PRUNE_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Every action this server writes to the audit log, with a label for the
/// dashboard's filter. (Rows imported from the Node server keep its own.)
pub const ACTIONS: [(&str, &str); 9] = [
    ("api_request", "API request"),
    ("auth_failed", "Failed login (wrong key or password)"),
    ("dashboard_action", "Dashboard action"),
    ("session_logout", "WhatsApp logout (API)"),
    ("session_pair", "New pairing (API)"),
    ("server_start", "Server start"),
    ("api_key_rotated", "API key rotated (rotate-key)"),
    ("password_set", "Dashboard password set (set-password)"),
    ("legacy_import", "Import from the Node server"),
];

/// Sends rows to the audit writer. Cheap to clone.
#[derive(Clone)]
pub struct AuditHandle {
    tx: Sender<AuditEntry>,
}

impl AuditHandle {
    /// Queues one row.
    pub fn record(&self, entry: AuditEntry) {
        // The writer only stops after every handle is dropped, so this cannot
        // fail while `self` exists; ignore the impossible error.
        let _ = self.tx.send(entry);
    }

    /// Queues a row for an event outside a request (logins, actions, ...).
    pub fn event(&self, action: &str, ip: Option<&str>, details: impl Into<String>) {
        self.record(AuditEntry {
            action: action.to_string(),
            ip: ip.map(str::to_string),
            details: Some(details.into()),
            created_at: clock::now_secs(),
            ..Default::default()
        });
    }
}

/// Starts the writer; it exits, after writing everything queued, once every
/// `AuditHandle` has been dropped.
pub fn spawn(
    conn: Connection,
    retention: Retention,
    ends: &Ends,
) -> std::io::Result<(AuditHandle, JoinHandle<()>)> {
    let (tx, rx) = bounded(CHANNEL_CAPACITY);
    let join = std::thread::Builder::new()
        .name("audit".into())
        .spawn(ends.report(move || writer_main(conn, rx, retention)))?;
    Ok((AuditHandle { tx }, join))
}

/// How long pruned rows are kept, in days.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub audit_days: u32,
    pub events_days: u32,
}

fn writer_main(mut conn: Connection, rx: Receiver<AuditEntry>, retention: Retention) {
    let mut last_prune = Instant::now() - PRUNE_EVERY;
    let mut batch = Vec::with_capacity(BATCH_MAX);
    loop {
        if last_prune.elapsed() >= PRUNE_EVERY {
            prune(&conn, retention);
            last_prune = Instant::now();
        }
        let first = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(entry) => entry,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        batch.push(first);
        let deadline = Instant::now() + BATCH_WINDOW;
        while batch.len() < BATCH_MAX {
            match rx.recv_deadline(deadline) {
                Ok(entry) => batch.push(entry),
                Err(_) => break,
            }
        }
        write(&mut conn, &mut batch);
    }
    write(&mut conn, &mut batch);
    log::debug!("audit writer stopped");
}

/// Drops what has outlived its retention.
fn prune(conn: &Connection, retention: Retention) {
    let now = clock::now_secs();
    let days_ago = |days: u32| now - i64::from(days) * 86_400;
    match db::prune_audit(conn, days_ago(retention.audit_days)) {
        Ok(n) if n > 0 => log::info!(
            "audit: pruned {n} rows older than {} days",
            retention.audit_days
        ),
        Ok(_) => {}
        Err(e) => log::error!("audit: pruning failed: {e}"),
    }
    match db::prune_events(conn, days_ago(retention.events_days)) {
        Ok(n) if n > 0 => log::info!(
            "events: pruned {n} events older than {} days",
            retention.events_days
        ),
        Ok(_) => {}
        Err(e) => log::error!("events: pruning failed: {e}"),
    }
    let _ = db::prune_idempotency(conn, now - 86_400);
}

fn write(conn: &mut Connection, batch: &mut Vec<AuditEntry>) {
    if batch.is_empty() {
        return;
    }
    // A failed write is retried once (a busy database), then reported; audit
    // rows are never worth stopping the server for.
    if let Err(first) = db::insert_audit_batch(conn, batch) {
        std::thread::sleep(Duration::from_millis(50));
        if let Err(e) = db::insert_audit_batch(conn, batch) {
            log::error!(
                "audit: could not write {} rows: {e} (first try: {first})",
                batch.len()
            );
        }
    }
    batch.clear();
}
