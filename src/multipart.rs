//! `multipart/form-data` bodies (RFC 7578), as browsers and curl send a
//! file with a form: the parts of a body already read (within the request
//! body limit).

use crate::web::Request;

/// One part of a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The field's name.
    pub name: String,
    /// The file name a file part carries (as the client named it).
    pub filename: Option<String>,
    /// The part's own content type, if given.
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

/// The parts of `req` when it is `multipart/form-data`; None for any other
/// body. A malformed body is an error saying what is wrong.
pub fn of(req: &Request) -> Option<Result<Vec<Part>, String>> {
    let content_type = req.header("content-type")?;
    let (kind, params) = content_type.split_once(';').unwrap_or((content_type, ""));
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    Some(parse(params, &req.body))
}

/// Parses a body given the parameters of its content type (`boundary=…`).
pub fn parse(params: &str, body: &[u8]) -> Result<Vec<Part>, String> {
    let boundary = params
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"'))
        .filter(|b| !b.is_empty() && b.len() <= 70)
        .ok_or("multipart/form-data needs a boundary of 1 to 70 characters")?;
    let delimiter = format!("--{boundary}").into_bytes();
    let mut rest = match find(body, &delimiter) {
        Some(at) => &body[at + delimiter.len()..],
        None => return Err("the multipart body has no part".into()),
    };
    let next = [b"\r\n".as_slice(), &delimiter].concat();
    let mut parts = Vec::new();
    loop {
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        rest = rest
            .strip_prefix(b"\r\n")
            .ok_or("a multipart delimiter must end its line")?;
        let head_end = find(rest, b"\r\n\r\n").ok_or("a multipart part has no end of headers")?;
        let head = std::str::from_utf8(&rest[..head_end])
            .map_err(|_| "multipart part headers are not UTF-8")?;
        let content = &rest[head_end + 4..];
        let end = find(content, &next).ok_or("the multipart body is not closed")?;
        parts.push(part(head, content[..end].to_vec())?);
        if parts.len() > 16 {
            return Err("a form has at most 16 parts".into());
        }
        rest = &content[end + next.len()..];
    }
}

/// One part from its header lines and content.
fn part(head: &str, data: Vec<u8>) -> Result<Part, String> {
    let mut name = None;
    let mut filename = None;
    let mut content_type = None;
    for line in head.split("\r\n") {
        let (field, value) = line.split_once(':').ok_or("a malformed multipart header")?;
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
    Ok(Part {
        name: name.ok_or("a multipart part has no name")?,
        filename,
        content_type,
        data,
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_as_curl_sends_them() {
        let body =
            b"--XyZ\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\nhere it is\r\n\
            --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a b.pdf\"\r\n\
            Content-Type: application/pdf\r\n\r\n%PDF\r\n--x\r\n--XyZ--\r\n";
        let parts = parse("boundary=XyZ", body).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "message");
        assert_eq!(parts[0].data, b"here it is");
        assert_eq!(parts[1].filename.as_deref(), Some("a b.pdf"));
        assert_eq!(parts[1].content_type.as_deref(), Some("application/pdf"));
        assert_eq!(parts[1].data, b"%PDF\r\n--x");
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
            ("boundary=a", b"--a\r\nno headers end"),
            (
                "boundary=a",
                b"--a\r\nContent-Disposition: form-data\r\n\r\nx\r\n--a--",
            ),
        ] {
            assert!(parse(params, body).is_err(), "{params} {body:?}");
        }
        assert_eq!(parse("boundary=a", b"--a--\r\n").unwrap(), vec![]);
    }
}
