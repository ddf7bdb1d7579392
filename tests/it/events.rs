//! The event stream, `GET /api/v1/events`: live events, resuming by header
//! and by query (across a restart too), filters, auth, the stream limit,
//! workers left free, and a reader that stops reading.

use crate::support::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// One Server-Sent Event, or a comment line.
#[derive(Debug, Clone, PartialEq)]
enum Frame {
    Event {
        id: i64,
        event: String,
        data: String,
    },
    Comment(String),
}

/// A raw client of the stream (the body is chunked: `buf` holds what the
/// chunks carried and was not read yet).
struct Sse {
    reader: BufReader<TcpStream>,
    buf: Vec<u8>,
    pub status: u16,
    pub head: String,
}

impl Sse {
    /// Sends the request and reads the answer's head; the body is read with
    /// `next`.
    fn open(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> Sse {
        let port = server.server.as_ref().unwrap().port;
        let mut socket = TcpStream::connect(("127.0.0.1", port)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        socket.write_all(request.as_bytes()).unwrap();
        let mut reader = BufReader::new(socket);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line);
        }
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Sse {
            reader,
            buf: Vec::new(),
            status,
            head,
        }
    }

    fn with_key(server: &TestServer, path: &str) -> Sse {
        let sse = Sse::open(server, path, &[("X-API-Key", KEY)]);
        assert_eq!(sse.status, 200, "{}", sse.head);
        sse
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    /// One line of the body, without its `\n`; None at its end.
    fn read_line(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                return Some(String::from_utf8(line[..end].to_vec()).unwrap());
            }
            // The next chunk: its size in hex, its bytes, CRLF.
            let mut size = String::new();
            if self.reader.read_line(&mut size).ok()? == 0 {
                return None;
            }
            let size = usize::from_str_radix(size.trim(), 16).ok()?;
            if size == 0 {
                return None;
            }
            let mut chunk = vec![0; size + 2];
            self.reader.read_exact(&mut chunk).ok()?;
            self.buf.extend_from_slice(&chunk[..size]);
        }
    }

    /// The next event or comment, waiting at most until `deadline`.
    fn next_frame(&mut self, deadline: Instant) -> Option<Frame> {
        let (mut id, mut event, mut data) = (None, String::new(), Vec::new());
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            self.reader
                .get_ref()
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let line = self.read_line()?;
            let line = line.as_str();
            if line.is_empty() {
                if let Some(id) = id {
                    return Some(Frame::Event {
                        id,
                        event,
                        data: data.join("\n"),
                    });
                }
                continue;
            }
            if let Some(comment) = line.strip_prefix(':') {
                return Some(Frame::Comment(comment.trim().to_string()));
            }
            let (field, value) = line.split_once(": ").unwrap_or((line, ""));
            match field {
                "id" => id = Some(value.parse().unwrap()),
                "event" => event = value.to_string(),
                "data" => data.push(value.to_string()),
                "retry" => {}
                other => panic!("unexpected field {other:?}"),
            }
        }
    }

    /// The next event (comments skipped) within `secs`.
    fn next_event(&mut self, secs: u64) -> (i64, String, Value) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            match self.next_frame(deadline) {
                Some(Frame::Event { id, event, data }) => {
                    return (id, event, serde_json::from_str(&data).unwrap());
                }
                Some(Frame::Comment(_)) => continue,
                None => panic!("no event within {secs} s"),
            }
        }
    }

    /// Asserts that no event comes within `ms` (comments may).
    fn assert_quiet(&mut self, ms: u64) {
        let deadline = Instant::now() + Duration::from_millis(ms);
        while let Some(frame) = self.next_frame(deadline) {
            assert!(
                matches!(frame, Frame::Comment(_)),
                "unexpected event {frame:?}"
            );
        }
    }
}

/// Injects messages with the given texts; returns their wa_ids.
fn inject_all(server: &TestServer, texts: &[&str]) -> Vec<String> {
    texts
        .iter()
        .map(|t| server.inject("15551230000", t))
        .collect()
}

fn texts_of(events: &[(i64, String, Value)]) -> Vec<String> {
    events
        .iter()
        .map(|(_, _, body)| body["data"]["message"].as_str().unwrap().to_string())
        .collect()
}

fn read_events(sse: &mut Sse, n: usize) -> Vec<(i64, String, Value)> {
    (0..n).map(|_| sse.next_event(10)).collect()
}

#[test]
fn a_live_event_carries_the_webhook_body() {
    let server = TestServer::start();
    let receiver = WebhookReceiver::start();
    let r = server.post(
        "/api/v1/webhooks",
        &json!({ "url": receiver.url, "events": ["message.received"] }),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let mut sse = Sse::with_key(&server, "/api/v1/events");
    assert_eq!(
        sse.header("content-type").as_deref(),
        Some("text/event-stream; charset=utf-8")
    );
    assert_eq!(sse.header("cache-control").as_deref(), Some("no-store"));
    let wa_id = server.inject("15551230000", "hello stream");
    // Waits with a deadline; how fast it comes is measured by `make bench`.
    let (id, event, body) = sse.next_event(5);
    assert!(id > 0);
    assert_eq!(event, "message.received");
    assert_eq!(body["event"], "message.received");
    assert_eq!(body["data"]["waId"], wa_id.as_str());
    assert_eq!(body["data"]["message"], "hello stream");
    assert_eq!(body["data"]["id"], server.newest_id().as_str());
    // The very bytes the webhook received.
    let posted = receiver.wait_for(1, 10);
    assert_eq!(posted[0].body, body.to_string());
    assert_eq!(
        serde_json::from_str::<Value>(&posted[0].body).unwrap(),
        body
    );
}

#[test]
fn a_gap_is_resumed_in_order_by_header_and_by_query() {
    let server = TestServer::start();
    let mut live = Sse::with_key(&server, "/api/v1/events");
    inject_all(&server, &["one", "two"]);
    let first = read_events(&mut live, 2);
    let (two_id, _, _) = first[1].clone();
    drop(live);
    // Five events while nobody listens.
    let gap = ["three", "four", "five", "six", "seven"];
    inject_all(&server, &gap);

    for (path, headers) in [
        (
            "/api/v1/events".to_string(),
            vec![("Last-Event-ID", two_id.to_string())],
        ),
        (format!("/api/v1/events?after={two_id}"), vec![]),
        // The header wins over the query (an EventSource reconnecting sends
        // both: the URL it first opened, and the last id it saw).
        (
            "/api/v1/events?after=0".to_string(),
            vec![("Last-Event-ID", two_id.to_string())],
        ),
    ] {
        let mut headers: Vec<(&str, &str)> =
            headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        headers.push(("X-API-Key", KEY));
        let mut sse = Sse::open(&server, &path, &headers);
        assert_eq!(sse.status, 200, "{}", sse.head);
        let resumed = read_events(&mut sse, gap.len());
        assert_eq!(texts_of(&resumed), gap, "{path}");
        let ids: Vec<i64> = resumed.iter().map(|(id, _, _)| *id).collect();
        assert!(
            ids[0] > two_id && ids.windows(2).all(|w| w[0] < w[1]),
            "{ids:?}"
        );
        // Then live ones, with nothing repeated in between.
        server.inject("15551230000", "live");
        let (id, _, body) = sse.next_event(5);
        assert_eq!(body["data"]["message"], "live", "{path}");
        assert!(id > ids[4]);
    }
}

#[test]
fn ids_keep_increasing_across_a_restart() {
    let server = TestServer::start();
    let mut sse = Sse::with_key(&server, "/api/v1/events");
    inject_all(&server, &["before 1", "before 2"]);
    let before = read_events(&mut sse, 2);
    drop(sse);
    let dir = server.stop();
    let server = TestServer::start_in(dir, |_| {});
    inject_all(&server, &["after 1"]);
    // Resumed across the restart from the first event: the rest, in order,
    // nothing twice, nothing missing.
    let mut sse = Sse::with_key(&server, &format!("/api/v1/events?after={}", before[0].0));
    let mut texts = Vec::new();
    let mut ids = vec![before[0].0];
    loop {
        let (id, event, body) = sse.next_event(5);
        ids.push(id);
        if event == "message.received" {
            texts.push(body["data"]["message"].as_str().unwrap().to_string());
        }
        if texts.last().map(String::as_str) == Some("after 1") {
            break;
        }
    }
    assert_eq!(texts, ["before 2", "after 1"]);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(ids[1], before[1].0);
}

#[test]
fn filters_pass_only_the_named_events() {
    let server = TestServer::start();
    let mut sse = Sse::with_key(
        &server,
        "/api/v1/events?events=connection.disconnected,connection.connected",
    );
    server.inject("15551230000", "not wanted");
    for state in ["disconnected", "connected"] {
        let r = server.post("/api/v1/simulator/connection", &json!({ "state": state }));
        assert_eq!(r.status, 200, "{}", r.text);
    }
    server.inject("15551230000", "not wanted either");
    let (_, first, body) = sse.next_event(5);
    assert_eq!(first, "connection.disconnected");
    assert_eq!(body["event"], "connection.disconnected");
    let (_, second, _) = sse.next_event(5);
    assert_eq!(second, "connection.connected");
    sse.assert_quiet(300);

    for bad in [
        "/api/v1/events?events=message.nope",
        "/api/v1/events?events=",
        "/api/v1/events?after=abc",
        "/api/v1/events?after=-1",
    ] {
        let r = server.get(bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        assert!(r.json()["error"].is_string());
    }
    let r = server.request(
        "GET",
        "/api/v1/events",
        &[("X-API-Key", KEY), ("Last-Event-ID", "x1")],
        None,
    );
    assert_eq!(r.status, 400, "{}", r.text);
}

#[test]
fn the_stream_takes_an_api_key_or_the_dashboard_login() {
    let server = TestServer::start();
    let r = server.request("GET", "/api/v1/events", &[], None);
    assert_eq!(r.status, 401);
    let r = server.request("GET", "/api/v1/events", &[("X-API-Key", "wrong")], None);
    assert_eq!(r.status, 401);
    let wrong = basic_auth(DASH_USER, "not the password");
    let r = server.request("GET", "/api/v1/events", &[("Authorization", &wrong)], None);
    assert_eq!(r.status, 401);
    let login = basic_auth(DASH_USER, DASH_PASSWORD);
    let mut sse = Sse::open(&server, "/api/v1/events", &[("Authorization", &login)]);
    assert_eq!(sse.status, 200, "{}", sse.head);
    server.inject("15551230000", "for the dashboard");
    assert_eq!(sse.next_event(5).2["data"]["message"], "for the dashboard");
}

#[test]
fn streams_beyond_the_limit_get_503_with_retry_after() {
    let server = TestServer::start_with(|c| {
        c.event_streams_max = 2;
        c.event_ping = Duration::from_millis(100);
    });
    let a = Sse::with_key(&server, "/api/v1/events");
    let _b = Sse::with_key(&server, "/api/v1/events");
    let r = server.get("/api/v1/events");
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.header("retry-after"), Some("5"));
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("event streams")
    );
    let metrics = server.get("/metrics").text;
    assert!(
        metrics.contains("whatsapp_api_event_streams_open 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("whatsapp_api_event_streams_refused_total 1"),
        "{metrics}"
    );
    // A closed stream frees its slot (noticed at its next write, a ping at
    // the latest).
    drop(a);
    eventually(5, "a freed slot", || {
        let sse = Sse::open(&server, "/api/v1/events", &[("X-API-Key", KEY)]);
        (sse.status == 200).then_some(sse)
    });
}

#[test]
fn open_streams_leave_the_workers_free() {
    let server = TestServer::start_with(|c| c.http_workers = 2);
    let mut streams: Vec<Sse> = (0..4)
        .map(|_| Sse::with_key(&server, "/api/v1/events"))
        .collect();
    // Two workers, four streams: the API answers as usual.
    for _ in 0..3 {
        assert_eq!(server.get("/api/v1/health").status, 200);
        assert_eq!(server.get("/api/v1/inbox/all").status, 200);
    }
    server.inject("15551230000", "to all four");
    for sse in &mut streams {
        assert_eq!(sse.next_event(5).2["data"]["message"], "to all four");
    }
    let metrics = server.get("/metrics").text;
    assert!(
        metrics.contains("whatsapp_api_event_streams_open 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("whatsapp_api_event_stream_events_sent_total 4"),
        "{metrics}"
    );
}

#[test]
fn a_quiet_stream_is_pinged() {
    let server = TestServer::start_with(|c| c.event_ping = Duration::from_millis(100));
    let mut sse = Sse::with_key(&server, "/api/v1/events");
    let deadline = Instant::now() + Duration::from_secs(5);
    assert_eq!(
        sse.next_frame(deadline),
        Some(Frame::Comment("ping".into()))
    );
}

#[test]
fn a_reader_that_stops_reading_delays_no_other_and_is_cut_off() {
    let server = TestServer::start_with(|c| c.http_timeout = Duration::from_secs(1));
    // A client that asks for the stream and never reads a byte, with a
    // receive buffer as small as the system allows.
    let port = server.server.as_ref().unwrap().port;
    let stalled = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    stalled.set_recv_buffer_size(4096).unwrap();
    stalled
        .connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into())
        .unwrap();
    let mut stalled: TcpStream = stalled.into();
    write!(
        stalled,
        "GET /api/v1/events HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\n\r\n"
    )
    .unwrap();
    let mut healthy = Sse::with_key(&server, "/api/v1/events");
    eventually(5, "both streams open", || {
        server
            .get("/metrics")
            .text
            .contains("whatsapp_api_event_streams_open 2")
            .then_some(())
    });
    // 300 events of about 3 KB each.
    let filler = "x".repeat(3000);
    let injector = {
        let base = server.base.clone();
        let filler = filler.clone();
        std::thread::spawn(move || {
            let agent = agent();
            for n in 0..300 {
                let body = json!({ "from": "15551230000", "text": format!("{n} {filler}") });
                let r = request(
                    &agent,
                    "POST",
                    &format!("{base}/api/v1/simulator/messages"),
                    &[("X-API-Key", KEY), ("Content-Type", "application/json")],
                    Some(&serde_json::to_vec(&body).unwrap()),
                );
                assert_eq!(r.status, 201);
            }
        })
    };
    for n in 0..300 {
        let (_, _, body) = healthy.next_event(10);
        assert_eq!(
            body["data"]["message"].as_str().unwrap(),
            format!("{n} {filler}")
        );
    }
    injector.join().unwrap();
    // Enough to fill the stalled one's buffers (the kernel lets a socket's
    // send buffer grow to the last of net.ipv4.tcp_wmem, 4 MiB by default):
    // its write then times out and it is closed, while the healthy one
    // reads on.
    let send_buffer_max: usize = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().last()?.parse().ok())
        .unwrap_or(4 << 20);
    let big = "y".repeat(60_000);
    let count = (send_buffer_max + (2 << 20)) / big.len();
    for n in 0..count {
        server.inject("15551230000", &format!("big {n} {big}"));
        let (_, _, body) = healthy.next_event(10);
        assert!(
            body["data"]["message"]
                .as_str()
                .unwrap()
                .starts_with(&format!("big {n} "))
        );
    }
    eventually(15, "the stalled stream cut off", || {
        server
            .get("/metrics")
            .text
            .contains("whatsapp_api_event_streams_open 1")
            .then_some(())
    });
    server.inject("15551230000", "still here");
    assert_eq!(healthy.next_event(5).2["data"]["message"], "still here");
    // What the stalled client gets, once it reads, ends before the 300th.
    let mut got = Vec::new();
    stalled
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = stalled.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(
        !text.contains(&format!("big {} ", count - 1)),
        "the stalled stream got everything"
    );
}
