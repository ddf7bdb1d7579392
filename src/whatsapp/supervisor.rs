//! The supervisor: builds a client from `session.db`, runs it, and decides
//! what comes next (reconnect with backoff, idle until a pairing, stop);
//! pairing and the commands that arrive while no client runs.

use super::media_fetch::{MediaFetcher, MediaJob};
use super::receive::{DurableInbox, Forwarder};
use super::send::{self, AckWaiters, Outgoing, send};
use super::translate::{self, Signal};
use super::{CurrentThreadRuntime, DynTransport, WhatsAppConfig, http_client, reconnect_delay};
use crate::wa::{COMMAND_TIMEOUT, Reply, Stop, WaCommand, WaEvent};
use crossbeam_channel::{Sender, bounded};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;
use whatsapp_rust::buffa::Message as _;
use whatsapp_rust::pair_code::PairCodeOptions;
use whatsapp_rust::prelude::{Bot, Client, InboundMessage, Jid, SqliteStore, wa as proto};
use whatsapp_rust::store::{SqliteStoreConfig, Synchronous};

/// A pairing-code request waiting for a connection.
struct PairRequest {
    phone: String,
    reply: Reply<String>,
}

/// What the supervisor does next.
enum Next {
    /// Build a client after `after` (and ask for a pairing code once connected).
    Connect {
        after: Duration,
        pair: Option<PairRequest>,
    },
    /// Logged out: wait until a new pairing is asked for.
    Idle,
    /// WhatsApp stopped this session (outdated client, session taken over):
    /// no reconnect until a restart; commands are still answered.
    Stopped,
    Stop,
}

/// How one client's life ended.
enum End {
    Shutdown,
    LoggedOut {
        reason: String,
        reply: Option<Reply<()>>,
    },
    /// The QR codes of this connection ran out unscanned: show fresh ones.
    QrExhausted,
    /// Another client opened this session (the same session.db running
    /// twice): stop, so the two do not take turns and split the messages.
    Replaced,
    /// WhatsApp banned the account for this long.
    Banned {
        expire: Duration,
        reason: String,
    },
    /// WhatsApp refused this client version.
    ClientOutdated,
    Dropped {
        reason: String,
        /// It stayed logged in for `STABLE_CONNECTION` (resets the backoff).
        stable: bool,
        /// Closed on purpose (the 515 after pairing, a keepalive-triggered
        /// reconnect): reconnect at once.
        expected: bool,
    },
}

/// What a client reported while it ran.
#[derive(Default)]
struct Seen {
    /// When it logged in.
    connected: Option<std::time::Instant>,
    paired: bool,
    disconnect: Option<String>,
    logged_out: Option<String>,
    replaced: bool,
    qr_exhausted: bool,
    banned: Option<(Duration, String)>,
    outdated: bool,
}

/// What the event handler queues for the supervisor.
pub(super) enum FromClient {
    Signal(Signal),
    /// Messages the crate delivers outside the durability hook (placeholder
    /// recoveries); stored the same way, without gating any ack.
    Unhooked(Arc<[InboundMessage]>),
}

pub(super) struct Supervisor {
    pub(super) config: WhatsAppConfig,
    pub(super) events: Sender<WaEvent>,
    pub(super) commands: async_channel::Receiver<WaCommand>,
    pub(super) signals: mpsc::UnboundedReceiver<(u64, FromClient)>,
    pub(super) signal_tx: mpsc::UnboundedSender<(u64, FromClient)>,
    /// Numbers clients, so late events of a replaced client are ignored.
    pub(super) generation: u64,
    /// Consecutive connections that failed or dropped before logging in.
    pub(super) failures: u32,
    /// Whether the store held a paired device when the last client started.
    pub(super) paired: bool,
    /// Media downloads, shared by every client this supervisor starts.
    pub(super) media: MediaFetcher,
    /// Sends waiting for WhatsApp's acknowledgement.
    pub(super) acks: AckWaiters,
    /// How long a send waits for it (`SEND_TIMEOUT`).
    pub(super) send_timeout: Duration,
    /// Calls offered and not yet ended (a missed call unless answered).
    pub(super) calls: std::collections::VecDeque<translate::CallOffer>,
}

/// How long a connection must have stayed logged in for a drop to start the
/// backoff afresh: a server that logs in and drops at once must not get a
/// reconnect every second.
const STABLE_CONNECTION: Duration = Duration::from_secs(30);
/// Calls remembered while they ring (more at once means a flood).
const RINGING_CALLS: usize = 64;

impl Supervisor {
    pub(super) async fn run(mut self) {
        let mut next = Next::Connect {
            after: Duration::ZERO,
            pair: None,
        };
        loop {
            next = match next {
                Next::Stop => break,
                Next::Idle => self.idle(true).await,
                Next::Stopped => self.idle(false).await,
                Next::Connect { after, pair } => {
                    if !after.is_zero() {
                        log::info!("reconnecting to WhatsApp in {} s", after.as_secs());
                        if let Some(interrupted) = self.pause(after).await {
                            next = interrupted;
                            continue;
                        }
                    }
                    let end = self.run_client(pair).await;
                    self.after(end).await
                }
            };
        }
    }

    /// Decides what follows a client's end.
    async fn after(&mut self, end: End) -> Next {
        match end {
            End::Shutdown => Next::Stop,
            End::LoggedOut { reason, reply } => {
                self.failures = 0;
                self.paired = false;
                self.forget_session().await;
                self.emit(WaEvent::LoggedOut { reason }).await;
                if let Some(reply) = reply {
                    self.applied().await;
                    let _ = reply.send(Ok(()));
                }
                Next::Idle
            }
            End::Replaced => {
                self.emit(WaEvent::Stopped {
                    why: Stop::Replaced,
                    reason: "another client opened this WhatsApp session (is this server running \
                             twice?); stopped so the two do not take turns: stop the other one, \
                             then restart this server"
                        .into(),
                    until: None,
                })
                .await;
                Next::Stopped
            }
            End::ClientOutdated => {
                self.emit(WaEvent::Stopped {
                    why: Stop::ClientOutdated,
                    reason: "WhatsApp refused this client version as outdated: upgrade \
                             whatsapp-api, then restart it"
                        .into(),
                    until: None,
                })
                .await;
                Next::Stopped
            }
            End::Banned { expire, reason } => {
                let until = crate::clock::now_secs() + expire.as_secs() as i64;
                self.emit(WaEvent::Stopped {
                    why: Stop::Banned,
                    reason: format!(
                        "temporarily banned by WhatsApp ({reason}); reconnecting when the ban ends"
                    ),
                    until: Some(until),
                })
                .await;
                self.failures = 0;
                Next::Connect {
                    after: expire.max(Duration::from_secs(1)),
                    pair: None,
                }
            }
            End::QrExhausted => {
                self.failures = 0;
                Next::Connect {
                    after: Duration::ZERO,
                    pair: None,
                }
            }
            End::Dropped {
                reason,
                stable,
                expected,
            } => {
                if stable {
                    self.failures = 0;
                }
                if expected {
                    return Next::Connect {
                        after: Duration::ZERO,
                        pair: None,
                    };
                }
                let after = reconnect_delay(self.failures);
                self.failures = self.failures.saturating_add(1);
                self.emit(WaEvent::Disconnected {
                    reason,
                    will_reconnect: true,
                })
                .await;
                Next::Connect { after, pair: None }
            }
        }
    }

    /// Builds a client from the store and runs it until it ends.
    async fn run_client(&mut self, pair: Option<PairRequest>) -> End {
        self.generation += 1;
        let generation = self.generation;
        let failed = |reason: String, pair: Option<PairRequest>| {
            if let Some(request) = pair {
                let _ = request.reply.send(Err(reason.clone()));
            }
            End::Dropped {
                reason,
                stable: false,
                expected: false,
            }
        };
        // FULL, like the app database: the store holds the Signal sessions
        // and keys, and an update lost on a power cut (the crate's default,
        // NORMAL, syncs only at checkpoints) breaks decryption for that
        // contact until WhatsApp re-establishes the session.
        let store_config = SqliteStoreConfig {
            synchronous: Synchronous::Full,
            ..SqliteStoreConfig::default()
        };
        let session_path = self.config.session_path.to_string_lossy();
        let store = match SqliteStore::with_config(&session_path, store_config).await {
            Ok(store) => store,
            Err(e) => {
                let path = self.config.session_path.display();
                return failed(format!("could not open SESSION_PATH {path}: {e}"), pair);
            }
        };
        let builder = Bot::builder()
            .with_backend(store)
            .with_http_client(http_client())
            .with_runtime(CurrentThreadRuntime)
            .with_event_handler(Forwarder {
                generation,
                to_supervisor: self.signal_tx.clone(),
                acks: Arc::clone(&self.acks),
            })
            .with_inbound_durability_hook(self.inbox())
            .skip_history_sync();
        let built = match &self.config.test_hook {
            Some(hook) => {
                builder
                    .with_version(hook.version)
                    .with_transport_factory(DynTransport(Arc::clone(&hook.transport)))
                    .build()
                    .await
            }
            None => builder.build().await,
        };
        let bot = match built {
            Ok(bot) => bot,
            Err(e) => return failed(format!("could not start the WhatsApp client: {e}"), pair),
        };
        let client = bot.client();
        // A paired device has its phone-number JID in the store.
        self.paired = client.pn().is_some();
        // Reconnects are ours (see the module comment): the run loop ends at
        // the first disconnect instead of backing off up to 900 s.
        client.enable_auto_reconnect.store(false, Ordering::SeqCst);
        let mut handle = bot.spawn();
        if let Some(request) = pair {
            request_pair_code(Arc::clone(&client), request);
        }

        let mut seen = Seen::default();
        let mut logout_reply = None;
        let mut shutdown = false;
        loop {
            tokio::select! {
                _ = &mut handle => break,
                Some((from, item)) = self.signals.recv() => {
                    if from == generation {
                        self.on_client_event(item, &client, &mut seen).await;
                    }
                }
                command = self.commands.recv() => match command.ok() {
                    None | Some(WaCommand::Shutdown) => {
                        shutdown = true;
                        client.disconnect().await;
                        (&mut handle).await;
                        break;
                    }
                    Some(WaCommand::Logout { reply }) => {
                        logout_reply = Some(reply);
                        // Unlinks the device (when online), reports LoggedOut
                        // and ends the run loop.
                        client.logout().await;
                    }
                    Some(WaCommand::Send { to, text, media, quote, wa_id, expiration, reply }) => {
                        let client = Arc::clone(&client);
                        let acks = Arc::clone(&self.acks);
                        let events = self.events.clone();
                        let limit = self.send_timeout;
                        let out = Outgoing { to, text, media, quote, wa_id, expiration };
                        tokio::spawn(async move {
                            let _ = reply.send(send(&client, &acks, &events, out, limit).await);
                        });
                    }
                    Some(WaCommand::React { to, target, emoji, reply }) => {
                        let client = Arc::clone(&client);
                        tokio::spawn(async move {
                            let _ = reply.send(send::react(&client, &to, target, &emoji).await);
                        });
                    }
                    Some(WaCommand::MarkRead { chat, sender, wa_ids, reply }) => {
                        let client = Arc::clone(&client);
                        tokio::spawn(async move {
                            let _ = reply.send(send::mark_read(&client, &chat, &sender, &wa_ids).await);
                        });
                    }
                    Some(WaCommand::Typing { to, typing, reply }) => {
                        let client = Arc::clone(&client);
                        tokio::spawn(async move {
                            let _ = reply.send(send::typing(&client, &to, typing).await);
                        });
                    }
                    Some(WaCommand::Pair { reply }) => {
                        // A client is running: either paired, or already
                        // showing QR codes.
                        let answer = if self.paired || seen.paired {
                            Err("already paired; log out first".to_string())
                        } else {
                            Ok(())
                        };
                        let _ = reply.send(answer);
                    }
                    Some(WaCommand::PairCode { phone, reply }) => {
                        if self.paired || seen.paired {
                            let _ = reply.send(Err("already paired; log out first".into()));
                        } else {
                            request_pair_code(Arc::clone(&client), PairRequest { phone, reply });
                        }
                    }
                    Some(other) => reject_simulator_command(other),
                },
            }
        }
        // Everything the client dispatched before its run loop returned is
        // already queued.
        while let Ok((from, item)) = self.signals.try_recv() {
            if from == generation {
                self.on_client_event(item, &client, &mut seen).await;
            }
        }
        if !shutdown {
            // Fires the client's terminal shutdown (its background tasks end)
            // and flushes its state; the client is then dropped, never reused.
            client.disconnect().await;
        }
        drop(handle);
        drop(client);

        if shutdown {
            End::Shutdown
        } else if let Some(reason) = seen.logged_out {
            End::LoggedOut {
                reason,
                reply: logout_reply,
            }
        } else if seen.replaced {
            End::Replaced
        } else if let Some((expire, reason)) = seen.banned {
            End::Banned { expire, reason }
        } else if seen.outdated {
            End::ClientOutdated
        } else if seen.qr_exhausted {
            End::QrExhausted
        } else {
            let stable = seen
                .connected
                .is_some_and(|at| at.elapsed() >= STABLE_CONNECTION);
            // A run that paired, or stayed logged in, and then ended without
            // a Disconnected event was closed on purpose: the 515 after
            // pairing, or the crate's own "reconnect now" (keepalive).
            End::Dropped {
                expected: seen.disconnect.is_none() && (seen.paired || stable),
                reason: seen
                    .disconnect
                    .unwrap_or_else(|| "could not connect to WhatsApp".into()),
                stable,
            }
        }
    }

    async fn on_client_event(&mut self, item: FromClient, client: &Arc<Client>, seen: &mut Seen) {
        let signal = match item {
            FromClient::Signal(signal) => signal,
            FromClient::Unhooked(batch) => {
                let inbox = self.inbox();
                let client = Arc::clone(client);
                tokio::spawn(async move {
                    for item in batch.iter() {
                        if let Err(e) = inbox.commit(&client, &item.info, &item.message).await {
                            log::error!("storing recovered message {} failed: {e}", item.info.id);
                        }
                    }
                });
                return;
            }
        };
        match signal {
            Signal::Qr { code, valid_for } => {
                print_qr(&code, valid_for);
                self.emit(WaEvent::Qr { code, valid_for }).await;
            }
            Signal::PairingCode { .. } => {
                // The code itself goes only to whoever asked for it.
                log::info!("pairing code issued: enter it on the phone under Linked devices");
            }
            Signal::Paired { jid } => {
                seen.paired = true;
                log::info!("paired with WhatsApp account {jid}");
                self.emit(WaEvent::Paired { jid }).await;
            }
            Signal::Connected => {
                // The backoff resets only once the connection proves stable
                // (`STABLE_CONNECTION`), when it ends.
                seen.connected = Some(std::time::Instant::now());
                let jid = client.pn().map(|j| j.to_non_ad_string());
                self.emit(WaEvent::Connected { jid }).await;
                go_unavailable(client);
                self.resume_media(client);
            }
            Signal::Banned { expire, reason } => seen.banned = Some((expire, reason)),
            Signal::ClientOutdated => seen.outdated = true,
            Signal::CallOffered(offer) => {
                if self.calls.len() == RINGING_CALLS {
                    self.calls.pop_front();
                }
                self.calls.push_back(offer);
            }
            Signal::CallEnded { call_id, answered } => {
                let Some(at) = self.calls.iter().position(|c| c.call_id == call_id) else {
                    return;
                };
                let offer = self.calls.remove(at).expect("found above");
                if !answered {
                    self.missed_call(&offer).await;
                }
            }
            Signal::CallMissed(offer) => self.missed_call(&offer).await,
            Signal::Learned(pairs) => {
                if !pairs.is_empty() {
                    self.emit(WaEvent::Learned { pairs }).await;
                }
            }
            Signal::Placeholder(message) => {
                self.emit(WaEvent::Message { message, ack: None }).await;
            }
            Signal::Sent { wa_id, outcome } => {
                self.emit(WaEvent::Sent {
                    wa_id,
                    outcome,
                    done: None,
                })
                .await;
            }
            Signal::Disconnected { reason } => seen.disconnect = Some(reason),
            Signal::LoggedOut { reason } => seen.logged_out = Some(reason),
            Signal::Replaced => seen.replaced = true,
            Signal::QrExhausted => seen.qr_exhausted = true,
            Signal::Receipt { wa_ids, status } => {
                self.emit(WaEvent::Receipt { wa_ids, status }).await;
            }
        }
    }

    /// Waits out a reconnect pause, answering commands meanwhile. Some(next)
    /// when a command changed the plan.
    async fn pause(&mut self, delay: Duration) -> Option<Next> {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return None,
                // Late events of the client that just ended: nothing to do.
                Some(_) = self.signals.recv() => {}
                command = self.commands.recv() => {
                    if let Some(next) = self.offline_command(command.ok(), false).await {
                        return Some(next);
                    }
                }
            }
        }
    }

    /// No client runs until a command changes that: logged out, until a new
    /// pairing is asked for (`Pair`, a pairing-code request, or logout
    /// again); stopped by WhatsApp (still paired), until a logout.
    async fn idle(&mut self, logged_out: bool) -> Next {
        if logged_out {
            log::info!("WhatsApp is logged out; waiting for a new pairing");
        }
        loop {
            tokio::select! {
                Some(_) = self.signals.recv() => {}
                command = self.commands.recv() => {
                    if let Some(next) = self.offline_command(command.ok(), logged_out).await {
                        return next;
                    }
                }
            }
        }
    }

    /// A command while no client runs. Some(next) when it changes the plan.
    async fn offline_command(
        &mut self,
        command: Option<WaCommand>,
        logged_out: bool,
    ) -> Option<Next> {
        match command {
            None | Some(WaCommand::Shutdown) => Some(Next::Stop),
            Some(
                WaCommand::Send { reply, .. }
                | WaCommand::React { reply, .. }
                | WaCommand::MarkRead { reply, .. }
                | WaCommand::Typing { reply, .. },
            ) => {
                let _ = reply.send(Err("WhatsApp is not connected".into()));
                None
            }
            Some(WaCommand::PairCode { reply, .. }) if self.paired && !logged_out => {
                let _ = reply.send(Err("already paired; log out first".into()));
                None
            }
            Some(WaCommand::PairCode { phone, reply }) => Some(Next::Connect {
                after: Duration::ZERO,
                pair: Some(PairRequest { phone, reply }),
            }),
            Some(WaCommand::Pair { reply }) if self.paired && !logged_out => {
                let _ = reply.send(Err("already paired; log out first".into()));
                None
            }
            Some(WaCommand::Pair { reply }) => {
                let _ = reply.send(Ok(()));
                Some(Next::Connect {
                    after: Duration::ZERO,
                    pair: None,
                })
            }
            Some(WaCommand::Logout { reply }) if logged_out => {
                // Already unlinked: start a new pairing from clean keys.
                let _ = reply.send(Ok(()));
                Some(Next::Connect {
                    after: Duration::ZERO,
                    pair: None,
                })
            }
            Some(WaCommand::Logout { reply }) => {
                // Offline, the phone cannot be told; the keys go anyway, so
                // this device is unusable and the phone drops it in time.
                self.failures = 0;
                self.paired = false;
                self.forget_session().await;
                self.emit(WaEvent::LoggedOut {
                    reason: "logged out while disconnected".into(),
                })
                .await;
                self.applied().await;
                let _ = reply.send(Ok(()));
                Some(Next::Idle)
            }
            Some(other) => {
                reject_simulator_command(other);
                None
            }
        }
    }

    fn inbox(&self) -> DurableInbox {
        DurableInbox {
            events: self.events.clone(),
            media: self.media.clone(),
        }
    }

    /// A call nobody answered leaves a row in its chat.
    async fn missed_call(&self, offer: &translate::CallOffer) {
        log::info!("missed call from {}", offer.caller);
        let message = Box::new(translate::missed_call(offer));
        self.emit(WaEvent::Message { message, ack: None }).await;
    }

    /// Fetches the media of messages stored before a restart cut their
    /// download short.
    fn resume_media(&self, client: &Arc<Client>) {
        let events = self.events.clone();
        let fetcher = self.media.clone();
        let client = Arc::clone(client);
        tokio::spawn(async move {
            let asked = tokio::task::spawn_blocking(move || {
                let (reply, answer) = bounded(1);
                events.send(WaEvent::PendingMedia { reply }).ok()?;
                answer.recv_timeout(COMMAND_TIMEOUT).ok()?.ok()
            })
            .await;
            let Ok(Some(pending)) = asked else { return };
            for p in pending {
                let message = match proto::Message::decode_from_slice(&p.raw) {
                    Ok(message) => message,
                    Err(e) => {
                        log::warn!("message {}: its stored protobuf does not decode: {e}", p.id);
                        continue;
                    }
                };
                let (Some(spec), Ok(chat), Ok(sender)) = (
                    translate::media_spec(&message),
                    p.chat.parse::<Jid>(),
                    p.sender.parse::<Jid>(),
                ) else {
                    continue;
                };
                let job = MediaJob {
                    id: p.id,
                    message,
                    spec,
                    wa_id: p.wa_id,
                    chat,
                    sender,
                    from_me: p.from_me,
                };
                fetcher.spawn(Arc::clone(&client), job);
            }
        });
    }

    /// Hands an event to the sink without ever blocking the runtime thread.
    async fn emit(&self, event: WaEvent) {
        let event = match self.events.try_send(event) {
            Ok(()) => return,
            Err(crossbeam_channel::TrySendError::Full(event)) => event,
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => {
                log::warn!("the event sink has stopped; dropping a WhatsApp event");
                return;
            }
        };
        let events = self.events.clone();
        let _ = tokio::task::spawn_blocking(move || events.send(event)).await;
    }

    /// Waits (off the runtime thread) until the sink applied every event
    /// sent before: a command that changed the state answers after this, so
    /// whoever asked sees the new state at once, as with the simulator.
    async fn applied(&self) {
        let (done, applied) = bounded(1);
        self.emit(WaEvent::Flush { done }).await;
        let _ = tokio::task::spawn_blocking(move || applied.recv_timeout(COMMAND_TIMEOUT)).await;
    }

    /// Deletes the store file: the device keys go, the next client starts
    /// unpaired. The ended client is dropped first; an SQLite file removed
    /// under an open handle is safe on Unix (the handle keeps the old inode).
    async fn forget_session(&self) {
        let path = self.config.session_path.clone();
        let removed = tokio::task::spawn_blocking(move || {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let mut file = path.clone().into_os_string();
                file.push(suffix);
                match std::fs::remove_file(&file) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(format!("{}: {e}", PathBuf::from(file).display())),
                }
            }
            Ok(())
        })
        .await;
        match removed {
            Ok(Ok(())) => log::info!("WhatsApp session keys deleted"),
            Ok(Err(e)) => log::error!("could not delete the WhatsApp session: {e}"),
            Err(e) => log::error!("could not delete the WhatsApp session: {e}"),
        }
    }
}

fn reject_simulator_command(command: WaCommand) {
    const NO: &str = "only available with WHATSAPP_BACKEND=simulator";
    match command {
        WaCommand::SimInject { reply, .. } => drop(reply.send(Err(NO.into()))),
        WaCommand::SimConnection { reply, .. } | WaCommand::SimFailSends { reply, .. } => {
            drop(reply.send(Err(NO.into())))
        }
        WaCommand::SimSent { reply } => drop(reply.send(Err(NO.into()))),
        WaCommand::SimRaw { reply, .. } => drop(reply.send(Err(NO.into()))),
        WaCommand::SimUpdate { reply, .. } | WaCommand::SimReceipt { reply, .. } => {
            drop(reply.send(Err(NO.into())))
        }
        _ => {}
    }
}

/// Prints the QR code when a person is watching the terminal.
fn print_qr(code: &str, valid_for: Duration) {
    if !std::io::stdout().is_terminal() {
        return;
    }
    if let Some(drawing) = crate::qr::terminal(code) {
        println!(
            "Scan with WhatsApp (Settings > Linked devices > Link a device); valid {} s:\n{drawing}",
            valid_for.as_secs()
        );
    }
}

fn request_pair_code(client: Arc<Client>, request: PairRequest) {
    tokio::spawn(async move {
        let result = async {
            client
                .wait_for_socket(Duration::from_secs(20))
                .await
                .map_err(|e| format!("WhatsApp is not reachable: {e}"))?;
            client
                .pair_with_code(PairCodeOptions {
                    phone_number: request.phone,
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("pairing code request failed: {e}"))
        }
        .await;
        let _ = request.reply.send(result);
    });
}

/// Tells WhatsApp this linked device is unavailable once it is connected.
/// The crate announces it available at every connect and never says
/// otherwise; a companion that stays "available" keeps the owner's phone from
/// showing notifications.
fn go_unavailable(client: &Arc<Client>) {
    let client = Arc::clone(client);
    tokio::spawn(async move {
        if let Err(e) = client.presence().set_unavailable().await {
            log::debug!("could not set this device unavailable: {e}");
        }
    });
}
