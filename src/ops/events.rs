//! The event stream: opening one (the connection's thread then reads it).

use super::{Ctx, Error};
use crate::events::{self, EventReader, Subscription};

/// A stream of the events `subscription` asks for; `Unavailable` when
/// `EVENT_STREAMS_MAX` streams are open.
pub fn open_stream(ctx: &Ctx, subscription: Subscription) -> Result<EventReader, Error> {
    events::open(&ctx.shared, &ctx.db, subscription)?.ok_or_else(|| {
        Error::Unavailable("Too many event streams are open; try again shortly".into())
    })
}

/// The id of the newest event: a page rendered now and then following the
/// stream from this id misses nothing in between.
pub fn last_id(ctx: &Ctx) -> Result<i64, Error> {
    Ok(crate::db::last_event_id(&ctx.db)?)
}
