//! The HTTP worker pool: N named threads share one `tiny_http::Server`, each
//! with its own SQLite connection. A worker takes a request (already read
//! whole by its connection's thread: body capped at 1 MiB, or a file reply's
//! spooled to a nameless temporary file), finds the route,
//! checks access and the rate limit, runs the handler under a panic guard,
//! adds the security headers, sends the answer without waiting on the
//! client (what the client does not take at once, its connection's thread
//! sends), and hands the audit row and the metrics off the request path.
//! No worker waits on a client.

use crate::db::{self, AuditEntry};
use crate::error::ApiError;
use crate::router::{self, Access, Found};
use crate::threads::Ends;
use crate::{auth, clock};
use rusqlite::Connection;
use serde_json::json;
use std::io::{Cursor, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use crate::ops::Ctx;
pub use crate::web::{Body, MAX_BODY, Method, Request, Response, error_response, log_safe};
use crate::web::{parse_query, percent_decode};

/// Starts `count` workers on `server`; each gets its own `Ctx` from `make_ctx`.
pub fn spawn_workers(
    server: Arc<tiny_http::Server>,
    count: usize,
    ends: &Ends,
    mut make_ctx: impl FnMut() -> Result<Ctx, String>,
) -> Result<Vec<JoinHandle<()>>, String> {
    let mut joins = Vec::with_capacity(count);
    for n in 0..count {
        let ctx = make_ctx()?;
        let server = Arc::clone(&server);
        let join = std::thread::Builder::new()
            .name(format!("http-{n}"))
            .spawn(ends.report(move || worker_main(&server, ctx)))
            .map_err(|e| format!("could not start an HTTP worker: {e}"))?;
        joins.push(join);
    }
    Ok(joins)
}

fn worker_main(server: &tiny_http::Server, mut ctx: Ctx) {
    loop {
        match server.recv() {
            Ok(raw) => serve_one(&mut ctx, raw),
            // `unblock()` (shutdown) ends the loop; so does a listener that
            // failed for good (tiny_http has logged why): this worker then
            // stops, and a stopped worker makes the process exit for its
            // supervisor to restart it.
            Err(_) => return,
        }
    }
}

fn serve_one(ctx: &mut Ctx, mut raw: tiny_http::Request) {
    let started = Instant::now();
    let read = read_request(&mut raw);
    let (response, req, route_name) = match read {
        Ok(req) => {
            let (response, route_name) = dispatch(ctx, &req);
            (response, Some(req), route_name)
        }
        Err(e) => (error_response(&e), None, "unmatched"),
    };
    let status = response.status;
    let elapsed = started.elapsed();
    let method = req.as_ref().map(|r| r.method).unwrap_or(Method::Other);
    let path = req
        .as_ref()
        .map(|r| r.path.clone())
        .unwrap_or_else(|| raw.url().split('?').next().unwrap_or("").to_string());
    let ip = raw
        .remote_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    if let Err(e) = respond(raw, response) {
        log::debug!("could not answer {ip}: {e}");
    }
    log::info!(
        "{} {} {} {}us",
        method.as_str(),
        log_safe(&path),
        status,
        elapsed.as_micros()
    );
    ctx.shared
        .metrics
        .record_request(route_name, method.as_str(), status, elapsed.as_secs_f64());
    let is_api = path.starts_with("/api/") || path.starts_with("/media/") || path == "/metrics";
    // A request without credentials (a browser's first, before the Basic
    // challenge) is not a failed login; a wrong key or password is.
    let auth_failed = status == 401 && req.as_ref().is_some_and(carries_credentials);
    if is_api || auth_failed {
        ctx.audit.record(AuditEntry {
            action: if auth_failed {
                "auth_failed"
            } else {
                "api_request"
            }
            .into(),
            method: Some(method.as_str().into()),
            path: Some(path),
            status: Some(status),
            ip: Some(ip),
            duration_us: Some(elapsed.as_micros() as i64),
            details: None,
            created_at: clock::now_secs(),
        });
    }
}

fn read_request(raw: &mut tiny_http::Request) -> Result<Request, ApiError> {
    let method = match raw.method() {
        tiny_http::Method::Get | tiny_http::Method::Head => Method::Get,
        tiny_http::Method::Post => Method::Post,
        tiny_http::Method::Put => Method::Put,
        tiny_http::Method::Patch => Method::Patch,
        tiny_http::Method::Delete => Method::Delete,
        _ => Method::Other,
    };
    let url = raw.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let segments = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode(s, false))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| ApiError::bad("The path has a malformed percent-escape"))?;
    let query = parse_query(query)
        .ok_or_else(|| ApiError::bad("The query string has a malformed percent-escape"))?;
    let headers: Vec<(String, String)> = raw
        .headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_ascii_lowercase(),
                h.value.as_str().to_string(),
            )
        })
        .collect();
    // The connection has read the body whole, within `body_policy`: into a
    // file (a large upload), or into memory, from which this copies it.
    let spooled = raw.take_spooled_body();
    let mut body = Vec::new();
    if spooled.is_none() {
        body.reserve(raw.body_length().unwrap_or(0).min(MAX_BODY));
        raw.as_reader()
            .take(MAX_BODY as u64 + 1)
            .read_to_end(&mut body)
            .map_err(|_| ApiError::bad("The request body could not be read"))?;
        if body.len() > MAX_BODY {
            return Err(ApiError::PayloadTooLarge);
        }
    }
    Ok(Request {
        method,
        path: path.to_string(),
        segments,
        query,
        headers,
        body,
        spooled,
        ip: raw
            .remote_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default(),
    })
}

/// Finds the route, checks access, runs the handler under a panic guard.
/// Returns the response and the route's template (for metrics).
pub fn dispatch(ctx: &mut Ctx, req: &Request) -> (Response, &'static str) {
    let segments: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    let (route, params) = match router::find(req.method, &segments) {
        Found::Route(route, params) => (route, params),
        Found::WrongMethod(allowed) => {
            let response = error_response(&ApiError::MethodNotAllowed)
                .with_header("Allow", allowed.join(", "));
            return (response, "unmatched");
        }
        Found::Nothing => {
            let e = ApiError::NotFound(format!(
                "Route {} {} not found",
                req.method.as_str(),
                req.path
            ));
            return (error_response(&e), "unmatched");
        }
    };
    let mut rate_headers: Vec<(&'static str, String)> = Vec::new();
    let outcome = check_access(ctx, req, route.access, &mut rate_headers).and_then(|()| {
        match catch_unwind(AssertUnwindSafe(|| (route.handler)(ctx, req, &params))) {
            Ok(result) => result,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(ApiError::Internal(format!(
                    "handler for {} panicked: {what}",
                    route.path
                )))
            }
        }
    });
    let mut response = outcome.unwrap_or_else(|e| {
        if matches!(e, ApiError::BasicAuthRequired | ApiError::Unauthorized)
            && route.access == Access::Dashboard
        {
            return error_response(&ApiError::BasicAuthRequired);
        }
        error_response(&e)
    });
    response.headers.extend(rate_headers);
    (response, route.path)
}

/// Authentication and rate limiting for one route.
fn check_access(
    ctx: &Ctx,
    req: &Request,
    access: Access,
    rate_headers: &mut Vec<(&'static str, String)>,
) -> Result<(), ApiError> {
    let shared = &ctx.shared;
    let key_ok = || {
        req.header("x-api-key")
            .is_some_and(|k| shared.api_key_matches(k))
    };
    let basic_ok = || {
        req.header("authorization")
            .and_then(auth::parse_basic_auth)
            .is_some_and(|(user, password)| shared.dashboard_login_matches(&user, &password))
    };
    match access {
        Access::Public => Ok(()),
        Access::Dashboard => {
            if basic_ok() {
                Ok(())
            } else {
                limit_failed_auth(ctx, req, rate_headers)?;
                Err(ApiError::BasicAuthRequired)
            }
        }
        Access::ApiKey | Access::ApiKeyOrBasic | Access::Simulator => {
            if access == Access::Simulator
                && shared.config.backend != crate::config::Backend::Simulator
            {
                return Err(ApiError::NotFound(format!(
                    "Route {} {} not found",
                    req.method.as_str(),
                    req.path
                )));
            }
            if key_ok() {
                limit(ctx, &shared.api_key_bucket(), rate_headers)
            } else if access == Access::ApiKeyOrBasic && basic_ok() {
                Ok(())
            } else {
                limit_failed_auth(ctx, req, rate_headers)?;
                Err(if access == Access::ApiKeyOrBasic {
                    ApiError::BasicAuthRequired
                } else {
                    ApiError::Unauthorized
                })
            }
        }
    }
}

/// Whether a request carries credentials (`X-API-Key` or `Authorization`).
fn carries_credentials(req: &Request) -> bool {
    req.header("x-api-key").is_some() || req.header("authorization").is_some()
}

/// A request refused for its credentials counts against the client
/// address's bucket, so a wrong key never buys a fresh one. Wrong ones are
/// logged; none at all (a browser waiting for the challenge) is not a failure.
fn limit_failed_auth(
    ctx: &Ctx,
    req: &Request,
    rate_headers: &mut Vec<(&'static str, String)>,
) -> Result<(), ApiError> {
    if carries_credentials(req) {
        log::warn!(
            "failed authentication from {} for {} {}",
            req.ip,
            req.method.as_str(),
            log_safe(&req.path)
        );
    }
    limit(ctx, &format!("ip:{}", req.ip), rate_headers)
}

fn limit(
    ctx: &Ctx,
    bucket: &str,
    rate_headers: &mut Vec<(&'static str, String)>,
) -> Result<(), ApiError> {
    let limiter = &ctx.shared.limiter;
    if !limiter.enabled() {
        return Ok(());
    }
    let v = limiter.check(bucket, clock::now_millis());
    rate_headers.push(("X-RateLimit-Limit", v.limit.to_string()));
    rate_headers.push(("X-RateLimit-Remaining", v.remaining.to_string()));
    rate_headers.push(("X-RateLimit-Reset", v.reset_ms.to_string()));
    if v.allowed {
        Ok(())
    } else {
        Err(ApiError::TooManyRequests {
            retry_after: v.retry_after_secs,
        })
    }
}

/// Headers every response carries.
const SECURITY_HEADERS: [(&str, &str); 4] = [
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         media-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
];

/// Sends the response: what the socket takes at once (nearly always all of
/// it, waiting at most 20 ms more); the connection's thread sends the rest,
/// and a file, within `HTTP_TIMEOUT_SECS` plus time for its size.
fn respond(raw: tiny_http::Request, response: Response) -> std::io::Result<()> {
    let (status, headers) = tiny_http_head(response.status, &response.headers);
    match response.body {
        // Sent with their length, never chunked: a client can show progress
        // and tell a cut-off answer from a whole one.
        Body::Bytes(bytes) => {
            let len = bytes.len();
            raw.respond_detached(
                tiny_http::Response::new(status, headers, Cursor::new(bytes), Some(len), None)
                    .with_chunked_threshold(usize::MAX),
            )
        }
        Body::File(file, len) => raw.respond_detached(
            tiny_http::Response::new(status, headers, file, Some(len), None)
                .with_chunked_threshold(usize::MAX),
        ),
        Body::Stream(reader) => raw.respond_detached(tiny_http::Response::new(
            status, headers, reader, None, None,
        )),
    }
}

/// The status and headers of a response as tiny_http takes them, with the
/// headers every response carries.
fn tiny_http_head(
    status: u16,
    response_headers: &[(&'static str, String)],
) -> (tiny_http::StatusCode, Vec<tiny_http::Header>) {
    let mut headers: Vec<tiny_http::Header> = Vec::with_capacity(response_headers.len() + 6);
    let mut has_cache_control = false;
    for (name, value) in response_headers
        .iter()
        .map(|(n, v)| (*n, v.as_str()))
        .chain(SECURITY_HEADERS)
    {
        has_cache_control |= name.eq_ignore_ascii_case("cache-control");
        // Values are ours; one that is not a valid header is dropped, not sent.
        if let Ok(h) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            headers.push(h);
        }
    }
    if !has_cache_control {
        headers.push(
            tiny_http::Header::from_bytes("Cache-Control", "no-store").expect("valid header"),
        );
    }
    (tiny_http::StatusCode(status), headers)
}

/// The answer to a request the connection refuses before any worker sees
/// it (malformed, too large, too slow): the usual JSON error.
fn refusal(status: tiny_http::StatusCode) -> tiny_http::ResponseBox {
    let error = match status.0 {
        408 => "The request took too long to arrive".to_string(),
        413 => ApiError::PayloadTooLarge.public_message(),
        414 => "The request line is too long".to_string(),
        417 => "Only Expect: 100-continue is supported".to_string(),
        431 => "The request header fields are too large".to_string(),
        505 => "Only HTTP/1.0 and HTTP/1.1 are supported".to_string(),
        _ => "Malformed request".to_string(),
    };
    let body = serde_json::to_vec(&json!({ "error": error })).unwrap_or_default();
    let content_type = [(
        "Content-Type",
        "application/json; charset=utf-8".to_string(),
    )];
    let (status, headers) = tiny_http_head(status.0, &content_type);
    let len = body.len();
    tiny_http::Response::new(status, headers, Cursor::new(body), Some(len), None).boxed()
}

/// Where large uploads go while they arrive, and how large they may be.
#[derive(Debug, Clone)]
pub struct Uploads {
    /// The media directory: a spooled body is a nameless temporary file
    /// there, on the file system its file will be copied to.
    pub dir: PathBuf,
    /// The largest body of a file reply: `MEDIA_MAX_BYTES` as base64 plus
    /// `UPLOAD_FRAMING`.
    pub max: u64,
}

/// What a file reply's body may hold besides the file: the caption (64 KiB,
/// up to six times that JSON-escaped), the other fields, multipart headers.
pub const UPLOAD_FRAMING: u64 = 1024 * 1024;

/// A file-reply body this small (by its Content-Length) is read into
/// memory like any other; a larger one, or one of unknown length, is
/// spooled to a file.
pub const SPOOL_ABOVE: u64 = 64 * 1024;

impl Uploads {
    /// Uploads into `dir` of files up to `media_max_bytes`, sent raw
    /// (multipart) or as base64 (4 characters for every 3 bytes).
    pub fn new(dir: &Path, media_max_bytes: u64) -> Uploads {
        Uploads {
            dir: dir.to_path_buf(),
            max: media_max_bytes
                .div_ceil(3)
                .saturating_mul(4)
                .saturating_add(UPLOAD_FRAMING),
        }
    }
}

/// What one client connection may cost: request line and headers capped
/// (414, 431), bodies read whole by the connection's thread before a worker
/// sees them, capped at `MAX_BODY` or, for file replies, at `uploads.max`
/// (413), every read and write bounded by `timeout` (plus time for large
/// transfers), and at most `max_connections` open at once.
pub fn limits(timeout: Duration, max_connections: usize, uploads: Uploads) -> tiny_http::Limits {
    tiny_http::Limits {
        max_connections,
        idle_timeout: timeout,
        request_timeout: timeout,
        response_timeout: timeout,
        body_policy: Arc::new(move |head| body_policy(head, &uploads)),
        refusal: Arc::new(refusal),
        ..tiny_http::Limits::default()
    }
}

/// Where a request's body goes, decided from its head (method, target,
/// headers) before any byte of it is read. The two reply routes take a
/// file (multipart or base64 JSON): a body there, of either content type,
/// that is not known to be small is streamed to a nameless file in the media directory, up to
/// `uploads.max`, and the worker gets it once it is all on disk. Every
/// other body goes into memory, at most `MAX_BODY`. Past either limit the
/// connection answers 413 itself.
fn body_policy(head: &tiny_http::Request, uploads: &Uploads) -> tiny_http::BodyPolicy {
    let header = |name: &'static str| {
        head.headers()
            .iter()
            .find(|h| h.field.equiv(name))
            .map(|h| h.value.as_str())
    };
    let small = header("Content-Length")
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|len| len <= SPOOL_ABOVE);
    let file_type = header("Content-Type").is_some_and(|t| {
        let base = t.split(';').next().unwrap_or("").trim();
        base.eq_ignore_ascii_case("multipart/form-data")
            || base.eq_ignore_ascii_case("application/json")
    });
    if *head.method() == tiny_http::Method::Post && !small && file_type && takes_files(head.url()) {
        tiny_http::BodyPolicy::Spool {
            max: uploads.max,
            dir: uploads.dir.clone(),
        }
    } else {
        tiny_http::BodyPolicy::Memory { max: MAX_BODY }
    }
}

/// Whether a target is one of the routes that take a file:
/// `/api/v1/messages/:id/reply` and the dashboard's `/reply/:id`.
fn takes_files(target: &str) -> bool {
    let path = target.split('?').next().unwrap_or("");
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    matches!(
        segments.as_slice(),
        ["api", "v1", "messages", _, "reply"] | ["reply", _]
    )
}

/// Removes what uploads cut short by a crash left in the media directory:
/// spool files caught between their creation and the removal of their
/// name, and partial media files (`.…part`). Called at start, before
/// anything writes there.
pub fn remove_upload_leftovers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(".spool-") || (name.starts_with('.') && name.ends_with(".part")) {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => log::info!("removed {name}, left by an upload cut short"),
                Err(e) => log::warn!("could not remove {name}: {e}"),
            }
        }
    }
}

/// Connections allowed at once under an open-file limit of `nofile`: each
/// one is a socket, and may hold a media file open while it is sent, which
/// must leave room for the databases (three files per SQLite connection:
/// one per worker and per component thread), the WhatsApp connection, the
/// webhook sockets and the process's own descriptors. Each connection is
/// also a thread: 4,096 at most.
pub fn max_connections(nofile: u64, workers: usize) -> usize {
    let reserved = 64 + 3 * (workers as u64 + 8);
    (nofile.saturating_sub(reserved) / 2).clamp(8, 4096) as usize
}

/// Binds the listener with TCP_NODELAY, which every accepted connection
/// inherits (Linux and the BSDs copy it from the listening socket). Without
/// it, a response larger than one write (headers, then the body in 8 KiB
/// pieces) meets Nagle's algorithm and the client's delayed ACK: ~40 ms per
/// JSON page instead of a fraction of a millisecond.
pub fn bind(host: &str, port: u16, limits: tiny_http::Limits) -> Result<tiny_http::Server, String> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::net::ToSocketAddrs;
    let fail =
        |e: &dyn std::fmt::Display| format!("could not listen on {host}:{port} (HOST/PORT): {e}");
    let mut last_error = String::from("the address resolves to nothing");
    for addr in (host, port).to_socket_addrs().map_err(|e| fail(&e))? {
        let listen = || -> std::io::Result<std::net::TcpListener> {
            let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
            // What std's TcpListener::bind does on Unix: a restart can rebind
            // at once while old connections sit in TIME_WAIT.
            socket.set_reuse_address(true)?;
            socket.set_tcp_nodelay(true)?;
            socket.bind(&addr.into())?;
            socket.listen(1024)?;
            Ok(socket.into())
        };
        match listen() {
            Ok(listener) => {
                return tiny_http::Server::from_listener_with_limits(listener, limits.clone())
                    .map_err(|e| fail(&e));
            }
            Err(e) => last_error = e.to_string(),
        }
    }
    Err(fail(&last_error))
}

/// The bound port of a server.
pub fn local_port(server: &tiny_http::Server) -> u16 {
    server.server_addr().to_ip().map(|a| a.port()).unwrap_or(0)
}

/// Opens a worker's database connection.
pub fn worker_db(path: &std::path::Path) -> Result<Connection, String> {
    db::connect(path).map_err(|e| format!("could not open {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_fit_under_the_open_file_limit() {
        // Each may hold a socket and a media file; databases and the rest
        // keep their room.
        for (nofile, workers) in [(256, 4), (1024, 8), (4096, 8), (65536, 256)] {
            let n = max_connections(nofile, workers) as u64;
            assert!(
                2 * n + 64 + 3 * (workers as u64 + 8) <= nofile,
                "{nofile}, {workers}: {n}"
            );
            assert!(n >= 8);
        }
        assert_eq!(max_connections(1 << 20, 8), 4096);
        assert_eq!(max_connections(16, 8), 8);
    }

    /// Reads what a channel brings, as a stream body's feeder would.
    struct ChannelReader(std::sync::mpsc::Receiver<Vec<u8>>);

    impl Read for ChannelReader {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.0.recv() {
                Ok(piece) => {
                    // The test sends small pieces: each fits one read.
                    buf[..piece.len()].copy_from_slice(&piece);
                    Ok(piece.len())
                }
                Err(_) => Ok(0),
            }
        }
    }

    /// Reads from `c` until what was read ends with `end`.
    fn read_until(c: &mut std::net::TcpStream, end: &str) -> String {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.ends_with(end.as_bytes()) {
            let n = c.read(&mut buf).expect("the stream stays open");
            assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(got).unwrap()
    }

    #[test]
    fn a_stream_is_written_by_the_connection_while_the_worker_serves_others() {
        use std::io::Write;
        use std::net::TcpStream;
        let timeout = Duration::from_millis(300);
        let uploads = Uploads::new(&std::env::temp_dir(), 1024);
        let server = bind("127.0.0.1", 0, limits(timeout, 16, uploads)).unwrap();
        let addr = ("127.0.0.1", local_port(&server));
        let mut stream_client = TcpStream::connect(addr).unwrap();
        stream_client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream_client
            .write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        // This thread plays the worker.
        let raw = server.recv().unwrap();
        let (feed, events) = std::sync::mpsc::sync_channel(4);
        let stream = Response {
            status: 200,
            headers: vec![("Content-Type", "text/event-stream".to_string())],
            body: Body::Stream(Box::new(ChannelReader(events))),
        };
        // The worker is free at once: it does not wait for the stream.
        let (returned, worker_free) = std::sync::mpsc::channel();
        std::thread::spawn(move || returned.send(respond(raw, stream).is_ok()));
        assert_eq!(worker_free.recv_timeout(Duration::from_secs(2)), Ok(true));
        let head = read_until(&mut stream_client, "\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.contains("Transfer-Encoding: chunked"), "{head}");

        // While the stream is open, the worker serves another request.
        let mut other = TcpStream::connect(addr).unwrap();
        other
            .write_all(b"GET /api/v1/health HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let raw = server
            .recv_timeout(Duration::from_secs(5))
            .unwrap()
            .unwrap();
        respond(raw, Response::ok(&json!({"status": "connected"}))).unwrap();
        let mut answer = String::new();
        other.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

        // Quiet for three times the connection timeouts, then fed: the
        // stream is still open and each piece arrives as it is fed.
        std::thread::sleep(timeout * 3);
        feed.send(b"data: one\n\n".to_vec()).unwrap();
        assert_eq!(
            read_until(&mut stream_client, "one\n\n\r\n"),
            "b\r\ndata: one\n\n\r\n"
        );
        feed.send(b"data: two\n\n".to_vec()).unwrap();
        assert_eq!(
            read_until(&mut stream_client, "two\n\n\r\n"),
            "b\r\ndata: two\n\n\r\n"
        );
        drop(feed);
        assert_eq!(read_until(&mut stream_client, "0\r\n\r\n"), "0\r\n\r\n");
    }
}
