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

/// Every log line of the whole test run, at `trace`: each test server checks
/// on shutdown that no secret of any test ever reached the log.
struct CapturingLogger {
    lines: Mutex<Vec<String>>,
}

impl log::Log for CapturingLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        // Only the server's threads (named `http-0`, `sink`, `webhooks`, …);
        // test threads (named after the test) and the tests' own helpers
        // (unnamed) are the clients, some of which send wrong keys on purpose.
        let thread = std::thread::current();
        if thread
            .name()
            .is_none_or(|n| n.contains("::") || n == "main")
        {
            return;
        }
        let line = format!("{} {} {}", record.level(), record.target(), record.args());
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line);
    }
    fn flush(&self) {}
}

static LOGGER: std::sync::OnceLock<&'static CapturingLogger> = std::sync::OnceLock::new();
/// Secrets created by tests (webhook secrets, rotated keys), checked too.
static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn capture_logs() {
    LOGGER.get_or_init(|| {
        let logger: &'static CapturingLogger = Box::leak(Box::new(CapturingLogger {
            lines: Mutex::new(Vec::new()),
        }));
        if log::set_logger(logger).is_ok() {
            log::set_max_level(log::LevelFilter::Trace);
        }
        logger
    });
}

/// Every log line the server threads of this test run wrote so far.
pub fn log_lines() -> Vec<String> {
    LOGGER
        .get()
        .map(|l| l.lines.lock().unwrap_or_else(|e| e.into_inner()).clone())
        .unwrap_or_default()
}

/// Registers a secret a test was shown, so no log line may contain it.
pub fn remember_secret(secret: &str) {
    SECRETS.lock().unwrap().push(secret.to_string());
}

/// Fails if any captured log line holds the API key, the dashboard password
/// or a registered secret.
pub fn assert_no_secret_logged() {
    let Some(logger) = LOGGER.get() else { return };
    let lines = logger.lines.lock().unwrap_or_else(|e| e.into_inner());
    let mut secrets = SECRETS.lock().unwrap().clone();
    secrets.extend([KEY.to_string(), DASH_PASSWORD.to_string()]);
    for line in lines.iter() {
        for secret in &secrets {
            assert!(
                !line.contains(secret.as_str()),
                "a log line holds a secret: {line}"
            );
        }
    }
    assert!(!lines.is_empty(), "the log was captured");
}

/// The configuration every test server starts from.
pub fn test_config(dir: &std::path::Path) -> Config {
    capture_logs();
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
        let simulator = config.backend == whatsapp_api::config::Backend::Simulator;
        let server = whatsapp_api::start(config).expect("server starts");
        if simulator {
            // The simulator's start-up `Connected` reaches the sink
            // asynchronously; tests begin from the state it sets.
            eventually(10, "the simulator's start-up connection", || {
                (server.shared.connection().state == whatsapp_api::state::ConnState::Connected)
                    .then_some(())
            });
        }
        TestServer::around(server, dir)
    }

    /// Starts the real WhatsApp backend with its network replaced by
    /// `hook` (the offline fake server of `whatsapp_fake.rs`).
    pub fn start_whatsapp(hook: whatsapp_api::whatsapp::TestHook) -> TestServer {
        TestServer::start_whatsapp_in(Arc::new(TempDir::new("wa")), hook)
    }

    /// `start_whatsapp` on an existing data dir (for restart tests).
    pub fn start_whatsapp_in(
        dir: Arc<TempDir>,
        hook: whatsapp_api::whatsapp::TestHook,
    ) -> TestServer {
        TestServer::start_whatsapp_with(dir, hook, |_| {})
    }

    /// `start_whatsapp_in`, with the configuration changed by `tune`.
    pub fn start_whatsapp_with(
        dir: Arc<TempDir>,
        hook: whatsapp_api::whatsapp::TestHook,
        tune: impl FnOnce(&mut Config),
    ) -> TestServer {
        let mut config = test_config(&dir.0);
        config.backend = whatsapp_api::config::Backend::WhatsApp;
        tune(&mut config);
        let server = whatsapp_api::start_with(config, Some(hook)).expect("server starts");
        TestServer::around(server, dir)
    }

    fn around(server: whatsapp_api::Server, dir: Arc<TempDir>) -> TestServer {
        let base = format!("http://127.0.0.1:{}", server.port);
        TestServer {
            server: Some(server),
            base,
            dir,
            agent: agent(),
        }
    }

    pub fn delete(&self, path: &str) -> Resp {
        self.request("DELETE", path, &[("X-API-Key", KEY)], None)
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

    /// The text messages the app sent through the simulator (its other
    /// records, such as read receipts, left out).
    pub fn sent_texts(&self) -> Value {
        let all = self.get("/api/v1/simulator/sent").json();
        Value::Array(
            all.as_array()
                .expect("a list")
                .iter()
                .filter(|r| r["kind"] == "text")
                .cloned()
                .collect(),
        )
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
        if !std::thread::panicking() {
            assert_no_secret_logged();
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

/// An `Authorization: Basic` header value.
pub fn basic_auth(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
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
        WebhookReceiver::start_on(0)
    }

    /// A receiver on a given port (0: any free one).
    pub fn start_on(port: u16) -> WebhookReceiver {
        let server = Arc::new(tiny_http::Server::http(("127.0.0.1", port)).unwrap());
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

/// A port that nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A TCP endpoint that accepts connections and never answers.
pub struct Blackhole {
    pub url: String,
    _listener: std::net::TcpListener,
    accepted: Arc<Mutex<Vec<std::net::TcpStream>>>,
}

impl Blackhole {
    pub fn start() -> Blackhole {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let (l, a) = (listener.try_clone().unwrap(), accepted.clone());
        std::thread::spawn(move || {
            for stream in l.incoming().flatten() {
                a.lock().unwrap().push(stream);
            }
        });
        Blackhole {
            url,
            _listener: listener,
            accepted,
        }
    }

    pub fn connections(&self) -> usize {
        self.accepted.lock().unwrap().len()
    }
}

/// The real binary started as a child process (for kill -9 and log tests).
pub struct BinServer {
    pub child: std::process::Child,
    pub base: String,
    pub output: Arc<Mutex<Vec<String>>>,
    /// The working directory made for it, removed after it.
    cwd: Option<TempDir>,
}

impl BinServer {
    /// Starts `whatsapp-api serve` on `dir` with the simulator, the test key
    /// and password, and `extra` environment (an empty value unsets one);
    /// waits until it listens.
    pub fn start(dir: &std::path::Path, extra: &[(&str, &str)]) -> BinServer {
        BinServer::start_limited(dir, extra, None)
    }

    /// `start`, in a process allowed `nofile` open files (soft and hard
    /// limit) when given.
    pub fn start_limited(
        dir: &std::path::Path,
        extra: &[(&str, &str)],
        nofile: Option<u64>,
    ) -> BinServer {
        let dir_text = dir.display().to_string();
        let mut env = vec![
            ("DATA_DIR", dir_text.as_str()),
            ("PORT", "0"),
            ("WHATSAPP_BACKEND", "simulator"),
            ("API_KEY", KEY),
            ("DASHBOARD_PASSWORD", DASH_PASSWORD),
            ("RATE_LIMIT_PER_MINUTE", "0"),
        ];
        env.extend_from_slice(extra);
        // An empty working directory: no `.env` is read.
        let cwd = TempDir::new("bin-cwd");
        let mut server = BinServer::spawn_limited(&cwd.0, &["serve"], &env, nofile);
        server.cwd = Some(cwd);
        server
    }

    /// Runs the binary with `args` in the working directory `cwd` with only
    /// PATH and `env` (later pairs win) in its environment; waits until it
    /// listens.
    pub fn spawn(cwd: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> BinServer {
        BinServer::spawn_limited(cwd, args, env, None)
    }

    /// `spawn`, in a process allowed `nofile` open files when given.
    fn spawn_limited(
        cwd: &std::path::Path,
        args: &[&str],
        env: &[(&str, &str)],
        nofile: Option<u64>,
    ) -> BinServer {
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_whatsapp-api"));
        if let Some(n) = nofile {
            let limit = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            // SAFETY: runs in the child between fork and exec, where only
            // async-signal-safe calls are allowed: setrlimit is one, and
            // it only reads `limit`, copied into the closure.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        cmd.args(args)
            .current_dir(cwd)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the binary starts");
        let output = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let out = output.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream)
                    .lines()
                    .map_while(Result::ok)
                {
                    out.lock().unwrap().push(line);
                }
            });
        }
        let port = eventually(20, "the server to listen", || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the server exited ({status}): {:?}", output.lock().unwrap());
            }
            output.lock().unwrap().iter().find_map(|l| {
                let rest = l.split("listening on http://").nth(1)?;
                rest.split(|c: char| c.is_whitespace())
                    .next()?
                    .rsplit(':')
                    .next()?
                    .parse::<u16>()
                    .ok()
            })
        });
        BinServer {
            child,
            base: format!("http://127.0.0.1:{port}"),
            output,
            cwd: None,
        }
    }

    /// The listening address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.base.trim_start_matches("http://").parse().unwrap()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// The process's open file descriptors.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .unwrap()
            .count()
    }

    /// The most memory the process has held (`VmHWM`), in kB.
    pub fn peak_rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    pub fn request(&self, method: &str, path: &str, body: Option<&serde_json::Value>) -> Resp {
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap());
        request(
            &agent(),
            method,
            &format!("{}{}", self.base, path),
            &[("X-API-Key", KEY)],
            bytes.as_deref(),
        )
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit; returns the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().unwrap()
    }

    pub fn log(&self) -> Vec<String> {
        self.output.lock().unwrap().clone()
    }

    /// The secret a first start announced after the line holding `what`
    /// ("Generated API key", "Generated dashboard password").
    pub fn announced(&self, what: &str) -> Option<String> {
        let log = self.log();
        let at = log.iter().position(|l| l.contains(what))?;
        log[at + 1..]
            .iter()
            .map(|l| l.trim())
            .find(|l| !l.is_empty())
            .map(str::to_string)
    }
}

impl Drop for BinServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
