//! Messages and envelopes built with the crate's own builders, for the
//! translation tests.

use super::inbound;
use crate::wa::{self, Inbound, IncomingMessage, UpdateAction};
use std::sync::Arc;
use whatsapp_rust::chrono::{TimeZone, Utc};
use whatsapp_rust::prelude::{
    BatchOrigin, InboundMessage, MessageBatch, MessageField, MessageInfo, wa as proto,
};
use whatsapp_rust::types::message::MessageSource;

pub(super) const ALICE: &str = "15551234567@s.whatsapp.net";
pub(super) const ALICE_LID: &str = "123456789012345@lid";
pub(super) const GROUP: &str = "120363000000000001@g.us";
pub(super) const ME: &str = "15550000000@s.whatsapp.net";

pub(super) fn info(chat: &str, sender: &str) -> MessageInfo {
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
pub(super) fn translate(info: MessageInfo, message: proto::Message) -> Inbound {
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
pub(super) fn translate_one(info: MessageInfo, message: proto::Message) -> Option<IncomingMessage> {
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

pub(super) fn text_of(message: proto::Message) -> (String, Option<wa::MediaInfo>) {
    let m = translate_one(info(ALICE, ALICE), message).expect("an inbox item");
    (m.text, m.media)
}

pub(super) fn text(message: proto::Message) -> String {
    text_of(message).0
}

pub(super) fn update_of(message: proto::Message) -> UpdateAction {
    match translate(info(ALICE, ALICE), message) {
        Inbound::Update(u) => u.action,
        other => panic!("expected an update, got {other:?}"),
    }
}

pub(super) fn some<T: Default>(f: impl FnOnce(&mut T)) -> MessageField<T> {
    let mut value = T::default();
    f(&mut value);
    MessageField::some(value)
}

pub(super) fn future_proof(
    inner: proto::Message,
) -> MessageField<proto::message::FutureProofMessage> {
    MessageField::some(proto::message::FutureProofMessage {
        message: MessageField::some(inner),
    })
}

pub(super) fn image(caption: Option<&str>) -> proto::Message {
    proto::Message {
        image_message: some(|i: &mut proto::message::ImageMessage| {
            i.mimetype = Some("image/jpeg".into());
            i.caption = caption.map(str::to_string);
            i.file_length = Some(1234);
        }),
        ..Default::default()
    }
}
