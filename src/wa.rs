//! The door to WhatsApp: the `WaCommand`/`WaEvent` channel pair and the value
//! types that cross it. Both backends (the real one in `whatsapp/`, the
//! sandbox in `simulator.rs`) sit behind this door; nothing else knows which.

pub use crate::status::DeliveryStatus;
use crossbeam_channel::{Receiver, Sender, bounded};
use std::time::Duration;

/// A reply channel for a command: the backend answers exactly once.
pub type Reply<T> = Sender<Result<T, String>>;

/// How long an HTTP worker waits for the backend to answer a command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// What the rest of the program asks of the WhatsApp backend.
pub enum WaCommand {
    /// Send a text message to `to` (a chat JID) under the WhatsApp id
    /// `wa_id` (chosen, and its row stored, before sending: sending the same
    /// id again is how a retry avoids a second message), quoting `quote`,
    /// with the chat's disappearing-messages timer. The backend reports the
    /// outcome to the sink (`WaEvent::Sent`) and answers once it is applied:
    /// Ok when WhatsApp accepted the message, Err when it refused it, it
    /// could not be sent, or no answer came in time (then the row stays
    /// `pending`: it may still arrive).
    Send {
        to: String,
        /// The text, or the caption of `media`.
        text: String,
        /// A file to send with it (stored under `media/` first).
        media: Option<OutgoingMedia>,
        quote: Option<Quote>,
        wa_id: String,
        expiration: Option<u32>,
        reply: Reply<()>,
    },
    /// React to message `target` of chat `to` with `emoji` (empty: remove
    /// our reaction). Answers once it went out.
    React {
        to: String,
        target: Target,
        emoji: String,
        reply: Reply<()>,
    },
    /// Tell WhatsApp these messages of chat `chat` (by `sender`, which a
    /// group's receipts must name) were read: the customer's blue ticks.
    MarkRead {
        chat: String,
        sender: String,
        wa_ids: Vec<String>,
        reply: Reply<()>,
    },
    /// Show (true) or clear (false) "typing…" in chat `to`.
    Typing {
        to: String,
        typing: bool,
        reply: Reply<()>,
    },
    /// Ask for a pairing code for this phone number (digits, country code first).
    PairCode { phone: String, reply: Reply<String> },
    /// Unlink this device from the phone; the next pairing starts from clean keys.
    Logout { reply: Reply<()> },
    /// Start a new pairing (after a logout): QR codes follow. Fails while a
    /// paired session exists.
    Pair { reply: Reply<()> },
    /// Simulator only: inject an incoming message. Answers at once with its
    /// WhatsApp id and the channel on which the sink confirms the commit, so
    /// the simulator is free for the next message while this one is stored
    /// (the sink then commits the messages waiting together).
    SimInject {
        message: SimMessage,
        reply: Reply<Injected>,
    },
    /// Simulator only: a WhatsApp message as its protobuf, translated by the
    /// real backend's code (`whatsapp::translate_raw`). Answers once applied.
    SimRaw {
        message: RawMessage,
        reply: Reply<RawOutcome>,
    },
    /// Simulator only: a customer's reaction, edit or deletion, applied
    /// through the sink exactly as the real backend's. Answers once applied.
    SimUpdate {
        update: Box<Update>,
        reply: Reply<()>,
    },
    /// Simulator only: a receipt for a message the app sent. Answers once
    /// applied.
    SimReceipt {
        wa_id: String,
        status: DeliveryStatus,
        reply: Reply<()>,
    },
    /// Simulator only: drive the connection state.
    SimConnection { state: String, reply: Reply<()> },
    /// Simulator only: what the app has sent.
    SimSent { reply: Reply<Vec<SentRecord>> },
    /// Simulator only: make sends fail (true) or succeed (false).
    SimFailSends { fail: bool, reply: Reply<()> },
    /// Close the connection and stop the backend thread.
    Shutdown,
}

/// What a quoted reply needs to know about the original message.
#[derive(Debug, Clone)]
pub struct Quote {
    /// WhatsApp id of the quoted message.
    pub wa_id: String,
    /// JID of its author.
    pub sender_jid: String,
    /// Its text, shown in the quote bubble when `raw` is absent.
    pub text: String,
    /// The original protobuf, when the backend stored it.
    pub raw: Option<Vec<u8>>,
}

/// A file a reply carries, already stored under `media/`.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingMedia {
    /// image, video, audio, voice, document.
    pub kind: String,
    /// The stored file.
    pub path: std::path::PathBuf,
    pub mime: String,
    /// The name a document is sent with.
    pub file_name: Option<String>,
    pub size: u64,
    /// Hex SHA-256 of the file.
    pub sha256: String,
}

/// The message a reaction names, as WhatsApp addressed it.
#[derive(Debug, Clone)]
pub struct Target {
    /// WhatsApp id of the message.
    pub wa_id: String,
    /// Its author as WhatsApp named them (a group's reactions must name it);
    /// empty for our own.
    pub sender_jid: String,
    /// We sent it.
    pub from_me: bool,
}

/// One message injected through `POST /api/v1/simulator/messages`.
#[derive(Debug, Clone, Default)]
pub struct SimMessage {
    pub from: String,
    pub text: Option<String>,
    pub id: Option<String>,
    pub push_name: Option<String>,
    pub media_type: Option<String>,
    pub media: Option<Vec<u8>>,
    pub mime: Option<String>,
    pub filename: Option<String>,
    pub group: Option<String>,
    /// The group's name (its subject), as the real backend learns it.
    pub group_name: Option<String>,
}

/// A message given as its protobuf (`POST /api/v1/simulator/raw`): the
/// envelope WhatsApp's stanza would carry, and the encoded `whatsapp.Message`.
#[derive(Debug, Clone, Default)]
pub struct RawMessage {
    /// The customer (the chat of a direct message; the author in a group).
    pub from: String,
    /// The phone-number JID WhatsApp names alongside a LID `from`, or the
    /// LID alongside a phone number.
    pub from_alt: Option<String>,
    pub proto: Vec<u8>,
    pub id: Option<String>,
    pub push_name: Option<String>,
    pub group: Option<String>,
    /// When WhatsApp says it was sent (Unix seconds).
    pub timestamp: Option<i64>,
    /// Stands in for the downloaded file of a media message.
    pub media: Option<Vec<u8>>,
    /// Our own account sent it (from the phone) into the chat `from`.
    pub from_me: bool,
}

/// What became of a raw message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawOutcome {
    pub wa_id: String,
    /// `message` (stored or already stored), `update`, or `ignored`.
    pub kind: &'static str,
}

/// One thing the simulator was asked to send, by its `kind`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SentRecord {
    /// A text message (a reply).
    Text {
        to: String,
        text: String,
        quoted_wa_id: Option<String>,
        /// The quoted message's author, as the quote names them.
        quoted_participant: Option<String>,
        wa_id: String,
        /// The disappearing-messages timer it carried (seconds), if any.
        expiration: Option<u32>,
    },
    /// A reply with a file (`text` is its caption).
    Media {
        to: String,
        text: String,
        quoted_wa_id: Option<String>,
        quoted_participant: Option<String>,
        wa_id: String,
        expiration: Option<u32>,
        media_type: String,
        mime: String,
        filename: Option<String>,
        size: u64,
        sha256: String,
    },
    /// A reaction (an empty emoji removes ours).
    Reaction {
        to: String,
        target_wa_id: String,
        emoji: String,
        wa_id: String,
    },
    /// Read receipts for messages of one chat.
    Read { to: String, wa_ids: Vec<String> },
    /// "typing…" shown or cleared.
    Typing { to: String, typing: bool },
}

impl SentRecord {
    /// The WhatsApp id of a sent message or reaction.
    pub fn wa_id(&self) -> Option<&str> {
        match self {
            SentRecord::Text { wa_id, .. }
            | SentRecord::Media { wa_id, .. }
            | SentRecord::Reaction { wa_id, .. } => Some(wa_id),
            SentRecord::Read { .. } | SentRecord::Typing { .. } => None,
        }
    }
}

/// A simulator message on its way to the sink: its WhatsApp id, and where
/// the sink answers once it is committed (or could not be).
pub struct Injected {
    pub wa_id: String,
    pub committed: Receiver<Result<Stored, String>>,
}

/// Events from the backend, applied by the event sink (`sink.rs`).
#[derive(Debug)]
pub enum WaEvent {
    /// A new pairing QR code; valid for `valid_for`.
    Qr { code: String, valid_for: Duration },
    /// The phone accepted the pairing; `jid` is our account.
    Paired { jid: String },
    /// Logged in and ready.
    Connected { jid: Option<String> },
    /// The connection dropped.
    Disconnected {
        reason: String,
        will_reconnect: bool,
    },
    /// Unlinked from the phone (or 401): no reconnect until a new pairing.
    LoggedOut { reason: String },
    /// WhatsApp stopped this session for a while or for good: a temporary
    /// ban (reconnecting at `until`, Unix seconds), an outdated client, or
    /// another client that took the session over. Not retried before then.
    Stopped {
        why: Stop,
        reason: String,
        until: Option<i64>,
    },
    /// A message (a customer's, or our own from another device). The sink
    /// commits it (and its webhook deliveries), then answers on `ack`; the
    /// backend acknowledges WhatsApp only after that.
    Message {
        message: Box<IncomingMessage>,
        ack: Option<Reply<Stored>>,
    },
    /// A reaction, edit, deletion or chat setting; answered like a message.
    Update {
        update: Box<Update>,
        ack: Option<Reply<Stored>>,
    },
    /// The media of message `id` was fetched (or given up on). The sink
    /// records it and announces the message to webhooks; `done` answers
    /// once that is committed.
    Media {
        id: String,
        media: Box<MediaInfo>,
        done: Option<Reply<()>>,
    },
    /// LID ↔ phone-number pairs WhatsApp reported outside a message (a
    /// contact changed number), as `(lid, phone)`: kept, chats merged.
    Learned { pairs: Vec<(String, String)> },
    /// Which stored messages still wait for their media (a download cut
    /// short by a restart): at most 100, oldest first.
    PendingMedia { reply: Reply<Vec<PendingMedia>> },
    /// A chat's display name (a group's subject) became known or changed.
    ChatName { chat: String, name: String },
    /// What became of a message we sent: accepted by WhatsApp's server (its
    /// acknowledgement), or refused (an error acknowledgement, or it could
    /// not be sent). `done` answers once applied.
    Sent {
        wa_id: String,
        outcome: Result<(), String>,
        done: Option<Reply<()>>,
    },
    /// A delivery receipt for messages we sent.
    Receipt {
        wa_ids: Vec<String>,
        status: DeliveryStatus,
    },
    /// The sink answers once every event sent before it is applied: a
    /// backend that must not answer a command before its effect shows.
    Flush { done: Reply<()> },
}

/// A message from WhatsApp as the inbox stores it: one a customer sent, or one
/// our own account sent from the phone or WhatsApp Web (`from_me`). Chat and
/// sender are as WhatsApp addressed them; the sink maps a LID to its phone
/// number from the LID table (and `mappings`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncomingMessage {
    /// WhatsApp's message id.
    pub wa_id: String,
    /// Chat JID as received, without device: the customer (phone number or
    /// LID) or the group.
    pub chat: String,
    /// Author JID as received, without device.
    pub sender: String,
    /// LID ↔ phone-number pairs this message revealed, as `(lid, phone)`.
    pub mappings: Vec<(String, String)>,
    pub push_name: Option<String>,
    /// Text, caption or placeholder.
    pub text: String,
    /// The media as announced (kind, mime, size); the file follows later.
    pub media: Option<MediaInfo>,
    /// The original protobuf, for quoting later and for media downloads.
    pub raw: Option<Vec<u8>>,
    /// When WhatsApp says it was sent (Unix seconds); the sink uses arrival
    /// time when absent.
    pub timestamp: Option<i64>,
    /// Sent by our own account from another device: stored as outgoing.
    pub from_me: bool,
    /// A stand-in for content that may arrive later (replaced in place).
    pub placeholder: Option<Placeholder>,
    /// The chat's disappearing-messages timer this message carries (seconds).
    pub expiration: Option<u32>,
}

/// Why a row shows a placeholder instead of the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// View-once content never reaches linked devices.
    ViewOnce,
    /// The message could not be decrypted (yet): a retry may bring it.
    Undecryptable,
}

impl Placeholder {
    pub fn as_str(self) -> &'static str {
        match self {
            Placeholder::ViewOnce => "view_once",
            Placeholder::Undecryptable => "undecryptable",
        }
    }

    /// The row's text while the content is missing.
    pub fn text(self) -> &'static str {
        match self {
            Placeholder::ViewOnce => "[View-once message: open it on the phone]",
            Placeholder::Undecryptable => "[Message could not be decrypted yet]",
        }
    }
}

/// A change to a message already sent (a reaction, an edit, a deletion) or
/// to its chat, rather than a new message.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    /// WhatsApp's id of the update itself.
    pub wa_id: String,
    /// Chat and author as received (see `IncomingMessage`).
    pub chat: String,
    pub sender: String,
    pub from_me: bool,
    /// LID ↔ phone-number pairs it revealed, as `(lid, phone)`.
    pub mappings: Vec<(String, String)>,
    pub action: UpdateAction,
}

/// What an `Update` does.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateAction {
    /// A reaction to message `target`; an empty emoji removes it.
    Reaction { target: String, emoji: String },
    /// Message `target` now reads `text`.
    Edit { target: String, text: String },
    /// Message `target` was deleted for everyone.
    Revoke { target: String },
    /// The chat's disappearing-messages timer changed (0: off).
    Expiration { seconds: u32 },
    /// Another change to an existing message (a pin, keep-in-chat, a poll
    /// option, an encrypted reaction …): `kind` names its protobuf field.
    Other { kind: String },
}

/// One thing that arrived from WhatsApp, translated: what both backends hand
/// the sink.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// A message for the inbox (or our own, from another device), with the
    /// media it announces (fetched after the message is stored).
    Message {
        message: Box<IncomingMessage>,
        media: Option<MediaSpec>,
    },
    /// A change to a message or chat.
    Update(Box<Update>),
    /// Not a chat message at all (protocol housekeeping, a status update, a
    /// channel post): why, for the debug log.
    Ignored(&'static str),
}

/// The media part of a message, before it is downloaded.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaSpec {
    /// image, video, video_note, audio, document, sticker.
    pub kind: &'static str,
    pub mime: Option<String>,
    /// The sender's file name (documents).
    pub file_name: Option<String>,
    /// The size WhatsApp announces, checked against MEDIA_MAX_BYTES before
    /// anything is downloaded.
    pub announced_len: Option<u64>,
}

impl MediaSpec {
    /// What the row records before the file arrives: kind, mime and the
    /// announced size; an announced size over `max_bytes` is refused here,
    /// so nothing is downloaded for it.
    pub fn announced(&self, max_bytes: u64) -> MediaInfo {
        let over = self.announced_len.filter(|len| *len > max_bytes);
        MediaInfo {
            kind: self.kind.to_string(),
            mime: self.mime.clone(),
            size: self.announced_len,
            error: over.map(|len| {
                format!("larger than MEDIA_MAX_BYTES ({max_bytes} bytes): {len} bytes announced")
            }),
            ..Default::default()
        }
    }
}

/// A stored message whose media has not been fetched yet.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingMedia {
    /// Public id of the row.
    pub id: String,
    pub wa_id: String,
    /// Chat and author as WhatsApp addressed the message.
    pub chat: String,
    pub sender: String,
    pub from_me: bool,
    /// The message's protobuf, which holds the media keys.
    pub raw: Vec<u8>,
}

/// The sink's answer to a stored message or update.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// The public id of the row whose media is to be fetched now: a new row
    /// (or a placeholder just filled in) whose media has no file yet.
    pub fetch_media: Option<String>,
}

/// A message's media as stored (or not) by `media::store`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaInfo {
    /// image, video, video_note, audio, document, sticker.
    pub kind: String,
    pub mime: Option<String>,
    /// File name under the media dir, when stored.
    pub file_name: Option<String>,
    pub size: Option<u64>,
    pub sha256: Option<String>,
    /// Why there is no file.
    pub error: Option<String>,
}

/// Why WhatsApp stopped a session (`WaEvent::Stopped`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Banned,
    ClientOutdated,
    Replaced,
}

/// The sender half of the door, cloned into every HTTP worker.
#[derive(Clone)]
pub struct WaHandle {
    /// Blocking on the sending side, async on the real backend's runtime.
    pub commands: async_channel::Sender<WaCommand>,
}

impl WaHandle {
    /// Sends a command built around a fresh reply channel and waits for the
    /// answer (bounded by `COMMAND_TIMEOUT`).
    pub fn call<T>(&self, make: impl FnOnce(Reply<T>) -> WaCommand) -> Result<T, String> {
        let (tx, rx) = bounded(1);
        self.commands
            .send_blocking(make(tx))
            .map_err(|_| "the WhatsApp backend has stopped".to_string())?;
        match rx.recv_timeout(COMMAND_TIMEOUT) {
            Ok(result) => result,
            Err(_) => Err("the WhatsApp backend did not answer in time".to_string()),
        }
    }
}

/// The `message` text of a media message without a caption.
pub fn placeholder(kind: &str, filename: Option<&str>) -> String {
    match kind {
        "image" => "[Image]".into(),
        "video" => "[Video]".into(),
        "video_note" => "[Video note]".into(),
        "audio" => "[Audio]".into(),
        "voice" => "[Voice message]".into(),
        "sticker" => "[Sticker]".into(),
        "document" => match filename {
            Some(name) if !name.is_empty() => format!("[Document: {name}]"),
            _ => "[Document]".into(),
        },
        other => format!("[{other}]"),
    }
}

/// `[Location: lat, lon]`.
pub fn location_placeholder(lat: f64, lon: f64) -> String {
    format!("[Location: {lat}, {lon}]")
}

/// `[Contact: name]`.
pub fn contact_placeholder(name: &str) -> String {
    format!("[Contact: {name}]")
}

/// A fresh WhatsApp message id in the form WhatsApp Web uses ("3EB0" and 18
/// upper-case hex digits), chosen before a message is sent so that the row,
/// the send and any retry of it share one id.
pub fn new_message_id() -> String {
    format!(
        "3EB0{}",
        crate::auth::hex(&crate::auth::random_bytes::<9>()).to_ascii_uppercase()
    )
}
