//! The event sink thread: applies every `WaEvent` from the backend. It stores
//! incoming messages and writes their webhook deliveries in the same
//! transaction (the durable outbox), then acknowledges the backend, which only
//! then acknowledges WhatsApp. It also keeps the shared connection state.

use crate::db;
use crate::state::{ConnState, QrCode, Shared};
use crate::wa::{IncomingMessage, WaEvent};
use crate::webhooks::{self, WebhookWaker};
use crate::{auth, clock};
use crossbeam_channel::Receiver;
use rusqlite::Connection;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Instant;

/// Setting that remembers our own JID across restarts.
const SETTING_ME: &str = "whatsapp.me";

/// Starts the sink. It runs until the backend drops its event sender.
pub fn spawn(
    conn: Connection,
    shared: Arc<Shared>,
    events: Receiver<WaEvent>,
    webhooks: WebhookWaker,
) -> std::io::Result<JoinHandle<()>> {
    if let Ok(Some(me)) = db::get_setting(&conn, SETTING_ME).map(|m| m.filter(|m| !m.is_empty())) {
        shared.update_connection(|c| {
            c.me = Some(me);
            c.session_exists = true;
        });
    }
    std::thread::Builder::new()
        .name("sink".into())
        .spawn(move || {
            let mut sink = Sink {
                conn,
                shared,
                webhooks,
            };
            for event in events {
                sink.apply(event);
            }
            log::debug!("event sink stopped");
        })
}

struct Sink {
    conn: Connection,
    shared: Arc<Shared>,
    webhooks: WebhookWaker,
}

impl Sink {
    fn apply(&mut self, event: WaEvent) {
        match event {
            WaEvent::Message { message, ack } => {
                let result = self.store_message(&message);
                if let Err(e) = &result {
                    log::error!(
                        "storing message {} from {} failed: {e}",
                        message.wa_id,
                        message.chat
                    );
                }
                if let Some(ack) = ack {
                    let _ = ack.send(result.map(|_| ()).map_err(|e| e.to_string()));
                }
            }
            WaEvent::Qr { code, valid_for } => {
                self.shared.update_connection(|c| {
                    c.state = ConnState::Qr;
                    c.qr = Some(QrCode {
                        code,
                        expires: Instant::now() + valid_for,
                    });
                });
            }
            WaEvent::Paired { jid } => {
                self.remember_me(&jid);
                self.shared.update_connection(|c| {
                    c.me = Some(jid);
                    c.session_exists = true;
                    c.qr = None;
                });
            }
            WaEvent::Connected { jid } => {
                if let Some(jid) = &jid {
                    self.remember_me(jid);
                }
                let me = jid.or_else(|| self.shared.connection().me);
                self.shared.update_connection(|c| {
                    c.state = ConnState::Connected;
                    c.qr = None;
                    c.me = me.clone();
                    c.session_exists = true;
                    c.last_error = None;
                });
                log::info!("WhatsApp connected as {}", me.as_deref().unwrap_or("?"));
                let data = webhooks::connected_data(me.as_deref());
                self.emit(webhooks::CONNECTION_CONNECTED, data);
            }
            WaEvent::Disconnected {
                reason,
                will_reconnect,
            } => {
                let was_connected = self.shared.connection().state == ConnState::Connected;
                self.shared.update_connection(|c| {
                    c.state = ConnState::Disconnected;
                    c.last_error = Some(reason.clone());
                });
                log::warn!("WhatsApp disconnected: {reason} (will reconnect: {will_reconnect})");
                if was_connected {
                    self.emit(
                        webhooks::CONNECTION_DISCONNECTED,
                        webhooks::disconnected_data(&reason, will_reconnect),
                    );
                }
            }
            WaEvent::LoggedOut { reason } => {
                let was_connected = self.shared.connection().state == ConnState::Connected;
                if let Err(e) = db::set_setting(&self.conn, SETTING_ME, "") {
                    log::error!("forgetting the linked account failed: {e}");
                }
                self.shared.update_connection(|c| {
                    c.state = ConnState::LoggedOut;
                    c.qr = None;
                    c.me = None;
                    c.session_exists = false;
                    c.last_error = Some(reason.clone());
                });
                log::warn!("WhatsApp logged out: {reason}; pair again to reconnect");
                if was_connected {
                    self.emit(
                        webhooks::CONNECTION_DISCONNECTED,
                        webhooks::disconnected_data(&reason, false),
                    );
                }
            }
            WaEvent::Receipt { wa_ids, status } => {
                if let Err(e) = db::advance_delivery_status(&self.conn, &wa_ids, status) {
                    log::error!("applying a {} receipt failed: {e}", status.as_str());
                }
            }
        }
    }

    /// Stores the message and its deliveries in one transaction. Ok(false):
    /// it was a redelivery, already stored.
    fn store_message(&mut self, m: &IncomingMessage) -> db::DbResult<bool> {
        let tx = self.conn.transaction()?;
        let created_at = clock::now_secs();
        let Some(row) = db::insert_incoming(&tx, &auth::uuid_v4(), m, created_at)? else {
            return Ok(false);
        };
        let payload = webhooks::payload(webhooks::MESSAGE_RECEIVED, webhooks::message_data(&row));
        let queued = db::enqueue_deliveries(&tx, webhooks::MESSAGE_RECEIVED, &payload)?;
        tx.commit()?;
        self.shared
            .metrics
            .messages_in
            .fetch_add(1, Ordering::Relaxed);
        if queued > 0 {
            self.webhooks.wake();
        }
        Ok(true)
    }

    fn remember_me(&self, jid: &str) {
        if let Err(e) = db::set_setting(&self.conn, SETTING_ME, jid) {
            log::error!("remembering the linked account failed: {e}");
        }
    }

    /// Writes a state-change event's deliveries (their own transaction: the
    /// change itself lives in memory).
    fn emit(&mut self, event: &str, data: serde_json::Value) {
        let payload = webhooks::payload(event, data);
        let result = self.conn.transaction().and_then(|tx| {
            let n = db::enqueue_deliveries(&tx, event, &payload)?;
            tx.commit().map(|()| n)
        });
        match result {
            Ok(n) if n > 0 => self.webhooks.wake(),
            Ok(_) => {}
            Err(e) => log::error!("queueing {event} webhooks failed: {e}"),
        }
    }
}
