//! `GET /metrics`: only with the API key or the dashboard login, every line
//! valid Prometheus text exposition, and the counters move with traffic.

use crate::support::*;
use base64::Engine;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

const ALICE: &str = "15551234567@s.whatsapp.net";

/// One sample line: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Fails the parse with a message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// `{a="x",b="y\"z"}` -> labels.
fn parse_labels(text: &str, line: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once("=\"")
            .ok_or_else(|| format!("label without =\": {line}"))?;
        ensure!(is_label_name(name), "bad label name {name:?}: {line}");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    other => return Err(format!("bad escape {other:?}: {line}")),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => return Err(format!("unterminated label value: {line}")),
            }
        };
        ensure!(
            labels.insert(name.to_string(), value).is_none(),
            "duplicate label {name}: {line}"
        );
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Ok(labels)
}

fn parse_value(text: &str, line: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text
            .parse()
            .map_err(|_| format!("bad value {text:?}: {line}")),
    }
}

/// Parses the whole exposition, checking the format as it goes: HELP and
/// TYPE once per family and before its samples, families not interleaved,
/// every sample's family declared, histograms cumulative and complete.
fn parse_exposition(text: &str) -> Result<Vec<Sample>, String> {
    ensure!(text.ends_with('\n'), "the exposition ends with a newline");
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helps: BTreeSet<String> = BTreeSet::new();
    let mut finished: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut samples = Vec::new();
    for line in text.lines() {
        ensure!(!line.is_empty(), "no blank lines");
        if let Some(rest) = line.strip_prefix("# ") {
            let (kind, rest) = rest
                .split_once(' ')
                .ok_or_else(|| format!("# HELP|TYPE name ...: {line}"))?;
            let (name, arg) = rest.split_once(' ').unwrap_or((rest, ""));
            ensure!(is_metric_name(name), "bad metric name: {line}");
            match kind {
                "HELP" => {
                    ensure!(!arg.is_empty(), "empty HELP: {line}");
                    ensure!(helps.insert(name.into()), "HELP twice: {line}");
                }
                "TYPE" => {
                    ensure!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&arg),
                        "bad TYPE: {line}"
                    );
                    ensure!(
                        types.insert(name.into(), arg.into()).is_none(),
                        "TYPE twice: {line}"
                    );
                }
                other => return Err(format!("unknown comment kind {other}: {line}")),
            }
            if current.as_deref() != Some(name) {
                if let Some(previous) = current.replace(name.to_string()) {
                    finished.insert(previous);
                }
                ensure!(!finished.contains(name), "family {name} interleaved");
            }
            continue;
        }
        ensure!(!line.starts_with('#'), "bad comment: {line}");
        let (series, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| format!("not `name value`: {line}"))?;
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => {
                let inner = labels
                    .strip_suffix('}')
                    .ok_or_else(|| format!("unclosed labels: {line}"))?;
                (name, parse_labels(inner, line)?)
            }
            None => (series, BTreeMap::new()),
        };
        ensure!(is_metric_name(name), "bad metric name: {line}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| name.strip_suffix(suffix))
            .find(|base| types.get(*base).map(String::as_str) == Some("histogram"))
            .unwrap_or(name);
        ensure!(types.contains_key(family), "sample before its TYPE: {line}");
        ensure!(
            current.as_deref() == Some(family),
            "sample outside its family block: {line}"
        );
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value: parse_value(value, line)?,
        });
    }
    for (family, kind) in &types {
        ensure!(helps.contains(family), "{family} has no HELP");
        if kind == "histogram" {
            check_histogram(family, &samples)?;
        }
    }
    Ok(samples)
}

/// Labels of a series without `le`, as a sortable key.
type SeriesKey = Vec<(String, String)>;

fn check_histogram(family: &str, samples: &[Sample]) -> Result<(), String> {
    let key = |s: &Sample| -> SeriesKey {
        s.labels
            .iter()
            .filter(|(k, _)| *k != "le")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let mut series: BTreeMap<SeriesKey, Vec<(f64, f64)>> = BTreeMap::new();
    for s in samples
        .iter()
        .filter(|s| s.name == format!("{family}_bucket"))
    {
        let le = s
            .labels
            .get("le")
            .ok_or_else(|| format!("{family} bucket without le"))?;
        let le = parse_value(le, "le")?;
        series.entry(key(s)).or_default().push((le, s.value));
    }
    for (labels, buckets) in series {
        ensure!(
            buckets
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
            "{family}{labels:?}: buckets ascend and are cumulative"
        );
        let (last_le, last_n) = *buckets.last().unwrap_or(&(0.0, 0.0));
        ensure!(last_le.is_infinite(), "{family}{labels:?} ends with +Inf");
        let find = |suffix: &str| {
            samples
                .iter()
                .find(|s| s.name == format!("{family}{suffix}") && key(s) == labels)
        };
        let count = find("_count").ok_or_else(|| format!("{family}{labels:?}: no _count"))?;
        ensure!(
            count.value == last_n,
            "{family}{labels:?}: +Inf bucket != count"
        );
        ensure!(find("_sum").is_some(), "{family}{labels:?}: no _sum");
    }
    Ok(())
}

fn scrape(s: &TestServer) -> Vec<Sample> {
    let r = s.get("/metrics");
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        r.header("content-type")
    );
    parse_exposition(&r.text).unwrap_or_else(|e| panic!("{e}\n{}", r.text))
}

/// The value of the sample `name` whose labels include `labels` (0 if none).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map_or(0.0, |s| s.value)
}

#[test]
fn metrics_need_the_api_key_or_the_dashboard_login() {
    let s = TestServer::start();
    assert_eq!(s.request("GET", "/metrics", &[], None).status, 401);
    assert_eq!(
        s.request(
            "GET",
            "/metrics",
            &[("X-API-Key", "wrong-key-0123456789")],
            None
        )
        .status,
        401
    );
    let wrong = base64::engine::general_purpose::STANDARD.encode(format!("{DASH_USER}:nope"));
    assert_eq!(
        s.request(
            "GET",
            "/metrics",
            &[("Authorization", &format!("Basic {wrong}"))],
            None
        )
        .status,
        401
    );
    assert_eq!(s.get("/metrics").status, 200);
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{DASH_USER}:{DASH_PASSWORD}"));
    let r = s.request(
        "GET",
        "/metrics",
        &[("Authorization", &format!("Basic {basic}"))],
        None,
    );
    assert_eq!(r.status, 200);
    parse_exposition(&r.text).unwrap();
}

#[test]
fn every_line_parses_and_the_counters_move() {
    let receiver = WebhookReceiver::start();
    let s = TestServer::start();
    let created = s.post(
        "/api/v1/webhooks",
        &json!({ "url": receiver.url, "events": ["message.received", "message.sent"] }),
    );
    assert_eq!(created.status, 201, "{}", created.text);

    let before = scrape(&s);
    for family in [
        "whatsapp_api_messages_received_total",
        "whatsapp_api_messages_sent_total",
        "whatsapp_api_webhook_deliveries_pending",
        "whatsapp_api_uptime_seconds",
    ] {
        assert!(
            before.iter().any(|x| x.name == family),
            "{family} is exposed"
        );
    }
    assert_eq!(
        value(
            &before,
            "whatsapp_api_connection_state",
            &[("state", "connected")]
        ),
        1.0
    );
    assert_eq!(
        before
            .iter()
            .filter(|x| x.name == "whatsapp_api_connection_state")
            .map(|x| x.value)
            .sum::<f64>(),
        1.0,
        "exactly one state is current"
    );
    assert!(value(&before, "whatsapp_api_uptime_seconds", &[]) > 0.0);

    // Traffic: an incoming message, a reply, two inbox reads, a 404.
    s.inject(ALICE, "hello metrics");
    let id = s.newest_id();
    let r = s.post(
        &format!("/api/v1/messages/{id}/reply"),
        &json!({ "message": "hi" }),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(s.get("/api/v1/inbox").status, 200);
    assert_eq!(s.get("/api/v1/inbox").status, 200);
    assert_eq!(s.get("/api/v1/messages/no-such-id").status, 404);
    receiver.wait_for(2, 10);

    let inbox_200 = [
        ("route", "/api/v1/inbox"),
        ("method", "GET"),
        ("status", "200"),
    ];
    let missing_404 = [
        ("route", "/api/v1/messages/:id"),
        ("method", "GET"),
        ("status", "404"),
    ];
    // Requests are counted just after their answer is written: poll.
    let after = eventually(10, "the counters to move", || {
        let now = scrape(&s);
        let moved = value(&now, "whatsapp_api_http_requests_total", &inbox_200)
            >= value(&before, "whatsapp_api_http_requests_total", &inbox_200) + 2.0
            && value(
                &now,
                "whatsapp_api_webhook_deliveries_total",
                &[("outcome", "delivered")],
            ) >= 2.0
            && value(&now, "whatsapp_api_http_requests_total", &missing_404) >= 1.0;
        moved.then_some(now)
    });
    let delta = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    assert_eq!(delta("whatsapp_api_messages_received_total", &[]), 1.0);
    assert_eq!(delta("whatsapp_api_messages_sent_total", &[]), 1.0);
    assert_eq!(
        delta(
            "whatsapp_api_webhook_deliveries_total",
            &[("outcome", "delivered")]
        ),
        2.0
    );
    assert_eq!(
        value(&after, "whatsapp_api_webhook_deliveries_pending", &[]),
        0.0
    );
    assert_eq!(delta("whatsapp_api_http_requests_total", &missing_404), 1.0);
    assert!(
        delta(
            "whatsapp_api_http_request_duration_seconds_count",
            &[("route", "/api/v1/inbox"), ("method", "GET")]
        ) >= 2.0
    );
    assert!(
        value(&after, "whatsapp_api_uptime_seconds", &[])
            >= value(&before, "whatsapp_api_uptime_seconds", &[])
    );

    // The connection gauge follows the state.
    s.post(
        "/api/v1/simulator/connection",
        &json!({ "state": "disconnected" }),
    );
    eventually(10, "the state gauge to follow", || {
        let now = scrape(&s);
        (value(
            &now,
            "whatsapp_api_connection_state",
            &[("state", "disconnected")],
        ) == 1.0
            && value(
                &now,
                "whatsapp_api_connection_state",
                &[("state", "connected")],
            ) == 0.0)
            .then_some(())
    });
}

#[test]
fn the_parser_rejects_what_prometheus_would() {
    let ok = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 2\n";
    assert_eq!(parse_exposition(ok).unwrap()[0].value, 2.0);
    for bad in [
        "a_total 1\n",                                         // no TYPE
        "# HELP a A.\n# TYPE a gauge\na{x=1} 2\n",             // unquoted label
        "# HELP a A.\n# TYPE a gauge\na 1 2 3x\n",             // bad value
        "# HELP a A.\n# TYPE a gauge\n# TYPE a gauge\na 1\n",  // TYPE twice
        "# HELP a A.\n# TYPE a thing\na 1\n",                  // bad type
        "# HELP 1a A.\n# TYPE 1a gauge\n1a 1\n",               // bad name
        "# HELP a A.\n# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n", // duplicate label
        // histogram buckets that are not cumulative, or without +Inf
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
    ] {
        assert!(parse_exposition(bad).is_err(), "accepted: {bad:?}");
    }
}
