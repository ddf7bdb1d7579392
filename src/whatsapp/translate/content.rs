//! What an unwrapped message is: text, media, location, contacts, albums,
//! updates to other messages (reactions, edits, revocations), or unsupported.

use super::fields::{Decision, decision, set_fields};
use super::message::unwrap;
use super::structured::structured;
use crate::wa::{self, MediaSpec, Placeholder, UpdateAction};
use whatsapp_rust::download::Downloadable;
use whatsapp_rust::prelude::wa as proto;

/// What one (unwrapped) message is.
#[derive(Debug, PartialEq)]
pub(super) enum Content {
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

pub(super) fn show(text: impl Into<String>) -> Content {
    Content::Show {
        text: text.into(),
        media: None,
    }
}

pub(super) fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// The inbox text (text, caption or placeholder) and media of a message.
pub(super) fn content(m: &proto::Message) -> Content {
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
    if let Some(shown) = structured(m) {
        return shown;
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

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::message::quoted_message;

    use whatsapp_rust::prelude::{MessageBuilderExt, MessageField};
    use whatsapp_rust::proto_helpers::build_reaction_message;

    use super::*;

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
}
