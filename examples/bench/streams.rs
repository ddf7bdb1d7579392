//! The event stream under load: `STREAMS` streams open while messages are
//! injected at `RATE` a second; the events a second the streams receive
//! together, and the lag from each event's commit (its payload's
//! `timestamp`, written in the committing transaction) to its arrival.

use crate::receiver::{parse_iso_millis, percentile};
use crate::report::Row;
use crate::server::with_rss_peak;
use crate::workloads::{cpu_now, cpu_per_unit};
use crate::wrk::WrkResult;
use crate::{KEY, Options};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use whatsapp_api::clock;

const STREAMS: usize = 16;
/// Injected messages a second.
const RATE: u64 = 100;

pub fn event_streams(o: &Options, port: u16, pid: u32) -> Result<Row, String> {
    let received = Arc::new(AtomicU64::new(0));
    let lags = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..STREAMS {
        let mut stream = open(port)?;
        let (received, lags, stop) = (Arc::clone(&received), Arc::clone(&lags), Arc::clone(&stop));
        readers.push(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let Some(chunk) = stream.chunk() else {
                    continue;
                };
                let now = clock::now_millis();
                for line in chunk.lines().filter(|l| l.starts_with("data: ")) {
                    if let Some(at) = line
                        .rfind("\"timestamp\":\"")
                        .and_then(|i| parse_iso_millis(&line[i + 13..]))
                    {
                        lags.lock().unwrap().push(now - at);
                    }
                    received.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let total = RATE * u64::from(o.duration);
    let cpu_before = cpu_now(pid);
    let started = Instant::now();
    let (result, rss) = with_rss_peak(pid, || -> Result<Duration, String> {
        for n in 0..total {
            // Paced: message n leaves at n / RATE seconds.
            let due = started + Duration::from_millis(n * 1000 / RATE);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let body = format!(
                r#"{{"from":"1555{:07}@s.whatsapp.net","text":"Stream bench message {n}"}}"#,
                2_000_000 + n % 1000
            );
            let status = agent
                .post(&format!(
                    "http://127.0.0.1:{port}/api/v1/simulator/messages"
                ))
                .header("X-API-Key", KEY)
                .header("Content-Type", "application/json")
                .send(body)
                .map_err(|e| format!("injecting: {e}"))?
                .status();
            if status != 201 {
                return Err(format!("injecting: status {status}"));
            }
        }
        let expected = total * STREAMS as u64;
        let deadline = Instant::now() + Duration::from_secs(30);
        while received.load(Ordering::SeqCst) < expected {
            if Instant::now() > deadline {
                return Err(format!(
                    "the streams received {} of {expected} events",
                    received.load(Ordering::SeqCst)
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(started.elapsed())
    });
    stop.store(true, Ordering::SeqCst);
    for reader in readers {
        let _ = reader.join();
    }
    let elapsed = result?;
    let mut lags = lags.lock().unwrap().clone();
    lags.sort_unstable();
    let events = received.load(Ordering::SeqCst);
    let (server_cpu_us, _) = cpu_per_unit(cpu_before, cpu_now(pid), events);
    Ok(Row {
        name: format!("GET /api/v1/events × {STREAMS} at {RATE} messages/s (events/s)"),
        result: WrkResult {
            rps: events as f64 / elapsed.as_secs_f64(),
            p50_ms: percentile(&lags, 0.5) as f64,
            p99_ms: percentile(&lags, 0.99) as f64,
            requests: events,
            errors: 0,
        },
        rss_kib: rss,
        server_cpu_us,
        // No wrk here: the stream readers are threads of this process.
        wrk_cpu_us: 0.0,
        note: format!(
            "{events} events to {STREAMS} streams, {total} messages injected at {RATE}/s; p50/p99: from an event's commit to a stream (ms resolution); server CPU per event sent"
        ),
    })
}

/// A stream's connection, its head read.
struct Stream {
    reader: BufReader<TcpStream>,
}

fn open(port: u16) -> Result<Stream, String> {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(|e| e.to_string())?;
    write!(
        socket,
        "GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {KEY}\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(socket);
    let mut status = String::new();
    reader
        .read_line(&mut status)
        .map_err(|e| format!("opening a stream: {e}"))?;
    if !status.contains(" 200 ") {
        return Err(format!("opening a stream: {}", status.trim()));
    }
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).map_err(|e| e.to_string())?;
        if line == "\r\n" {
            return Ok(Stream { reader });
        }
    }
}

impl Stream {
    /// The next chunk of the body (None when none came within the timeout).
    fn chunk(&mut self) -> Option<String> {
        let mut size = String::new();
        self.reader.read_line(&mut size).ok()?;
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        let mut chunk = vec![0; size + 2];
        self.reader.read_exact(&mut chunk).ok()?;
        chunk.truncate(size);
        String::from_utf8(chunk).ok()
    }
}
