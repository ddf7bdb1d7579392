//! The sandbox backend's controls: messages in, the connection state, what
//! was sent, failing sends. Each is a command to the simulator thread; with
//! the real backend the routes do not exist.

use super::messages::{is_jid, phone_digits};
use super::{Ctx, Error};
use crate::wa::{
    DeliveryStatus, RawMessage, RawOutcome, SentRecord, SimMessage, Update, WaCommand,
};

/// The media kinds a simulated message can carry.
pub const MEDIA_KINDS: [&str; 5] = ["image", "video", "audio", "document", "sticker"];

/// The connection states the simulator can be put in.
pub const STATES: [&str; 4] = ["qr", "connected", "disconnected", "logged_out"];

/// A JID for an address given as a JID, a bare number or `+number`: a
/// number is a person's chat.
pub fn address(raw: &str) -> Option<String> {
    if raw.contains('@') {
        is_jid(raw).then(|| raw.to_string())
    } else {
        phone_digits(raw).map(|d| format!("{d}@s.whatsapp.net"))
    }
}

/// A group JID, given as one or as its number.
pub fn group(raw: &str) -> Option<String> {
    let jid = if raw.contains('@') {
        raw.to_string()
    } else {
        format!("{raw}@g.us")
    };
    (is_jid(&jid) && jid.ends_with("@g.us")).then_some(jid)
}

/// A customer's message arrives; returns its WhatsApp id once the sink has
/// committed it (as the real backend acknowledges WhatsApp only then).
pub fn inject(ctx: &mut Ctx, message: SimMessage) -> Result<String, Error> {
    let injected = ctx
        .wa
        .call(|reply| WaCommand::SimInject { message, reply })
        .map_err(Error::Unavailable)?;
    match injected.committed.recv_timeout(crate::wa::COMMAND_TIMEOUT) {
        Ok(Ok(_)) => Ok(injected.wa_id),
        Ok(Err(e)) => Err(Error::Unavailable(format!(
            "the message could not be stored: {e}"
        ))),
        Err(_) => Err(Error::Unavailable("the event sink did not answer".into())),
    }
}

/// Checks that `proto` is an encoded `whatsapp.Message`.
pub fn proto(proto: Vec<u8>) -> Result<Vec<u8>, Error> {
    if crate::whatsapp::is_message(&proto) {
        Ok(proto)
    } else {
        Err(Error::invalid(
            "proto_base64 is not a protobuf-encoded whatsapp.Message",
        ))
    }
}

/// A WhatsApp message given as its protobuf (checked by `proto`) arrives,
/// translated by the real backend's code; returns what became of it once
/// applied.
pub fn raw(ctx: &mut Ctx, message: RawMessage) -> Result<RawOutcome, Error> {
    ctx.wa
        .call(|reply| WaCommand::SimRaw { message, reply })
        .map_err(Error::Unavailable)
}

/// A customer's reaction, edit or deletion arrives; returns once the sink
/// applied it (one aimed at a message never stored changes nothing).
pub fn update(ctx: &mut Ctx, update: Update) -> Result<(), Error> {
    let update = Box::new(update);
    ctx.wa
        .call(|reply| WaCommand::SimUpdate { update, reply })
        .map_err(Error::Unavailable)
}

/// A receipt for message `wa_id` the app sent; returns once applied.
pub fn receipt(ctx: &mut Ctx, wa_id: String, status: DeliveryStatus) -> Result<(), Error> {
    ctx.wa
        .call(|reply| WaCommand::SimReceipt {
            wa_id,
            status,
            reply,
        })
        .map_err(Error::Unavailable)
}

/// Puts the connection in `state` (one of `STATES`); returns once the sink
/// applied it, so the next request sees it.
pub fn set_connection(ctx: &mut Ctx, state: &str) -> Result<(), Error> {
    if !STATES.contains(&state) {
        return Err(Error::invalid(
            "state must be one of qr, connected, disconnected, logged_out",
        ));
    }
    ctx.wa
        .call(|reply| WaCommand::SimConnection {
            state: state.to_string(),
            reply,
        })
        .map_err(Error::Unavailable)
}

/// Every message the server has sent, oldest first.
pub fn sent(ctx: &mut Ctx) -> Result<Vec<SentRecord>, Error> {
    ctx.wa
        .call(|reply| WaCommand::SimSent { reply })
        .map_err(Error::Unavailable)
}

/// Makes sends fail (true) or succeed (false).
pub fn fail_sends(ctx: &mut Ctx, fail: bool) -> Result<(), Error> {
    ctx.wa
        .call(|reply| WaCommand::SimFailSends { fail, reply })
        .map_err(Error::Unavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_groups() {
        assert_eq!(
            address("+1 555 0100").as_deref(),
            Some("15550100@s.whatsapp.net")
        );
        assert_eq!(address("x@lid").as_deref(), Some("x@lid"));
        assert_eq!(address("a b@c"), None);
        assert_eq!(group("120363").as_deref(), Some("120363@g.us"));
        assert_eq!(group("120363@g.us").as_deref(), Some("120363@g.us"));
        assert_eq!(group("1@s.whatsapp.net"), None);
        assert_eq!(group("1 2"), None);
    }
}
