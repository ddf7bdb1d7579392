//! Pure translation from whatsapp-rust's events and protobuf messages into the
//! door's types (`wa.rs`). No client, no I/O: everything here is unit-tested
//! with the crate's own builders.

use crate::wa::{self, DeliveryStatus, IncomingMessage};
use std::time::Duration;
use whatsapp_rust::buffa::Message as _;
use whatsapp_rust::prelude::{Event, Jid, MessageExt, MessageInfo, wa as proto};
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
    /// Every QR reference of this connection expired unscanned.
    QrExhausted,
    Receipt {
        wa_ids: Vec<String>,
        status: DeliveryStatus,
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
        Event::PairingQrCodesExhausted(_) => Signal::QrExhausted,
        Event::Receipt(r) => Signal::Receipt {
            wa_ids: r.message_ids.iter().map(|id| id.to_string()).collect(),
            status: receipt_status(&r.r#type)?,
        },
        _ => return None,
    })
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

/// The media part of a message, before it is downloaded.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaSpec {
    /// image, video, audio, document, sticker.
    pub kind: &'static str,
    pub mime: Option<String>,
    /// The sender's file name (documents).
    pub file_name: Option<String>,
    /// The size WhatsApp announces, checked against MEDIA_MAX_BYTES before
    /// anything is downloaded.
    pub announced_len: Option<u64>,
}

/// An incoming message as the inbox stores it, plus its media to download.
/// None: not an inbox item (our own message, a status update, a newsletter
/// post, or a message without content we show, such as a reaction).
pub fn incoming(
    info: &MessageInfo,
    message: &proto::Message,
) -> Option<(IncomingMessage, Option<MediaSpec>)> {
    let source = &info.source;
    if source.is_from_me || source.chat.is_status_broadcast() || source.chat.is_newsletter() {
        return None;
    }
    let base = message.get_base_message();
    let (text, media) = content(base)?;
    let mut sender = source.sender.to_non_ad_string();
    let mut chat = if source.chat.is_broadcast_list() {
        // A broadcast list reaches us as a private message from its owner.
        sender.clone()
    } else {
        source.chat.to_non_ad_string()
    };
    // The crate tells us the sender's phone-number JID alongside a LID.
    if source.sender.is_lid()
        && let Some(alt) = source.sender_alt.as_ref().filter(|a| a.is_pn())
    {
        let pn = alt.to_non_ad_string();
        if chat == sender {
            chat = pn.clone();
        }
        sender = pn;
    }
    let message = IncomingMessage {
        wa_id: info.id.to_string(),
        chat,
        sender,
        push_name: Some(info.push_name.trim().to_string()).filter(|n| !n.is_empty()),
        text,
        media: None,
        raw: Some(base.encode_to_vec()),
        timestamp: Some(info.timestamp.timestamp()).filter(|t| *t > 0),
    };
    Some((message, media))
}

/// Replaces a LID sender (and the chat, for a direct chat) with the phone
/// number JID the crate's LID↔PN store knows for it.
pub fn apply_phone_number(message: &mut IncomingMessage, lid: &str, pn: &str) {
    if message.chat == lid {
        message.chat = pn.to_string();
    }
    if message.sender == lid {
        message.sender = pn.to_string();
    }
}

/// A sender JID that is still a LID (no phone number known yet).
pub fn lid_sender(message: &IncomingMessage) -> Option<Jid> {
    message
        .sender
        .parse::<Jid>()
        .ok()
        .filter(|j: &Jid| j.is_lid())
}

/// The inbox text (text, caption or placeholder) and media of a message.
fn content(m: &proto::Message) -> Option<(String, Option<MediaSpec>)> {
    let caption_or = |caption: &Option<String>, placeholder: String| match caption {
        Some(c) if !c.trim().is_empty() => c.clone(),
        _ => placeholder,
    };
    if let Some(text) = m.text_content() {
        return Some((text.to_string(), None));
    }
    if let Some(i) = m.image_message.as_option() {
        let spec = spec("image", &i.mimetype, None, i.file_length);
        return Some((caption_or(&i.caption, wa::placeholder("image", None)), spec));
    }
    if let Some(v) = m.video_message.as_option() {
        let spec = spec("video", &v.mimetype, None, v.file_length);
        return Some((caption_or(&v.caption, wa::placeholder("video", None)), spec));
    }
    if let Some(a) = m.audio_message.as_option() {
        let voice = a.ptt.unwrap_or(false);
        let text = wa::placeholder(if voice { "voice" } else { "audio" }, None);
        return Some((text, spec("audio", &a.mimetype, None, a.file_length)));
    }
    if let Some(d) = m.document_message.as_option() {
        let name = d.file_name.clone().or_else(|| d.title.clone());
        let text = caption_or(&d.caption, wa::placeholder("document", name.as_deref()));
        return Some((text, spec("document", &d.mimetype, name, d.file_length)));
    }
    if let Some(s) = m.sticker_message.as_option() {
        let spec = spec("sticker", &s.mimetype, None, s.file_length);
        return Some((wa::placeholder("sticker", None), spec));
    }
    if let Some(l) = m.location_message.as_option() {
        let (lat, lon) = (
            l.degrees_latitude.unwrap_or(0.0),
            l.degrees_longitude.unwrap_or(0.0),
        );
        return Some((wa::location_placeholder(lat, lon), None));
    }
    if let Some(l) = m.live_location_message.as_option() {
        let (lat, lon) = (
            l.degrees_latitude.unwrap_or(0.0),
            l.degrees_longitude.unwrap_or(0.0),
        );
        return Some((wa::location_placeholder(lat, lon), None));
    }
    if let Some(c) = m.contact_message.as_option() {
        let name = c.display_name.as_deref().unwrap_or("");
        return Some((wa::contact_placeholder(name), None));
    }
    if let Some(list) = m.contacts_array_message.as_option() {
        let names: Vec<&str> = list
            .contacts
            .iter()
            .filter_map(|c| c.display_name.as_deref())
            .collect();
        let name = match list.display_name.as_deref() {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => names.join(", "),
        };
        return Some((wa::contact_placeholder(&name), None));
    }
    None
}

fn spec(
    kind: &'static str,
    mime: &Option<String>,
    file_name: Option<String>,
    announced_len: Option<u64>,
) -> Option<MediaSpec> {
    Some(MediaSpec {
        kind,
        mime: mime.clone().filter(|m| !m.is_empty()),
        file_name,
        announced_len,
    })
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
    use whatsapp_rust::chrono::{TimeZone, Utc};
    use whatsapp_rust::prelude::{BatchOrigin, InboundMessage, MessageBatch, MessageField};
    use whatsapp_rust::types::events::{
        Connected, Disconnected, LoggedOut, PairSuccess, PairingQrCode, Receipt, StreamReplaced,
    };
    use whatsapp_rust::types::message::MessageSource;

    const ALICE: &str = "15551234567@s.whatsapp.net";
    const ALICE_LID: &str = "123456789012345@lid";
    const GROUP: &str = "120363000000000001@g.us";

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
    fn translate_one(info: MessageInfo, message: proto::Message) -> Option<IncomingMessage> {
        let inbound = InboundMessage::builder()
            .message(Arc::new(message))
            .info(Arc::new(info))
            .build();
        let batch = MessageBatch::builder()
            .messages(Arc::from(vec![inbound]))
            .origin(BatchOrigin::Live)
            .build();
        let m = batch.iter().next().unwrap();
        incoming(&m.info, &m.message).map(|(mut msg, media)| {
            msg.media = media.map(|s| wa::MediaInfo {
                kind: s.kind.to_string(),
                mime: s.mime,
                size: s.announced_len,
                file_name: s.file_name,
                ..Default::default()
            });
            msg
        })
    }

    fn text_of(message: proto::Message) -> (String, Option<wa::MediaInfo>) {
        let m = translate_one(info(ALICE, ALICE), message).expect("an inbox item");
        (m.text, m.media)
    }

    #[test]
    fn plain_and_extended_text() {
        let m = translate_one(
            info(ALICE, "15551234567:3@s.whatsapp.net"),
            proto::Message {
                conversation: Some("hello".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(m.text, "hello");
        assert_eq!(m.wa_id, "3EB0ABCDEF");
        assert_eq!(m.chat, ALICE);
        // The device part of the sender is dropped.
        assert_eq!(m.sender, ALICE);
        assert_eq!(m.push_name.as_deref(), Some("Alice"));
        assert_eq!(m.timestamp, Some(1_760_000_000));
        assert!(m.media.is_none());
        // raw decodes back to the same message, for quoting later.
        let back = quoted_message(m.raw.as_deref(), "ignored");
        assert_eq!(back.conversation.as_deref(), Some("hello"));

        let extended = proto::Message {
            extended_text_message: MessageField::some(proto::message::ExtendedTextMessage {
                text: Some("see https://example.com".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(text_of(extended).0, "see https://example.com");
    }

    #[test]
    fn media_kinds_with_and_without_captions() {
        let image = proto::Message {
            image_message: MessageField::some(proto::message::ImageMessage {
                mimetype: Some("image/jpeg".into()),
                caption: Some("look".into()),
                file_length: Some(1234),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (text, media) = text_of(image);
        assert_eq!(text, "look");
        let media = media.unwrap();
        assert_eq!(
            (media.kind.as_str(), media.mime.as_deref(), media.size),
            ("image", Some("image/jpeg"), Some(1234))
        );

        let video = proto::Message {
            video_message: MessageField::some(proto::message::VideoMessage {
                mimetype: Some("video/mp4".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (text, media) = text_of(video);
        assert_eq!(
            (text.as_str(), media.unwrap().kind.as_str()),
            ("[Video]", "video")
        );

        let audio = |ptt| proto::Message {
            audio_message: MessageField::some(proto::message::AudioMessage {
                mimetype: Some("audio/ogg; codecs=opus".into()),
                ptt: Some(ptt),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (text, media) = text_of(audio(true));
        assert_eq!(
            (text.as_str(), media.unwrap().kind.as_str()),
            ("[Voice message]", "audio")
        );
        assert_eq!(text_of(audio(false)).0, "[Audio]");

        let document = |caption: Option<&str>| proto::Message {
            document_message: MessageField::some(proto::message::DocumentMessage {
                mimetype: Some("application/pdf".into()),
                file_name: Some("invoice.pdf".into()),
                caption: caption.map(str::to_string),
                file_length: Some(99),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (text, media) = text_of(document(None));
        assert_eq!(text, "[Document: invoice.pdf]");
        let media = media.unwrap();
        assert_eq!(media.kind, "document");
        assert_eq!(media.file_name.as_deref(), Some("invoice.pdf"));
        assert_eq!(text_of(document(Some("the invoice"))).0, "the invoice");

        // A captioned document arrives wrapped; the base message is used.
        let wrapped = proto::Message {
            document_with_caption_message: MessageField::some(proto::message::FutureProofMessage {
                message: MessageField::some(document(Some("wrapped caption"))),
            }),
            ..Default::default()
        };
        assert_eq!(text_of(wrapped).0, "wrapped caption");

        let sticker = proto::Message {
            sticker_message: MessageField::some(proto::message::StickerMessage {
                mimetype: Some("image/webp".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (text, media) = text_of(sticker);
        assert_eq!(
            (text.as_str(), media.unwrap().kind.as_str()),
            ("[Sticker]", "sticker")
        );
    }

    #[test]
    fn location_and_contacts() {
        let location = proto::Message {
            location_message: MessageField::some(proto::message::LocationMessage {
                degrees_latitude: Some(52.52),
                degrees_longitude: Some(13.405),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            text_of(location),
            ("[Location: 52.52, 13.405]".into(), None)
        );

        let contact = proto::Message {
            contact_message: MessageField::some(proto::message::ContactMessage {
                display_name: Some("Bob".into()),
                vcard: Some("BEGIN:VCARD\nFN:Bob\nEND:VCARD".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(text_of(contact).0, "[Contact: Bob]");

        let contacts = proto::Message {
            contacts_array_message: MessageField::some(proto::message::ContactsArrayMessage {
                contacts: vec![
                    proto::message::ContactMessage {
                        display_name: Some("Bob".into()),
                        ..Default::default()
                    },
                    proto::message::ContactMessage {
                        display_name: Some("Carol".into()),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(text_of(contacts).0, "[Contact: Bob, Carol]");
    }

    #[test]
    fn groups_keep_the_sender() {
        let m = translate_one(
            info(GROUP, ALICE),
            proto::Message {
                conversation: Some("hi all".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(m.chat, GROUP);
        assert_eq!(m.sender, ALICE);
    }

    #[test]
    fn lid_senders_become_phone_numbers_when_known() {
        let text = || proto::Message {
            conversation: Some("via lid".into()),
            ..Default::default()
        };
        let mut with_alt = info(ALICE_LID, ALICE_LID);
        with_alt.source.sender_alt = Some(ALICE.parse().unwrap());
        let m = translate_one(with_alt, text()).unwrap();
        assert_eq!((m.chat.as_str(), m.sender.as_str()), (ALICE, ALICE));

        // Unknown: stays a LID until the backend looks it up in the store.
        let mut m = translate_one(info(ALICE_LID, ALICE_LID), text()).unwrap();
        assert_eq!(lid_sender(&m).unwrap().to_string(), ALICE_LID);
        apply_phone_number(&mut m, ALICE_LID, ALICE);
        assert_eq!((m.chat.as_str(), m.sender.as_str()), (ALICE, ALICE));
        assert!(lid_sender(&m).is_none());

        // In a group only the sender changes.
        let mut with_alt = info(GROUP, ALICE_LID);
        with_alt.source.sender_alt = Some(ALICE.parse().unwrap());
        let m = translate_one(with_alt, text()).unwrap();
        assert_eq!((m.chat.as_str(), m.sender.as_str()), (GROUP, ALICE));
    }

    #[test]
    fn own_status_newsletter_and_empty_messages_are_skipped() {
        let text = || proto::Message {
            conversation: Some("x".into()),
            ..Default::default()
        };
        let mut own = info(ALICE, ALICE);
        own.source.is_from_me = true;
        assert!(translate_one(own, text()).is_none());
        assert!(translate_one(info("status@broadcast", ALICE), text()).is_none());
        assert!(translate_one(info("120363000000000002@newsletter", ALICE), text()).is_none());
        let reaction = proto::Message {
            reaction_message: MessageField::some(proto::message::ReactionMessage {
                text: Some("👍".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(translate_one(info(ALICE, ALICE), reaction).is_none());
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
    fn quoting_falls_back_to_text() {
        let m = quoted_message(None, "original text");
        assert_eq!(m.conversation.as_deref(), Some("original text"));
        let m = quoted_message(Some(&[0xff, 0xff, 0xff]), "fallback");
        assert_eq!(m.conversation.as_deref(), Some("fallback"));
    }
}
