//! Every field of `proto::Message` and how it is handled, held to the
//! crate's schema by a test.

use whatsapp_rust::prelude::wa as proto;

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

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use crate::wa::Inbound;
    use whatsapp_rust::buffa::Message as _;

    use super::*;
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
}
