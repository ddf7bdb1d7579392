//! Sending: a reply, waiting for WhatsApp's server acknowledgement; a
//! reaction; read receipts; the typing state.

use super::lock;
use super::translate;
use crate::wa::{COMMAND_TIMEOUT, Quote, Target, WaEvent};
use crossbeam_channel::{Sender, bounded};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use whatsapp_rust::SendOptions;
use whatsapp_rust::prelude::{Client, Jid, MessageBuilderExt, wa as proto};
use whatsapp_rust::wacore_binary::jid::JidExt;

/// Sends waiting for WhatsApp's server acknowledgement of their message id.
pub(super) type AckWaiters =
    Arc<std::sync::Mutex<std::collections::HashMap<String, oneshot::Sender<Option<String>>>>>;

/// How long a send waits for the message to go out and be acknowledged:
/// inside the HTTP worker's own wait (`COMMAND_TIMEOUT`), so the worker
/// gets an answer, not a timeout.
pub(super) const SEND_TIMEOUT: Duration = Duration::from_secs(25);

/// One reply to send, as the door's `Send` carries it.
pub(super) struct Outgoing {
    pub(super) to: String,
    pub(super) text: String,
    pub(super) quote: Option<Quote>,
    pub(super) wa_id: String,
    pub(super) expiration: Option<u32>,
}

/// Sends a text under the id chosen for it (a retry sends the same id, so
/// the customer sees one message), as a WhatsApp reply quoting the original,
/// with the chat's disappearing timer; then waits for WhatsApp's server to
/// acknowledge it — the crate's send returns once the stanza is written,
/// and a refusal only shows in that acknowledgement's error code. The
/// outcome goes to the sink before the caller hears it. Without an answer
/// in time nothing is recorded: the row stays pending, and a late
/// acknowledgement still settles it (`Forwarder`).
pub(super) async fn send(
    client: &Arc<Client>,
    acks: &AckWaiters,
    events: &Sender<WaEvent>,
    out: Outgoing,
    limit: Duration,
) -> Result<(), String> {
    let context = match &out.quote {
        Some(q) => {
            let original = translate::quoted_message(q.raw.as_deref(), &q.text);
            Some(whatsapp_rust::proto_helpers::build_quote_context(
                q.wa_id.clone(),
                q.sender_jid.clone(),
                &original,
            ))
        }
        // A bare text cannot carry the timer; an extended one can.
        None => out.expiration.map(|_| proto::ContextInfo::default()),
    };
    let message = match context {
        Some(context) => proto::Message::text_with_context(out.text, context),
        None => proto::Message::text(out.text),
    };
    let mut options = SendOptions::default().with_message_id(out.wa_id.clone());
    if let Some(seconds) = out.expiration {
        options = options.with_ephemeral_expiration(seconds);
    }
    let (ack_tx, ack_rx) = oneshot::channel();
    // Registered before sending: the acknowledgement can beat the send's return.
    lock(acks).insert(out.wa_id.clone(), ack_tx);
    let deadline = tokio::time::Instant::now() + limit;
    let outcome = match out.to.parse::<Jid>() {
        Err(e) => Some(Err(format!("invalid chat JID {:?}: {e}", out.to))),
        Ok(chat) => {
            let sending = client.send_message_with_options(chat, message, options);
            match tokio::time::timeout_at(deadline, sending).await {
                Ok(Err(e)) => Some(Err(format!("send failed: {e}"))),
                Err(_) => None,
                Ok(Ok(_)) => match tokio::time::timeout_at(deadline, ack_rx).await {
                    Ok(Ok(None)) => Some(Ok(())),
                    Ok(Ok(Some(code))) => Some(Err(format!("WhatsApp refused it (error {code})"))),
                    Ok(Err(_)) | Err(_) => None,
                },
            }
        }
    };
    lock(acks).remove(&out.wa_id);
    let Some(outcome) = outcome else {
        return Err("WhatsApp did not confirm the message in time".into());
    };
    let events = events.clone();
    let recorded = outcome.clone();
    let applied = tokio::task::spawn_blocking(move || {
        let (done, applied) = bounded(1);
        events
            .send(WaEvent::Sent {
                wa_id: out.wa_id,
                outcome: recorded,
                done: Some(done),
            })
            .map_err(|_| "the event sink has stopped".to_string())?;
        applied
            .recv_timeout(COMMAND_TIMEOUT)
            .map_err(|_| "the event sink did not answer in time".to_string())?
    })
    .await
    .map_err(|e| format!("recording the send failed: {e}"))?;
    applied.and(outcome)
}

/// A chat JID as the crate takes it.
fn jid(raw: &str) -> Result<Jid, String> {
    raw.parse::<Jid>()
        .map_err(|e| format!("invalid chat JID {raw:?}: {e}"))
}

/// Reacts to `target` in chat `to` (an empty emoji takes ours back). The
/// key names the target's author in a group, as WhatsApp requires.
pub(super) async fn react(
    client: &Arc<Client>,
    to: &str,
    target: Target,
    emoji: &str,
) -> Result<(), String> {
    let chat = jid(to)?;
    let key = proto::MessageKey {
        remote_jid: Some(to.to_string()),
        from_me: Some(target.from_me),
        id: Some(target.wa_id),
        participant: (chat.is_group() && !target.from_me).then_some(target.sender_jid),
    };
    tokio::time::timeout(SEND_TIMEOUT, client.send_reaction(chat, key, emoji))
        .await
        .map_err(|_| "the reaction did not go out in time".to_string())?
        .map(|_| ())
        .map_err(|e| format!("sending the reaction failed: {e}"))
}

/// Tells WhatsApp these messages of `chat` were read; in a group the
/// receipt names their author.
pub(super) async fn mark_read(
    client: &Arc<Client>,
    chat: &str,
    sender: &str,
    wa_ids: &[String],
) -> Result<(), String> {
    let chat_jid = jid(chat)?;
    let author = if chat_jid.is_group() {
        Some(jid(sender)?)
    } else {
        None
    };
    let ids: Vec<&str> = wa_ids.iter().map(String::as_str).collect();
    tokio::time::timeout(
        SEND_TIMEOUT,
        client.mark_as_read(&chat_jid, author.as_ref(), &ids),
    )
    .await
    .map_err(|_| "the read receipt did not go out in time".to_string())?
    .map_err(|e| format!("sending the read receipt failed: {e}"))
}

/// Shows (composing) or clears (paused) "typing…" in chat `to`.
pub(super) async fn typing(client: &Arc<Client>, to: &str, typing: bool) -> Result<(), String> {
    let chat = jid(to)?;
    let chatstate = client.chatstate();
    let sending = async {
        if typing {
            chatstate.send_composing(&chat).await
        } else {
            chatstate.send_paused(&chat).await
        }
    };
    tokio::time::timeout(SEND_TIMEOUT, sending)
        .await
        .map_err(|_| "the typing state did not go out in time".to_string())?
        .map_err(|e| format!("sending the typing state failed: {e}"))
}
