use std::io::Error as IoError;
use std::io::{self, Cursor, ErrorKind, Read, Write};

use std::fmt;
use std::net::SocketAddr;
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::conn::{Conn, OwnedWriter};
use crate::response::Prepared;
use crate::send::{send, SendAs, Sent};
use crate::{HTTPVersion, Header, Method, Response};

/// Represents an HTTP request made by a client.
///
/// A `Request` object is what is produced by the server, and is your what
/// your code must analyse and answer.
///
/// This object implements the `Send` trait, therefore you can dispatch your requests to
/// worker threads.
///
/// # The body is already read
///
/// The connection's own thread reads the whole request, body included, before the
/// `Request` is handed out (see [`Limits`](crate::Limits)), so a client sending
/// slowly never holds the thread that handles the request, and `as_reader` never
/// waits on the network.
///
/// # Pipelining
///
/// If a client sends multiple requests in a row (without waiting for the response),
/// they are handed out one at a time: the next one only once this one is answered.
/// Responses therefore go out in order, and one connection never holds more than one
/// of the threads calling `recv()`.
///
/// # Answering
///
/// [`respond`](Request::respond) writes the response on the calling thread;
/// [`respond_detached`](Request::respond_detached) sends what the client takes at once
/// and leaves the rest to the connection's own thread, so that a client reading slowly
/// (or not at all) never holds the caller for long.
///
/// # Automatic cleanup
///
/// If a `Request` object is destroyed without `into_writer` or `respond` being called,
/// an empty response with a 500 status code (internal server error) will automatically be
/// sent back to the client.
/// This means that if your code fails during the handling of a request, this "internal server
/// error" response will automatically be sent during the stack unwinding.
///
/// # Testing
///
/// If you want to build fake requests to test your server, use [`TestRequest`](crate::test::TestRequest).
pub struct Request {
    // the body, read in full
    data_reader: Option<Box<dyn Read + Send + 'static>>,

    // the body, when spooled to a file (`BodyPolicy::Spool`)
    spooled: Option<std::fs::File>,

    // where the answer goes; None once the request has been answered
    reply: Option<ReplyTo>,

    remote_addr: Option<SocketAddr>,

    // true if HTTPS, false if HTTP
    secure: bool,

    method: Method,

    path: String,

    http_version: HTTPVersion,

    headers: Vec<Header>,

    body_length: Option<usize>,

    // whether the connection ends after this request (`Connection: close`,
    // HTTP/1.0): the response then says so
    closes_connection: bool,
}

/// Where a request's answer goes.
pub(crate) enum ReplyTo {
    /// To the thread serving the connection, which waits for it.
    Connection {
        replies: Sender<Reply>,
        conn: Arc<Conn>,
        /// How long one write to the client may block.
        write_stall: Duration,
        /// How long a response may take in all, on top of its size at
        /// `min_transfer_rate`.
        write_base: Duration,
        min_transfer_rate: u64,
    },
    /// To a writer, at once (test requests).
    Writer(Box<dyn Write + Send + 'static>),
}

/// What the connection's thread is told once a request is answered.
pub(crate) enum Reply {
    /// The handler's thread sent the whole response.
    Sent { close: bool },
    /// The handler's thread sent what the client took at once: send the
    /// rest, then go on with the next request (unless it closes the
    /// connection).
    Rest(Prepared<Box<dyn Read + Send>>),
    /// The handler took the connection's writer (`into_writer`): it owns the
    /// connection from now on.
    Detached,
    /// The handler upgraded the connection: send it what has been read
    /// past this request, then leave the connection to it.
    Upgrade(Sender<Box<dyn Read + Send>>),
}

/// Builds a request whose body is already in memory (or wherever `body`
/// reads from), answered through `writer` at once. For test requests.
#[allow(clippy::too_many_arguments)]
pub(crate) fn new_request<W>(
    secure: bool,
    method: Method,
    path: String,
    version: HTTPVersion,
    headers: Vec<Header>,
    remote_addr: Option<SocketAddr>,
    body: Vec<u8>,
    writer: W,
) -> Request
where
    W: Write + Send + 'static,
{
    let body_length = Some(body.len());
    let mut request = Request::from_head(secure, method, path, version, headers, remote_addr);
    request.body_length = body_length;
    request.set_body(body);
    request.reply = Some(ReplyTo::Writer(Box::new(writer)));
    request
}

impl Request {
    /// A request with no body yet and nowhere to answer: the connection
    /// fills both in once it has read the body.
    pub(crate) fn from_head(
        secure: bool,
        method: Method,
        path: String,
        http_version: HTTPVersion,
        headers: Vec<Header>,
        remote_addr: Option<SocketAddr>,
    ) -> Request {
        Request {
            data_reader: None,
            spooled: None,
            reply: None,
            remote_addr,
            secure,
            method,
            path,
            http_version,
            headers,
            body_length: None,
            closes_connection: false,
        }
    }

    pub(crate) fn set_body_length(&mut self, len: Option<usize>) {
        self.body_length = len;
    }

    pub(crate) fn set_body(&mut self, body: Vec<u8>) {
        self.data_reader = Some(Box::new(Cursor::new(body)));
    }

    pub(crate) fn set_spooled_body(&mut self, file: std::fs::File) {
        self.data_reader = None;
        self.spooled = Some(file);
    }

    pub(crate) fn set_closes_connection(&mut self, closes: bool) {
        self.closes_connection = closes;
    }

    pub(crate) fn set_reply(&mut self, reply: ReplyTo) {
        self.reply = Some(reply);
    }

    /// Returns true if the request was made through HTTPS.
    #[inline]
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Returns the method requested by the client (eg. `GET`, `POST`, etc.).
    #[inline]
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// Returns the resource requested by the client.
    #[inline]
    pub fn url(&self) -> &str {
        &self.path
    }

    /// Returns a list of all headers sent by the client.
    #[inline]
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// Returns the HTTP version of the request.
    #[inline]
    pub fn http_version(&self) -> &HTTPVersion {
        &self.http_version
    }

    /// Returns the length of the body in bytes.
    ///
    /// Returns `None` if the length is unknown.
    #[inline]
    pub fn body_length(&self) -> Option<usize> {
        self.body_length
    }

    /// Returns the address of the client that sent this request.
    ///
    /// The address is always `Some` for TCP listeners, but always `None` for UNIX listeners
    /// (as the remote address of a UNIX client is almost always unnamed).
    ///
    /// Note that this is gathered from the socket. If you receive the request from a proxy,
    /// this function will return the address of the proxy and not the address of the actual
    /// user.
    #[inline]
    pub fn remote_addr(&self) -> Option<&SocketAddr> {
        self.remote_addr.as_ref()
    }

    /// Sends a response with a `Connection: upgrade` header, then turns the `Request` into a `Stream`.
    ///
    /// The main purpose of this function is to support websockets.
    /// If you detect that the request wants to use some kind of protocol upgrade, you can
    ///  call this function to obtain full control of the socket stream.
    ///
    /// The connection is the stream's from then on: it closes when the stream is dropped.
    /// A request carrying `Connection: upgrade` is otherwise served like any other: its
    /// connection never switches to raw reads unless this is called.
    pub fn upgrade<R: Read>(
        mut self,
        protocol: &str,
        response: Response<R>,
    ) -> Box<dyn ReadWrite + Send> {
        use crate::util::CustomStream;

        let version = self.http_version.clone();
        match self.reply.take() {
            Some(ReplyTo::Connection {
                replies,
                conn,
                write_stall,
                ..
            }) => {
                let mut writer = OwnedWriter {
                    conn,
                    stall: write_stall,
                };
                if let Ok(prepared) =
                    response.prepare(&version, &self.headers, false, false, Some(protocol))
                {
                    let _ = writer.write_all(&prepared.head);
                }
                let (tx, rx) = mpsc::channel();
                let rest = match replies.send(Reply::Upgrade(tx)) {
                    Ok(()) => rx.recv().unwrap_or_else(|_| Box::new(io::empty())),
                    Err(_) => Box::new(io::empty()),
                };
                Box::new(CustomStream::new(rest, writer))
            }
            Some(ReplyTo::Writer(mut writer)) => {
                let _ = response.raw_print(
                    writer.by_ref(),
                    version,
                    &self.headers,
                    false,
                    Some(protocol),
                );
                let _ = writer.flush();
                Box::new(CustomStream::new(io::empty(), writer))
            }
            None => Box::new(CustomStream::new(io::empty(), io::sink())),
        }
    }

    /// Allows to read the body of the request.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # use std::io::Read;
    /// # fn get_content_type(_: &tiny_http::Request) -> &'static str { "" }
    /// # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
    /// let mut request = server.recv().unwrap();
    ///
    /// if get_content_type(&request) == "text/plain" {
    ///     let mut content = String::new();
    ///     request.as_reader().read_to_string(&mut content).unwrap();
    /// }
    /// ```
    ///
    /// The body has been read in full before the request was handed out (a client
    /// that sent `Expect: 100-continue` was told to go on then).
    #[inline]
    pub fn as_reader(&mut self) -> &mut dyn Read {
        if let Some(file) = &mut self.spooled {
            return file;
        }
        self.data_reader
            .get_or_insert_with(|| Box::new(io::empty()))
    }

    /// The body's file, when the body policy spooled it to one
    /// ([`BodyPolicy::Spool`](crate::BodyPolicy::Spool)): positioned at the
    /// start of the body, with no name on disk (it is gone once closed).
    /// None for a body read into memory, and once taken.
    pub fn take_spooled_body(&mut self) -> Option<std::fs::File> {
        self.spooled.take()
    }

    /// Turns the `Request` into a writer.
    ///
    /// The writer has a raw access to the stream to the user.
    /// This function is useful for things like CGI, or a stream of events: the
    /// writer may be handed to another thread, and the connection closes when it
    /// is dropped (no other request is read from it). Each write blocks at most
    /// the server's `response_timeout`.
    #[inline]
    pub fn into_writer(mut self) -> Box<dyn Write + Send + 'static> {
        match self.reply.take() {
            Some(ReplyTo::Connection {
                replies,
                conn,
                write_stall,
                ..
            }) => {
                let _ = replies.send(Reply::Detached);
                Box::new(OwnedWriter {
                    conn,
                    stall: write_stall,
                })
            }
            Some(ReplyTo::Writer(writer)) => writer,
            None => Box::new(io::sink()),
        }
    }

    /// Sends a response to this request, writing it on the calling thread
    /// (within the server's `response_timeout`, plus the response's size at
    /// `min_transfer_rate`).
    #[inline]
    pub fn respond<R>(mut self, response: Response<R>) -> Result<(), IoError>
    where
        R: Read,
    {
        let close = self.closes_connection || response.closes_connection();
        let head_only = self.method == Method::Head;
        let version = self.http_version.clone();
        match self.reply.take() {
            Some(ReplyTo::Connection {
                replies,
                conn,
                write_stall,
                write_base,
                min_transfer_rate,
            }) => {
                let result = response
                    .prepare(&version, &self.headers, head_only, close, None)
                    .and_then(|prepared| {
                        let deadline = prepared.total_len.map(|len| {
                            Instant::now()
                                + write_base
                                + Duration::from_secs(len / min_transfer_rate.max(1))
                        });
                        let close = prepared.close;
                        let sender = SendAs::Connection {
                            deadline,
                            stall: write_stall,
                        };
                        send(&conn, prepared, sender).map(|_| close)
                    });
                // A response cut short leaves the connection unusable.
                let close = *result.as_ref().unwrap_or(&true);
                let _ = replies.send(Reply::Sent { close });
                Self::ignore_client_closing_errors(result.map(|_| ()))
            }
            Some(ReplyTo::Writer(mut writer)) => {
                let prepared = response.prepare(&version, &self.headers, head_only, close, None)?;
                Self::ignore_client_closing_errors(prepared.write_to(&mut writer))?;
                Self::ignore_client_closing_errors(writer.flush())
            }
            None => Ok(()),
        }
    }

    /// Sends a response to this request without waiting on the client: the
    /// calling thread sends what the connection takes at once (nearly always
    /// all of it), waiting at most a few milliseconds more, and the
    /// connection's own thread sends any rest, within the server's
    /// `response_timeout` (plus the response's size at `min_transfer_rate`),
    /// closing the connection if it cannot. However slowly the client reads,
    /// the caller is soon free.
    ///
    /// An error means the response could not be prepared (its reader failed
    /// while the start of the body was read) or the client went away.
    pub fn respond_detached<R>(mut self, response: Response<R>) -> Result<(), IoError>
    where
        R: Read + Send + 'static,
    {
        let close = self.closes_connection || response.closes_connection();
        let head_only = self.method == Method::Head;
        let version = self.http_version.clone();
        match self.reply.take() {
            Some(ReplyTo::Connection {
                replies,
                conn,
                write_stall,
                ..
            }) => {
                let result = response
                    .prepare(&version, &self.headers, head_only, close, None)
                    .and_then(|prepared| {
                        let close = prepared.close;
                        let sender = SendAs::Handler { stall: write_stall };
                        Ok(match send(&conn, prepared.boxed(), sender)? {
                            Sent::All => Reply::Sent { close },
                            Sent::Rest(rest) => Reply::Rest(rest),
                        })
                    });
                match result {
                    Ok(reply) => {
                        let _ = replies.send(reply);
                        Ok(())
                    }
                    Err(e) => {
                        // A response cut short leaves the connection unusable.
                        let _ = replies.send(Reply::Sent { close: true });
                        Self::ignore_client_closing_errors(Err(e))
                    }
                }
            }
            other => {
                self.reply = other;
                self.respond(response)
            }
        }
    }

    fn ignore_client_closing_errors(result: io::Result<()>) -> io::Result<()> {
        result.or_else(|err| match err.kind() {
            ErrorKind::BrokenPipe => Ok(()),
            ErrorKind::ConnectionAborted => Ok(()),
            ErrorKind::ConnectionRefused => Ok(()),
            ErrorKind::ConnectionReset => Ok(()),
            _ => Err(err),
        })
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> Result<(), fmt::Error> {
        write!(
            formatter,
            "Request({} {} from {:?})",
            self.method, self.path, self.remote_addr
        )
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if self.reply.is_some() {
            let response = Response::empty(500);
            let reply = self.reply.take();
            let request = Request {
                data_reader: None,
                spooled: None,
                reply,
                remote_addr: self.remote_addr,
                secure: self.secure,
                method: self.method.clone(),
                path: String::new(),
                http_version: self.http_version.clone(),
                headers: Vec::new(),
                body_length: None,
                closes_connection: self.closes_connection,
            };
            let _ = request.respond_detached(response); // ignoring any potential error
        }
    }
}

/// Dummy trait that regroups the `Read` and `Write` traits.
///
/// Automatically implemented on all types that implement both `Read` and `Write`.
pub trait ReadWrite: Read + Write {}
impl<T> ReadWrite for T where T: Read + Write {}

#[cfg(test)]
mod tests {
    use super::Request;

    #[test]
    fn must_be_send() {
        #![allow(dead_code)]
        fn f<T: Send>(_: &T) {}
        fn bar(rq: &Request) {
            f(rq);
        }
    }
}
