//! The WhatsApp session: pairing (QR code or pairing code) and logging out.

use super::{Ctx, Error};
use crate::state::ConnState;
use crate::wa::WaCommand;

/// Asks the backend for a pairing code for `phone` (international format;
/// spaces, dashes, `+` and parentheses are dropped).
pub fn pair_code(ctx: &mut Ctx, phone: &str) -> Result<String, Error> {
    let phone: String = phone
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '+' | '(' | ')'))
        .collect();
    if !(7..=15).contains(&phone.len()) || !phone.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::invalid(
            "phone must be the number in international format, digits only (7 to 15)",
        ));
    }
    if ctx.shared.connection().state == ConnState::Connected {
        return Err(Error::Conflict(
            "Already paired and connected; log out first".into(),
        ));
    }
    ctx.wa
        .call(|reply| WaCommand::PairCode { phone, reply })
        .map_err(|reason| Error::Backend {
            action: "get a pairing code",
            reason,
        })
}

/// Starts a new pairing (QR codes follow); a `Conflict` while a paired
/// session exists.
pub fn start_pairing(ctx: &mut Ctx) -> Result<(), Error> {
    if ctx.shared.session_paired() {
        return Err(Error::Conflict("Already paired; log out first".into()));
    }
    ctx.wa
        .call(|reply| WaCommand::Pair { reply })
        .map_err(|e| Error::Conflict(format!("Could not start a pairing: {e}")))
}

/// Unlinks this server from the phone. The backend answers once the new
/// state is applied, so the next request sees it.
pub fn logout(ctx: &mut Ctx) -> Result<(), Error> {
    ctx.wa
        .call(|reply| WaCommand::Logout { reply })
        .map_err(|reason| Error::Backend {
            action: "log out",
            reason,
        })
}
