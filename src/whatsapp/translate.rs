//! Pure translation from whatsapp-rust's events and protobuf messages into the
//! door's types (`wa.rs`). No client, no I/O: everything here is unit-tested
//! with the crate's own builders.

use crate::wa::{
    self, DeliveryStatus, Inbound, IncomingMessage, MediaSpec, Placeholder, RawMessage, Update,
    UpdateAction,
};
use proto::message::buttons_response_message::Response as ButtonsResponse;
use proto::message::call_log_message::CallOutcome;
use proto::message::interactive_response_message::InteractiveResponseMessage as InteractiveResponse;
use std::time::Duration;
use whatsapp_rust::buffa::Message as _;
use whatsapp_rust::chrono::{TimeZone, Utc};
use whatsapp_rust::download::Downloadable;
use whatsapp_rust::prelude::{Event, Jid, MessageExt, MessageInfo, wa as proto};
use whatsapp_rust::types::call::CallAction;
use whatsapp_rust::types::events::{DecryptFailMode, UnavailableType, UndecryptableMessage};
use whatsapp_rust::types::message::MessageSource;
use whatsapp_rust::types::presence::ReceiptType;
use whatsapp_rust::wacore_binary::jid::JidExt;

/// What the backend learns from one crate event. Owned and `Send`, so the
/// event handler (which must never block) can queue it for the supervisor.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    Qr {
        code: String,
        valid_for: Duration,
    },
    PairingCode {
        code: String,
    },
    Paired {
        jid: String,
    },
    Connected,
    Disconnected {
        reason: String,
    },
    LoggedOut {
        reason: String,
    },
    /// Another client took over this session (stream conflict).
    Replaced,
    /// WhatsApp banned this account for `expire`.
    Banned {
        expire: Duration,
        reason: String,
    },
    /// WhatsApp refused this client version.
    ClientOutdated,
    /// A call was offered: a missed call unless it is answered elsewhere.
    CallOffered(CallOffer),
    /// Call `call_id` ended; `answered` when another of our devices took
    /// (or declined) it.
    CallEnded {
        call_id: String,
        answered: bool,
    },
    /// A call offered while we were offline, replayed on reconnect: missed.
    CallMissed(CallOffer),
    /// LID ↔ phone-number pairs reported outside a message, `(lid, phone)`.
    Learned(Vec<(String, String)>),
    /// Every QR reference of this connection expired unscanned.
    QrExhausted,
    Receipt {
        wa_ids: Vec<String>,
        status: DeliveryStatus,
    },
    /// A message the crate could not decrypt (or a view-once one): stored as
    /// a placeholder; the crate acknowledges it on its own.
    Placeholder(Box<IncomingMessage>),
    /// WhatsApp's server answered a message we sent, after its send stopped
    /// waiting: accepted, or refused with an error code.
    Sent {
        wa_id: String,
        outcome: Result<(), String>,
    },
}

/// Maps one crate event to what the backend cares about (most events: nothing).
/// Message batches are not here: they go through the durability hook.
pub fn signal(event: &Event) -> Option<Signal> {
    Some(match event {
        Event::PairingQrCode(qr) => Signal::Qr {
            code: qr.code.clone(),
            valid_for: qr.timeout,
        },
        Event::PairingCode(p) => Signal::PairingCode {
            code: p.code.clone(),
        },
        Event::PairSuccess(p) => Signal::Paired {
            jid: p.id.to_non_ad_string(),
        },
        Event::Connected(_) => Signal::Connected,
        Event::Disconnected(d) => Signal::Disconnected {
            reason: d.reason.to_string(),
        },
        Event::LoggedOut(l) => Signal::LoggedOut {
            reason: format!("logged out by WhatsApp ({:?})", l.reason),
        },
        Event::StreamReplaced(_) => Signal::Replaced,
        Event::TemporaryBan(ban) => Signal::Banned {
            expire: ban.expire.to_std().unwrap_or_default(),
            reason: ban.code.to_string(),
        },
        Event::ClientOutdated(_) => Signal::ClientOutdated,
        // The customer's LID now stands for the new number.
        Event::ContactNumberChanged(change) => Signal::Learned(
            change
                .new_lid
                .as_ref()
                .filter(|lid| lid.is_lid() && change.new_jid.is_pn())
                .map(|lid| (lid.to_non_ad_string(), change.new_jid.to_non_ad_string()))
                .into_iter()
                .collect(),
        ),
        Event::IncomingCall(call) => match &call.action {
            CallAction::Offer {
                call_id,
                call_creator,
                caller_pn,
                is_video,
                group_jid,
                ..
            } => Signal::CallOffered(CallOffer {
                call_id: call_id.clone(),
                caller: call_creator.to_non_ad_string(),
                caller_pn: caller_pn.as_ref().map(|j| j.to_non_ad_string()),
                group: group_jid.as_ref().map(|j| j.to_non_ad_string()),
                video: Some(*is_video),
                timestamp: call.timestamp.timestamp(),
            }),
            CallAction::Terminate {
                call_id, reason, ..
            } => Signal::CallEnded {
                call_id: call_id.clone(),
                answered: reason
                    .as_deref()
                    .is_some_and(|r| r == "accepted_elsewhere" || r == "rejected_elsewhere"),
            },
            _ => return None,
        },
        Event::MissedCall(missed) => Signal::CallMissed(CallOffer {
            call_id: missed.call_id.clone(),
            caller: missed.from.to_non_ad_string(),
            caller_pn: None,
            group: None,
            video: None,
            timestamp: missed.timestamp.timestamp(),
        }),
        Event::PairingQrCodesExhausted(_) => Signal::QrExhausted,
        Event::Receipt(r) => Signal::Receipt {
            wa_ids: r.message_ids.iter().map(|id| id.to_string()).collect(),
            status: receipt_status(&r.r#type)?,
        },
        Event::UndecryptableMessage(u) => Signal::Placeholder(Box::new(undecryptable(u)?)),
        _ => return None,
    })
}

/// A call offered to us, kept until it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct CallOffer {
    pub call_id: String,
    /// Who calls (phone number or LID, without device).
    pub caller: String,
    /// The caller's phone-number JID, when the offer names it beside a LID.
    pub caller_pn: Option<String>,
    /// The group, for a group call.
    pub group: Option<String>,
    /// Video or voice; unknown for an offer replayed after downtime.
    pub video: Option<bool>,
    pub timestamp: i64,
}

/// The row a missed call leaves in its chat (keyed by the call's id, so a
/// replay stores nothing twice).
pub fn missed_call(call: &CallOffer) -> IncomingMessage {
    let text = match call.video {
        Some(true) => "[Missed video call]",
        Some(false) => "[Missed voice call]",
        None => "[Missed call]",
    };
    let mappings = match &call.caller_pn {
        Some(pn) if call.caller.ends_with("@lid") => vec![(call.caller.clone(), pn.clone())],
        _ => Vec::new(),
    };
    IncomingMessage {
        wa_id: call.call_id.clone(),
        chat: call.group.clone().unwrap_or_else(|| call.caller.clone()),
        sender: call.caller.clone(),
        mappings,
        text: text.into(),
        timestamp: Some(call.timestamp).filter(|t| *t > 0),
        ..Default::default()
    }
}

/// Receipts that move an outgoing message forward. `*Self` receipts are our
/// own other devices reading incoming messages: not about what we sent.
fn receipt_status(kind: &ReceiptType) -> Option<DeliveryStatus> {
    match kind {
        ReceiptType::Delivered => Some(DeliveryStatus::Delivered),
        ReceiptType::Read | ReceiptType::Played => Some(DeliveryStatus::Read),
        _ => None,
    }
}

// ───────────────────────────── messages ─────────────────────────────

/// Translates one decrypted message. Never loses a message a customer sent:
/// every field of `proto::Message` is shown, unwrapped, taken as an update,
/// ignored as protocol housekeeping, or stored as `[Unsupported message:
/// <field>]` with its protobuf (`FIELD_DECISIONS` lists each field's
/// decision, and a test holds the list to the crate's schema).
pub fn inbound(info: &MessageInfo, message: &proto::Message) -> Inbound {
    let source = &info.source;
    if source.chat.is_status_broadcast() {
        return Inbound::Ignored("a status update");
    }
    if source.chat.is_newsletter() {
        return Inbound::Ignored("a channel post");
    }
    let base = unwrap(message);
    let head = Head::of(info);
    match content(base) {
        Content::Show { text, media } => Inbound::Message {
            message: Box::new(head.message(info, text, Some(base), expiration(info, base))),
            media,
        },
        Content::Placeholder(kind) => Inbound::Message {
            message: Box::new(IncomingMessage {
                placeholder: Some(kind),
                ..head.message(info, kind.text().to_string(), None, None)
            }),
            media: None,
        },
        Content::Unsupported(field) => Inbound::Message {
            message: Box::new(head.message(
                info,
                format!("[Unsupported message: {field}]"),
                Some(message),
                expiration(info, base),
            )),
            media: None,
        },
        Content::Update(action) => Inbound::Update(Box::new(Update {
            wa_id: info.id.to_string(),
            chat: head.chat,
            sender: head.sender,
            from_me: source.is_from_me,
            mappings: head.mappings,
            action,
        })),
        Content::Ignored(why) => Inbound::Ignored(why),
    }
}

/// A placeholder row for a message the crate could not decrypt, or whose
/// content (view-once) never reaches a linked device. A later delivery of
/// the real content replaces it in place. None: nothing to show (a status,
/// a channel post, or a failure the sender asked to hide, as reactions and
/// edits do).
pub fn undecryptable(u: &UndecryptableMessage) -> Option<IncomingMessage> {
    let info = &u.info;
    if info.source.chat.is_status_broadcast()
        || info.source.chat.is_newsletter()
        || u.decrypt_fail_mode == DecryptFailMode::Hide
    {
        return None;
    }
    let kind = if u.unavailable_type == UnavailableType::ViewOnce {
        Placeholder::ViewOnce
    } else {
        Placeholder::Undecryptable
    };
    Some(IncomingMessage {
        placeholder: Some(kind),
        ..Head::of(info).message(info, kind.text().to_string(), None, None)
    })
}

/// The envelope of a message: who, where, and the LID pairs it revealed.
struct Head {
    chat: String,
    sender: String,
    mappings: Vec<(String, String)>,
}

impl Head {
    fn of(info: &MessageInfo) -> Head {
        let source = &info.source;
        let sender = source.sender.to_non_ad_string();
        let chat = if source.chat.is_broadcast_list() {
            // A broadcast list reaches its recipients as a direct message.
            sender.clone()
        } else {
            source.chat.to_non_ad_string()
        };
        let mut mappings = Vec::new();
        let mut learn = |a: &Jid, b: Option<&Jid>| {
            let Some(b) = b else { return };
            if a.is_lid() && b.is_pn() {
                mappings.push((a.to_non_ad_string(), b.to_non_ad_string()));
            } else if a.is_pn() && b.is_lid() {
                mappings.push((b.to_non_ad_string(), a.to_non_ad_string()));
            }
        };
        learn(&source.sender, source.sender_alt.as_ref());
        if !source.is_group {
            learn(&source.chat, source.recipient_alt.as_ref());
        }
        Head {
            chat,
            sender,
            mappings,
        }
    }

    fn message(
        &self,
        info: &MessageInfo,
        text: String,
        raw: Option<&proto::Message>,
        expiration: Option<u32>,
    ) -> IncomingMessage {
        IncomingMessage {
            wa_id: info.id.to_string(),
            chat: self.chat.clone(),
            sender: self.sender.clone(),
            mappings: self.mappings.clone(),
            push_name: Some(info.push_name.trim().to_string()).filter(|n| !n.is_empty()),
            text,
            media: None,
            raw: raw.map(|m| m.encode_to_vec()),
            timestamp: Some(info.timestamp.timestamp()).filter(|t| *t > 0),
            from_me: info.source.is_from_me,
            placeholder: None,
            expiration,
        }
    }
}

/// The disappearing-messages timer a message carries.
fn expiration(info: &MessageInfo, base: &proto::Message) -> Option<u32> {
    info.ephemeral_expiration
        .or_else(|| base.get_ephemeral_expiration())
}

/// The message inside every wrapper, however they nest: ephemeral,
/// view-once (v1, v2, extension), document-with-caption, edited,
/// device-sent, group-mentioned, spoiler, bot-invoke, associated child
/// (album photos), lottie sticker, status mentions, bot-forwarded, the
/// cover image of an event, the fourth poll version.
pub fn unwrap(message: &proto::Message) -> &proto::Message {
    let mut m = message;
    // Bounded: a hostile sender cannot make this loop forever (each step
    // goes one level down a finite, decoded tree), but a depth cap keeps it
    // obviously finite.
    for _ in 0..32 {
        let future_proof = [
            &m.ephemeral_message,
            &m.view_once_message,
            &m.view_once_message_v2,
            &m.view_once_message_v2_extension,
            &m.document_with_caption_message,
            &m.edited_message,
            &m.group_mentioned_message,
            &m.spoiler_message,
            &m.bot_invoke_message,
            &m.associated_child_message,
            &m.lottie_sticker_message,
            &m.status_mention_message,
            &m.group_status_mention_message,
            &m.bot_forwarded_message,
            &m.event_cover_image,
            &m.poll_creation_message_v4,
            &m.limit_sharing_message,
        ];
        let inner = future_proof
            .into_iter()
            .find_map(|w| w.as_option().and_then(|w| w.message.as_option()))
            .or_else(|| {
                m.device_sent_message
                    .as_option()
                    .and_then(|d| d.message.as_option())
            });
        match inner {
            Some(inner) => m = inner,
            None => break,
        }
    }
    m
}

/// What one (unwrapped) message is.
#[derive(Debug, PartialEq)]
enum Content {
    /// Text, caption or placeholder, and the media to fetch.
    Show {
        text: String,
        media: Option<MediaSpec>,
    },
    /// A stand-in for content kept from linked devices.
    Placeholder(Placeholder),
    Update(UpdateAction),
    Ignored(&'static str),
    /// Stored as `[Unsupported message: <field>]`.
    Unsupported(String),
}

fn show(text: impl Into<String>) -> Content {
    Content::Show {
        text: text.into(),
        media: None,
    }
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// The inbox text (text, caption or placeholder) and media of a message.
fn content(m: &proto::Message) -> Content {
    let caption_or = |caption: Option<&str>, placeholder: String| {
        non_empty(caption).map_or(placeholder, str::to_string)
    };
    let media = |text: String, spec: MediaSpec| Content::Show {
        text,
        media: Some(spec),
    };
    if let Some(text) = m.conversation.as_deref() {
        return show(text);
    }
    if let Some(x) = m.extended_text_message.as_option() {
        return show(x.text.as_deref().unwrap_or(""));
    }
    if let Some(i) = m.image_message.as_option() {
        let text = caption_or(i.caption.as_deref(), wa::placeholder("image", None));
        return media(text, spec("image", &i.mimetype, None, i.file_length));
    }
    if let Some(v) = m.video_message.as_option() {
        let text = caption_or(v.caption.as_deref(), wa::placeholder("video", None));
        return media(text, spec("video", &v.mimetype, None, v.file_length));
    }
    if let Some(v) = m.ptv_message.as_option() {
        let text = caption_or(v.caption.as_deref(), wa::placeholder("video_note", None));
        return media(text, spec("video_note", &v.mimetype, None, v.file_length));
    }
    if let Some(a) = m.audio_message.as_option() {
        let voice = a.ptt.unwrap_or(false);
        let text = wa::placeholder(if voice { "voice" } else { "audio" }, None);
        return media(text, spec("audio", &a.mimetype, None, a.file_length));
    }
    if let Some(d) = m.document_message.as_option() {
        let name = d.file_name.clone().or_else(|| d.title.clone());
        let text = caption_or(
            d.caption.as_deref(),
            wa::placeholder("document", name.as_deref()),
        );
        return media(text, spec("document", &d.mimetype, name, d.file_length));
    }
    if let Some(s) = m.sticker_message.as_option() {
        let text = wa::placeholder("sticker", None);
        return media(text, spec("sticker", &s.mimetype, None, s.file_length));
    }
    if let Some(l) = m.location_message.as_option() {
        let (lat, lon) = (
            l.degrees_latitude.unwrap_or(0.0),
            l.degrees_longitude.unwrap_or(0.0),
        );
        let place = [l.name.as_deref(), l.address.as_deref()]
            .into_iter()
            .filter_map(non_empty)
            .collect::<Vec<_>>()
            .join(", ");
        let text = wa::location_placeholder(lat, lon);
        return show(if place.is_empty() {
            text
        } else {
            format!("{text} {place}")
        });
    }
    if let Some(l) = m.live_location_message.as_option() {
        let (lat, lon) = (
            l.degrees_latitude.unwrap_or(0.0),
            l.degrees_longitude.unwrap_or(0.0),
        );
        return show(format!("[Live location: {lat}, {lon}]"));
    }
    if let Some(c) = m.contact_message.as_option() {
        return show(wa::contact_placeholder(&contact(
            c.display_name.as_deref(),
            c.vcard.as_deref(),
        )));
    }
    if let Some(list) = m.contacts_array_message.as_option() {
        let people: Vec<String> = list
            .contacts
            .iter()
            .map(|c| contact(c.display_name.as_deref(), c.vcard.as_deref()))
            .collect();
        return show(wa::contact_placeholder(&people.join(", ")));
    }
    if let Some(a) = m.album_message.as_option() {
        let count = |n: Option<u32>, one: &str, many: &str| match n.unwrap_or(0) {
            0 => None,
            1 => Some(format!("1 {one}")),
            n => Some(format!("{n} {many}")),
        };
        let parts: Vec<String> = [
            count(a.expected_image_count, "photo", "photos"),
            count(a.expected_video_count, "video", "videos"),
        ]
        .into_iter()
        .flatten()
        .collect();
        return show(if parts.is_empty() {
            "[Album]".to_string()
        } else {
            format!("[Album: {}]", parts.join(", "))
        });
    }
    // What a customer taps on a business message: the option's text.
    if let Some(b) = m.buttons_response_message.as_option() {
        let chosen = match &b.response {
            Some(ButtonsResponse::SelectedDisplayText(text)) => non_empty(Some(text)),
            None => None,
        };
        return show(
            chosen
                .or(non_empty(b.selected_button_id.as_deref()))
                .unwrap_or("[Button reply]"),
        );
    }
    if let Some(l) = m.list_response_message.as_option() {
        let row = l
            .single_select_reply
            .as_option()
            .and_then(|r| non_empty(r.selected_row_id.as_deref()));
        return show(
            non_empty(l.title.as_deref())
                .or(row)
                .unwrap_or("[List reply]"),
        );
    }
    if let Some(t) = m.template_button_reply_message.as_option() {
        return show(
            non_empty(t.selected_display_text.as_deref())
                .or(non_empty(t.selected_id.as_deref()))
                .unwrap_or("[Button reply]"),
        );
    }
    if let Some(r) = m.interactive_response_message.as_option() {
        let body = r
            .body
            .as_option()
            .and_then(|b| non_empty(b.text.as_deref()));
        let flow = match &r.interactive_response_message {
            Some(InteractiveResponse::NativeFlowResponseMessage(f)) => non_empty(f.name.as_deref())
                .map(|name| match non_empty(f.params_json.as_deref()) {
                    Some(params) => format!("[Response: {name}] {params}"),
                    None => format!("[Response: {name}]"),
                }),
            None => None,
        };
        return show(
            body.map(str::to_string)
                .or(flow)
                .unwrap_or_else(|| "[Response]".into()),
        );
    }
    // Business messages (a business account writing to us).
    if let Some(b) = m.buttons_message.as_option() {
        return show(non_empty(b.content_text.as_deref()).unwrap_or("[Buttons]"));
    }
    if let Some(l) = m.list_message.as_option() {
        let text = [l.title.as_deref(), l.description.as_deref()]
            .into_iter()
            .filter_map(non_empty)
            .collect::<Vec<_>>()
            .join("\n");
        return show(if text.is_empty() {
            "[List]".to_string()
        } else {
            text
        });
    }
    if let Some(t) = m.template_message.as_option() {
        let hydrated = t
            .hydrated_template
            .as_option()
            .and_then(|h| non_empty(h.hydrated_content_text.as_deref()));
        return show(hydrated.unwrap_or("[Template message]"));
    }
    if let Some(i) = m.interactive_message.as_option() {
        let body = i
            .body
            .as_option()
            .and_then(|b| non_empty(b.text.as_deref()));
        return show(body.unwrap_or("[Interactive message]"));
    }
    if m.highly_structured_message.is_set() {
        return show("[Template message]");
    }
    for poll in [
        &m.poll_creation_message,
        &m.poll_creation_message_v2,
        &m.poll_creation_message_v3,
        &m.poll_creation_message_v5,
        &m.poll_creation_message_v6,
    ] {
        if let Some(p) = poll.as_option() {
            let options: Vec<&str> = p
                .options
                .iter()
                .filter_map(|o| non_empty(o.option_name.as_deref()))
                .collect();
            let question = non_empty(p.name.as_deref()).unwrap_or("");
            return show(
                format!("[Poll: {question}] {}", options.join(" / "))
                    .trim_end()
                    .to_string(),
            );
        }
    }
    if m.poll_update_message.is_set() {
        // A vote is encrypted with the poll's secret; it is not decrypted here.
        return show("[Poll vote]");
    }
    for snapshot in [
        &m.poll_result_snapshot_message,
        &m.poll_result_snapshot_message_v3,
    ] {
        if let Some(p) = snapshot.as_option() {
            return show(format!(
                "[Poll results: {}]",
                non_empty(p.name.as_deref()).unwrap_or("")
            ));
        }
    }
    if let Some(o) = m.order_message.as_option() {
        let items = match o.item_count.unwrap_or(0) {
            1 => "1 item".to_string(),
            n => format!("{n} items"),
        };
        let title = non_empty(o.order_title.as_deref());
        let head = match title {
            Some(title) => format!("[Order: {title}, {items}]"),
            None => format!("[Order: {items}]"),
        };
        return show(match non_empty(o.message.as_deref()) {
            Some(note) => format!("{head} {note}"),
            None => head,
        });
    }
    if let Some(p) = m.product_message.as_option() {
        let title = p
            .product
            .as_option()
            .and_then(|x| non_empty(x.title.as_deref()));
        return show(format!("[Product: {}]", title.unwrap_or("")));
    }
    if let Some(g) = m.group_invite_message.as_option() {
        let name = non_empty(g.group_name.as_deref()).unwrap_or("");
        let caption = non_empty(g.caption.as_deref());
        return show(match caption {
            Some(caption) => format!("[Group invite: {name}] {caption}"),
            None => format!("[Group invite: {name}]"),
        });
    }
    if let Some(e) = m.event_message.as_option() {
        return show(format!(
            "[Event: {}]",
            non_empty(e.name.as_deref()).unwrap_or("")
        ));
    }
    if let Some(e) = m.event_invite_message.as_option() {
        return show(format!(
            "[Event invite: {}]",
            non_empty(e.event_title.as_deref()).unwrap_or("")
        ));
    }
    if m.enc_event_response_message.is_set() {
        return show("[Event response]");
    }
    if let Some(c) = m.scheduled_call_creation_message.as_option() {
        return show(format!(
            "[Scheduled call: {}]",
            non_empty(c.title.as_deref()).unwrap_or("")
        ));
    }
    if m.request_phone_number_message.is_set() {
        return show("[Phone number request]");
    }
    if let Some(c) = m.call_log_messsage.as_option() {
        let video = c.is_video.unwrap_or(false);
        let missed = matches!(
            c.call_outcome,
            Some(CallOutcome::MISSED) | Some(CallOutcome::REJECTED)
        );
        return show(match (missed, video) {
            (true, true) => "[Missed video call]",
            (true, false) => "[Missed voice call]",
            (false, true) => "[Video call]",
            (false, false) => "[Voice call]",
        });
    }
    if m.call.is_set() {
        return show("[Call]");
    }
    if let Some(p) = m.sticker_pack_message.as_option() {
        return show(format!(
            "[Sticker pack: {}]",
            non_empty(p.name.as_deref()).unwrap_or("")
        ));
    }
    if m.placeholder_message.is_set() {
        // The phone keeps this content from linked devices (view-once media).
        return Content::Placeholder(Placeholder::ViewOnce);
    }
    // Changes to other messages.
    if let Some(r) = m.reaction_message.as_option() {
        return Content::Update(UpdateAction::Reaction {
            target: key_id(&r.key),
            emoji: r.text.clone().unwrap_or_default(),
        });
    }
    if let Some(p) = m.protocol_message.as_option() {
        return protocol(p);
    }
    for (field, set) in [
        ("encReactionMessage", m.enc_reaction_message.is_set()),
        ("pinInChatMessage", m.pin_in_chat_message.is_set()),
        ("keepInChatMessage", m.keep_in_chat_message.is_set()),
        (
            "secretEncryptedMessage",
            m.secret_encrypted_message.is_set(),
        ),
        ("pollAddOptionMessage", m.poll_add_option_message.is_set()),
        (
            "scheduledCallEditMessage",
            m.scheduled_call_edit_message.is_set(),
        ),
    ] {
        if set {
            return Content::Update(UpdateAction::Other { kind: field.into() });
        }
    }
    unsupported(m)
}

/// Anything else: named by its first field that is not key or context
/// metadata. A message that carries only key distribution is protocol
/// housekeeping; one with nothing we know (a field newer than the crate's
/// schema is dropped when decoding) is stored as `unknown`.
fn unsupported(m: &proto::Message) -> Content {
    let fields = set_fields(m);
    let content = fields
        .iter()
        .find(|f| decision(f) != Some(Decision::Metadata));
    match content {
        Some(field) => Content::Unsupported(field.clone()),
        None if fields.iter().any(|f| f != "messageContextInfo") => {
            Content::Ignored("key distribution")
        }
        None => Content::Unsupported("unknown".into()),
    }
}

/// The protocol messages: revocations and edits are updates; the rest is
/// housekeeping between our own devices (keys, history sync, …), already
/// handled by the crate.
fn protocol(p: &proto::message::ProtocolMessage) -> Content {
    use proto::message::protocol_message::Type;
    match p.r#type {
        Some(Type::REVOKE) => Content::Update(UpdateAction::Revoke {
            target: key_id(&p.key),
        }),
        Some(Type::MESSAGE_EDIT) => Content::Update(UpdateAction::Edit {
            target: key_id(&p.key),
            text: p
                .edited_message
                .as_option()
                .map(|m| match content(unwrap(m)) {
                    Content::Show { text, .. } => text,
                    _ => String::new(),
                })
                .unwrap_or_default(),
        }),
        Some(Type::EPHEMERAL_SETTING) => Content::Update(UpdateAction::Expiration {
            seconds: p.ephemeral_expiration.unwrap_or(0),
        }),
        Some(other) => Content::Update(UpdateAction::Other {
            kind: format!("protocolMessage {other:?}"),
        }),
        None => Content::Update(UpdateAction::Other {
            kind: "protocolMessage".into(),
        }),
    }
}

fn key_id(key: &whatsapp_rust::prelude::MessageField<proto::MessageKey>) -> String {
    key.as_option()
        .and_then(|k| k.id.clone())
        .unwrap_or_default()
}

/// A contact card as `name (numbers)`: the name, and the phone numbers of
/// its vCard's TEL lines.
fn contact(name: Option<&str>, vcard: Option<&str>) -> String {
    let numbers: Vec<&str> = vcard
        .unwrap_or("")
        .lines()
        .filter(|line| line.get(..3).is_some_and(|t| t.eq_ignore_ascii_case("tel")))
        .filter_map(|line| line.rsplit_once(':').map(|(_, n)| n.trim()))
        .filter(|n| !n.is_empty())
        .collect();
    let name = non_empty(name).unwrap_or("");
    match (name.is_empty(), numbers.is_empty()) {
        (_, true) => name.to_string(),
        (true, false) => numbers.join(", "),
        (false, false) => format!("{name} ({})", numbers.join(", ")),
    }
}

fn spec(
    kind: &'static str,
    mime: &Option<String>,
    file_name: Option<String>,
    announced_len: Option<u64>,
) -> MediaSpec {
    MediaSpec {
        kind,
        mime: mime.clone().filter(|m| !m.is_empty()),
        file_name,
        announced_len,
    }
}

/// The media a stored message announces (its kind, mime, name and size).
pub fn media_spec(message: &proto::Message) -> Option<MediaSpec> {
    match content(unwrap(message)) {
        Content::Show { media, .. } => media,
        _ => None,
    }
}

/// The downloadable part of a message (after unwrapping), if any.
pub fn downloadable(message: &proto::Message) -> Option<&dyn Downloadable> {
    let m = unwrap(message);
    if let Some(x) = m.image_message.as_option() {
        Some(x)
    } else if let Some(x) = m.video_message.as_option() {
        Some(x)
    } else if let Some(x) = m.ptv_message.as_option() {
        Some(x)
    } else if let Some(x) = m.audio_message.as_option() {
        Some(x)
    } else if let Some(x) = m.document_message.as_option() {
        Some(x)
    } else if let Some(x) = m.sticker_message.as_option() {
        Some(x)
    } else {
        None
    }
}

/// How a field of `proto::Message` is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Shown as text, caption or placeholder (with its media).
    Show,
    /// A wrapper: its inner message is translated.
    Unwrap,
    /// A change to another message or to the chat.
    Update,
    /// Rides along with content (keys, context); alone it is housekeeping.
    Metadata,
    /// Stored as `[Unsupported message: <field>]` with the raw protobuf.
    Unsupported,
}

/// Every field of `proto::Message` (its protobuf name) and its decision. A
/// test walks the crate's schema and fails on a field missing here.
pub const FIELD_DECISIONS: &[(&str, Decision)] = {
    use Decision::*;
    &[
        ("conversation", Show),
        ("senderKeyDistributionMessage", Metadata),
        ("imageMessage", Show),
        ("contactMessage", Show),
        ("locationMessage", Show),
        ("extendedTextMessage", Show),
        ("documentMessage", Show),
        ("audioMessage", Show),
        ("videoMessage", Show),
        ("call", Show),
        ("chat", Unsupported),
        ("protocolMessage", Update),
        ("contactsArrayMessage", Show),
        ("highlyStructuredMessage", Show),
        ("fastRatchetKeySenderKeyDistributionMessage", Metadata),
        ("sendPaymentMessage", Unsupported),
        ("liveLocationMessage", Show),
        ("requestPaymentMessage", Unsupported),
        ("declinePaymentRequestMessage", Unsupported),
        ("cancelPaymentRequestMessage", Unsupported),
        ("templateMessage", Show),
        ("stickerMessage", Show),
        ("groupInviteMessage", Show),
        ("templateButtonReplyMessage", Show),
        ("productMessage", Show),
        ("deviceSentMessage", Unwrap),
        ("messageContextInfo", Metadata),
        ("listMessage", Show),
        ("viewOnceMessage", Unwrap),
        ("orderMessage", Show),
        ("listResponseMessage", Show),
        ("ephemeralMessage", Unwrap),
        ("invoiceMessage", Unsupported),
        ("buttonsMessage", Show),
        ("buttonsResponseMessage", Show),
        ("paymentInviteMessage", Unsupported),
        ("interactiveMessage", Show),
        ("reactionMessage", Update),
        ("stickerSyncRmrMessage", Unsupported),
        ("interactiveResponseMessage", Show),
        ("pollCreationMessage", Show),
        ("pollUpdateMessage", Show),
        ("keepInChatMessage", Update),
        ("documentWithCaptionMessage", Unwrap),
        ("requestPhoneNumberMessage", Show),
        ("viewOnceMessageV2", Unwrap),
        ("encReactionMessage", Update),
        ("editedMessage", Unwrap),
        ("viewOnceMessageV2Extension", Unwrap),
        ("pollCreationMessageV2", Show),
        ("scheduledCallCreationMessage", Show),
        ("groupMentionedMessage", Unwrap),
        ("pinInChatMessage", Update),
        ("pollCreationMessageV3", Show),
        ("scheduledCallEditMessage", Update),
        ("ptvMessage", Show),
        ("botInvokeMessage", Unwrap),
        ("callLogMesssage", Show),
        ("messageHistoryBundle", Unsupported),
        ("encCommentMessage", Unsupported),
        ("bcallMessage", Unsupported),
        ("lottieStickerMessage", Unwrap),
        ("eventMessage", Show),
        ("encEventResponseMessage", Show),
        ("commentMessage", Unsupported),
        ("newsletterAdminInviteMessage", Unsupported),
        ("placeholderMessage", Show),
        ("secretEncryptedMessage", Update),
        ("albumMessage", Show),
        ("eventCoverImage", Unwrap),
        ("stickerPackMessage", Show),
        ("statusMentionMessage", Unwrap),
        ("pollResultSnapshotMessage", Show),
        ("pollCreationOptionImageMessage", Unsupported),
        ("associatedChildMessage", Unwrap),
        ("groupStatusMentionMessage", Unwrap),
        ("pollCreationMessageV4", Unwrap),
        ("statusAddYours", Unsupported),
        ("groupStatusMessage", Unsupported),
        ("richResponseMessage", Unsupported),
        ("statusNotificationMessage", Unsupported),
        ("limitSharingMessage", Unwrap),
        ("botTaskMessage", Unsupported),
        ("questionMessage", Unsupported),
        ("messageHistoryNotice", Unsupported),
        ("groupStatusMessageV2", Unsupported),
        ("botForwardedMessage", Unwrap),
        ("statusQuestionAnswerMessage", Unsupported),
        ("questionReplyMessage", Unsupported),
        ("questionResponseMessage", Unsupported),
        ("statusQuotedMessage", Unsupported),
        ("statusStickerInteractionMessage", Unsupported),
        ("pollCreationMessageV5", Show),
        ("newsletterFollowerInviteMessageV2", Unsupported),
        ("pollResultSnapshotMessageV3", Show),
        ("newsletterAdminProfileMessage", Unsupported),
        ("newsletterAdminProfileMessageV2", Unsupported),
        ("spoilerMessage", Unwrap),
        ("pollCreationMessageV6", Show),
        ("conditionalRevealMessage", Unsupported),
        ("pollAddOptionMessage", Update),
        ("eventInviteMessage", Show),
        ("groupRootKeyShare", Metadata),
        ("paymentReminderMessage", Unsupported),
        ("splitPaymentMessage", Unsupported),
        ("newsletterAdminProfileStatusMessage", Unsupported),
        ("rootSecretDistributeMessage", Metadata),
    ]
};

/// The decision for a field (its protobuf name), if it has one.
pub fn decision(field: &str) -> Option<Decision> {
    FIELD_DECISIONS
        .iter()
        .find(|(name, _)| *name == field)
        .map(|(_, d)| *d)
}

/// The protobuf names of the fields set in `m`, in field order. Found through
/// the generated type's own serialisation, so a field newer than this code
/// is named too.
pub fn set_fields(m: &proto::Message) -> Vec<String> {
    let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(m) else {
        return Vec::new();
    };
    let mut set: Vec<(usize, String)> = fields
        .into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(name, _)| {
            let name = camel_case(&name);
            let order = FIELD_DECISIONS
                .iter()
                .position(|(f, _)| *f == name)
                .unwrap_or(usize::MAX);
            (order, name)
        })
        .collect();
    set.sort();
    set.into_iter().map(|(_, name)| name).collect()
}

/// `view_once_message_v2` → `viewOnceMessageV2`: the protobuf name of a
/// generated field.
fn camel_case(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// A message given as its protobuf with the envelope its stanza would carry
/// (the simulator's raw route), as the crate's `MessageInfo` and `Message`.
/// `me` is our own account, the author of a `from_me` message.
pub fn raw_message(raw: &RawMessage, me: &str) -> Result<(MessageInfo, proto::Message), String> {
    let message = proto::Message::decode_from_slice(&raw.proto)
        .map_err(|e| format!("proto_base64 is not a whatsapp.Message: {e}"))?;
    let jid = |s: &str, what: &str| -> Result<Jid, String> {
        s.parse::<Jid>()
            .map_err(|e| format!("{what} is not a JID: {e}"))
    };
    let from = jid(&raw.from, "from")?;
    let group = raw.group.as_deref().map(|g| jid(g, "group")).transpose()?;
    let alt = raw
        .from_alt
        .as_deref()
        .map(|a| jid(a, "from_alt"))
        .transpose()?;
    let me = jid(me, "our own JID")?;
    let chat = group.clone().unwrap_or_else(|| from.clone());
    let (sender, sender_alt) = if raw.from_me {
        (me, None)
    } else {
        (from, alt.clone())
    };
    let source = MessageSource {
        is_group: group.is_some(),
        chat,
        sender,
        is_from_me: raw.from_me,
        sender_alt,
        recipient_alt: if raw.from_me { alt } else { None },
        ..Default::default()
    };
    let timestamp = raw
        .timestamp
        .and_then(|t| Utc.timestamp_opt(t, 0).single())
        .unwrap_or_else(Utc::now);
    let info = MessageInfo {
        id: raw.id.clone().unwrap_or_else(wa::new_message_id),
        source,
        push_name: raw.push_name.clone().unwrap_or_default(),
        timestamp,
        ..Default::default()
    };
    Ok((info, message))
}

/// The quoted original for a reply: its stored protobuf when it decodes,
/// else a plain text message with the stored text.
pub fn quoted_message(raw: Option<&[u8]>, text: &str) -> proto::Message {
    raw.and_then(|bytes| proto::Message::decode_from_slice(bytes).ok())
        .unwrap_or_else(|| proto::Message {
            conversation: Some(text.to_string()),
            ..Default::default()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use whatsapp_rust::prelude::{
        BatchOrigin, InboundMessage, MessageBatch, MessageBuilderExt, MessageField,
    };
    use whatsapp_rust::proto_helpers::{build_reaction_message, wrap_as_album_child};
    use whatsapp_rust::types::events::{
        Connected, Disconnected, LoggedOut, PairSuccess, PairingQrCode, Receipt, StreamReplaced,
    };

    const ALICE: &str = "15551234567@s.whatsapp.net";
    const ALICE_LID: &str = "123456789012345@lid";
    const GROUP: &str = "120363000000000001@g.us";
    const ME: &str = "15550000000@s.whatsapp.net";

    fn info(chat: &str, sender: &str) -> MessageInfo {
        MessageInfo {
            id: "3EB0ABCDEF".into(),
            source: MessageSource {
                chat: chat.parse().unwrap(),
                sender: sender.parse().unwrap(),
                is_group: chat.ends_with("@g.us"),
                ..Default::default()
            },
            push_name: "Alice".into(),
            timestamp: Utc.timestamp_opt(1_760_000_000, 0).unwrap(),
            ..Default::default()
        }
    }

    /// Goes through the crate's own batch type, as the hook receives it.
    fn translate(info: MessageInfo, message: proto::Message) -> Inbound {
        let item = InboundMessage::builder()
            .message(Arc::new(message))
            .info(Arc::new(info))
            .build();
        let batch = MessageBatch::builder()
            .messages(Arc::from(vec![item]))
            .origin(BatchOrigin::Live)
            .build();
        let m = batch.iter().next().unwrap();
        inbound(&m.info, &m.message)
    }

    /// The stored message (with its media as announced), if it is one.
    fn translate_one(info: MessageInfo, message: proto::Message) -> Option<IncomingMessage> {
        match translate(info, message) {
            Inbound::Message { mut message, media } => {
                message.media = media.map(|s| wa::MediaInfo {
                    kind: s.kind.to_string(),
                    mime: s.mime,
                    size: s.announced_len,
                    file_name: s.file_name,
                    ..Default::default()
                });
                Some(*message)
            }
            _ => None,
        }
    }

    fn text_of(message: proto::Message) -> (String, Option<wa::MediaInfo>) {
        let m = translate_one(info(ALICE, ALICE), message).expect("an inbox item");
        (m.text, m.media)
    }

    fn text(message: proto::Message) -> String {
        text_of(message).0
    }

    fn update_of(message: proto::Message) -> UpdateAction {
        match translate(info(ALICE, ALICE), message) {
            Inbound::Update(u) => u.action,
            other => panic!("expected an update, got {other:?}"),
        }
    }

    fn some<T: Default>(f: impl FnOnce(&mut T)) -> MessageField<T> {
        let mut value = T::default();
        f(&mut value);
        MessageField::some(value)
    }

    fn future_proof(inner: proto::Message) -> MessageField<proto::message::FutureProofMessage> {
        MessageField::some(proto::message::FutureProofMessage {
            message: MessageField::some(inner),
        })
    }

    fn image(caption: Option<&str>) -> proto::Message {
        proto::Message {
            image_message: some(|i: &mut proto::message::ImageMessage| {
                i.mimetype = Some("image/jpeg".into());
                i.caption = caption.map(str::to_string);
                i.file_length = Some(1234);
            }),
            ..Default::default()
        }
    }

    /// A protobuf tag: field `number` with `wire_type`, as a varint.
    fn tag(number: u32, wire_type: u32) -> Vec<u8> {
        let mut v = u64::from((number << 3) | wire_type);
        let mut out = Vec::new();
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    /// A length-delimited field.
    fn field(number: u32, value: &[u8]) -> Vec<u8> {
        let mut out = tag(number, 2);
        assert!(value.len() < 128);
        out.push(value.len() as u8);
        out.extend_from_slice(value);
        out
    }

    /// Walks the field numbers of the crate's generated `whatsapp.Message`
    /// (decoding each field alone, with an empty value of every wire type)
    /// and holds each field to its entry in `FIELD_DECISIONS`: a field the
    /// crate adds with no decision fails here, as does an entry for a field
    /// that no longer exists.
    #[test]
    fn every_field_of_message_has_a_decision() {
        let mut fields = Vec::new();
        for number in 1..=4096 {
            let candidates = [
                [tag(number, 2), vec![0]].concat(),
                [tag(number, 0), vec![0]].concat(),
                [tag(number, 1), vec![0; 8]].concat(),
                [tag(number, 5), vec![0; 4]].concat(),
            ];
            let found = candidates.iter().find_map(|bytes| {
                let m = proto::Message::decode_from_slice(bytes).ok()?;
                let names = set_fields(&m);
                (!names.is_empty()).then_some((m, names))
            });
            let Some((alone, names)) = found else {
                continue;
            };
            assert_eq!(names.len(), 1, "field {number}: {names:?}");
            let name = names[0].clone();
            let Some(decision) = decision(&name) else {
                panic!(
                    "field {number} `{name}` of whatsapp.Message has no decision in FIELD_DECISIONS"
                );
            };
            match (decision, translate(info(ALICE, ALICE), alone.clone())) {
                (Decision::Show, Inbound::Message { message, .. }) => {
                    assert!(
                        !message.text.starts_with("[Unsupported"),
                        "{name}: {message:?}"
                    );
                }
                (Decision::Update, Inbound::Update(_)) => {}
                (Decision::Metadata, Inbound::Ignored(_)) => {}
                (Decision::Metadata, Inbound::Message { message, .. }) => {
                    assert_eq!(message.text, "[Unsupported message: unknown]", "{name}");
                }
                (Decision::Unsupported, Inbound::Message { message, .. }) => {
                    assert_eq!(message.text, format!("[Unsupported message: {name}]"));
                    // The whole protobuf is kept.
                    assert_eq!(message.raw, Some(alone.encode_to_vec()), "{name}");
                }
                (Decision::Unwrap, _) => {
                    // A wrapper holding a text (its message is field 1, or 2
                    // for the device-sent wrapper) shows the text.
                    let inner = field(1, b"inside");
                    let shown = (1..=2).any(|k| {
                        let bytes = field(number, &field(k, &inner));
                        let m = proto::Message::decode_from_slice(&bytes).unwrap();
                        matches!(
                            translate(info(ALICE, ALICE), m),
                            Inbound::Message { message, .. } if message.text == "inside"
                        )
                    });
                    assert!(shown, "{name}: the wrapped text is not shown");
                }
                (decision, other) => panic!("{name}: {decision:?} but translated to {other:?}"),
            }
            fields.push(name);
        }
        for (name, _) in FIELD_DECISIONS {
            assert!(
                fields.iter().any(|f| f == name),
                "FIELD_DECISIONS names `{name}`, which whatsapp.Message does not have"
            );
        }
        assert!(fields.len() > 100, "{} fields found", fields.len());
    }

    #[test]
    fn plain_and_extended_text() {
        let m = translate_one(
            info(ALICE, "15551234567:3@s.whatsapp.net"),
            proto::Message::text("hello"),
        )
        .unwrap();
        assert_eq!(m.text, "hello");
        assert_eq!(m.wa_id, "3EB0ABCDEF");
        assert_eq!(m.chat, ALICE);
        // The device part of the sender is dropped.
        assert_eq!(m.sender, ALICE);
        assert_eq!(m.push_name.as_deref(), Some("Alice"));
        // WhatsApp's own time of sending, not the arrival.
        assert_eq!(m.timestamp, Some(1_760_000_000));
        assert!(m.media.is_none() && !m.from_me && m.placeholder.is_none());
        // raw decodes back to the same message, for quoting later.
        let back = quoted_message(m.raw.as_deref(), "ignored");
        assert_eq!(back.conversation.as_deref(), Some("hello"));

        let extended = proto::Message {
            extended_text_message: some(|x: &mut proto::message::ExtendedTextMessage| {
                x.text = Some("see https://example.com".into());
            }),
            ..Default::default()
        };
        assert_eq!(text(extended), "see https://example.com");
    }

    #[test]
    fn media_kinds_with_and_without_captions() {
        let (caption, media) = text_of(image(Some("look")));
        assert_eq!(caption, "look");
        let media = media.unwrap();
        assert_eq!(
            (media.kind.as_str(), media.mime.as_deref(), media.size),
            ("image", Some("image/jpeg"), Some(1234))
        );
        assert_eq!(text(image(None)), "[Image]");

        let video = proto::Message {
            video_message: some(|v: &mut proto::message::VideoMessage| {
                v.mimetype = Some("video/mp4".into());
            }),
            ..Default::default()
        };
        let (t, media) = text_of(video);
        assert_eq!(
            (t.as_str(), media.unwrap().kind.as_str()),
            ("[Video]", "video")
        );

        // A round video note is its own kind.
        let ptv = proto::Message {
            ptv_message: some(|v: &mut proto::message::VideoMessage| {
                v.mimetype = Some("video/mp4".into());
                v.file_length = Some(99);
            }),
            ..Default::default()
        };
        let (t, media) = text_of(ptv.clone());
        assert_eq!(
            (t.as_str(), media.unwrap().kind.as_str()),
            ("[Video note]", "video_note")
        );
        assert!(downloadable(&ptv).is_some());

        let audio = |ptt| proto::Message {
            audio_message: some(|a: &mut proto::message::AudioMessage| {
                a.mimetype = Some("audio/ogg; codecs=opus".into());
                a.ptt = Some(ptt);
            }),
            ..Default::default()
        };
        let (t, media) = text_of(audio(true));
        assert_eq!(
            (t.as_str(), media.unwrap().kind.as_str()),
            ("[Voice message]", "audio")
        );
        assert_eq!(text(audio(false)), "[Audio]");

        let document = |caption: Option<&str>| proto::Message {
            document_message: some(|d: &mut proto::message::DocumentMessage| {
                d.mimetype = Some("application/pdf".into());
                d.file_name = Some("invoice.pdf".into());
                d.caption = caption.map(str::to_string);
                d.file_length = Some(99);
            }),
            ..Default::default()
        };
        let (t, media) = text_of(document(None));
        assert_eq!(t, "[Document: invoice.pdf]");
        let media = media.unwrap();
        assert_eq!(media.kind, "document");
        assert_eq!(media.file_name.as_deref(), Some("invoice.pdf"));
        assert_eq!(text(document(Some("the invoice"))), "the invoice");

        let sticker = proto::Message {
            sticker_message: some(|s: &mut proto::message::StickerMessage| {
                s.mimetype = Some("image/webp".into());
            }),
            ..Default::default()
        };
        let (t, media) = text_of(sticker.clone());
        assert_eq!(
            (t.as_str(), media.unwrap().kind.as_str()),
            ("[Sticker]", "sticker")
        );
        // An animated (lottie) sticker arrives wrapped.
        let lottie = proto::Message {
            lottie_sticker_message: future_proof(sticker),
            ..Default::default()
        };
        let (t, media) = text_of(lottie.clone());
        assert_eq!(
            (t.as_str(), media.unwrap().kind.as_str()),
            ("[Sticker]", "sticker")
        );
        assert!(downloadable(&lottie).is_some());
    }

    #[test]
    fn wrappers_are_unwrapped_however_they_nest() {
        let wrap = |inner: proto::Message, how: usize| match how {
            0 => proto::Message {
                ephemeral_message: future_proof(inner),
                ..Default::default()
            },
            1 => proto::Message {
                view_once_message_v2: future_proof(inner),
                ..Default::default()
            },
            2 => proto::Message {
                document_with_caption_message: future_proof(inner),
                ..Default::default()
            },
            3 => proto::Message {
                group_mentioned_message: future_proof(inner),
                ..Default::default()
            },
            4 => proto::Message {
                spoiler_message: future_proof(inner),
                ..Default::default()
            },
            5 => proto::Message {
                bot_invoke_message: future_proof(inner),
                ..Default::default()
            },
            6 => proto::Message {
                view_once_message: future_proof(inner),
                ..Default::default()
            },
            7 => proto::Message {
                view_once_message_v2_extension: future_proof(inner),
                ..Default::default()
            },
            _ => proto::Message {
                device_sent_message: some(|d: &mut proto::message::DeviceSentMessage| {
                    d.destination_jid = Some(ALICE.into());
                    d.message = MessageField::some(inner);
                }),
                ..Default::default()
            },
        };
        for outer in 0..9 {
            for inner in 0..9 {
                let m = wrap(wrap(image(Some("deep")), inner), outer);
                let (t, media) = text_of(m.clone());
                assert_eq!((t.as_str(), outer, inner), ("deep", outer, inner));
                assert_eq!(media.unwrap().kind, "image");
                assert!(downloadable(&m).is_some());
            }
        }
        // A spoiler or group mention around a plain text.
        let mention = proto::Message {
            group_mentioned_message: future_proof(proto::Message::text("@all meeting at 5")),
            ..Default::default()
        };
        assert_eq!(text(mention), "@all meeting at 5");
        // What is kept for quoting is the unwrapped message.
        let stored =
            translate_one(info(ALICE, ALICE), wrap(proto::Message::text("inner"), 0)).unwrap();
        assert_eq!(
            quoted_message(stored.raw.as_deref(), "")
                .conversation
                .as_deref(),
            Some("inner")
        );
    }

    #[test]
    fn albums_store_the_parent_and_each_child() {
        let parent = proto::Message {
            album_message: some(|a: &mut proto::message::AlbumMessage| {
                a.expected_image_count = Some(3);
                a.expected_video_count = Some(1);
            }),
            ..Default::default()
        };
        assert_eq!(text(parent), "[Album: 3 photos, 1 video]");
        // Each photo of the album arrives as its own message, wrapped as a
        // child of the parent (built with the crate's own helper).
        let parent_key = proto::MessageKey {
            remote_jid: Some(ALICE.into()),
            id: Some("PARENT".into()),
            ..Default::default()
        };
        let child = wrap_as_album_child(image(Some("photo 2")), parent_key);
        let (t, media) = text_of(child.clone());
        assert_eq!(t, "photo 2");
        assert_eq!(media.unwrap().kind, "image");
        assert!(downloadable(&child).is_some());
    }

    #[test]
    fn what_a_customer_taps_on_a_business_message_is_its_text() {
        let buttons = proto::Message {
            buttons_response_message: some(|b: &mut proto::message::ButtonsResponseMessage| {
                b.selected_button_id = Some("yes-1".into());
                b.response = Some(ButtonsResponse::SelectedDisplayText("Yes, please".into()));
            }),
            ..Default::default()
        };
        assert_eq!(text(buttons), "Yes, please");
        let list = proto::Message {
            list_response_message: some(|l: &mut proto::message::ListResponseMessage| {
                l.title = Some("Large pizza".into());
                l.single_select_reply = some(
                    |r: &mut proto::message::list_response_message::SingleSelectReply| {
                        r.selected_row_id = Some("row-3".into());
                    },
                );
            }),
            ..Default::default()
        };
        assert_eq!(text(list), "Large pizza");
        let list_without_title = proto::Message {
            list_response_message: some(|l: &mut proto::message::ListResponseMessage| {
                l.single_select_reply = some(
                    |r: &mut proto::message::list_response_message::SingleSelectReply| {
                        r.selected_row_id = Some("row-3".into());
                    },
                );
            }),
            ..Default::default()
        };
        assert_eq!(text(list_without_title), "row-3");
        let template = proto::Message {
            template_button_reply_message: some(
                |t: &mut proto::message::TemplateButtonReplyMessage| {
                    t.selected_id = Some("track".into());
                    t.selected_display_text = Some("Track my order".into());
                },
            ),
            ..Default::default()
        };
        assert_eq!(text(template), "Track my order");
        let interactive = proto::Message {
            interactive_response_message: some(
                |r: &mut proto::message::InteractiveResponseMessage| {
                    r.body = some(
                        |b: &mut proto::message::interactive_response_message::Body| {
                            b.text = Some("Book for Friday".into());
                        },
                    );
                },
            ),
            ..Default::default()
        };
        assert_eq!(text(interactive), "Book for Friday");
        let flow = proto::Message {
            interactive_response_message: some(
                |r: &mut proto::message::InteractiveResponseMessage| {
                    r.interactive_response_message =
                        Some(InteractiveResponse::NativeFlowResponseMessage(Box::new(
                            proto::message::interactive_response_message::NativeFlowResponseMessage {
                                name: Some("address_message".into()),
                                params_json: Some("{\"city\":\"Lyon\"}".into()),
                                ..Default::default()
                            },
                        )));
                },
            ),
            ..Default::default()
        };
        assert_eq!(
            text(flow),
            "[Response: address_message] {\"city\":\"Lyon\"}"
        );
    }

    #[test]
    fn polls_orders_products_invites_events_and_contacts() {
        let option = |name: &str| proto::message::poll_creation_message::Option {
            option_name: Some(name.into()),
            ..Default::default()
        };
        for version in 0..5 {
            let poll = proto::message::PollCreationMessage {
                name: Some("Lunch?".into()),
                options: vec![option("Pizza"), option("Sushi")],
                ..Default::default()
            };
            let mut m = proto::Message::default();
            match version {
                0 => m.poll_creation_message = MessageField::some(poll),
                1 => m.poll_creation_message_v2 = MessageField::some(poll),
                2 => m.poll_creation_message_v3 = MessageField::some(poll),
                3 => m.poll_creation_message_v5 = MessageField::some(poll),
                _ => m.poll_creation_message_v6 = MessageField::some(poll),
            }
            assert_eq!(text(m), "[Poll: Lunch?] Pizza / Sushi", "version {version}");
        }
        let vote = proto::Message {
            poll_update_message: some(|_: &mut proto::message::PollUpdateMessage| {}),
            ..Default::default()
        };
        assert_eq!(text(vote), "[Poll vote]");

        let order = proto::Message {
            order_message: some(|o: &mut proto::message::OrderMessage| {
                o.order_title = Some("Spring sale".into());
                o.item_count = Some(3);
                o.message = Some("Please deliver after 6".into());
            }),
            ..Default::default()
        };
        assert_eq!(
            text(order),
            "[Order: Spring sale, 3 items] Please deliver after 6"
        );
        let product = proto::Message {
            product_message: some(|p: &mut proto::message::ProductMessage| {
                p.product = some(|s: &mut proto::message::product_message::ProductSnapshot| {
                    s.title = Some("Blue mug".into());
                });
            }),
            ..Default::default()
        };
        assert_eq!(text(product), "[Product: Blue mug]");
        let invite = proto::Message {
            group_invite_message: some(|g: &mut proto::message::GroupInviteMessage| {
                g.group_name = Some("Book club".into());
                g.invite_code = Some("AbC123".into());
            }),
            ..Default::default()
        };
        assert_eq!(text(invite), "[Group invite: Book club]");
        let event = proto::Message {
            event_message: some(|e: &mut proto::message::EventMessage| {
                e.name = Some("Open day".into());
            }),
            ..Default::default()
        };
        assert_eq!(text(event), "[Event: Open day]");

        let location = proto::Message {
            location_message: some(|l: &mut proto::message::LocationMessage| {
                l.degrees_latitude = Some(52.52);
                l.degrees_longitude = Some(13.405);
            }),
            ..Default::default()
        };
        assert_eq!(
            text_of(location),
            ("[Location: 52.52, 13.405]".into(), None)
        );
        let live = proto::Message {
            live_location_message: some(|l: &mut proto::message::LiveLocationMessage| {
                l.degrees_latitude = Some(1.5);
                l.degrees_longitude = Some(2.5);
            }),
            ..Default::default()
        };
        assert_eq!(text(live), "[Live location: 1.5, 2.5]");

        let card = |name: &str, tel: &str| proto::message::ContactMessage {
            display_name: Some(name.into()),
            vcard: Some(format!(
                "BEGIN:VCARD\nVERSION:3.0\nFN:{name}\n{tel}END:VCARD"
            )),
            ..Default::default()
        };
        let contact = proto::Message {
            contact_message: MessageField::some(card(
                "Bob",
                "TEL;type=CELL;waid=15557654321:+1 555-765-4321\n",
            )),
            ..Default::default()
        };
        assert_eq!(text(contact), "[Contact: Bob (+1 555-765-4321)]");
        let contacts = proto::Message {
            contacts_array_message: some(|c: &mut proto::message::ContactsArrayMessage| {
                c.contacts = vec![card("Bob", ""), card("Carol", "TEL:+44 20 7946 0000\n")];
            }),
            ..Default::default()
        };
        assert_eq!(text(contacts), "[Contact: Bob, Carol (+44 20 7946 0000)]");
    }

    #[test]
    fn unknown_kinds_are_stored_with_their_protobuf() {
        let payment = proto::Message {
            send_payment_message: some(|_: &mut proto::message::SendPaymentMessage| {}),
            message_context_info: some(|_: &mut proto::MessageContextInfo| {}),
            ..Default::default()
        };
        let m = translate_one(info(ALICE, ALICE), payment.clone()).unwrap();
        assert_eq!(m.text, "[Unsupported message: sendPaymentMessage]");
        assert_eq!(m.raw, Some(payment.encode_to_vec()));
        // A field newer than the crate's schema is dropped when decoding:
        // what is left is an empty message, still stored.
        let future = [tag(4000, 2), vec![1, 0]].concat();
        let m = translate_one(
            info(ALICE, ALICE),
            proto::Message::decode_from_slice(&future).unwrap(),
        )
        .unwrap();
        assert_eq!(m.text, "[Unsupported message: unknown]");
    }

    #[test]
    fn reactions_edits_and_deletions_are_updates() {
        let key = proto::MessageKey {
            remote_jid: Some(ALICE.into()),
            id: Some("TARGET".into()),
            from_me: Some(true),
            ..Default::default()
        };
        assert_eq!(
            update_of(build_reaction_message(key.clone(), "👍", 1)),
            UpdateAction::Reaction {
                target: "TARGET".into(),
                emoji: "👍".into()
            }
        );
        let protocol = |kind, edited: Option<proto::Message>| proto::Message {
            protocol_message: some(|p: &mut proto::message::ProtocolMessage| {
                p.key = MessageField::some(key.clone());
                p.r#type = Some(kind);
                if let Some(edited) = edited {
                    p.edited_message = MessageField::some(edited);
                }
            }),
            ..Default::default()
        };
        use proto::message::protocol_message::Type;
        assert_eq!(
            update_of(protocol(Type::REVOKE, None)),
            UpdateAction::Revoke {
                target: "TARGET".into()
            }
        );
        let edit = protocol(Type::MESSAGE_EDIT, Some(proto::Message::text("3 please")));
        assert_eq!(
            update_of(edit.clone()),
            UpdateAction::Edit {
                target: "TARGET".into(),
                text: "3 please".into()
            }
        );
        // The stored form of an edit wraps the protocol message.
        let wrapped = proto::Message {
            edited_message: future_proof(edit),
            ..Default::default()
        };
        assert!(matches!(update_of(wrapped), UpdateAction::Edit { .. }));
        let mut timer = protocol(Type::EPHEMERAL_SETTING, None);
        timer
            .protocol_message
            .as_option_mut()
            .unwrap()
            .ephemeral_expiration = Some(86_400);
        assert_eq!(
            update_of(timer),
            UpdateAction::Expiration { seconds: 86_400 }
        );
        let pin = proto::Message {
            pin_in_chat_message: some(|_: &mut proto::message::PinInChatMessage| {}),
            ..Default::default()
        };
        assert_eq!(
            update_of(pin),
            UpdateAction::Other {
                kind: "pinInChatMessage".into()
            }
        );
    }

    #[test]
    fn groups_keep_the_sender_and_lids_report_their_phone_number() {
        let m = translate_one(info(GROUP, ALICE), proto::Message::text("hi all")).unwrap();
        assert_eq!((m.chat.as_str(), m.sender.as_str()), (GROUP, ALICE));

        // A LID sender with its phone number alongside: the pair is reported,
        // the JIDs stay as received (the sink maps them).
        let mut with_alt = info(ALICE_LID, ALICE_LID);
        with_alt.source.sender_alt = Some(ALICE.parse().unwrap());
        let m = translate_one(with_alt, proto::Message::text("via lid")).unwrap();
        assert_eq!((m.chat.as_str(), m.sender.as_str()), (ALICE_LID, ALICE_LID));
        assert_eq!(m.mappings, vec![(ALICE_LID.to_string(), ALICE.to_string())]);
        // And the other way round.
        let mut with_lid = info(ALICE, ALICE);
        with_lid.source.sender_alt = Some(ALICE_LID.parse().unwrap());
        let m = translate_one(with_lid, proto::Message::text("via pn")).unwrap();
        assert_eq!(m.mappings, vec![(ALICE_LID.to_string(), ALICE.to_string())]);
        // Nothing known: nothing reported.
        let m = translate_one(info(ALICE_LID, ALICE_LID), proto::Message::text("?")).unwrap();
        assert!(m.mappings.is_empty());
    }

    #[test]
    fn own_messages_are_kept_status_and_channels_are_not() {
        let mut own = info(ALICE, ME);
        own.source.is_from_me = true;
        let m = translate_one(own, proto::Message::text("answered on the phone")).unwrap();
        assert!(m.from_me);
        assert_eq!((m.chat.as_str(), m.sender.as_str()), (ALICE, ME));
        assert!(matches!(
            translate(info("status@broadcast", ALICE), proto::Message::text("x")),
            Inbound::Ignored(_)
        ));
        assert!(matches!(
            translate(
                info("120363000000000002@newsletter", ALICE),
                proto::Message::text("x")
            ),
            Inbound::Ignored(_)
        ));
        // Key distribution alone is housekeeping.
        let keys = proto::Message {
            sender_key_distribution_message: some(
                |_: &mut proto::message::SenderKeyDistributionMessage| {},
            ),
            ..Default::default()
        };
        assert!(matches!(
            translate(info(GROUP, ALICE), keys),
            Inbound::Ignored(_)
        ));
    }

    #[test]
    fn disappearing_timer_travels_with_the_message() {
        let m = proto::Message {
            extended_text_message: some(|x: &mut proto::message::ExtendedTextMessage| {
                x.text = Some("gone in a day".into());
                x.context_info = some(|c: &mut proto::ContextInfo| c.expiration = Some(86_400));
            }),
            ..Default::default()
        };
        let stored = translate_one(info(ALICE, ALICE), m).unwrap();
        assert_eq!(stored.expiration, Some(86_400));
        let plain = translate_one(info(ALICE, ALICE), proto::Message::text("x")).unwrap();
        assert_eq!(plain.expiration, None);
    }

    #[test]
    fn undecryptable_and_view_once_become_placeholders() {
        use whatsapp_rust::types::events::UndecryptableMessage as U;
        let event = |kind, mode| {
            Event::UndecryptableMessage(
                U::builder()
                    .info(Arc::new(info(ALICE, ALICE)))
                    .is_unavailable(kind == UnavailableType::ViewOnce)
                    .unavailable_type(kind)
                    .decrypt_fail_mode(mode)
                    .build(),
            )
        };
        let placeholder = |e: Event| match signal(&e) {
            Some(Signal::Placeholder(m)) => Some(*m),
            _ => None,
        };
        let m = placeholder(event(UnavailableType::ViewOnce, DecryptFailMode::Show)).unwrap();
        assert_eq!(m.placeholder, Some(Placeholder::ViewOnce));
        assert_eq!(m.text, "[View-once message: open it on the phone]");
        assert_eq!((m.wa_id.as_str(), m.chat.as_str()), ("3EB0ABCDEF", ALICE));
        let m = placeholder(event(UnavailableType::Unknown, DecryptFailMode::Show)).unwrap();
        assert_eq!(m.placeholder, Some(Placeholder::Undecryptable));
        assert_eq!(m.text, "[Message could not be decrypted yet]");
        // A failure the sender asked to hide (a reaction, an edit) is not shown.
        assert!(placeholder(event(UnavailableType::Unknown, DecryptFailMode::Hide)).is_none());
    }

    #[test]
    fn raw_messages_get_the_envelope_the_stanza_would_carry() {
        let raw = RawMessage {
            from: ALICE_LID.into(),
            from_alt: Some(ALICE.into()),
            proto: proto::Message::text("hello").encode_to_vec(),
            id: Some("RAW1".into()),
            push_name: Some("Alice".into()),
            timestamp: Some(1_700_000_000),
            ..Default::default()
        };
        let (info, message) = raw_message(&raw, ME).unwrap();
        let m = match inbound(&info, &message) {
            Inbound::Message { message, .. } => message,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            (m.wa_id.as_str(), m.chat.as_str(), m.sender.as_str()),
            ("RAW1", ALICE_LID, ALICE_LID)
        );
        assert_eq!(m.mappings, vec![(ALICE_LID.to_string(), ALICE.to_string())]);
        assert_eq!(m.timestamp, Some(1_700_000_000));
        let own = RawMessage {
            from: ALICE.into(),
            from_me: true,
            group: None,
            ..raw.clone()
        };
        let (info, _) = raw_message(&own, ME).unwrap();
        assert!(info.source.is_from_me);
        assert_eq!(
            (info.source.chat.to_string(), info.source.sender.to_string()),
            (ALICE.to_string(), ME.to_string())
        );
        let grouped = RawMessage {
            group: Some(GROUP.into()),
            ..raw.clone()
        };
        let (info, _) = raw_message(&grouped, ME).unwrap();
        assert!(info.source.is_group);
        assert_eq!(info.source.chat.to_string(), GROUP);
        let bad = RawMessage {
            proto: vec![0xff, 0xff, 0xff],
            ..raw
        };
        assert!(raw_message(&bad, ME).is_err());
    }

    #[test]
    fn lifecycle_events() {
        let qr = Event::PairingQrCode(
            PairingQrCode::builder()
                .code("2@ref,key,id,adv".into())
                .timeout(Duration::from_secs(60))
                .build(),
        );
        assert_eq!(
            signal(&qr),
            Some(Signal::Qr {
                code: "2@ref,key,id,adv".into(),
                valid_for: Duration::from_secs(60)
            })
        );
        let paired = Event::PairSuccess(
            PairSuccess::builder()
                .id("15550001111:7@s.whatsapp.net".parse().unwrap())
                .lid("99999:7@lid".parse().unwrap())
                .business_name(String::new())
                .platform("android".into())
                .build(),
        );
        assert_eq!(
            signal(&paired),
            Some(Signal::Paired {
                jid: "15550001111@s.whatsapp.net".into()
            })
        );
        assert_eq!(
            signal(&Event::Connected(Connected::builder().build())),
            Some(Signal::Connected)
        );
        let dropped = Event::Disconnected(
            Disconnected::builder()
                .reason(whatsapp_rust::wacore::net::DisconnectReason::StreamEnded)
                .build(),
        );
        assert!(matches!(
            signal(&dropped),
            Some(Signal::Disconnected { .. })
        ));
        let logged_out = Event::LoggedOut(
            LoggedOut::builder()
                .on_connect(true)
                .reason(whatsapp_rust::types::events::ConnectFailureReason::LoggedOut)
                .build(),
        );
        assert!(matches!(
            signal(&logged_out),
            Some(Signal::LoggedOut { .. })
        ));
        assert_eq!(
            signal(&Event::StreamReplaced(StreamReplaced::builder().build())),
            Some(Signal::Replaced)
        );
    }

    #[test]
    fn receipts_move_delivery_status() {
        let receipt = |kind| {
            let source = MessageSource {
                chat: ALICE.parse().unwrap(),
                ..Default::default()
            };
            Event::Receipt(
                Receipt::builder()
                    .source(source)
                    .message_ids(vec!["ID1".into(), "ID2".into()])
                    .timestamp(Utc::now())
                    .r#type(kind)
                    .offline(false)
                    .build(),
            )
        };
        assert_eq!(
            signal(&receipt(ReceiptType::Delivered)),
            Some(Signal::Receipt {
                wa_ids: vec!["ID1".into(), "ID2".into()],
                status: DeliveryStatus::Delivered
            })
        );
        for kind in [ReceiptType::Read, ReceiptType::Played] {
            assert!(matches!(
                signal(&receipt(kind)),
                Some(Signal::Receipt {
                    status: DeliveryStatus::Read,
                    ..
                })
            ));
        }
        assert_eq!(signal(&receipt(ReceiptType::ReadSelf)), None);
        assert_eq!(signal(&receipt(ReceiptType::Retry)), None);
    }

    #[test]
    fn a_changed_number_reports_its_lid() {
        use whatsapp_rust::types::events::ContactNumberChanged;
        let event = Event::ContactNumberChanged(
            ContactNumberChanged::builder()
                .old_jid("15550009999@s.whatsapp.net".parse().unwrap())
                .new_jid(ALICE.parse().unwrap())
                .new_lid(ALICE_LID.parse().unwrap())
                .timestamp(Utc::now())
                .build(),
        );
        assert_eq!(
            signal(&event),
            Some(Signal::Learned(vec![(ALICE_LID.into(), ALICE.into())]))
        );
    }

    #[test]
    fn missed_calls_are_rows_of_their_chat() {
        let offer = CallOffer {
            call_id: "CALL1".into(),
            caller: ALICE_LID.into(),
            caller_pn: Some(ALICE.into()),
            group: None,
            video: Some(true),
            timestamp: 1_700_000_000,
        };
        let m = missed_call(&offer);
        assert_eq!(m.text, "[Missed video call]");
        assert_eq!((m.wa_id.as_str(), m.chat.as_str()), ("CALL1", ALICE_LID));
        assert_eq!(m.mappings, vec![(ALICE_LID.to_string(), ALICE.to_string())]);
        assert_eq!(m.timestamp, Some(1_700_000_000));
        let group_voice = CallOffer {
            group: Some(GROUP.into()),
            video: Some(false),
            caller: ALICE.into(),
            caller_pn: None,
            ..offer.clone()
        };
        let m = missed_call(&group_voice);
        assert_eq!(
            (m.text.as_str(), m.chat.as_str(), m.sender.as_str()),
            ("[Missed voice call]", GROUP, ALICE)
        );
        // Replayed after downtime, the kind is not known.
        let replayed = CallOffer {
            video: None,
            ..offer
        };
        assert_eq!(missed_call(&replayed).text, "[Missed call]");
    }

    #[test]
    fn quoting_falls_back_to_text() {
        let m = quoted_message(None, "original text");
        assert_eq!(m.conversation.as_deref(), Some("original text"));
        let m = quoted_message(Some(&[0xff, 0xff, 0xff]), "fallback");
        assert_eq!(m.conversation.as_deref(), Some("fallback"));
    }
}
