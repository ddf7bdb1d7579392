//! The real WhatsApp backend (WHATSAPP_BACKEND=whatsapp): one thread,
//! `whatsapp`, owning a tokio current-thread runtime and a whatsapp-rust
//! client, behind the same `WaCommand`/`WaEvent` door as the simulator.
//! This folder is the only code that uses whatsapp-rust: `supervisor.rs`
//! (the client's life), `send.rs`, `receive.rs` (events and the durability
//! hook), `media_fetch.rs`, and `translate/` (pure translation of the
//! crate's events and messages).
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

mod media_fetch;
mod receive;
mod send;
mod supervisor;
mod translate;

use crate::threads::Ends;
use media_fetch::MediaFetcher;
use send::SEND_TIMEOUT;
use supervisor::Supervisor;

use crate::wa::{Inbound, RawMessage, WaCommand, WaEvent};
use crossbeam_channel::Sender;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::mpsc;
use whatsapp_rust::anyhow;
use whatsapp_rust::buffa::Message as _;
use whatsapp_rust::prelude::wa as proto;
use whatsapp_rust::transport::{Transport, TransportEvent, TransportFactory};
use whatsapp_rust::wacore::runtime::{AbortHandle, Runtime};

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
    commands: async_channel::Receiver<WaCommand>,
    events: Sender<WaEvent>,
    ends: &Ends,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("whatsapp".into())
        .spawn(ends.report(move || {
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
                commands,
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
        }))
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
}
