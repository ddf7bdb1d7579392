//! The event sink thread: applies every `WaEvent` from the backend. It stores
//! incoming messages and writes their webhook deliveries in the same
//! transaction (the durable outbox), then acknowledges the backend, which only
//! then acknowledges WhatsApp. It also keeps the shared connection state.

use crate::db;
use crate::state::{ConnState, QrCode, Shared};
use crate::status::Direction;
use crate::threads::Ends;
use crate::wa::{
    DeliveryStatus, IncomingMessage, MediaInfo, Reply, Stop, Stored, Update, UpdateAction, WaEvent,
};
use crate::webhooks::{self, WebhookWaker};
use crate::{auth, clock};
use crossbeam_channel::Receiver;
use rusqlite::Connection;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Instant;

/// Most messages committed in one transaction.
const MAX_BATCH: usize = 64;

/// A message and where to acknowledge it.
type Pending = (Box<IncomingMessage>, Option<Reply<Stored>>);

/// Setting that remembers our own JID across restarts.
const SETTING_ME: &str = "whatsapp.me";

/// Starts the sink. It runs until the backend drops its event sender.
pub fn spawn(
    conn: Connection,
    shared: Arc<Shared>,
    events: Receiver<WaEvent>,
    webhooks: WebhookWaker,
    ends: &Ends,
) -> std::io::Result<JoinHandle<()>> {
    if let Ok(Some(me)) = db::get_setting(&conn, SETTING_ME).map(|m| m.filter(|m| !m.is_empty())) {
        shared.update_connection(|c| {
            c.me = Some(me);
            c.session_exists = true;
        });
    }
    std::thread::Builder::new()
        .name("sink".into())
        .spawn(ends.report(move || {
            let mut sink = Sink {
                conn,
                shared,
                webhooks,
            };
            while let Ok(event) = events.recv() {
                let WaEvent::Message { message, ack } = event else {
                    sink.apply(event);
                    continue;
                };
                // Group commit: the messages already waiting are stored in the
                // same transaction (one WAL write and one index flush for all),
                // and each is acknowledged only after that commit.
                let mut batch = vec![(message, ack)];
                let mut after = None;
                while batch.len() < MAX_BATCH {
                    match events.try_recv() {
                        Ok(WaEvent::Message { message, ack }) => batch.push((message, ack)),
                        Ok(other) => {
                            after = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                sink.store_batch(batch);
                if let Some(event) = after {
                    sink.apply(event);
                }
            }
            log::debug!("event sink stopped");
        }))
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
                    let _ = ack.send(result.map_err(|e| e.to_string()));
                }
            }
            WaEvent::Update { update, ack } => {
                let result = self.apply_update(&update);
                if let Err(e) = &result {
                    log::error!(
                        "applying update {} in {} failed: {e}",
                        update.wa_id,
                        update.chat
                    );
                }
                if let Some(ack) = ack {
                    let _ = ack.send(
                        result
                            .map(|()| Stored::default())
                            .map_err(|e| e.to_string()),
                    );
                }
            }
            WaEvent::Qr { code, valid_for } => {
                // Codes are only offered to an unlinked device: no account,
                // no stored session.
                self.shared.update_connection(|c| {
                    c.state = ConnState::Qr;
                    c.me = None;
                    c.session_exists = false;
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
                log::info!("WhatsApp connected as {}", me.as_deref().unwrap_or("?"));
                // Queued before the new state shows: a webhook created by
                // someone who saw "connected" is not sent this older event.
                let data = webhooks::connected_data(me.as_deref());
                self.emit(webhooks::CONNECTION_CONNECTED, data);
                self.shared.update_connection(|c| {
                    c.state = ConnState::Connected;
                    c.qr = None;
                    c.me = me;
                    c.session_exists = true;
                    c.last_error = None;
                    c.stopped_until = None;
                });
            }
            WaEvent::Disconnected {
                reason,
                will_reconnect,
            } => {
                let was_connected = self.shared.connection().state == ConnState::Connected;
                log::warn!("WhatsApp disconnected: {reason} (will reconnect: {will_reconnect})");
                if was_connected {
                    self.emit(
                        webhooks::CONNECTION_DISCONNECTED,
                        webhooks::disconnected_data(&reason, will_reconnect),
                    );
                }
                self.shared.update_connection(|c| {
                    c.state = ConnState::Disconnected;
                    c.last_error = Some(reason);
                });
            }
            WaEvent::LoggedOut { reason } => {
                let was_connected = self.shared.connection().state == ConnState::Connected;
                if let Err(e) = db::set_setting(&self.conn, SETTING_ME, "") {
                    log::error!("forgetting the linked account failed: {e}");
                }
                log::warn!("WhatsApp logged out: {reason}; pair again to reconnect");
                if was_connected {
                    self.emit(
                        webhooks::CONNECTION_DISCONNECTED,
                        webhooks::disconnected_data(&reason, false),
                    );
                }
                self.shared.update_connection(|c| {
                    c.state = ConnState::LoggedOut;
                    c.qr = None;
                    c.me = None;
                    c.session_exists = false;
                    c.last_error = Some(reason);
                });
            }
            WaEvent::Stopped { why, reason, until } => {
                let state = match why {
                    Stop::Banned => ConnState::Banned,
                    Stop::ClientOutdated => ConnState::ClientOutdated,
                    Stop::Replaced => ConnState::Replaced,
                };
                log::error!("WhatsApp stopped this session: {reason}");
                self.emit(
                    webhooks::CONNECTION_DISCONNECTED,
                    webhooks::stopped_data(&reason, state.as_str(), until),
                );
                self.shared.update_connection(|c| {
                    c.state = state;
                    c.qr = None;
                    c.last_error = Some(reason);
                    c.stopped_until = until;
                });
            }
            WaEvent::ChatName { chat, name } => {
                if let Err(e) = db::set_chat_name(&self.conn, &chat, &name) {
                    log::error!("storing the name of {chat} failed: {e}");
                }
            }
            WaEvent::Flush { done } => {
                let _ = done.send(Ok(()));
            }
            WaEvent::Media { id, media, done } => {
                let result = self.apply_media(&id, &media);
                if let Err(e) = &result {
                    log::error!("recording the media of message {id} failed: {e}");
                }
                if let Some(done) = done {
                    let _ = done.send(result.map_err(|e| e.to_string()));
                }
            }
            WaEvent::Learned { pairs } => {
                let now = clock::now_secs();
                let result = self.conn.transaction().and_then(|tx| {
                    for (lid, pn) in &pairs {
                        db::learn_lid(&tx, lid, pn, now)?;
                    }
                    tx.commit()
                });
                if let Err(e) = result {
                    log::error!("recording LID pairs failed: {e}");
                }
            }
            WaEvent::PendingMedia { reply } => {
                let pending = db::pending_media(&self.conn, 100).map_err(|e| e.to_string());
                let _ = reply.send(pending);
            }
            WaEvent::Sent {
                wa_id,
                outcome,
                done,
            } => {
                let result = self.apply_sent(&wa_id, &outcome);
                if let Err(e) = &result {
                    log::error!("recording the outcome of sending {wa_id} failed: {e}");
                }
                if let Some(done) = done {
                    let _ = done.send(result.map_err(|e| e.to_string()));
                }
            }
            WaEvent::Receipt { wa_ids, status } => {
                if let Err(e) = self.apply_receipt(&wa_ids, status) {
                    log::error!("applying a {} receipt failed: {e}", status.as_str());
                }
            }
        }
    }

    /// Stores messages and their deliveries in one transaction, then
    /// acknowledges each. When that transaction fails, each message is tried
    /// on its own, so one bad message cannot fail the others.
    fn store_batch(&mut self, batch: Vec<Pending>) {
        if batch.len() > 1 {
            match self.store_together(&batch) {
                Ok(stored) => {
                    log::debug!("stored {} messages in one transaction", batch.len());
                    for ((_, ack), stored) in batch.into_iter().zip(stored) {
                        if let Some(ack) = ack {
                            let _ = ack.send(Ok(stored));
                        }
                    }
                    return;
                }
                Err(e) => log::warn!(
                    "storing {} messages together failed ({e}); one by one",
                    batch.len()
                ),
            }
        }
        for (message, ack) in batch {
            self.apply(WaEvent::Message { message, ack });
        }
    }

    /// One transaction for every message of the batch.
    fn store_together(&mut self, batch: &[Pending]) -> db::DbResult<Vec<Stored>> {
        let tx = self.conn.transaction()?;
        let mut stored = Vec::with_capacity(batch.len());
        let mut counts = Counts::default();
        for (m, _) in batch {
            stored.push(store_one(&tx, m, &mut counts)?);
        }
        tx.commit()?;
        self.after_commit(counts);
        Ok(stored)
    }

    /// Counts committed messages, wakes the webhook thread and the event
    /// streams.
    fn after_commit(&self, counts: Counts) {
        self.shared.streams.notify();
        let metrics = &self.shared.metrics;
        metrics
            .messages_in
            .fetch_add(counts.received, Ordering::Relaxed);
        metrics
            .messages_out
            .fetch_add(counts.sent, Ordering::Relaxed);
        if counts.queued > 0 {
            self.webhooks.wake();
        }
    }

    /// Stores the message and its deliveries in one transaction.
    fn store_message(&mut self, m: &IncomingMessage) -> db::DbResult<Stored> {
        let tx = self.conn.transaction()?;
        let mut counts = Counts::default();
        let stored = store_one(&tx, m, &mut counts)?;
        tx.commit()?;
        self.after_commit(counts);
        Ok(stored)
    }

    /// Records fetched media and announces the message it completes (its
    /// webhook waited for the file).
    fn apply_media(&mut self, id: &str, media: &MediaInfo) -> db::DbResult<()> {
        let tx = self.conn.transaction()?;
        let mut counts = Counts::default();
        if let Some(row) = db::set_media(&tx, id, media)? {
            counts.queued += announce(&tx, &row)?;
        }
        tx.commit()?;
        self.after_commit(counts);
        Ok(())
    }

    /// WhatsApp accepted a message we sent (`message.sent`, the original
    /// becomes `replied`) or refused it (`failed`, `message.status`). Only a
    /// pending row changes: a late or repeated answer does nothing.
    fn apply_sent(&mut self, wa_id: &str, outcome: &Result<(), String>) -> db::DbResult<()> {
        let tx = self.conn.transaction()?;
        let mut counts = Counts::default();
        match outcome {
            Ok(()) => {
                if let Some(row) = db::accept_outgoing(&tx, wa_id, DeliveryStatus::Sent)? {
                    counts.sent += 1;
                    counts.queued += announce(&tx, &row)?;
                }
            }
            Err(reason) => {
                if let Some(row) = db::fail_outgoing(&tx, wa_id)? {
                    log::warn!(
                        "WhatsApp did not take message {wa_id} to {}: {reason}",
                        row.phone
                    );
                    let data = webhooks::status_data(&row, DeliveryStatus::Failed, Some(reason));
                    counts.queued += queue_event(&tx, webhooks::MESSAGE_STATUS, data)?;
                }
            }
        }
        tx.commit()?;
        self.after_commit(counts);
        Ok(())
    }

    /// Receipts move our messages forward (`message.status`); one that
    /// reaches a message still pending (its acknowledgement was lost, or
    /// comes later) accepts it first (`message.sent`).
    fn apply_receipt(&mut self, wa_ids: &[String], status: DeliveryStatus) -> db::DbResult<()> {
        let tx = self.conn.transaction()?;
        let mut counts = Counts::default();
        for wa_id in wa_ids {
            let moved = match db::accept_outgoing(&tx, wa_id, status)? {
                Some(row) => {
                    counts.sent += 1;
                    counts.queued += announce(&tx, &row)?;
                    Some(row)
                }
                None => db::advance_delivery(&tx, wa_id, status)?,
            };
            if let Some(row) = moved {
                let data = webhooks::status_data(&row, status, None);
                counts.queued += queue_event(&tx, webhooks::MESSAGE_STATUS, data)?;
            }
        }
        tx.commit()?;
        self.after_commit(counts);
        Ok(())
    }

    /// A reaction, edit or deletion of a stored message, with its event; a
    /// chat's disappearing-messages timer, kept for replies. One aimed at a
    /// message this server never stored (or that its sender may not change)
    /// is logged and otherwise ignored.
    fn apply_update(&mut self, u: &Update) -> db::DbResult<()> {
        let tx = self.conn.transaction()?;
        let now = clock::now_secs();
        for (lid, pn) in &u.mappings {
            db::learn_lid(&tx, lid, pn, now)?;
        }
        let mut counts = Counts::default();
        let mut erased_file = None;
        match &u.action {
            UpdateAction::Expiration { seconds } => {
                let chat = db::phone_of(&tx, &u.chat)?;
                db::set_chat_expiration(&tx, &chat, *seconds)?;
            }
            UpdateAction::Reaction { target, emoji } => {
                if let Some(row) = update_target(&tx, u, target, Change::React)? {
                    let sender = if u.from_me {
                        db::ME.to_string()
                    } else {
                        db::phone_of(&tx, &u.sender)?
                    };
                    if db::set_reaction(&tx, row.seq, &sender, emoji, now)? {
                        let data = webhooks::reaction_data(&row, &sender, emoji);
                        counts.queued += queue_event(&tx, webhooks::MESSAGE_REACTION, data)?;
                    }
                }
            }
            UpdateAction::Edit { target, text } => {
                if let Some(row) = update_target(&tx, u, target, Change::Edit)?
                    && let Some(previous) = db::edit_message(&tx, row.seq, text, now)?
                {
                    let row = db::get_message(&tx, &row.id)?.unwrap_or(row);
                    let data = webhooks::edited_data(&row, &previous);
                    counts.queued += queue_event(&tx, webhooks::MESSAGE_EDITED, data)?;
                }
            }
            UpdateAction::Revoke { target } => {
                if let Some(row) = update_target(&tx, u, target, Change::Delete)?
                    && let Some(file) = db::delete_message(&tx, row.seq, now)?
                {
                    erased_file = file;
                    let data = webhooks::deleted_data(&row);
                    counts.queued += queue_event(&tx, webhooks::MESSAGE_DELETED, data)?;
                }
            }
            UpdateAction::Other { kind } => log::debug!(
                "update {} ({kind}) from {} in {} not applied",
                u.wa_id,
                u.sender,
                u.chat
            ),
        }
        tx.commit()?;
        self.after_commit(counts);
        if let Some(url) = erased_file {
            self.remove_media_file(&url);
        }
        Ok(())
    }

    /// Removes the file of a message deleted for everyone (its row no
    /// longer names it).
    fn remove_media_file(&self, url: &str) {
        let name = url.strip_prefix("/media/").unwrap_or(url);
        if let Some(path) = crate::media::find(&self.shared.config.media_path, name)
            && let Err(e) = std::fs::remove_file(&path)
        {
            log::warn!("removing the file of a deleted message failed: {e}");
        }
    }

    fn remember_me(&self, jid: &str) {
        if let Err(e) = db::set_setting(&self.conn, SETTING_ME, jid) {
            log::error!("remembering the linked account failed: {e}");
        }
    }

    /// Writes a state-change event and its deliveries (their own
    /// transaction: the change itself lives in memory).
    fn emit(&mut self, event: &str, data: serde_json::Value) {
        let payload = webhooks::payload(event, data);
        let result = self.conn.transaction().and_then(|tx| {
            let n = db::enqueue_deliveries(&tx, event, &payload)?;
            tx.commit().map(|()| n)
        });
        match result {
            Ok(n) => {
                self.shared.streams.notify();
                if n > 0 {
                    self.webhooks.wake();
                }
            }
            Err(e) => log::error!("queueing {event} webhooks failed: {e}"),
        }
    }
}

/// What a transaction stored, for the metrics and the webhook wake-up.
#[derive(Default)]
struct Counts {
    received: u64,
    sent: u64,
    queued: usize,
}

/// Stores one message and its webhook deliveries in `tx`: `message.received`
/// for a customer's message (again, with the content, when it fills in a
/// placeholder), `message.sent` with source `phone` for our own. A message
/// whose media is still to be fetched is announced once the file is in
/// (`apply_media`), so its webhook carries the file's URL.
fn store_one(
    tx: &rusqlite::Transaction<'_>,
    m: &IncomingMessage,
    counts: &mut Counts,
) -> db::DbResult<Stored> {
    let row = match db::store_received(tx, &auth::uuid_v4(), m, clock::now_secs())? {
        db::Received::New(row) => {
            if row.direction == Direction::Outgoing {
                counts.sent += 1;
            } else {
                counts.received += 1;
            }
            row
        }
        db::Received::Filled(row) => row,
        db::Received::Duplicate => return Ok(Stored::default()),
    };
    let media_pending =
        row.media_type.is_some() && row.media_url.is_none() && row.media_error.is_none();
    if media_pending {
        return Ok(Stored {
            fetch_media: Some(row.id),
        });
    }
    counts.queued += announce(tx, &row)?;
    Ok(Stored::default())
}

/// Queues the webhook deliveries that announce a stored message.
fn announce(tx: &rusqlite::Transaction<'_>, row: &db::Message) -> db::DbResult<usize> {
    let event = if row.direction == Direction::Outgoing {
        webhooks::MESSAGE_SENT
    } else {
        webhooks::MESSAGE_RECEIVED
    };
    queue_event(tx, event, webhooks::message_data(row))
}

/// Queues an event's deliveries in the transaction of its cause.
fn queue_event(
    tx: &rusqlite::Transaction<'_>,
    event: &str,
    data: serde_json::Value,
) -> db::DbResult<usize> {
    db::enqueue_deliveries(tx, event, &webhooks::payload(event, data))
}

/// The stored message an update names, when its sender may make this
/// change: anyone in the chat may react; only the author edits; a
/// customer deletes their own messages (and, in a group, an admin
/// anyone's), our own account ours (and, as a group admin, anyone's).
fn update_target(
    tx: &rusqlite::Transaction<'_>,
    u: &Update,
    target: &str,
    change: Change,
) -> db::DbResult<Option<db::Message>> {
    let chat = db::phone_of(tx, &u.chat)?;
    let Some(row) = db::message_by_wa_id(tx, &chat, target)? else {
        log::debug!(
            "{change:?} {} from {} aimed at message {target} in {chat}, which is not stored: ignored",
            u.wa_id,
            u.sender
        );
        return Ok(None);
    };
    let ours = row.direction == Direction::Outgoing;
    let author = if u.from_me {
        ours
    } else {
        !ours && row.sender_jid == db::phone_of(tx, &u.sender)?
    };
    let group = chat.ends_with("@g.us");
    let allowed = match change {
        Change::React => true,
        Change::Edit => author,
        Change::Delete => author || group,
    };
    if !allowed {
        log::debug!(
            "{change:?} {} from {} of message {target} in {chat} by someone else: ignored",
            u.wa_id,
            u.sender
        );
        return Ok(None);
    }
    Ok(Some(row))
}

/// What an update does to the message it names.
#[derive(Debug, Clone, Copy)]
enum Change {
    React,
    Edit,
    Delete,
}
