//! `multipart/form-data` bodies (RFC 7578), as browsers and curl send a
//! file with a form, parsed as a stream: the body is read in 64 KiB pieces
//! (from memory, or from the file a large upload was spooled to), text
//! fields are kept (each at most `FIELD_MAX` bytes), and each file part is
//! handed to the caller as a reader of its content alone, to copy where it
//! belongs: no part is ever held whole in memory but the small fields.

use crate::error::ApiError;
use crate::web::Request;
use std::io::{self, Read};

/// Largest text field kept (a reply's caption is at most 64 KiB).
pub const FIELD_MAX: usize = 128 * 1024;
/// Most parts in one form.
const MAX_PARTS: usize = 16;
/// Largest header section of one part.
const HEAD_MAX: usize = 8 * 1024;
/// How much of the body is looked at at once.
const WINDOW: usize = 64 * 1024;

/// The headers of one part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartHead {
    /// The field's name.
    pub name: String,
    /// The file name a file part carries (as the client named it).
    pub filename: Option<String>,
    /// The part's own content type, if given.
    pub content_type: Option<String>,
}

impl PartHead {
    /// A file part: one with a file name, or named `file`.
    pub fn is_file(&self) -> bool {
        self.filename.is_some() || self.name == "file"
    }
}

/// A parsed form: its text fields, in order, and what the caller made of
/// each file part.
#[derive(Debug)]
pub struct Form<F> {
    pub fields: Vec<(String, Vec<u8>)>,
    pub files: Vec<(PartHead, F)>,
}

impl<F> Form<F> {
    /// A text field's value (first occurrence).
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// The form of `req` when it is `multipart/form-data`; None for any other
/// body. Each file part (`PartHead::is_file`) goes to `on_file` with a
/// reader of its content; what it returns is kept in `Form::files` (what it
/// leaves unread is skipped). A malformed body is a 400 saying what is
/// wrong; an error of `on_file` ends the parse with that error.
pub fn of<F>(
    req: &Request,
    on_file: impl FnMut(&PartHead, &mut dyn Read) -> Result<F, ApiError>,
) -> Option<Result<Form<F>, ApiError>> {
    let params = params(req.header("content-type")?)?;
    Some(
        req.body_reader()
            .and_then(|body| parse(params, body, on_file)),
    )
}

/// The parameters of a `multipart/form-data` content type (None for another).
fn params(content_type: &str) -> Option<&str> {
    let (kind, params) = content_type.split_once(';').unwrap_or((content_type, ""));
    kind.trim()
        .eq_ignore_ascii_case("multipart/form-data")
        .then_some(params)
}

/// Parses a body given the parameters of its content type (`boundary=…`).
pub fn parse<F>(
    params: &str,
    body: impl Read,
    mut on_file: impl FnMut(&PartHead, &mut dyn Read) -> Result<F, ApiError>,
) -> Result<Form<F>, ApiError> {
    let boundary = params
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"'))
        .filter(|b| !b.is_empty() && b.len() <= 70)
        .ok_or_else(|| bad("multipart/form-data needs a boundary of 1 to 70 characters"))?;
    let mut scan = Scanner {
        inner: body,
        buf: vec![0; WINDOW],
        start: 0,
        end: 0,
        eof: false,
    };
    let first = format!("--{boundary}").into_bytes();
    if !scan.skip_past(&first).map_err(read_failed)? {
        return Err(bad("the multipart body has no part"));
    }
    let next = [b"\r\n".as_slice(), &first].concat();
    let mut form = Form {
        fields: Vec::new(),
        files: Vec::new(),
    };
    loop {
        scan.want(2).map_err(read_failed)?;
        if scan.data().starts_with(b"--") {
            return Ok(form);
        }
        if !scan.data().starts_with(b"\r\n") {
            return Err(bad("a multipart delimiter must end its line"));
        }
        scan.consume(2);
        if form.fields.len() + form.files.len() == MAX_PARTS {
            return Err(bad("a form has at most 16 parts"));
        }
        let head = scan.head().map_err(read_failed)?;
        let mut content = PartReader {
            scan: &mut scan,
            delimiter: &next,
            done: false,
        };
        if head.is_file() {
            let made = on_file(&head, &mut content)?;
            io::copy(&mut content, &mut io::sink()).map_err(read_failed)?;
            form.files.push((head, made));
        } else {
            let mut value = Vec::new();
            (&mut content)
                .take(FIELD_MAX as u64 + 1)
                .read_to_end(&mut value)
                .map_err(read_failed)?;
            if value.len() > FIELD_MAX {
                return Err(bad(&format!(
                    "the form field {} is longer than {FIELD_MAX} bytes",
                    head.name
                )));
            }
            io::copy(&mut content, &mut io::sink()).map_err(read_failed)?;
            form.fields.push((head.name, value));
        }
    }
}

fn bad(why: &str) -> ApiError {
    ApiError::bad(why)
}

/// A malformed body (the reader says what is wrong) is a 400; anything
/// else is the server's failure.
fn read_failed(e: io::Error) -> ApiError {
    if e.kind() == io::ErrorKind::InvalidData {
        ApiError::bad(e.to_string())
    } else {
        ApiError::Internal(format!("reading a multipart body: {e}"))
    }
}

fn malformed(why: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

/// A window on the body: `buf[start..end]` is read and not yet consumed.
struct Scanner<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
}

impl<R: Read> Scanner<R> {
    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
    }

    /// Reads more after what is there; false at the end of the body.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Makes at least `n` bytes available (fewer only at the end).
    fn want(&mut self, n: usize) -> io::Result<()> {
        while self.data().len() < n && self.fill()? {}
        Ok(())
    }

    /// Consumes everything up to and including the first `needle`; false
    /// if the body ends without one.
    fn skip_past(&mut self, needle: &[u8]) -> io::Result<bool> {
        loop {
            if let Some(at) = find(self.data(), needle) {
                self.consume(at + needle.len());
                return Ok(true);
            }
            // Keep what could be the start of a needle cut by the window.
            let keep = needle.len() - 1;
            self.consume(self.data().len().saturating_sub(keep));
            if !self.fill()? {
                return Ok(false);
            }
        }
    }

    /// A part's header lines, up to and including the empty line.
    fn head(&mut self) -> io::Result<PartHead> {
        let end = loop {
            if let Some(at) = find(self.data(), b"\r\n\r\n") {
                break at;
            }
            if self.data().len() > HEAD_MAX || !self.fill()? {
                return Err(malformed("a multipart part has no end of headers"));
            }
        };
        let head = std::str::from_utf8(&self.data()[..end])
            .map_err(|_| malformed("multipart part headers are not UTF-8"))?;
        let head = part_head(head)?;
        self.consume(end + 4);
        Ok(head)
    }
}

/// The content of one part: reads end at the delimiter that closes it,
/// which is consumed.
struct PartReader<'a, R> {
    scan: &'a mut Scanner<R>,
    /// CRLF, `--`, the boundary.
    delimiter: &'a [u8],
    done: bool,
}

impl<R: Read> Read for PartReader<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.done || out.is_empty() {
            return Ok(0);
        }
        loop {
            let data = self.scan.data();
            let (available, closed) = match find(data, self.delimiter) {
                Some(at) => (at, true),
                // Bytes that may begin a delimiter cut by the window wait.
                None => (data.len().saturating_sub(self.delimiter.len() - 1), false),
            };
            if available > 0 {
                let n = available.min(out.len());
                out[..n].copy_from_slice(&data[..n]);
                self.scan.consume(n);
                return Ok(n);
            }
            if closed {
                self.scan.consume(self.delimiter.len());
                self.done = true;
                return Ok(0);
            }
            if !self.scan.fill()? {
                return Err(malformed("the multipart body is not closed"));
            }
        }
    }
}

/// A part's headers from their lines.
fn part_head(head: &str) -> io::Result<PartHead> {
    let mut name = None;
    let mut filename = None;
    let mut content_type = None;
    for line in head.split("\r\n") {
        let (field, value) = line
            .split_once(':')
            .ok_or_else(|| malformed("a malformed multipart header"))?;
        match field.trim().to_ascii_lowercase().as_str() {
            "content-disposition" => {
                for param in value.split(';').skip(1) {
                    if let Some((k, v)) = param.trim().split_once('=') {
                        let v = v.trim().trim_matches('"').to_string();
                        match k.trim().to_ascii_lowercase().as_str() {
                            "name" => name = Some(v),
                            "filename" => filename = Some(v),
                            _ => {}
                        }
                    }
                }
            }
            "content-type" => content_type = Some(value.trim().to_string()),
            _ => {}
        }
    }
    Ok(PartHead {
        name: name.ok_or_else(|| malformed("a multipart part has no name"))?,
        filename,
        content_type,
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its bytes `step` at a time, as a slow socket or a small
    /// buffer would.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// Parses with every file part read whole (for checking).
    fn parse_all(params: &str, body: impl Read) -> Result<Form<Vec<u8>>, ApiError> {
        parse(params, body, |_, r| {
            let mut data = Vec::new();
            r.read_to_end(&mut data)
                .map_err(|e| ApiError::bad(e.to_string()))?;
            Ok(data)
        })
    }

    #[test]
    fn parts_as_curl_sends_them() {
        let body =
            b"--XyZ\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\nhere it is\r\n\
            --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a b.pdf\"\r\n\
            Content-Type: application/pdf\r\n\r\n%PDF\r\n--x\r\n--XyZ--\r\n";
        for step in [1, 2, 7, 64, usize::MAX] {
            let form = parse_all("boundary=XyZ", Trickle { data: body, step }).unwrap();
            assert_eq!(
                form.fields,
                vec![("message".into(), b"here it is".to_vec())]
            );
            assert_eq!(form.files.len(), 1);
            let (head, data) = &form.files[0];
            assert_eq!(head.filename.as_deref(), Some("a b.pdf"));
            assert_eq!(head.content_type.as_deref(), Some("application/pdf"));
            assert_eq!(data, b"%PDF\r\n--x", "read {step} bytes at a time");
        }
    }

    #[test]
    fn a_file_larger_than_the_window_streams_through_whole() {
        // Delimiter-like bytes sit across every window boundary.
        let mut file = Vec::new();
        while file.len() < 5 * WINDOW {
            file.extend_from_slice(b"\r\n--XyQ almost\r\n--Xy");
            file.extend((0..=255u8).cycle().take(997));
        }
        let mut body =
            b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\r\n"
                .to_vec();
        body.extend_from_slice(&file);
        body.extend_from_slice(b"\r\n--XyZ--\r\n");
        let mut largest_read = 0;
        let form = parse("boundary=XyZ", &body[..], |_, r| {
            let mut got = Vec::new();
            let mut buf = vec![0; 1 << 20];
            loop {
                let n = r.read(&mut buf).unwrap();
                if n == 0 {
                    return Ok(got);
                }
                largest_read = largest_read.max(n);
                got.extend_from_slice(&buf[..n]);
            }
        })
        .unwrap();
        assert!(form.files[0].1 == file);
        // The part came in pieces no larger than the window.
        assert!(largest_read <= WINDOW, "{largest_read}");
    }

    #[test]
    fn an_unread_file_part_is_skipped() {
        let body = b"--a\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n\r\n\
            0123456789\r\n--a\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\nhi\r\n--a--";
        let form = parse("boundary=a", &body[..], |head, _| Ok(head.name.clone())).unwrap();
        assert_eq!(form.files[0].1, "file");
        assert_eq!(form.field("message"), Some(b"hi".as_slice()));
    }

    #[test]
    fn malformed_bodies_are_refused() {
        for (params, body) in [
            ("", b"--a\r\n".as_slice()),
            ("boundary=a", b"no delimiter".as_slice()),
            (
                "boundary=a",
                b"--a\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nunclosed",
            ),
            (
                "boundary=a",
                b"--a\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\nunclosed",
            ),
            ("boundary=a", b"--a\r\nno headers end"),
            (
                "boundary=a",
                b"--a\r\nContent-Disposition: form-data\r\n\r\nx\r\n--a--",
            ),
            ("boundary=a", b"--ax\r\n"),
        ] {
            let e = parse_all(params, body).unwrap_err();
            assert!(matches!(e, ApiError::BadRequest(_)), "{params} {body:?}");
        }
        let many = "--a\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n".repeat(17);
        assert!(parse_all("boundary=a", format!("{many}--a--").as_bytes()).is_err());
        let long = format!(
            "--a\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n{}\r\n--a--",
            "x".repeat(FIELD_MAX + 1)
        );
        assert!(parse_all("boundary=a", long.as_bytes()).is_err());
        assert!(
            parse_all("boundary=a", &b"--a--\r\n"[..])
                .unwrap()
                .fields
                .is_empty()
        );
    }
}
