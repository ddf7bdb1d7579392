//! A decrypted message into the door's types: its envelope (chat, sender,
//! LID pairs, timer), its wrappers, placeholders; the simulator's raw
//! messages and the quoted original of a reply.

use super::content::{Content, content};
use crate::wa::{self, Inbound, IncomingMessage, Placeholder, RawMessage, Update};
use whatsapp_rust::buffa::Message as _;
use whatsapp_rust::chrono::{TimeZone, Utc};
use whatsapp_rust::prelude::{Jid, MessageExt, MessageInfo, wa as proto};
use whatsapp_rust::types::events::{DecryptFailMode, UnavailableType, UndecryptableMessage};
use whatsapp_rust::types::message::MessageSource;
use whatsapp_rust::wacore_binary::jid::JidExt;

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
    use super::super::content::downloadable;
    use super::super::events::{Signal, signal};
    use super::super::fixtures::*;
    use std::sync::Arc;
    use whatsapp_rust::prelude::Event;
    use whatsapp_rust::prelude::{MessageBuilderExt, MessageField};
    use whatsapp_rust::proto_helpers::wrap_as_album_child;

    use super::*;

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
    fn quoting_falls_back_to_text() {
        let m = quoted_message(None, "original text");
        assert_eq!(m.conversation.as_deref(), Some("original text"));
        let m = quoted_message(Some(&[0xff, 0xff, 0xff]), "fallback");
        assert_eq!(m.conversation.as_deref(), Some("fallback"));
    }
}
