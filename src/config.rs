//! Configuration: environment variables (names kept from the Node server),
//! a `.env` file read with dotenv's rules, and the equivalent `--flags`.
//! Flags win over the environment, the environment over the file. A bad value
//! is one clear error line.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Which WhatsApp backend sits behind the command/event door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The real WhatsApp connection (`whatsapp.rs`).
    WhatsApp,
    /// The in-process sandbox (`simulator.rs`).
    Simulator,
}

/// Everything `serve` needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub db_path: PathBuf,
    pub session_path: PathBuf,
    pub media_path: PathBuf,
    /// When set, the active API key (its hash replaces whatever was stored).
    pub api_key: Option<String>,
    pub dashboard_user: String,
    /// When set, the dashboard password; else a generated one is kept hashed.
    pub dashboard_password: Option<String>,
    pub backend: Backend,
    /// Requests a minute per API key; 0 disables the limit.
    pub rate_limit_per_minute: u32,
    /// Pauses between webhook attempts; its length + 1 is the attempt count.
    pub webhook_retry_schedule: Vec<Duration>,
    pub webhook_timeout: Duration,
    /// Whether webhook targets may be loopback, private, link-local or
    /// unspecified addresses (receivers often run on the same host).
    pub webhook_allow_private: bool,
    pub media_max_bytes: u64,
    pub audit_retention_days: u32,
    /// Tell WhatsApp when a message is read or replied (the customer's
    /// blue ticks).
    pub send_read_receipts: bool,
    /// How long the event stream can be resumed (days).
    pub events_retention_days: u32,
    /// Most event streams open at once.
    pub event_streams_max: usize,
    /// Longest silence on an event stream before a `: ping` comment.
    pub event_ping: Duration,
    pub log_level: log::LevelFilter,
    /// Number of HTTP worker threads.
    pub http_workers: usize,
    /// How long a client connection may stay silent, and the deadline
    /// (before allowances for size) of reading a request and of writing a
    /// response.
    pub http_timeout: Duration,
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Command {
    Serve(Box<Config>),
    Backup {
        config: Box<Config>,
        target: PathBuf,
    },
    ImportLegacy {
        config: Box<Config>,
        source: PathBuf,
    },
    Healthcheck(Box<Config>),
    /// Make a new API key active (printed once); the old one stops working.
    RotateKey(Box<Config>),
    /// Store a new dashboard password read from standard input (or a
    /// generated one, printed once, when the input is empty).
    SetPassword(Box<Config>),
    Version,
    Help,
}

/// A configuration problem, printed as one line naming the variable.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Every variable with its default (None: no default) and a line for `--help`.
const VARIABLES: &[(&str, Option<&str>, &str)] = &[
    (
        "HOST",
        Some("127.0.0.1"),
        "listen address (the container image sets 0.0.0.0)",
    ),
    ("PORT", Some("3001"), "listen port"),
    (
        "DATA_DIR",
        Some("./data"),
        "where the databases and media live",
    ),
    (
        "DB_PATH",
        None,
        "app database (default DATA_DIR/whatsapp-api.db)",
    ),
    (
        "SESSION_PATH",
        None,
        "WhatsApp session store (default DATA_DIR/session.db)",
    ),
    (
        "MEDIA_PATH",
        None,
        "downloaded media (default DATA_DIR/media)",
    ),
    (
        "API_KEY",
        None,
        "the active API key; generated on first start when unset",
    ),
    ("DASHBOARD_USER", Some("admin"), "dashboard Basic Auth user"),
    (
        "DASHBOARD_PASSWORD",
        None,
        "dashboard password; generated on first start when unset",
    ),
    (
        "WHATSAPP_BACKEND",
        Some("whatsapp"),
        "whatsapp (real) or simulator (sandbox)",
    ),
    (
        "RATE_LIMIT_PER_MINUTE",
        Some("100"),
        "requests a minute per API key; 0 disables",
    ),
    (
        "WEBHOOK_RETRY_SCHEDULE",
        Some("1,2,4"),
        "seconds between webhook attempts",
    ),
    (
        "WEBHOOK_TIMEOUT_SECS",
        Some("10"),
        "timeout of one webhook attempt",
    ),
    (
        "WEBHOOK_ALLOW_PRIVATE",
        Some("true"),
        "false refuses webhook targets on loopback, private, link-local and unspecified addresses (checked after DNS resolution)",
    ),
    (
        "MEDIA_MAX_BYTES",
        Some("67108864"),
        "larger media is recorded but not downloaded",
    ),
    (
        "AUDIT_RETENTION_DAYS",
        Some("90"),
        "older audit rows are pruned daily",
    ),
    (
        "SEND_READ_RECEIPTS",
        Some("true"),
        "tell WhatsApp when a message is read or replied (blue ticks)",
    ),
    (
        "EVENTS_RETENTION_DAYS",
        Some("7"),
        "how long the event stream can be resumed",
    ),
    (
        "EVENT_STREAMS_MAX",
        Some("32"),
        "event streams open at once (one more is answered 503)",
    ),
    (
        "LOG_LEVEL",
        Some("info"),
        "error, warn, info, debug or trace",
    ),
    ("HTTP_WORKERS", Some("8"), "HTTP worker threads"),
    (
        "HTTP_TIMEOUT_SECS",
        Some("30"),
        "a client connection silent this long is closed; also how long a request may take to arrive and a response to be written (more for large ones)",
    ),
];

/// The `--help` text.
pub fn help() -> String {
    let mut s = format!(
        "whatsapp-api {} - a self-hosted, reply-only WhatsApp HTTP API\n\n\
         Usage: whatsapp-api [COMMAND] [--flag value ...]\n\n\
         Commands:\n  \
         serve                   run the server (the default)\n  \
         backup <file>           write a consistent copy of the app database (safe while it runs)\n  \
         import-legacy <db>      import the Node.js server's messages.db: messages (ids kept),\n                          \
         webhooks, API key, audit log; running it again changes nothing\n  \
         rotate-key              make a new API key (printed once) and revoke the old one;\n                          \
         a running server on the same DATA_DIR follows within a second\n  \
         set-password            set the dashboard password: the new one is read from standard\n                          \
         input (empty input: one is generated and printed once); a\n                          \
         running server follows within a second\n  \
         healthcheck             exit 0 when the local server answers /api/v1/health\n  \
         --version, -V           print the version\n  \
         --help, -h              print this help\n\n\
         Configuration (environment variable, or the flag beside it; flags win over the\n\
         environment, the environment over the .env file):\n",
        env!("CARGO_PKG_VERSION")
    );
    for (name, default, what) in VARIABLES {
        let flag = format!("--{}", name.to_ascii_lowercase().replace('_', "-"));
        let default = default
            .map(|d| format!(" [default: {d}]"))
            .unwrap_or_default();
        s.push_str(&format!("  {name:<24} {flag:<26} {what}{default}\n"));
    }
    s.push_str(
        "\n.env file:\n  \
         A .env file in the working directory is read at every start (--env-file PATH\n  \
         names another). dotenv's rules: KEY=value lines, an optional `export `,\n  \
         # comments, single or double quotes stripped (double quotes allow \\n and \\\"),\n  \
         and no $ expansion: a value is taken exactly as written.\n\n\
         Getting started:\n  \
         1. Try it without a phone:  WHATSAPP_BACKEND=simulator whatsapp-api\n     \
         The API key and dashboard password are generated and printed once, when the\n     \
         first start succeeds (or set API_KEY and DASHBOARD_PASSWORD yourself).\n  \
         2. Open http://127.0.0.1:3001/ and log in as admin. For a real account, start\n     \
         without WHATSAPP_BACKEND and scan the QR code on http://127.0.0.1:3001/login.\n  \
         3. Read the inbox:  curl -H \"X-API-Key: $KEY\" http://127.0.0.1:3001/api/v1/inbox\n     \
         Every route:     http://127.0.0.1:3001/api/v1/openapi.json\n\n\
         With the server's DATA_DIR (or DB_PATH) set the same way (the same .env):\n  \
         Lost the key:      whatsapp-api rotate-key\n  \
         Lost the password: whatsapp-api set-password < /dev/null   (prints a new one)\n  \
         Back up:           whatsapp-api backup /backups/whatsapp-api-$(date +%F).db\n  \
         Move from Node:    whatsapp-api import-legacy /path/to/node-app/data/messages.db\n\n\
         Data lives in DATA_DIR: whatsapp-api.db (messages, webhooks, keys), session.db\n\
         (the linked WhatsApp device) and media/. Errors go to stderr as one line.\n",
    );
    s
}

/// The `.env` file a command line asks for: `--env-file PATH`, else `.env`
/// in the working directory when there is one. `Ok(None)`: no file.
fn env_file_of(args: &[String]) -> Result<Option<PathBuf>, ConfigError> {
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--env-file" {
            let path = args
                .get(i)
                .ok_or_else(|| ConfigError("flag --env-file needs a value".into()))?;
            return Ok(Some(PathBuf::from(path)));
        }
        if let Some(path) = arg.strip_prefix("--env-file=") {
            return Ok(Some(PathBuf::from(path)));
        }
    }
    let default = PathBuf::from(".env");
    Ok(default.exists().then_some(default))
}

/// A `.env` file that was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFile {
    pub path: PathBuf,
    /// Its variables that are not settings of this server (the Node server's
    /// `.env` may hold others), in file order.
    pub unused: Vec<String>,
}

/// Adds the variables of the `.env` file (see `env_file_of`) to `env`; a
/// variable already in `env` keeps its value. Returns the merged environment
/// and the file read, if any. `--help` and `--version` read no file.
pub fn with_env_file(
    args: &[String],
    env: &BTreeMap<String, String>,
) -> Result<(BTreeMap<String, String>, Option<EnvFile>), ConfigError> {
    let mut merged = env.clone();
    if args
        .iter()
        .any(|a| matches!(a.as_str(), "--help" | "-h" | "--version" | "-V"))
    {
        return Ok((merged, None));
    }
    let Some(path) = env_file_of(args)? else {
        return Ok((merged, None));
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        ConfigError(format!(
            "could not read the env file {}: {e}",
            path.display()
        ))
    })?;
    let pairs = parse_dotenv(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
    let unused = pairs
        .iter()
        .map(|(key, _)| key.clone())
        .filter(|key| !VARIABLES.iter().any(|(name, _, _)| name == key))
        .collect();
    for (key, value) in pairs {
        merged.entry(key).or_insert(value);
    }
    Ok((merged, Some(EnvFile { path, unused })))
}

/// Parses `.env` text with dotenv's rules: `KEY=value` lines, an optional
/// `export ` before the key, blank lines and `#` comments skipped. An
/// unquoted value is trimmed and ends at ` #` (a comment); a value in single
/// quotes (or backticks) is taken literally; in double quotes `\n`, `\r`,
/// `\t`, `\"` and `\\` are escapes and the value may span lines. Nothing is
/// expanded: `$HOME` stays `$HOME`. A later line wins over an earlier one.
/// Errors name the line.
pub fn parse_dotenv(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, raw)) = lines.next() {
        let number = index + 1;
        let line = raw.trim_start_matches('\u{feff}').trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line
            .strip_prefix("export")
            .filter(|rest| rest.starts_with([' ', '\t']))
            .map_or(line, str::trim_start);
        let Some((key, rest)) = line.split_once('=') else {
            return Err(format!("line {number}: expected KEY=value"));
        };
        let key = key.trim();
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
        {
            return Err(format!("line {number}: {key:?} is not a variable name"));
        }
        let rest = rest.trim_start();
        let value = match rest.chars().next() {
            Some(quote @ ('\'' | '`')) => {
                let body = &rest[1..];
                let end = body
                    .find(quote)
                    .ok_or_else(|| format!("line {number}: the {quote} quote is not closed"))?;
                let after = body[end + 1..].trim();
                if !(after.is_empty() || after.starts_with('#')) {
                    return Err(format!("line {number}: text after the closing quote"));
                }
                body[..end].to_string()
            }
            Some('"') => {
                let mut value = String::new();
                let mut body = rest[1..].to_string();
                loop {
                    match close_double_quoted(&body, &mut value) {
                        Some(after) => {
                            let after = after.trim();
                            if !(after.is_empty() || after.starts_with('#')) {
                                return Err(format!("line {number}: text after the closing quote"));
                            }
                            break;
                        }
                        None => {
                            // The value goes on: its line break is part of it.
                            let (_, next) = lines.next().ok_or_else(|| {
                                format!("line {number}: the \" quote is not closed")
                            })?;
                            value.push('\n');
                            body = next.to_string();
                        }
                    }
                }
                value
            }
            _ => {
                let end = rest
                    .char_indices()
                    .find(|&(i, c)| c == '#' && (i == 0 || rest[..i].ends_with([' ', '\t'])))
                    .map_or(rest.len(), |(i, _)| i);
                rest[..end].trim().to_string()
            }
        };
        out.retain(|(k, _)| k != key);
        out.push((key.to_string(), value));
    }
    Ok(out)
}

/// Reads a double-quoted value's text from `body` into `value`, unescaping.
/// Returns what follows the closing quote, or None when `body` ends first.
fn close_double_quoted<'a>(body: &'a str, value: &mut String) -> Option<&'a str> {
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some(&body[i + 1..]),
            '\\' => match chars.next() {
                Some((_, 'n')) => value.push('\n'),
                Some((_, 'r')) => value.push('\r'),
                Some((_, 't')) => value.push('\t'),
                Some((_, '"')) => value.push('"'),
                Some((_, '\\')) => value.push('\\'),
                Some((_, other)) => {
                    value.push('\\');
                    value.push(other);
                }
                None => value.push('\\'),
            },
            c => value.push(c),
        }
    }
    None
}

/// Parses the command line against an environment (both passed in, so tests
/// need not touch the process environment).
pub fn parse(args: &[String], env: &BTreeMap<String, String>) -> Result<Command, ConfigError> {
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    for (name, _, _) in VARIABLES {
        if let Some(v) = env.get(*name) {
            values.insert(name.to_string(), v.clone());
        }
    }
    let mut positional = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        match arg.as_str() {
            "--help" | "-h" => return Ok(Command::Help),
            "--version" | "-V" => return Ok(Command::Version),
            _ => {}
        }
        let Some(flag) = arg.strip_prefix("--") else {
            positional.push(arg.clone());
            continue;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag, None),
        };
        if name == "env-file" {
            // Read by `with_env_file`; here only its value is skipped.
            if inline.is_none() {
                i += 1;
            }
            continue;
        }
        let var = name.to_ascii_uppercase().replace('-', "_");
        if !VARIABLES.iter().any(|(n, _, _)| *n == var) {
            return Err(ConfigError(format!("unknown flag --{name} (see --help)")));
        }
        let value = match inline {
            Some(v) => v,
            None => {
                let v = args
                    .get(i)
                    .ok_or_else(|| ConfigError(format!("flag --{name} needs a value")))?;
                i += 1;
                v.clone()
            }
        };
        values.insert(var, value);
    }
    let config = Box::new(build(&values)?);
    let mut positional = positional.into_iter();
    let command = match positional.next().as_deref() {
        None | Some("serve") => Command::Serve(config),
        Some("backup") => {
            let target = positional
                .next()
                .ok_or_else(|| ConfigError("backup needs a target file: backup <file>".into()))?;
            Command::Backup {
                config,
                target: target.into(),
            }
        }
        Some("import-legacy") => {
            let source = positional.next().ok_or_else(|| {
                ConfigError(
                    "import-legacy needs the Node server's database: import-legacy <messages.db>"
                        .into(),
                )
            })?;
            Command::ImportLegacy {
                config,
                source: source.into(),
            }
        }
        Some("healthcheck") => Command::Healthcheck(config),
        Some("rotate-key") => Command::RotateKey(config),
        Some("set-password") => Command::SetPassword(config),
        Some(other) => {
            return Err(ConfigError(format!(
                "unknown command {other:?} (see --help)"
            )));
        }
    };
    if let Some(extra) = positional.next() {
        return Err(ConfigError(format!(
            "unexpected argument {extra:?} (see --help)"
        )));
    }
    Ok(command)
}

fn build(values: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
    let get = |name: &str| -> Option<String> {
        values.get(name).cloned().or_else(|| {
            VARIABLES
                .iter()
                .find(|(n, _, _)| *n == name)
                .and_then(|(_, d, _)| d.map(str::to_string))
        })
    };
    let text = |name: &str| get(name).unwrap_or_default();
    let number = |name: &str, min: u64, max: u64| -> Result<u64, ConfigError> {
        let raw = text(name);
        match raw.trim().parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(ConfigError(format!(
                "{name} must be a whole number from {min} to {max}, got {raw:?}"
            ))),
        }
    };

    let host = text("HOST");
    if host.trim().is_empty() {
        return Err(ConfigError("HOST must not be empty".into()));
    }
    let port = number("PORT", 0, 65535)? as u16;
    let data_dir = PathBuf::from(text("DATA_DIR"));
    if data_dir.as_os_str().is_empty() {
        return Err(ConfigError("DATA_DIR must not be empty".into()));
    }
    let path_or = |name: &str, default: &str| -> PathBuf {
        match values.get(name) {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => data_dir.join(default),
        }
    };
    let backend = match text("WHATSAPP_BACKEND").trim() {
        "whatsapp" => Backend::WhatsApp,
        "simulator" => Backend::Simulator,
        other => {
            return Err(ConfigError(format!(
                "WHATSAPP_BACKEND must be \"whatsapp\" or \"simulator\", got {other:?}"
            )));
        }
    };
    let api_key = values.get("API_KEY").filter(|k| !k.is_empty()).cloned();
    if let Some(key) = &api_key
        && key.len() < 16
    {
        return Err(ConfigError(
            "API_KEY must be at least 16 characters long".into(),
        ));
    }
    let dashboard_user = text("DASHBOARD_USER");
    if dashboard_user.is_empty() || dashboard_user.contains(':') {
        return Err(ConfigError(
            "DASHBOARD_USER must be non-empty and contain no ':'".into(),
        ));
    }
    let dashboard_password = values
        .get("DASHBOARD_PASSWORD")
        .filter(|p| !p.is_empty())
        .cloned();
    let schedule = parse_schedule(&text("WEBHOOK_RETRY_SCHEDULE")).ok_or_else(|| {
        ConfigError(format!(
            "WEBHOOK_RETRY_SCHEDULE must be comma-separated seconds such as 1,2,4, got {:?}",
            text("WEBHOOK_RETRY_SCHEDULE")
        ))
    })?;
    // A yes/no variable: true/false, 1/0, yes/no.
    let boolean = |name: &str| -> Result<bool, ConfigError> {
        match text(name).trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            other => Err(ConfigError(format!(
                "{name} must be true or false, got {other:?}"
            ))),
        }
    };
    let webhook_allow_private = boolean("WEBHOOK_ALLOW_PRIVATE")?;
    let send_read_receipts = boolean("SEND_READ_RECEIPTS")?;
    let log_level = match text("LOG_LEVEL").trim().to_ascii_lowercase().as_str() {
        "error" => log::LevelFilter::Error,
        "warn" => log::LevelFilter::Warn,
        "info" => log::LevelFilter::Info,
        "debug" => log::LevelFilter::Debug,
        "trace" => log::LevelFilter::Trace,
        "off" => log::LevelFilter::Off,
        other => {
            return Err(ConfigError(format!(
                "LOG_LEVEL must be error, warn, info, debug or trace, got {other:?}"
            )));
        }
    };
    Ok(Config {
        host,
        port,
        db_path: path_or("DB_PATH", "whatsapp-api.db"),
        session_path: path_or("SESSION_PATH", "session.db"),
        media_path: path_or("MEDIA_PATH", "media"),
        data_dir: data_dir.clone(),
        api_key,
        dashboard_user,
        dashboard_password,
        backend,
        rate_limit_per_minute: number("RATE_LIMIT_PER_MINUTE", 0, 1_000_000)? as u32,
        webhook_retry_schedule: schedule,
        webhook_timeout: Duration::from_secs(number("WEBHOOK_TIMEOUT_SECS", 1, 300)?),
        webhook_allow_private,
        media_max_bytes: number("MEDIA_MAX_BYTES", 0, u64::MAX / 2)?,
        audit_retention_days: number("AUDIT_RETENTION_DAYS", 1, 36_500)? as u32,
        send_read_receipts,
        events_retention_days: number("EVENTS_RETENTION_DAYS", 1, 36_500)? as u32,
        event_streams_max: number("EVENT_STREAMS_MAX", 0, 10_000)? as usize,
        event_ping: Duration::from_secs(15),
        log_level,
        http_workers: number("HTTP_WORKERS", 1, 256)? as usize,
        http_timeout: Duration::from_secs(number("HTTP_TIMEOUT_SECS", 1, 3600)?),
    })
}

/// `"1,2,4"` -> pauses of 1 s, 2 s, 4 s. Fractions are allowed (tests use
/// short schedules); an empty schedule means a single attempt.
fn parse_schedule(raw: &str) -> Option<Vec<Duration>> {
    if raw.trim().is_empty() {
        return Some(Vec::new());
    }
    raw.split(',')
        .map(|part| {
            let secs: f64 = part.trim().parse().ok()?;
            (secs.is_finite() && (0.0..=86_400.0).contains(&secs))
                .then(|| Duration::from_secs_f64(secs))
        })
        .collect()
}

impl Config {
    /// A configuration for tests: simulator, loopback, port 0, the given dir.
    pub fn for_tests(data_dir: &std::path::Path) -> Config {
        let mut env = BTreeMap::new();
        env.insert("DATA_DIR".to_string(), data_dir.display().to_string());
        env.insert("PORT".to_string(), "0".to_string());
        env.insert("WHATSAPP_BACKEND".to_string(), "simulator".to_string());
        env.insert("HTTP_WORKERS".to_string(), "4".to_string());
        build(&env).expect("test configuration is valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn serve(args: &[&str], pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match parse(&args, &env(pairs))? {
            Command::Serve(c) => Ok(*c),
            other => panic!("expected serve, got {other:?}"),
        }
    }

    #[test]
    fn defaults_match_the_spec() {
        let c = serve(&[], &[]).unwrap();
        assert_eq!(c.host, "127.0.0.1");
        assert_eq!(c.port, 3001);
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.db_path, PathBuf::from("./data/whatsapp-api.db"));
        assert_eq!(c.session_path, PathBuf::from("./data/session.db"));
        assert_eq!(c.media_path, PathBuf::from("./data/media"));
        assert_eq!(c.backend, Backend::WhatsApp);
        assert_eq!(c.rate_limit_per_minute, 100);
        assert_eq!(
            c.webhook_retry_schedule,
            vec![
                Duration::from_secs(1),
                Duration::from_secs(2),
                Duration::from_secs(4)
            ]
        );
        assert_eq!(c.webhook_timeout, Duration::from_secs(10));
        assert!(c.webhook_allow_private);
        assert!(
            !serve(&["--webhook-allow-private", "false"], &[])
                .unwrap()
                .webhook_allow_private
        );
        assert_eq!(c.media_max_bytes, 67_108_864);
        assert_eq!(c.audit_retention_days, 90);
        assert_eq!(c.events_retention_days, 7);
        assert_eq!(c.event_streams_max, 32);
        assert_eq!(c.dashboard_user, "admin");
        assert!(c.api_key.is_none() && c.dashboard_password.is_none());
    }

    #[test]
    fn flags_win_over_environment() {
        let c = serve(
            &["--port", "4000", "--data-dir=/tmp/x"],
            &[("PORT", "5000"), ("DATA_DIR", "/y")],
        )
        .unwrap();
        assert_eq!(c.port, 4000);
        assert_eq!(c.db_path, PathBuf::from("/tmp/x/whatsapp-api.db"));
        let c = serve(&[], &[("PORT", "5000"), ("DB_PATH", "/z/app.db")]).unwrap();
        assert_eq!(c.port, 5000);
        assert_eq!(c.db_path, PathBuf::from("/z/app.db"));
        assert!(c.send_read_receipts);
        let c = serve(&["--send-read-receipts", "false"], &[]).unwrap();
        assert!(!c.send_read_receipts);
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (pairs, needle) in [
            (vec![("PORT", "70000")], "PORT"),
            (vec![("PORT", "abc")], "PORT"),
            (vec![("WHATSAPP_BACKEND", "telegram")], "WHATSAPP_BACKEND"),
            (
                vec![("RATE_LIMIT_PER_MINUTE", "-1")],
                "RATE_LIMIT_PER_MINUTE",
            ),
            (
                vec![("WEBHOOK_RETRY_SCHEDULE", "1,x")],
                "WEBHOOK_RETRY_SCHEDULE",
            ),
            (vec![("LOG_LEVEL", "loud")], "LOG_LEVEL"),
            (
                vec![("WEBHOOK_ALLOW_PRIVATE", "maybe")],
                "WEBHOOK_ALLOW_PRIVATE",
            ),
            (vec![("SEND_READ_RECEIPTS", "maybe")], "SEND_READ_RECEIPTS"),
            (vec![("API_KEY", "short")], "API_KEY"),
        ] {
            let err = serve(&[], &pairs).unwrap_err();
            assert!(err.0.contains(needle), "{err}");
            assert!(!err.0.contains('\n'));
        }
        let args = vec!["--nope".to_string()];
        assert!(
            parse(&args, &BTreeMap::new())
                .unwrap_err()
                .0
                .contains("--nope")
        );
    }

    #[test]
    fn subcommands() {
        let a = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(matches!(
            parse(&a(&["--version"]), &BTreeMap::new()),
            Ok(Command::Version)
        ));
        assert!(matches!(
            parse(&a(&["--help"]), &BTreeMap::new()),
            Ok(Command::Help)
        ));
        assert!(matches!(
            parse(&a(&["backup", "/tmp/b.db"]), &BTreeMap::new()),
            Ok(Command::Backup { target, .. }) if target.as_path() == std::path::Path::new("/tmp/b.db")
        ));
        assert!(parse(&a(&["backup"]), &BTreeMap::new()).is_err());
        assert!(matches!(
            parse(&a(&["import-legacy", "m.db"]), &BTreeMap::new()),
            Ok(Command::ImportLegacy { .. })
        ));
        assert!(parse(&a(&["frobnicate"]), &BTreeMap::new()).is_err());
        assert!(matches!(
            parse(&a(&["rotate-key"]), &BTreeMap::new()),
            Ok(Command::RotateKey(_))
        ));
        assert!(matches!(
            parse(&a(&["--env-file=x.env", "set-password"]), &BTreeMap::new()),
            Ok(Command::SetPassword(_))
        ));
    }

    #[test]
    fn dotenv_rules() {
        let text = "# the Node server's .env\n\
                    \n\
                    PORT=3002\n\
                    export HOST = 0.0.0.0 \n\
                    API_KEY=\"my-long-api-key-1234567890\"\n\
                    DASHBOARD_PASSWORD='pa$$w0rd$HOME'\n\
                    DASHBOARD_USER=ops # who logs in\n\
                    LOG_LEVEL=debug#not a comment\n\
                    GREETING=\"line one\\nsaid \\\"hi\\\" \\\\o/\" # comment\n\
                    MULTI=\"first\n\
                    second\"\n\
                    EMPTY=\n\
                    TICKS=`a 'b' \"c\"`\n\
                    exporter=1\n\
                    PORT=3003\n";
        let pairs: BTreeMap<String, String> = parse_dotenv(text).unwrap().into_iter().collect();
        let get = |k: &str| pairs.get(k).map(String::as_str);
        assert_eq!(get("PORT"), Some("3003"), "a later line wins");
        assert_eq!(get("HOST"), Some("0.0.0.0"));
        assert_eq!(get("API_KEY"), Some("my-long-api-key-1234567890"));
        assert_eq!(get("DASHBOARD_PASSWORD"), Some("pa$$w0rd$HOME"));
        assert_eq!(get("DASHBOARD_USER"), Some("ops"));
        assert_eq!(get("LOG_LEVEL"), Some("debug#not a comment"));
        assert_eq!(get("GREETING"), Some("line one\nsaid \"hi\" \\o/"));
        assert_eq!(get("MULTI"), Some("first\nsecond"));
        assert_eq!(get("EMPTY"), Some(""));
        assert_eq!(get("TICKS"), Some("a 'b' \"c\""));
        assert_eq!(get("exporter"), Some("1"));
        for (bad, line) in [
            ("A=1\nnot a pair\n", "line 2"),
            ("A='open\n", "line 1"),
            ("A=\"open\nstill open\n", "line 1"),
            ("A=\"x\" y\n", "line 1"),
            ("BAD KEY=1\n", "line 1"),
        ] {
            let err = parse_dotenv(bad).unwrap_err();
            assert!(err.contains(line), "{bad:?}: {err}");
        }
    }

    #[test]
    fn the_environment_wins_over_the_env_file_and_flags_over_both() {
        let dir = std::env::temp_dir().join(format!("wa-envfile-{}", crate::auth::uuid_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("node.env");
        std::fs::write(
            &file,
            "PORT=4001\nDATA_DIR=/from/file\nNODE_ENV=production\nLOG_LEVEL=warn\n",
        )
        .unwrap();
        let args: Vec<String> = ["--env-file", file.to_str().unwrap(), "--port", "4003"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (merged, read) = with_env_file(&args, &env(&[("DATA_DIR", "/from/env")])).unwrap();
        let read = read.unwrap();
        assert_eq!(read.unused, ["NODE_ENV"]);
        let read = Some(read.path);
        assert_eq!(read.as_deref(), Some(file.as_path()));
        let Command::Serve(c) = parse(&args, &merged).unwrap() else {
            panic!("serve")
        };
        assert_eq!(c.port, 4003);
        assert_eq!(c.data_dir, PathBuf::from("/from/env"));
        assert_eq!(c.log_level, log::LevelFilter::Warn);
        let missing = vec![
            "--env-file".to_string(),
            dir.join("nope").display().to_string(),
        ];
        assert!(
            with_env_file(&missing, &BTreeMap::new())
                .unwrap_err()
                .0
                .contains("nope")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn schedule_parsing() {
        assert_eq!(parse_schedule(""), Some(vec![]));
        assert_eq!(
            parse_schedule("0.1, 0.2"),
            Some(vec![Duration::from_millis(100), Duration::from_millis(200)])
        );
        assert_eq!(parse_schedule("-1"), None);
        assert_eq!(parse_schedule("1,,2"), None);
    }
}
