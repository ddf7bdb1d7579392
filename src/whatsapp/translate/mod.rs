//! Pure translation from whatsapp-rust's events and protobuf messages into the
//! door's types (`wa.rs`). No client, no I/O: everything here is unit-tested
//! with the crate's own builders.

mod content;
mod events;
mod fields;
#[cfg(test)]
mod fixtures;
mod message;
mod structured;

pub use content::{downloadable, media_spec};
pub use events::{CallOffer, Signal, missed_call, signal};
pub use message::{inbound, quoted_message, raw_message, unwrap};
