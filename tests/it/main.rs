//! Integration tests: the whole server started in-process on 127.0.0.1:0
//! with the simulator backend (or, in `whatsapp_fake`, the real WhatsApp
//! backend against an offline fake server), driven over real HTTP.

mod support;

mod api_v1;
mod backup;
mod cli;
mod container;
mod conversation;
mod crash;
mod dashboard;
mod durability;
mod events;
mod hostile;
mod legacy;
mod metrics;
mod parsers;
mod raw;
mod uploads;
mod webhooks;
mod whatsapp_fake;
