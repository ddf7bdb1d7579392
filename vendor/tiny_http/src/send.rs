//! Sending a prepared response, resumably. A handler's thread sends the part
//! of the response in memory (the head, and a small body with it: nearly
//! always the whole response), waiting at most `HANDLER_BUDGET` on the
//! client, and leaves any rest to the connection's thread; so a client
//! reading slowly holds no handler, and the common case costs no hand-over
//! between threads.

use std::io::{self, ErrorKind, Read};
use std::time::{Duration, Instant};

use crate::conn::Conn;
use crate::response::Prepared;

/// How long a handler's thread may wait on a client that takes its answer
/// slowly before it leaves the rest to the connection's thread. Long enough
/// for a client that reads at once (the socket takes a few more pieces),
/// short enough that a client that does not read costs a handler little.
pub(crate) const HANDLER_BUDGET: Duration = Duration::from_millis(20);

/// Who is sending.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SendAs {
    /// A handler's thread: it sends what is in memory without waiting, then
    /// waits at most `HANDLER_BUDGET` (each write at most `stall`), then
    /// gives up the rest; a body still in its reader is always given up.
    Handler { stall: Duration },
    /// The connection's thread: it sends everything by `deadline`, each
    /// write waiting at most `stall`.
    Connection {
        deadline: Option<Instant>,
        stall: Duration,
    },
}

/// What is left of a response once a sender stops.
pub(crate) enum Sent<R> {
    All,
    /// The handler's budget ran out: the connection's thread sends the rest.
    Rest(Prepared<R>),
}

/// Sends `p` on `conn` as `sender` does. An error (the client went away,
/// or the connection's deadline passed) leaves the connection unusable.
pub(crate) fn send<R: Read>(
    conn: &Conn,
    mut p: Prepared<R>,
    sender: SendAs,
) -> io::Result<Sent<R>> {
    // For a handler: when a write first could not go out at once.
    let mut waiting_since: Option<Instant> = None;
    loop {
        while p.sent < p.head.len() {
            let buf = &p.head[p.sent..];
            let written = match sender {
                SendAs::Handler { stall } => match waiting_since {
                    None => match conn.send_nowait(buf) {
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            waiting_since = Some(Instant::now());
                            continue;
                        }
                        other => other?,
                    },
                    Some(since) => match conn.write_by(buf, Some(since + HANDLER_BUDGET), stall) {
                        Err(e) if e.kind() == ErrorKind::TimedOut => return Ok(Sent::Rest(p)),
                        other => other?,
                    },
                },
                SendAs::Connection { deadline, stall } => conn.write_by(buf, deadline, stall)?,
            };
            if written == 0 {
                return Err(io::Error::new(
                    ErrorKind::WriteZero,
                    "the connection took nothing",
                ));
            }
            p.sent += written;
        }
        if let SendAs::Handler { .. } = sender {
            // A handler's thread never reads the body from its reader: a
            // file would cost it disk reads, and a stream of events would
            // hold it until the next event. The connection's thread does.
            return Ok(if p.body.is_none() {
                Sent::All
            } else {
                Sent::Rest(p)
            });
        }
        if !p.next_piece()? {
            return Ok(Sent::All);
        }
    }
}
