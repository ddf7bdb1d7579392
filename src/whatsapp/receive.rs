//! What the client delivers: lifecycle events and receipts (`Forwarder`),
//! and messages through the durability hook (`DurableInbox`): committed to
//! SQLite before the crate acknowledges them; group names and LIDs learned
//! on the way.

use super::lock;
use super::media_fetch::{MediaFetcher, MediaJob};
use super::send::AckWaiters;
use super::supervisor::FromClient;
use super::translate::{self, Signal};
use crate::wa::{COMMAND_TIMEOUT, Inbound, Stored, WaEvent};
use crossbeam_channel::{Sender, bounded};
use std::sync::Arc;
use tokio::sync::mpsc;
use whatsapp_rust::prelude::{
    Client, Event, EventHandler, InboundMessage, Jid, MessageInfo, wa as proto,
};
use whatsapp_rust::{InboundDurabilityHook, anyhow};

/// Called synchronously inside the client's event dispatch on the runtime
/// thread, so it must never block: it queues on an unbounded channel (a
/// trickle of lifecycle events and receipts, drained by the supervisor at
/// once; bounding it would mean dropping or blocking).
pub(super) struct Forwarder {
    pub(super) generation: u64,
    pub(super) to_supervisor: mpsc::UnboundedSender<(u64, FromClient)>,
    /// Sends waiting for their acknowledgement: answered from here directly.
    pub(super) acks: AckWaiters,
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
pub(super) struct DurableInbox {
    pub(super) events: Sender<WaEvent>,
    pub(super) media: MediaFetcher,
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
    pub(super) async fn commit(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wa::MediaInfo;
    use crate::whatsapp::CurrentThreadRuntime;
    use std::future::Future;
    use std::path::PathBuf;
    use std::thread::JoinHandle;
    use std::time::Duration;
    use whatsapp_rust::prelude::{Bot, MessageBuilderExt};

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

    pub(super) fn run<T>(future: impl Future<Output = T>) -> T {
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
