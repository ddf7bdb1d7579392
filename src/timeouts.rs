//! Timeouts for client connections (thread `http-timeouts`).
//!
//! tiny_http 0.12 accepts connections on its own thread and offers no way to
//! set socket timeouts, so an idle or stalled client could hold a connection
//! thread (or, mid-body, a body reader) forever, and a client that never reads
//! its answer could hold a worker. This thread walks our listener's accepted
//! connections in `/proc/self/fd` every `SWEEP_EVERY`:
//! - it sets `SO_RCVTIMEO`/`SO_SNDTIMEO` on each new one, which bounds every
//!   read and write that starts afterwards;
//! - a read already blocked when that happens keeps waiting, so a connection
//!   that has received nothing for the timeout and has no request in a
//!   handler (`InFlight`) is shut down, which ends that read at once.

use socket2::SockRef;
use std::collections::{HashMap, HashSet};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often connections are checked.
const SWEEP_EVERY: Duration = Duration::from_millis(200);

/// Client addresses whose request is being handled: never shut down as idle.
#[derive(Default)]
pub struct InFlight(Mutex<HashMap<SocketAddr, u32>>);

impl InFlight {
    /// Marks a request from `peer` as being handled until the guard drops.
    pub fn enter(&self, peer: Option<SocketAddr>) -> InFlightGuard<'_> {
        if let Some(peer) = peer {
            *self
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(peer)
                .or_insert(0) += 1;
        }
        InFlightGuard { set: self, peer }
    }

    fn contains(&self, peer: &SocketAddr) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(peer)
    }
}

/// Ends an `InFlight` mark.
pub struct InFlightGuard<'a> {
    set: &'a InFlight,
    peer: Option<SocketAddr>,
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        let Some(peer) = self.peer else { return };
        let mut map = self.set.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&peer) {
            *n -= 1;
            if *n == 0 {
                map.remove(&peer);
            }
        }
    }
}

/// Starts the sweeper for connections accepted on `port`; it stops when
/// `stop` is set.
pub fn spawn(
    port: u16,
    timeout: Duration,
    in_flight: Arc<crate::state::Shared>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("http-timeouts".into())
        .spawn(move || {
            let mut seen: HashSet<u64> = HashSet::new();
            while !stop.load(Ordering::SeqCst) {
                if let Err(e) = sweep(port, timeout, &in_flight.in_flight, &mut seen) {
                    log::warn!("connection timeouts: cannot list open sockets: {e}");
                    return;
                }
                std::thread::sleep(SWEEP_EVERY);
            }
        })
}

/// One pass over the open file descriptors. `seen` holds the socket inodes
/// whose timeouts are already set.
fn sweep(
    port: u16,
    timeout: Duration,
    in_flight: &InFlight,
    seen: &mut HashSet<u64>,
) -> std::io::Result<()> {
    let mut live = HashSet::with_capacity(seen.len());
    for entry in std::fs::read_dir("/proc/self/fd")?.flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let Some(inode) = socket_inode(&target.to_string_lossy()) else {
            continue;
        };
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        // SAFETY: `fd` was open when listed just now. We only read its
        // addresses and state, set two timeouts and may shut the connection
        // down; we never close it. Should it have been closed and reused
        // meanwhile, the checks below still touch only a connected TCP socket
        // on our own port, which is what this thread is for.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = SockRef::from(&fd);
        let ours = socket
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .is_some_and(|a| a.port() == port);
        let Some(peer) = socket
            .peer_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .filter(|_| ours)
        else {
            continue;
        };
        live.insert(inode);
        if seen.insert(inode) {
            let _ = socket.set_read_timeout(Some(timeout));
            let _ = socket.set_write_timeout(Some(timeout));
        }
        if idle_for(fd).is_some_and(|idle| idle > timeout) && !in_flight.contains(&peer) {
            log::debug!(
                "closing connection from {peer}: nothing received for {} s",
                timeout.as_secs()
            );
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
    seen.retain(|inode| live.contains(inode));
    Ok(())
}

/// How long ago the connection last received data (`TCP_INFO`).
fn idle_for(fd: BorrowedFd<'_>) -> Option<Duration> {
    // SAFETY: all-zero is a valid `tcp_info` (integers only).
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is writable and `len` is its size; the kernel writes at
    // most `len` bytes and reports how many.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    (rc == 0).then(|| Duration::from_millis(u64::from(info.tcpi_last_data_recv)))
}

/// `socket:[12345]` -> 12345.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn parses_socket_links() {
        assert_eq!(socket_inode("socket:[4242]"), Some(4242));
        assert_eq!(socket_inode("/dev/null"), None);
        assert_eq!(socket_inode("pipe:[1]"), None);
    }

    #[test]
    fn accepted_connections_get_timeouts_and_idle_ones_are_shut() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let in_flight = InFlight::default();
        let mut seen = HashSet::new();
        sweep(port, Duration::from_millis(100), &in_flight, &mut seen).unwrap();
        assert_eq!(
            accepted.read_timeout().unwrap(),
            Some(Duration::from_millis(100))
        );
        // While a request is in flight, an idle connection is left alone.
        let guard = in_flight.enter(client.local_addr().ok());
        std::thread::sleep(Duration::from_millis(300));
        sweep(port, Duration::from_millis(100), &in_flight, &mut seen).unwrap();
        let mut probe = accepted.try_clone().unwrap();
        probe.set_nonblocking(true).unwrap();
        assert!(probe.read(&mut [0u8; 1]).is_err(), "still open");
        drop(guard);
        sweep(port, Duration::from_millis(100), &in_flight, &mut seen).unwrap();
        probe.set_nonblocking(false).unwrap();
        assert_eq!(probe.read(&mut [0u8; 1]).unwrap(), 0, "shut down");
    }
}
