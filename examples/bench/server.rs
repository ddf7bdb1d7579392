//! The server under test: started as a child process on a free port with
//! the simulator, stopped, and its resident memory sampled from `/proc`.

use crate::{KEY, Options};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub struct ServerProcess {
    pub child: Child,
    pub port: u16,
    pub start_to_healthy: Duration,
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// One `GET` over a fresh connection; the status code.
fn raw_get_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 16];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

pub fn start_server(o: &Options, dir: &Path) -> Result<ServerProcess, String> {
    let port = free_port()?;
    let log = std::fs::File::create(dir.join("server.log")).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let child = Command::new(&o.server)
        // A `.env` in the working directory must not change the bench.
        .args(["serve", "--env-file", "/dev/null"])
        .env("DATA_DIR", dir)
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("WHATSAPP_BACKEND", "simulator")
        .env("RATE_LIMIT_PER_MINUTE", "0")
        .env("API_KEY", KEY)
        .env("DASHBOARD_PASSWORD", "bench-dashboard-password")
        .env("LOG_LEVEL", "info")
        .env_remove("DB_PATH")
        .env_remove("SESSION_PATH")
        .env_remove("MEDIA_PATH")
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("could not start {}: {e}", o.server.display()))?;
    let mut server = ServerProcess {
        child,
        port,
        start_to_healthy: Duration::ZERO,
    };
    loop {
        if raw_get_status(port, "/api/v1/health") == Some(200) {
            server.start_to_healthy = started.elapsed();
            return Ok(server);
        }
        if started.elapsed() > Duration::from_secs(30) {
            stop_server(server);
            return Err("the server did not become healthy within 30 s".into());
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(format!(
                "the server exited with {status}; see {}/server.log",
                dir.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

pub fn stop_server(mut server: ServerProcess) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(server.child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = server.child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = server.child.kill();
    let _ = server.child.wait();
}

/// VmRSS of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Runs `work` while sampling the RSS of `pid` every 20 ms; the peak in KiB.
pub fn with_rss_peak<T>(pid: u32, work: impl FnOnce() -> T) -> (T, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(rss_kib(pid)));
    let sampler = {
        let (stop, peak) = (Arc::clone(&stop), Arc::clone(&peak));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let out = work();
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    (out, peak.load(Ordering::Relaxed).max(rss_kib(pid)))
}
