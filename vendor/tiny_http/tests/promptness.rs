extern crate tiny_http;

use std::io::{copy, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::ops::Deref;
use std::sync::mpsc::channel;
use std::sync::Arc;
use std::thread::{sleep, spawn};
use std::time::Duration;
use tiny_http::{BodyPolicy, Limits, Response, Server};

/// Stream that produces bytes very slowly
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
struct SlowByteSrc {
    val: u8,
    len: usize,
}
impl Read for SlowByteSrc {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        sleep(Duration::from_millis(100));
        let l = self.len.min(buf.len()).min(1000);
        for v in buf[..l].iter_mut() {
            *v = self.val;
        }
        self.len -= l;
        Ok(l)
    }
}

/// crude impl of http `Transfer-Encoding: chunked`
fn encode_chunked(data: &mut dyn Read, output: &mut dyn Write) {
    let mut buf = [0u8; 4096];
    loop {
        let l = data.read(&mut buf).unwrap();
        write!(output, "{:X}\r\n", l).unwrap();
        output.write_all(&buf[..l]).unwrap();
        write!(output, "\r\n").unwrap();
        if l == 0 {
            break;
        }
    }
}

// Requests are read whole before they are handed out, one at a time per
// connection: pipelined requests each arrive with their whole body, in order,
// as soon as the one before is answered.
mod prompt_pipelining {
    use super::*;

    fn assert_requests_parsed_promptly(
        req_cnt: usize,
        req_body: &'static [u8],
        timeout: Duration,
        req_writer: impl FnOnce(&mut dyn Write) + Send + 'static,
    ) {
        let server = Server::http("0.0.0.0:0").unwrap();
        let mut client = TcpStream::connect(server.server_addr().to_ip().unwrap()).unwrap();
        let (svr_send, svr_rcv) = channel();

        spawn(move || {
            for i in 0..req_cnt {
                let mut req = server.recv().unwrap();
                assert_eq!(req.url(), format!("/{}", i));
                let mut body = Vec::new();
                req.as_reader().read_to_end(&mut body).unwrap();
                assert_eq!(req_body, body.as_slice());
                req.respond_detached(Response::from_string(i.to_string()))
                    .unwrap();
            }
            svr_send.send(()).unwrap();
        });

        // The client stays open (to read the answers) after writing.
        let mut writing = client.try_clone().unwrap();
        spawn(move || req_writer(&mut writing));

        // requests must be sent and received quickly (before timeout expires)
        let _ = &mut client;
        svr_rcv
            .recv_timeout(timeout)
            .expect("Server did not finish reading pipelined requests quickly enough");
    }

    #[test]
    fn empty() {
        assert_requests_parsed_promptly(5, &[], Duration::from_secs(2), move |wr| {
            for i in 0..5 {
                write!(wr, "GET /{} HTTP/1.1\r\n", i).unwrap();
                write!(wr, "Connection: keep-alive\r\n\r\n").unwrap();
            }
        });
    }

    #[test]
    fn content_length_short() {
        let body = &[65u8; 100]; // short but not trivial
        assert_requests_parsed_promptly(5, body, Duration::from_secs(2), move |wr| {
            for i in 0..5 {
                write!(wr, "GET /{} HTTP/1.1\r\n", i).unwrap();
                write!(wr, "Connection: keep-alive\r\n").unwrap();
                write!(wr, "Content-Length: {}\r\n\r\n", body.len()).unwrap();
                wr.write_all(body).unwrap();
            }
        });
    }

    #[test]
    fn content_length_long() {
        let body = &[65u8; 10000]; // more than one read
        assert_requests_parsed_promptly(5, body, Duration::from_secs(2), move |wr| {
            for i in 0..5 {
                write!(wr, "GET /{} HTTP/1.1\r\n", i).unwrap();
                write!(wr, "Connection: keep-alive\r\n").unwrap();
                write!(wr, "Content-Length: {}\r\n\r\n", body.len()).unwrap();
                wr.write_all(body).unwrap();
            }
        });
    }

    #[test]
    fn chunked() {
        let body = &[65u8; 10000];
        assert_requests_parsed_promptly(5, body, Duration::from_secs(2), move |wr| {
            for i in 0..5 {
                write!(wr, "GET /{} HTTP/1.1\r\n", i).unwrap();
                write!(wr, "Connection: keep-alive\r\n").unwrap();
                write!(wr, "Transfer-Encoding: chunked\r\n\r\n").unwrap();
                encode_chunked(&mut &body[..], wr);
            }
        });
    }
}

// A body over the server's limit is refused at once, without waiting for it
// (and without handing the request out).
mod prompt_responses {
    use super::*;

    /// Check that response is sent promptly without waiting for full request body.
    fn assert_responds_promptly(
        timeout: Duration,
        expected_status: &str,
        req_writer: impl FnOnce(&mut dyn Write) + Send + 'static,
    ) {
        let limits = Limits {
            body_policy: Arc::new(|_| BodyPolicy::Memory { max: 500 }),
            ..Limits::default()
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = Server::from_listener_with_limits(listener, limits).unwrap();
        let client = TcpStream::connect(server.server_addr().to_ip().unwrap()).unwrap();

        spawn(move || loop {
            // no request should ever get this far
            let req = server.recv().unwrap();
            req.respond(Response::empty(200)).unwrap();
        });

        let client = Arc::new(client);
        let client_write = Arc::clone(&client);
        // request written (possibly very slowly) in another thread
        spawn(move || req_writer(&mut client_write.deref()));

        // response should arrive quickly (before timeout expires)
        client.set_read_timeout(Some(timeout)).unwrap();
        let mut answer = [0u8; 4096];
        let read = client.deref().read(&mut answer);
        client.shutdown(Shutdown::Both).unwrap();
        let read = read.expect("Server response was not sent promptly");
        let answer = String::from_utf8_lossy(&answer[..read]);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {}", expected_status)),
            "{}",
            answer
        );
    }

    static SLOW_BODY: SlowByteSrc = SlowByteSrc {
        val: 65,
        len: 1_000_000,
    };

    #[test]
    fn content_length_http11() {
        assert_responds_promptly(Duration::from_secs(2), "413", move |wr| {
            write!(wr, "GET / HTTP/1.1\r\n").unwrap();
            write!(wr, "Content-Length: {}\r\n\r\n", SLOW_BODY.len).unwrap();
            let _ = copy(&mut SLOW_BODY.clone(), wr);
        });
    }

    #[test]
    fn content_length_http10() {
        assert_responds_promptly(Duration::from_secs(2), "413", move |wr| {
            write!(wr, "GET / HTTP/1.0\r\n").unwrap();
            write!(wr, "Content-Length: {}\r\n\r\n", SLOW_BODY.len).unwrap();
            let _ = copy(&mut SLOW_BODY.clone(), wr);
        });
    }

    #[test]
    fn malformed_expect() {
        assert_responds_promptly(Duration::from_secs(2), "417", move |wr| {
            write!(wr, "GET / HTTP/1.1\r\n").unwrap();
            write!(wr, "Expect: 100 continue\r\n").unwrap();
            write!(wr, "Content-Length: {}\r\n\r\n", SLOW_BODY.len).unwrap();
            let _ = copy(&mut SLOW_BODY.clone(), wr);
        });
    }

    #[test]
    fn chunked() {
        assert_responds_promptly(Duration::from_secs(2), "413", move |wr| {
            write!(wr, "GET / HTTP/1.1\r\n").unwrap();
            write!(wr, "Transfer-Encoding: chunked\r\n\r\n").unwrap();
            encode_chunked(&mut SLOW_BODY.clone(), wr);
        });
    }
}
