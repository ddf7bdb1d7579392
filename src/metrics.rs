//! Process metrics kept in memory and rendered as Prometheus text at
//! `GET /metrics`. Counters are atomics or a small mutex-guarded map, so
//! recording stays off the database and cheap on the request path.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (seconds) of the request latency histogram buckets.
const LATENCY_BUCKETS: [f64; 8] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0];

#[derive(Default)]
struct RouteStats {
    count: u64,
    sum_secs: f64,
    /// Cumulative counts per LATENCY_BUCKETS bound.
    buckets: [u64; LATENCY_BUCKETS.len()],
}

/// The counters.
#[derive(Default)]
pub struct Metrics {
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
    pub webhook_delivered: AtomicU64,
    pub webhook_failed: AtomicU64,
    pub webhook_attempts_failed: AtomicU64,
    /// (route template, method, status) -> stats.
    http: Mutex<BTreeMap<(&'static str, &'static str, u16), RouteStats>>,
}

/// Values read at render time from elsewhere (the database, the connection).
pub struct Gauges<'a> {
    pub webhook_pending: i64,
    pub connection_state: &'a str,
    pub uptime_secs: f64,
    pub inbox_unread: i64,
    pub streams: &'a crate::events::Streams,
}

impl Metrics {
    /// Records one answered request.
    pub fn record_request(
        &self,
        route: &'static str,
        method: &'static str,
        status: u16,
        secs: f64,
    ) {
        let mut http = self.http.lock().unwrap_or_else(|e| e.into_inner());
        let stats = http.entry((route, method, status)).or_default();
        stats.count += 1;
        stats.sum_secs += secs;
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                stats.buckets[i] += 1;
            }
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self, g: &Gauges<'_>) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter(
            &mut out,
            "whatsapp_api_messages_received_total",
            "Incoming messages stored.",
            self.messages_in.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "whatsapp_api_messages_sent_total",
            "Replies sent.",
            self.messages_out.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP whatsapp_api_webhook_deliveries_total Webhook deliveries by final outcome.\n\
             # TYPE whatsapp_api_webhook_deliveries_total counter\n\
             whatsapp_api_webhook_deliveries_total{{outcome=\"delivered\"}} {}\n\
             whatsapp_api_webhook_deliveries_total{{outcome=\"failed\"}} {}",
            self.webhook_delivered.load(Ordering::Relaxed),
            self.webhook_failed.load(Ordering::Relaxed)
        );
        counter(
            &mut out,
            "whatsapp_api_webhook_failed_attempts_total",
            "Webhook attempts that did not succeed.",
            self.webhook_attempts_failed.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP whatsapp_api_webhook_deliveries_pending Deliveries waiting for an attempt.\n\
             # TYPE whatsapp_api_webhook_deliveries_pending gauge\n\
             whatsapp_api_webhook_deliveries_pending {}",
            g.webhook_pending
        );
        let _ = writeln!(
            out,
            "# HELP whatsapp_api_inbox_unread Incoming messages marked unread.\n\
             # TYPE whatsapp_api_inbox_unread gauge\nwhatsapp_api_inbox_unread {}",
            g.inbox_unread
        );
        let _ = writeln!(
            out,
            "# HELP whatsapp_api_event_streams_open Event streams open now.\n\
             # TYPE whatsapp_api_event_streams_open gauge\nwhatsapp_api_event_streams_open {}",
            g.streams.open()
        );
        counter(
            &mut out,
            "whatsapp_api_event_stream_events_sent_total",
            "Events written to event streams (one per stream that received it).",
            g.streams.sent.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "whatsapp_api_event_streams_refused_total",
            "Event streams refused because EVENT_STREAMS_MAX were open.",
            g.streams.refused.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP whatsapp_api_connection_state 1 for the current WhatsApp connection state.\n# TYPE whatsapp_api_connection_state gauge"
        );
        for state in [
            "connecting",
            "qr",
            "connected",
            "disconnected",
            "logged_out",
        ] {
            let _ = writeln!(
                out,
                "whatsapp_api_connection_state{{state=\"{state}\"}} {}",
                u8::from(state == g.connection_state)
            );
        }
        let _ = writeln!(
            out,
            "# HELP whatsapp_api_uptime_seconds Seconds since the process started.\n\
             # TYPE whatsapp_api_uptime_seconds gauge\nwhatsapp_api_uptime_seconds {:.3}",
            g.uptime_secs
        );
        let http = self.http.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(
            out,
            "# HELP whatsapp_api_http_requests_total HTTP requests by route, method and status.\n\
             # TYPE whatsapp_api_http_requests_total counter"
        );
        for ((route, method, status), s) in http.iter() {
            let _ = writeln!(
                out,
                "whatsapp_api_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {}",
                s.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP whatsapp_api_http_request_duration_seconds Time to answer, by route and method.\n\
             # TYPE whatsapp_api_http_request_duration_seconds histogram"
        );
        let mut by_route: BTreeMap<(&str, &str), RouteStats> = BTreeMap::new();
        for ((route, method, _), s) in http.iter() {
            let agg = by_route.entry((route, method)).or_default();
            agg.count += s.count;
            agg.sum_secs += s.sum_secs;
            for (a, b) in agg.buckets.iter_mut().zip(s.buckets.iter()) {
                *a += b;
            }
        }
        for ((route, method), s) in by_route {
            let labels = format!("route=\"{route}\",method=\"{method}\"");
            for (bound, n) in LATENCY_BUCKETS.iter().zip(s.buckets.iter()) {
                let _ = writeln!(
                    out,
                    "whatsapp_api_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "whatsapp_api_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "whatsapp_api_http_request_duration_seconds_sum{{{labels}}} {:.6}",
                s.sum_secs
            );
            let _ = writeln!(
                out,
                "whatsapp_api_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        out
    }
}
