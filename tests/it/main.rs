//! Integration tests: the whole server started in-process on 127.0.0.1:0
//! with the simulator backend, driven over real HTTP.

mod support;

mod api_v1;
mod whatsapp_fake;
