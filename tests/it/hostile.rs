//! Hostile input and hostile clients: every route needs its credentials,
//! metacharacters change nothing, slow and idle clients block nobody, and no
//! client can kill, pin or flood the server (the attacks at the end, each
//! against the real binary over raw sockets, with `/api/v1/health` answering
//! within a second throughout).

use crate::support::*;
use serde_json::json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
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
        let enc = whatsapp_api::web::percent_encode(e);
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

// ---------------------------------------------------------------------------
// Attacks on the HTTP front end. Each runs against the binary in a child
// process (so a crash shows as a dead process), with 4 workers and
// `HTTP_TIMEOUT_SECS=2`, while `HealthWatch` asks for `/api/v1/health`
// every 200 ms and requires each answer within a second.

/// One attack at a time: each needs the machine's attention to show that
/// `/api/v1/health` answers within a second.
static ONE_ATTACK_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The server the attacks meet (and the attack's turn, held until the end
/// of the test).
fn target(nofile: Option<u64>) -> (std::sync::MutexGuard<'static, ()>, TempDir, BinServer) {
    target_with_timeout(nofile, 2)
}

/// `target` with the server's `HTTP_TIMEOUT_SECS`.
fn target_with_timeout(
    nofile: Option<u64>,
    http_timeout_secs: u64,
) -> (std::sync::MutexGuard<'static, ()>, TempDir, BinServer) {
    let turn = ONE_ATTACK_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("attack");
    let timeout = http_timeout_secs.to_string();
    let server = BinServer::start_limited(
        &dir.0,
        &[
            ("HTTP_WORKERS", "4"),
            ("HTTP_TIMEOUT_SECS", timeout.as_str()),
        ],
        nofile,
    );
    (turn, dir, server)
}

/// `GET /api/v1/health` over a new connection, answered 200 within `limit`.
fn health_within(addr: SocketAddr, limit: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    let mut c = TcpStream::connect_timeout(&addr, limit).map_err(|e| format!("connect: {e}"))?;
    c.set_read_timeout(Some(limit)).unwrap();
    c.set_write_timeout(Some(limit)).unwrap();
    c.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut answer = Vec::new();
    c.read_to_end(&mut answer)
        .map_err(|e| format!("read after {:?}: {e}", started.elapsed()))?;
    let took = started.elapsed();
    if !answer.starts_with(b"HTTP/1.1 200") {
        return Err(format!("answered {:?}", String::from_utf8_lossy(&answer)));
    }
    if took > limit {
        return Err(format!("answered after {took:?}"));
    }
    Ok(took)
}

/// Checks `/api/v1/health` every 200 ms from its own thread until `finish`.
struct HealthWatch {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(usize, Vec<String>, Duration)>,
}

impl HealthWatch {
    /// Returns once the first check is done, so that the watch runs
    /// throughout the attack that follows.
    fn start(addr: SocketAddr) -> HealthWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let (first_done, first) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::spawn(move || {
            let (mut checks, mut failures) = (0, Vec::new());
            let mut slowest = Duration::ZERO;
            while !flag.load(Ordering::SeqCst) {
                checks += 1;
                match health_within(addr, Duration::from_secs(1)) {
                    Ok(took) => slowest = slowest.max(took),
                    Err(e) => failures.push(e),
                }
                let _ = first_done.try_send(());
                std::thread::sleep(Duration::from_millis(200));
            }
            (checks, failures, slowest)
        });
        first.recv().expect("the health watch runs");
        HealthWatch { stop, thread }
    }

    /// Stops watching; fails if any check failed.
    fn finish(self) {
        self.stop.store(true, Ordering::SeqCst);
        let (checks, failures, slowest) = self.thread.join().unwrap();
        assert!(
            failures.is_empty(),
            "/api/v1/health failed {} of {checks} times during the attack (the others took {slowest:?} at most): {:?}",
            failures.len(),
            &failures[..failures.len().min(3)]
        );
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

/// Reads until the server closes the connection (10 s at most).
fn read_until_closed(c: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let result = c.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(
        result.is_ok() || !answer.is_empty(),
        "no answer, and the connection was not closed: {result:?}"
    );
    answer
}

/// Sends `raw` on a new connection and reads until the server closes it.
fn exchange(addr: SocketAddr, raw: &[u8]) -> String {
    let mut c = connect(addr);
    c.write_all(raw).unwrap();
    read_until_closed(&mut c)
}

/// Sends `start`, then `filler` up to `total` bytes while another thread
/// reads: returns the answer once the server has closed the connection.
fn flood(addr: SocketAddr, start: &[u8], filler: &[u8], total: usize) -> String {
    let mut c = connect(addr);
    let mut reading = c.try_clone().unwrap();
    let reader = std::thread::spawn(move || {
        let mut answer = Vec::new();
        let _ = reading.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    });
    let chunk = filler.repeat((64 * 1024 / filler.len()).max(1));
    let mut sent = 0;
    if c.write_all(start).is_ok() {
        while sent < total && c.write_all(&chunk).is_ok() {
            sent += chunk.len();
        }
    }
    let _ = c.write_all(b"\r\n\r\n");
    reader.join().unwrap()
}

#[test]
fn attack_a_huge_announced_body_is_refused_without_allocating_it() {
    let (_turn, _dir, mut server) = target(None);
    let addr = server.addr();
    let watch = HealthWatch::start(addr);
    for _ in 0..3 {
        let answer = exchange(
            addr,
            b"POST /api/v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000\r\n\r\n",
        );
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("Connection: close"), "{answer}");
        assert!(answer.contains(r#"{"error":"#), "{answer}");
    }
    watch.finish();
    assert!(server.alive());
}

#[test]
fn attack_running_out_of_file_descriptors_is_survived() {
    // 256 open files: room for ~100 connections after the databases. Idle
    // connections are cut only after 30 s, so an answer within 5 s means
    // the server made room itself rather than waiting for them to time out.
    let (_turn, _dir, mut server) = target_with_timeout(Some(256), 30);
    let addr = server.addr();
    for round in 0..3 {
        let held: Vec<TcpStream> = (0..300).map(|_| connect(addr)).collect();
        if let Err(e) = health_within(addr, Duration::from_secs(5)) {
            panic!("round {round}, 300 connections open: {e}");
        }
        drop(held);
    }
    let watch = HealthWatch::start(addr);
    for _ in 0..300 {
        drop(connect(addr));
    }
    watch.finish();
    assert!(server.alive());
}

/// A connection with a small receive buffer (no autotuning): a client that
/// stops reading fills it, and the server's send buffer, quickly.
fn connect_small_window(addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).unwrap();
    let c: TcpStream = socket.into();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

#[test]
fn attack_pipelined_requests_never_read_pin_nothing() {
    let (_turn, _dir, mut server) = target(None);
    let addr = server.addr();
    let fds_before = server.open_fds();
    let watch = HealthWatch::start(addr);
    // 400 requests for the largest document (31 KB) on each of 8
    // connections (twice the workers) that never read an answer.
    let requests = b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n".repeat(400);
    let mut conns: Vec<TcpStream> = (0..8)
        .map(|_| {
            let c = connect_small_window(addr);
            let mut writing = c.try_clone().unwrap();
            let requests = requests.clone();
            // The server reads requests only as it answers them: write
            // from a thread of its own.
            std::thread::spawn(move || writing.write_all(&requests));
            c
        })
        .collect();
    eventually(20, "the server to accept the attacking connections", || {
        (server.open_fds() >= fds_before + 8).then_some(())
    });
    // Once a client's buffers are full, the answer being written misses
    // its deadline and the server closes the connection (its descriptor
    // goes; the FIN waits behind the unread data).
    eventually(20, "the server to close the attacking connections", || {
        (server.open_fds() <= fds_before).then_some(())
    });
    watch.finish();
    let answered: Vec<usize> = conns
        .iter_mut()
        .map(|c| read_until_closed(c).matches("HTTP/1.1 200").count())
        .collect();
    assert!(
        answered.iter().all(|&n| n < 400),
        "answers per connection: {answered:?}"
    );
    assert!(server.alive());
}

#[test]
fn attack_slow_bodies_and_upgrade_requests_pin_nothing() {
    let (_turn, _dir, mut server) = target(None);
    let addr = server.addr();
    let watch = HealthWatch::start(addr);
    let post = |len: usize| {
        format!(
            "POST /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n{{"
        )
    };
    // Over the limit, then a byte now and then: refused at once.
    let mut over: Vec<TcpStream> = (0..8).map(|_| connect(addr)).collect();
    // Within the limit, trickled: cut off at the request's deadline.
    let within: Vec<TcpStream> = (0..8).map(|_| connect(addr)).collect();
    for c in &mut over {
        c.write_all(post(2_000_000).as_bytes()).unwrap();
    }
    for mut c in &within {
        c.write_all(post(100_000).as_bytes()).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let trickle = {
        let stop = Arc::clone(&stop);
        let mut conns: Vec<TcpStream> = over
            .iter()
            .chain(&within)
            .map(|c| c.try_clone().unwrap())
            .collect();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                for c in &mut conns {
                    let _ = c.write_all(b" ");
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    // A protocol upgrade no route offers: an ordinary request, and the
    // connection goes on.
    let mut upgrades: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut c = connect(addr);
            c.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
                .unwrap();
            c
        })
        .collect();
    for c in &mut over {
        let answer = read_until_closed(c);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    }
    for c in &mut upgrades {
        c.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let answer = read_until_closed(c);
        assert_eq!(answer.matches("HTTP/1.1 200").count(), 2, "{answer}");
    }
    let started = Instant::now();
    for mut c in within {
        let answer = read_until_closed(&mut c);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    stop.store(true, Ordering::SeqCst);
    trickle.join().unwrap();
    watch.finish();
    assert!(server.alive());
}

#[test]
fn attack_huge_request_heads_are_refused_and_memory_stays_bounded() {
    let (_turn, _dir, mut server) = target(None);
    let addr = server.addr();
    let watch = HealthWatch::start(addr);
    let before = server.peak_rss_kb();
    // A 64 MB header value.
    let answer = flood(
        addr,
        b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Big: ",
        b"a",
        64 << 20,
    );
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.200}");
    // 100,000 header fields.
    let answer = flood(
        addr,
        b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n",
        b"X-Many: many\r\n",
        100_000 * 14,
    );
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.200}");
    // A 64 MB request line.
    let answer = flood(addr, b"GET /api/v1/health?", b"a", 64 << 20);
    assert!(answer.starts_with("HTTP/1.1 414"), "{answer:.200}");
    let growth_kb = server.peak_rss_kb().saturating_sub(before);
    assert!(growth_kb < 32 * 1024, "peak memory grew by {growth_kb} kB");
    watch.finish();
    assert!(server.alive());
}

#[test]
fn attack_ambiguous_framing_is_refused_and_closes_the_connection() {
    let (_turn, _dir, mut server) = target(None);
    let addr = server.addr();
    let watch = HealthWatch::start(addr);
    let cases: &[&[u8]] = &[
        b"POST /api/v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /api/v1/health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        b"POST /api/v1/health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n",
        b"POST /api/v1/health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST /api/v1/health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"POST /api/v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"POST /api/v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        b"POST /api/v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
        b"POST /api/v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: 5x\r\n\r\nhello",
        b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-A: a\r\n Content-Length: 5\r\n\r\nhello",
        b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-A: a\nContent-Length: 5\r\n\r\nhello",
        b"GET /api/v1/health HTTP/1.1\nHost: x\r\n\r\n",
        b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello",
    ];
    for raw in cases {
        let answer = exchange(addr, raw);
        assert!(
            answer.starts_with("HTTP/1.1 400") && answer.contains("Connection: close"),
            "{:?} -> {answer:?}",
            String::from_utf8_lossy(raw)
        );
        assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    }
    // A request hidden in the body of one with a bogus Transfer-Encoding is
    // never answered: the connection closes after the 400.
    let smuggle = b"POST /api/v1/health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\nGET /api/v1/status HTTP/1.1\r\nHost: x\r\nX-API-Key: wrong\r\n\r\n";
    let answer = exchange(addr, smuggle);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    watch.finish();
    assert!(server.alive());
}

#[test]
fn attack_control_characters_never_reach_a_log_line() {
    let (_turn, _dir, mut server) = target(None);
    let addr = server.addr();
    let answers = [
        &b"GET /api/v1/\nFORGED-LINE HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"GET /api/v1/\x1b[2Jred HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nUser-Agent: \x1b[31mred\r\n\r\n",
        b"GET /api/v1/inbox%0aFORGED%1b[2J HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ]
    .map(|raw| exchange(addr, raw));
    // The last line this test causes; then every line before it is there.
    exchange(
        addr,
        b"GET /api/v1/log-sentinel HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    eventually(10, "the sentinel in the log", || {
        server
            .log()
            .iter()
            .any(|l| l.contains("/api/v1/log-sentinel"))
            .then_some(())
    });
    let log = server.log();
    for line in &log {
        assert!(!line.starts_with("FORGED"), "a forged log line: {line:?}");
        assert!(!line.chars().any(char::is_control), "{line:?}");
    }
    // Raw control characters are refused (400); percent-escapes are a 404,
    // logged as sent.
    for answer in answers {
        assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    }
    assert!(server.alive());
}
