//! A local webhook receiver: counts `message.received` deliveries and the
//! lag from commit to arrival.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use whatsapp_api::clock;

/// Counts `message.received` deliveries and the lag from the payload's
/// timestamp (written when the message was committed) to its arrival here.
pub struct Receiver {
    pub url: String,
    pub count: Arc<AtomicU64>,
    pub lags_ms: Arc<Mutex<Vec<i64>>>,
    pub last: Arc<Mutex<Option<Instant>>>,
}

pub fn start_receiver() -> Result<Receiver, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let r = Receiver {
        url: format!("http://127.0.0.1:{port}/hook"),
        count: Arc::new(AtomicU64::new(0)),
        lags_ms: Arc::new(Mutex::new(Vec::new())),
        last: Arc::new(Mutex::new(None)),
    };
    let (count, lags, last) = (
        Arc::clone(&r.count),
        Arc::clone(&r.lags_ms),
        Arc::clone(&r.last),
    );
    // A minimal keep-alive HTTP/1.1 receiver: each connection is served on
    // its own thread, which reads and answers requests itself (no hand-off
    // to another thread), so the receiver adds as little as possible to
    // the delivery round trip being measured.
    std::thread::Builder::new()
        .name("receiver".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let (count, lags, last) =
                    (Arc::clone(&count), Arc::clone(&lags), Arc::clone(&last));
                std::thread::spawn(move || {
                    let _ = serve_receiver_connection(stream, &count, &lags, &last);
                });
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(r)
}

fn serve_receiver_connection(
    stream: TcpStream,
    count: &AtomicU64,
    lags: &Mutex<Vec<i64>>,
    last: &Mutex<Option<Instant>>,
) -> std::io::Result<()> {
    use std::io::BufRead;
    stream.set_nodelay(true)?;
    let mut reader = std::io::BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        let mut first = true;
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(()); // the server closed the connection
            }
            if line == "\r\n" && !first {
                break;
            }
            first = false;
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        let body = String::from_utf8_lossy(&body);
        let now = clock::now_millis();
        // The top-level timestamp is the last key of the payload.
        if let Some(at) = body
            .rfind("\"timestamp\":\"")
            .and_then(|i| parse_iso_millis(&body[i + 13..]))
        {
            lags.lock().unwrap().push(now - at);
        }
        if body.contains("\"event\":\"message.received\"") {
            count.fetch_add(1, Ordering::SeqCst);
            *last.lock().unwrap() = Some(Instant::now());
        }
        writer.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")?;
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ…` -> Unix milliseconds.
pub fn parse_iso_millis(s: &str) -> Option<i64> {
    let secs = clock::parse_datetime(s.get(0..19)?)?;
    let millis: i64 = s.get(20..23)?.parse().ok()?;
    Some(secs * 1000 + millis)
}

pub fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}
