//! Bounds on what one client connection may cost the server.
//!
//! Every connection is served by its own thread, which reads each request
//! whole (head and body) before handing it out, and writes the answer. These
//! limits bound how long and how much of that a client can make the server
//! do, so that no client can exhaust the memory, the file descriptors or the
//! threads calling [`Server::recv`](crate::Server::recv).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::{Request, Response, ResponseBox, StatusCode};

/// Where a request's body goes while the connection reads it.
///
/// Decided per request from its head by [`Limits::body_policy`], before any
/// byte of the body is read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyPolicy {
    /// Read the whole body into memory, at most `max` bytes. A longer body,
    /// announced or not, is answered with `413 Payload Too Large` and the
    /// connection is closed without reading the rest.
    Memory {
        /// The largest body accepted, in bytes.
        max: usize,
    },
    /// Stream the body into a temporary file in `dir`, at most `max` bytes;
    /// the request is handed out once the whole body is on disk, and
    /// [`Request::take_spooled_body`](crate::Request::take_spooled_body)
    /// gives the file (positioned at its start). A longer body, announced or
    /// not, is answered with `413 Payload Too Large` as with `Memory`, and
    /// what was written of it is gone.
    ///
    /// The file's name is removed from `dir` as soon as it is created: it
    /// lives only as long as it is open, so it disappears whatever happens
    /// to the request (answered, refused, dropped, or the process killed).
    /// Only a crash in the instant between creating and removing the name
    /// can leave a file behind: its name starts with `.spool-`, and whoever
    /// owns `dir` may remove such files at start.
    Spool {
        /// The largest body accepted, in bytes.
        max: u64,
        /// Where the temporary file is made (the file system of the place
        /// the body will end up, so that nothing crosses devices).
        dir: PathBuf,
    },
}

/// The decision function of [`Limits::body_policy`].
pub type BodyPolicyFn = Arc<dyn Fn(&Request) -> BodyPolicy + Send + Sync>;

/// Builds the answer to a request the connection refuses itself (400, 408,
/// 413, 414, 417, 431, 505), see [`Limits::refusal`].
pub type RefusalFn = Arc<dyn Fn(StatusCode) -> ResponseBox + Send + Sync>;

/// Limits applied to every client connection of a [`Server`](crate::Server).
#[derive(Clone)]
pub struct Limits {
    /// Connections open at once. At the cap, the connection that has waited
    /// longest for its next request is closed to make room; when every
    /// connection is busy, new ones wait in the listen backlog.
    pub max_connections: usize,
    /// Longest request line, in bytes (`414 URI Too Long` past it).
    pub max_request_line: usize,
    /// Largest header section, in bytes, all lines together
    /// (`431 Request Header Fields Too Large` past it).
    pub max_header_bytes: usize,
    /// Most header fields in one request (431 past it).
    pub max_headers: usize,
    /// How long a connection may wait for the first byte of its next request;
    /// then it is closed without an answer.
    pub idle_timeout: Duration,
    /// How long a request may take to arrive, from its first byte to its
    /// last: head and body together (`408 Request Timeout` past it). A body
    /// gets `length / min_transfer_rate` on top.
    pub request_timeout: Duration,
    /// How long one write of a response may block, and the base of the total
    /// time a response of known length may take to write (plus
    /// `length / min_transfer_rate`). A connection that misses either is
    /// closed.
    pub response_timeout: Duration,
    /// Bytes per second a large body or response is expected to move at,
    /// at least; it extends the two deadlines above for large transfers.
    pub min_transfer_rate: u64,
    /// Where each request's body goes (decided from its head).
    pub body_policy: BodyPolicyFn,
    /// The response sent when a request is refused before it is handed out
    /// (an empty one by default). The connection closes after it.
    pub refusal: RefusalFn,
}

impl Limits {
    /// The extra time a transfer of `len` bytes is given.
    pub(crate) fn transfer_allowance(&self, len: u64) -> Duration {
        Duration::from_secs(len / self.min_transfer_rate.max(1))
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 1024,
            max_request_line: 8 * 1024,
            max_header_bytes: 32 * 1024,
            max_headers: 100,
            idle_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            response_timeout: Duration::from_secs(30),
            min_transfer_rate: 64 * 1024,
            body_policy: Arc::new(|_| BodyPolicy::Memory { max: 1024 * 1024 }),
            refusal: Arc::new(|status| Response::empty(status).boxed()),
        }
    }
}

impl fmt::Debug for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limits")
            .field("max_connections", &self.max_connections)
            .field("max_request_line", &self.max_request_line)
            .field("max_header_bytes", &self.max_header_bytes)
            .field("max_headers", &self.max_headers)
            .field("idle_timeout", &self.idle_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("min_transfer_rate", &self.min_transfer_rate)
            .finish_non_exhaustive()
    }
}
