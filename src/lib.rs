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
pub mod events;
pub mod http;
pub mod legacy;
pub mod media;
pub mod metrics;
pub mod multipart;
pub mod openapi;
pub mod ops;
pub mod qr;
pub mod ratelimit;
pub mod rng;
pub mod router;
pub mod secrets;
pub mod simulator;
pub mod sink;
pub mod state;
pub mod status;
pub mod threads;
pub mod wa;
pub mod web;
pub mod webhooks;
pub mod whatsapp;

use crate::config::{Backend, Command, Config};
use crate::state::Shared;
use crate::threads::{Ended, Ends};
use crate::wa::{WaCommand, WaHandle};
use crossbeam_channel::{bounded, select};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use secrets::key_prefix;

/// Runs the command line `args` (without the program name) with `env` and
/// the `.env` file (`config::with_env_file`). Errors are one line, meant for
/// stderr.
pub fn run(args: &[String], env: &BTreeMap<String, String>) -> Result<(), String> {
    let (env, env_file) = config::with_env_file(args, env).map_err(|e| e.to_string())?;
    match config::parse(args, &env).map_err(|e| e.to_string())? {
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
            if let Some(file) = &env_file {
                log::info!(
                    "read {} (the environment and flags win over it)",
                    file.path.display()
                );
                if !file.unused.is_empty() {
                    log::info!(
                        "{}: not settings of this server, ignored: {}",
                        file.path.display(),
                        file.unused.join(", ")
                    );
                }
            }
            serve(*config)
        }
        Command::Backup { mut config, target } => {
            note_adopted(legacy::adopt_node_paths(&mut config, false)?);
            backup(&config, &target)
        }
        Command::ImportLegacy { mut config, source } => {
            init_logging(config.log_level);
            for note in legacy::adopt_node_paths(&mut config, false)? {
                log::warn!("{note}");
            }
            let report = legacy::import(&config, &source)?;
            print!(
                "imported {} into {}\n{report}",
                source.display(),
                config.db_path.display()
            );
            Ok(())
        }
        Command::RotateKey(mut config) => {
            note_adopted(legacy::adopt_node_paths(&mut config, true)?);
            rotate_key(&config)
        }
        Command::SetPassword(mut config) => {
            note_adopted(legacy::adopt_node_paths(&mut config, true)?);
            set_password(&config)
        }
        Command::Healthcheck(config) => healthcheck(&config),
    }
}

/// A one-shot command's notes about the paths it used, on stderr (its
/// standard output is for what scripts capture).
fn note_adopted(notes: Vec<String>) {
    for note in notes {
        eprintln!("whatsapp-api: note: {note}");
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
/// The static build's allocator (mimalloc) gives unused pages back by
/// itself; there this does nothing.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only takes the allocator's own locks; it is safe
    // to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Gives glibc's allocator one arena per core, unless the operator chose a
/// number with `MALLOC_ARENA_MAX`. By default glibc opens a new arena for
/// each thread that finds the others' locked (up to 8 per core), and each
/// arena keeps what its threads freed: sixteen connections of common-word
/// searches at 100k messages left 16 arenas holding 39.6 MB, 5.1 MB of it in
/// use, and took the peak to 47–52 MB. One arena for all threads kept the
/// peak at 38–39 MB but made the workers queue on its lock: an inbox page
/// cost 344–466 µs of CPU instead of 200–253 µs on an otherwise idle
/// 2-core machine. One per core (no more threads can run at once) peaked at
/// 42–46 MB at the CPU of the default (BENCHMARKS.md, "Memory"). Called
/// before any thread starts; the static build's allocator (mimalloc, a
/// heap per thread) has no arenas to limit, so there this does nothing.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let arenas = i32::try_from(cores).unwrap_or(i32::MAX);
        // SAFETY: mallopt only sets the allocator's parameters under its own
        // lock; no other thread of ours runs yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}

/// `serve`: starts the server and runs until SIGTERM/SIGINT, or until a
/// critical thread dies (then exits non-zero so the supervisor restarts us).
fn serve(config: Config) -> Result<(), String> {
    limit_malloc_arenas();
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
    let died = wait_for_stop(&signal_rx, &server.ended);
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

/// Waits for a signal (None) or for a thread's end (Some(its name)): every
/// thread runs until shutdown, so one that ends first has died. Meanwhile
/// hands freed memory back to the OS every `TRIM_EVERY`.
fn wait_for_stop(
    signals: &crossbeam_channel::Receiver<i32>,
    ended: &crossbeam_channel::Receiver<Ended>,
) -> Option<String> {
    let trim = crossbeam_channel::tick(TRIM_EVERY);
    loop {
        select! {
            recv(signals) -> signal => {
                log::info!("received signal {}; shutting down", signal.unwrap_or(0));
                return None;
            },
            recv(ended) -> ended => {
                return Some(ended.map_or_else(|_| "?".to_string(), |e| e.name));
            },
            recv(trim) -> _ => release_free_memory(),
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
    /// The secrets follower (`secrets::spawn_follower`); it stops when
    /// `follower_stop` is dropped.
    follower: JoinHandle<()>,
    follower_stop: crossbeam_channel::Sender<()>,
    /// Where every thread above reports its end.
    ended: crossbeam_channel::Receiver<Ended>,
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
    mut config: Config,
    whatsapp_test_hook: Option<whatsapp::TestHook>,
) -> Result<Server, String> {
    for note in legacy::adopt_node_paths(&mut config, true)? {
        log::warn!("{note}");
    }
    let mut conn = open_data_dir(&config)?;
    http::remove_upload_leftovers(&config.media_path);
    // Bound before any secret is made: a busy port must not use up the
    // "shown once" key and password of a first start.
    let max_connections = http::max_connections(open_file_limit(), config.http_workers);
    let uploads = http::Uploads::new(&config.media_path, config.media_max_bytes);
    let limits = http::limits(config.http_timeout, max_connections, uploads);
    let http = Arc::new(http::bind(&config.host, config.port, limits)?);
    let secrets = secrets::prepare(&conn, &config)?;

    let shared = Arc::new(Shared::new(
        config,
        secrets.api_key_hash.clone(),
        secrets.password_hash.clone(),
    ));
    let config = &shared.config;
    let open = || http::worker_db(&config.db_path);
    // The audit writer and the webhook thread tell nobody about their
    // commits: they need not wait for the disk (see db::connect_unacknowledged).
    let open_unacknowledged = || {
        db::connect_unacknowledged(&config.db_path)
            .map_err(|e| format!("could not open {}: {e}", config.db_path.display()))
    };

    // Bounded: a worker waits (briefly) when the backend is busy; 256 queued
    // commands is far beyond any real burst of replies.
    let (command_tx, command_rx) = async_channel::bounded::<WaCommand>(256);
    // Bounded: the backend waits for the sink (the real one awaits it off its
    // runtime thread), which is the backpressure the durability hook wants.
    let (event_tx, event_rx) = bounded::<wa::WaEvent>(1024);
    // Every long-lived thread reports its end here (`serve` and `shutdown`
    // wait on it).
    let (ends, ended) = Ends::new();

    let retention = audit::Retention {
        audit_days: config.audit_retention_days,
        events_days: config.events_retention_days,
    };
    let (audit, audit_join) =
        audit::spawn(open_unacknowledged()?, retention, &ends).map_err(io_err("audit"))?;
    let policy = webhooks::Policy {
        schedule: config.webhook_retry_schedule.clone(),
        timeout: config.webhook_timeout,
        allow_private: config.webhook_allow_private,
    };
    let (waker, webhooks_join) =
        webhooks::spawn(open_unacknowledged()?, Arc::clone(&shared), policy, &ends)
            .map_err(io_err("webhooks"))?;
    let sink_join = sink::spawn(open()?, Arc::clone(&shared), event_rx, waker.clone(), &ends)
        .map_err(io_err("sink"))?;
    let backend_join = match config.backend {
        Backend::Simulator => simulator::spawn(
            simulator::SimConfig {
                media_dir: config.media_path.clone(),
                media_max_bytes: config.media_max_bytes,
            },
            command_rx,
            event_tx,
            &ends,
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
            &ends,
        )
        .map_err(io_err("whatsapp"))?,
    };
    let wa = WaHandle {
        commands: command_tx,
    };

    let port = http::local_port(&http);
    let workers = http::spawn_workers(Arc::clone(&http), config.http_workers, &ends, || {
        Ok(http::Ctx {
            db: open()?,
            shared: Arc::clone(&shared),
            wa: wa.clone(),
            audit: audit.clone(),
            webhooks: waker.clone(),
        })
    })?;
    let (follower_stop, follower_stopped) = bounded::<()>(0);
    let follower = secrets::spawn_follower(open()?, Arc::clone(&shared), follower_stopped, &ends)
        .map_err(io_err("secrets"))?;
    // Everything that can fail has succeeded: now store and show new secrets.
    secrets.commit(&mut conn, &shared.config)?;
    drop(conn);
    audit.event(
        "server_start",
        None,
        format!("version {}", env!("CARGO_PKG_VERSION")),
    );
    Ok(Server {
        follower,
        follower_stop,
        port,
        shared,
        http,
        wa,
        workers,
        backend: backend_join,
        sink: sink_join,
        webhooks: webhooks_join,
        audit: audit_join,
        ended,
    })
}

impl Server {
    /// Graceful stop: no new requests, in-flight ones finish, WhatsApp closes,
    /// the sink drains, webhook lanes finish their attempt, audit flushes.
    pub fn shutdown(self) {
        let started = Instant::now();
        for _ in &self.workers {
            self.http.unblock();
        }
        for worker in self.workers {
            let _ = worker.join();
        }
        self.shared.streams.close();
        let _ = self.wa.commands.send_blocking(WaCommand::Shutdown);
        drop(self.wa);
        drop(self.follower_stop);
        // Bounded: a thread still held up must not stop the process from
        // exiting within the 10 s a supervisor allows.
        let deadline = started + Duration::from_secs(8);
        let mut running = vec![
            self.backend,
            self.sink,
            self.webhooks,
            self.audit,
            self.follower,
        ];
        while !running.is_empty() {
            let Ok(ended) = self.ended.recv_deadline(deadline) else {
                break;
            };
            // The workers' reports (joined above) are passed over.
            if let Some(i) = running.iter().position(|t| t.thread().id() == ended.id) {
                let _ = running.swap_remove(i).join();
            }
        }
        for thread in running {
            log::warn!(
                "thread {} did not stop in time",
                thread.thread().name().unwrap_or("?")
            );
        }
        log::debug!("shutdown took {} ms", started.elapsed().as_millis());
    }
}

/// The open-file limit the process runs under (its soft limit), which caps
/// the connections served at once (`http::max_connections`). It is left as
/// the supervisor set it.
fn open_file_limit() -> u64 {
    match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        Ok((soft, _)) => soft,
        Err(e) => {
            log::warn!("could not read the open file limit ({e}); assuming 1024");
            1024
        }
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
    // DATA_DIR only when something lives there: DB_PATH, SESSION_PATH and
    // MEDIA_PATH may all name places elsewhere (the Node server's .env does).
    let data_dir_used = [&config.db_path, &config.session_path, &config.media_path]
        .iter()
        .any(|path| path.starts_with(&config.data_dir));
    if data_dir_used {
        prepare_data_dir(config)?;
    }
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

/// Creates DATA_DIR and checks that it is writable (one clear line if not).
fn prepare_data_dir(config: &Config) -> Result<(), String> {
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
        })
}

/// `rotate-key`: a new active API key, printed once on standard output (the
/// old key stops at once; a running server follows within a second).
fn rotate_key(config: &Config) -> Result<(), String> {
    let mut conn = open_server_db(config)?;
    let key = secrets::rotate_key(&mut conn)?;
    record_cli_action(
        &mut conn,
        "api_key_rotated",
        "a new API key with the rotate-key command",
    )?;
    println!("{key}");
    eprintln!(
        "whatsapp-api: the line above is the new API key for {} (shown once; only its hash is kept). \
         The previous key no longer works; a server running on this database follows within a second.",
        config.db_path.display()
    );
    if config.api_key.is_some() {
        eprintln!(
            "whatsapp-api: note: API_KEY is set (environment or .env); at its next start the \
             server makes that key active again: change or remove API_KEY there too."
        );
    }
    Ok(())
}

/// `set-password`: the dashboard password from standard input (one line; a
/// terminal is asked without echo), or a generated one printed once when the
/// input is empty.
fn set_password(config: &Config) -> Result<(), String> {
    if config.dashboard_password.is_some() {
        return Err(
            "DASHBOARD_PASSWORD is set (in the environment or the .env file), and it wins over a \
             stored password: change it there and restart the server, or remove it and run \
             set-password again"
                .into(),
        );
    }
    let mut conn = open_server_db(config)?;
    let typed = read_new_password()?;
    let generated = typed.is_empty();
    let password = if generated {
        auth::generate_password()
    } else if typed.chars().count() < 8 {
        return Err("the new password must be at least 8 characters long".into());
    } else {
        typed
    };
    secrets::set_password(&conn, &password)?;
    record_cli_action(
        &mut conn,
        "password_set",
        "a new dashboard password with the set-password command",
    )?;
    if generated {
        println!("{password}");
        eprintln!(
            "whatsapp-api: the line above is the new dashboard password for user {:?} (shown once).",
            config.dashboard_user
        );
    }
    eprintln!(
        "whatsapp-api: dashboard password set for {}; the previous one no longer works and a \
         server running on this database follows within a second.",
        config.db_path.display()
    );
    Ok(())
}

/// The database of an existing server, for a command that changes it: a
/// missing one means the command was not given the server's `DATA_DIR`
/// (making a new, unused database would look like success).
fn open_server_db(config: &Config) -> Result<rusqlite::Connection, String> {
    if !config.db_path.is_file() {
        return Err(format!(
            "there is no database at {}: give the server's DATA_DIR or DB_PATH (or run this \
             where the server's .env is)",
            config.db_path.display()
        ));
    }
    open_data_dir(config)
}

/// Reads the new password: one line from a terminal (asked on stderr, not
/// echoed), or all of a pipe or file without its final line break.
fn read_new_password() -> Result<String, String> {
    let stdin = std::io::stdin();
    let terminal = std::io::IsTerminal::is_terminal(&stdin);
    let mut text = String::new();
    if terminal {
        eprint!("New dashboard password (empty: generate one): ");
        let _ = std::io::stderr().flush();
        let echo = EchoOff::new();
        stdin
            .read_line(&mut text)
            .map_err(|e| format!("could not read the password: {e}"))?;
        drop(echo);
        eprintln!();
    } else {
        stdin
            .lock()
            .take(64 * 1024)
            .read_to_string(&mut text)
            .map_err(|e| format!("could not read the password from standard input: {e}"))?;
    }
    let text = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    if text.contains(['\n', '\r']) {
        return Err("the password must be one line".into());
    }
    Ok(text.to_string())
}

/// Turns the terminal's echo off until dropped.
struct EchoOff(Option<libc::termios>);

impl EchoOff {
    fn new() -> EchoOff {
        // SAFETY: tcgetattr/tcsetattr only read and write the termios struct
        // we own, for file descriptor 0.
        unsafe {
            let mut old: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut old) != 0 {
                return EchoOff(None);
            }
            let mut quiet = old;
            quiet.c_lflag &= !libc::ECHO;
            libc::tcsetattr(0, libc::TCSANOW, &quiet);
            EchoOff(Some(old))
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            // SAFETY: as in `new`.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, old);
            }
        }
    }
}

/// An audit row for a change made from the command line.
fn record_cli_action(
    conn: &mut rusqlite::Connection,
    action: &str,
    details: &str,
) -> Result<(), String> {
    let entry = db::AuditEntry {
        action: action.into(),
        details: Some(details.into()),
        created_at: clock::now_secs(),
        ..Default::default()
    };
    conn.transaction()
        .and_then(|tx| {
            db::insert_audit(&tx, &entry)?;
            tx.commit()
        })
        .map_err(|e| format!("could not write the audit log: {e}"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_stops_at_a_signal_or_at_once_when_a_thread_ends() {
        let (signal_tx, signal_rx) = bounded::<i32>(1);
        let (ends, ended) = Ends::new();
        let (stop, stopped) = bounded::<()>(0);
        let worker = std::thread::Builder::new()
            .name("worker".into())
            .spawn(ends.report(move || {
                let _ = stopped.recv();
            }))
            .unwrap();
        signal_tx.send(15).unwrap();
        assert_eq!(wait_for_stop(&signal_rx, &ended), None);

        drop(stop);
        let started = Instant::now();
        assert_eq!(wait_for_stop(&signal_rx, &ended).as_deref(), Some("worker"));
        assert!(started.elapsed() < Duration::from_secs(5));
        worker.join().unwrap();
    }
}
