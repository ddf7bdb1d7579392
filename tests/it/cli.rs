//! The real binary: `--help`, `--version`, a bad configuration value ending
//! in one clear line rather than a panic, the `.env` file, secrets that a
//! failed first start does not use up, `rotate-key` and `set-password`
//! against a running server, and the Node server's `.env` pointing at its
//! own files.

use crate::support::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a run of the binary left behind.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the built `whatsapp-api` with exactly `env` (nothing inherited), in
/// an empty working directory (so no `.env` file is read).
pub fn run_binary(args: &[&str], env: &[(&str, &str)]) -> Run {
    let cwd = TempDir::new("cwd");
    run_binary_in(&cwd.0, args, env, None)
}

/// `run_binary` in the working directory `cwd`, with `input` (if any) as
/// its standard input.
pub fn run_binary_in(
    cwd: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
    input: Option<&str>,
) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_whatsapp-api"))
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .envs(env.iter().copied().collect::<BTreeMap<_, _>>())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut stdin = child.stdin.take().unwrap();
    if let Some(input) = input {
        // A command that fails before reading its input closes the pipe.
        match stdin.write_all(input.as_bytes()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("stdin: {e}"),
            _ => {}
        }
    }
    drop(stdin);
    let out = child.wait_with_output().expect("the binary runs");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn assert_one_clean_error_line(r: &Run, needle: &str) {
    assert_ne!(r.code, Some(0), "should fail: {}", r.stderr);
    assert!(r.code.is_some(), "killed by a signal: {}", r.stderr);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got {:?}", r.stderr);
    assert!(lines[0].starts_with("whatsapp-api: "), "{}", lines[0]);
    assert!(lines[0].contains(needle), "{} lacks {needle}", lines[0]);
    for bad in [
        "panicked",
        "RUST_BACKTRACE",
        "stack backtrace",
        "thread 'main'",
    ] {
        assert!(!r.stderr.contains(bad), "{}", r.stderr);
    }
}

#[test]
fn help_lists_every_command_and_variable() {
    let r = run_binary(&["--help"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    for needle in [
        "Usage: whatsapp-api",
        "serve",
        "backup <file>",
        "import-legacy <db>",
        "healthcheck",
        "--version",
        "HOST",
        "PORT",
        "DATA_DIR",
        "API_KEY",
        "DASHBOARD_PASSWORD",
        "WHATSAPP_BACKEND",
        "WEBHOOK_RETRY_SCHEDULE",
        "LOG_LEVEL",
        "--data-dir",
        "WHATSAPP_BACKEND=simulator",
        "rotate-key",
        "set-password",
        "--env-file PATH",
        "Lost the key",
    ] {
        assert!(r.stdout.contains(needle), "--help lacks {needle}");
    }
    assert!(r.stderr.is_empty(), "{}", r.stderr);
    assert_eq!(run_binary(&["-h"], &[]).stdout, r.stdout);
}

#[test]
fn version_is_one_line_with_the_crate_version() {
    let r = run_binary(&["--version"], &[]);
    assert_eq!(r.code, Some(0));
    assert_eq!(
        r.stdout,
        format!("whatsapp-api {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn bad_values_are_one_line_naming_the_variable() {
    assert_one_clean_error_line(&run_binary(&[], &[("PORT", "99999")]), "PORT");
    assert_one_clean_error_line(
        &run_binary(&["--port", "-1"], &[("WHATSAPP_BACKEND", "simulator")]),
        "PORT",
    );
    assert_one_clean_error_line(
        &run_binary(&[], &[("WHATSAPP_BACKEND", "telegram")]),
        "WHATSAPP_BACKEND",
    );
    assert_one_clean_error_line(&run_binary(&["--frobnicate"], &[]), "--frobnicate");
    assert_one_clean_error_line(&run_binary(&["backup"], &[]), "backup");
    // An unwritable data dir stops start-up the same way.
    assert_one_clean_error_line(
        &run_binary(
            &[],
            &[
                ("DATA_DIR", "/proc/whatsapp-api-cannot-be-here"),
                ("WHATSAPP_BACKEND", "simulator"),
                ("PORT", "0"),
            ],
        ),
        "DATA_DIR",
    );
}

/// GET `path` on a binary server with `headers`; the status.
fn status_of(server: &BinServer, path: &str, headers: &[(&str, &str)]) -> u16 {
    request(
        &agent(),
        "GET",
        &format!("{}{path}", server.base),
        headers,
        None,
    )
    .status
}

#[test]
fn the_env_file_is_read_with_dotenv_rules_and_the_environment_wins() {
    let dir = TempDir::new("dotenv");
    // Quotes stripped, `$` kept as written, `export`, comments; make's
    // `-include .env` + `export` kept the quotes and expanded `$`.
    std::fs::write(
        dir.0.join(".env"),
        "# copied from the Node server\n\
         export WHATSAPP_BACKEND=simulator\n\
         PORT=0\n\
         DATA_DIR=./data\n\
         API_KEY=\"my-long-api-key-1234567890\"\n\
         DASHBOARD_PASSWORD=pa$$w0rd$HOME\n\
         DASHBOARD_USER='fromfile' # who logs in\n",
    )
    .unwrap();
    let server = BinServer::spawn(
        &dir.0,
        &[],
        &[("HOME", "/root"), ("DASHBOARD_USER", "fromenv")],
    );
    assert!(
        server.log().iter().any(|l| l.contains("read .env")),
        "{:?}",
        server.log()
    );
    assert!(dir.0.join("data/whatsapp-api.db").is_file());
    let key = [("X-API-Key", "my-long-api-key-1234567890")];
    assert_eq!(status_of(&server, "/api/v1/status", &key), 200);
    let quoted = [("X-API-Key", "\"my-long-api-key-1234567890\"")];
    assert_eq!(status_of(&server, "/api/v1/status", &quoted), 401);
    // The environment's DASHBOARD_USER wins over the file's.
    let auth = basic_auth("fromenv", "pa$$w0rd$HOME");
    assert_eq!(status_of(&server, "/", &[("Authorization", &auth)]), 200);
    let auth = basic_auth("fromfile", "pa$$w0rd$HOME");
    assert_eq!(status_of(&server, "/", &[("Authorization", &auth)]), 401);
    assert_eq!(server.terminate().code(), Some(0));

    // --env-file names another file, relative to the working directory;
    // a flag wins over both.
    let other = TempDir::new("dotenv-other");
    std::fs::write(
        other.0.join("node.env"),
        "WHATSAPP_BACKEND=simulator\nPORT=1\nDATA_DIR=./elsewhere\nAPI_KEY='from-env-file-0123456789'\n",
    )
    .unwrap();
    let server = BinServer::spawn(
        &other.0,
        &["--env-file", "node.env", "serve", "--port", "0"],
        &[],
    );
    assert!(other.0.join("elsewhere/whatsapp-api.db").is_file());
    let key = [("X-API-Key", "from-env-file-0123456789")];
    assert_eq!(status_of(&server, "/api/v1/status", &key), 200);
    drop(server);

    // A broken file stops start-up with one line naming it and the line.
    std::fs::write(dir.0.join(".env"), "PORT=0\nAPI_KEY=\"unterminated\n").unwrap();
    let r = run_binary_in(&dir.0, &[], &[], None);
    assert_one_clean_error_line(&r, ".env: line 2");
    let r = run_binary_in(&dir.0, &["--env-file", "missing.env"], &[], None);
    assert_one_clean_error_line(&r, "missing.env");
}

#[test]
fn a_busy_port_on_the_first_start_uses_up_no_secret() {
    let dir = TempDir::new("busy");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let data = dir.0.display().to_string();
    let env = [
        ("DATA_DIR", data.as_str()),
        ("WHATSAPP_BACKEND", "simulator"),
        ("PORT", port.as_str()),
    ];
    let r = run_binary(&[], &env);
    assert_eq!(r.code, Some(2), "{}{}", r.stdout, r.stderr);
    assert_one_clean_error_line(&r, "PORT");
    assert!(
        !r.stdout.contains("Generated") && !r.stderr.contains("Generated"),
        "a failed start announced a secret: {}",
        r.stdout
    );
    drop(busy);

    // The next start is the first one that works: it shows both, and both work.
    let server = BinServer::spawn(&dir.0, &[], &[("PORT", "0"), env[0], env[1]]);
    let key = server
        .announced("Generated API key")
        .expect("the key is shown");
    let password = server
        .announced("Generated dashboard password")
        .expect("the password is shown");
    remember_secret(&key);
    remember_secret(&password);
    assert_eq!(
        status_of(&server, "/api/v1/status", &[("X-API-Key", &key)]),
        200
    );
    let auth = basic_auth("admin", &password);
    assert_eq!(status_of(&server, "/", &[("Authorization", &auth)]), 200);
    drop(server);
    // And only that once.
    let server = BinServer::spawn(&dir.0, &[], &[("PORT", "0"), env[0], env[1]]);
    assert!(!server.log().iter().any(|l| l.contains("Generated")));
    assert_eq!(
        status_of(&server, "/api/v1/status", &[("X-API-Key", &key)]),
        200
    );
}

/// Polls the server until `headers` on `path` answer `status`; how long it took.
fn until_status(server: &BinServer, path: &str, headers: &[(&str, &str)], status: u16) -> Duration {
    let started = Instant::now();
    eventually(5, &format!("{path} to answer {status}"), || {
        (status_of(server, path, headers) == status).then_some(())
    });
    started.elapsed()
}

#[test]
fn rotate_key_and_set_password_reach_a_running_server() {
    let dir = TempDir::new("rotate");
    // The server's password is generated (DASHBOARD_PASSWORD unset).
    let server = BinServer::start(&dir.0, &[("DASHBOARD_PASSWORD", "")]);
    let first_password = server.announced("Generated dashboard password").unwrap();
    remember_secret(&first_password);
    assert_eq!(
        status_of(&server, "/api/v1/status", &[("X-API-Key", KEY)]),
        200
    );
    let data = dir.0.display().to_string();
    let cwd = TempDir::new("rotate-cwd");

    let r = run_binary_in(&cwd.0, &["rotate-key"], &[("DATA_DIR", &data)], None);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let new_key = r.stdout.trim().to_string();
    assert_eq!(
        r.stdout.lines().count(),
        1,
        "only the key on stdout: {}",
        r.stdout
    );
    assert_eq!(new_key.len(), 43, "{new_key}");
    remember_secret(&new_key);
    assert!(r.stderr.contains("no longer works"), "{}", r.stderr);
    let took = until_status(&server, "/api/v1/status", &[("X-API-Key", &new_key)], 200);
    assert!(took < Duration::from_secs(2), "followed after {took:?}");
    assert_eq!(
        status_of(&server, "/api/v1/status", &[("X-API-Key", KEY)]),
        401
    );

    // A password from standard input.
    let r = run_binary_in(
        &cwd.0,
        &["set-password"],
        &[("DATA_DIR", &data)],
        Some("a-new-dashboard-pw\n"),
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stdout.is_empty(),
        "a chosen password is not printed: {}",
        r.stdout
    );
    let new_auth = basic_auth("admin", "a-new-dashboard-pw");
    let took = until_status(&server, "/", &[("Authorization", &new_auth)], 200);
    assert!(took < Duration::from_secs(2), "followed after {took:?}");
    let old_auth = basic_auth("admin", &first_password);
    assert_eq!(
        status_of(&server, "/", &[("Authorization", &old_auth)]),
        401
    );

    // Empty input: one is generated and printed once.
    let r = run_binary_in(&cwd.0, &["set-password"], &[("DATA_DIR", &data)], Some(""));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let generated = r.stdout.trim().to_string();
    assert_eq!(generated.len(), 24, "{}", r.stdout);
    remember_secret(&generated);
    let auth = basic_auth("admin", &generated);
    until_status(&server, "/", &[("Authorization", &auth)], 200);
    assert_eq!(
        status_of(&server, "/", &[("Authorization", &new_auth)]),
        401
    );

    // Refused with one line: not the server's database (none there), too
    // short, or DASHBOARD_PASSWORD set (it wins).
    for command in ["rotate-key", "set-password"] {
        let r = run_binary_in(&cwd.0, &[command], &[], Some("long-enough-pw\n"));
        assert_one_clean_error_line(&r, "no database at ./data/whatsapp-api.db");
        assert!(!cwd.0.join("data/whatsapp-api.db").exists());
    }
    let r = run_binary_in(
        &cwd.0,
        &["set-password"],
        &[("DATA_DIR", &data)],
        Some("short\n"),
    );
    assert_one_clean_error_line(&r, "at least 8");
    let r = run_binary_in(
        &cwd.0,
        &["set-password"],
        &[
            ("DATA_DIR", &data),
            ("DASHBOARD_PASSWORD", "from-the-env-123"),
        ],
        Some("whatever-password\n"),
    );
    assert_one_clean_error_line(&r, "DASHBOARD_PASSWORD is set");
    assert_eq!(status_of(&server, "/", &[("Authorization", &auth)]), 200);

    // Each change is in the audit log, without the secret.
    let logs = request(
        &agent(),
        "GET",
        &format!("{}/api/v1/audit-logs?limit=100", server.base),
        &[("X-API-Key", &new_key)],
        None,
    )
    .json();
    let actions: Vec<&str> = logs["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["action"].as_str())
        .collect();
    assert!(actions.contains(&"api_key_rotated"), "{actions:?}");
    assert_eq!(actions.iter().filter(|a| **a == "password_set").count(), 2);
    assert!(!logs.to_string().contains(&new_key));
    let log = server.log().join("\n");
    for secret in [new_key.as_str(), generated.as_str(), "a-new-dashboard-pw"] {
        assert!(!log.contains(secret), "the server logged a secret");
    }
}

/// The Node server's `.env.example`, as copied by someone moving over.
const NODE_ENV_EXAMPLE: &str = "\
# Server
NODE_ENV=production
PORT=0
# API authentication
API_KEY=your-secret-api-key-change-me
# Dashboard
DASHBOARD_USER=admin
DASHBOARD_PASSWORD=change-me-please
# Storage
DB_PATH=./messages.db
SESSION_PATH=./session
MEDIA_PATH=./media
WHATSAPP_BACKEND=simulator
";

#[test]
fn the_node_servers_env_file_pointing_at_its_files_just_works() {
    let dir = TempDir::new("node-env");
    std::fs::write(dir.0.join(".env"), NODE_ENV_EXAMPLE).unwrap();
    // The Node server's database and its Baileys session directory.
    let node_db = dir.0.join("messages.db");
    {
        let conn = rusqlite::Connection::open(&node_db).unwrap();
        conn.execute_batch(
            "CREATE TABLE messages (id TEXT PRIMARY KEY, direction TEXT, phone TEXT, message TEXT,
                 reply_status TEXT, media_type TEXT, media_url TEXT,
                 created_at DATETIME DEFAULT CURRENT_TIMESTAMP);
             INSERT INTO messages (id, direction, phone, message, reply_status)
                 VALUES ('node-1', 'incoming', '15551234567@s.whatsapp.net', 'from the Node days', 'unread');",
        )
        .unwrap();
    }
    std::fs::create_dir_all(dir.0.join("session")).unwrap();
    std::fs::write(dir.0.join("session/creds.json"), "{\"me\":{}}").unwrap();
    let fingerprint = |p: &std::path::Path| std::fs::read(p).unwrap();
    let node_bytes = fingerprint(&node_db);

    let server = BinServer::spawn(&dir.0, &[], &[]);
    let log = server.log().join("\n");
    assert!(
        log.contains("DB_PATH ./messages.db is the Node server's database")
            && log.contains("./whatsapp-api.db"),
        "{log}"
    );
    assert!(
        log.contains(
            "imported into ./whatsapp-api.db (1 message, 0 webhooks and 0 audit rows added)"
        ),
        "{log}"
    );
    assert!(
        log.contains("SESSION_PATH ./session is a directory"),
        "{log}"
    );
    assert!(log.contains("link the phone once more"), "{log}");
    assert!(
        log.contains(".env: not settings of this server, ignored: NODE_ENV"),
        "{log}"
    );
    let key = [("X-API-Key", "your-secret-api-key-change-me")];
    let inbox = request(
        &agent(),
        "GET",
        &format!("{}/api/v1/inbox", server.base),
        &key,
        None,
    )
    .json();
    assert_eq!(inbox["messages"][0]["id"], "node-1", "{inbox}");
    assert_eq!(inbox["messages"][0]["message"], "from the Node days");
    // A new message goes to the new database, never the Node one.
    let injected = request(
        &agent(),
        "POST",
        &format!("{}/api/v1/simulator/messages", server.base),
        &key,
        Some(
            json!({ "from": "15557654321", "text": "new" })
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!(injected.status, 201, "{}", injected.text);
    assert_eq!(server.terminate().code(), Some(0));
    assert_eq!(
        fingerprint(&node_db),
        node_bytes,
        "the Node database was written"
    );
    for leftover in ["messages.db-wal", "messages.db-journal"] {
        assert!(!dir.0.join(leftover).exists(), "{leftover}");
    }
    assert_eq!(
        std::fs::read_to_string(dir.0.join("session/creds.json")).unwrap(),
        "{\"me\":{}}"
    );
    assert!(dir.0.join("whatsapp-api.db").is_file());
    // Every path names a place beside the Node server's files: no DATA_DIR.
    assert!(!dir.0.join("data").exists());

    // The next start imports nothing twice and says how to make it permanent.
    let server = BinServer::spawn(&dir.0, &[], &[]);
    let log = server.log().join("\n");
    assert!(log.contains("at an earlier start"), "{log}");
    assert!(log.contains("set DB_PATH=./whatsapp-api.db"), "{log}");
    let all = request(
        &agent(),
        "GET",
        &format!("{}/api/v1/inbox/all", server.base),
        &key,
        None,
    )
    .json();
    assert_eq!(all["pagination"]["total"], 2, "{all}");
    drop(server);
    assert_eq!(fingerprint(&node_db), node_bytes);

    // The one-shot commands use the same files.
    let r = run_binary_in(&dir.0, &["rotate-key"], &[], None);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    remember_secret(r.stdout.trim());
    assert!(r.stderr.contains("./whatsapp-api.db"), "{}", r.stderr);
    assert_eq!(fingerprint(&node_db), node_bytes);
}
