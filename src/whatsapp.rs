//! The real WhatsApp backend (WHATSAPP_BACKEND=whatsapp): one thread,
//! `whatsapp`, owning a tokio current-thread runtime and a whatsapp-rust
//! client, behind the same `WaCommand`/`WaEvent` door as the simulator.
//! This module (with `whatsapp/`) is the only code that uses whatsapp-rust.
//!
//! Lifecycle. A supervisor task builds a client from `session.db`, runs it
//! until it ends, and decides what comes next. A client whose run loop ended
//! is torn down and replaced by a new one built from the same store; it is
//! never reused. The crate's own auto-reconnect is switched off because its
//! Fibonacci backoff grows to 900 s and cannot be capped from outside (the
//! attempt counter is crate-private); reconnects follow `reconnect_delay`
//! instead: 1 s, 2 s, 4 s … capped at 60 s, reset only once a connection
//! stayed logged in for 30 s (`STABLE_CONNECTION`: a server that logs us in
//! and drops at once must not get a reconnect every second), and at once
//! after the deliberate close that follows pairing. Logged out (unlinked from
//! the phone, 401, or our own logout) means no reconnect: the device keys are
//! deleted with the store file and the backend idles until a new pairing is
//! asked for. WhatsApp stopping the session is a stopped state, not retried:
//! another client took the session over (two copies of one session would
//! take turns and split the messages between two databases), or this client
//! version is outdated; a temporary ban is waited out to its end. Once
//! connected, the device tells WhatsApp it is unavailable, as the crate only
//! ever says "available" and the owner's phone would stop notifying.
//!
//! Durability. Incoming messages go through an `InboundDurabilityHook`: the
//! hook translates each message, hands it to the sink and awaits the sink's
//! commit answer (on a blocking thread, never on the runtime thread) before
//! returning, and only then does the crate acknowledge the message to
//! WhatsApp. Media is fetched after that commit (`MediaFetcher`).

mod translate;

use crate::media;
use crate::wa::{
    COMMAND_TIMEOUT, Inbound, MediaInfo, MediaSpec, Quote, RawMessage, Reply, Stop, Stored,
    WaCommand, WaEvent,
};
use crossbeam_channel::{Receiver, Sender, bounded};
use std::future::Future;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use translate::Signal;
use whatsapp_rust::buffa::Message as _;
use whatsapp_rust::download::{DownloadParams, Downloadable};
use whatsapp_rust::http::HttpStatusError;
use whatsapp_rust::pair_code::PairCodeOptions;
use whatsapp_rust::prelude::{
    Bot, Client, Event, EventHandler, InboundMessage, Jid, MessageBuilderExt, MessageInfo,
    SqliteStore, wa as proto,
};
use whatsapp_rust::store::{SqliteStoreConfig, Synchronous};
use whatsapp_rust::transport::{Transport, TransportEvent, TransportFactory};
use whatsapp_rust::wacore::runtime::{AbortHandle, Runtime};
use whatsapp_rust::wacore_binary::jid::JidExt;
use whatsapp_rust::{InboundDurabilityHook, anyhow, async_channel};
use whatsapp_rust::{MediaRetryResult, MediaReuploadRequest, SendOptions};

/// What the backend needs from the configuration.
pub struct WhatsAppConfig {
    /// The whatsapp-rust store (device keys); deleted on logout.
    pub session_path: PathBuf,
    pub media_dir: PathBuf,
    pub media_max_bytes: u64,
    /// Offline tests only: replaces the network. Never set from the
    /// environment (see `lib::start_with`).
    pub test_hook: Option<TestHook>,
}

/// Replaces the WhatsApp servers with an in-process transport, and pins the
/// client version so no HTTP version lookup is made.
#[derive(Clone)]
pub struct TestHook {
    pub transport: Arc<dyn TransportFactory>,
    pub version: (u32, u32, u32),
    /// A shorter wait for a send's acknowledgement than `SEND_TIMEOUT`.
    pub send_timeout: Option<Duration>,
    /// Shorter pauses between media download attempts than
    /// `MEDIA_RETRY_DELAYS`.
    pub media_retry_delays: Option<&'static [Duration]>,
}

impl std::fmt::Debug for TestHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestHook")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// The crate's HTTP client (media downloads and uploads, the version
/// lookup) with timeouts: ureq waits forever by default, and one stalled
/// download would then hold a blocking thread for good.
fn http_client() -> whatsapp_rust::http::UreqHttpClient {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .timeout_per_write(Some(Duration::from_secs(60)))
        .max_idle_connections(8)
        .build()
        .into();
    whatsapp_rust::http::UreqHttpClient::with_agent(agent)
}

/// The pause before reconnect attempt `failures + 1`: the first within about
/// a second, then doubling, capped at 60 s. No jitter: one client per server.
pub fn reconnect_delay(failures: u32) -> Duration {
    const STEPS: [u64; 7] = [1, 2, 4, 8, 16, 32, 60];
    Duration::from_secs(STEPS[(failures as usize).min(STEPS.len() - 1)])
}

/// Starts the `whatsapp` thread. It stops on `WaCommand::Shutdown` or when
/// every command sender is gone; its event senders go with it, which stops
/// the sink.
pub fn spawn(
    config: WhatsAppConfig,
    commands: Receiver<WaCommand>,
    events: Sender<WaEvent>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("whatsapp".into())
        .spawn(move || {
            // Blocking work (the crate's SQLite store and downloads, our waits
            // on the sink) runs on tokio's blocking pool; the bound keeps a
            // flood from spawning threads without limit.
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .max_blocking_threads(16)
                .thread_name("whatsapp-blocking")
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    log::error!("could not start the WhatsApp runtime: {e}");
                    return;
                }
            };
            // Bounded like the door itself; the bridge blocks, never the runtime.
            let (command_tx, command_rx) = mpsc::channel(256);
            let bridge = std::thread::Builder::new()
                .name("whatsapp-commands".into())
                .spawn(move || bridge_commands(commands, command_tx));
            if let Err(e) = bridge {
                log::error!("could not start the WhatsApp command bridge: {e}");
                return;
            }
            let (signal_tx, signal_rx) = mpsc::unbounded_channel();
            let send_timeout = config
                .test_hook
                .as_ref()
                .and_then(|hook| hook.send_timeout)
                .unwrap_or(SEND_TIMEOUT);
            let mut media = MediaFetcher::new(
                events.clone(),
                config.media_dir.clone(),
                config.media_max_bytes,
            );
            if let Some(delays) = config.test_hook.as_ref().and_then(|h| h.media_retry_delays) {
                media.delays = delays;
            }
            let supervisor = Supervisor {
                config,
                events,
                commands: command_rx,
                signals: signal_rx,
                signal_tx,
                generation: 0,
                failures: 0,
                paired: false,
                media,
                acks: Default::default(),
                send_timeout,
                calls: Default::default(),
            };
            runtime.block_on(supervisor.run());
            // Drops leftover tasks (and with them every event sender).
            runtime.shutdown_timeout(Duration::from_secs(2));
            log::debug!("WhatsApp backend stopped");
        })
}

/// Moves commands from the synchronous door onto the runtime. A blocking
/// `recv` on the runtime thread would stall the connection (keepalives
/// included), so it happens here.
fn bridge_commands(commands: Receiver<WaCommand>, to_runtime: mpsc::Sender<WaCommand>) {
    for command in commands {
        let stop = matches!(command, WaCommand::Shutdown);
        if to_runtime.blocking_send(command).is_err() || stop {
            return;
        }
    }
}

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
enum FromClient {
    Signal(Signal),
    /// Messages the crate delivers outside the durability hook (placeholder
    /// recoveries); stored the same way, without gating any ack.
    Unhooked(Arc<[InboundMessage]>),
}

struct Supervisor {
    config: WhatsAppConfig,
    events: Sender<WaEvent>,
    commands: mpsc::Receiver<WaCommand>,
    signals: mpsc::UnboundedReceiver<(u64, FromClient)>,
    signal_tx: mpsc::UnboundedSender<(u64, FromClient)>,
    /// Numbers clients, so late events of a replaced client are ignored.
    generation: u64,
    /// Consecutive connections that failed or dropped before logging in.
    failures: u32,
    /// Whether the store held a paired device when the last client started.
    paired: bool,
    /// Media downloads, shared by every client this supervisor starts.
    media: MediaFetcher,
    /// Sends waiting for WhatsApp's acknowledgement.
    acks: AckWaiters,
    /// How long a send waits for it (`SEND_TIMEOUT`).
    send_timeout: Duration,
    /// Calls offered and not yet ended (a missed call unless answered).
    calls: std::collections::VecDeque<translate::CallOffer>,
}

/// How long a connection must have stayed logged in for a drop to start the
/// backoff afresh: a server that logs in and drops at once must not get a
/// reconnect every second.
const STABLE_CONNECTION: Duration = Duration::from_secs(30);
/// Calls remembered while they ring (more at once means a flood).
const RINGING_CALLS: usize = 64;

impl Supervisor {
    async fn run(mut self) {
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
                command = self.commands.recv() => match command {
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
                    Some(WaCommand::Send { to, text, quote, wa_id, expiration, reply }) => {
                        let client = Arc::clone(&client);
                        let acks = Arc::clone(&self.acks);
                        let events = self.events.clone();
                        let limit = self.send_timeout;
                        let out = Outgoing { to, text, quote, wa_id, expiration };
                        tokio::spawn(async move {
                            let _ = reply.send(send(&client, &acks, &events, out, limit).await);
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
                    if let Some(next) = self.offline_command(command, false).await {
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
                    if let Some(next) = self.offline_command(command, logged_out).await {
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
            Some(WaCommand::Send { reply, .. }) => {
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

/// Sends waiting for WhatsApp's server acknowledgement of their message id.
type AckWaiters =
    Arc<std::sync::Mutex<std::collections::HashMap<String, oneshot::Sender<Option<String>>>>>;

/// How long a send waits for the message to go out and be acknowledged:
/// inside the HTTP worker's own wait (`COMMAND_TIMEOUT`), so the worker
/// gets an answer, not a timeout.
const SEND_TIMEOUT: Duration = Duration::from_secs(25);

/// One reply to send, as the door's `Send` carries it.
struct Outgoing {
    to: String,
    text: String,
    quote: Option<Quote>,
    wa_id: String,
    expiration: Option<u32>,
}

/// Sends a text under the id chosen for it (a retry sends the same id, so
/// the customer sees one message), as a WhatsApp reply quoting the original,
/// with the chat's disappearing timer; then waits for WhatsApp's server to
/// acknowledge it — the crate's send returns once the stanza is written,
/// and a refusal only shows in that acknowledgement's error code. The
/// outcome goes to the sink before the caller hears it. Without an answer
/// in time nothing is recorded: the row stays pending, and a late
/// acknowledgement still settles it (`Forwarder`).
async fn send(
    client: &Arc<Client>,
    acks: &AckWaiters,
    events: &Sender<WaEvent>,
    out: Outgoing,
    limit: Duration,
) -> Result<(), String> {
    let context = match &out.quote {
        Some(q) => {
            let original = translate::quoted_message(q.raw.as_deref(), &q.text);
            Some(whatsapp_rust::proto_helpers::build_quote_context(
                q.wa_id.clone(),
                q.sender_jid.clone(),
                &original,
            ))
        }
        // A bare text cannot carry the timer; an extended one can.
        None => out.expiration.map(|_| proto::ContextInfo::default()),
    };
    let message = match context {
        Some(context) => proto::Message::text_with_context(out.text, context),
        None => proto::Message::text(out.text),
    };
    let mut options = SendOptions::default().with_message_id(out.wa_id.clone());
    if let Some(seconds) = out.expiration {
        options = options.with_ephemeral_expiration(seconds);
    }
    let (ack_tx, ack_rx) = oneshot::channel();
    // Registered before sending: the acknowledgement can beat the send's return.
    lock(acks).insert(out.wa_id.clone(), ack_tx);
    let deadline = tokio::time::Instant::now() + limit;
    let outcome = match out.to.parse::<Jid>() {
        Err(e) => Some(Err(format!("invalid chat JID {:?}: {e}", out.to))),
        Ok(chat) => {
            let sending = client.send_message_with_options(chat, message, options);
            match tokio::time::timeout_at(deadline, sending).await {
                Ok(Err(e)) => Some(Err(format!("send failed: {e}"))),
                Err(_) => None,
                Ok(Ok(_)) => match tokio::time::timeout_at(deadline, ack_rx).await {
                    Ok(Ok(None)) => Some(Ok(())),
                    Ok(Ok(Some(code))) => Some(Err(format!("WhatsApp refused it (error {code})"))),
                    Ok(Err(_)) | Err(_) => None,
                },
            }
        }
    };
    lock(acks).remove(&out.wa_id);
    let Some(outcome) = outcome else {
        return Err("WhatsApp did not confirm the message in time".into());
    };
    let events = events.clone();
    let recorded = outcome.clone();
    let applied = tokio::task::spawn_blocking(move || {
        let (done, applied) = bounded(1);
        events
            .send(WaEvent::Sent {
                wa_id: out.wa_id,
                outcome: recorded,
                done: Some(done),
            })
            .map_err(|_| "the event sink has stopped".to_string())?;
        applied
            .recv_timeout(COMMAND_TIMEOUT)
            .map_err(|_| "the event sink did not answer in time".to_string())?
    })
    .await
    .map_err(|e| format!("recording the send failed: {e}"))?;
    applied.and(outcome)
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Called synchronously inside the client's event dispatch on the runtime
/// thread, so it must never block: it queues on an unbounded channel (a
/// trickle of lifecycle events and receipts, drained by the supervisor at
/// once; bounding it would mean dropping or blocking).
struct Forwarder {
    generation: u64,
    to_supervisor: mpsc::UnboundedSender<(u64, FromClient)>,
    /// Sends waiting for their acknowledgement: answered from here directly.
    acks: AckWaiters,
}

impl EventHandler for Forwarder {
    fn handle_event(&self, event: Arc<Event>) {
        let item = match &*event {
            Event::Messages(batch) if !batch.hook_committed => {
                FromClient::Unhooked(Arc::clone(&batch.messages))
            }
            Event::ServerAck(ack) if ack.class.as_deref().is_none_or(|c| c == "message") => {
                if let Some(waiter) = lock(&self.acks).remove(&ack.id) {
                    let _ = waiter.send(ack.error.clone());
                    return;
                }
                // Too late for its send (or not one of ours): still settles
                // a pending row.
                FromClient::Signal(Signal::Sent {
                    wa_id: ack.id.clone(),
                    outcome: match &ack.error {
                        None => Ok(()),
                        Some(code) => Err(format!("WhatsApp refused it (error {code})")),
                    },
                })
            }
            other => match translate::signal(other) {
                Some(signal) => FromClient::Signal(signal),
                None => return,
            },
        };
        let _ = self.to_supervisor.send((self.generation, item));
    }
}

/// The inbound durability hook: commit to SQLite first, then the crate acks.
#[derive(Clone)]
struct DurableInbox {
    events: Sender<WaEvent>,
    media: MediaFetcher,
}

#[whatsapp_rust::async_trait]
impl InboundDurabilityHook for DurableInbox {
    /// All or nothing: an error suppresses the acks of the whole batch and
    /// WhatsApp redelivers it; messages already stored are then recognised
    /// by the database's unique key on (chat, sender, WhatsApp id) as received.
    async fn on_messages(
        &self,
        client: Arc<Client>,
        batch: &[InboundMessage],
    ) -> anyhow::Result<()> {
        for item in batch {
            self.commit(&client, &item.info, &item.message)
                .await
                .map_err(|e| anyhow::anyhow!("message {}: {e}", item.info.id))?;
        }
        Ok(())
    }
}

impl DurableInbox {
    /// Translates one message and waits for the sink's commit; its media is
    /// fetched afterwards, in the background: a download never holds up the
    /// acknowledgement, and a redelivery (already stored) downloads nothing.
    async fn commit(
        &self,
        client: &Arc<Client>,
        info: &MessageInfo,
        message: &proto::Message,
    ) -> Result<(), String> {
        match translate::inbound(info, message) {
            Inbound::Ignored(why) => {
                log::debug!(
                    "message {} from {} not stored: {why}",
                    info.id,
                    info.source.sender
                );
                Ok(())
            }
            Inbound::Update(mut update) => {
                learn_from_store(client, &mut update.mappings, [&update.chat, &update.sender])
                    .await;
                self.store(|ack| WaEvent::Update { update, ack }).await?;
                Ok(())
            }
            Inbound::Message {
                message: mut incoming,
                media,
            } => {
                learn_from_store(
                    client,
                    &mut incoming.mappings,
                    [&incoming.chat, &incoming.sender],
                )
                .await;
                incoming.media = media
                    .as_ref()
                    .map(|spec| spec.announced(self.media.max_bytes));
                let chat = incoming.chat.clone();
                let stored = self
                    .store(|ack| WaEvent::Message {
                        message: incoming,
                        ack,
                    })
                    .await?;
                learn_group_name(client, &chat, &self.events);
                if let (Some(id), Some(spec)) = (stored.fetch_media, media) {
                    let base = translate::unwrap(message).clone();
                    self.media
                        .spawn(Arc::clone(client), MediaJob::new(id, info, base, spec));
                }
                Ok(())
            }
        }
    }

    /// Hands an event to the sink and waits (on a blocking thread, never the
    /// runtime's) for its answer.
    async fn store(
        &self,
        event: impl FnOnce(Option<crate::wa::Reply<Stored>>) -> WaEvent + Send + 'static,
    ) -> Result<Stored, String> {
        let events = self.events.clone();
        tokio::task::spawn_blocking(move || {
            let (ack_tx, ack_rx) = bounded(1);
            events
                .send(event(Some(ack_tx)))
                .map_err(|_| "the event sink has stopped".to_string())?;
            match ack_rx.recv_timeout(COMMAND_TIMEOUT) {
                Ok(result) => result,
                Err(_) => Err("the event sink did not answer in time".to_string()),
            }
        })
        .await
        .map_err(|e| format!("commit task failed: {e}"))?
    }
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

/// Asks WhatsApp for a group's name (its subject) the first time this run a
/// message of that group is stored, in the background (never holding up an
/// acknowledgement); the sink keeps it (`WaEvent::ChatName`) for the
/// dashboard and the conversation list. A failed query is tried again with
/// the group's next message.
fn learn_group_name(client: &Arc<Client>, chat: &str, events: &Sender<WaEvent>) {
    static ASKED: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<String>>> =
        std::sync::OnceLock::new();
    let asked = || {
        ASKED
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    };
    if !chat.ends_with("@g.us") || !asked().insert(chat.to_string()) {
        return;
    }
    let Ok(jid) = chat.parse::<Jid>() else {
        return;
    };
    let (client, events, chat) = (Arc::clone(client), events.clone(), chat.to_string());
    tokio::spawn(async move {
        match client.groups().get_metadata(&jid).await {
            Ok(meta) if !meta.subject.trim().is_empty() => {
                let name = WaEvent::ChatName {
                    chat,
                    name: meta.subject,
                };
                // A blocking send, off the runtime thread.
                let _ = tokio::task::spawn_blocking(move || events.send(name)).await;
            }
            Ok(_) => {}
            Err(e) => {
                log::debug!("could not learn the name of group {chat}: {e}");
                asked().remove(&chat);
            }
        }
    });
}

/// Adds the phone numbers the crate's own LID store knows (learned from
/// device lists, notifications and earlier messages) for LIDs among `jids`
/// that the message did not map itself.
async fn learn_from_store<'a>(
    client: &Client,
    mappings: &mut Vec<(String, String)>,
    jids: impl IntoIterator<Item = &'a String>,
) {
    for jid in jids {
        if mappings.iter().any(|(lid, _)| lid == jid) {
            continue;
        }
        let Ok(lid) = jid.parse::<Jid>() else {
            continue;
        };
        if !lid.is_lid() {
            continue;
        }
        if let Ok(Some(entry)) = client.get_lid_pn_entry(&lid).await {
            mappings.push((
                jid.clone(),
                format!("{}@s.whatsapp.net", entry.phone_number),
            ));
        }
    }
}

/// What a media download needs: the stored row, the message's media fields
/// and where it was received (for a re-upload request).
struct MediaJob {
    /// Public id of the row the file belongs to.
    id: String,
    message: proto::Message,
    spec: MediaSpec,
    wa_id: String,
    chat: Jid,
    sender: Jid,
    from_me: bool,
}

impl MediaJob {
    fn new(id: String, info: &MessageInfo, message: proto::Message, spec: MediaSpec) -> MediaJob {
        MediaJob {
            id,
            message,
            spec,
            wa_id: info.id.to_string(),
            chat: info.source.chat.clone(),
            sender: info.source.sender.clone(),
            from_me: info.source.is_from_me,
        }
    }
}

/// Fetches media in the background after the message is stored: a few at a
/// time, each download bounded by the HTTP client's connect and per-read
/// timeouts, retried, and recovered with WhatsApp's media re-upload when the
/// file has expired on its servers. The result goes to the sink, which
/// records it and only then announces the message to webhooks.
#[derive(Clone)]
struct MediaFetcher {
    events: Sender<WaEvent>,
    dir: PathBuf,
    max_bytes: u64,
    /// Downloads at once; the rest wait their turn.
    slots: Arc<tokio::sync::Semaphore>,
    /// Rows with a download running (the sweep at connect skips them).
    running: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// Pauses before each attempt (`MEDIA_RETRY_DELAYS`).
    delays: &'static [Duration],
}

/// Pauses before the download attempts of one file.
const MEDIA_RETRY_DELAYS: [Duration; 3] = [
    Duration::ZERO,
    Duration::from_secs(10),
    Duration::from_secs(60),
];
/// Downloads running at once.
const MEDIA_SLOTS: usize = 4;
/// A bound on one whole attempt, beyond the per-read timeouts (a 64 MiB
/// file at 100 KB/s takes about 11 minutes).
const MEDIA_ATTEMPT_LIMIT: Duration = Duration::from_secs(20 * 60);

impl MediaFetcher {
    fn new(events: Sender<WaEvent>, dir: PathBuf, max_bytes: u64) -> MediaFetcher {
        MediaFetcher {
            events,
            dir,
            max_bytes,
            slots: Arc::new(tokio::sync::Semaphore::new(MEDIA_SLOTS)),
            running: Default::default(),
            delays: &MEDIA_RETRY_DELAYS,
        }
    }

    /// Starts a download unless one runs for that row already.
    fn spawn(&self, client: Arc<Client>, job: MediaJob) {
        {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            if !running.insert(job.id.clone()) {
                return;
            }
        }
        let fetcher = self.clone();
        tokio::spawn(async move {
            let id = job.id.clone();
            let media = match fetcher.slots.clone().acquire_owned().await {
                Ok(_slot) => fetcher.fetch(&client, job).await,
                Err(_) => return,
            };
            let events = fetcher.events.clone();
            let sent = id.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let (done, applied) = bounded(1);
                if events
                    .send(WaEvent::Media {
                        id: sent,
                        media: Box::new(media),
                        done: Some(done),
                    })
                    .is_ok()
                {
                    let _ = applied.recv_timeout(COMMAND_TIMEOUT);
                }
            })
            .await;
            fetcher
                .running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        });
    }

    /// Every attempt at one file; the last failure's reason when none works.
    async fn fetch(&self, client: &Arc<Client>, job: MediaJob) -> MediaInfo {
        let spec = &job.spec;
        let failed = |error: String| MediaInfo {
            kind: spec.kind.to_string(),
            mime: spec.mime.clone(),
            size: spec.announced_len,
            error: Some(error),
            ..Default::default()
        };
        let Some(original) = translate::downloadable(&job.message) else {
            return failed("the message carries no downloadable media".into());
        };
        let mut reuploaded: Option<DownloadParams> = None;
        let mut last_error = String::new();
        for delay in self.delays {
            tokio::time::sleep(*delay).await;
            let source: &dyn Downloadable = match &reuploaded {
                Some(params) => params,
                None => original,
            };
            match self.attempt(client, source, spec).await {
                Ok(media) => return media,
                Err(Attempt::Final(media)) => return media,
                Err(Attempt::Expired(error)) if reuploaded.is_none() => {
                    log::info!(
                        "media of message {} expired ({error}); asking for a re-upload",
                        job.wa_id
                    );
                    match reupload(client, &job, original).await {
                        Ok(params) => {
                            reuploaded = Some(params);
                            // The re-uploaded file is there now: try it at once.
                            let source: &dyn Downloadable = reuploaded.as_ref().expect("just set");
                            match self.attempt(client, source, spec).await {
                                Ok(media) | Err(Attempt::Final(media)) => return media,
                                Err(Attempt::Expired(e) | Attempt::Retry(e)) => last_error = e,
                            }
                        }
                        Err(e) => last_error = format!("{error}; re-upload failed: {e}"),
                    }
                }
                Err(Attempt::Expired(error) | Attempt::Retry(error)) => last_error = error,
            }
            log::warn!(
                "downloading the media of message {} failed: {last_error}",
                job.wa_id
            );
        }
        failed(format!("download failed: {last_error}"))
    }

    /// One download into a fresh `.part` file, moved into place (fsynced)
    /// when it is complete.
    async fn attempt(
        &self,
        client: &Arc<Client>,
        source: &dyn Downloadable,
        spec: &MediaSpec,
    ) -> Result<MediaInfo, Attempt> {
        let kind = spec.kind;
        let (pending, file) =
            media::PendingFile::create(&self.dir, spec.mime.as_deref(), spec.file_name.as_deref())
                .map_err(|e| Attempt::Retry(format!("could not create the file: {e}")))?;
        let download = client.download_to_writer(source, file);
        match tokio::time::timeout(MEDIA_ATTEMPT_LIMIT, download).await {
            Ok(Ok(file)) => {
                drop(file);
                let (max, mime) = (self.max_bytes, spec.mime.clone());
                let media =
                    tokio::task::spawn_blocking(move || pending.finish(kind, mime.as_deref(), max))
                        .await
                        .map_err(|e| Attempt::Retry(format!("could not store the file: {e}")))?;
                // Over the size limit is final; a failed write may pass next time.
                match &media.error {
                    None => Ok(media),
                    Some(e) if e.contains("MEDIA_MAX_BYTES") => Err(Attempt::Final(media)),
                    Some(e) => Err(Attempt::Retry(e.clone())),
                }
            }
            Ok(Err(e)) => {
                let _ = pending.abandon(kind, None, String::new());
                let expired = e
                    .downcast_ref::<HttpStatusError>()
                    .is_some_and(|s| matches!(s.status, 404 | 410));
                let reason = format!("{e:#}");
                Err(if expired {
                    Attempt::Expired(reason)
                } else {
                    Attempt::Retry(reason)
                })
            }
            Err(_) => {
                let _ = pending.abandon(kind, None, String::new());
                Err(Attempt::Retry(format!(
                    "took longer than {} s",
                    MEDIA_ATTEMPT_LIMIT.as_secs()
                )))
            }
        }
    }
}

/// How a download attempt failed.
enum Attempt {
    /// Worth another try later.
    Retry(String),
    /// WhatsApp's copy is gone (404/410): a re-upload may bring it back.
    Expired(String),
    /// No try will do better (over the size limit).
    Final(MediaInfo),
}

/// Asks the sender's phone, through WhatsApp, to upload expired media again;
/// the same file under a new path.
async fn reupload(
    client: &Client,
    job: &MediaJob,
    original: &dyn Downloadable,
) -> Result<DownloadParams, String> {
    let media_key = original.media_key().ok_or("the message has no media key")?;
    let participant = job.chat.is_group().then_some(&job.sender);
    let request = MediaReuploadRequest {
        msg_id: &job.wa_id,
        chat_jid: &job.chat,
        media_key,
        is_from_me: job.from_me,
        participant,
    };
    match client.media_reupload().request(&request).await {
        Ok(MediaRetryResult::Success { direct_path }) => Ok(DownloadParams::encrypted(
            direct_path,
            media_key,
            original.file_sha256().unwrap_or_default(),
            original.file_enc_sha256().unwrap_or_default(),
            original.file_length().unwrap_or(0),
            original.app_info(),
        )),
        Ok(other) => Err(format!("WhatsApp answered {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Whether `bytes` decode as a `whatsapp.Message`.
pub fn is_message(bytes: &[u8]) -> bool {
    proto::Message::decode_from_slice(bytes).is_ok()
}

/// Translates a message given as its protobuf (the simulator's raw route)
/// with exactly the code that translates what WhatsApp delivers to the real
/// backend: same kinds, wrappers, placeholders, timestamps, own messages and
/// LID pairs. `me` is our own account, the author of a `from_me` message.
pub fn translate_raw(raw: &RawMessage, me: &str) -> Result<Inbound, String> {
    let (info, message) = translate::raw_message(raw, me)?;
    Ok(translate::inbound(&info, &message))
}

/// The crate's runtime interface on our current-thread tokio runtime. Unlike
/// the bundled `TokioRuntime` it yields cooperatively in the crate's long
/// loops, which on a single thread keeps keepalives and commands flowing.
struct CurrentThreadRuntime;

#[whatsapp_rust::async_trait]
impl Runtime for CurrentThreadRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send + 'static>>) -> AbortHandle {
        let task = tokio::spawn(future);
        AbortHandle::new(move || task.abort())
    }

    fn spawn_detached(&self, future: Pin<Box<dyn Future<Output = ()> + Send + 'static>>) {
        tokio::spawn(future);
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration))
    }

    fn spawn_blocking(
        &self,
        f: Box<dyn FnOnce() + Send + 'static>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async {
            let _ = tokio::task::spawn_blocking(f).await;
        })
    }

    fn yield_now(&self) -> Option<Pin<Box<dyn Future<Output = ()> + Send>>> {
        Some(Box::pin(tokio::task::yield_now()))
    }

    fn yield_frequency(&self) -> u32 {
        1
    }
}

/// `with_transport_factory` takes a concrete type; this carries the test
/// hook's factory through the same path as the real one.
struct DynTransport(Arc<dyn TransportFactory>);

#[whatsapp_rust::async_trait]
impl TransportFactory for DynTransport {
    async fn create_transport(
        &self,
    ) -> Result<(Arc<dyn Transport>, async_channel::Receiver<TransportEvent>), anyhow::Error> {
        self.0.create_transport().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_backoff_starts_fast_and_caps_at_a_minute() {
        let delays: Vec<u64> = (0..10).map(|n| reconnect_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
        assert!(reconnect_delay(0) <= Duration::from_secs(5));
        assert_eq!(reconnect_delay(u32::MAX), Duration::from_secs(60));
    }

    /// A client that never connects: enough for the hook, which only needs
    /// it for LID lookups and downloads.
    async fn offline_client() -> Arc<Client> {
        Bot::builder()
            .with_backend(whatsapp_rust::wacore::store::InMemoryBackend::new())
            .with_runtime(CurrentThreadRuntime)
            .build()
            .await
            .expect("an offline client builds")
            .client()
    }

    fn inbound(id: &str, message: proto::Message) -> InboundMessage {
        use whatsapp_rust::types::message::MessageSource;
        let info = MessageInfo {
            id: id.into(),
            source: MessageSource {
                chat: "15551234567@s.whatsapp.net".parse().unwrap(),
                sender: "15551234567@s.whatsapp.net".parse().unwrap(),
                ..Default::default()
            },
            ..Default::default()
        };
        InboundMessage::builder()
            .message(Arc::new(message))
            .info(Arc::new(info))
            .build()
    }

    /// What the stand-in sink saw, in order.
    #[derive(Debug)]
    enum Seen {
        Message(crate::wa::IncomingMessage),
        Media(String, MediaInfo),
    }

    /// A stand-in sink: answers every message with `answer` (asking for the
    /// media of messages that announce some), records media, and hands
    /// everything back once the senders are gone.
    fn fake_sink(answer: Result<(), String>) -> (Sender<WaEvent>, JoinHandle<Vec<Seen>>) {
        let (tx, rx) = bounded::<WaEvent>(16);
        let join = std::thread::spawn(move || {
            let mut got = Vec::new();
            for event in rx {
                match event {
                    WaEvent::Message { message, ack } => {
                        let stored = Stored {
                            fetch_media: message
                                .media
                                .as_ref()
                                .filter(|m| m.error.is_none())
                                .map(|_| format!("row-{}", message.wa_id)),
                        };
                        got.push(Seen::Message(*message));
                        let _ = ack.unwrap().send(answer.clone().map(|()| stored));
                    }
                    WaEvent::Media { id, media, done } => {
                        got.push(Seen::Media(id, *media));
                        let _ = done.unwrap().send(Ok(()));
                    }
                    _ => {}
                }
            }
            got
        });
        (tx, join)
    }

    fn run<T>(future: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(future)
    }

    fn inbox(events: Sender<WaEvent>, dir: PathBuf) -> DurableInbox {
        let mut media = MediaFetcher::new(events.clone(), dir, 1000);
        media.delays = &[Duration::ZERO, Duration::ZERO];
        DurableInbox { events, media }
    }

    #[test]
    fn hook_commits_first_and_fetches_media_afterwards() {
        let dir = std::env::temp_dir().join(format!("wa-hook-{}", crate::auth::uuid_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let image = |len: u64| proto::Message {
            image_message: whatsapp_rust::prelude::MessageField::some(
                proto::message::ImageMessage {
                    mimetype: Some("image/jpeg".into()),
                    file_length: Some(len),
                    ..Default::default()
                },
            ),
            ..Default::default()
        };
        let (events, sink) = fake_sink(Ok(()));
        let hook = inbox(events, dir.clone());
        let batch = [
            inbound("TEXT", proto::Message::text("hello")),
            // Announced over the limit: refused before anything is fetched.
            inbound("BIG", image(5000)),
            // Fetched after its commit; without a media key the download
            // fails, and the message stays.
            inbound("SMALL", image(10)),
        ];
        let result = run(async {
            let client = offline_client().await;
            let result = hook.on_messages(client, &batch).await;
            // The download runs on after the hook returned: wait for it.
            for _ in 0..200 {
                if hook.media.running.lock().unwrap().is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            result
        });
        assert!(result.is_ok(), "{result:?}");
        drop(hook);
        let got = sink.join().unwrap();
        let [
            Seen::Message(text),
            Seen::Message(big),
            Seen::Message(small),
            Seen::Media(id, fetched),
        ] = &got[..]
        else {
            panic!("{got:?}");
        };
        assert_eq!(text.text, "hello");
        let big = big.media.clone().unwrap();
        assert!(big.error.unwrap().contains("MEDIA_MAX_BYTES"));
        assert_eq!((big.file_name, big.size), (None, Some(5000)));
        // Stored first, without a file, the media still to come.
        assert_eq!(small.text, "[Image]");
        let announced = small.media.clone().unwrap();
        assert!(announced.error.is_none() && announced.file_name.is_none());
        // Then its download, which failed for good.
        assert_eq!(id, "row-SMALL");
        assert!(
            fetched
                .error
                .as_deref()
                .unwrap()
                .starts_with("download failed"),
            "{fetched:?}"
        );
        assert!(fetched.file_name.is_none());
        // No file, not even a partial one, is left behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn hook_fails_when_the_sink_could_not_commit() {
        // An error means no ack: WhatsApp redelivers the batch.
        let (events, sink) = fake_sink(Err("disk full".into()));
        let hook = inbox(events, std::env::temp_dir());
        let result = run(async {
            let client = offline_client().await;
            hook.on_messages(client, &[inbound("X", proto::Message::text("hello"))])
                .await
        });
        let error = result.unwrap_err().to_string();
        assert!(error.contains("disk full"), "{error}");
        drop(hook);
        assert_eq!(sink.join().unwrap().len(), 1);
    }

    /// The event handler runs inside the client's dispatch: it only queues.
    #[test]
    fn forwarder_queues_translated_events_without_blocking() {
        use whatsapp_rust::types::events::PairingQrCode;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let forwarder = Forwarder {
            generation: 7,
            to_supervisor: tx,
            acks: Default::default(),
        };
        forwarder.handle_event(Arc::new(Event::PairingQrCode(
            PairingQrCode::builder()
                .code("2@abc".into())
                .timeout(Duration::from_secs(20))
                .build(),
        )));
        match rx.try_recv() {
            Ok((7, FromClient::Signal(Signal::Qr { code, valid_for }))) => {
                assert_eq!((code.as_str(), valid_for.as_secs()), ("2@abc", 20));
            }
            _ => panic!("expected a QR signal"),
        }
        assert!(rx.try_recv().is_err());
    }
}
