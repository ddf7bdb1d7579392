//! Test support: the real server started in-process on 127.0.0.1:0 with the
//! simulator backend, an HTTP client, and a local webhook receiver.

#![allow(dead_code)]

use serde_json::Value;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use whatsapp_api::config::Config;

pub const KEY: &str = "test-api-key-0123456789abcdef";
pub const DASH_USER: &str = "admin";
pub const DASH_PASSWORD: &str = "dashboard-secret-pw";

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("wa-it-{tag}-{}", whatsapp_api::auth::uuid_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The configuration every test server starts from.
pub fn test_config(dir: &std::path::Path) -> Config {
    let mut c = Config::for_tests(dir);
    c.api_key = Some(KEY.to_string());
    c.dashboard_password = Some(DASH_PASSWORD.to_string());
    c.rate_limit_per_minute = 0;
    c.webhook_retry_schedule = vec![
        Duration::from_millis(50),
        Duration::from_millis(100),
        Duration::from_millis(200),
    ];
    c.webhook_timeout = Duration::from_secs(2);
    c
}

/// A running server with its own data dir.
pub struct TestServer {
    pub server: Option<whatsapp_api::Server>,
    pub base: String,
    pub dir: Arc<TempDir>,
    agent: ureq::Agent,
}

/// An answer, fully read.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub bytes: Vec<u8>,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

impl TestServer {
    pub fn start() -> TestServer {
        TestServer::start_with(|_| {})
    }

    pub fn start_with(tune: impl FnOnce(&mut Config)) -> TestServer {
        TestServer::start_in(Arc::new(TempDir::new("srv")), tune)
    }

    /// Starts on an existing data dir (for restart tests).
    pub fn start_in(dir: Arc<TempDir>, tune: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = test_config(&dir.0);
        tune(&mut config);
        let server = whatsapp_api::start(config).expect("server starts");
        let base = format!("http://127.0.0.1:{}", server.port);
        let s = TestServer {
            server: Some(server),
            base,
            dir,
            agent: agent(),
        };
        // The simulator starts connected, but its first event reaches the
        // sink a moment after start() returns; tests begin from that state.
        eventually(5, "the simulator to connect", || {
            (s.request("GET", "/api/v1/health", &[], None)
                .text
                .contains("\"connected\""))
            .then_some(())
        });
        s
    }

    /// Stops the server gracefully and returns its data dir.
    pub fn stop(mut self) -> Arc<TempDir> {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
        Arc::clone(&self.dir)
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Resp {
        request(
            &self.agent,
            method,
            &format!("{}{}", self.base, path),
            headers,
            body,
        )
    }

    pub fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &[("X-API-Key", KEY)], None)
    }

    pub fn send_json(&self, method: &str, path: &str, body: &Value) -> Resp {
        let bytes = serde_json::to_vec(body).unwrap();
        self.request(
            method,
            path,
            &[("X-API-Key", KEY), ("Content-Type", "application/json")],
            Some(&bytes),
        )
    }

    pub fn post(&self, path: &str, body: &Value) -> Resp {
        self.send_json("POST", path, body)
    }

    pub fn patch(&self, path: &str, body: &Value) -> Resp {
        self.send_json("PATCH", path, body)
    }

    /// Injects a text message through the simulator; returns its wa_id.
    pub fn inject(&self, from: &str, text: &str) -> String {
        let r = self.post(
            "/api/v1/simulator/messages",
            &serde_json::json!({ "from": from, "text": text }),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        r.json()["wa_id"].as_str().unwrap().to_string()
    }

    /// The public id of the newest inbox message.
    pub fn newest_id(&self) -> String {
        self.get("/api/v1/inbox/all?limit=1").json()["messages"][0]["id"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
    }
}

pub fn request(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Resp {
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let req = builder.body(body.unwrap_or_default().to_vec()).unwrap();
    let mut resp = agent
        .run(req)
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_vec()
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Resp {
        status,
        headers,
        bytes,
        text,
    }
}

/// Polls `f` until it returns Some, or panics after `secs`.
pub fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Scripted answers: status and extra headers, used in order.
pub type Script = Arc<Mutex<Vec<(u16, Vec<(String, String)>)>>>;

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// A webhook receiver on 127.0.0.1:0. It answers each request with the next
/// status of `script` (then `default_status`), after `delay`.
pub struct WebhookReceiver {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
    pub script: Script,
    pub default_status: Arc<Mutex<u16>>,
    pub delay: Arc<Mutex<Duration>>,
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WebhookReceiver {
    pub fn start() -> WebhookReceiver {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let port = server.server_addr().to_ip().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let script: Script = Arc::new(Mutex::new(Vec::new()));
        let default_status = Arc::new(Mutex::new(200u16));
        let delay = Arc::new(Mutex::new(Duration::ZERO));
        let (s, r, sc, d, dl) = (
            server.clone(),
            received.clone(),
            script.clone(),
            default_status.clone(),
            delay.clone(),
        );
        let thread = std::thread::spawn(move || {
            while let Ok(mut rq) = s.recv() {
                let mut body = String::new();
                let _ = std::io::Read::read_to_string(rq.as_reader(), &mut body);
                r.lock().unwrap().push(Received {
                    at: Instant::now(),
                    path: rq.url().to_string(),
                    headers: rq
                        .headers()
                        .iter()
                        .map(|h| (h.field.to_string(), h.value.to_string()))
                        .collect(),
                    body,
                });
                let wait = *dl.lock().unwrap();
                if !wait.is_zero() {
                    std::thread::sleep(wait);
                }
                let (status, headers) = {
                    let mut script = sc.lock().unwrap();
                    if script.is_empty() {
                        (*d.lock().unwrap(), Vec::new())
                    } else {
                        script.remove(0)
                    }
                };
                let mut resp = tiny_http::Response::from_string("ok").with_status_code(status);
                for (k, v) in headers {
                    resp.add_header(
                        tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).unwrap(),
                    );
                }
                let _ = rq.respond(resp);
            }
        });
        WebhookReceiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            received,
            script,
            default_status,
            delay,
            server,
            thread: Some(thread),
        }
    }

    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    pub fn all(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived; returns them.
    pub fn wait_for(&self, n: usize, secs: u64) -> Vec<Received> {
        eventually(secs, &format!("{n} webhook requests"), || {
            (self.count() >= n).then(|| self.all())
        })
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
