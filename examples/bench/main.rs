//! `make bench` / `make bench-scale`: the performance benchmark. Fills a fresh
//! data dir with a synthetic corpus (through `whatsapp_api::db`, one
//! transaction), starts the release server with the simulator and the rate
//! limit off, drives it with `wrk` (a separate process, 16 connections),
//! measures the server's RSS from `/proc`, receives the `message.received`
//! webhooks on a local receiver, prints one table and cleans up.
//!
//! Two corpora, each in a fresh data dir: `rare` (customer messages from
//! templates: a searched name is in a few dozen messages) and `common`
//! (every message is 3 to 19 of fifteen everyday words, so a searched word
//! is in half the messages; half the messages in 500 busy chats, half from
//! numbers seen once). For the common corpus the bench also times single
//! requests (one client, the median of three).
//!
//! Flags: `--messages N` (100000), `--scale` (10k, 100k and 1M in turn),
//! `--corpus rare|common|both` (both), `--duration SECS` (5 per workload),
//! `--connections N` (16), `--server PATH` (target/release/whatsapp-api),
//! `--data DIR` (bench-data), `--keep` (leave the data dir; a common-terms
//! corpus left there is used again).
//!
//! `corpus` loads the data, `server` starts and measures the server, `wrk`
//! and `workloads` drive it, `receiver` takes its webhooks, `streams` reads
//! the event stream, `report` prints; `common` is the common-terms corpus
//! with its own workloads.

mod common;
mod corpus;
mod receiver;
mod report;
mod server;
mod streams;
mod workloads;
mod wrk;

use common::{bench_common_size, print_single_scale};
use corpus::load_corpus;
use report::{SizeReport, load_line, print_rows, print_scale};
use server::{start_server, stop_server};
use std::path::PathBuf;
use std::process::Command;
use workloads::run_workloads;

const KEY: &str = "bench-api-key-0123456789abcdef0123456789";
/// wrk threads: one per core of the reference machine.
const WRK_THREADS: u32 = 2;

struct Options {
    sizes: Vec<usize>,
    scale: bool,
    duration: u32,
    connections: u32,
    server: PathBuf,
    data: PathBuf,
    keep: bool,
    rare: bool,
    common: bool,
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
        rare: true,
        common: true,
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
            "--corpus" => match value()?.as_str() {
                "rare" => (o.rare, o.common) = (true, false),
                "common" => (o.rare, o.common) = (false, true),
                "both" => (o.rare, o.common) = (true, true),
                v => return Err(format!("bad --corpus {v} (rare, common or both)")),
            },
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
    let mut common = Vec::new();
    for &n in &o.sizes {
        if o.rare {
            reports.push(bench_size(&o, n)?);
        }
        if o.common {
            common.push(bench_common_size(&o, n)?);
        }
    }
    if o.scale {
        if o.rare {
            print_scale("rare terms", &reports);
        }
        if o.common {
            let rows: Vec<SizeReport> = common.iter().map(|c| c.wrk.clone()).collect();
            print_scale("common terms", &rows);
            print_single_scale(&common);
        }
    }
    Ok(())
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
    print_rows(&report.rows, idle_kib);
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
