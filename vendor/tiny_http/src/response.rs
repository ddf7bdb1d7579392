use crate::common::{HTTPVersion, Header, StatusCode};
use httpdate::HttpDate;
use std::cmp::Ordering;
use std::sync::mpsc::Receiver;

use std::io::Result as IoResult;
use std::io::{self, Cursor, Read, Write};

use std::fs::File;

use std::str::FromStr;
use std::time::SystemTime;

/// Object representing an HTTP response whose purpose is to be given to a `Request`.
///
/// Some headers cannot be changed. Trying to define the value
/// of one of these will have no effect:
///
///  - `Connection`, except `Connection: close`, which is sent and closes the
///    connection once the response is written
///  - `Trailer`
///  - `Transfer-Encoding`
///  - `Upgrade`
///
/// Some headers have special behaviors:
///
///  - `Content-Encoding`: If you define this header, the library
///     will assume that the data from the `Read` object has the specified encoding
///     and will just pass-through.
///
///  - `Content-Length`: The length of the data should be set manually
///     using the `Reponse` object's API. Attempting to set the value of this
///     header will be equivalent to modifying the size of the data but the header
///     itself may not be present in the final result.
///
///  - `Content-Type`: You may only set this header to one value at a time. If you
///     try to set it more than once, the existing value will be overwritten. This
///     behavior differs from the default for most headers, which is to allow them to
///     be set multiple times in the same response.
///
pub struct Response<R> {
    reader: R,
    status_code: StatusCode,
    headers: Vec<Header>,
    data_length: Option<usize>,
    chunked_threshold: Option<usize>,
    // Set by a `Connection: close` header: the connection ends after this
    // response (and the header is sent).
    close_connection: bool,
}

/// A `Response` without a template parameter.
pub type ResponseBox = Response<Box<dyn Read + Send>>;

/// Transfer encoding to use when sending the message.
/// Note that only *supported* encoding are listed here.
#[derive(Copy, Clone)]
enum TransferEncoding {
    Identity,
    Chunked,
}

impl FromStr for TransferEncoding {
    type Err = ();

    fn from_str(input: &str) -> Result<TransferEncoding, ()> {
        if input.eq_ignore_ascii_case("identity") {
            Ok(TransferEncoding::Identity)
        } else if input.eq_ignore_ascii_case("chunked") {
            Ok(TransferEncoding::Chunked)
        } else {
            Err(())
        }
    }
}

/// Builds a Date: header with the current date.
fn build_date_header() -> Header {
    let d = HttpDate::from(SystemTime::now());
    Header::from_bytes(&b"Date"[..], &d.to_string().into_bytes()[..]).unwrap()
}

/// Bodies up to this size are read into the buffer of the response head
/// (on the handler's thread, which then usually sends it all at once; a
/// larger body is read and sent by the connection's thread).
const INLINE_BODY: usize = 1024 * 1024;

/// A response ready to be written: see `Response::prepare`.
pub(crate) struct Prepared<R> {
    /// The status line, the headers and, when small, the body; later, the
    /// piece of the body being sent.
    pub(crate) head: Vec<u8>,
    /// How much of `head` has been sent.
    pub(crate) sent: usize,
    /// What remains of the body.
    pub(crate) body: PreparedBody<R>,
    /// Bytes on the wire in all, when known.
    pub(crate) total_len: Option<u64>,
    /// Whether the connection ends after this response.
    pub(crate) close: bool,
}

/// The part of a body that is not in `Prepared::head`.
pub(crate) enum PreparedBody<R> {
    None,
    /// Exactly this many bytes.
    Length(R, u64),
    /// Chunked transfer coding.
    Chunked(R),
    /// Everything the reader yields; the connection closes after it.
    UntilEnd(R),
}

/// The largest piece of a body read and sent at once.
const PIECE: usize = 64 * 1024;

impl<R: Read> Prepared<R> {
    /// Writes what is left of the response to `writer`, blocking.
    pub(crate) fn write_to<W: Write>(mut self, writer: &mut W) -> IoResult<()> {
        loop {
            writer.write_all(&self.head[self.sent..])?;
            self.sent = self.head.len();
            if !self.next_piece()? {
                return Ok(());
            }
        }
    }

    /// Replaces the (sent) contents of `head` with the next piece of the
    /// body, encoded for the wire. False when the body is done. A reader
    /// shorter than the announced length is an error (the connection can
    /// no longer be used); one longer is cut at the length.
    pub(crate) fn next_piece(&mut self) -> IoResult<bool> {
        self.head.clear();
        self.sent = 0;
        match std::mem::replace(&mut self.body, PreparedBody::None) {
            PreparedBody::None | PreparedBody::Length(_, 0) => Ok(false),
            PreparedBody::Length(mut reader, remaining) => {
                let want = (remaining as usize).min(PIECE);
                let read = read_once(&mut reader, &mut self.head, want)?;
                if read == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the response body is shorter than its length",
                    ));
                }
                self.body = PreparedBody::Length(reader, remaining - read as u64);
                Ok(true)
            }
            PreparedBody::Chunked(mut reader) => {
                // Each read goes out as one chunk as soon as it is read: a
                // reader yielding events as they happen has them sent at
                // once (size line, data and CRLF in one write).
                const PREFIX: usize = 10;
                self.head.resize(PREFIX, 0);
                let read = read_once(&mut reader, &mut self.head, PIECE)?;
                if read == 0 {
                    self.head.clear();
                    self.head.extend_from_slice(b"0\r\n\r\n");
                    return Ok(true);
                }
                let size = format!("{:x}\r\n", read);
                self.sent = PREFIX - size.len();
                self.head[self.sent..PREFIX].copy_from_slice(size.as_bytes());
                self.head.extend_from_slice(b"\r\n");
                self.body = PreparedBody::Chunked(reader);
                Ok(true)
            }
            PreparedBody::UntilEnd(mut reader) => {
                let read = read_once(&mut reader, &mut self.head, PIECE)?;
                if read > 0 {
                    self.body = PreparedBody::UntilEnd(reader);
                }
                Ok(read > 0)
            }
        }
    }
}

/// Appends what one read of `reader` yields (at most `max` bytes) to `buf`.
fn read_once<R: Read>(reader: &mut R, buf: &mut Vec<u8>, max: usize) -> IoResult<usize> {
    let start = buf.len();
    buf.resize(start + max, 0);
    let read = loop {
        match reader.read(&mut buf[start..]) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => break other,
        }
    };
    buf.truncate(start + *read.as_ref().unwrap_or(&0));
    read
}

impl<R: Read + Send + 'static> Prepared<R> {
    pub(crate) fn boxed(self) -> Prepared<Box<dyn Read + Send>> {
        Prepared {
            head: self.head,
            sent: self.sent,
            body: self.body.boxed(),
            total_len: self.total_len,
            close: self.close,
        }
    }
}

impl<R> PreparedBody<R> {
    pub(crate) fn is_none(&self) -> bool {
        matches!(self, PreparedBody::None)
    }
}

impl<R: Read + Send + 'static> PreparedBody<R> {
    pub(crate) fn boxed(self) -> PreparedBody<Box<dyn Read + Send>> {
        match self {
            PreparedBody::None => PreparedBody::None,
            PreparedBody::Length(r, len) => PreparedBody::Length(Box::new(r), len),
            PreparedBody::Chunked(r) => PreparedBody::Chunked(Box::new(r)),
            PreparedBody::UntilEnd(r) => PreparedBody::UntilEnd(Box::new(r)),
        }
    }
}

fn write_message_header<W>(
    mut writer: W,
    http_version: &HTTPVersion,
    status_code: &StatusCode,
    headers: &[Header],
) -> IoResult<()>
where
    W: Write,
{
    // writing status line
    write!(
        &mut writer,
        "HTTP/{}.{} {} {}\r\n",
        http_version.0,
        http_version.1,
        status_code.0,
        status_code.default_reason_phrase()
    )?;

    // writing headers
    for header in headers.iter() {
        writer.write_all(header.field.as_str().as_ref())?;
        write!(&mut writer, ": ")?;
        writer.write_all(header.value.as_str().as_ref())?;
        write!(&mut writer, "\r\n")?;
    }

    // separator between header and data
    write!(&mut writer, "\r\n")?;

    Ok(())
}

fn choose_transfer_encoding(
    status_code: StatusCode,
    request_headers: &[Header],
    http_version: &HTTPVersion,
    entity_length: &Option<usize>,
    has_additional_headers: bool,
    chunked_threshold: usize,
) -> TransferEncoding {
    use crate::util;

    // HTTP 1.0 doesn't support other encoding
    if *http_version <= (1, 0) {
        return TransferEncoding::Identity;
    }

    // Per section 3.3.1 of RFC7230:
    // A server MUST NOT send a Transfer-Encoding header field in any response with a status code
    // of 1xx (Informational) or 204 (No Content).
    if status_code.0 < 200 || status_code.0 == 204 {
        return TransferEncoding::Identity;
    }

    // parsing the request's TE header
    let user_request = request_headers
        .iter()
        // finding TE
        .find(|h| h.field.equiv("TE"))
        // getting its value
        .map(|h| h.value.clone())
        // getting the corresponding TransferEncoding
        .and_then(|value| {
            // getting list of requested elements
            let mut parse = util::parse_header_value(value.as_str()); // TODO: remove conversion

            // sorting elements by most priority
            parse.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(Ordering::Equal));

            // trying to parse each requested encoding
            for value in parse.iter() {
                // q=0 are ignored
                if value.1 <= 0.0 {
                    continue;
                }

                if let Ok(te) = TransferEncoding::from_str(value.0) {
                    return Some(te);
                }
            }

            // encoding not found
            None
        });

    if let Some(user_request) = user_request {
        return user_request;
    }

    // if we have additional headers, using chunked
    if has_additional_headers {
        return TransferEncoding::Chunked;
    }

    // if we don't have a Content-Length, or if the Content-Length is too big, using chunks writer
    if entity_length
        .as_ref()
        .map_or(true, |val| *val >= chunked_threshold)
    {
        return TransferEncoding::Chunked;
    }

    // Identity by default
    TransferEncoding::Identity
}

impl<R> Response<R>
where
    R: Read,
{
    /// Creates a new Response object.
    ///
    /// The `additional_headers` argument is a receiver that
    ///  may provide headers even after the response has been sent.
    ///
    /// All the other arguments are straight-forward.
    pub fn new(
        status_code: StatusCode,
        headers: Vec<Header>,
        data: R,
        data_length: Option<usize>,
        additional_headers: Option<Receiver<Header>>,
    ) -> Response<R> {
        let mut response = Response {
            reader: data,
            status_code,
            headers: Vec::with_capacity(16),
            data_length,
            chunked_threshold: None,
            close_connection: false,
        };

        for h in headers {
            response.add_header(h)
        }

        // dummy implementation
        if let Some(additional_headers) = additional_headers {
            for h in additional_headers.iter() {
                response.add_header(h)
            }
        }

        response
    }

    /// Set a threshold for `Content-Length` where we chose chunked
    /// transfer. Notice that chunked transfer might happen regardless of
    /// this threshold, for instance when the request headers indicate
    /// it is wanted or when there is no `Content-Length`.
    pub fn with_chunked_threshold(mut self, length: usize) -> Response<R> {
        self.chunked_threshold = Some(length);
        self
    }

    /// Convert the response into the underlying `Read` type.
    ///
    /// This is mainly useful for testing as it must consume the `Response`.
    pub fn into_reader(self) -> R {
        self.reader
    }

    /// The current `Content-Length` threshold for switching over to
    /// chunked transfer. The default is 32768 bytes. Notice that
    /// chunked transfer is mutually exclusive with sending a
    /// `Content-Length` header as per the HTTP spec.
    pub fn chunked_threshold(&self) -> usize {
        self.chunked_threshold.unwrap_or(32768)
    }

    /// Adds a header to the list.
    /// Does all the checks.
    pub fn add_header<H>(&mut self, header: H)
    where
        H: Into<Header>,
    {
        let header = header.into();

        // `Connection: close` is how a handler says the connection cannot be
        // reused (after refusing a body it did not read, say): honour it.
        if header.field.equiv("Connection") {
            if header
                .value
                .as_str()
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("close"))
            {
                self.close_connection = true;
            }
            return;
        }

        // ignoring forbidden headers
        if header.field.equiv("Trailer")
            || header.field.equiv("Transfer-Encoding")
            || header.field.equiv("Upgrade")
        {
            return;
        }

        // if the header is Content-Length, setting the data length
        if header.field.equiv("Content-Length") {
            if let Ok(val) = usize::from_str(header.value.as_str()) {
                self.data_length = Some(val)
            }

            return;
        // if the header is Content-Type and it's already set, overwrite it
        } else if header.field.equiv("Content-Type") {
            if let Some(content_type_header) = self
                .headers
                .iter_mut()
                .find(|h| h.field.equiv("Content-Type"))
            {
                content_type_header.value = header.value;
                return;
            }
        }

        self.headers.push(header);
    }

    /// Returns the same request, but with an additional header.
    ///
    /// Some headers cannot be modified and some other have a
    ///  special behavior. See the documentation above.
    #[inline]
    pub fn with_header<H>(mut self, header: H) -> Response<R>
    where
        H: Into<Header>,
    {
        self.add_header(header.into());
        self
    }

    /// Returns the same request, but with a different status code.
    #[inline]
    pub fn with_status_code<S>(mut self, code: S) -> Response<R>
    where
        S: Into<StatusCode>,
    {
        self.status_code = code.into();
        self
    }

    /// Returns the same request, but with different data.
    pub fn with_data<S>(self, reader: S, data_length: Option<usize>) -> Response<S>
    where
        S: Read,
    {
        Response {
            reader,
            headers: self.headers,
            status_code: self.status_code,
            data_length,
            chunked_threshold: self.chunked_threshold,
            close_connection: self.close_connection,
        }
    }

    /// Prints the HTTP response to a writer.
    ///
    /// This function is the one used to send the response to the client's socket.
    /// Therefore you shouldn't expect anything pretty-printed or even readable.
    ///
    /// The HTTP version and headers passed as arguments are used to
    ///  decide which features (most notably, encoding) to use.
    ///
    /// Note: does not flush the writer.
    pub fn raw_print<W: Write>(
        self,
        mut writer: W,
        http_version: HTTPVersion,
        request_headers: &[Header],
        do_not_send_body: bool,
        upgrade: Option<&str>,
    ) -> IoResult<()> {
        self.prepare(
            &http_version,
            request_headers,
            do_not_send_body,
            false,
            upgrade,
        )?
        .write_to(&mut writer)
    }

    /// Whether a `Connection: close` header was set.
    pub(crate) fn closes_connection(&self) -> bool {
        self.close_connection
    }

    /// Everything `raw_print` writes, made ready on the caller's thread: the
    /// status line and headers (followed by the start of the body when it is
    /// small and not chunked, so it goes out in one write) and what is left
    /// of the body. `close` adds `Connection: close`.
    pub(crate) fn prepare(
        mut self,
        http_version: &HTTPVersion,
        request_headers: &[Header],
        do_not_send_body: bool,
        close: bool,
        upgrade: Option<&str>,
    ) -> IoResult<Prepared<R>> {
        let mut transfer_encoding = Some(choose_transfer_encoding(
            self.status_code,
            request_headers,
            http_version,
            &self.data_length,
            false, /* TODO */
            self.chunked_threshold(),
        ));

        // add `Date` if not in the headers
        if !self.headers.iter().any(|h| h.field.equiv("Date")) {
            self.headers.insert(0, build_date_header());
        }

        // add `Server` if not in the headers
        if !self.headers.iter().any(|h| h.field.equiv("Server")) {
            self.headers.insert(
                0,
                Header::from_bytes(&b"Server"[..], &b"tiny-http (Rust)"[..]).unwrap(),
            );
        }

        // handling upgrade
        if let Some(upgrade) = upgrade {
            self.headers.insert(
                0,
                Header::from_bytes(&b"Upgrade"[..], upgrade.as_bytes()).unwrap(),
            );
            self.headers.insert(
                0,
                Header::from_bytes(&b"Connection"[..], &b"upgrade"[..]).unwrap(),
            );
            transfer_encoding = None;
        } else if close || self.close_connection {
            self.headers
                .push(Header::from_bytes(&b"Connection"[..], &b"close"[..]).unwrap());
        }

        // checking whether to ignore the body of the response
        let do_not_send_body = do_not_send_body
            || match self.status_code.0 {
                // status code 1xx, 204 and 304 MUST not include a body
                100..=199 | 204 | 304 => true,
                _ => false,
            };

        // An HTTP/1.0 response of unknown length is delimited by closing the
        // connection (RFC 9112 §6.3), rather than by reading it all into
        // memory first to count it.
        let mut closes = close || self.close_connection;
        if let (None, Some(TransferEncoding::Identity)) = (self.data_length, transfer_encoding) {
            closes = true;
        }

        // preparing headers for transfer
        match (transfer_encoding, self.data_length) {
            (Some(TransferEncoding::Chunked), _) => self
                .headers
                .push(Header::from_bytes(&b"Transfer-Encoding"[..], &b"chunked"[..]).unwrap()),
            (Some(TransferEncoding::Identity), Some(data_length)) => self.headers.push(
                Header::from_bytes(
                    &b"Content-Length"[..],
                    format!("{}", data_length).as_bytes(),
                )
                .unwrap(),
            ),
            _ => (),
        };

        let mut head = Vec::with_capacity(512);
        write_message_header(&mut head, http_version, &self.status_code, &self.headers)?;

        let body = match (do_not_send_body, transfer_encoding, self.data_length) {
            (true, _, _) | (false, None, _) => PreparedBody::None,
            (false, Some(TransferEncoding::Chunked), _) => PreparedBody::Chunked(self.reader),
            (false, Some(TransferEncoding::Identity), None) => PreparedBody::UntilEnd(self.reader),
            (false, Some(TransferEncoding::Identity), Some(len)) if len <= INLINE_BODY => {
                // Small bodies travel with the head: one write instead of
                // one for the head and several for the body.
                let start = head.len();
                head.reserve_exact(len);
                (&mut self.reader).take(len as u64).read_to_end(&mut head)?;
                if head.len() - start < len {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the response body is shorter than its length",
                    ));
                }
                PreparedBody::None
            }
            (false, Some(TransferEncoding::Identity), Some(len)) => {
                PreparedBody::Length(self.reader, len as u64)
            }
        };
        let total_len = match &body {
            PreparedBody::None => Some(head.len() as u64),
            PreparedBody::Length(_, len) => Some(head.len() as u64 + len),
            PreparedBody::Chunked(_) | PreparedBody::UntilEnd(_) => {
                self.data_length.map(|l| head.len() as u64 + l as u64)
            }
        };
        Ok(Prepared {
            head,
            sent: 0,
            body,
            total_len,
            close: closes || upgrade.is_some(),
        })
    }

    /// Retrieves the current value of the `Response` status code
    pub fn status_code(&self) -> StatusCode {
        self.status_code
    }

    /// Retrieves the current value of the `Response` data length
    pub fn data_length(&self) -> Option<usize> {
        self.data_length
    }

    /// Retrieves the current list of `Response` headers
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }
}

impl<R> Response<R>
where
    R: Read + Send + 'static,
{
    /// Turns this response into a `Response<Box<Read + Send>>`.
    pub fn boxed(self) -> ResponseBox {
        Response {
            reader: Box::new(self.reader) as Box<dyn Read + Send>,
            status_code: self.status_code,
            headers: self.headers,
            data_length: self.data_length,
            chunked_threshold: self.chunked_threshold,
            close_connection: self.close_connection,
        }
    }
}

impl Response<File> {
    /// Builds a new `Response` from a `File`.
    ///
    /// The `Content-Type` will **not** be automatically detected,
    ///  you must set it yourself.
    pub fn from_file(file: File) -> Response<File> {
        let file_size = file.metadata().ok().map(|v| v.len() as usize);

        Response::new(
            StatusCode(200),
            Vec::with_capacity(0),
            file,
            file_size,
            None,
        )
    }
}

impl Response<Cursor<Vec<u8>>> {
    pub fn from_data<D>(data: D) -> Response<Cursor<Vec<u8>>>
    where
        D: Into<Vec<u8>>,
    {
        let data = data.into();
        let data_len = data.len();

        Response::new(
            StatusCode(200),
            Vec::with_capacity(0),
            Cursor::new(data),
            Some(data_len),
            None,
        )
    }

    pub fn from_string<S>(data: S) -> Response<Cursor<Vec<u8>>>
    where
        S: Into<String>,
    {
        let data = data.into();
        let data_len = data.len();

        Response::new(
            StatusCode(200),
            vec![
                Header::from_bytes(&b"Content-Type"[..], &b"text/plain; charset=UTF-8"[..])
                    .unwrap(),
            ],
            Cursor::new(data.into_bytes()),
            Some(data_len),
            None,
        )
    }
}

impl Response<io::Empty> {
    /// Builds an empty `Response` with the given status code.
    pub fn empty<S>(status_code: S) -> Response<io::Empty>
    where
        S: Into<StatusCode>,
    {
        Response::new(
            status_code.into(),
            Vec::with_capacity(0),
            io::empty(),
            Some(0),
            None,
        )
    }

    /// DEPRECATED. Use `empty` instead.
    pub fn new_empty(status_code: StatusCode) -> Response<io::Empty> {
        Response::empty(status_code)
    }
}

impl Clone for Response<io::Empty> {
    fn clone(&self) -> Response<io::Empty> {
        Response {
            reader: io::empty(),
            status_code: self.status_code,
            headers: self.headers.clone(),
            data_length: self.data_length,
            chunked_threshold: self.chunked_threshold,
            close_connection: self.close_connection,
        }
    }
}
