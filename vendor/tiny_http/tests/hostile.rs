//! Clients that try to kill, pin or flood the server: each test is one
//! attack over a raw socket, and checks the server refuses it, stays
//! responsive and hands no bad request to the application.

extern crate tiny_http;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use tiny_http::{BodyPolicy, Limits, Response, Server};

/// A server answering every request with `<url> <body length>`; the URLs it
/// handed out arrive on the receiver.
fn serve(limits: Limits) -> (Arc<Server>, SocketAddr, Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Arc::new(Server::from_listener_with_limits(listener, limits).unwrap());
    let (tx, rx) = channel();
    let s = Arc::clone(&server);
    thread::spawn(move || {
        while let Ok(mut rq) = s.recv() {
            let mut body = Vec::new();
            rq.as_reader().read_to_end(&mut body).unwrap();
            let answer = format!("{} {}", rq.url(), body.len());
            let _ = tx.send(rq.url().to_string());
            let _ = rq.respond_detached(Response::from_string(answer));
        }
    });
    (server, addr, rx)
}

fn quick() -> Limits {
    Limits {
        idle_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_millis(500),
        response_timeout: Duration::from_millis(500),
        body_policy: Arc::new(|_| BodyPolicy::Memory { max: 1000 }),
        ..Limits::default()
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

/// Sends `raw`, then reads until the server closes (or 10 s pass).
fn exchange(addr: SocketAddr, raw: &[u8]) -> String {
    let mut c = connect(addr);
    let _ = c.write_all(raw);
    read_all(&mut c)
}

fn read_all(c: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let result = c.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(
        result.is_ok(),
        "the server never closed the connection ({:?}); it sent {:?}",
        result,
        answer
    );
    answer
}

/// A plain request still works.
fn assert_serves(addr: SocketAddr) {
    let answer = exchange(addr, b"GET /alive HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(answer.ends_with("/alive 0"), "{}", answer);
}

#[test]
fn oversized_request_lines_and_headers_are_refused() {
    let (_server, addr, handed) = serve(quick());
    let long_target = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(9000));
    assert!(exchange(addr, long_target.as_bytes()).starts_with("HTTP/1.1 414"));

    let big_value = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(40_000));
    assert!(exchange(addr, big_value.as_bytes()).starts_with("HTTP/1.1 431"));

    let many: String = (0..101).map(|i| format!("X-{}: x\r\n", i)).collect();
    let many = format!("GET / HTTP/1.1\r\n{}\r\n", many);
    assert!(exchange(addr, many.as_bytes()).starts_with("HTTP/1.1 431"));

    // A header that never ends: refused once the cap is passed, while the
    // client is still sending (it is not read into memory first).
    let mut c = connect(addr);
    c.write_all(b"GET / HTTP/1.1\r\nX-Endless: ").unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    for _ in 0..64 {
        if c.write_all(&chunk).is_err() {
            break;
        }
    }
    assert!(read_all(&mut c).starts_with("HTTP/1.1 431"));

    assert!(handed.try_recv().is_err(), "nothing was handed out");
    assert_serves(addr);
}

#[test]
fn ambiguous_framing_is_refused_and_closes_the_connection() {
    let (_server, addr, handed) = serve(quick());
    let cases: &[&[u8]] = &[
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        b"GET / HTTP/1.1\r\nX-A: a\r\n folded: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nX-A: a\nContent-Length: 5\r\n\r\nhello",
        b"GET / HTTP/1.1\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n",
        b"GET /a\nFORGED HTTP/1.1\r\n\r\n",
        b"GET /a\x1b[31m HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length : 5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5x\r\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n",
    ];
    for raw in cases {
        let answer = exchange(addr, raw);
        assert!(
            answer.starts_with("HTTP/1.1 400") && answer.contains("Connection: close"),
            "{:?} -> {:?}",
            String::from_utf8_lossy(raw),
            answer
        );
    }
    // A request smuggled in the body of one with a bogus Transfer-Encoding
    // is never read as a request.
    let smuggled = b"POST /outer HTTP/1.1\r\nTransfer-Encoding: xchunked\r\nContent-Length: 36\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let answer = exchange(addr, smuggled);
    assert!(answer.starts_with("HTTP/1.1 400"), "{}", answer);
    assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{}", answer);
    assert!(handed.try_recv().is_err(), "nothing was handed out");
    assert_serves(addr);
    assert_eq!(handed.try_recv().unwrap(), "/alive");
}

#[test]
fn announced_bodies_are_never_allocated_up_front() {
    let (_server, addr, handed) = serve(quick());
    // 100 GB announced, nothing sent: refused at once, the connection closed.
    let started = Instant::now();
    let answer = exchange(
        addr,
        b"POST / HTTP/1.1\r\nContent-Length: 100000000000\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{}", answer);
    assert!(answer.contains("Connection: close"));
    assert!(started.elapsed() < Duration::from_secs(5));
    // A chunked body over the limit likewise.
    let mut c = connect(addr);
    c.write_all(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    for _ in 0..4 {
        let _ = c.write_all(b"200\r\n");
        let _ = c.write_all(&[b'a'; 0x200]);
        let _ = c.write_all(b"\r\n");
    }
    assert!(read_all(&mut c).starts_with("HTTP/1.1 413"));
    // Within the limit, the body arrives whole.
    let answer = exchange(
        addr,
        b"POST /ok HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n",
    );
    assert!(answer.ends_with("/ok 5"), "{}", answer);
    assert_eq!(handed.try_recv().unwrap(), "/ok");
    assert!(handed.try_recv().is_err());
}

#[test]
fn slow_requests_end_at_their_deadline_without_reaching_the_application() {
    let (_server, addr, handed) = serve(quick());
    let started = Instant::now();
    let mut slow_head = connect(addr);
    slow_head.write_all(b"GET / HTTP/1.1\r\nX-Slow: ").unwrap();
    let mut slow_body = connect(addr);
    slow_body
        .write_all(b"POST / HTTP/1.1\r\nContent-Length: 500\r\n\r\nabc")
        .unwrap();
    let idle = connect(addr);
    // Trickle a byte every 100 ms: each read makes progress, only the total
    // deadline ends them.
    for _ in 0..8 {
        thread::sleep(Duration::from_millis(100));
        let _ = slow_head.write_all(b"a");
        let _ = slow_body.write_all(b"a");
    }
    assert!(read_all(&mut slow_head).starts_with("HTTP/1.1 408"));
    assert!(read_all(&mut slow_body).starts_with("HTTP/1.1 408"));
    let mut idle = idle;
    assert_eq!(
        read_all(&mut idle),
        "",
        "an idle connection is closed quietly"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(handed.try_recv().is_err(), "nothing was handed out");
    assert_serves(addr);
}

#[test]
fn a_client_that_never_reads_holds_no_handler_and_is_cut_off() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::from_listener_with_limits(listener, quick()).unwrap();
    let mut c = connect(addr);
    // Many pipelined requests for a large answer, never reading any.
    let requests: Vec<u8> = b"GET /big HTTP/1.1\r\n\r\n".repeat(200);
    c.write_all(&requests).unwrap();
    let big = vec![b'x'; 1024 * 1024];
    let started = Instant::now();
    let mut answered = 0;
    while let Some(rq) = server.recv_timeout(Duration::from_secs(5)).unwrap() {
        let answer = Response::from_data(big.clone());
        let before = Instant::now();
        rq.respond_detached(answer).unwrap();
        // A respond that waited on this client would wait out the write
        // deadline (`response_timeout`) once its buffers are full; one that
        // hands the answer to the connection returns well before it, however
        // busy the machine is.
        assert!(
            before.elapsed() < quick().response_timeout,
            "returns without waiting on the client: {:?}",
            before.elapsed()
        );
        answered += 1;
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    // The buffers filled, the write missed its deadline, the connection
    // was closed: the rest was never handed out.
    assert!(answered < 20, "{} answered", answered);
    assert_eq!(server.num_connections(), 0);
}

#[test]
fn connection_close_from_the_handler_is_honoured() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::from_listener_with_limits(listener, quick()).unwrap();
    let mut c = connect(addr);
    c.write_all(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /next HTTP/1.1\r\n\r\n")
        .unwrap();
    let rq = server.recv().unwrap();
    let close = "Connection: close".parse::<tiny_http::Header>().unwrap();
    rq.respond_detached(Response::from_string("bye").with_header(close))
        .unwrap();
    let answer = read_all(&mut c);
    assert!(answer.contains("Connection: close"), "{}", answer);
    assert!(answer.ends_with("bye"), "{}", answer);
    assert!(server
        .recv_timeout(Duration::from_millis(300))
        .unwrap()
        .is_none());
}

#[test]
fn connection_upgrade_is_an_ordinary_request_unless_upgraded() {
    let (_server, addr, handed) = serve(quick());
    let mut c = connect(addr);
    c.write_all(
        b"GET /first HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nGET /second HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let answer = read_all(&mut c);
    assert!(answer.contains("/first 0"), "{}", answer);
    assert!(answer.ends_with("/second 0"), "{}", answer);
    assert_eq!(handed.try_recv().unwrap(), "/first");
    assert_eq!(handed.try_recv().unwrap(), "/second");
}

#[test]
fn at_the_connection_cap_the_longest_idle_connection_makes_room() {
    let limits = Limits {
        max_connections: 8,
        ..quick()
    };
    let limits = Limits {
        idle_timeout: Duration::from_secs(30),
        ..limits
    };
    let (server, addr, _handed) = serve(limits);
    let idle: Vec<TcpStream> = (0..8).map(|_| connect(addr)).collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.num_connections() < 8 {
        assert!(Instant::now() < deadline);
        thread::sleep(Duration::from_millis(10));
    }
    // A ninth client is served at once: an idle one was closed for it (the
    // one idle longest: `conn::tests` checks which).
    let started = Instant::now();
    assert_serves(addr);
    assert!(started.elapsed() < Duration::from_secs(2));
    let closed = idle
        .iter()
        .filter(|c| {
            c.set_nonblocking(true).unwrap();
            matches!((&mut &**c).read(&mut [0u8; 1]), Ok(0))
        })
        .count();
    assert_eq!(closed, 1);
    assert!(server.num_connections() <= 8);
}

#[test]
fn expect_continue_is_answered_only_for_a_body_that_will_be_read() {
    let (_server, addr, _handed) = serve(quick());
    let mut c = connect(addr);
    c.write_all(b"POST /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut interim = [0u8; 25];
    c.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    c.write_all(b"hello").unwrap();
    assert!(read_all(&mut c).ends_with("/up 5"));
    let answer = exchange(
        addr,
        b"POST /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{}", answer);
}

#[test]
fn a_listener_that_fails_is_reported_to_recv() {
    use std::os::unix::io::AsRawFd;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let fd = listener.as_raw_fd();
    let server = Server::from_listener_with_limits(listener, quick()).unwrap();
    // Shutting a listening socket down makes accept() fail with EINVAL on
    // Linux: the listener can never accept again.
    // SAFETY: `fd` is the server's open listening socket; shutdown does not
    // close it.
    assert_eq!(unsafe { libc::shutdown(fd, libc::SHUT_RDWR) }, 0);
    let e = server.recv().unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{}", e);
}

/// The child side of `the_accept_loop_survives_running_out_of_descriptors`:
/// a server in a process allowed few open files, with a connection cap
/// above that, so `accept()` fails with `EMFILE`.
fn emfile_child() {
    let limit = libc::rlimit {
        rlim_cur: 48,
        rlim_max: 48,
    };
    // SAFETY: setrlimit reads the struct it is given.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let limits = Limits {
        max_connections: 1000,
        idle_timeout: Duration::from_secs(30),
        ..quick()
    };
    let (_server, addr, _handed) = serve(limits);
    // On a line of its own: the test harness has written half a line.
    println!("\nlistening on port {}", addr.port());
    // Serve until the parent closes our stdin.
    let _ = std::io::stdin().read(&mut [0u8; 1]);
}

#[test]
fn the_accept_loop_survives_running_out_of_descriptors() {
    if std::env::var_os("TINY_HTTP_EMFILE_CHILD").is_some() {
        return emfile_child();
    }
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "the_accept_loop_survives_running_out_of_descriptors",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TINY_HTTP_EMFILE_CHILD", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let port: u16 = loop {
        let line = lines.next().expect("the child prints its port").unwrap();
        if let Some(port) = line.strip_prefix("listening on port ") {
            break port.parse().unwrap();
        }
    };
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    // Far more connections than the child has descriptors.
    let flood: Vec<TcpStream> = (0..120).map(|_| connect(addr)).collect();
    // Served anyway: idle connections are closed to make room.
    let started = Instant::now();
    assert_serves(addr);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    drop(flood);
    for _ in 0..20 {
        assert_serves(addr);
    }
    assert!(child.try_wait().unwrap().is_none(), "the child is alive");
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
}

// The body limit is chosen per request from its head: one route may take
// a larger body while every other keeps the small limit.
#[test]
fn the_body_limit_is_chosen_per_request_from_its_head() {
    let limits = Limits {
        body_policy: Arc::new(|rq| {
            let max = if rq.url() == "/upload" { 100_000 } else { 1000 };
            BodyPolicy::Memory { max }
        }),
        ..quick()
    };
    let (_server, addr, handed) = serve(limits);
    let body = vec![b'a'; 5000];
    let request = |url: &str| {
        let mut raw = format!(
            "POST {} HTTP/1.1\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n",
            url
        )
        .into_bytes();
        raw.extend_from_slice(&body);
        exchange(addr, &raw)
    };
    let answer = request("/upload");
    assert!(answer.ends_with("/upload 5000"), "{}", answer);
    assert_eq!(handed.try_recv().unwrap(), "/upload");
    let answer = request("/other");
    assert!(answer.starts_with("HTTP/1.1 413"), "{}", answer);
    assert!(handed.try_recv().is_err());
}

#[test]
fn a_spooled_body_arrives_whole_in_a_file_that_leaves_nothing_behind() {
    let dir = std::env::temp_dir().join(format!(
        "tiny-http-spool-{}-{:?}",
        std::process::id(),
        thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let spool_dir = dir.clone();
    let limits = Limits {
        body_policy: Arc::new(move |rq| {
            if rq.url() == "/upload" {
                BodyPolicy::Spool {
                    max: 100_000,
                    dir: spool_dir.clone(),
                }
            } else {
                BodyPolicy::Memory { max: 1000 }
            }
        }),
        ..quick()
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Arc::new(Server::from_listener_with_limits(listener, limits).unwrap());
    let (handed_tx, handed) = channel();
    let s = Arc::clone(&server);
    let seen_dir = dir.clone();
    thread::spawn(move || {
        while let Ok(mut rq) = s.recv() {
            // The file has no name left in the spool directory.
            let names = std::fs::read_dir(&seen_dir).unwrap().count();
            let answer = match rq.take_spooled_body() {
                Some(mut file) => {
                    let mut body = Vec::new();
                    file.read_to_end(&mut body).unwrap();
                    let pattern = body.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8);
                    format!("spooled {} {} {}", body.len(), pattern, names)
                }
                None => {
                    let mut body = Vec::new();
                    rq.as_reader().read_to_end(&mut body).unwrap();
                    format!("memory {}", body.len())
                }
            };
            let _ = handed_tx.send(rq.url().to_string());
            let _ = rq.respond_detached(Response::from_string(answer));
        }
    });
    let body = |len: usize| (0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>();
    let with_length = |url: &str, len: usize| {
        let mut raw = format!(
            "POST {} HTTP/1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            url, len
        )
        .into_bytes();
        raw.extend_from_slice(&body(len));
        exchange(addr, &raw)
    };
    let chunked = |len: usize| {
        let mut raw =
            b"POST /upload HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                .to_vec();
        for piece in body(len).chunks(7000) {
            raw.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            raw.extend_from_slice(piece);
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"0\r\n\r\n");
        exchange(addr, &raw)
    };

    let answer = with_length("/upload", 99_000);
    assert!(answer.ends_with("spooled 99000 true 0"), "{}", answer);
    let answer = chunked(100_000);
    assert!(answer.ends_with("spooled 100000 true 0"), "{}", answer);
    let answer = with_length("/other", 500);
    assert!(answer.ends_with("memory 500"), "{}", answer);
    assert_eq!(handed.try_iter().count(), 3);

    // Over the limit, announced or streamed: refused, nothing handed out.
    let answer = with_length("/upload", 100_001);
    assert!(answer.starts_with("HTTP/1.1 413"), "{}", answer);
    let answer = chunked(100_001);
    assert!(answer.starts_with("HTTP/1.1 413"), "{}", answer);
    // A client that leaves halfway.
    {
        let mut c = connect(addr);
        c.write_all(b"POST /upload HTTP/1.1\r\nContent-Length: 50000\r\n\r\n")
            .unwrap();
        c.write_all(&body(20_000)).unwrap();
    }
    let answer = exchange(addr, b"GET /alive HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(answer.ends_with("memory 0"), "{}", answer);
    assert_eq!(handed.try_iter().collect::<Vec<_>>(), ["/alive"]);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}
