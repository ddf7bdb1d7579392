//! One client connection, served by its own thread from accept to close.
//!
//! The thread reads a request whole (head and body, within the limits and
//! deadlines of `Limits`) and hands it to the server's queue; the handler
//! sends the answer (this thread sends any rest the client did not take at
//! once), and only then is the next request read. So one connection never
//! occupies more than one of the threads calling `Server::recv`, and never
//! while its client is slow to send or to read.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Seek, Write};
use std::net::Shutdown;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{HTTPVersion, Header};
use crate::conn::{Conn, DeadlineWriter, SocketReader};
use crate::parse::{self, BodyFraming, Framing, HeadError};
use crate::request::{Reply, ReplyTo};
use crate::send::{send, SendAs};
use crate::util::MessagesQueue;
use crate::{BodyPolicy, Limits, Message, Method, Request, StatusCode};

/// Read buffer of a connection: a request head usually fits in one read.
const READ_BUFFER: usize = 8 * 1024;
/// Empty lines tolerated before a request line (RFC 9112 §2.2).
const MAX_EMPTY_LINES: usize = 4;
/// While the answer to the last request may still have a rest for this
/// thread to send (a client taking it slowly), the wait for the next request
/// wakes this often to look.
const PENDING_POLL: Duration = Duration::from_millis(10);
/// Longest chunk-size line, extensions included.
const MAX_CHUNK_LINE: usize = 1024;
/// A body is read into a buffer that grows with what arrives, starting at
/// most this large: an announced length is never allocated up front.
const BODY_START_CAPACITY: usize = 64 * 1024;
/// A spooled body moves from the socket to its file in reads this large.
const SPOOL_BUFFER: usize = 64 * 1024;
/// After refusing a request, what the client still sends is read (into a
/// small buffer, and dropped) for this long, at most this much, before the
/// connection is closed: closing with unread data makes the kernel reset
/// the connection, which destroys the refusal before a client still
/// sending its body reads it.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: u64 = 8 * 1024 * 1024;

/// Why a request could not be read.
enum ReadError {
    /// The client went away or stayed silent: nothing to answer.
    Gone,
    /// Too slow: 408.
    Timeout,
    /// Refused with this status.
    Refused(HeadError),
    /// The body is over the policy's limit: 413.
    TooLarge,
    /// The body could not be written to its spool file: 500.
    Storage(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> ReadError {
        if e.kind() == ErrorKind::TimedOut {
            ReadError::Timeout
        } else {
            ReadError::Gone
        }
    }
}

impl From<HeadError> for ReadError {
    fn from(e: HeadError) -> ReadError {
        ReadError::Refused(e)
    }
}

/// Where a body being read goes.
enum BodyOut {
    Memory(Vec<u8>),
    File { file: File, written: u64 },
}

impl BodyOut {
    fn len(&self) -> u64 {
        match self {
            BodyOut::Memory(body) => body.len() as u64,
            BodyOut::File { written, .. } => *written,
        }
    }

    /// Moves exactly `len` bytes of `input` here.
    fn read_exactly(
        &mut self,
        input: &mut BufReader<SocketReader>,
        len: u64,
    ) -> Result<(), ReadError> {
        match self {
            BodyOut::Memory(body) => {
                let before = body.len();
                input.take(len).read_to_end(body)?;
                if ((body.len() - before) as u64) < len {
                    return Err(ReadError::Gone);
                }
            }
            BodyOut::File { file, written } => {
                // Reads this large bypass the connection's 8 KiB buffer.
                let mut buf = vec![0; len.min(SPOOL_BUFFER as u64) as usize];
                let mut left = len;
                while left > 0 {
                    let want = left.min(buf.len() as u64) as usize;
                    let n = input.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(ReadError::Gone);
                    }
                    file.write_all(&buf[..n]).map_err(ReadError::Storage)?;
                    left -= n as u64;
                    *written += n as u64;
                }
            }
        }
        Ok(())
    }
}

/// A new temporary file in `dir`, its name already removed: it lives only
/// while open (see `BodyPolicy::Spool`).
fn spool_file(dir: &Path) -> io::Result<File> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    loop {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = dir.join(format!(
            ".spool-{}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            nanos
        ));
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            // A leftover of an earlier process with the same id.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            other => other?,
        };
        std::fs::remove_file(&path)?;
        return Ok(file);
    }
}

/// How a connection goes on after a request.
enum Next {
    /// Read the next request.
    KeepAlive,
    /// Close it now.
    Close,
    /// Finish sending, linger, close.
    CloseGracefully,
    /// Someone else owns the connection now (`into_writer`, `upgrade`).
    HandedOver,
}

/// A request head, parsed and checked.
struct Head {
    method: Method,
    target: String,
    version: HTTPVersion,
    headers: Vec<Header>,
    framing: Framing,
}

pub(crate) struct ClientConnection {
    conn: Arc<Conn>,
    /// The client's address, asked once (each ask is a system call).
    remote_addr: Option<std::net::SocketAddr>,
    input: BufReader<SocketReader>,
    limits: Arc<Limits>,
    messages: Arc<MessagesQueue<Message>>,
    replies_tx: mpsc::Sender<Reply>,
    replies: Receiver<Reply>,
    /// Whether the answer to the last request handed out may not be sent
    /// yet (see `wait_for_request`).
    answer_pending: bool,
    /// The line being read (reused).
    line: Vec<u8>,
}

impl ClientConnection {
    pub(crate) fn new(
        conn: Arc<Conn>,
        limits: Arc<Limits>,
        messages: Arc<MessagesQueue<Message>>,
    ) -> ClientConnection {
        let reader = SocketReader {
            conn: Arc::clone(&conn),
            deadline: None,
            stall: limits.idle_timeout,
        };
        let (replies_tx, replies) = mpsc::channel();
        ClientConnection {
            remote_addr: conn.peer_addr(),
            conn,
            input: BufReader::with_capacity(READ_BUFFER, reader),
            limits,
            messages,
            replies_tx,
            replies,
            answer_pending: false,
            line: Vec::with_capacity(256),
        }
    }

    /// Serves requests until the connection ends.
    pub(crate) fn run(mut self) {
        let next = loop {
            match self.serve_one() {
                Next::KeepAlive => continue,
                other => break other,
            }
        };
        match next {
            Next::KeepAlive | Next::HandedOver => {}
            Next::Close => self.conn.shutdown(Shutdown::Both),
            Next::CloseGracefully => self.linger_and_close(),
        }
    }

    fn serve_one(&mut self) -> Next {
        if let Err(next) = self.wait_for_request() {
            return next;
        }
        let started = Instant::now();
        self.set_read_deadline(
            started + self.limits.request_timeout,
            self.limits.request_timeout,
        );
        let head = match self.read_head() {
            Ok(head) => head,
            Err(e) => return self.refuse(e),
        };
        if !self.conn.set_busy() {
            return Next::Close;
        }

        let mut request = Request::from_head(
            false,
            head.method,
            head.target,
            head.version,
            head.headers,
            self.remote_addr,
        );
        request.set_closes_connection(!head.framing.keep_alive);
        let policy = (self.limits.body_policy)(&request);
        let max = match &policy {
            BodyPolicy::Memory { max } => *max as u64,
            BodyPolicy::Spool { max, .. } => *max,
        };
        match head.framing.body {
            BodyFraming::None => {
                request.set_body_length(Some(0));
                request.set_body(Vec::new());
            }
            BodyFraming::Length(len) if len > max => {
                return self.refuse(ReadError::TooLarge);
            }
            framing => {
                request.set_body_length(match framing {
                    BodyFraming::Length(len) => Some(len as usize),
                    _ => None,
                });
                let mut out = match &policy {
                    BodyPolicy::Spool { dir, .. } => match spool_file(dir) {
                        Ok(file) => BodyOut::File { file, written: 0 },
                        Err(e) => return self.refuse(ReadError::Storage(e)),
                    },
                    _ => BodyOut::Memory(Vec::new()),
                };
                if head.framing.expect_continue {
                    if let Err(e) = self.write_continue() {
                        log::debug!("could not send 100 Continue: {}", e);
                        return Next::Close;
                    }
                }
                if let Err(e) = self.read_body(framing, max, started, &mut out) {
                    return self.refuse(e);
                }
                match out {
                    BodyOut::Memory(body) => request.set_body(body),
                    BodyOut::File { mut file, written } => {
                        if let Err(e) = file.flush().and_then(|()| file.rewind()) {
                            return self.refuse(ReadError::Storage(e));
                        }
                        request.set_body_length(Some(written as usize));
                        request.set_spooled_body(file);
                    }
                }
            }
        }
        request.set_reply(ReplyTo::Connection {
            replies: self.replies_tx.clone(),
            conn: Arc::clone(&self.conn),
            write_stall: self.limits.response_timeout,
            write_base: self.limits.response_timeout,
            min_transfer_rate: self.limits.min_transfer_rate,
        });
        self.messages.push(request.into());
        self.answer_pending = true;
        Next::KeepAlive
    }

    /// Waits for the first byte of the next request, and for the answer to
    /// the last one to be sent. Usually the handler's thread sends it whole
    /// (`respond_detached`) and the client's next request finds it done, so
    /// the two threads never wait on each other; while it is pending, this
    /// looks every `PENDING_POLL` for a rest of the answer left to it.
    /// A request is read only once the answer before it is sent: bytes that
    /// follow an upgrade are never taken for a request.
    fn wait_for_request(&mut self) -> Result<(), Next> {
        loop {
            if self.answer_pending {
                self.set_read_wait(None, PENDING_POLL);
            } else {
                // Waiting for a request: the connection may be closed to
                // make room.
                self.conn.set_idle();
                self.set_read_wait(
                    Some(Instant::now() + self.limits.idle_timeout),
                    self.limits.idle_timeout,
                );
            }
            match self.input.fill_buf() {
                Ok([]) => return Err(Next::Close),
                Ok(_) => break,
                Err(e) if e.kind() == ErrorKind::TimedOut && self.answer_pending => {
                    if let Ok(reply) = self.replies.try_recv() {
                        self.take_reply(reply)?;
                    }
                }
                Err(_) => return Err(Next::Close),
            }
        }
        while self.answer_pending {
            match self.replies.recv() {
                Ok(reply) => self.take_reply(reply)?,
                // Every request answers (its drop sends a 500); this is a
                // server shutting down.
                Err(_) => return Err(Next::Close),
            }
        }
        Ok(())
    }

    /// Acts on the handler's answer to the request handed out.
    fn take_reply(&mut self, reply: Reply) -> Result<(), Next> {
        self.answer_pending = false;
        match reply {
            Reply::Sent { close: false } => Ok(()),
            Reply::Sent { close: true } => Err(Next::CloseGracefully),
            Reply::Rest(rest) => {
                let close = rest.close;
                let deadline = rest.total_len.map(|len| {
                    Instant::now()
                        + self.limits.response_timeout
                        + self.limits.transfer_allowance(len)
                });
                let sender = SendAs::Connection {
                    deadline,
                    stall: self.limits.response_timeout,
                };
                match send(&self.conn, rest, sender) {
                    Ok(_) if close => Err(Next::CloseGracefully),
                    Ok(_) => Ok(()),
                    Err(e) => {
                        log::debug!("could not send a response: {}", e);
                        Err(Next::Close)
                    }
                }
            }
            Reply::Detached => Err(Next::HandedOver),
            Reply::Upgrade(to) => {
                // What was read past the request belongs to the new
                // protocol: the reader goes with its buffer. Its reads wait
                // at most `request_timeout` each, with no total deadline.
                let empty = BufReader::with_capacity(
                    0,
                    SocketReader {
                        conn: Arc::clone(&self.conn),
                        deadline: None,
                        stall: self.limits.request_timeout,
                    },
                );
                let mut input = std::mem::replace(&mut self.input, empty);
                input.get_mut().deadline = None;
                let _ = to.send(Box::new(input));
                Err(Next::HandedOver)
            }
        }
    }

    fn set_read_wait(&mut self, deadline: Option<Instant>, stall: Duration) {
        let reader = self.input.get_mut();
        reader.deadline = deadline;
        reader.stall = stall;
    }

    fn set_read_deadline(&mut self, deadline: Instant, stall: Duration) {
        let reader = self.input.get_mut();
        reader.deadline = Some(deadline);
        reader.stall = stall;
    }

    /// Reads one line into `self.line`, without its CRLF. A line longer than
    /// `max` is `too_long`; a line not ended by CRLF, or holding a CR, is
    /// refused (a bare LF is how a header hides inside another).
    fn read_line(&mut self, max: usize, too_long: HeadError) -> Result<(), ReadError> {
        self.line.clear();
        loop {
            let available = self.input.fill_buf()?;
            if available.is_empty() {
                return Err(ReadError::Gone);
            }
            let (take, done) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            if self.line.len() + take > max.saturating_add(2) {
                return Err(too_long.into());
            }
            self.line.extend_from_slice(&available[..take]);
            self.input.consume(take);
            if done {
                break;
            }
        }
        self.line.pop(); // the LF
        if self.line.pop() != Some(b'\r') {
            return Err(HeadError::BadRequest("a line ends with a bare LF").into());
        }
        if self.line.contains(&b'\r') {
            return Err(HeadError::BadRequest("a line holds a bare CR").into());
        }
        Ok(())
    }

    fn read_head(&mut self) -> Result<Head, ReadError> {
        let limits = Arc::clone(&self.limits);
        let mut empty_lines = 0;
        loop {
            self.read_line(limits.max_request_line, HeadError::UriTooLong)?;
            if !self.line.is_empty() {
                break;
            }
            empty_lines += 1;
            if empty_lines > MAX_EMPTY_LINES {
                return Err(HeadError::BadRequest("empty lines instead of a request").into());
            }
        }
        let (method, target, version) = parse::request_line(&self.line)?;
        let headers = self.read_fields(&limits)?;
        let framing = parse::framing(&version, &headers)?;
        Ok(Head {
            method,
            target,
            version,
            headers,
            framing,
        })
    }

    /// Header (or trailer) lines up to the empty line, within the caps.
    fn read_fields(&mut self, limits: &Limits) -> Result<Vec<Header>, ReadError> {
        let mut headers = Vec::with_capacity(16);
        let mut budget = limits.max_header_bytes;
        loop {
            self.read_line(budget, HeadError::HeadersTooLarge)?;
            if self.line.is_empty() {
                return Ok(headers);
            }
            if headers.len() == limits.max_headers {
                return Err(HeadError::HeadersTooLarge.into());
            }
            budget = budget.saturating_sub(self.line.len() + 2);
            headers.push(parse::header_line(&self.line)?);
        }
    }

    /// Reads a body of at most `max` bytes into `out`, by the request's
    /// deadline extended for its size.
    fn read_body(
        &mut self,
        framing: BodyFraming,
        max: u64,
        started: Instant,
        out: &mut BodyOut,
    ) -> Result<(), ReadError> {
        let announced = match framing {
            BodyFraming::Length(len) => len,
            _ => max,
        };
        let deadline =
            started + self.limits.request_timeout + self.limits.transfer_allowance(announced);
        self.set_read_deadline(deadline, self.limits.request_timeout);
        if let BodyOut::Memory(body) = out {
            body.reserve((announced as usize).min(BODY_START_CAPACITY));
        }
        match framing {
            BodyFraming::None => {}
            BodyFraming::Length(len) => out.read_exactly(&mut self.input, len)?,
            BodyFraming::Chunked => {
                loop {
                    self.read_line(
                        MAX_CHUNK_LINE,
                        HeadError::BadRequest("a chunk size line is too long"),
                    )?;
                    let size = parse::chunk_size(&self.line)?;
                    if size == 0 {
                        break;
                    }
                    if out.len().saturating_add(size) > max {
                        return Err(ReadError::TooLarge);
                    }
                    out.read_exactly(&mut self.input, size)?;
                    self.read_line(0, HeadError::BadRequest("a chunk is longer than its size"))?;
                }
                let limits = Arc::clone(&self.limits);
                // Trailer fields are checked like headers, then dropped.
                self.read_fields(&limits)?;
            }
        }
        Ok(())
    }

    fn writer(&self, deadline: Option<Instant>) -> DeadlineWriter<'_> {
        DeadlineWriter {
            conn: &self.conn,
            deadline,
            stall: self.limits.response_timeout,
        }
    }

    fn write_continue(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + self.limits.response_timeout;
        self.writer(Some(deadline))
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
    }

    /// Answers a request that cannot be served, then ends the connection.
    fn refuse(&mut self, e: ReadError) -> Next {
        let status = match e {
            ReadError::Gone => return Next::Close,
            ReadError::Timeout => 408,
            ReadError::TooLarge => 413,
            ReadError::Storage(e) => {
                log::warn!("could not spool a request body: {}", e);
                500
            }
            ReadError::Refused(e) => {
                if let HeadError::BadRequest(why) = e {
                    log::debug!("refused a request from {:?}: {}", self.remote_addr, why);
                }
                e.status()
            }
        };
        let response = (self.limits.refusal)(StatusCode(status));
        let sender = SendAs::Connection {
            deadline: Some(Instant::now() + self.limits.response_timeout),
            stall: self.limits.response_timeout,
        };
        match response
            .prepare(&HTTPVersion(1, 1), &[], false, true, None)
            .and_then(|prepared| send(&self.conn, prepared, sender))
        {
            Ok(_) => Next::CloseGracefully,
            Err(_) => Next::Close,
        }
    }

    /// Stops sending, then reads (and drops) what the client still sends,
    /// briefly, so that it gets to read the last response before the
    /// connection closes.
    fn linger_and_close(mut self) {
        self.conn.shutdown(Shutdown::Write);
        self.set_read_deadline(Instant::now() + LINGER_TIME, LINGER_TIME);
        let _ = io::copy(&mut (&mut self.input).take(LINGER_BYTES), &mut io::sink());
        self.conn.shutdown(Shutdown::Both);
    }
}
