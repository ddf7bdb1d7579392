//! Strict parsing of request heads and chunked bodies, as RFC 9112 asks of a
//! server that must not be confused about where a request ends: a message
//! whose framing is in any doubt is refused (and its connection closed)
//! rather than guessed at, since a front proxy may have guessed otherwise.

use ascii::AsciiString;

use crate::common::{HTTPVersion, Header, HeaderField, Method};

/// Why a request head is refused; each has its status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// 400: the syntax or framing is wrong (what, for debug logs).
    BadRequest(&'static str),
    /// 414: the request line is too long.
    UriTooLong,
    /// 431: too many header fields, or too many bytes of them.
    HeadersTooLarge,
    /// 505: an HTTP version other than 1.0 and 1.1.
    VersionNotSupported,
    /// 417: an `Expect` other than `100-continue`.
    ExpectationFailed,
}

impl HeadError {
    pub(crate) fn status(self) -> u16 {
        match self {
            HeadError::BadRequest(_) => 400,
            HeadError::UriTooLong => 414,
            HeadError::HeadersTooLarge => 431,
            HeadError::VersionNotSupported => 505,
            HeadError::ExpectationFailed => 417,
        }
    }
}

/// How the body of a request is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    None,
    Length(u64),
    Chunked,
}

/// What the header fields say about the message around them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Framing {
    pub(crate) body: BodyFraming,
    /// Whether the connection may carry another request after this one.
    pub(crate) keep_alive: bool,
    /// Whether the client waits for `100 Continue` before sending the body.
    pub(crate) expect_continue: bool,
}

/// `tchar` of RFC 9110 §5.6.2: the characters of a method or a field name.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// `method SP request-target SP HTTP-version`, without its CRLF.
pub(crate) fn request_line(line: &[u8]) -> Result<(Method, String, HTTPVersion), HeadError> {
    let bad = HeadError::BadRequest;
    let mut parts = line.split(|&b| b == b' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) => (m, t, v),
        _ => return Err(bad("the request line is not three words")),
    };
    if !is_token(method) {
        return Err(bad("the method is not a token"));
    }
    // Visible ASCII only: no controls (a forged log line), no spaces, no
    // bytes a proxy might decode differently.
    if target.is_empty() || !target.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(bad("the request target has a forbidden byte"));
    }
    let version = match version {
        b"HTTP/1.1" => HTTPVersion(1, 1),
        b"HTTP/1.0" => HTTPVersion(1, 0),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            return Err(HeadError::VersionNotSupported)
        }
        _ => return Err(bad("the HTTP version is malformed")),
    };
    // Both are ASCII by now.
    let method = std::str::from_utf8(method)
        .ok()
        .and_then(|m| m.parse().ok())
        .ok_or(bad("the method is not a token"))?;
    let target = String::from_utf8(target.to_vec()).map_err(|_| bad("not ASCII"))?;
    Ok((method, target, version))
}

/// `field-name ":" OWS field-value OWS`, without its CRLF.
pub(crate) fn header_line(line: &[u8]) -> Result<Header, HeadError> {
    let bad = HeadError::BadRequest;
    if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
        // obs-fold: a continuation line, which RFC 9112 §5.2 lets a server
        // refuse; honouring it is how one header hides inside another.
        return Err(bad("a header line is folded"));
    }
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(bad("a header line has no colon"))?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    // No whitespace between the name and the colon (RFC 9112 §5.1).
    if !is_token(name) {
        return Err(bad("a header name is not a token"));
    }
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    let value = &value[start..end];
    // Visible ASCII, spaces and tabs: no control characters (a CR or LF
    // here would be a header smuggled inside another) and no bytes above
    // 0x7E, which this server keeps values free of.
    if !value
        .iter()
        .all(|&b| b == b' ' || b == b'\t' || (0x21..=0x7e).contains(&b))
    {
        return Err(bad("a header value has a forbidden byte"));
    }
    Ok(Header {
        field: HeaderField::from_bytes(name.to_vec()).map_err(|_| bad("not ASCII"))?,
        value: AsciiString::from_ascii(value.to_vec()).map_err(|_| bad("not ASCII"))?,
    })
}

/// Reads the framing of a request from its header fields (RFC 9112 §6):
/// at most one `Content-Length`, all digits; `Transfer-Encoding` only as
/// exactly `chunked`, only in HTTP/1.1 and never with a `Content-Length`.
pub(crate) fn framing(version: &HTTPVersion, headers: &[Header]) -> Result<Framing, HeadError> {
    let bad = HeadError::BadRequest;
    let named = |name: &'static str| headers.iter().filter(move |h| h.field.equiv(name));

    let mut lengths = named("Content-Length");
    let length = match (lengths.next(), lengths.next()) {
        (None, _) => None,
        (Some(h), None) => {
            let digits = h.value.as_bytes();
            // 19 digits always fit in a u64; a longer number is no length
            // anyone can send.
            if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
                return Err(bad("Content-Length is not a number"));
            }
            Some(
                h.value
                    .as_str()
                    .parse::<u64>()
                    .map_err(|_| bad("Content-Length"))?,
            )
        }
        (Some(_), Some(_)) => return Err(bad("more than one Content-Length")),
    };

    let mut encodings = named("Transfer-Encoding");
    let chunked = match (encodings.next(), encodings.next()) {
        (None, _) => false,
        (Some(h), None) if h.value.as_str().eq_ignore_ascii_case("chunked") => true,
        (Some(_), None) => return Err(bad("a Transfer-Encoding other than chunked")),
        (Some(_), Some(_)) => return Err(bad("more than one Transfer-Encoding")),
    };
    if chunked && *version < HTTPVersion(1, 1) {
        return Err(bad("Transfer-Encoding in an HTTP/1.0 request"));
    }
    if chunked && length.is_some() {
        return Err(bad("both Transfer-Encoding and Content-Length"));
    }

    let mut expects = named("Expect");
    let expect_continue = match (expects.next(), expects.next()) {
        (None, _) => false,
        (Some(h), None) if h.value.as_str().eq_ignore_ascii_case("100-continue") => {
            // RFC 9110 §10.1.1: ignored from an HTTP/1.0 client.
            *version >= HTTPVersion(1, 1)
        }
        _ => return Err(HeadError::ExpectationFailed),
    };

    let connection = |option: &str| {
        named("Connection").any(|h| {
            h.value
                .as_str()
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(option))
        })
    };
    let keep_alive = if *version >= HTTPVersion(1, 1) {
        !connection("close")
    } else {
        connection("keep-alive") && !connection("close")
    };

    let body = match (chunked, length) {
        (true, _) => BodyFraming::Chunked,
        (false, Some(0)) | (false, None) => BodyFraming::None,
        (false, Some(n)) => BodyFraming::Length(n),
    };
    Ok(Framing {
        body,
        keep_alive,
        expect_continue,
    })
}

/// `chunk-size [ chunk-ext ]` of a chunk's first line, without its CRLF.
/// Extensions are allowed and ignored.
pub(crate) fn chunk_size(line: &[u8]) -> Result<u64, HeadError> {
    let bad = HeadError::BadRequest("a chunk size is malformed");
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    // 15 hex digits always fit in a u64 with room to add to it.
    if digits == 0 || digits > 15 {
        return Err(bad);
    }
    let rest = &line[digits..];
    let ext = rest.iter().position(|&b| b != b' ' && b != b'\t');
    match ext {
        None if rest.is_empty() => {}
        Some(i) if rest[i] == b';' => {
            let ext = &rest[i..];
            if !ext
                .iter()
                .all(|&b| b == b'\t' || (0x20..=0x7e).contains(&b))
            {
                return Err(bad);
            }
        }
        _ => return Err(bad),
    }
    let hex = std::str::from_utf8(&line[..digits]).map_err(|_| bad)?;
    u64::from_str_radix(hex, 16).map_err(|_| bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[&str]) -> Vec<Header> {
        lines
            .iter()
            .map(|l| header_line(l.as_bytes()).unwrap())
            .collect()
    }

    fn framing_of(lines: &[&str]) -> Result<Framing, HeadError> {
        framing(&HTTPVersion(1, 1), &headers(lines))
    }

    #[test]
    fn request_lines() {
        let (m, t, v) = request_line(b"GET /a?b=c HTTP/1.1").unwrap();
        assert_eq!(
            (m, t.as_str(), v),
            (Method::Get, "/a?b=c", HTTPVersion(1, 1))
        );
        assert!(request_line(b"PATCH * HTTP/1.0").is_ok());
        for bad in [
            &b"GET /a"[..],
            b"GET  /a HTTP/1.1",
            b"GET /a HTTP/1.1 ",
            b" GET /a HTTP/1.1",
            b"GET /a\tb HTTP/1.1",
            b"GET /a\x1bb HTTP/1.1",
            b"GET /a\nFORGED HTTP/1.1",
            b"GET /caf\xc3\xa9 HTTP/1.1",
            b"G(T /a HTTP/1.1",
            b"GET /a HTTP/1.1x",
            b"GET /a http/1.1",
            b"GET /a HTTP/11",
        ] {
            assert!(
                matches!(request_line(bad), Err(HeadError::BadRequest(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        for unsupported in [&b"GET / HTTP/2.0"[..], b"GET / HTTP/0.9", b"GET / HTTP/1.2"] {
            assert_eq!(
                request_line(unsupported).unwrap_err(),
                HeadError::VersionNotSupported
            );
        }
    }

    #[test]
    fn header_lines() {
        let h = header_line(b"Content-Type: \t text/plain; q=1 \t").unwrap();
        assert!(h.field.equiv("content-type"));
        assert_eq!(h.value.as_str(), "text/plain; q=1");
        assert_eq!(header_line(b"X-Empty:").unwrap().value.as_str(), "");
        for bad in [
            &b" Folded: x"[..],
            b"\tFolded: x",
            b"Content-Length : 5",
            b"Content Length: 5",
            b": no name",
            b"no colon",
            b"X-Ctl: a\x1bb",
            b"X-Nul: a\x00b",
            b"X-Cr: a\rb",
            b"X-Del: a\x7fb",
            b"X-Utf8: caf\xc3\xa9",
        ] {
            assert!(
                header_line(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn content_length_must_be_one_plain_number() {
        assert_eq!(
            framing_of(&["Content-Length: 42"]).unwrap().body,
            BodyFraming::Length(42)
        );
        assert_eq!(
            framing_of(&["Content-Length: 0"]).unwrap().body,
            BodyFraming::None
        );
        assert_eq!(
            framing_of(&["Content-Length: 100000000000"]).unwrap().body,
            BodyFraming::Length(100_000_000_000)
        );
        for bad in [
            &["Content-Length: +5"][..],
            &["Content-Length: -1"],
            &["Content-Length: 5 5"],
            &["Content-Length: 5,5"],
            &["Content-Length: 0x10"],
            &["Content-Length: "],
            &["Content-Length: 99999999999999999999"],
            &["Content-Length: 5", "Content-Length: 5"],
            &["Content-Length: 5", "content-length: 6"],
        ] {
            assert!(framing_of(bad).is_err(), "{:?}", bad);
        }
    }

    #[test]
    fn transfer_encoding_must_be_exactly_chunked() {
        assert_eq!(
            framing_of(&["Transfer-Encoding: chunked"]).unwrap().body,
            BodyFraming::Chunked
        );
        assert_eq!(
            framing_of(&["Transfer-Encoding: CHUNKED"]).unwrap().body,
            BodyFraming::Chunked
        );
        for bad in [
            &["Transfer-Encoding: xchunked"][..],
            &["Transfer-Encoding: chunkedx"],
            &["Transfer-Encoding: identity"],
            &["Transfer-Encoding: gzip"],
            &["Transfer-Encoding: gzip, chunked"],
            &["Transfer-Encoding: chunked, chunked"],
            &["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"],
            &["Transfer-Encoding: chunked", "Content-Length: 5"],
            &["Content-Length: 5", "Transfer-Encoding: chunked"],
        ] {
            assert!(framing_of(bad).is_err(), "{:?}", bad);
        }
        assert!(framing(
            &HTTPVersion(1, 0),
            &headers(&["Transfer-Encoding: chunked"])
        )
        .is_err());
    }

    #[test]
    fn connection_and_expect() {
        assert!(framing_of(&[]).unwrap().keep_alive);
        assert!(
            !framing_of(&["Connection: keep-alive, Close"])
                .unwrap()
                .keep_alive
        );
        assert!(framing_of(&["Connection: closed"]).unwrap().keep_alive);
        assert!(framing_of(&["Connection: Upgrade"]).unwrap().keep_alive);
        let v10 = HTTPVersion(1, 0);
        assert!(!framing(&v10, &[]).unwrap().keep_alive);
        assert!(
            framing(&v10, &headers(&["Connection: keep-alive"]))
                .unwrap()
                .keep_alive
        );
        assert!(
            framing_of(&["Expect: 100-Continue"])
                .unwrap()
                .expect_continue
        );
        assert!(
            !framing(&v10, &headers(&["Expect: 100-continue"]))
                .unwrap()
                .expect_continue
        );
        assert_eq!(
            framing_of(&["Expect: 189-dummy"]).unwrap_err(),
            HeadError::ExpectationFailed
        );
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(chunk_size(b"0").unwrap(), 0);
        assert_eq!(chunk_size(b"1aF").unwrap(), 0x1af);
        assert_eq!(chunk_size(b"10;name=value").unwrap(), 16);
        assert_eq!(chunk_size(b"10 ; name").unwrap(), 16);
        for bad in [
            &b""[..],
            b";ext",
            b"+10",
            b"0x10",
            b"10 20",
            b"10;a\x00",
            b"1000000000000000",
            b"g",
        ] {
            assert!(
                chunk_size(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
