//! The simulator backend (WHATSAPP_BACKEND=simulator): an in-process fake of
//! WhatsApp behind the same `WaCommand`/`WaEvent` door as the real backend.
//! Injected messages take the real path: media through `media::store`, the
//! message to the event sink, and the answer only after the sink committed.

use crate::wa::{IncomingMessage, Injected, SentRecord, SimMessage, WaCommand, WaEvent};
use crate::{auth, media};
use crossbeam_channel::{Receiver, Sender, bounded};
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Duration;

/// Our own account in the sandbox.
pub const SIM_ME: &str = "15550000000@s.whatsapp.net";

/// What the simulator needs from the configuration.
pub struct SimConfig {
    pub media_dir: PathBuf,
    pub media_max_bytes: u64,
}

/// Starts the simulator thread. It stops on `WaCommand::Shutdown` or when
/// every command sender is gone, dropping its event sender (which stops the sink).
pub fn spawn(
    config: SimConfig,
    commands: Receiver<WaCommand>,
    events: Sender<WaEvent>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("whatsapp-sim".into())
        .spawn(move || {
            let mut sim = Simulator {
                config,
                events,
                sent: Vec::new(),
                fail_sends: false,
                connected: false,
            };
            sim.set_state("connected");
            for command in commands {
                if !sim.handle(command) {
                    break;
                }
            }
            log::debug!("simulator stopped");
        })
}

struct Simulator {
    config: SimConfig,
    events: Sender<WaEvent>,
    sent: Vec<SentRecord>,
    fail_sends: bool,
    connected: bool,
}

/// A WhatsApp-looking message id.
fn new_wa_id() -> String {
    format!(
        "3EB0{}",
        auth::hex(&auth::random_bytes::<8>()).to_ascii_uppercase()
    )
}

impl Simulator {
    /// Handles one command; false means stop.
    fn handle(&mut self, command: WaCommand) -> bool {
        match command {
            WaCommand::Send {
                to,
                text,
                quote,
                reply,
            } => {
                let result = if !self.connected {
                    Err("not connected".to_string())
                } else if self.fail_sends {
                    Err("simulated send failure".to_string())
                } else {
                    let wa_id = new_wa_id();
                    self.sent.push(SentRecord {
                        to,
                        text,
                        quoted_wa_id: quote.map(|q| q.wa_id),
                        wa_id: wa_id.clone(),
                    });
                    Ok(wa_id)
                };
                let _ = reply.send(result);
            }
            WaCommand::PairCode { phone, reply } => {
                log::info!(
                    "simulator: pairing code requested for a {}-digit number",
                    phone.len()
                );
                let code = auth::hex(&auth::random_bytes::<4>()).to_ascii_uppercase();
                let _ = reply.send(Ok(format!("{}-{}", &code[..4], &code[4..])));
            }
            WaCommand::Pair { reply } => {
                let result = if self.connected {
                    Err("already paired; log out first".to_string())
                } else {
                    self.set_state("qr");
                    Ok(())
                };
                let _ = reply.send(result);
            }
            WaCommand::Logout { reply } => {
                self.set_state("logged_out");
                let _ = reply.send(Ok(()));
            }
            WaCommand::SimInject { message, reply } => {
                let _ = reply.send(self.inject(message));
            }
            WaCommand::SimConnection { state, reply } => {
                self.set_state(&state);
                let _ = reply.send(Ok(()));
            }
            WaCommand::SimSent { reply } => {
                let _ = reply.send(Ok(self.sent.clone()));
            }
            WaCommand::SimFailSends { fail, reply } => {
                self.fail_sends = fail;
                let _ = reply.send(Ok(()));
            }
            WaCommand::Shutdown => return false,
        }
        true
    }

    fn set_state(&mut self, state: &str) {
        self.connected = state == "connected";
        let event = match state {
            "qr" => WaEvent::Qr {
                code: format!(
                    "2@{},{},{}",
                    auth::hex(&auth::random_bytes::<12>()),
                    auth::hex(&auth::random_bytes::<16>()),
                    auth::hex(&auth::random_bytes::<16>())
                ),
                valid_for: Duration::from_secs(60),
            },
            "connected" => WaEvent::Connected {
                jid: Some(SIM_ME.to_string()),
            },
            "disconnected" => WaEvent::Disconnected {
                reason: "simulated disconnect".into(),
                will_reconnect: true,
            },
            _ => WaEvent::LoggedOut {
                reason: "simulated logout".into(),
            },
        };
        let _ = self.events.send(event);
        // Commands answer after the sink applied the new state, so whoever
        // asked sees it at once (the real backend's states arrive from the
        // network and are waited for where it matters).
        let (done, applied) = bounded(1);
        if self.events.send(WaEvent::Flush { done }).is_ok() {
            let _ = applied.recv();
        }
    }

    /// Builds the message as the real backend would and hands it to the sink;
    /// the caller waits for the commit on `Injected::committed`.
    fn inject(&mut self, m: SimMessage) -> Result<Injected, String> {
        let wa_id = m.id.clone().unwrap_or_else(new_wa_id);
        let media = m.media_type.as_deref().map(|kind| match &m.media {
            Some(bytes) => media::store(
                &self.config.media_dir,
                kind,
                m.mime.as_deref(),
                m.filename.as_deref(),
                &mut bytes.as_slice(),
                self.config.media_max_bytes,
            ),
            None => crate::wa::MediaInfo {
                kind: kind.to_string(),
                mime: m.mime.clone(),
                error: Some("no media was attached".into()),
                ..Default::default()
            },
        });
        let text = match (&m.text, &m.media_type) {
            (Some(t), _) if !t.is_empty() => t.clone(),
            (_, Some(kind)) => crate::wa::placeholder(kind, m.filename.as_deref()),
            _ => String::new(),
        };
        let message = IncomingMessage {
            wa_id: wa_id.clone(),
            chat: m.group.clone().unwrap_or_else(|| m.from.clone()),
            sender: m.from,
            push_name: m.push_name,
            text,
            media,
            raw: None,
            timestamp: None,
        };
        let (ack_tx, ack_rx) = bounded(1);
        self.events
            .send(WaEvent::Message {
                message: Box::new(message),
                ack: Some(ack_tx),
            })
            .map_err(|_| "the event sink has stopped".to_string())?;
        Ok(Injected {
            wa_id,
            committed: ack_rx,
        })
    }
}
