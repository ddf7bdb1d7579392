//! The simulator backend (WHATSAPP_BACKEND=simulator): an in-process fake of
//! WhatsApp behind the same `WaCommand`/`WaEvent` door as the real backend.
//! Injected messages take the real path: media through `media::store`, the
//! message to the event sink, and the answer only after the sink committed.

use crate::threads::Ends;
use crate::wa::{
    Inbound, IncomingMessage, Injected, MediaInfo, RawMessage, RawOutcome, SentRecord, SimMessage,
    Stored, WaCommand, WaEvent,
};
use crate::{auth, media, whatsapp};
use crossbeam_channel::{Sender, bounded};
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
    commands: async_channel::Receiver<WaCommand>,
    events: Sender<WaEvent>,
    ends: &Ends,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("whatsapp-sim".into())
        .spawn(ends.report(move || {
            let mut sim = Simulator {
                config,
                events,
                sent: Vec::new(),
                fail_sends: false,
                connected: false,
            };
            sim.set_state("connected");
            while let Ok(command) = commands.recv_blocking() {
                if !sim.handle(command) {
                    break;
                }
            }
            log::debug!("simulator stopped");
        }))
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
    crate::wa::new_message_id()
}

impl Simulator {
    /// Handles one command; false means stop.
    fn handle(&mut self, command: WaCommand) -> bool {
        match command {
            WaCommand::Send {
                to,
                text,
                media,
                quote,
                wa_id,
                expiration,
                reply,
            } => {
                let outcome = self.check_sendable().map(|()| {
                    // WhatsApp keeps one message per id: sending an id again
                    // (a retry) does not make a second one.
                    if !self.sent.iter().any(|s| s.wa_id() == Some(&wa_id)) {
                        let quoted_participant = quote.as_ref().map(|q| q.sender_jid.clone());
                        let quoted_wa_id = quote.map(|q| q.wa_id);
                        self.sent.push(match media {
                            None => SentRecord::Text {
                                to,
                                text,
                                quoted_participant,
                                quoted_wa_id,
                                wa_id: wa_id.clone(),
                                expiration,
                            },
                            Some(m) => SentRecord::Media {
                                to,
                                text,
                                quoted_participant,
                                quoted_wa_id,
                                wa_id: wa_id.clone(),
                                expiration,
                                media_type: m.kind,
                                mime: m.mime,
                                filename: m.file_name,
                                size: m.size,
                                sha256: m.sha256,
                            },
                        });
                    }
                });
                // The outcome is applied (row sent or failed, webhooks queued)
                // before the caller hears of it, as with the real backend.
                let applied = self.wait_applied(|done| WaEvent::Sent {
                    wa_id,
                    outcome: outcome.clone(),
                    done,
                });
                let _ = reply.send(applied.and(outcome));
            }
            WaCommand::React {
                to,
                target,
                emoji,
                reply,
            } => {
                let outcome = self.check_sendable().map(|()| {
                    self.sent.push(SentRecord::Reaction {
                        to,
                        target_wa_id: target.wa_id,
                        emoji,
                        wa_id: new_wa_id(),
                    })
                });
                let _ = reply.send(outcome);
            }
            WaCommand::MarkRead {
                chat,
                sender: _,
                wa_ids,
                reply,
            } => {
                let outcome = self.check_sendable().map(|()| {
                    self.sent.push(SentRecord::Read { to: chat, wa_ids });
                });
                let _ = reply.send(outcome);
            }
            WaCommand::Typing { to, typing, reply } => {
                let outcome = self.check_sendable().map(|()| {
                    self.sent.push(SentRecord::Typing { to, typing });
                });
                let _ = reply.send(outcome);
            }
            WaCommand::SimUpdate { update, reply } => {
                let applied = self.wait(|ack| WaEvent::Update { update, ack });
                let _ = reply.send(applied.map(|_| ()));
            }
            WaCommand::SimReceipt {
                wa_id,
                status,
                reply,
            } => {
                let _ = self.events.send(WaEvent::Receipt {
                    wa_ids: vec![wa_id],
                    status,
                });
                let _ = reply.send(self.wait_applied(|done| WaEvent::Flush {
                    done: done.expect("a flush always answers"),
                }));
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
            WaCommand::SimRaw { message, reply } => {
                let _ = reply.send(self.raw(message));
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

    /// Whether something may be sent now, as WhatsApp would answer.
    fn check_sendable(&self) -> Result<(), String> {
        if !self.connected {
            Err("not connected".to_string())
        } else if self.fail_sends {
            Err("simulated send failure".to_string())
        } else {
            Ok(())
        }
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
        let text = match (&m.text, &m.media_type) {
            (Some(t), _) if !t.is_empty() => t.clone(),
            (_, Some(kind)) => crate::wa::placeholder(kind, m.filename.as_deref()),
            _ => String::new(),
        };
        if let (Some(group), Some(name)) = (&m.group, &m.group_name) {
            // Before the message, as the real backend learns a group's name.
            let _ = self.events.send(WaEvent::ChatName {
                chat: group.clone(),
                name: name.clone(),
            });
        }
        let mut message = IncomingMessage {
            wa_id: wa_id.clone(),
            chat: m.group.clone().unwrap_or_else(|| m.from.clone()),
            sender: m.from,
            push_name: m.push_name,
            text,
            ..Default::default()
        };
        let Some(kind) = m.media_type else {
            // Text: answered at once, so the simulator is free for the next
            // message while the sink commits this one with others.
            let (ack_tx, ack_rx) = bounded(1);
            self.events
                .send(WaEvent::Message {
                    message: Box::new(message),
                    ack: Some(ack_tx),
                })
                .map_err(|_| "the event sink has stopped".to_string())?;
            return Ok(Injected {
                wa_id,
                committed: ack_rx,
            });
        };
        let file = match m.media {
            Some(bytes) => Some((bytes, m.mime.clone(), m.filename.clone())),
            None => None,
        };
        message.media = Some(MediaInfo {
            kind: kind.clone(),
            mime: m.mime.clone(),
            size: file.as_ref().map(|(bytes, _, _)| bytes.len() as u64),
            error: file.is_none().then(|| "no media was attached".to_string()),
            ..Default::default()
        });
        let stored = self.store(message)?;
        if let (Some(id), Some((bytes, mime, filename))) = (stored.fetch_media.clone(), file) {
            self.store_media(&id, &kind, mime.as_deref(), filename.as_deref(), &bytes)?;
        }
        let (done, committed) = bounded(1);
        let _ = done.send(Ok(stored));
        Ok(Injected { wa_id, committed })
    }

    /// A message given as its protobuf, translated by the real backend's
    /// code; `media` stands in for the file the real backend downloads.
    fn raw(&mut self, mut raw: RawMessage) -> Result<RawOutcome, String> {
        let wa_id = raw.id.get_or_insert_with(new_wa_id).clone();
        let kind = match whatsapp::translate_raw(&raw, SIM_ME)? {
            Inbound::Ignored(why) => {
                log::debug!("simulator: raw message {wa_id} not stored: {why}");
                "ignored"
            }
            Inbound::Update(update) => {
                self.wait(|ack| WaEvent::Update { update, ack })?;
                "update"
            }
            Inbound::Message { mut message, media } => {
                let max = self.config.media_max_bytes;
                message.media = media.as_ref().map(|spec| spec.announced(max));
                let stored = self.store(*message)?;
                if let (Some(id), Some(spec)) = (stored.fetch_media, media) {
                    match &raw.media {
                        Some(bytes) => {
                            let mime = spec.mime.as_deref();
                            let name = spec.file_name.as_deref();
                            self.store_media(&id, spec.kind, mime, name, bytes)?
                        }
                        None => self.record_media(
                            &id,
                            MediaInfo {
                                kind: spec.kind.to_string(),
                                error: Some(
                                    "download failed: no media_base64 stood in for the file".into(),
                                ),
                                ..Default::default()
                            },
                        )?,
                    }
                }
                "message"
            }
        };
        Ok(RawOutcome { wa_id, kind })
    }

    /// Hands a message to the sink and waits for its commit.
    fn store(&mut self, message: IncomingMessage) -> Result<Stored, String> {
        let message = Box::new(message);
        self.wait(|ack| WaEvent::Message { message, ack })
    }

    /// Stores a file as the real backend stores a download, after its
    /// message, and has the sink record it.
    fn store_media(
        &mut self,
        id: &str,
        kind: &str,
        mime: Option<&str>,
        filename: Option<&str>,
        bytes: &[u8],
    ) -> Result<(), String> {
        let info = media::store(
            &self.config.media_dir,
            kind,
            mime,
            filename,
            &mut &bytes[..],
            self.config.media_max_bytes,
        );
        self.record_media(id, info)
    }

    fn record_media(&mut self, id: &str, media: MediaInfo) -> Result<(), String> {
        self.wait_applied(|done| WaEvent::Media {
            id: id.to_string(),
            media: Box::new(media),
            done,
        })
    }

    /// Sends an event built around a `done` channel and waits until the sink
    /// applied it.
    fn wait_applied(
        &mut self,
        event: impl FnOnce(Option<crate::wa::Reply<()>>) -> WaEvent,
    ) -> Result<(), String> {
        let (done, applied) = bounded(1);
        self.events
            .send(event(Some(done)))
            .map_err(|_| "the event sink has stopped".to_string())?;
        applied
            .recv()
            .map_err(|_| "the event sink has stopped".to_string())?
    }

    /// Sends an event built around an answer channel and waits for it.
    fn wait(
        &mut self,
        event: impl FnOnce(Option<crate::wa::Reply<Stored>>) -> WaEvent,
    ) -> Result<Stored, String> {
        let (ack_tx, ack_rx) = bounded(1);
        self.events
            .send(event(Some(ack_tx)))
            .map_err(|_| "the event sink has stopped".to_string())?;
        ack_rx
            .recv()
            .map_err(|_| "the event sink has stopped".to_string())?
    }
}
