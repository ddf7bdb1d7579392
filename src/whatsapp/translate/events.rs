//! Crate events the backend cares about: pairing, connection, calls,
//! receipts, learned LIDs.

use super::message::undecryptable;
use crate::wa::{DeliveryStatus, IncomingMessage};
use std::time::Duration;
use whatsapp_rust::prelude::Event;
use whatsapp_rust::types::call::CallAction;
use whatsapp_rust::types::presence::ReceiptType;

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

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use whatsapp_rust::chrono::Utc;
    use whatsapp_rust::types::message::MessageSource;

    use super::*;
    use whatsapp_rust::types::events::{
        Connected, Disconnected, LoggedOut, PairSuccess, PairingQrCode, Receipt, StreamReplaced,
    };

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
}
