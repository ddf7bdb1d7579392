//! `make bench` / `make bench-scale`: the SPEC §12 benchmark. Fills a fresh
//! data dir with a synthetic corpus (through `whatsapp_api::db`, one
//! transaction), starts the release server with the simulator and the rate
//! limit off, drives it with `wrk` (a separate process, 16 connections),
//! measures the server's RSS from `/proc`, receives the `message.received`
//! webhooks on a local receiver, prints one table and cleans up.
//!
//! Flags: `--messages N` (100000), `--scale` (10k, 100k and 1M in turn),
//! `--duration SECS` (5 per workload), `--connections N` (16),
//! `--server PATH` (target/release/whatsapp-api), `--data DIR` (bench-data),
//! `--keep` (leave the data dir).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use whatsapp_api::rng::Rng;
use whatsapp_api::status::{DeliveryStatus, Direction, ReplyStatus};
use whatsapp_api::{clock, db};

const KEY: &str = "bench-api-key-0123456789abcdef0123456789";
/// wrk threads: one per core of the reference machine.
const WRK_THREADS: u32 = 2;
/// Messages per chat: 100,000 messages over ~300 chats, and the number of
/// chats grows with the corpus (more history mostly means more customers).
const MESSAGES_PER_CHAT: usize = 330;

struct Options {
    sizes: Vec<usize>,
    scale: bool,
    duration: u32,
    connections: u32,
    server: PathBuf,
    data: PathBuf,
    keep: bool,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

fn parse_options() -> Result<Options, String> {
    let mut o = Options {
        sizes: vec![100_000],
        scale: false,
        duration: 5,
        connections: 16,
        server: PathBuf::from("target/release/whatsapp-api"),
        data: PathBuf::from("bench-data"),
        keep: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--messages" => {
                let v = value()?;
                let n = v
                    .replace(['_', ','], "")
                    .parse()
                    .map_err(|_| format!("bad --messages {v}"))?;
                o.sizes = vec![n];
            }
            "--scale" => {
                o.scale = true;
                o.sizes = vec![10_000, 100_000, 1_000_000];
            }
            "--duration" => o.duration = value()?.parse().map_err(|_| "bad --duration")?,
            "--connections" => o.connections = value()?.parse().map_err(|_| "bad --connections")?,
            "--server" => o.server = PathBuf::from(value()?),
            "--data" => o.data = PathBuf::from(value()?),
            "--keep" => o.keep = true,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(o)
}

fn run() -> Result<(), String> {
    let o = parse_options()?;
    if !o.server.exists() {
        return Err(format!(
            "{} not found; run `cargo build --release` first",
            o.server.display()
        ));
    }
    Command::new("wrk")
        .arg("--version")
        .output()
        .map_err(|e| format!("wrk is needed (apt-get install wrk): {e}"))?;
    let mut reports = Vec::new();
    for &n in &o.sizes {
        reports.push(bench_size(&o, n)?);
    }
    if o.scale {
        print_scale(&reports);
    }
    Ok(())
}

// ───────────────────────────── corpus ─────────────────────────────

const FIRST: [&str; 60] = [
    "Maria", "José", "Ana", "Luis", "Carmen", "Juan", "Sofia", "Pedro", "Lucia", "Diego", "Elena",
    "Pablo", "Laura", "Carlos", "Marta", "Jorge", "Paula", "Miguel", "Sara", "David", "Emma",
    "Noah", "Olivia", "Liam", "Ava", "Lucas", "Mia", "Ethan", "Zoë", "Mateo", "Chloé", "Hugo",
    "Léa", "Louis", "Inès", "Jules", "Amir", "Fatima", "Omar", "Aisha", "Yusuf", "Leila", "Ahmed",
    "Nour", "Kenji", "Yuki", "Hiro", "Mei", "Wei", "Li", "Priya", "Arjun", "Anika", "Ravi", "Olga",
    "Ivan", "Nadia", "Pavel", "Greta", "Lars",
];
const LAST: [&str; 60] = [
    "Lopez",
    "Garcia",
    "Martinez",
    "Rodriguez",
    "Fernandez",
    "Gonzalez",
    "Sanchez",
    "Perez",
    "Gomez",
    "Diaz",
    "Moreno",
    "Muñoz",
    "Alvarez",
    "Romero",
    "Navarro",
    "Torres",
    "Ruiz",
    "Castro",
    "Ortega",
    "Delgado",
    "Smith",
    "Johnson",
    "Brown",
    "Taylor",
    "Wilson",
    "Evans",
    "Thomas",
    "Walker",
    "White",
    "Harris",
    "Martin",
    "Bernard",
    "Dubois",
    "Durand",
    "Lefèvre",
    "Moreau",
    "Laurent",
    "Simon",
    "Michel",
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Hoffmann",
    "Khan",
    "Ali",
    "Hassan",
    "Tanaka",
    "Sato",
    "Suzuki",
    "Chen",
    "Wang",
    "Sharma",
    "Patel",
    "Ivanova",
    "Novak",
];
const PRODUCTS: [&str; 12] = [
    "blue jacket",
    "running shoes",
    "coffee grinder",
    "phone case",
    "desk lamp",
    "yoga mat",
    "backpack",
    "wireless earbuds",
    "water bottle",
    "wool scarf",
    "travel mug",
    "gift card",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

struct Chat {
    phone: String,
    first: &'static str,
    last: &'static str,
}

/// What the loader made, for the workloads.
struct Corpus {
    chats: usize,
    /// The busiest chat (the conversation page workload).
    busy_phone: String,
    /// A customer's full name, lower case: the two-word search.
    search: String,
    load_secs: f64,
    db_bytes: u64,
}

fn incoming_text(rng: &mut Rng, chat: &Chat) -> String {
    let order = 10_000 + rng.below(90_000);
    let product = rng.pick(&PRODUCTS);
    let name = format!("{} {}", chat.first, chat.last);
    match rng.below(20) {
        0 => format!("Hi, this is {name}. Where is my order #{order}?"),
        1 => format!("Hello! I ordered the {product} last week and it hasn't arrived yet"),
        2 => format!("Can I get a refund for order {order}? The {product} is broken 😞"),
        3 => "ok".to_string(),
        4 => format!("Is there a 20% discount on the {product}?"),
        5 => format!("Mi pedido {order} llegó dañado, ¿qué hago?"),
        6 => format!("Quelle est la date de livraison pour la commande {order} ?"),
        7 => format!("What are your opening hours on {}?", rng.pick(&DAYS)),
        8 => format!("my_username is {}_{order}", chat.first.to_lowercase()),
        9 => format!("{name} here — the {product} works great now, merci!"),
        10 => format!("THANK YOU SO MUCH!!! 🙏 The {product} is perfect"),
        11 => format!(
            "Do you ship to {}? Asking for a friend",
            rng.pick(&["Spain", "Mexico", "Canada", "Japan", "Kenya"])
        ),
        12 => "[Image]".to_string(),
        13 => format!("Please call me back, it's {name}, about order {order}"),
        14 => format!("Can I change the size of the {product}? Order {order}"),
        15 => "Thanks 👍".to_string(),
        16 => format!("Wo ist meine Bestellung {order}? Grüße, {}", chat.first),
        17 => format!("Is the {product} back in stock?"),
        18 => format!("I was charged twice for order {order}, please check"),
        _ => format!("Good morning! Any news about my {product}?"),
    }
}

fn outgoing_text(rng: &mut Rng, chat: &Chat) -> String {
    match rng.below(4) {
        0 => format!(
            "Hi {}, thanks for your message! We are looking into it.",
            chat.first
        ),
        1 => "Your order has shipped; the tracking link is on its way.".to_string(),
        2 => format!("Sorry about that, {}. A refund is on its way.", chat.first),
        _ => "We are open 9:00-18:00, Monday to Saturday.".to_string(),
    }
}

/// Writes `n` messages (80% incoming) over `n / MESSAGES_PER_CHAT` chats and
/// the last 365 days, newest last, in one transaction.
fn load_corpus(db_path: &Path, n: usize) -> Result<Corpus, String> {
    let started = Instant::now();
    let err = |e: db::DbError| format!("loading the corpus: {e}");
    let mut conn = db::connect(db_path).map_err(err)?;
    db::migrate(&conn).map_err(err)?;
    db::tune_for_bulk_load(&conn).map_err(err)?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ n as u64);
    let chat_count = (n / MESSAGES_PER_CHAT).max(10);
    let chats: Vec<Chat> = (0..chat_count)
        .map(|i| Chat {
            phone: if i % 10 == 9 {
                format!("1203630{:011}@g.us", 25_000_000 + i)
            } else {
                format!("1555{:07}@s.whatsapp.net", 1_000_000 + i)
            },
            first: FIRST[i % FIRST.len()],
            last: LAST[(i / FIRST.len() + i) % LAST.len()],
        })
        .collect();
    let end = clock::now_secs() - 60;
    let span = 365 * 86_400;
    let start = end - span;
    let tx = conn.transaction().map_err(err)?;
    let mut created_at = start;
    for i in 0..n {
        // A tenth of the chats carry half the traffic; chat 0 is the busiest.
        let c = if rng.chance(50) {
            rng.below(chat_count.div_ceil(10))
        } else {
            rng.below(chat_count)
        };
        let chat = &chats[c];
        // Arrival order is time order; some messages share a second.
        if !rng.chance(5) {
            created_at = (start + (i as i64 * span) / n as i64).max(created_at);
        }
        let incoming = rng.chance(80);
        let text = if incoming {
            incoming_text(&mut rng, chat)
        } else {
            outgoing_text(&mut rng, chat)
        };
        let recent = i + n / 30 >= n;
        let status = if !incoming {
            ReplyStatus::Sent
        } else {
            match rng.below(100) {
                x if x < (if recent { 70 } else { 4 }) => ReplyStatus::Unread,
                x if x < 45 => ReplyStatus::Read,
                x if x < 85 => ReplyStatus::Replied,
                _ => ReplyStatus::Ignored,
            }
        };
        let id = format!("{:016x}-{:016x}", rng.next_u64(), i);
        let wa_id = format!("3EB0{:016X}", rng.next_u64());
        let push_name = format!("{} {}", chat.first, chat.last);
        let group = chat.phone.ends_with("@g.us");
        let sender = if group {
            format!("1555{:07}@s.whatsapp.net", 5_000_000 + rng.below(50))
        } else {
            chat.phone.clone()
        };
        db::insert_message_row(
            &tx,
            &db::NewMessage {
                id: &id,
                wa_id: Some(&wa_id),
                direction: if incoming {
                    Direction::Incoming
                } else {
                    Direction::Outgoing
                },
                phone: &chat.phone,
                sender_jid: if incoming { &sender } else { "" },
                push_name: incoming.then_some(push_name.as_str()),
                message: &text,
                reply_status: status,
                delivery_status: (!incoming).then_some(DeliveryStatus::Delivered),
                media_type: (text == "[Image]").then_some("image"),
                in_reply_to: None,
                created_at,
            },
        )
        .map_err(err)?;
    }
    tx.commit().map_err(err)?;
    db::optimize_search_index(&conn).map_err(err)?;
    drop(conn);
    let search_chat = &chats[chat_count / 2 + 1];
    Ok(Corpus {
        chats: chat_count,
        busy_phone: chats[0].phone.clone(),
        search: format!("{} {}", search_chat.first, search_chat.last).to_lowercase(),
        load_secs: started.elapsed().as_secs_f64(),
        db_bytes: dir_bytes(db_path.parent().unwrap_or(Path::new("."))),
    })
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

// ───────────────────────────── the server process ─────────────────────────────

struct ServerProcess {
    child: Child,
    port: u16,
    start_to_healthy: Duration,
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

fn start_server(o: &Options, dir: &Path) -> Result<ServerProcess, String> {
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

fn stop_server(mut server: ServerProcess) {
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
fn rss_kib(pid: u32) -> u64 {
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
fn with_rss_peak<T>(pid: u32, work: impl FnOnce() -> T) -> (T, u64) {
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

// ───────────────────────────── wrk ─────────────────────────────

#[derive(Debug, Clone, Default)]
struct WrkResult {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    errors: u64,
}

fn parse_duration_ms(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, factor) = if let Some(v) = s.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = s.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix("m") {
        (v, 60_000.0)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1000.0)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|n| n * factor)
}

fn parse_wrk(out: &str) -> Result<WrkResult, String> {
    let mut r = WrkResult::default();
    for line in out.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("50%"), Some(v)) => r.p50_ms = parse_duration_ms(v).unwrap_or(f64::NAN),
            (Some("99%"), Some(v)) => r.p99_ms = parse_duration_ms(v).unwrap_or(f64::NAN),
            (Some("Requests/sec:"), Some(v)) => r.rps = v.parse().unwrap_or(0.0),
            (Some(n), Some("requests")) => r.requests = n.parse().unwrap_or(0),
            _ => {}
        }
        if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            r.errors += rest.trim().parse::<u64>().unwrap_or(0);
        }
        if let Some(rest) = line.strip_prefix("Socket errors:") {
            r.errors += rest
                .split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    if r.rps == 0.0 || r.errors > 0 {
        return Err(format!(
            "wrk reported failures or could not be read:\n{out}"
        ));
    }
    Ok(r)
}

fn wrk(o: &Options, url: &str, script: Option<&Path>, secs: u32) -> Result<WrkResult, String> {
    let mut cmd = Command::new("wrk");
    cmd.arg(format!("-t{WRK_THREADS}"))
        .arg(format!("-c{}", o.connections))
        .arg(format!("-d{secs}s"))
        .arg("--latency")
        .arg("--timeout")
        .arg("10s")
        .arg("-H")
        .arg(format!("X-API-Key: {KEY}"));
    if let Some(s) = script {
        cmd.arg("-s").arg(s);
    }
    let out = cmd.arg(url).output().map_err(|e| format!("wrk: {e}"))?;
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

// ───────────────────────────── webhook receiver ─────────────────────────────

/// Counts `message.received` deliveries and the lag from the payload's
/// timestamp (written when the message was committed) to its arrival here.
struct Receiver {
    url: String,
    count: Arc<AtomicU64>,
    lags_ms: Arc<Mutex<Vec<i64>>>,
    last: Arc<Mutex<Option<Instant>>>,
}

fn start_receiver() -> Result<Receiver, String> {
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
fn parse_iso_millis(s: &str) -> Option<i64> {
    let secs = clock::parse_datetime(s.get(0..19)?)?;
    let millis: i64 = s.get(20..23)?.parse().ok()?;
    Some(secs * 1000 + millis)
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

// ───────────────────────────── the workloads ─────────────────────────────

struct Row {
    name: String,
    result: WrkResult,
    rss_kib: u64,
    /// CPU time (user + system) per request, microseconds: of the server, and
    /// of wrk. Unlike requests/s, these hardly depend on what else the
    /// machine is doing.
    server_cpu_us: f64,
    wrk_cpu_us: f64,
    note: String,
}

/// Linux's USER_HZ: /proc reports CPU times in 1/100 s.
const TICKS_PER_SEC: f64 = 100.0;

/// user + system clock ticks from a /proc stat file: fields `a` and `a + 1`
/// (1-based, as in proc(5)).
fn stat_ticks(path: &str, a: usize) -> u64 {
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0;
    };
    // The command name may hold spaces; fields after it start at 3.
    let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let get = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(a) + get(a + 1)
}

/// CPU ticks so far: the server's own, and this process's waited-for children (wrk).
fn cpu_now(pid: u32) -> (u64, u64) {
    (
        stat_ticks(&format!("/proc/{pid}/stat"), 14),
        stat_ticks("/proc/self/stat", 16),
    )
}

fn cpu_per_unit(before: (u64, u64), after: (u64, u64), units: u64) -> (f64, f64) {
    let per = |ticks: u64| ticks as f64 / TICKS_PER_SEC * 1e6 / units.max(1) as f64;
    (per(after.0 - before.0), per(after.1 - before.1))
}

struct SizeReport {
    messages: usize,
    rows: Vec<Row>,
}

fn api_get(agent: &ureq::Agent, url: &str) -> Result<serde_json::Value, String> {
    let mut resp = agent
        .get(url)
        .header("X-API-Key", KEY)
        .call()
        .map_err(|e| format!("GET {url}: {e}"))?;
    if resp.status() != 200 {
        return Err(format!("GET {url}: status {}", resp.status()));
    }
    let text = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("GET {url}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("GET {url}: {e}"))
}

fn load_line() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn mib(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 / 1024.0)
}

fn bench_size(o: &Options, n: usize) -> Result<SizeReport, String> {
    let dir = o.data.join(format!("bench-{n}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    eprintln!("bench: loading {n} messages into {} …", dir.display());
    let corpus = load_corpus(&dir.join("whatsapp-api.db"), n)?;
    eprintln!(
        "bench: loaded in {:.1} s ({} chats, {:.0} MB on disk); starting the server",
        corpus.load_secs,
        corpus.chats,
        corpus.db_bytes as f64 / 1e6
    );
    let load_before = load_line();
    let server = start_server(o, &dir)?;
    let result = run_workloads(o, n, &corpus, &server, &dir);
    let pid = server.child.id();
    let _ = pid;
    stop_server(server);
    let load_after = load_line();
    let (report, idle_kib, healthy) = result?;
    if !o.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let binary = std::fs::metadata(&o.server).map(|m| m.len()).unwrap_or(0);
    println!();
    println!(
        "whatsapp-api bench: {n} messages over {} chats ({:.0} MB on disk), {} connections, {} s per workload, wrk -t{WRK_THREADS}",
        corpus.chats,
        corpus.db_bytes as f64 / 1e6,
        o.connections,
        o.duration
    );
    println!(
        "machine: {} CPUs; load average before {load_before}, after {load_after}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!();
    println!("| workload | requests/s | p50 | p99 | server RSS | server CPU/req | wrk CPU/req |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for row in &report.rows {
        println!(
            "| {} | {:.0} | {:.2} ms | {:.2} ms | {} | {:.0} µs | {:.0} µs |",
            row.name,
            row.result.rps,
            row.result.p50_ms,
            row.result.p99_ms,
            mib(row.rss_kib),
            row.server_cpu_us,
            row.wrk_cpu_us
        );
    }
    println!("| idle (after start) | | | | {} | | |", mib(idle_kib));
    println!();
    println!(
        "start to healthy: {:.1} ms; release binary: {:.2} MB; corpus load: {:.1} s",
        healthy.as_secs_f64() * 1000.0,
        binary as f64 / 1e6,
        corpus.load_secs
    );
    for row in report.rows.iter().filter(|r| !r.note.is_empty()) {
        println!("{}: {}", row.name, row.note);
    }
    Ok(report)
}

type WorkloadsOut = (SizeReport, u64, Duration);

fn run_workloads(
    o: &Options,
    n: usize,
    corpus: &Corpus,
    server: &ServerProcess,
    dir: &Path,
) -> Result<WorkloadsOut, String> {
    let pid = server.child.id();
    let base = format!("http://127.0.0.1:{}", server.port);
    // Let the threads settle, then read the idle footprint.
    std::thread::sleep(Duration::from_millis(500));
    let idle = rss_kib(pid);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let search_q = whatsapp_api::http::percent_encode(&corpus.search);
    let matches = api_get(
        &agent,
        &format!("{base}/api/v1/inbox/all?limit=1&search={search_q}"),
    )?["pagination"]["total"]
        .as_i64()
        .unwrap_or(0);
    let unread = api_get(&agent, &format!("{base}/api/v1/inbox?limit=1"))?["pagination"]["total"]
        .as_i64()
        .unwrap_or(0);
    let workloads = [
        (
            "GET /api/v1/inbox/all?limit=50".to_string(),
            "/api/v1/inbox/all?limit=50".to_string(),
            String::new(),
        ),
        (
            "GET /api/v1/inbox?limit=50 (unread)".to_string(),
            "/api/v1/inbox?limit=50".to_string(),
            format!("{unread} unread messages"),
        ),
        (
            format!("GET /api/v1/inbox/all?search={search_q}"),
            format!("/api/v1/inbox/all?limit=50&search={search_q}"),
            format!("{matches} matching messages"),
        ),
        (
            "GET /api/v1/inbox/all?phone=<10 digits of a chat>".to_string(),
            format!(
                "/api/v1/inbox/all?limit=50&phone={}",
                &corpus.busy_phone[1..11]
            ),
            String::new(),
        ),
        (
            "GET /api/v1/conversations/:phone/messages?limit=50".to_string(),
            format!(
                "/api/v1/conversations/{}/messages?limit=50",
                corpus.busy_phone
            ),
            String::new(),
        ),
        (
            "GET /api/v1/health".to_string(),
            "/api/v1/health".to_string(),
            String::new(),
        ),
    ];
    let mut rows = Vec::new();
    for (name, path, note) in workloads {
        let url = format!("{base}{path}");
        api_get(&agent, &url)?;
        eprintln!("bench: {n}: {name}");
        wrk(o, &url, None, 1)?; // warm-up, not reported
        let cpu_before = cpu_now(pid);
        let (result, rss) = with_rss_peak(pid, || wrk(o, &url, None, o.duration));
        let result = result?;
        let (server_cpu_us, wrk_cpu_us) = cpu_per_unit(cpu_before, cpu_now(pid), result.requests);
        if result.errors > 0 {
            return Err(format!("{name}: {} failed requests", result.errors));
        }
        rows.push(Row {
            name,
            result,
            rss_kib: rss,
            server_cpu_us,
            wrk_cpu_us,
            note,
        });
    }
    eprintln!("bench: {n}: ingest with webhook delivery");
    rows.push(ingest(o, &agent, &base, pid, dir)?);
    Ok((
        SizeReport { messages: n, rows },
        idle,
        server.start_to_healthy,
    ))
}

fn ingest(
    o: &Options,
    agent: &ureq::Agent,
    base: &str,
    pid: u32,
    dir: &Path,
) -> Result<Row, String> {
    let receiver = start_receiver()?;
    let mut resp = agent
        .post(&format!("{base}/api/v1/webhooks"))
        .header("X-API-Key", KEY)
        .header("Content-Type", "application/json")
        .send(
            serde_json::json!({ "url": receiver.url, "events": ["message.received"] }).to_string(),
        )
        .map_err(|e| format!("creating the webhook: {e}"))?;
    if resp.status() != 201 {
        return Err(format!(
            "creating the webhook: status {} {}",
            resp.status(),
            resp.body_mut().read_to_string().unwrap_or_default()
        ));
    }
    let script = dir.join("ingest.lua");
    std::fs::write(
        &script,
        format!(
            r#"counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{{"from":"1555%07d@s.whatsapp.net","push_name":"Bench %d","text":"Bench message %d: where is my order?"}}', math.random(1000000, 1002999), counter, counter)
  return wrk.format("POST", "/api/v1/simulator/messages", {{["Content-Type"] = "application/json", ["X-API-Key"] = "{KEY}"}}, body)
end
"#
        ),
    )
    .map_err(|e| e.to_string())?;
    let total = |agent: &ureq::Agent| -> Result<i64, String> {
        Ok(
            api_get(agent, &format!("{base}/api/v1/inbox/all?limit=1"))?["pagination"]["total"]
                .as_i64()
                .unwrap_or(0),
        )
    };
    let before = total(agent)?;
    let cpu_before = cpu_now(pid);
    let started = Instant::now();
    let (result, rss) = with_rss_peak(pid, || -> Result<(WrkResult, Duration), String> {
        let r = wrk(
            o,
            &format!("{base}/api/v1/simulator/messages"),
            Some(&script),
            o.duration,
        )?;
        let load_ended = started.elapsed();
        // Wait (still sampling RSS) until every stored message was delivered.
        let stored = total(agent)? - before;
        let deadline = Instant::now() + Duration::from_secs(120);
        while (receiver.count.load(Ordering::SeqCst) as i64) < stored {
            if Instant::now() > deadline {
                return Err(format!(
                    "only {} of {stored} webhooks arrived",
                    receiver.count.load(Ordering::SeqCst)
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok((r, load_ended))
    });
    let (mut result, load_ended) = result?;
    let stored = total(agent)? - before;
    let (server_cpu_us, wrk_cpu_us) = cpu_per_unit(cpu_before, cpu_now(pid), stored.max(1) as u64);
    let delivered = receiver.count.load(Ordering::SeqCst);
    let last = receiver
        .last
        .lock()
        .unwrap()
        .map(|t| t.duration_since(started))
        .unwrap_or(load_ended);
    let mut lags = receiver.lags_ms.lock().unwrap().clone();
    lags.sort_unstable();
    let accepted_rps = result.rps;
    // The headline rate counts a message only once it is stored AND delivered.
    result.rps = delivered as f64 / last.as_secs_f64().max(0.001);
    Ok(Row {
        name: "POST /api/v1/simulator/messages + webhook delivered (msg/s)".into(),
        result,
        rss_kib: rss,
        server_cpu_us,
        wrk_cpu_us,
        note: format!(
            "{stored} stored, {delivered} delivered; accepted {accepted_rps:.0}/s; webhook lag (commit to receiver) p50 {} ms, p99 {} ms; last delivery {} ms after the load ended",
            percentile(&lags, 0.5),
            percentile(&lags, 0.99),
            last.saturating_sub(load_ended).as_millis()
        ),
    })
}

fn print_scale(reports: &[SizeReport]) {
    println!();
    println!("p50 (and requests/s) by corpus size");
    println!();
    let header: Vec<String> = reports
        .iter()
        .map(|r| format!("{} messages", r.messages))
        .collect();
    println!("| workload | {} | 1M / 100k |", header.join(" | "));
    println!("|---|{}---:|", "---:|".repeat(reports.len()));
    let Some(first) = reports.first() else { return };
    for (i, row) in first.rows.iter().enumerate() {
        let cells: Vec<String> = reports
            .iter()
            .map(|r| {
                r.rows
                    .get(i)
                    .map(|x| format!("{:.2} ms ({:.0}/s)", x.result.p50_ms, x.result.rps))
                    .unwrap_or_default()
            })
            .collect();
        let at = |m: usize| {
            reports
                .iter()
                .find(|r| r.messages == m)
                .and_then(|r| r.rows.get(i))
        };
        let ratio = match (at(100_000), at(1_000_000)) {
            (Some(a), Some(b)) if a.result.rps > 0.0 => format!(
                "p50 ×{:.2}, req/s ×{:.2}",
                b.result.p50_ms / a.result.p50_ms,
                b.result.rps / a.result.rps
            ),
            _ => String::new(),
        };
        // The searched name differs by corpus; the row is the same workload.
        let name = match row.name.split_once("search=") {
            Some((head, _)) => format!("{head}search=<first last>"),
            None => row.name.clone(),
        };
        println!("| {name} | {} | {ratio} |", cells.join(" | "));
    }
}
