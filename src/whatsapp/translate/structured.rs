//! Structured messages shown as one line of text: what a customer taps on
//! a business message, business messages, polls, orders, products, invites,
//! events, calls and sticker packs.

use super::content::{Content, non_empty, show};
use proto::message::buttons_response_message::Response as ButtonsResponse;
use proto::message::call_log_message::CallOutcome;
use proto::message::interactive_response_message::InteractiveResponseMessage as InteractiveResponse;
use whatsapp_rust::prelude::wa as proto;

/// The one-line text of a structured message, if `m` is one.
pub(super) fn structured(m: &proto::Message) -> Option<Content> {
    // What a customer taps on a business message: the option's text.
    if let Some(b) = m.buttons_response_message.as_option() {
        let chosen = match &b.response {
            Some(ButtonsResponse::SelectedDisplayText(text)) => non_empty(Some(text)),
            None => None,
        };
        return Some(show(
            chosen
                .or(non_empty(b.selected_button_id.as_deref()))
                .unwrap_or("[Button reply]"),
        ));
    }
    if let Some(l) = m.list_response_message.as_option() {
        let row = l
            .single_select_reply
            .as_option()
            .and_then(|r| non_empty(r.selected_row_id.as_deref()));
        return Some(show(
            non_empty(l.title.as_deref())
                .or(row)
                .unwrap_or("[List reply]"),
        ));
    }
    if let Some(t) = m.template_button_reply_message.as_option() {
        return Some(show(
            non_empty(t.selected_display_text.as_deref())
                .or(non_empty(t.selected_id.as_deref()))
                .unwrap_or("[Button reply]"),
        ));
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
        return Some(show(
            body.map(str::to_string)
                .or(flow)
                .unwrap_or_else(|| "[Response]".into()),
        ));
    }
    // Business messages (a business account writing to us).
    if let Some(b) = m.buttons_message.as_option() {
        return Some(show(
            non_empty(b.content_text.as_deref()).unwrap_or("[Buttons]"),
        ));
    }
    if let Some(l) = m.list_message.as_option() {
        let text = [l.title.as_deref(), l.description.as_deref()]
            .into_iter()
            .filter_map(non_empty)
            .collect::<Vec<_>>()
            .join("\n");
        return Some(show(if text.is_empty() {
            "[List]".to_string()
        } else {
            text
        }));
    }
    if let Some(t) = m.template_message.as_option() {
        let hydrated = t
            .hydrated_template
            .as_option()
            .and_then(|h| non_empty(h.hydrated_content_text.as_deref()));
        return Some(show(hydrated.unwrap_or("[Template message]")));
    }
    if let Some(i) = m.interactive_message.as_option() {
        let body = i
            .body
            .as_option()
            .and_then(|b| non_empty(b.text.as_deref()));
        return Some(show(body.unwrap_or("[Interactive message]")));
    }
    if m.highly_structured_message.is_set() {
        return Some(show("[Template message]"));
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
            return Some(show(
                format!("[Poll: {question}] {}", options.join(" / "))
                    .trim_end()
                    .to_string(),
            ));
        }
    }
    if m.poll_update_message.is_set() {
        // A vote is encrypted with the poll's secret; it is not decrypted here.
        return Some(show("[Poll vote]"));
    }
    for snapshot in [
        &m.poll_result_snapshot_message,
        &m.poll_result_snapshot_message_v3,
    ] {
        if let Some(p) = snapshot.as_option() {
            return Some(show(format!(
                "[Poll results: {}]",
                non_empty(p.name.as_deref()).unwrap_or("")
            )));
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
        return Some(show(match non_empty(o.message.as_deref()) {
            Some(note) => format!("{head} {note}"),
            None => head,
        }));
    }
    if let Some(p) = m.product_message.as_option() {
        let title = p
            .product
            .as_option()
            .and_then(|x| non_empty(x.title.as_deref()));
        return Some(show(format!("[Product: {}]", title.unwrap_or(""))));
    }
    if let Some(g) = m.group_invite_message.as_option() {
        let name = non_empty(g.group_name.as_deref()).unwrap_or("");
        let caption = non_empty(g.caption.as_deref());
        return Some(show(match caption {
            Some(caption) => format!("[Group invite: {name}] {caption}"),
            None => format!("[Group invite: {name}]"),
        }));
    }
    if let Some(e) = m.event_message.as_option() {
        return Some(show(format!(
            "[Event: {}]",
            non_empty(e.name.as_deref()).unwrap_or("")
        )));
    }
    if let Some(e) = m.event_invite_message.as_option() {
        return Some(show(format!(
            "[Event invite: {}]",
            non_empty(e.event_title.as_deref()).unwrap_or("")
        )));
    }
    if m.enc_event_response_message.is_set() {
        return Some(show("[Event response]"));
    }
    if let Some(c) = m.scheduled_call_creation_message.as_option() {
        return Some(show(format!(
            "[Scheduled call: {}]",
            non_empty(c.title.as_deref()).unwrap_or("")
        )));
    }
    if m.request_phone_number_message.is_set() {
        return Some(show("[Phone number request]"));
    }
    if let Some(c) = m.call_log_messsage.as_option() {
        let video = c.is_video.unwrap_or(false);
        let missed = matches!(
            c.call_outcome,
            Some(CallOutcome::MISSED) | Some(CallOutcome::REJECTED)
        );
        return Some(show(match (missed, video) {
            (true, true) => "[Missed video call]",
            (true, false) => "[Missed voice call]",
            (false, true) => "[Video call]",
            (false, false) => "[Voice call]",
        }));
    }
    if m.call.is_set() {
        return Some(show("[Call]"));
    }
    if let Some(p) = m.sticker_pack_message.as_option() {
        return Some(show(format!(
            "[Sticker pack: {}]",
            non_empty(p.name.as_deref()).unwrap_or("")
        )));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;

    use whatsapp_rust::prelude::MessageField;

    use super::*;

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
}
