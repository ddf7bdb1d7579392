//! The rows of the table, and the table across corpus sizes.

use crate::wrk::WrkResult;

#[derive(Clone)]
pub struct Row {
    pub name: String,
    pub result: WrkResult,
    pub rss_kib: u64,
    /// CPU time (user + system) per request, microseconds: of the server, and
    /// of wrk. Unlike requests/s, these hardly depend on what else the
    /// machine is doing.
    pub server_cpu_us: f64,
    pub wrk_cpu_us: f64,
    pub note: String,
}

#[derive(Clone)]
pub struct SizeReport {
    pub messages: usize,
    pub rows: Vec<Row>,
}

pub fn load_line() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 / 1024.0)
}

/// The wrk table: one row per workload, and the idle footprint.
pub fn print_rows(rows: &[Row], idle_kib: u64) {
    println!("| workload | requests/s | p50 | p99 | server RSS | server CPU/req | wrk CPU/req |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for row in rows {
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
}

pub fn print_scale(corpus: &str, reports: &[SizeReport]) {
    println!();
    println!("p50 (and requests/s) by corpus size, {corpus}");
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
