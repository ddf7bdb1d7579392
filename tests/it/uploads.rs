//! File replies larger than the 1 MiB every other body is held to: the
//! connection streams them to a nameless file in `media/` before a worker
//! sees them, the file part is copied to its media file as it is parsed,
//! and whatever is refused leaves nothing behind.

use crate::conversation::multipart;
use crate::dashboard::{basic, csrf, dash_get};
use crate::support::*;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const ALICE: &str = "15551234567@s.whatsapp.net";
const MIB: usize = 1024 * 1024;

fn inject(s: &TestServer, wa_id: &str) -> String {
    let r = s.post(
        "/api/v1/simulator/messages",
        &json!({ "from": ALICE, "id": wa_id, "text": "send me the file" }),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    s.newest_id()
}

fn sent_media(s: &TestServer) -> Vec<Value> {
    let sent = s.get("/api/v1/simulator/sent").json();
    sent.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "media")
        .cloned()
        .collect()
}

/// Bytes that do not repeat within a window, so a misplaced piece shows.
fn file_of(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_u32;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

fn sha(bytes: &[u8]) -> String {
    whatsapp_api::auth::hex(&whatsapp_api::auth::sha256(bytes))
}

/// Everything in the media directory, hidden files included.
fn media_entries(s: &TestServer) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(s.dir.0.join("media"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Nothing was sent, no reply row stored beside the one incoming message
/// from Alice, and no file left in `media/`.
fn assert_nothing_sent_stored_or_left(s: &TestServer) {
    assert!(sent_media(s).is_empty(), "nothing sent");
    let chat = s
        .get(&format!("/api/v1/conversations/{ALICE}/messages"))
        .json();
    assert_eq!(
        chat["messages"].as_array().unwrap().len(),
        1,
        "nothing stored"
    );
    assert_eq!(
        media_entries(s),
        Vec::<String>::new(),
        "no file left behind"
    );
}

fn post_multipart(s: &TestServer, path: &str, content_type: &str, body: &[u8]) -> Resp {
    s.request(
        "POST",
        path,
        &[("X-API-Key", KEY), ("Content-Type", content_type)],
        Some(body),
    )
}

/// Sends `head` and then `body` in `chunks`-byte HTTP chunks on a raw
/// connection; returns the status line.
fn post_chunked(s: &TestServer, head: &str, body: &[u8], chunks: usize) -> String {
    let mut c = TcpStream::connect(s.base.trim_start_matches("http://")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = c.write_all(
        format!("{head}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    for piece in body.chunks(chunks) {
        let mut framed = format!("{:x}\r\n", piece.len()).into_bytes();
        framed.extend_from_slice(piece);
        framed.extend_from_slice(b"\r\n");
        if c.write_all(&framed).is_err() {
            break;
        }
    }
    let _ = c.write_all(b"0\r\n\r\n");
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn a_5_mb_file_reply_is_stored_and_sent_whole() {
    let s = TestServer::start_with(|c| c.media_max_bytes = 8 * MIB as u64);
    let id = inject(&s, "Q1");
    let path = format!("/api/v1/messages/{id}/reply");

    // Multipart, with a length.
    let pdf = file_of(5 * MIB);
    let (content_type, body) = multipart(
        Some("the catalogue"),
        Some(("catalogue.pdf", "application/pdf", &pdf)),
    );
    let r = post_multipart(&s, &path, &content_type, &body);
    assert_eq!(r.status, 200, "{}", r.text);
    let reply = s.get(&format!(
        "/api/v1/messages/{}",
        r.json()["replyId"].as_str().unwrap()
    ));
    let row = reply.json();
    assert_eq!(row["media_size"], pdf.len());
    assert_eq!(row["message"], "the catalogue");
    let stored = s.get(row["media_url"].as_str().unwrap());
    assert!(stored.bytes == pdf, "the stored file differs");
    let media = sent_media(&s);
    assert_eq!(media.len(), 1);
    assert_eq!(media[0]["filename"], "catalogue.pdf");
    assert_eq!(media[0]["size"], pdf.len());
    assert_eq!(media[0]["sha256"], sha(&pdf));

    // Multipart, chunked (no length known in advance).
    let photo = file_of(3 * MIB + 7);
    let (content_type, body) = multipart(None, Some(("p.jpg", "image/jpeg", &photo)));
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\nContent-Type: {content_type}\r\n"
    );
    assert_eq!(post_chunked(&s, &head, &body, 100_000), "HTTP/1.1 200 OK");
    let media = sent_media(&s);
    assert_eq!(media.len(), 2);
    assert_eq!(media[1]["media_type"], "image");
    assert_eq!(media[1]["sha256"], sha(&photo));

    // JSON with base64: 4 MB of text for a 3 MB file.
    let clip = file_of(3 * MIB);
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &clip);
    let r = s.post(
        &path,
        &json!({ "media_base64": b64, "mime": "video/mp4", "message": "the clip" }),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let media = sent_media(&s);
    assert_eq!(media[2]["media_type"], "video");
    assert_eq!(media[2]["sha256"], sha(&clip));
    assert_eq!(media[2]["text"], "the clip");

    // The dashboard's reply form, with a 2 MB file.
    let doc = file_of(2 * MIB);
    let boundary = "dash-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"menu.pdf\"\r\n\
         Content-Type: application/pdf\r\n\r\n",
        csrf(&s)
    )
    .into_bytes();
    body.extend_from_slice(&doc);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let auth = basic(DASH_USER, DASH_PASSWORD);
    let r = s.request(
        "POST",
        &format!("/reply/{id}"),
        &[
            ("Authorization", &auth),
            (
                "Content-Type",
                &format!("multipart/form-data; boundary={boundary}"),
            ),
        ],
        Some(&body),
    );
    assert_eq!(r.status, 303, "{}", r.text);
    let after = dash_get(&s, r.header("location").unwrap());
    assert!(after.text.contains("Reply sent"), "{}", after.text);
    let media = sent_media(&s);
    assert_eq!(media[3]["filename"], "menu.pdf");
    assert_eq!(media[3]["sha256"], sha(&doc));

    // Four files, and no temporary file beside them.
    let entries = media_entries(&s);
    assert_eq!(entries.len(), 4, "{entries:?}");
    assert!(entries.iter().all(|n| !n.starts_with('.')), "{entries:?}");
}

#[test]
fn a_file_over_media_max_bytes_is_413_with_nothing_stored_or_sent() {
    let s = TestServer::start_with(|c| c.media_max_bytes = MIB as u64);
    let id = inject(&s, "Q1");
    let path = format!("/api/v1/messages/{id}/reply");
    // Over MEDIA_MAX_BYTES, inside the body limit: refused as it is parsed.
    let (content_type, body) = multipart(
        Some("too big"),
        Some(("big.pdf", "application/pdf", &file_of(MIB + 1))),
    );
    let r = post_multipart(&s, &path, &content_type, &body);
    assert_eq!(r.status, 413, "{}", r.text);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("MEDIA_MAX_BYTES")
    );
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, file_of(MIB + 1));
    let r = s.post(&path, &json!({ "media_base64": b64, "mime": "image/png" }));
    assert_eq!(r.status, 413, "{}", r.text);
    // Past the body limit, announced: refused by the connection.
    let (content_type, body) = multipart(None, Some(("huge.bin", "image/png", &file_of(4 * MIB))));
    let r = post_multipart(&s, &path, &content_type, &body);
    assert_eq!(r.status, 413, "{}", r.text);
    // Past the body limit, chunked: cut off as it streams in.
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\nContent-Type: {content_type}\r\n"
    );
    assert!(post_chunked(&s, &head, &body, 64 * 1024).starts_with("HTTP/1.1 413"));
    // A reply without a file keeps 1 MiB, JSON or not.
    let padded = json!({ "message": "hi", "padding": "x".repeat(MIB) }).to_string();
    for content_type in ["application/json", "text/plain"] {
        let r = s.request(
            "POST",
            &path,
            &[("X-API-Key", KEY), ("Content-Type", content_type)],
            Some(padded.as_bytes()),
        );
        assert_eq!(r.status, 413, "{content_type}: {}", r.text);
    }
    // Every other route keeps 1 MiB.
    let r = s.request(
        "POST",
        "/api/v1/webhooks",
        &[("X-API-Key", KEY), ("Content-Type", "application/json")],
        Some(&vec![b' '; MIB + 1]),
    );
    assert_eq!(r.status, 413);

    assert_nothing_sent_stored_or_left(&s);
}

#[test]
fn a_malformed_upload_is_400_with_nothing_stored_or_sent() {
    let s = TestServer::start();
    let id = inject(&s, "Q1");
    let path = format!("/api/v1/messages/{id}/reply");
    let (content_type, mut body) = multipart(
        Some("x"),
        Some(("a.pdf", "application/pdf", &file_of(300_000))),
    );
    // The closing delimiter is missing: the file part never ends.
    body.truncate(body.len() - 40);
    let r = post_multipart(&s, &path, &content_type, &body);
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.json()["error"].as_str().unwrap().contains("not closed"),
        "{}",
        r.text
    );
    // Base64 that breaks off into garbage after 200 KB.
    let mut b64 =
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, file_of(150_000));
    b64.insert_str(200_000, "!!!!");
    let r = s.post(&path, &json!({ "media_base64": b64, "mime": "image/png" }));
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json()["error"], "media_base64 is not valid base64");
    assert_nothing_sent_stored_or_left(&s);
}

#[test]
fn a_slow_upload_holds_no_worker() {
    // One worker: if the upload held it, nothing else would be answered.
    let s = TestServer::start_with(|c| {
        c.http_workers = 1;
        c.media_max_bytes = 4 * MIB as u64;
    });
    let id = inject(&s, "Q1");
    let photo = file_of(2 * MIB);
    let (content_type, body) = multipart(None, Some(("p.png", "image/png", &photo)));
    let mut upload = TcpStream::connect(s.base.trim_start_matches("http://")).unwrap();
    upload
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        upload,
        "POST /api/v1/messages/{id}/reply HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\n\
         Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    let (first, rest) = body.split_at(body.len() / 2);
    upload.write_all(first).unwrap();
    // Half of it is in; while the rest has not come, the worker serves others.
    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(s.get("/api/v1/status").status, 200);
    }
    let r = s.post(
        &format!("/api/v1/messages/{id}/reply"),
        &json!({ "message": "a text reply meanwhile" }),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "others waited {:?}",
        started.elapsed()
    );
    assert!(
        sent_media(&s).is_empty(),
        "nothing sent before the upload is whole"
    );
    // The rest trickles in; then the upload is answered and sent.
    for piece in rest.chunks(rest.len() / 8 + 1) {
        upload.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut answer = String::new();
    upload.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(sent_media(&s)[0]["sha256"], sha(&photo));
}
