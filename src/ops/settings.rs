//! Settings: the API key.

use super::{Ctx, Error};
use crate::{auth, db, secrets};

/// Makes a new API key the active one (the old one stops at once) and
/// returns it, for the one time it is shown.
pub fn rotate_api_key(ctx: &mut Ctx) -> Result<String, Error> {
    let key = auth::generate_api_key();
    let hash = auth::api_key_hash(&key);
    db::set_active_api_key(&mut ctx.db, &hash, &secrets::key_prefix(&key))?;
    ctx.shared.set_api_key_hash(hash);
    Ok(key)
}

/// The shown prefix of the active API key (never enough to use it).
pub fn api_key_prefix(ctx: &Ctx) -> Result<Option<String>, Error> {
    Ok(db::active_api_key_prefix(&ctx.db)?)
}
