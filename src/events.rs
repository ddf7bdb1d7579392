//! The event stream, `GET /api/v1/events`: Server-Sent Events read from the
//! event log (`db::events_after`).
//!
//! A stream never holds an HTTP worker: the worker checks the request, takes
//! a slot (at most `EVENT_STREAMS_MAX`), and answers with an `EventReader`
//! as a streamed body (`web::Body::Stream`); the connection's own thread
//! then pulls the events from it and writes them. The reader sends the
//! events after its cursor, read from the database by id in pages, then
//! waits on its wake channel. Whoever commits events (the sink) calls
//! `Streams::notify`, which wakes every stream without ever waiting: each
//! wake channel holds one pending wake-up, and one is as good as many, since
//! a woken stream reads everything after its cursor. Resuming
//! (`Last-Event-ID`, `?after=`) and live events are one path: a resumed
//! stream simply starts with an older cursor.
//!
//! Nothing is queued in memory for a stream: what it has not sent yet stays
//! in the database, and the reader is only asked for more once the last
//! piece is written. A client that stops reading fills its socket buffer;
//! the connection's blocked write ends after `HTTP_TIMEOUT_SECS`, which
//! closes the connection and drops the reader (the client resumes with
//! `Last-Event-ID`). The sink, the workers and the other streams never wait
//! for it.

use crate::db;
use crate::error::ApiError;
use crate::state::Shared;
use crate::web::Request;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Events read from the database at once (bounds a stream's memory: a page
/// of 3 KB events is under 200 KB).
const PAGE: usize = 64;
/// How long a client waits before reconnecting (the `retry:` field).
const RETRY_MS: u32 = 2000;

/// The open streams: their count and their wake channels.
pub struct Streams {
    max: usize,
    open: AtomicUsize,
    /// One per open stream (bounded 1: a pending wake-up stands for any
    /// number). A stream's entry goes when its receiver is dropped.
    wakers: Mutex<Vec<Sender<()>>>,
    closed: AtomicBool,
    /// Events written to streams, for the metrics.
    pub sent: AtomicU64,
    /// Streams refused because `max` were open, for the metrics.
    pub refused: AtomicU64,
}

impl Streams {
    pub fn new(max: usize) -> Streams {
        Streams {
            max,
            open: AtomicUsize::new(0),
            wakers: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Tells every stream that events were committed. Never blocks.
    pub fn notify(&self) {
        let mut wakers = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
        wakers.retain(|w| !matches!(w.try_send(()), Err(TrySendError::Disconnected(()))));
    }

    /// Takes a stream slot, or None when `max` streams are open (or the
    /// server is stopping).
    fn reserve(self: &Arc<Self>) -> Option<Slot> {
        if self.closed.load(Ordering::SeqCst) {
            return None;
        }
        let taken = self
            .open
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok();
        if !taken {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        taken.then(|| Slot(Arc::clone(self)))
    }

    /// Registers a stream's wake channel.
    fn subscribe(&self) -> Receiver<()> {
        let (tx, rx) = bounded(1);
        self.wakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tx);
        rx
    }

    /// Ends every stream (shutdown): their wake channels close, and no new
    /// stream is accepted.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.wakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// A taken stream slot; dropping it frees the slot.
struct Slot(Arc<Streams>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a client asked for: where to start and which events.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    /// Resume after this id; None: live events only.
    pub after: Option<i64>,
    /// Exact event names; None: every event.
    pub names: Option<Vec<String>>,
}

impl Subscription {
    /// Reads `Last-Event-ID` (which wins: a browser reconnecting sends it
    /// with the URL it first opened), `?after=` and `?events=`.
    pub fn from_request(req: &Request) -> Result<Subscription, ApiError> {
        let id = |what: &str, raw: &str| {
            raw.trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| ApiError::bad(format!("{what} must be an event id (0 or more)")))
        };
        let after = match (req.header("last-event-id"), req.query("after")) {
            (Some(header), _) => Some(id("Last-Event-ID", header)?),
            (None, Some(query)) => Some(id("after", query)?),
            (None, None) => None,
        };
        let names = match req.query("events") {
            None => None,
            Some(list) => {
                let names: Vec<String> = list
                    .split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_string)
                    .collect();
                if names.is_empty() {
                    return Err(ApiError::bad("events must name at least one event"));
                }
                if let Some(unknown) = names
                    .iter()
                    .find(|n| !crate::webhooks::EVENTS.contains(&n.as_str()))
                {
                    return Err(ApiError::bad(format!(
                        "Unknown event {unknown:?}; events are: {}",
                        crate::webhooks::EVENTS.join(", ")
                    )));
                }
                Some(names)
            }
        };
        Ok(Subscription { after, names })
    }
}

/// Opens a stream for `subscription`, or None when `EVENT_STREAMS_MAX`
/// are open. `conn` (the worker's) reads where the log ends now: a stream
/// without a cursor starts there.
pub fn open(
    shared: &Arc<Shared>,
    conn: &rusqlite::Connection,
    subscription: Subscription,
) -> Result<Option<EventReader>, db::DbError> {
    let Some(slot) = shared.streams.reserve() else {
        return Ok(None);
    };
    // Subscribed before the end of the log is read: an event committed
    // after that read wakes the stream, so none falls between.
    let wake = shared.streams.subscribe();
    let last = db::last_event_id(conn)?;
    // A cursor beyond the log (a database restored from an older backup)
    // would wait for ids that already mean other events: start live.
    let cursor = subscription.after.map_or(last, |after| after.min(last));
    Ok(Some(EventReader {
        shared: Arc::clone(shared),
        _slot: slot,
        wake,
        names: subscription.names,
        cursor,
        conn: None,
        pending: format!("retry: {RETRY_MS}\n\n").into_bytes(),
        sent: 0,
    }))
}

/// One stream's body: the events after its cursor, as the connection's
/// thread asks for them.
pub struct EventReader {
    shared: Arc<Shared>,
    _slot: Slot,
    wake: Receiver<()>,
    names: Option<Vec<String>>,
    /// The last event id this stream has passed (sent, or filtered out).
    cursor: i64,
    /// Its own database connection, opened on the connection's thread.
    conn: Option<rusqlite::Connection>,
    /// Bytes produced and not yet read.
    pending: Vec<u8>,
    /// How much of `pending` was read.
    sent: usize,
}

impl EventReader {
    /// Fills `pending` with what comes next: the events after the cursor,
    /// else a ping once the stream was quiet for `EVENT_PING`. False when
    /// the server is stopping.
    fn produce(&mut self) -> std::io::Result<bool> {
        self.pending.clear();
        self.sent = 0;
        loop {
            self.next_page().map_err(std::io::Error::other)?;
            if !self.pending.is_empty() {
                return Ok(true);
            }
            match self.wake.recv_timeout(self.shared.config.event_ping) {
                Ok(()) => continue,
                Err(RecvTimeoutError::Timeout) => {
                    self.pending.extend_from_slice(b": ping\n\n");
                    return Ok(true);
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(false),
            }
        }
    }

    /// Reads up to a page of events after the cursor into `pending`.
    fn next_page(&mut self) -> Result<(), db::DbError> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(db::connect(&self.shared.config.db_path)?),
        };
        // Up to the newest id at this moment: every event up to it is
        // committed (ids are given in commit order), so the cursor may move
        // past events the filter skips, never to scan them again.
        let last = db::last_event_id(conn)?;
        while self.cursor < last && self.pending.is_empty() {
            let page = db::events_after(conn, self.cursor, self.names.as_deref(), PAGE)?;
            let full = page.len() == PAGE;
            let mut count = 0;
            for event in page.iter().take_while(|e| e.id <= last) {
                write_event(&mut self.pending, event);
                count += 1;
            }
            self.shared.streams.sent.fetch_add(count, Ordering::Relaxed);
            self.cursor = match page.last() {
                Some(e) if full => e.id.min(last),
                _ => last,
            };
        }
        Ok(())
    }
}

impl Read for EventReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.sent == self.pending.len() && !self.produce()? {
            return Ok(0);
        }
        let n = buf.len().min(self.pending.len() - self.sent);
        buf[..n].copy_from_slice(&self.pending[self.sent..self.sent + n]);
        self.sent += n;
        Ok(n)
    }
}

/// One event as Server-Sent Events: `id`, `event`, `data` (the payload is
/// one line of JSON, so one `data:` line), and the blank line.
fn write_event(frame: &mut Vec<u8>, event: &db::EventRow) {
    let _ = write!(frame, "id: {}\nevent: {}\n", event.id, event.event);
    // JSON from serde_json never holds a raw line break; should a payload
    // ever do, each line becomes a `data:` line, which a client joins back.
    for line in event.payload.split('\n') {
        frame.extend_from_slice(b"data: ");
        frame.extend_from_slice(line.trim_end_matches('\r').as_bytes());
        frame.push(b'\n');
    }
    frame.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_one_frame() {
        let mut frame = Vec::new();
        write_event(
            &mut frame,
            &db::EventRow {
                id: 7,
                event: "message.received".into(),
                payload: "{\"a\":1}".into(),
            },
        );
        assert_eq!(
            String::from_utf8(frame).unwrap(),
            "id: 7\nevent: message.received\ndata: {\"a\":1}\n\n"
        );
        let mut frame = Vec::new();
        write_event(
            &mut frame,
            &db::EventRow {
                id: 8,
                event: "x".into(),
                payload: "a\r\nb".into(),
            },
        );
        assert_eq!(
            String::from_utf8(frame).unwrap(),
            "id: 8\nevent: x\ndata: a\ndata: b\n\n"
        );
    }

    #[test]
    fn slots_are_bounded_and_freed() {
        let streams = Arc::new(Streams::new(2));
        let a = streams.reserve().unwrap();
        let _b = streams.reserve().unwrap();
        assert!(streams.reserve().is_none());
        assert_eq!(streams.refused.load(Ordering::Relaxed), 1);
        drop(a);
        assert_eq!(streams.open(), 1);
        let _c = streams.reserve().unwrap();
        streams.close();
        drop(_c);
        assert!(streams.reserve().is_none(), "closed");
    }

    #[test]
    fn notify_never_blocks_and_forgets_closed_streams() {
        let streams = Streams::new(4);
        let slow = streams.subscribe();
        let gone = streams.subscribe();
        drop(gone);
        for _ in 0..10 {
            streams.notify();
        }
        assert_eq!(slow.try_iter().count(), 1, "one pending wake-up");
        assert_eq!(streams.wakers.lock().unwrap().len(), 1);
        streams.close();
        assert!(matches!(
            slow.recv_timeout(std::time::Duration::from_secs(1)),
            Err(RecvTimeoutError::Disconnected)
        ));
    }
}
