//! The server's side of one client connection, shared between the thread
//! that serves it, a request being answered and the accept loop: one socket
//! (one file descriptor; its reads and writes go through `&self`), its read
//! and write deadlines, and whether it may be closed to make room for a new
//! connection. `Registry` counts the open connections and picks which one
//! to close when the cap is reached.

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::connection::Connection;

/// `Conn::idle_since` while a request is being read, handled or answered.
const BUSY: u64 = 0;
/// `Conn::idle_since` once the accept loop chose to close the connection.
const EVICTED: u64 = u64::MAX;

/// One accepted connection.
pub(crate) struct Conn {
    id: u64,
    stream: Connection,
    /// The `SO_RCVTIMEO` / `SO_SNDTIMEO` last set, in milliseconds (0: never):
    /// a socket option costs a system call, so it is set only when a
    /// deadline needs it changed (see `arm`).
    read_timeout_ms: AtomicU64,
    write_timeout_ms: AtomicU64,
    /// Since when (nanoseconds after `Registry::epoch`, plus one) the
    /// connection has been waiting for a request, `BUSY` or `EVICTED`.
    idle_since: AtomicU64,
    registry: Arc<Registry>,
}

impl Conn {
    pub(crate) fn peer_addr(&self) -> Option<SocketAddr> {
        self.stream.peer_addr().ok().flatten()
    }

    pub(crate) fn shutdown(&self, how: Shutdown) {
        let _ = self.stream.shutdown(how);
    }

    /// Marks the connection as waiting for its next request: from now on the
    /// accept loop may close it to make room.
    pub(crate) fn set_idle(&self) {
        let since = self.registry.epoch.elapsed().as_nanos() as u64 + 1;
        let _ = self
            .idle_since
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                (v != EVICTED).then_some(since)
            });
    }

    /// Marks the connection as busy with a request. False when the accept
    /// loop has already chosen to close it.
    pub(crate) fn set_busy(&self) -> bool {
        self.idle_since
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                (v != EVICTED).then_some(BUSY)
            })
            .is_ok()
    }

    /// Reads once, waiting at most until `deadline` (and at most `stall`
    /// for this read). A deadline that passes is `ErrorKind::TimedOut`.
    pub(crate) fn read_by(
        &self,
        buf: &mut [u8],
        deadline: Option<Instant>,
        stall: Duration,
    ) -> io::Result<usize> {
        arm(&self.read_timeout_ms, deadline, stall, |t| {
            self.stream.set_read_timeout(t)
        })?;
        self.stream.read(buf).map_err(timeout_kind)
    }

    /// Sends what the socket takes now, without waiting (`WouldBlock` when
    /// it takes nothing).
    pub(crate) fn send_nowait(&self, buf: &[u8]) -> io::Result<usize> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        const FLAGS: libc::c_int = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        const FLAGS: libc::c_int = libc::MSG_DONTWAIT;
        self.stream.socket().send_with_flags(buf, FLAGS)
    }

    /// Writes once, like `read_by`.
    pub(crate) fn write_by(
        &self,
        buf: &[u8],
        deadline: Option<Instant>,
        stall: Duration,
    ) -> io::Result<usize> {
        arm(&self.write_timeout_ms, deadline, stall, |t| {
            self.stream.set_write_timeout(t)
        })?;
        self.stream.write(buf).map_err(timeout_kind)
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.registry.remove(self.id);
    }
}

/// A blocking socket operation that timed out reports `WouldBlock` on Unix.
fn timeout_kind(e: io::Error) -> io::Error {
    if e.kind() == ErrorKind::WouldBlock {
        io::Error::new(ErrorKind::TimedOut, "the deadline passed")
    } else {
        e
    }
}

/// Sets the socket timeout (through `set`) so that the next operation ends
/// by `deadline` and waits at most `stall`. The option is changed only when
/// the value last set would overshoot the deadline by more than an eighth of
/// `stall`, or is less than half what is wanted, so a connection that keeps
/// up costs no system call here.
fn arm(
    last_ms: &AtomicU64,
    deadline: Option<Instant>,
    stall: Duration,
    set: impl FnOnce(Option<Duration>) -> io::Result<()>,
) -> io::Result<()> {
    let remaining = match deadline {
        Some(deadline) => deadline.saturating_duration_since(Instant::now()),
        None => stall,
    };
    if remaining < Duration::from_millis(1) {
        return Err(io::Error::new(ErrorKind::TimedOut, "the deadline passed"));
    }
    let want = remaining.min(stall).max(Duration::from_millis(1));
    let last = Duration::from_millis(last_ms.load(Ordering::Relaxed));
    if last.is_zero() || last > remaining + stall / 8 || last < want / 2 {
        let ms = want.as_millis() as u64;
        set(Some(Duration::from_millis(ms)))?;
        last_ms.store(ms, Ordering::Relaxed);
    }
    Ok(())
}

/// The reading side of a connection for a `BufReader`: every read ends by
/// the current deadline.
pub(crate) struct SocketReader {
    pub(crate) conn: Arc<Conn>,
    pub(crate) deadline: Option<Instant>,
    pub(crate) stall: Duration,
}

impl Read for SocketReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.conn.read_by(buf, self.deadline, self.stall)
    }
}

/// The writing side of a connection: every write ends by `deadline` (when
/// there is one) and blocks at most `stall`.
pub(crate) struct DeadlineWriter<'a> {
    pub(crate) conn: &'a Conn,
    pub(crate) deadline: Option<Instant>,
    pub(crate) stall: Duration,
}

impl Write for DeadlineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.conn.write_by(buf, self.deadline, self.stall)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The writer a handler takes over with `Request::into_writer`: it owns its
/// share of the connection, which closes when the last share is dropped.
/// Each write blocks at most `stall`; there is no total deadline (a stream
/// of events has no end), so whoever holds it decides when a reader that
/// keeps up too slowly is cut off.
pub(crate) struct OwnedWriter {
    pub(crate) conn: Arc<Conn>,
    pub(crate) stall: Duration,
}

impl Write for OwnedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.conn.write_by(buf, None, self.stall)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The open connections of a server.
pub(crate) struct Registry {
    epoch: Instant,
    open: Mutex<RegistryInner>,
    /// Signalled whenever a connection closes.
    closed: Condvar,
}

struct RegistryInner {
    next_id: u64,
    conns: HashMap<u64, Weak<Conn>>,
}

impl Registry {
    pub(crate) fn new() -> Arc<Registry> {
        Arc::new(Registry {
            epoch: Instant::now(),
            open: Mutex::new(RegistryInner {
                next_id: 0,
                conns: HashMap::new(),
            }),
            closed: Condvar::new(),
        })
    }

    /// Registers a newly accepted connection (busy until it waits for a
    /// request).
    pub(crate) fn add(self: &Arc<Self>, stream: Connection) -> Arc<Conn> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let id = open.next_id;
        open.next_id += 1;
        let conn = Arc::new(Conn {
            id,
            stream,
            read_timeout_ms: AtomicU64::new(0),
            write_timeout_ms: AtomicU64::new(0),
            idle_since: AtomicU64::new(BUSY),
            registry: Arc::clone(self),
        });
        open.conns.insert(id, Arc::downgrade(&conn));
        conn
    }

    fn remove(&self, id: u64) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.conns.remove(&id);
        self.closed.notify_all();
    }

    /// Connections open now.
    pub(crate) fn len(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .conns
            .len()
    }

    /// Closes the connection that has waited longest for a request, if any
    /// is waiting. True when one was closed.
    pub(crate) fn evict_idle(&self) -> bool {
        let candidates: Vec<Arc<Conn>> = {
            let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            open.conns.values().filter_map(Weak::upgrade).collect()
        };
        let mut by_age: Vec<(u64, &Arc<Conn>)> = candidates
            .iter()
            .map(|c| (c.idle_since.load(Ordering::Acquire), c))
            .filter(|(since, _)| *since != BUSY && *since != EVICTED)
            .collect();
        by_age.sort_unstable_by_key(|(since, _)| *since);
        for (since, conn) in by_age {
            // It may have started on a request since it was looked at.
            if conn
                .idle_since
                .compare_exchange(since, EVICTED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                conn.shutdown(Shutdown::Both);
                return true;
            }
        }
        false
    }

    /// Whether some connection is waiting for a request.
    fn any_idle(&self) -> bool {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.conns.values().filter_map(Weak::upgrade).any(|c| {
            let since = c.idle_since.load(Ordering::Acquire);
            since != BUSY && since != EVICTED
        })
    }

    /// Waits until another connection may be accepted: fewer than `max` are
    /// open, or one of them is idle (and will be closed for the newcomer by
    /// `enforce_cap`), or `stop()` says to give up. While every connection
    /// is busy, new ones wait in the listen backlog.
    pub(crate) fn wait_for_room(&self, max: usize, stop: impl Fn() -> bool) {
        loop {
            if self.len() < max.max(1) || stop() || self.any_idle() {
                return;
            }
            let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            // A busy connection ends within its deadlines, or goes idle
            // after its response (which nobody signals): look again soon.
            let _ = self
                .closed
                .wait_timeout(open, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// After an accept: past the cap, closes the connection idle longest.
    pub(crate) fn enforce_cap(&self, max: usize) {
        if self.len() > max.max(1) {
            self.evict_idle();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    fn pair(registry: &Arc<Registry>, listener: &TcpListener) -> (Arc<Conn>, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        (registry.add(Connection::from(accepted)), client)
    }

    #[test]
    fn the_connection_idle_longest_is_evicted_and_busy_ones_never() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let registry = Registry::new();
        let (first, mut first_client) = pair(&registry, &listener);
        let (second, _second_client) = pair(&registry, &listener);
        let (busy, _busy_client) = pair(&registry, &listener);
        first.set_idle();
        std::thread::sleep(Duration::from_millis(2));
        second.set_idle();
        assert_eq!(registry.len(), 3);

        assert!(registry.evict_idle());
        // The first one's client sees the connection end.
        first_client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(first_client.read(&mut [0u8; 8]).unwrap(), 0);
        assert!(!first.set_busy(), "an evicted connection stays evicted");
        assert!(second.set_busy());
        assert!(!registry.evict_idle(), "nobody is idle now");
        drop(busy);
        drop(first);
        assert_eq!(registry.len(), 1);
    }

    #[test]
    fn at_the_cap_accepting_waits_for_a_connection_to_end_or_idle() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let registry = Registry::new();
        let (busy, _client) = pair(&registry, &listener);
        let started = Instant::now();
        let ender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(busy);
        });
        registry.wait_for_room(1, || false);
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert_eq!(registry.len(), 0);
        ender.join().unwrap();

        // An idle connection makes room at once: the next accept closes it.
        let (idle, mut idle_client) = pair(&registry, &listener);
        idle.set_idle();
        let started = Instant::now();
        registry.wait_for_room(1, || false);
        assert!(started.elapsed() < Duration::from_millis(100));
        let (_newcomer, _newcomer_client) = pair(&registry, &listener);
        registry.enforce_cap(1);
        idle_client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(idle_client.read(&mut [0u8; 8]).unwrap(), 0);
        drop(idle);
        assert_eq!(registry.len(), 1);
    }

    #[test]
    fn reads_and_writes_end_by_their_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let registry = Registry::new();
        let (conn, _client) = pair(&registry, &listener);
        let started = Instant::now();
        let deadline = Some(started + Duration::from_millis(200));
        let e = conn
            .read_by(&mut [0u8; 8], deadline, Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(150), "{:?}", waited);
        assert!(waited < Duration::from_secs(2), "{:?}", waited);
        // The client never reads: writes fill the buffers, then time out.
        let chunk = vec![0u8; 64 * 1024];
        let started = Instant::now();
        let deadline = Some(started + Duration::from_millis(300));
        let mut writer = DeadlineWriter {
            conn: &conn,
            deadline,
            stall: Duration::from_secs(10),
        };
        let e = loop {
            if let Err(e) = writer.write_all(&chunk) {
                break e;
            }
            assert!(started.elapsed() < Duration::from_secs(5), "never blocked");
        };
        assert_eq!(e.kind(), ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
