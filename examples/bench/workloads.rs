//! The workloads: each a `wrk` run against one route, with the CPU time per
//! request of the server and of wrk; the ingest workload ends when every
//! stored message was delivered to the receiver.

use crate::corpus::Corpus;
use crate::receiver::{percentile, start_receiver};
use crate::report::{Row, SizeReport};
use crate::server::{ServerProcess, rss_kib, with_rss_peak};
use crate::wrk::{WrkResult, wrk};
use crate::{KEY, Options};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

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
pub fn cpu_now(pid: u32) -> (u64, u64) {
    (
        stat_ticks(&format!("/proc/{pid}/stat"), 14),
        stat_ticks("/proc/self/stat", 16),
    )
}

pub fn cpu_per_unit(before: (u64, u64), after: (u64, u64), units: u64) -> (f64, f64) {
    let per = |ticks: u64| ticks as f64 / TICKS_PER_SEC * 1e6 / units.max(1) as f64;
    (per(after.0 - before.0), per(after.1 - before.1))
}

pub fn api_get(agent: &ureq::Agent, url: &str) -> Result<serde_json::Value, String> {
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

type WorkloadsOut = (SizeReport, u64, Duration);

pub fn run_workloads(
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
    let search_q = whatsapp_api::web::percent_encode(&corpus.search);
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
        eprintln!("bench: {n}: {name}");
        rows.push(measure(o, &agent, pid, &base, dir, name, &[path], note)?);
    }
    eprintln!("bench: {n}: file replies (1 MB image, multipart)");
    rows.push(file_replies(o, &agent, &base, pid, dir)?);
    eprintln!("bench: {n}: ingest with webhook delivery");
    rows.push(ingest(o, &agent, &base, pid, dir)?);
    eprintln!("bench: {n}: event streams");
    rows.push(crate::streams::event_streams(o, server.port, pid)?);
    Ok((
        SizeReport { messages: n, rows },
        idle,
        server.start_to_healthy,
    ))
}

/// One wrk workload: a warm-up second, then `o.duration` seconds sampling
/// the server's RSS and CPU. Several paths are requested in turn (a Lua
/// script; each wrk thread cycles through them, so no connection asks the
/// same thing twice in a row).
#[allow(clippy::too_many_arguments)]
pub fn measure(
    o: &Options,
    agent: &ureq::Agent,
    pid: u32,
    base: &str,
    dir: &Path,
    name: String,
    paths: &[String],
    note: String,
) -> Result<Row, String> {
    for path in paths {
        api_get(agent, &format!("{base}{path}"))?;
    }
    let url = format!("{base}{}", paths[0]);
    let script = if paths.len() > 1 {
        let file = dir.join("paths.lua");
        let list: Vec<String> = paths.iter().map(|p| format!("  {p:?},")).collect();
        std::fs::write(
            &file,
            format!(
                "paths = {{\n{}\n}}\ni = 0\nrequest = function()\n  i = i % #paths + 1\n  return wrk.format(nil, paths[i])\nend\n",
                list.join("\n")
            ),
        )
        .map_err(|e| e.to_string())?;
        Some(file)
    } else {
        None
    };
    wrk(o, &url, script.as_deref(), 1)?; // warm-up, not reported
    let cpu_before = cpu_now(pid);
    let (result, rss) = with_rss_peak(pid, || wrk(o, &url, script.as_deref(), o.duration));
    let result = result?;
    let (server_cpu_us, wrk_cpu_us) = cpu_per_unit(cpu_before, cpu_now(pid), result.requests);
    if result.errors > 0 {
        return Err(format!("{name}: {} failed requests", result.errors));
    }
    Ok(Row {
        name,
        result,
        rss_kib: rss,
        server_cpu_us,
        wrk_cpu_us,
        note,
    })
}

/// Size of the image each file reply carries.
const FILE_REPLY_BYTES: usize = 1_000_000;

/// File replies: each request a `multipart/form-data` reply with a 1 MB
/// JPEG (random bytes: nothing compresses) and a caption, to one incoming
/// message. Each is spooled to disk by its connection, copied into
/// `media/` while hashed, stored and sent through the simulator. The
/// bodies are read from a file by wrk's Lua script.
fn file_replies(
    o: &Options,
    agent: &ureq::Agent,
    base: &str,
    pid: u32,
    dir: &Path,
) -> Result<Row, String> {
    let newest = api_get(agent, &format!("{base}/api/v1/inbox/all?limit=1"))?;
    let id = newest["messages"][0]["id"]
        .as_str()
        .ok_or("no message to reply to")?
        .to_string();
    let boundary = "bench-file-reply-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\nYour photo\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"photo.jpg\"\r\n\
         Content-Type: image/jpeg\r\n\r\n"
    )
    .into_bytes();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    body.extend((0..FILE_REPLY_BYTES).map(|_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 32) as u8
    }));
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let body_file = dir.join("file-reply.body");
    std::fs::write(&body_file, &body).map_err(|e| e.to_string())?;
    let script = dir.join("file-reply.lua");
    std::fs::write(
        &script,
        format!(
            r#"local f = assert(io.open({body_file:?}, "rb"))
local body = f:read("*a")
f:close()
request = function()
  return wrk.format("POST", "/api/v1/messages/{id}/reply", {{["Content-Type"] = "multipart/form-data; boundary={boundary}", ["X-API-Key"] = "{KEY}"}}, body)
end
"#
        ),
    )
    .map_err(|e| e.to_string())?;
    let url = format!("{base}/api/v1/messages/{id}/reply");
    wrk(o, &url, Some(&script), 1)?; // warm-up, not reported
    let cpu_before = cpu_now(pid);
    let (result, rss) = with_rss_peak(pid, || wrk(o, &url, Some(&script), o.duration));
    let result = result?;
    let (server_cpu_us, wrk_cpu_us) = cpu_per_unit(cpu_before, cpu_now(pid), result.requests);
    // Every reply stored its own copy: free the disk for what follows.
    let media = dir.join("media");
    if let Ok(entries) = std::fs::read_dir(&media) {
        for entry in entries.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let _ = std::fs::remove_file(&body_file);
    Ok(Row {
        name: "POST /api/v1/messages/:id/reply, 1 MB image (multipart)".into(),
        result,
        rss_kib: rss,
        server_cpu_us,
        wrk_cpu_us,
        note: format!(
            "{FILE_REPLY_BYTES}-byte JPEG and a caption per reply, spooled, copied into media/ with its SHA-256 and synced, sent through the simulator"
        ),
    })
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
