//! What both front ends speak: a request read whole, a response to send,
//! the one JSON error body, and the URL encoding helpers. The worker pool
//! (`http.rs`) turns tiny_http's requests into these and these into bytes on
//! the socket; the handlers (`api.rs`, `dashboard/`) see only these, so no
//! handler depends on the HTTP front end's internals.

use crate::error::ApiError;
use serde_json::{Value, json};
use std::borrow::Cow;
use std::io::{Read, Seek};

/// Largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

/// HTTP methods the router knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Other,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Other => "OTHER",
        }
    }
}

/// A request, fully read.
#[derive(Debug)]
pub struct Request {
    pub method: Method,
    /// The path as sent, without the query string.
    pub path: String,
    /// Percent-decoded path segments.
    pub segments: Vec<String>,
    /// Percent-decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    /// Headers with lower-case names.
    pub headers: Vec<(String, String)>,
    /// The body, when it was read into memory (at most `MAX_BODY`).
    pub body: Vec<u8>,
    /// The body, when the connection spooled it to a file instead (a large
    /// upload to a route that takes files; `body` is then empty). The file
    /// has no name on disk: it is gone once this request is dropped.
    pub spooled: Option<std::fs::File>,
    /// The client's address (no port).
    pub ip: String,
}

impl Request {
    /// A header's value (first occurrence, name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A query parameter's value (first occurrence).
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A reader of the body from its start, wherever it is.
    pub fn body_reader(&self) -> Result<Box<dyn Read + '_>, ApiError> {
        match &self.spooled {
            None => Ok(Box::new(&self.body[..])),
            Some(file) => {
                let mut file = file;
                file.rewind()
                    .map_err(|e| ApiError::Internal(format!("rewinding a spooled body: {e}")))?;
                Ok(Box::new(file))
            }
        }
    }

    /// The body's length in bytes.
    pub fn body_len(&self) -> u64 {
        match &self.spooled {
            Some(file) => file.metadata().map_or(0, |m| m.len()),
            None => self.body.len() as u64,
        }
    }

    /// The body in memory, read from its file if it was spooled (413 past
    /// `MAX_BODY`: only a file's bytes may be larger).
    fn small_body(&self) -> Result<Cow<'_, [u8]>, ApiError> {
        if self.spooled.is_none() {
            return Ok(Cow::Borrowed(&self.body));
        }
        let mut body = Vec::new();
        self.body_reader()?
            .take(MAX_BODY as u64 + 1)
            .read_to_end(&mut body)
            .map_err(|e| ApiError::Internal(format!("reading a spooled body: {e}")))?;
        if body.len() > MAX_BODY {
            return Err(ApiError::PayloadTooLarge);
        }
        Ok(Cow::Owned(body))
    }

    /// The body as a JSON object. An empty body is an empty object (as
    /// express.json() treated it); anything but an object is a 400. A
    /// spooled body is parsed from its file.
    pub fn json_object(&self) -> Result<serde_json::Map<String, Value>, ApiError> {
        let parsed = match &self.spooled {
            Some(_) if self.body_len() > MAX_BODY as u64 => {
                let reader = std::io::BufReader::with_capacity(64 * 1024, self.body_reader()?);
                serde_json::from_reader::<_, Value>(reader)
            }
            _ => {
                let body = self.small_body()?;
                if body.iter().all(u8::is_ascii_whitespace) {
                    return Ok(serde_json::Map::new());
                }
                serde_json::from_slice::<Value>(&body)
            }
        };
        match parsed {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(ApiError::bad("Request body must be a JSON object")),
            Err(e) if e.is_io() => Err(ApiError::Internal(format!("reading a spooled body: {e}"))),
            Err(e) => Err(ApiError::bad(format!("Malformed JSON body: {e}"))),
        }
    }

    /// The body as `application/x-www-form-urlencoded` pairs (dashboard forms).
    pub fn form(&self) -> Result<Vec<(String, String)>, ApiError> {
        let body = self.small_body()?;
        let text =
            std::str::from_utf8(&body).map_err(|_| ApiError::bad("Form body is not UTF-8"))?;
        parse_query(text).ok_or_else(|| ApiError::bad("Malformed form body"))
    }
}

/// What a handler answers.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

/// A response body: bytes, a file streamed from disk, or a stream.
pub enum Body {
    Bytes(Vec<u8>),
    File(std::fs::File, usize),
    /// A body of unknown length, read as it comes (an event stream):
    /// it goes out chunked, each read as one chunk as soon as it is
    /// read, written by the connection's own thread. The worker sends only
    /// the head and is free at once. Each write waits at most
    /// `HTTP_TIMEOUT_SECS` for the client and there is no total deadline, so
    /// a quiet stream stays open; it ends when the reader ends (or fails,
    /// which closes the connection), and whoever feeds it decides when a
    /// client that reads too slowly is dropped.
    Stream(Box<dyn Read + Send>),
}

impl Response {
    pub fn json(status: u16, value: &impl serde::Serialize) -> Response {
        Response::json_sized(status, value, 256)
    }

    /// `json` writing into a buffer of `capacity` bytes to begin with, so a
    /// large page (an inbox page is ~22 KB) is not regrown and copied ~8 times.
    pub fn json_sized(status: u16, value: &impl serde::Serialize, capacity: usize) -> Response {
        let mut body = Vec::with_capacity(capacity);
        if serde_json::to_writer(&mut body, value).is_err() {
            body.clear();
        }
        Response {
            status,
            headers: vec![("Content-Type", "application/json; charset=utf-8".into())],
            body: Body::Bytes(body),
        }
    }

    pub fn ok(value: &impl serde::Serialize) -> Response {
        Response::json(200, value)
    }

    pub fn html(status: u16, html: String) -> Response {
        Response {
            status,
            headers: vec![("Content-Type", "text/html; charset=utf-8".into())],
            body: Body::Bytes(html.into_bytes()),
        }
    }

    pub fn bytes(status: u16, content_type: &str, bytes: Vec<u8>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type", content_type.to_string())],
            body: Body::Bytes(bytes),
        }
    }

    /// 303 See Other to `location` (after a dashboard form POST).
    pub fn redirect(location: &str) -> Response {
        Response {
            status: 303,
            headers: vec![("Location", location.to_string())],
            body: Body::Bytes(Vec::new()),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }
}

/// Every failure becomes its response here, and only here.
pub fn error_response(e: &ApiError) -> Response {
    if let ApiError::Internal(detail) = e {
        log::error!("request failed: {}", log_safe(detail));
    }
    let mut body = json!({ "error": e.public_message() });
    let mut response = Response::json(e.status(), &Value::Null);
    match e {
        ApiError::TooManyRequests { retry_after } => {
            body["retryAfter"] = json!(retry_after);
            response = response.with_header("Retry-After", retry_after.to_string());
        }
        ApiError::BasicAuthRequired => {
            response = response.with_header(
                "WWW-Authenticate",
                "Basic realm=\"whatsapp-api\", charset=\"UTF-8\"",
            );
        }
        ApiError::MethodNotAllowed => {}
        ApiError::PayloadTooLarge => {
            // The rest of the body was never read: the connection cannot be reused.
            response = response.with_header("Connection", "close");
        }
        _ => {}
    }
    response.body = Body::Bytes(serde_json::to_vec(&body).unwrap_or_default());
    response
}

/// Decodes `%XX` escapes (and `+` as space when `plus` is set). None for a
/// bad escape or a result that is not UTF-8.
pub fn percent_decode(s: &str, plus: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes everything but unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `a=1&b=x%20y` -> pairs. None when an escape is malformed.
pub fn parse_query(q: &str) -> Option<Vec<(String, String)>> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(k, true)?, percent_decode(v, true)?))
        })
        .collect()
}

/// `s` with every control character escaped (`\n`, `\u{1b}`, …), for a
/// log line: text a client sent can then neither forge a line nor drive
/// the terminal that shows the log.
pub fn log_safe(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.chars().flat_map(char::escape_debug).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c", true).as_deref(), Some("a b c"));
        assert_eq!(percent_decode("a+b", false).as_deref(), Some("a+b"));
        assert_eq!(percent_decode("%2e%2E", false).as_deref(), Some(".."));
        assert_eq!(percent_decode("%zz", false), None);
        assert_eq!(percent_decode("%4", false), None);
        assert_eq!(percent_decode("%ff", false), None); // not UTF-8
        assert_eq!(percent_decode("%F0%9F%98%80", false).as_deref(), Some("😀"));
    }

    #[test]
    fn log_lines_hold_no_control_characters() {
        assert_eq!(log_safe("/api/v1/inbox"), "/api/v1/inbox");
        assert!(matches!(log_safe("/caf\u{e9}"), Cow::Borrowed(_)));
        assert_eq!(
            log_safe("/a\nFORGED 200\r\u{1b}[2J\u{7f}\u{85}\t"),
            "/a\\nFORGED 200\\r\\u{1b}[2J\\u{7f}\\u{85}\\t"
        );
        assert!(!log_safe("\u{0}\u{1f}\u{9b}").chars().any(char::is_control));
    }

    #[test]
    fn query_parsing() {
        assert_eq!(
            parse_query("page=2&search=hello%20world&flag&=x").unwrap(),
            vec![
                ("page".to_string(), "2".to_string()),
                ("search".to_string(), "hello world".to_string()),
                ("flag".to_string(), String::new()),
                (String::new(), "x".to_string()),
            ]
        );
        assert!(parse_query("a=%").is_none());
        assert_eq!(percent_encode("a b@c"), "a%20b%40c");
    }
}
