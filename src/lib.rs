//! whatsapp-api: a self-hosted, reply-only WhatsApp HTTP API.
//!
//! `run()` is the program: it parses the command line and runs a subcommand.
//! `start()` wires every thread of the server together, top to bottom; read
//! it first, then ARCHITECTURE.md.

#![recursion_limit = "512"]

pub mod api;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod config;
pub mod dashboard;
pub mod db;
pub mod error;
pub mod http;
pub mod legacy;
pub mod media;
pub mod metrics;
pub mod openapi;
pub mod qr;
pub mod ratelimit;
pub mod rng;
pub mod router;
pub mod simulator;
pub mod sink;
pub mod state;
pub mod timeouts;
pub mod wa;
pub mod webhooks;
pub mod whatsapp;

use crate::config::{Backend, Command, Config};
use crate::state::Shared;
use crate::wa::{WaCommand, WaHandle};
use crossbeam_channel::{bounded, select};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Setting holding the dashboard password hash when it was generated.
const SETTING_DASHBOARD_PASSWORD: &str = "dashboard.password_hash";

/// Runs the command line `args` (without the program name) with `env`.
/// Errors are one line, meant for stderr.
pub fn run(args: &[String], env: &BTreeMap<String, String>) -> Result<(), String> {
    match config::parse(args, env).map_err(|e| e.to_string())? {
        Command::Help => {
            print!("{}", config::help());
            Ok(())
        }
        Command::Version => {
            println!("whatsapp-api {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Serve(config) => {
            init_logging(config.log_level);
            serve(*config)
        }
        Command::Backup { config, target } => backup(&config, &target),
        Command::ImportLegacy { config, source } => {
            init_logging(config.log_level);
            let report = legacy::import(&config, &source)?;
            print!(
                "imported {} into {}\n{report}",
                source.display(),
                config.db_path.display()
            );
            Ok(())
        }
        Command::Healthcheck(config) => healthcheck(&config),
    }
}

fn init_logging(level: log::LevelFilter) {
    // whatsapp-rust narrates every connection step at info; our own lines
    // say what matters. Its detail is back at LOG_LEVEL=debug and below.
    let whatsapp_level = if level >= log::LevelFilter::Debug {
        level
    } else {
        log::LevelFilter::Warn.min(level)
    };
    // Only fails when a logger is already installed (tests); that one stays.
    let _ = simple_logger::SimpleLogger::new()
        .with_level(level)
        .with_module_level("whatsapp_rust", whatsapp_level)
        .with_module_level("wacore", whatsapp_level)
        .with_module_level("rustls", log::LevelFilter::Warn.min(level))
        .with_module_level("ureq", log::LevelFilter::Warn.min(level))
        .with_module_level("ureq_proto", log::LevelFilter::Warn.min(level))
        .with_module_level("tiny_http", log::LevelFilter::Warn.min(level))
        .with_utc_timestamps()
        .init();
}

/// How often `serve` hands freed heap memory back to the OS.
const TRIM_EVERY: Duration = Duration::from_secs(30);

/// Returns the free memory glibc's allocator keeps to the OS. Each worker
/// thread gets its own malloc arena, and memory freed there (a page's JSON,
/// a search's matches) stays resident after the load that needed it: 8 s of
/// common-word searches left 48.0 MB, the next trim 36.9 MB. (Under steady
/// load the arenas refill within seconds; this is for the quiet after.)
/// musl's allocator (the static build) returns memory by itself; there this
/// does nothing.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only takes the allocator's own locks; it is safe
    // to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// `serve`: starts the server and runs until SIGTERM/SIGINT, or until a
/// critical thread dies (then exits non-zero so the supervisor restarts us).
fn serve(config: Config) -> Result<(), String> {
    let (signal_tx, signal_rx) = bounded::<i32>(4);
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .map_err(|e| format!("could not install signal handlers: {e}"))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let _ = signal_tx.send(signal);
            }
        })
        .map_err(|e| format!("could not start the signal thread: {e}"))?;

    let server = start(config)?;
    log::info!(
        "whatsapp-api {} listening on http://{}:{} (backend: {})",
        env!("CARGO_PKG_VERSION"),
        server.shared.config.host,
        server.port,
        match server.shared.config.backend {
            Backend::Simulator => "simulator",
            Backend::WhatsApp => "whatsapp",
        }
    );
    let mut trimmed = Instant::now();
    let died = loop {
        select! {
            recv(signal_rx) -> signal => {
                log::info!("received signal {}; shutting down", signal.unwrap_or(0));
                break None;
            },
            default(Duration::from_millis(250)) => {
                if let Some(name) = server.dead_thread() {
                    break Some(name);
                }
                if trimmed.elapsed() >= TRIM_EVERY {
                    release_free_memory();
                    trimmed = Instant::now();
                }
            },
        }
    };
    match died {
        None => {
            server.shutdown();
            log::info!("stopped cleanly");
            Ok(())
        }
        Some(name) => {
            log::error!(
                "critical thread {name} stopped unexpectedly; exiting so the supervisor restarts the service"
            );
            Err(format!("critical thread {name} stopped unexpectedly"))
        }
    }
}

/// A running server: what `start` returns and `shutdown` takes apart.
pub struct Server {
    /// The bound port (useful with PORT=0).
    pub port: u16,
    pub shared: Arc<Shared>,
    http: Arc<tiny_http::Server>,
    wa: WaHandle,
    workers: Vec<JoinHandle<()>>,
    backend: JoinHandle<()>,
    sink: JoinHandle<()>,
    webhooks: JoinHandle<()>,
    audit: JoinHandle<()>,
    sweeper: JoinHandle<()>,
    sweeper_stop: Arc<std::sync::atomic::AtomicBool>,
}

fn io_err(what: &str) -> impl FnOnce(std::io::Error) -> String + '_ {
    move |e| format!("could not start the {what} thread: {e}")
}

/// Prepares the data directory and database, then starts every thread.
pub fn start(config: Config) -> Result<Server, String> {
    start_with(config, None)
}

/// `start`, with the WhatsApp backend's network replaced by `whatsapp_test_hook`
/// (offline tests of the real client; never set from the environment).
pub fn start_with(
    config: Config,
    whatsapp_test_hook: Option<whatsapp::TestHook>,
) -> Result<Server, String> {
    raise_fd_limit();
    let mut conn = open_data_dir(&config)?;
    let api_key_hash = init_api_key(&mut conn, &config)?;
    let password_hash = init_dashboard_password(&conn, &config)?;
    drop(conn);

    let shared = Arc::new(Shared::new(config, api_key_hash, password_hash));
    let config = &shared.config;
    let open = || http::worker_db(&config.db_path);

    // Bounded: a worker waits (briefly) when the backend is busy; 256 queued
    // commands is far beyond any real burst of replies.
    let (command_tx, command_rx) = bounded::<WaCommand>(256);
    // Bounded: the backend waits for the sink (the real one awaits it off its
    // runtime thread), which is the backpressure the durability hook wants.
    let (event_tx, event_rx) = bounded::<wa::WaEvent>(1024);

    let (audit, audit_join) =
        audit::spawn(open()?, config.audit_retention_days).map_err(io_err("audit"))?;
    let policy = webhooks::Policy {
        schedule: config.webhook_retry_schedule.clone(),
        timeout: config.webhook_timeout,
    };
    let (waker, webhooks_join) =
        webhooks::spawn(open()?, Arc::clone(&shared), policy).map_err(io_err("webhooks"))?;
    let sink_join = sink::spawn(open()?, Arc::clone(&shared), event_rx, waker.clone())
        .map_err(io_err("sink"))?;
    let backend_join = match config.backend {
        Backend::Simulator => simulator::spawn(
            simulator::SimConfig {
                media_dir: config.media_path.clone(),
                media_max_bytes: config.media_max_bytes,
            },
            command_rx,
            event_tx,
        )
        .map_err(io_err("simulator"))?,
        Backend::WhatsApp => whatsapp::spawn(
            whatsapp::WhatsAppConfig {
                session_path: config.session_path.clone(),
                media_dir: config.media_path.clone(),
                media_max_bytes: config.media_max_bytes,
                test_hook: whatsapp_test_hook,
            },
            command_rx,
            event_tx,
        )
        .map_err(io_err("whatsapp"))?,
    };
    let wa = WaHandle {
        commands: command_tx,
    };

    let http = Arc::new(http::bind(&config.host, config.port)?);
    let port = http::local_port(&http);
    let sweeper_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sweeper = timeouts::spawn(
        port,
        config.http_timeout,
        Arc::clone(&shared),
        Arc::clone(&sweeper_stop),
    )
    .map_err(io_err("http-timeouts"))?;
    let workers = http::spawn_workers(Arc::clone(&http), config.http_workers, || {
        Ok(http::Ctx {
            db: open()?,
            shared: Arc::clone(&shared),
            wa: wa.clone(),
            audit: audit.clone(),
            webhooks: waker.clone(),
        })
    })?;
    audit.event(
        "server_start",
        None,
        format!("version {}", env!("CARGO_PKG_VERSION")),
    );
    Ok(Server {
        port,
        shared,
        http,
        wa,
        workers,
        backend: backend_join,
        sink: sink_join,
        webhooks: webhooks_join,
        audit: audit_join,
        sweeper,
        sweeper_stop,
    })
}

impl Server {
    /// The name of a critical thread that has stopped, if any.
    pub fn dead_thread(&self) -> Option<String> {
        let threads =
            self.workers
                .iter()
                .chain([&self.backend, &self.sink, &self.webhooks, &self.audit]);
        threads
            .filter(|t| t.is_finished())
            .map(|t| t.thread().name().unwrap_or("?").to_string())
            .next()
    }

    /// Graceful stop: no new requests, in-flight ones finish, WhatsApp closes,
    /// the sink drains, webhook lanes finish their attempt, audit flushes.
    pub fn shutdown(self) {
        let started = Instant::now();
        self.sweeper_stop
            .store(true, std::sync::atomic::Ordering::SeqCst);
        for _ in &self.workers {
            self.http.unblock();
        }
        for worker in self.workers {
            let _ = worker.join();
        }
        let _ = self.wa.commands.send(WaCommand::Shutdown);
        drop(self.wa);
        // Bounded: a thread still held up (a body reader waiting on a slow
        // client keeps the audit and webhook handles alive) must not stop
        // the process from exiting within the 10 s a supervisor allows.
        let deadline = started + Duration::from_secs(8);
        for thread in [
            self.backend,
            self.sink,
            self.webhooks,
            self.audit,
            self.sweeper,
        ] {
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                log::warn!(
                    "thread {} did not stop in time",
                    thread.thread().name().unwrap_or("?")
                );
            }
        }
        log::debug!("shutdown took {} ms", started.elapsed().as_millis());
    }
}

/// Raises the open-file limit to its hard maximum. Every connection is a file
/// descriptor; at the usual soft limit of 1024, a burst of connections makes
/// `accept()` fail, which stops tiny_http's accept thread for good.
fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(1 << 20) {
        Ok(n) => log::debug!("open file limit: {n}"),
        Err(e) => log::warn!("could not raise the open file limit: {e}"),
    }
}

/// Creates the data directories, opens the app database and brings its
/// schema up to date (for `serve` and `import-legacy`).
pub(crate) fn open_data_dir(config: &Config) -> Result<rusqlite::Connection, String> {
    prepare_dirs(config)?;
    let conn = db::connect(&config.db_path)
        .map_err(|e| format!("could not open DB_PATH {}: {e}", config.db_path.display()))?;
    db::migrate(&conn).map_err(|e| {
        format!(
            "could not prepare the database {}: {e}",
            config.db_path.display()
        )
    })?;
    Ok(conn)
}

fn prepare_dirs(config: &Config) -> Result<(), String> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        format!(
            "DATA_DIR {} cannot be created: {e}",
            config.data_dir.display()
        )
    })?;
    let probe = config.data_dir.join(".write-test");
    std::fs::write(&probe, b"ok")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| {
            format!(
                "DATA_DIR {} is not writable: {e}",
                config.data_dir.display()
            )
        })?;
    std::fs::create_dir_all(&config.media_path).map_err(|e| {
        format!(
            "MEDIA_PATH {} cannot be created: {e}",
            config.media_path.display()
        )
    })?;
    for (name, path) in [
        ("DB_PATH", &config.db_path),
        ("SESSION_PATH", &config.session_path),
    ] {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                format!(
                    "{name} {}: its directory cannot be created: {e}",
                    path.display()
                )
            })?;
        }
    }
    Ok(())
}

/// Makes sure there is one active API key; returns its hash. A generated key
/// is printed once, here, and never again.
fn init_api_key(conn: &mut rusqlite::Connection, config: &Config) -> Result<String, String> {
    let db_err = |e: rusqlite::Error| format!("could not store the API key: {e}");
    if let Some(key) = &config.api_key {
        let hash = auth::api_key_hash(key);
        if db::active_api_key_hash(conn).map_err(db_err)?.as_deref() != Some(hash.as_str()) {
            db::set_active_api_key(conn, &hash, &key_prefix(key)).map_err(db_err)?;
            log::info!("API key: using API_KEY from the environment");
        }
        return Ok(hash);
    }
    if let Some(hash) = db::active_api_key_hash(conn).map_err(db_err)? {
        return Ok(hash);
    }
    let key = auth::generate_api_key();
    let hash = auth::api_key_hash(&key);
    db::set_active_api_key(conn, &hash, &key_prefix(&key)).map_err(db_err)?;
    announce_secret(
        "API key",
        &key,
        "send it as the X-API-Key header; rotate it on /settings",
    );
    Ok(hash)
}

/// The first characters of a key, to tell keys apart (never enough to use).
pub fn key_prefix(key: &str) -> String {
    key.chars().take(6).collect()
}

/// Returns the dashboard password hash: of DASHBOARD_PASSWORD (kept only in
/// memory), or the stored one, or a newly generated password's (printed once).
fn init_dashboard_password(conn: &rusqlite::Connection, config: &Config) -> Result<String, String> {
    if let Some(password) = &config.dashboard_password {
        return Ok(auth::password_hash(
            password,
            &auth::hex(&auth::random_bytes::<16>()),
        ));
    }
    let db_err = |e: rusqlite::Error| format!("could not store the dashboard password: {e}");
    if let Some(hash) = db::get_setting(conn, SETTING_DASHBOARD_PASSWORD).map_err(db_err)? {
        return Ok(hash);
    }
    let password = auth::generate_password();
    let hash = auth::password_hash(&password, &auth::hex(&auth::random_bytes::<16>()));
    db::set_setting(conn, SETTING_DASHBOARD_PASSWORD, &hash).map_err(db_err)?;
    announce_secret(
        &format!("dashboard password for user {:?}", config.dashboard_user),
        &password,
        "set DASHBOARD_PASSWORD to choose your own",
    );
    Ok(hash)
}

/// The one place a secret is written out: at its generation, to the log.
fn announce_secret(what: &str, secret: &str, hint: &str) {
    let line = "=".repeat(72);
    log::warn!(
        "\n{line}\nGenerated {what} (shown once, only now - store it):\n\n    {secret}\n\n{hint}\n{line}"
    );
}

/// `backup <file>`: a consistent copy of the app database via SQLite's online
/// backup API, safe while the server runs (see `db::online_backup`).
fn backup(config: &Config, target: &Path) -> Result<(), String> {
    if target.exists() {
        return Err(format!(
            "{} already exists; choose a new file",
            target.display()
        ));
    }
    db::online_backup(&config.db_path, target)?;
    println!(
        "backed up {} to {}",
        config.db_path.display(),
        target.display()
    );
    Ok(())
}

/// `healthcheck`: exit 0 when the local server answers `/api/v1/health` with
/// 200. A plain HTTP/1.0 request, since the container image has no curl.
fn healthcheck(config: &Config) -> Result<(), String> {
    let host = match config.host.as_str() {
        "0.0.0.0" => "127.0.0.1",
        "::" | "[::]" => "::1",
        h => h,
    };
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host, config.port))
        .map_err(|e| format!("bad HOST/PORT: {e}"))?
        .next()
        .ok_or("HOST resolves to nothing")?;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map_err(|e| format!("unhealthy: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET /api/v1/health HTTP/1.0\r\nHost: {host}\r\n\r\n"
    )
    .map_err(|e| format!("unhealthy: {e}"))?;
    let mut answer = String::new();
    stream
        .take(4096)
        .read_to_string(&mut answer)
        .map_err(|e| format!("unhealthy: {e}"))?;
    let status_line = answer.lines().next().unwrap_or_default();
    if status_line.split_whitespace().nth(1) == Some("200") {
        println!(
            "healthy: {}",
            answer.rsplit("\r\n\r\n").next().unwrap_or_default()
        );
        Ok(())
    } else {
        Err(format!("unhealthy: {status_line}"))
    }
}
