//! # Simple usage
//!
//! ## Creating the server
//!
//! The easiest way to create a server is to call `Server::http()`.
//!
//! The `http()` function returns an `IoResult<Server>` which will return an error
//! in the case where the server creation fails (for example if the listening port is already
//! occupied).
//!
//! ```no_run
//! let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! ```
//!
//! A newly-created `Server` will immediately start listening for incoming connections and HTTP
//! requests.
//!
//! ## Receiving requests
//!
//! Calling `server.recv()` will block until the next request is available.
//! This function returns an `IoResult<Request>`, so you need to handle the possible errors.
//!
//! ```no_run
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//!
//! loop {
//!     // blocks until the next request is received
//!     let request = match server.recv() {
//!         Ok(rq) => rq,
//!         Err(e) => { println!("error: {}", e); break }
//!     };
//!
//!     // do something with the request
//!     // ...
//! }
//! ```
//!
//! In a real-case scenario, you will probably want to spawn multiple worker tasks and call
//! `server.recv()` on all of them. Like this:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use std::thread;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! let server = Arc::new(server);
//! let mut guards = Vec::with_capacity(4);
//!
//! for _ in (0 .. 4) {
//!     let server = server.clone();
//!
//!     let guard = thread::spawn(move || {
//!         loop {
//!             let rq = server.recv().unwrap();
//!
//!             // ...
//!         }
//!     });
//!
//!     guards.push(guard);
//! }
//! ```
//!
//! If you don't want to block, you can call `server.try_recv()` instead.
//!
//! ## Handling requests
//!
//! The `Request` object returned by `server.recv()` contains informations about the client's request.
//! The most useful methods are probably `request.method()` and `request.url()` which return
//! the requested method (`GET`, `POST`, etc.) and url.
//!
//! To handle a request, you need to create a `Response` object. See the docs of this object for
//! more infos. Here is an example of creating a `Response` from a file:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! ```
//!
//! All that remains to do is call `request.respond()`:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! # let request = server.recv().unwrap();
//! # let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! let _ = request.respond(response);
//! ```
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![allow(clippy::match_like_matches_macro)]
// Lints of newer toolchains that fire on the 0.12 code left as it was.
#![allow(
    dead_code,
    clippy::doc_overindented_list_items,
    clippy::unnecessary_map_or,
    clippy::io_other_error,
    clippy::needless_borrow
)]

use std::error::Error;
use std::io::Error as IoError;
use std::io::ErrorKind as IoErrorKind;
use std::io::Result as IoResult;
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use client::ClientConnection;
use conn::Registry;
use connection::Connection;
use util::MessagesQueue;

pub use common::{HTTPVersion, Header, HeaderField, Method, StatusCode};
pub use connection::{ConfigListenAddr, ListenAddr, Listener};
pub use limits::{BodyPolicy, BodyPolicyFn, Limits, RefusalFn};
pub use request::{ReadWrite, Request};
pub use response::{Response, ResponseBox};
pub use test::TestRequest;

mod client;
mod common;
mod conn;
mod connection;
mod limits;
mod parse;
mod request;
mod response;
mod send;
mod test;
mod util;

/// The main class of this library.
///
/// Destroying this object will immediately close the listening socket. Connections
/// already accepted are served until their client closes them or their deadlines
/// pass (see [`Limits`]); requests already returned by `recv()` are answered.
pub struct Server {
    // should be false as long as the server exists
    // when set to true, all the subtasks will close within a few hundreds ms
    close: Arc<AtomicBool>,

    // queue for messages received by child threads
    messages: Arc<MessagesQueue<Message>>,

    // result of TcpListener::local_addr()
    listening_addr: ListenAddr,

    // the open connections
    registry: Arc<Registry>,
}

enum Message {
    Error(IoError),
    NewRequest(Request),
}

impl From<IoError> for Message {
    fn from(e: IoError) -> Message {
        Message::Error(e)
    }
}

impl From<Request> for Message {
    fn from(rq: Request) -> Message {
        Message::NewRequest(rq)
    }
}

// this trait is to make sure that Server implements Share and Send
#[doc(hidden)]
trait MustBeShareDummy: Sync + Send {}
#[doc(hidden)]
impl MustBeShareDummy for Server {}

pub struct IncomingRequests<'a> {
    server: &'a Server,
}

/// Represents the parameters required to create a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The addresses to try to listen to.
    pub addr: ConfigListenAddr,

    /// If `Some`, then the server will use SSL to encode the communications.
    pub ssl: Option<SslConfig>,
}

/// Configuration of the server for SSL.
#[derive(Debug, Clone)]
pub struct SslConfig {
    /// Contains the public certificate to send to clients.
    pub certificate: Vec<u8>,
    /// Contains the ultra-secret private key used to decode communications.
    pub private_key: Vec<u8>,
}

impl Server {
    /// Shortcut for a simple server on a specific address.
    #[inline]
    pub fn http<A>(addr: A) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::from_socket_addrs(addr)?,
            ssl: None,
        })
    }

    #[cfg(unix)]
    #[inline]
    /// Shortcut for a UNIX socket server at a specific path
    pub fn http_unix(
        path: &std::path::Path,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::unix_from_path(path),
            ssl: None,
        })
    }

    /// Builds a new server that listens on the specified address.
    pub fn new(config: ServerConfig) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let listener = config.addr.bind()?;
        Self::from_listener(listener, config.ssl)
    }

    /// Builds a new server using the specified TCP listener.
    ///
    /// This is useful if you've constructed TcpListener using some less usual method
    /// such as from systemd. For other cases, you probably want the `new()` function.
    pub fn from_listener<L: Into<Listener>>(
        listener: L,
        ssl_config: Option<SslConfig>,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        if ssl_config.is_some() {
            return Err("this build of tiny_http has no TLS support".into());
        }
        Self::from_listener_with_limits(listener, Limits::default())
    }

    /// Builds a new server using the specified listener, serving its
    /// connections within `limits`.
    pub fn from_listener_with_limits<L: Into<Listener>>(
        listener: L,
        limits: Limits,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let listener = listener.into();
        let close_trigger = Arc::new(AtomicBool::new(false));
        let local_addr = listener.local_addr()?;
        log::debug!("Server listening on {}", local_addr);

        // creating a task where server.accept() is continuously called
        // and ClientConnection objects are pushed in the messages queue
        let messages = MessagesQueue::with_capacity(8);
        let registry = Registry::new();

        let accept_loop = AcceptLoop {
            listener,
            limits: Arc::new(limits),
            close: Arc::clone(&close_trigger),
            messages: Arc::clone(&messages),
            registry: Arc::clone(&registry),
        };
        thread::Builder::new()
            .name("tiny-http-accept".into())
            .spawn(move || accept_loop.run())?;

        // result
        Ok(Server {
            messages,
            close: close_trigger,
            listening_addr: local_addr,
            registry,
        })
    }

    /// Returns an iterator for all the incoming requests.
    ///
    /// The iterator will return `None` if the server socket is shutdown.
    #[inline]
    pub fn incoming_requests(&self) -> IncomingRequests<'_> {
        IncomingRequests { server: self }
    }

    /// Returns the address the server is listening to.
    #[inline]
    pub fn server_addr(&self) -> ListenAddr {
        self.listening_addr.clone()
    }

    /// Returns the number of clients currently connected to the server.
    pub fn num_connections(&self) -> usize {
        self.registry.len()
    }

    /// Blocks until an HTTP request has been submitted and returns it.
    pub fn recv(&self) -> IoResult<Request> {
        match self.messages.pop() {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(rq),
            None => Err(IoError::new(IoErrorKind::Other, "thread unblocked")),
        }
    }

    /// Same as `recv()` but doesn't block longer than timeout
    pub fn recv_timeout(&self, timeout: Duration) -> IoResult<Option<Request>> {
        match self.messages.pop_timeout(timeout) {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(Some(rq)),
            None => Ok(None),
        }
    }

    /// Same as `recv()` but doesn't block.
    pub fn try_recv(&self) -> IoResult<Option<Request>> {
        match self.messages.try_pop() {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(Some(rq)),
            None => Ok(None),
        }
    }

    /// Unblock thread stuck in recv() or incoming_requests().
    /// If there are several such threads, only one is unblocked.
    /// This method allows graceful shutdown of server.
    pub fn unblock(&self) {
        self.messages.unblock();
    }
}

/// The thread accepting connections: each gets a thread of its own (from a
/// pool) running a `ClientConnection`.
struct AcceptLoop {
    listener: Listener,
    limits: Arc<Limits>,
    close: Arc<AtomicBool>,
    messages: Arc<MessagesQueue<Message>>,
    registry: Arc<Registry>,
}

/// What a failed `accept()` means for the loop.
#[derive(Debug, PartialEq, Eq)]
enum AcceptFailure {
    /// Try again at once (the client gave up before we accepted, a signal).
    Transient,
    /// Out of descriptors, memory or buffers (EMFILE, ENFILE, ENOBUFS,
    /// ENOMEM, …): back off and try again; connections will close.
    Exhausted,
    /// The listener itself is broken: stop.
    Fatal,
}

fn classify_accept_error(e: &IoError) -> AcceptFailure {
    match e.kind() {
        IoErrorKind::Interrupted
        | IoErrorKind::WouldBlock
        | IoErrorKind::TimedOut
        | IoErrorKind::ConnectionAborted
        | IoErrorKind::ConnectionReset => AcceptFailure::Transient,
        // EINVAL: not listening (or shut down); EBADF (9 on every Unix): the
        // descriptor is gone. Nothing will ever be accepted again.
        IoErrorKind::InvalidInput => AcceptFailure::Fatal,
        _ if e.raw_os_error() == Some(9) => AcceptFailure::Fatal,
        _ => AcceptFailure::Exhausted,
    }
}

/// Sends an error to `recv()` when the accept loop stops while the server
/// is still wanted (a fatal error, a panic): whoever serves the requests
/// learns that no more will come, instead of waiting forever on a port that
/// no longer listens.
struct ReportStop {
    close: Arc<AtomicBool>,
    messages: Arc<MessagesQueue<Message>>,
    error: Option<IoError>,
}

impl Drop for ReportStop {
    fn drop(&mut self) {
        if !self.close.load(Relaxed) {
            let e = self
                .error
                .take()
                .unwrap_or_else(|| IoError::other("the accept thread stopped"));
            log::error!("no longer accepting connections: {}", e);
            self.messages.push(e.into());
        }
    }
}

impl AcceptLoop {
    fn run(self) {
        let mut report = ReportStop {
            close: Arc::clone(&self.close),
            messages: Arc::clone(&self.messages),
            error: None,
        };
        let tasks_pool = util::TaskPool::new();
        let mut backoff = Duration::ZERO;
        let mut last_warning: Option<Instant> = None;

        log::debug!("Running accept thread");
        while !self.close.load(Relaxed) {
            self.registry
                .wait_for_room(self.limits.max_connections, || self.close.load(Relaxed));
            let failure = match self.listener.accept() {
                Ok((sock, _)) => {
                    backoff = Duration::ZERO;
                    let conn = self.registry.add(sock);
                    self.registry.enforce_cap(self.limits.max_connections);
                    let client = ClientConnection::new(
                        conn,
                        Arc::clone(&self.limits),
                        Arc::clone(&self.messages),
                    );
                    let mut client = Some(client);
                    match tasks_pool.spawn(Box::new(move || {
                        if let Some(client) = client.take() {
                            client.run();
                        }
                    })) {
                        Ok(()) => continue,
                        // The connection was dropped with the task: closed.
                        Err(e) => (e, AcceptFailure::Exhausted),
                    }
                }
                Err(e) => {
                    let kind = classify_accept_error(&e);
                    (e, kind)
                }
            };
            match failure {
                (_, AcceptFailure::Transient) => {}
                (e, AcceptFailure::Fatal) => {
                    report.error = Some(e);
                    return;
                }
                (e, AcceptFailure::Exhausted) => {
                    // The pending connection stays in the backlog (or was
                    // dropped): free a descriptor by closing the connection
                    // idle longest, wait a little, go on. Never give up: this
                    // passes as connections close.
                    if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                        log::warn!(
                            "accepting a connection failed ({}); {} open; retrying",
                            e,
                            self.registry.len()
                        );
                        last_warning = Some(Instant::now());
                    }
                    self.registry.evict_idle();
                    backoff =
                        (backoff * 2).clamp(Duration::from_millis(5), Duration::from_millis(500));
                    thread::sleep(backoff);
                }
            }
        }
        log::debug!("Terminating accept thread");
    }
}

impl Iterator for IncomingRequests<'_> {
    type Item = Request;
    fn next(&mut self) -> Option<Request> {
        self.server.recv().ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.close.store(true, Relaxed);
        // Connect briefly to ourselves to unblock the accept thread
        let maybe_stream = match &self.listening_addr {
            ListenAddr::IP(addr) => TcpStream::connect(addr).map(Connection::from),
            #[cfg(unix)]
            ListenAddr::Unix(addr) => {
                // TODO: use connect_addr when its stabilized.
                let path = addr.as_pathname().unwrap();
                std::os::unix::net::UnixStream::connect(path).map(Connection::from)
            }
        };
        if let Ok(stream) = maybe_stream {
            let _ = stream.shutdown(Shutdown::Both);
        }

        #[cfg(unix)]
        if let ListenAddr::Unix(addr) = &self.listening_addr {
            if let Some(path) = addr.as_pathname() {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}
