//! The door to WhatsApp: the `WaCommand`/`WaEvent` channel pair and the value
//! types that cross it. Both backends (the real one in `whatsapp.rs`, the
//! sandbox in `simulator.rs`) sit behind this door; nothing else knows which.

use crossbeam_channel::{Receiver, Sender, bounded};
use std::time::Duration;

/// A reply channel for a command: the backend answers exactly once.
pub type Reply<T> = Sender<Result<T, String>>;

/// How long an HTTP worker waits for the backend to answer a command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// What the rest of the program asks of the WhatsApp backend.
pub enum WaCommand {
    /// Send a text message to `to` (a chat JID), quoting `quote` when given.
    /// Answers WhatsApp's id of the sent message.
    Send {
        to: String,
        text: String,
        quote: Option<Quote>,
        reply: Reply<String>,
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
}

/// One message the simulator was asked to send.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SentRecord {
    pub to: String,
    pub text: String,
    pub quoted_wa_id: Option<String>,
    pub wa_id: String,
}

/// A simulator message on its way to the sink: its WhatsApp id, and where
/// the sink answers once it is committed (or could not be).
pub struct Injected {
    pub wa_id: String,
    pub committed: Receiver<Result<(), String>>,
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
    /// An incoming message. The sink commits it (and its webhook deliveries),
    /// then answers on `ack`; the backend acknowledges WhatsApp only after that.
    Message {
        message: Box<IncomingMessage>,
        ack: Option<Reply<()>>,
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

/// An incoming message as the backend delivers it, media already on disk.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncomingMessage {
    /// WhatsApp's message id.
    pub wa_id: String,
    /// Chat JID (customer or group).
    pub chat: String,
    /// Author JID (phone-number JID when known).
    pub sender: String,
    pub push_name: Option<String>,
    /// Text, caption or placeholder.
    pub text: String,
    pub media: Option<MediaInfo>,
    /// The original protobuf, for quoting later.
    pub raw: Option<Vec<u8>>,
    /// When WhatsApp says it was sent (Unix seconds); the sink uses arrival
    /// time when absent.
    pub timestamp: Option<i64>,
}

/// A message's media as stored (or not) by `media::store`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaInfo {
    /// image, video, audio, document, sticker.
    pub kind: String,
    pub mime: Option<String>,
    /// File name under the media dir, when stored.
    pub file_name: Option<String>,
    pub size: Option<u64>,
    pub sha256: Option<String>,
    /// Why there is no file.
    pub error: Option<String>,
}

/// Where an outgoing message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Sent,
    Delivered,
    Read,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Read => "read",
            DeliveryStatus::Failed => "failed",
        }
    }

    /// Receipts can arrive out of order; a status only ever moves forward.
    pub fn rank(self) -> u8 {
        match self {
            DeliveryStatus::Pending => 0,
            DeliveryStatus::Sent => 1,
            DeliveryStatus::Delivered => 2,
            DeliveryStatus::Read => 3,
            DeliveryStatus::Failed => 4,
        }
    }
}

/// The sender half of the door, cloned into every HTTP worker.
#[derive(Clone)]
pub struct WaHandle {
    pub commands: Sender<WaCommand>,
}

impl WaHandle {
    /// Sends a command built around a fresh reply channel and waits for the
    /// answer (bounded by `COMMAND_TIMEOUT`).
    pub fn call<T>(&self, make: impl FnOnce(Reply<T>) -> WaCommand) -> Result<T, String> {
        let (tx, rx) = bounded(1);
        self.commands
            .send(make(tx))
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
