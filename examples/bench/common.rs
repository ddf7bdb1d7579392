//! The common-terms corpus: every message is 3 to 19 of fifteen everyday
//! words, half the messages in 500 busy chats, half from numbers seen once;
//! its single-client timings and its workloads (searches that match a
//! twentieth of the inbox, whole numbers and prefixes as the phone filter).

use crate::corpus::{dir_bytes, incoming_status};
use crate::report::{SizeReport, load_line, print_rows};
use crate::server::{ServerProcess, rss_kib, start_server, stop_server};
use crate::workloads::{api_get, measure};
use crate::{Options, WRK_THREADS};
use std::path::Path;
use std::time::{Duration, Instant};
use whatsapp_api::rng::Rng;
use whatsapp_api::status::{DeliveryStatus, Direction, ReplyStatus};
use whatsapp_api::{clock, db};

/// Every message of the common corpus is 3 to 19 of these words, drawn
/// uniformly: a word is in about half the messages, a given two-word
/// phrase in about one in twenty-two.
const EVERYDAY: [&str; 15] = [
    "order", "refund", "status", "delivery", "payment", "please", "thanks", "help", "invoice",
    "address", "tracking", "cancel", "today", "price", "account",
];
/// The twenty two-word searches asked in turn (each about 4.4% of the inbox).
const PAIRS: [&str; 20] = [
    "refund status",
    "order status",
    "delivery address",
    "payment invoice",
    "please help",
    "thanks today",
    "cancel order",
    "tracking status",
    "invoice price",
    "account help",
    "refund please",
    "address today",
    "price order",
    "help cancel",
    "status payment",
    "today delivery",
    "order tracking",
    "thanks account",
    "invoice refund",
    "please cancel",
];
/// Half the messages are in this many chats; the other half each come from
/// a number seen only once.
const BUSY_CHATS: usize = 500;
/// The busy chats' numbers are 9197000000xx…919700000499: this prefix
/// matches a hundred of them, a tenth of all messages.
const BUSY_PREFIX: &str = "9197000001";
/// The once-seen numbers are 447 and nine digits spread evenly: this prefix
/// matches a tenth of them, so about a tenth of all chats.
const TENTH_OF_CHATS: &str = "4470";

fn busy_phone(c: usize) -> String {
    format!("9197{c:08}@s.whatsapp.net")
}

/// The `i`th once-seen number: `i` times a multiplier prime to 10, modulo
/// 10⁹, so no two are the same and their digits look random.
fn unique_phone(i: usize) -> String {
    format!(
        "447{:09}@s.whatsapp.net",
        (i as u64 * 387_420_489 + 12_345) % 1_000_000_000
    )
}

struct CommonCorpus {
    chats: usize,
    load_secs: f64,
    db_bytes: u64,
}

/// Writes `n` messages of the common corpus in one transaction: half in the
/// busy chats (80% incoming, the rest our replies), half incoming from
/// numbers seen once; the last 365 days, arrival order = time order, 5%
/// sharing a second; statuses as in the rare corpus.
fn load_common_corpus(db_path: &Path, n: usize) -> Result<CommonCorpus, String> {
    let started = Instant::now();
    let err = |e: db::DbError| format!("loading the corpus: {e}");
    let mut conn = db::connect(db_path).map_err(err)?;
    db::migrate(&conn).map_err(err)?;
    db::tune_for_bulk_load(&conn).map_err(err)?;
    let mut rng = Rng(0xC0FF_EE00_D15E_A5E5 ^ n as u64);
    let end = clock::now_secs() - 60;
    let span = 365 * 86_400;
    let start = end - span;
    let tx = conn.transaction().map_err(err)?;
    let mut created_at = start;
    let mut unique = 0;
    let mut text = String::new();
    for i in 0..n {
        if !rng.chance(5) {
            created_at = (start + (i as i64 * span) / n as i64).max(created_at);
        }
        let (phone, incoming) = if rng.chance(50) {
            (busy_phone(rng.below(BUSY_CHATS)), rng.chance(80))
        } else {
            unique += 1;
            (unique_phone(unique - 1), true)
        };
        text.clear();
        for w in 0..3 + rng.below(17) {
            let word = rng.pick(&EVERYDAY);
            if w == 0 {
                // Sentence case: the search must fold ASCII case.
                text.push_str(&word[..1].to_uppercase());
                text.push_str(&word[1..]);
            } else {
                text.push(' ');
                text.push_str(word);
            }
        }
        let id = format!("{:016x}-{:016x}", rng.next_u64(), i);
        let wa_id = format!("3EB0{:016X}", rng.next_u64());
        let status = if incoming {
            incoming_status(&mut rng, i, n)
        } else {
            ReplyStatus::Sent
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
                phone: &phone,
                sender_jid: if incoming { &phone } else { "" },
                push_name: None,
                message: &text,
                reply_status: status,
                delivery_status: (!incoming).then_some(DeliveryStatus::Delivered),
                media_type: None,
                in_reply_to: None,
                created_at,
            },
        )
        .map_err(err)?;
    }
    tx.commit().map_err(err)?;
    db::optimize_search_index(&conn).map_err(err)?;
    drop(conn);
    Ok(CommonCorpus {
        chats: BUSY_CHATS.min(n) + unique,
        load_secs: started.elapsed().as_secs_f64(),
        db_bytes: dir_bytes(db_path.parent().unwrap_or(Path::new("."))),
    })
}

/// A common corpus written by an earlier run.
fn existing_common_corpus(db_path: &Path) -> Result<CommonCorpus, String> {
    let err = |e: db::DbError| format!("{}: {e}", db_path.display());
    let conn = db::connect(db_path).map_err(err)?;
    let (_, chats) = db::conversations(&conn, 1, 1).map_err(err)?;
    drop(conn);
    Ok(CommonCorpus {
        chats: usize::try_from(chats).unwrap_or(0),
        load_secs: 0.0,
        db_bytes: dir_bytes(db_path.parent().unwrap_or(Path::new("."))),
    })
}

/// One request from a single client, timed as `curl -w %{time_total}`
/// would (connect, request, whole body), four times over, after one
/// unreported request for the same rows under other filters (a far-future
/// `endDate`) has brought their pages into the caches.
struct Single {
    path: String,
    /// The first time: the server has kept no total for these filters.
    first_ms: f64,
    /// The median of the three after it, which find the total kept.
    median_ms: f64,
    /// The total the server reported.
    total: i64,
}

fn single_client(base: &str, path: &str) -> Result<Single, String> {
    let mut times = Vec::new();
    let mut total = 0;
    // A fresh agent for each request: a new connection each time, as curl
    // makes.
    let agent = || -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into()
    };
    api_get(&agent(), &format!("{base}{path}&endDate=2099-12-31"))?;
    for _ in 0..4 {
        let started = Instant::now();
        let v = api_get(&agent(), &format!("{base}{path}"))?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        total = v["pagination"]["total"].as_i64().unwrap_or(-1);
    }
    let first_ms = times.remove(0);
    times.sort_by(f64::total_cmp);
    Ok(Single {
        path: path.to_string(),
        first_ms,
        median_ms: times[1],
        total,
    })
}

pub struct CommonReport {
    pub wrk: SizeReport,
    single: Vec<Single>,
}

/// The single-client requests: the common searches and phone filters.
fn single_client_paths() -> Vec<String> {
    let q = whatsapp_api::web::percent_encode;
    vec![
        format!("/api/v1/inbox/all?search={}", q("refund status")),
        format!("/api/v1/inbox?search={}", q("refund status")),
        "/api/v1/inbox/all?search=refund".to_string(),
        format!("/api/v1/inbox/all?phone={BUSY_PREFIX}"),
        format!("/api/v1/inbox/all?phone={TENTH_OF_CHATS}"),
        format!("/api/v1/inbox/all?phone={}", &busy_phone(123)[..12]),
        "/api/v1/inbox/all?limit=50".to_string(),
        "/api/v1/inbox?limit=50".to_string(),
    ]
}

pub fn bench_common_size(o: &Options, n: usize) -> Result<CommonReport, String> {
    let dir = o.data.join(format!("bench-common-{n}"));
    let db_path = dir.join("whatsapp-api.db");
    // The common corpus takes no writes, so one kept by an earlier run
    // (`--keep`) is used again as it is.
    let corpus = if o.keep && db_path.exists() {
        eprintln!("bench: reusing the corpus in {}", dir.display());
        existing_common_corpus(&db_path)?
    } else {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        eprintln!(
            "bench: loading {n} messages of everyday words into {} …",
            dir.display()
        );
        load_common_corpus(&db_path, n)?
    };
    eprintln!(
        "bench: loaded in {:.1} s ({} chats, {:.0} MB on disk); starting the server",
        corpus.load_secs,
        corpus.chats,
        corpus.db_bytes as f64 / 1e6
    );
    let load_before = load_line();
    let server = start_server(o, &dir)?;
    let result = run_common_workloads(o, n, &server, &dir);
    stop_server(server);
    let load_after = load_line();
    let (report, idle_kib) = result?;
    if !o.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!();
    println!(
        "whatsapp-api bench, common terms: {n} messages over {} chats ({:.0} MB on disk), {} connections, {} s per workload, wrk -t{WRK_THREADS}",
        corpus.chats,
        corpus.db_bytes as f64 / 1e6,
        o.connections,
        o.duration
    );
    println!(
        "machine: load average before {load_before}, after {load_after}; corpus load {:.1} s",
        corpus.load_secs
    );
    println!();
    print_rows(&report.wrk.rows, idle_kib);
    for row in report.wrk.rows.iter().filter(|r| !r.note.is_empty()) {
        println!("{}: {}", row.name, row.note);
    }
    println!();
    println!(
        "single client, {n} messages: the first request (no total kept yet), then the median of 3 more:"
    );
    println!();
    println!("| request | first | median after | total |");
    println!("|---|---:|---:|---:|");
    for r in &report.single {
        println!(
            "| `{}` | {:.1} ms | {:.1} ms | {} |",
            r.path, r.first_ms, r.median_ms, r.total
        );
    }
    Ok(report)
}

fn run_common_workloads(
    o: &Options,
    n: usize,
    server: &ServerProcess,
    dir: &Path,
) -> Result<(CommonReport, u64), String> {
    let pid = server.child.id();
    let base = format!("http://127.0.0.1:{}", server.port);
    std::thread::sleep(Duration::from_millis(500));
    let idle = rss_kib(pid);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    // Single requests first, on the quiet server.
    let mut single = Vec::new();
    for path in single_client_paths() {
        eprintln!("bench: {n}: single client {path}");
        single.push(single_client(&base, &path)?);
    }
    let q = whatsapp_api::web::percent_encode;
    let pairs = |prefix: &str| -> Vec<String> {
        PAIRS
            .iter()
            .map(|p| format!("{prefix}limit=50&search={}", q(p)))
            .collect()
    };
    let numbers: Vec<String> = (0..20)
        .map(|k| {
            format!(
                "/api/v1/inbox/all?limit=50&phone={}",
                &busy_phone(k * 23 + 7)[..12]
            )
        })
        .collect();
    let workloads: Vec<(String, Vec<String>)> = vec![
        (
            "GET /api/v1/inbox/all?limit=50".into(),
            vec!["/api/v1/inbox/all?limit=50".into()],
        ),
        (
            "GET /api/v1/inbox?limit=50 (unread)".into(),
            vec!["/api/v1/inbox?limit=50".into()],
        ),
        (
            "GET /api/v1/inbox/all?search=<20 common pairs in turn>".into(),
            pairs("/api/v1/inbox/all?"),
        ),
        (
            "GET /api/v1/inbox?search=<20 common pairs in turn> (unread)".into(),
            pairs("/api/v1/inbox?"),
        ),
        (
            "GET /api/v1/inbox/all?phone=<20 whole numbers in turn>".into(),
            numbers,
        ),
        (
            format!("GET /api/v1/inbox/all?phone={BUSY_PREFIX} (a tenth of the messages)"),
            vec![format!("/api/v1/inbox/all?limit=50&phone={BUSY_PREFIX}")],
        ),
        (
            format!("GET /api/v1/inbox/all?phone={TENTH_OF_CHATS} (a tenth of the chats)"),
            vec![format!("/api/v1/inbox/all?limit=50&phone={TENTH_OF_CHATS}")],
        ),
    ];
    let mut rows = Vec::new();
    for (name, paths) in workloads {
        eprintln!("bench: {n}: {name}");
        rows.push(measure(
            o,
            &agent,
            pid,
            &base,
            dir,
            name,
            &paths,
            String::new(),
        )?);
    }
    Ok((
        CommonReport {
            wrk: SizeReport { messages: n, rows },
            single,
        },
        idle,
    ))
}

/// The single-client medians side by side for each corpus size.
pub fn print_single_scale(reports: &[CommonReport]) {
    println!();
    println!(
        "single client, common terms, by corpus size: the first request / the median of 3 after it (total)"
    );
    println!();
    let header: Vec<String> = reports
        .iter()
        .map(|r| format!("{} messages", r.wrk.messages))
        .collect();
    println!("| request | {} |", header.join(" | "));
    println!("|---|{}", "---:|".repeat(reports.len()));
    let Some(first) = reports.first() else { return };
    for (i, one) in first.single.iter().enumerate() {
        let cells: Vec<String> = reports
            .iter()
            .map(|r| {
                r.single
                    .get(i)
                    .map(|s| format!("{:.1} / {:.1} ms ({})", s.first_ms, s.median_ms, s.total))
                    .unwrap_or_default()
            })
            .collect();
        println!("| `{}` | {} |", one.path, cells.join(" | "));
    }
}
