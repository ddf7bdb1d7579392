//! Hostile input and hostile clients: every route needs its credentials,
//! metacharacters change nothing, slow and idle clients block nobody.

use crate::support::*;
use serde_json::json;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;
use whatsapp_api::router::{Access, ROUTES};

const ALICE: &str = "15551234567@s.whatsapp.net";

fn sample_path(template: &str) -> String {
    template
        .split('/')
        .map(|s| if s.starts_with(':') { "x" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn every_protected_route_refuses_missing_and_wrong_credentials() {
    let s = TestServer::start();
    let wrong_basic = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "admin:wrong")
    );
    let mut checked = 0;
    for route in ROUTES.iter().filter(|r| r.access != Access::Public) {
        let path = sample_path(route.path);
        let method = route.method.as_str();
        for headers in [
            vec![],
            vec![("X-API-Key", "wrong-key-wrong-key")],
            vec![("Authorization", wrong_basic.as_str())],
        ] {
            let r = s.request(method, &path, &headers, Some(b"{}"));
            assert_eq!(
                r.status, 401,
                "{method} {path} with {headers:?}: {}",
                r.text
            );
            assert_eq!(r.json()["error"], "Unauthorized");
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} protected routes");
}

#[test]
fn sql_metacharacters_in_every_filter_change_nothing() {
    let s = TestServer::start();
    s.inject(ALICE, "ordinary text");
    let before = s.get("/api/v1/inbox/all").text;
    let evil = [
        "'",
        "\"",
        "%",
        "_",
        "\\",
        "' OR '1'='1",
        "'; DROP TABLE messages; --",
        "%' OR 1=1 --",
        "\u{0}",
        "ab\u{0}cd efg",
        "😀",
        "[a-z]*",
    ];
    for e in evil {
        let enc = whatsapp_api::http::percent_encode(e);
        for q in [
            format!("search={enc}"),
            format!("phone={enc}"),
            format!("startDate={enc}"),
            format!("endDate={enc}"),
            format!("page={enc}"),
            format!("limit={enc}"),
        ] {
            let r = s.get(&format!("/api/v1/inbox/all?{q}"));
            assert!(
                matches!(r.status, 200 | 400),
                "{q}: {} {}",
                r.status,
                r.text
            );
        }
        let r = s.get(&format!("/api/v1/inbox/{enc}"));
        assert_eq!(r.status, 400, "status {e:?}");
        let r = s.get(&format!("/api/v1/messages/{enc}"));
        assert!(
            matches!(r.status, 404 | 400),
            "message id {e:?}: {}",
            r.status
        );
        // Neither a number nor a JID: a 400 saying what a chat is.
        let r = s.get(&format!("/api/v1/conversations/{enc}/messages"));
        assert_eq!(r.status, 400, "conversation {e:?}: {}", r.text);
        assert!(r.json()["error"].as_str().unwrap().contains("JID"));
    }
    s.patch(
        "/api/v1/messages/batch/status",
        &json!({ "ids": ["' OR 1=1 --", "%"], "status": "read" }),
    );
    assert_eq!(s.get("/api/v1/inbox/all").text, before, "nothing changed");
}

#[test]
fn invalid_utf8_and_broken_escapes_are_400() {
    let s = TestServer::start();
    for path in [
        "/api/v1/inbox/all?search=%ff",
        "/api/v1/inbox/all?search=%zz",
        "/api/v1/messages/%ff",
        "/api/v1/inbox/all?phone=%",
    ] {
        let r = s.get(path);
        assert_eq!(r.status, 400, "{path}");
        assert!(r.json()["error"].is_string());
    }
    let r = s.request(
        "POST",
        "/api/v1/webhooks",
        &[("X-API-Key", KEY)],
        Some(b"{\"url\": \"\xff\xfe\"}"),
    );
    assert_eq!(r.status, 400);
}

#[test]
fn oversized_bodies_are_413_whether_announced_or_not() {
    let s = TestServer::start();
    let big = vec![b' '; 2 * 1024 * 1024];
    let r = s.request(
        "POST",
        "/api/v1/webhooks",
        &[("X-API-Key", KEY)],
        Some(&big),
    );
    assert_eq!(r.status, 413);
    // Chunked (no Content-Length): still cut at the limit.
    let mut stream = TcpStream::connect(s.base.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "POST /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    for _ in 0..20 {
        if write!(stream, "{:x}\r\n", chunk.len()).is_err()
            || stream.write_all(&chunk).is_err()
            || stream.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    let mut answer = String::new();
    let _ = std::io::Read::read_to_string(&mut stream, &mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "{}",
        answer.lines().next().unwrap_or("")
    );
}

#[test]
fn slow_and_idle_clients_do_not_starve_the_workers() {
    let s = TestServer::start();
    let addr = s.base.trim_start_matches("http://").to_string();
    // 1,000 connections that never send anything.
    let idle: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    // Half-sent headers.
    let mut half_headers = Vec::new();
    for _ in 0..20 {
        let mut c = TcpStream::connect(&addr).unwrap();
        c.write_all(b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\nX-API-")
            .unwrap();
        half_headers.push(c);
    }
    // Bodies announced but never finished: more of them than there are workers.
    let mut half_bodies = Vec::new();
    for _ in 0..32 {
        let mut c = TcpStream::connect(&addr).unwrap();
        write!(c, "POST /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\nContent-Length: 100000\r\n\r\n{{\"url\":").unwrap();
        half_bodies.push(c);
    }
    // Everyone else is still served.
    for i in 0..50 {
        let r = s.get("/api/v1/status");
        assert_eq!(r.status, 200, "request {i}");
    }
    s.inject(ALICE, "still working");
    assert_eq!(s.get("/api/v1/inbox").json()["count"], 1);
    drop(idle);
    drop(half_headers);
    drop(half_bodies);
}

#[test]
fn a_panicking_request_path_never_kills_a_worker() {
    // Malformed input of every shape: none may produce a 5xx.
    let s = TestServer::start();
    s.inject(ALICE, "x");
    let id = s.newest_id();
    let bodies: [&[u8]; 8] = [
        b"",
        b"null",
        b"{}",
        b"{\"message\": {}}",
        b"{\"message\": [1]}",
        b"{\"status\": 1}",
        b"{\"ids\": null}",
        b"{\"ids\": [[]], \"status\": \"read\"}",
    ];
    let paths = [
        ("POST", format!("/api/v1/messages/{id}/reply")),
        ("PATCH", format!("/api/v1/messages/{id}/status")),
        ("PATCH", "/api/v1/messages/batch/status".to_string()),
        ("POST", "/api/v1/webhooks".to_string()),
        ("POST", "/api/v1/session/pair-code".to_string()),
        ("POST", "/api/v1/simulator/messages".to_string()),
        ("POST", "/api/v1/simulator/connection".to_string()),
    ];
    for (method, path) in &paths {
        for body in bodies {
            let r = s.request(method, path, &[("X-API-Key", KEY)], Some(body));
            assert!(
                r.status < 500,
                "{method} {path} {:?}: {} {}",
                String::from_utf8_lossy(body),
                r.status,
                r.text
            );
        }
    }
    assert_eq!(s.get("/api/v1/status").status, 200);
}

#[test]
fn idle_and_stalled_connections_are_closed_after_the_timeout() {
    use std::io::Read;
    let s = TestServer::start_with(|c| c.http_timeout = Duration::from_secs(1));
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut idle = TcpStream::connect(&addr).unwrap();
    let mut half_headers = TcpStream::connect(&addr).unwrap();
    half_headers
        .write_all(b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut half_body = TcpStream::connect(&addr).unwrap();
    write!(half_body, "POST /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\nContent-Length: 5000\r\n\r\n{{\"url\"").unwrap();
    for (name, conn) in [
        ("idle", &mut idle),
        ("half headers", &mut half_headers),
        ("half body", &mut half_body),
    ] {
        // Our side waits up to 20 s; the server must end the connection well before.
        conn.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let started = std::time::Instant::now();
        let mut answer = Vec::new();
        let result = conn.read_to_end(&mut answer);
        assert!(
            result.is_ok() || started.elapsed() < Duration::from_secs(15),
            "{name}: the server never closed it: {result:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{name}: took {:?}",
            started.elapsed()
        );
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 4"),
            "{name}: {text}"
        );
    }
    assert_eq!(s.get("/api/v1/status").status, 200);
}
