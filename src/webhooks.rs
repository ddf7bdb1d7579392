//! Webhooks: payloads, signatures, and the delivery thread.
//!
//! The delivery thread (`webhooks`) reads due deliveries from the durable
//! outbox in SQLite and hands them to one lane thread per webhook
//! (`webhook-lane`), which POSTs them in order with its own keep-alive `ureq`
//! agent and reports each attempt back. Lanes run in parallel, so a slow or
//! dead endpoint never delays another; within a webhook, order is FIFO: a
//! delivery waiting for a retry holds back the ones behind it. Only this
//! module makes outgoing HTTP requests.

use crate::db::{self, DeliveryHead};
use crate::state::Shared;
use crate::status::{DeliveryStatus, Direction, HookDeliveryStatus};
use crate::threads::Ends;
use crate::{auth, clock};
use base64::Engine as _;
use crossbeam_channel::{Receiver, Sender, TrySendError, bounded, select, unbounded};
use hmac::{KeyInit, Mac};
use rusqlite::Connection;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const MESSAGE_RECEIVED: &str = "message.received";
pub const MESSAGE_SENT: &str = "message.sent";
pub const CONNECTION_CONNECTED: &str = "connection.connected";
pub const CONNECTION_DISCONNECTED: &str = "connection.disconnected";
/// A message we sent changed delivery status: `delivered`, `read`, or
/// `failed` (WhatsApp refused it).
pub const MESSAGE_STATUS: &str = "message.status";
/// Someone reacted to a stored message (or removed their reaction).
pub const MESSAGE_REACTION: &str = "message.reaction";
/// A stored message was edited by its author.
pub const MESSAGE_EDITED: &str = "message.edited";
/// A stored message was deleted for everyone.
pub const MESSAGE_DELETED: &str = "message.deleted";
/// Sent by the test button whatever the subscription.
pub const WEBHOOK_TEST: &str = "webhook.test";
/// The events a webhook can subscribe to.
pub const EVENTS: [&str; 8] = [
    MESSAGE_RECEIVED,
    MESSAGE_SENT,
    MESSAGE_STATUS,
    MESSAGE_REACTION,
    MESSAGE_EDITED,
    MESSAGE_DELETED,
    CONNECTION_CONNECTED,
    CONNECTION_DISCONNECTED,
];

/// Deliveries handed to a lane at once (all in order, all due).
const LANE_BATCH: usize = 64;
/// How long a lane without work keeps its thread and connection.
const LANE_IDLE: Duration = Duration::from_secs(60);
/// Longest pause a receiver's Retry-After can ask for.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(300);
/// Most of a receiver's answer body that is read (and thrown away).
const RESPONSE_BODY_LIMIT: u64 = 64 * 1024;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

// ───────────────────────────── payloads ─────────────────────────────

/// The body POSTed for an event: `{"event","timestamp","data"}`.
pub fn payload(event: &str, data: Value) -> String {
    json!({ "event": event, "timestamp": clock::format_iso_millis(clock::now_millis()), "data": data }).to_string()
}

/// `data` of message.received / message.sent: the Node server's fields, then extras.
pub fn message_data(m: &db::Message) -> Value {
    let mut data = json!({
        "id": m.id,
        "phone": m.phone,
        "message": m.message,
        "mediaType": m.media_type,
        "mediaUrl": m.media_url,
        "timestamp": clock::format_iso_millis(m.created_at * 1000),
        "waId": m.wa_id,
        "direction": m.direction,
        "senderJid": m.sender_jid,
        "pushName": m.push_name,
        "mediaMime": m.media_mime,
        "mediaSize": m.media_size,
        "isGroup": m.phone.ends_with("@g.us"),
        "senderLid": m.sender_lid,
        "receivedAt": clock::format_iso_millis(m.received_at * 1000),
    });
    if m.direction == Direction::Outgoing {
        data["inReplyTo"] = json!(m.in_reply_to);
        data["source"] = json!(m.source);
    }
    data
}

/// `data` of message.status: the message, its new status, and why (failed).
pub fn status_data(m: &db::Message, status: DeliveryStatus, error: Option<&str>) -> Value {
    json!({
        "id": m.id,
        "waId": m.wa_id,
        "phone": m.phone,
        "status": status.as_str(),
        "error": error,
        "inReplyTo": m.in_reply_to,
        "timestamp": clock::format_iso_millis(clock::now_millis()),
    })
}

/// `data` of message.reaction: the reacted message, who reacted and with
/// what (`removed` when an empty reaction took theirs away).
pub fn reaction_data(m: &db::Message, sender_jid: &str, emoji: &str) -> Value {
    json!({
        "id": m.id,
        "waId": m.wa_id,
        "phone": m.phone,
        "senderJid": sender_jid,
        "emoji": emoji,
        "removed": emoji.is_empty(),
        "timestamp": clock::format_iso_millis(clock::now_millis()),
    })
}

/// `data` of message.edited: the message with its new text, and the text
/// it replaced.
pub fn edited_data(m: &db::Message, previous: &str) -> Value {
    json!({
        "id": m.id,
        "waId": m.wa_id,
        "phone": m.phone,
        "message": m.message,
        "previousMessage": previous,
        "timestamp": clock::format_iso_millis(clock::now_millis()),
    })
}

/// `data` of message.deleted.
pub fn deleted_data(m: &db::Message) -> Value {
    json!({
        "id": m.id,
        "waId": m.wa_id,
        "phone": m.phone,
        "timestamp": clock::format_iso_millis(clock::now_millis()),
    })
}

/// `data` of connection.connected.
pub fn connected_data(me: Option<&str>) -> Value {
    json!({ "me": me, "timestamp": clock::format_iso_millis(clock::now_millis()) })
}

/// `data` of connection.disconnected.
pub fn disconnected_data(reason: &str, will_reconnect: bool) -> Value {
    json!({ "reason": reason, "willReconnect": will_reconnect, "timestamp": clock::format_iso_millis(clock::now_millis()) })
}

/// `data` of connection.disconnected when WhatsApp stopped the session: its
/// `state` (banned, client_outdated, replaced) and, for a ban, `until`.
pub fn stopped_data(reason: &str, state: &str, until: Option<i64>) -> Value {
    let mut data = disconnected_data(reason, until.is_some());
    data["state"] = json!(state);
    data["until"] = json!(until.map(|t| clock::format_iso_millis(t * 1000)));
    data
}

// ───────────────────────────── signatures ─────────────────────────────

/// The Standard Webhooks signing key: the decoded bytes of a `whsec_`
/// secret, the raw bytes of any other.
fn signing_key(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix("whsec_")
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// `webhook-signature`: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
pub fn standard_signature(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    let ts = timestamp.to_string();
    let mac = hmac_sha256(
        &signing_key(secret),
        &[id.as_bytes(), b".", ts.as_bytes(), b".", body.as_bytes()],
    );
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac)
    )
}

/// `X-Webhook-Signature`, as the Node server sent it: `sha256=<hex HMAC(secret, body)>`.
pub fn legacy_signature(secret: &str, body: &str) -> String {
    format!(
        "sha256={}",
        auth::hex(&hmac_sha256(secret.as_bytes(), &[body.as_bytes()]))
    )
}

// ───────────────────────────── the delivery thread ─────────────────────────────

/// Wakes the delivery thread after new deliveries are committed. Cheap to clone.
#[derive(Clone)]
pub struct WebhookWaker(Sender<()>);

impl WebhookWaker {
    pub fn wake(&self) {
        // Capacity 1: a wake already pending covers this one too.
        match self.0.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
        }
    }
}

/// Retry policy and limits of the delivery thread.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Pauses between attempts; its length + 1 is the number of attempts.
    pub schedule: Vec<Duration>,
    pub timeout: Duration,
    /// Whether targets may be loopback, private, link-local or unspecified
    /// addresses (`WEBHOOK_ALLOW_PRIVATE`).
    pub allow_private: bool,
}

/// Starts the delivery thread. It stops once every `WebhookWaker` is dropped,
/// after the attempts in flight have finished.
pub fn spawn(
    conn: Connection,
    shared: Arc<Shared>,
    policy: Policy,
    ends: &Ends,
) -> std::io::Result<(WebhookWaker, JoinHandle<()>)> {
    let (wake_tx, wake_rx) = bounded(1);
    let join = std::thread::Builder::new()
        .name("webhooks".into())
        .spawn(ends.report(move || Dispatcher::new(conn, shared, policy).run(wake_rx)))?;
    Ok((WebhookWaker(wake_tx), join))
}

/// One attempt's result, from a lane.
struct Attempt {
    seq: i64,
    at_ms: i64,
    status_code: Option<u16>,
    error: Option<String>,
    duration_ms: i64,
    retry_after: Option<Duration>,
}

impl Attempt {
    fn succeeded(&self) -> bool {
        self.error.is_none()
    }
}

/// What a lane reports after a batch.
struct LaneReport {
    webhook_id: String,
    attempts: Vec<Attempt>,
}

/// A batch for a lane: the webhook's URL and secret, deliveries in order.
struct Job {
    url: String,
    secret: Option<String>,
    deliveries: Vec<db::DueDelivery>,
}

struct Lane {
    jobs: Sender<Job>,
    busy: bool,
    /// When it last got a job: an idle lane (thread and keep-alive
    /// connection) is kept for `LANE_IDLE`, not rebuilt for every burst.
    last_job: Instant,
}

struct Dispatcher {
    conn: Connection,
    shared: Arc<Shared>,
    policy: Policy,
    lanes: HashMap<String, Lane>,
    reports_tx: Sender<LaneReport>,
    reports_rx: Receiver<LaneReport>,
    stopping: Arc<AtomicBool>,
}

impl Dispatcher {
    fn new(conn: Connection, shared: Arc<Shared>, policy: Policy) -> Dispatcher {
        // Unbounded: a lane must never block on reporting (it would stall its
        // endpoint); at most one report per lane is outstanding anyway.
        let (reports_tx, reports_rx) = unbounded();
        Dispatcher {
            conn,
            shared,
            policy,
            lanes: HashMap::new(),
            reports_tx,
            reports_rx,
            stopping: Arc::new(AtomicBool::new(false)),
        }
    }

    fn run(mut self, wake: Receiver<()>) {
        loop {
            let next_due = match self.dispatch_due() {
                Ok(next) => next,
                Err(e) => {
                    log::error!("webhooks: reading due deliveries failed: {e}");
                    Some(clock::now_millis() + 1000)
                }
            };
            let wait = next_due
                .map(|at| Duration::from_millis((at - clock::now_millis()).clamp(0, 5_000) as u64))
                .unwrap_or(Duration::from_secs(5));
            select! {
                recv(wake) -> msg => if msg.is_err() {
                    // Every waker is gone: the program is shutting down.
                    break;
                },
                recv(self.reports_rx) -> report => if let Ok(report) = report {
                    self.apply(report);
                },
                default(wait) => {},
            }
        }
        // Let the lanes finish the attempt they are making; record what they did.
        self.stopping.store(true, Ordering::SeqCst);
        // Bounded so the whole shutdown stays within 10 s; an attempt cut short is
        // not recorded, so its delivery stays pending and is retried after restart.
        let deadline = Instant::now()
            + (self.policy.timeout + Duration::from_secs(1)).min(Duration::from_secs(5));
        while self.lanes.values().any(|l| l.busy) {
            match self.reports_rx.recv_deadline(deadline) {
                Ok(report) => self.apply(report),
                Err(_) => break,
            }
        }
        log::debug!("webhook delivery thread stopped");
    }

    /// Hands every idle webhook its due deliveries. Returns when the next
    /// not-yet-due head is due (Unix ms).
    fn dispatch_due(&mut self) -> db::DbResult<Option<i64>> {
        let now = clock::now_millis();
        let heads = db::delivery_heads(&self.conn)?;
        let mut next_due: Option<i64> = None;
        self.lanes.retain(|id, lane| {
            lane.busy
                || lane.last_job.elapsed() < LANE_IDLE
                || heads.iter().any(|h| &h.webhook_id == id)
        });
        for DeliveryHead {
            webhook_id,
            url,
            secret,
            next_attempt_at,
        } in heads
        {
            if self.lanes.get(&webhook_id).is_some_and(|l| l.busy) {
                continue;
            }
            if next_attempt_at > now {
                next_due = Some(next_due.map_or(next_attempt_at, |n| n.min(next_attempt_at)));
                continue;
            }
            let deliveries = db::pending_deliveries(&self.conn, &webhook_id, LANE_BATCH)?;
            if deliveries.is_empty() {
                continue;
            }
            if !self.lanes.contains_key(&webhook_id) {
                match self.start_lane(&webhook_id) {
                    Ok(jobs) => {
                        self.lanes.insert(
                            webhook_id.clone(),
                            Lane {
                                jobs,
                                busy: false,
                                last_job: Instant::now(),
                            },
                        );
                    }
                    Err(err) => {
                        log::error!("webhooks: could not start a lane: {err}");
                        continue;
                    }
                }
            }
            if let Some(lane) = self.lanes.get_mut(&webhook_id)
                && lane
                    .jobs
                    .send(Job {
                        url,
                        secret,
                        deliveries,
                    })
                    .is_ok()
            {
                lane.busy = true;
                lane.last_job = Instant::now();
            }
        }
        Ok(next_due)
    }

    fn start_lane(&self, webhook_id: &str) -> std::io::Result<Sender<Job>> {
        // Capacity 1: the dispatcher sends a lane one job at a time (busy flag).
        let (tx, rx) = bounded::<Job>(1);
        let reports = self.reports_tx.clone();
        let stopping = Arc::clone(&self.stopping);
        let agent = lane_agent(self.policy.timeout, self.policy.allow_private);
        let allow_private = self.policy.allow_private;
        let webhook_id = webhook_id.to_string();
        std::thread::Builder::new()
            .name("webhook-lane".into())
            .spawn(move || lane_main(webhook_id, rx, reports, stopping, agent, allow_private))?;
        Ok(tx)
    }

    /// Records a lane's attempts and schedules what comes next.
    fn apply(&mut self, report: LaneReport) {
        if let Some(lane) = self.lanes.get_mut(&report.webhook_id) {
            lane.busy = false;
        }
        let schedule = &self.policy.schedule;
        let result = (|| -> db::DbResult<()> {
            let tx = self.conn.transaction()?;
            for a in &report.attempts {
                db::insert_attempt(
                    &tx,
                    a.seq,
                    a.at_ms,
                    a.status_code,
                    a.error.as_deref(),
                    a.duration_ms,
                )?;
                if a.succeeded() {
                    db::finish_delivery(&tx, a.seq, HookDeliveryStatus::Delivered)?;
                    self.shared
                        .metrics
                        .webhook_delivered
                        .fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                self.shared
                    .metrics
                    .webhook_attempts_failed
                    .fetch_add(1, Ordering::Relaxed);
                let attempts_made = db::count_attempt(&tx, a.seq)?;
                if a.status_code == Some(410) {
                    log::warn!(
                        "webhooks: {} answered 410 Gone; deactivating it",
                        report.webhook_id
                    );
                    db::set_webhook_active(&tx, &report.webhook_id, false)?;
                    db::finish_delivery(&tx, a.seq, HookDeliveryStatus::Failed)?;
                    self.shared
                        .metrics
                        .webhook_failed
                        .fetch_add(1, Ordering::Relaxed);
                } else if attempts_made as usize > schedule.len() {
                    db::finish_delivery(&tx, a.seq, HookDeliveryStatus::Failed)?;
                    self.shared
                        .metrics
                        .webhook_failed
                        .fetch_add(1, Ordering::Relaxed);
                } else {
                    let pause = a
                        .retry_after
                        .unwrap_or(schedule[attempts_made as usize - 1]);
                    db::schedule_retry(&tx, a.seq, clock::now_millis() + pause.as_millis() as i64)?;
                }
            }
            tx.commit()
        })();
        if let Err(e) = result {
            // The attempts are not recorded, so the deliveries stay pending and
            // are tried again: at-least-once, never lost.
            log::error!("webhooks: recording attempts failed: {e}");
        }
    }
}

/// A lane's HTTP client. Redirects are never followed. Without
/// `allow_private`, names are resolved by `PublicOnly`, which drops every
/// address that is not public, and the connection goes to an address it
/// kept: what was checked is what is connected to, so a name that resolves
/// differently a moment later (DNS rebinding) changes nothing. Proxies from
/// the environment are then ignored, since a proxy would resolve the name
/// itself, out of sight of the check.
fn lane_agent(timeout: Duration, allow_private: bool) -> ureq::Agent {
    let builder = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("whatsapp-api/", env!("CARGO_PKG_VERSION")));
    if allow_private {
        return builder.build().into();
    }
    ureq::Agent::with_parts(
        builder.proxy(None).build(),
        ureq::unversioned::transport::DefaultConnector::default(),
        PublicOnly::default(),
    )
}

/// Resolves names like ureq's default resolver, keeping public addresses
/// only; a name with none left fails as if it did not resolve.
#[derive(Debug, Default)]
struct PublicOnly(ureq::unversioned::resolver::DefaultResolver);

impl ureq::unversioned::resolver::Resolver for PublicOnly {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let resolved = self.0.resolve(uri, config, timeout)?;
        let mut public = self.empty();
        for addr in resolved.iter().filter(|a| is_public(a.ip())) {
            public.push(*addr);
        }
        if public.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        Ok(public)
    }
}

/// Whether `ip` is an ordinary public unicast address: not unspecified,
/// loopback, private, link-local, shared (carrier-grade NAT), multicast,
/// broadcast, reserved or set aside for documentation, in IPv4 or in any
/// IPv6 form that carries an IPv4 address (mapped, compatible, NAT64,
/// 6to4).
pub fn is_public(ip: std::net::IpAddr) -> bool {
    use std::net::{IpAddr, Ipv4Addr};
    fn public_v4(v4: Ipv4Addr) -> bool {
        let [a, b, c, _] = v4.octets();
        !(a == 0 // "this network", 0.0.0.0 included
            || v4.is_loopback()
            || v4.is_private()
            || v4.is_link_local()
            || (a == 100 && (64..128).contains(&b)) // shared 100.64.0.0/10
            || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
            || v4.is_documentation()
            || (a == 198 && (18..20).contains(&b)) // benchmarking
            || a >= 224) // multicast, reserved, broadcast
    }
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let low_v4 =
                Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
            if let Some(v4) = v6.to_ipv4_mapped() {
                return public_v4(v4);
            }
            if s[..6] == [0; 6] {
                // ::a.b.c.d (deprecated "compatible"), :: and ::1 included.
                return public_v4(low_v4);
            }
            if s[0] == 0x64 && s[1] == 0xff9b {
                // NAT64: 64:ff9b::/96, and 64:ff9b:1::/48 for local use.
                return s[2] == 0 && s[3..6] == [0; 3] && public_v4(low_v4);
            }
            if s[0] == 0x2002 {
                // 6to4 carries an IPv4 address in bits 16 to 48.
                let v4 =
                    Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
                return public_v4(v4);
            }
            !(v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x2001 && s[1] == 0) // Teredo: hides an IPv4 address
                || (s[0] == 0x0100 && s[1..4] == [0; 3])) // discard-only 100::/64
        }
    }
}

fn lane_main(
    webhook_id: String,
    jobs: Receiver<Job>,
    reports: Sender<LaneReport>,
    stopping: Arc<AtomicBool>,
    agent: ureq::Agent,
    allow_private: bool,
) {
    while let Ok(job) = jobs.recv() {
        let mut attempts = Vec::with_capacity(job.deliveries.len());
        for delivery in &job.deliveries {
            let attempt = post(&agent, &job, delivery, allow_private);
            let ok = attempt.succeeded();
            attempts.push(attempt);
            if !ok || stopping.load(Ordering::SeqCst) {
                break;
            }
        }
        if reports
            .send(LaneReport {
                webhook_id: webhook_id.clone(),
                attempts,
            })
            .is_err()
        {
            break;
        }
    }
}

/// One POST with its headers: the event name, the Standard Webhooks id and
/// timestamp, and (with a secret) both signatures. Without `allow_private`,
/// a failure short of an HTTP answer is recorded as "connection failed"
/// only: the OS's words ("connection refused", a timeout) would tell whoever
/// holds the API key which ports are open on hosts the check keeps them from.
fn post(
    agent: &ureq::Agent,
    job: &Job,
    delivery: &db::DueDelivery,
    allow_private: bool,
) -> Attempt {
    let (seq, id, body) = (
        delivery.seq,
        delivery.id.as_str(),
        delivery.payload.as_str(),
    );
    let at_ms = clock::now_millis();
    let started = Instant::now();
    let timestamp = clock::now_secs();
    let mut request = agent
        .post(&job.url)
        .header("Content-Type", "application/json")
        .header("X-Webhook-Event", &delivery.event)
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string());
    if let Some(secret) = &job.secret {
        request = request
            .header(
                "webhook-signature",
                standard_signature(secret, id, timestamp, body),
            )
            .header("X-Webhook-Signature", legacy_signature(secret, body));
    }
    let result = request.send(body);
    let duration_ms = started.elapsed().as_millis() as i64;
    match result {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let retry_after = matches!(status, 429 | 503)
                .then(|| {
                    response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_retry_after)
                })
                .flatten();
            // Drain (a little of) the answer so the connection can be reused.
            let _ = response
                .body_mut()
                .with_config()
                .limit(RESPONSE_BODY_LIMIT)
                .read_to_vec();
            let error = (!(200..300).contains(&status)).then(|| format!("HTTP {status}"));
            Attempt {
                seq,
                at_ms,
                status_code: Some(status),
                error,
                duration_ms,
                retry_after,
            }
        }
        Err(e) => Attempt {
            seq,
            at_ms,
            status_code: None,
            error: Some(if allow_private {
                e.to_string()
            } else {
                "connection failed".to_string()
            }),
            duration_ms,
            retry_after: None,
        },
    }
}

/// `Retry-After: <seconds>`, capped. HTTP-dates are ignored (the schedule applies).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    v.trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s).min(RETRY_AFTER_CAP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_reference_vector() {
        // The example from the Standard Webhooks specification.
        let sig = standard_signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn legacy_signature_is_hex_hmac_of_the_body() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog").
        assert_eq!(
            legacy_signature("key", "The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn only_public_addresses_are_public_in_every_spelling() {
        use std::net::ToSocketAddrs;
        let resolve = |host: &str| -> Vec<std::net::IpAddr> {
            (host, 80)
                .to_socket_addrs()
                .unwrap_or_else(|e| panic!("{host}: {e}"))
                .map(|a| a.ip())
                .collect()
        };
        for host in [
            "127.0.0.1",
            "2130706433",
            "0x7f000001",
            "0177.0.0.1",
            "127.1",
            "localhost",
            "0.0.0.0",
            "0",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:7f00:1",
            "::ffff:a9fe:a9fe",
            "::127.0.0.1",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "64:ff9b::a00:1",
            "64:ff9b::7f00:1",
            "64:ff9b:1::808:808",
            "2002:7f00:1::1",
            "2002:c0a8:101::1",
            "2001:db8::1",
        ] {
            let ips = resolve(host);
            assert!(!ips.is_empty(), "{host}");
            for ip in ips {
                assert!(!is_public(ip), "{host} ({ip}) must not count as public");
            }
        }
        for host in [
            "93.184.215.14",
            "1.1.1.1",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            for ip in resolve(host) {
                assert!(is_public(ip), "{host} ({ip}) is public");
            }
        }
    }

    #[test]
    fn the_public_only_resolver_refuses_names_of_private_addresses() {
        use ureq::unversioned::resolver::Resolver;
        let resolver = PublicOnly::default();
        let config = ureq::config::Config::default();
        let timeout = ureq::unversioned::transport::NextTimeout::default();
        for url in [
            "http://localhost:9/hook",
            "http://2130706433:9/hook",
            "http://0x7f000001:9/hook",
            "http://127.1:9/hook",
            "http://[::ffff:127.0.0.1]:9/hook",
            "http://169.254.169.254/latest/meta-data",
        ] {
            let uri: ureq::http::Uri = url.parse().unwrap();
            assert!(
                resolver.resolve(&uri, &config, timeout).is_err(),
                "{url} resolved"
            );
        }
        let uri: ureq::http::Uri = "http://1.1.1.1:80/hook".parse().unwrap();
        let addrs = resolver.resolve(&uri, &config, timeout).unwrap();
        assert_eq!(addrs.len(), 1);
        assert_eq!(addrs[0], "1.1.1.1:80".parse().unwrap());
    }

    #[test]
    fn retry_after_is_capped() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("99999"), Some(RETRY_AFTER_CAP));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
