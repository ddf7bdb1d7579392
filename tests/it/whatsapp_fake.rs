//! The real WhatsApp backend (the whatsapp-rust client on the `whatsapp`
//! thread) against an in-process fake WhatsApp server, offline: the server
//! side of the Noise XX handshake with a self-made certificate chain (accepted
//! only because test builds enable `danger-skip-cert-chain-verify`), then the
//! stanzas a scenario needs. It cannot pair (that needs the phone's ADV
//! signatures), so it covers what happens before: QR codes reaching the API,
//! a dropped connection being retried, a logged-out stream not being retried.
//! With a device stored as if paired, it also logs the client in and plays
//! the server's side of sending a message (device lists, pre-key bundles it
//! signs itself, and the acknowledgement of each message stanza, as a test
//! scripts it): replies, their ids, and WhatsApp's answers end to end.

use crate::support::{TestServer, eventually};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use whatsapp_api::whatsapp::TestHook;
use whatsapp_rust::async_channel;
use whatsapp_rust::buffa::{Message as _, MessageField};
use whatsapp_rust::bytes::Bytes;
use whatsapp_rust::transport::{Transport, TransportEvent, TransportFactory};
use whatsapp_rust::wacore::framing::{FrameDecoder, encode_frame};
use whatsapp_rust::wacore::handshake::NoiseHandshake;
use whatsapp_rust::wacore::libsignal::protocol::{KeyPair, PrivateKey};
use whatsapp_rust::wacore::net::DisconnectReason;
use whatsapp_rust::wacore_binary::builder::NodeBuilder;
use whatsapp_rust::wacore_binary::consts::{NOISE_PATTERN_IK, NOISE_PATTERN_XX, WA_CONN_HEADER};
use whatsapp_rust::wacore_binary::{Node, NodeRef};
use whatsapp_rust::waproto::whatsapp as wa;

/// What the fake server does on one connection.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Scenario {
    /// Offer QR references to the unpaired client and stay connected.
    Qr,
    /// Offer QR references, then drop the connection.
    QrThenDrop,
    /// Close the stream with `<stream:error code="401"/>` (unlinked).
    LoggedOut,
    /// Close the stream as replaced by another client of the same session.
    Replaced,
    /// Log the (stored, paired) client in and answer what sending needs;
    /// message stanzas are answered as `Exchange::acks` says.
    LoggedIn,
    /// Log the client in, then drop the connection a moment after it is
    /// connected (after its first presence, which comes just before).
    LoggedInThenDrop,
    /// Refuse the login: temporarily banned for this many seconds.
    Banned(u32),
    /// Refuse the login: this client version is outdated.
    Outdated,
}

/// How the fake server answers one message stanza.
#[derive(Clone, Debug)]
enum AckPlan {
    /// `<ack class="message">`: accepted.
    Accept,
    /// `<ack class="message" error="…">`: refused.
    Refuse(&'static str),
    /// No answer at all (a lost acknowledgement).
    Silent,
}

/// A receipt stanza the client sent: its `type`, `to` and message ids.
type ReceiptSeen = (String, String, Vec<String>);

/// What a test scripts and sees of the logged-in exchange.
#[derive(Clone)]
struct Exchange {
    /// How to answer the message stanzas, in order (then: accept).
    acks: Arc<Mutex<VecDeque<AckPlan>>>,
    /// The ids of the message stanzas the client sent, in order.
    messages: Arc<Mutex<Vec<String>>>,
    /// The `type` of each presence stanza the client sent, in order.
    presences: Arc<Mutex<Vec<String>>>,
    /// Each receipt stanza the client sent: its `type`, `to` and message
    /// ids (the `id` and those of its `<list>`), in order.
    receipts: Arc<Mutex<Vec<ReceiptSeen>>>,
    /// Each chat state the client sent: `to` and the state (`composing`,
    /// `paused`), in order.
    chatstates: Arc<Mutex<Vec<(String, String)>>>,
    /// Stanzas the server sends the client of its own accord (a call).
    inject: async_channel::Sender<Node>,
    injected: async_channel::Receiver<Node>,
}

impl Default for Exchange {
    fn default() -> Exchange {
        let (inject, injected) = async_channel::unbounded();
        Exchange {
            acks: Default::default(),
            messages: Default::default(),
            presences: Default::default(),
            receipts: Default::default(),
            chatstates: Default::default(),
            inject,
            injected,
        }
    }
}

/// Counts connections; connection n plays `scenarios[n]` (the last one
/// repeats).
struct FakeWhatsApp {
    scenarios: Vec<Scenario>,
    connections: Arc<AtomicUsize>,
    exchange: Exchange,
    /// The server's static key, the same on every connection (a paired
    /// client keeps it and resumes with Noise IK).
    server_static: KeyPair,
}

struct Pipe(async_channel::Sender<Bytes>);

#[whatsapp_rust::async_trait]
impl Transport for Pipe {
    async fn send(&self, data: Bytes) -> Result<(), whatsapp_rust::anyhow::Error> {
        self.0
            .send(data)
            .await
            .map_err(|e| whatsapp_rust::anyhow::anyhow!("closed: {e}"))
    }

    async fn disconnect(&self) {
        self.0.close();
    }
}

#[whatsapp_rust::async_trait]
impl TransportFactory for FakeWhatsApp {
    async fn create_transport(
        &self,
    ) -> Result<
        (Arc<dyn Transport>, async_channel::Receiver<TransportEvent>),
        whatsapp_rust::anyhow::Error,
    > {
        let n = self.connections.fetch_add(1, Ordering::SeqCst);
        let scenario = self.scenarios[n.min(self.scenarios.len() - 1)];
        let (to_server, from_client) = async_channel::unbounded::<Bytes>();
        let (to_client, events) = async_channel::unbounded::<TransportEvent>();
        let exchange = self.exchange.clone();
        let server_static = self.server_static.clone();
        tokio::spawn(async move {
            if let Err(e) =
                serve(n, scenario, from_client, to_client, exchange, server_static).await
            {
                eprintln!("fake server ({scenario:?}): {e}");
            }
        });
        Ok((Arc::new(Pipe(to_server)), events))
    }
}

fn key_pair() -> KeyPair {
    let private = PrivateKey::try_from(&whatsapp_api::auth::random_bytes::<32>()[..]).unwrap();
    KeyPair::new(private.public_key().unwrap(), private)
}

/// Reads one frame (the first chunk starts with the connection header).
async fn next_frame(
    from_client: &async_channel::Receiver<Bytes>,
    decoder: &mut FrameDecoder,
    first: &mut bool,
) -> Result<Vec<u8>, String> {
    loop {
        if let Some(frame) = decoder.decode_frame() {
            return Ok(frame.to_vec());
        }
        let chunk = from_client.recv().await.map_err(|e| e.to_string())?;
        let mut data: &[u8] = &chunk;
        if *first && data.starts_with(&WA_CONN_HEADER) {
            data = &data[WA_CONN_HEADER.len()..];
        }
        *first = false;
        decoder.feed(data);
    }
}

/// A certificate chain whose signatures are zeros: only a client built with
/// `danger-skip-cert-chain-verify` accepts it.
fn cert_chain(leaf_key: &[u8]) -> Vec<u8> {
    use wa::cert_chain::{NoiseCertificate, noise_certificate::Details};
    let certificate = |serial, issuer_serial, key: Vec<u8>| NoiseCertificate {
        details: Some(
            Details {
                serial: Some(serial),
                issuer_serial: Some(issuer_serial),
                key: Some(key),
                not_before: Some(1_700_000_000),
                not_after: Some(4_000_000_000),
            }
            .encode_to_vec(),
        ),
        signature: Some(vec![0; 64]),
    };
    wa::CertChain {
        intermediate: MessageField::some(certificate(1, 0, vec![0xCC; 32])),
        leaf: MessageField::some(certificate(2, 1, leaf_key.to_vec())),
    }
    .encode_to_vec()
}

/// The server's half of the handshake's first exchange.
async fn send_server_hello(
    to_client: &async_channel::Sender<TransportEvent>,
    ephemeral: Vec<u8>,
    encrypted_static: Option<Vec<u8>>,
    payload: Vec<u8>,
) -> Result<(), String> {
    let server_hello = wa::HandshakeMessage {
        server_hello: MessageField::some(wa::handshake_message::ServerHello {
            ephemeral: Some(ephemeral),
            r#static: encrypted_static,
            payload: Some(payload),
            ..Default::default()
        }),
        ..Default::default()
    };
    let framed = encode_frame(&server_hello.encode_to_vec(), None).map_err(|e| e.to_string())?;
    to_client
        .send(TransportEvent::DataReceived(framed.into()))
        .await
        .map_err(|e| e.to_string())
}

async fn serve(
    connection: usize,
    scenario: Scenario,
    from_client: async_channel::Receiver<Bytes>,
    to_client: async_channel::Sender<TransportEvent>,
    exchange: Exchange,
    server_static: KeyPair,
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let mut decoder = FrameDecoder::new();
    let mut first = true;
    let _ = to_client.send(TransportEvent::Connected).await;

    let hello = next_frame(&from_client, &mut decoder, &mut first).await?;
    let hello = wa::HandshakeMessage::decode_from_slice(&hello).map_err(|e| err(&e))?;
    let hello = hello.client_hello.into_option().ok_or("no client hello")?;
    let client_ephemeral: Vec<u8> = hello.ephemeral.ok_or("no client ephemeral key")?;
    let server_ephemeral = key_pair();
    let ephemeral_public = server_ephemeral.public_key.public_key_bytes().to_vec();
    let static_public = server_static.public_key.public_key_bytes().to_vec();
    // Named from the initiator's view: (client→server, server→client).
    let (client_to_server, server_to_client) = if let Some(encrypted_static) = hello.r#static {
        // A paired client that met this server before resumes with Noise IK
        // (our static key is in the certificate it kept).
        let mut noise =
            NoiseHandshake::new(NOISE_PATTERN_IK, &WA_CONN_HEADER).map_err(|e| err(&e))?;
        noise.authenticate(&static_public);
        noise.authenticate(&client_ephemeral);
        noise
            .mix_shared_secret(server_static.private_key.serialize(), &client_ephemeral)
            .map_err(|e| err(&e))?;
        let client_static = noise.decrypt(&encrypted_static).map_err(|e| err(&e))?;
        noise
            .mix_shared_secret(server_static.private_key.serialize(), &client_static)
            .map_err(|e| err(&e))?;
        noise
            .decrypt(&hello.payload.ok_or("no client payload")?)
            .map_err(|e| err(&e))?;
        noise.authenticate(&ephemeral_public);
        noise
            .mix_shared_secret(server_ephemeral.private_key.serialize(), &client_ephemeral)
            .map_err(|e| err(&e))?;
        noise
            .mix_shared_secret(server_ephemeral.private_key.serialize(), &client_static)
            .map_err(|e| err(&e))?;
        let payload = noise.encrypt(b"certificate").map_err(|e| err(&e))?;
        send_server_hello(&to_client, ephemeral_public, None, payload).await?;
        noise.finish().map_err(|e| err(&e))?
    } else {
        // ClientHello → ServerHello (Noise XX, responder side).
        let mut noise =
            NoiseHandshake::new(NOISE_PATTERN_XX, &WA_CONN_HEADER).map_err(|e| err(&e))?;
        noise.authenticate(&client_ephemeral);
        noise.authenticate(&ephemeral_public);
        noise
            .mix_shared_secret(server_ephemeral.private_key.serialize(), &client_ephemeral)
            .map_err(|e| err(&e))?;
        let encrypted_static = noise.encrypt(&static_public).map_err(|e| err(&e))?;
        noise
            .mix_shared_secret(server_static.private_key.serialize(), &client_ephemeral)
            .map_err(|e| err(&e))?;
        let encrypted_chain = noise
            .encrypt(&cert_chain(&static_public))
            .map_err(|e| err(&e))?;
        send_server_hello(
            &to_client,
            ephemeral_public,
            Some(encrypted_static),
            encrypted_chain,
        )
        .await?;

        // ClientFinish → transport keys.
        let finish = next_frame(&from_client, &mut decoder, &mut first).await?;
        let finish = wa::HandshakeMessage::decode_from_slice(&finish).map_err(|e| err(&e))?;
        let client_finish = finish
            .client_finish
            .into_option()
            .ok_or("no client finish")?;
        let client_static = noise
            .decrypt(&client_finish.r#static.ok_or("no client static key")?)
            .map_err(|e| err(&e))?;
        noise
            .mix_shared_secret(server_ephemeral.private_key.serialize(), &client_static)
            .map_err(|e| err(&e))?;
        noise
            .decrypt(&client_finish.payload.ok_or("no client payload")?)
            .map_err(|e| err(&e))?;
        noise.finish().map_err(|e| err(&e))?
    };
    if let Scenario::LoggedIn | Scenario::LoggedInThenDrop = scenario {
        let mut conn = Conn {
            from_client,
            to_client,
            decoder,
            first,
            client_to_server,
            server_to_client,
            received: 0,
            sent: 0,
            keys: Default::default(),
        };
        let drop_after =
            matches!(scenario, Scenario::LoggedInThenDrop).then_some(Duration::from_millis(300));
        return conn.logged_in(&exchange, drop_after).await;
    }
    let mut counter = 0;
    let mut send_node = async |node: whatsapp_rust::wacore_binary::Node| -> Result<(), String> {
        let plain = whatsapp_rust::wacore_binary::marshal::marshal(&node).map_err(|e| err(&e))?;
        let sealed = server_to_client
            .encrypt_with_counter(counter, &plain)
            .map_err(|e| err(&e))?;
        counter += 1;
        let framed = encode_frame(&sealed, None).map_err(|e| err(&e))?;
        to_client
            .send(TransportEvent::DataReceived(framed.into()))
            .await
            .map_err(|e| err(&e))
    };

    match scenario {
        Scenario::LoggedIn | Scenario::LoggedInThenDrop => unreachable!("served above"),
        Scenario::Banned(seconds) => {
            send_node(
                NodeBuilder::new("failure")
                    .attr("reason", "402")
                    .attr("code", "101")
                    .attr("expire", seconds.to_string())
                    .build(),
            )
            .await?;
        }
        Scenario::Outdated => {
            send_node(NodeBuilder::new("failure").attr("reason", "405").build()).await?;
        }
        Scenario::Qr | Scenario::QrThenDrop => {
            // What the real server sends an unpaired companion; the refs
            // name the connection they came from.
            let refs = [format!("REF-{connection}-A"), format!("REF-{connection}-B")];
            send_node(
                NodeBuilder::new("iq")
                    .attr("id", "pair-1")
                    .attr("type", "set")
                    .attr("xmlns", "md")
                    .attr("from", "s.whatsapp.net")
                    .children([NodeBuilder::new("pair-device")
                        .children(
                            refs.iter().map(|r| {
                                NodeBuilder::new("ref").bytes(r.as_bytes().to_vec()).build()
                            }),
                        )
                        .build()])
                    .build(),
            )
            .await?;
        }
        Scenario::Replaced => {
            send_node(
                NodeBuilder::new("stream:error")
                    .children([NodeBuilder::new("conflict")
                        .attr("type", "replaced")
                        .build()])
                    .build(),
            )
            .await?;
        }
        Scenario::LoggedOut => {
            send_node(NodeBuilder::new("stream:error").attr("code", "401").build()).await?;
        }
    }
    if let Scenario::QrThenDrop = scenario {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = to_client
            .send(TransportEvent::Disconnected(DisconnectReason::ReadError(
                "fake server dropped the connection".into(),
            )))
            .await;
        return Ok(());
    }
    // Keep the "socket" open, draining whatever the client sends.
    while from_client.recv().await.is_ok() {}
    Ok(())
}

/// Our own account in the logged-in scenario: its phone number, this
/// linked device (7) and its LID.
const OWN_PN: &str = "15550000000";
const OWN_DEVICE: &str = "15550000000:7@s.whatsapp.net";
const OWN_LID: &str = "100000000000001:7@lid";
/// Media download retries in a hurry (two tries).
const QUICK_MEDIA_RETRIES: [Duration; 2] = [Duration::ZERO, Duration::from_millis(100)];
/// The customer who wrote to us.
const CUSTOMER: &str = "15551234567@s.whatsapp.net";

/// The encrypted stream after the handshake, from the server's side.
struct Conn {
    from_client: async_channel::Receiver<Bytes>,
    to_client: async_channel::Sender<TransportEvent>,
    decoder: FrameDecoder,
    first: bool,
    client_to_server: whatsapp_rust::wacore::noise::NoiseCipher,
    server_to_client: whatsapp_rust::wacore::noise::NoiseCipher,
    received: u32,
    sent: u32,
    /// The Signal keys of each device the client asked a bundle for (one
    /// identity per device, kept so a second fetch matches the first).
    keys: HashMap<String, DeviceKeys>,
}

/// One (fake) device's identity and pre-keys.
struct DeviceKeys {
    registration: u32,
    identity: KeyPair,
    signed: KeyPair,
    signature: Vec<u8>,
    one_time: KeyPair,
}

impl DeviceKeys {
    fn new() -> DeviceKeys {
        let identity = key_pair();
        let signed = key_pair();
        let signature = identity
            .private_key
            .calculate_signature(&signed.public_key.serialize(), &mut rand::rng())
            .unwrap()
            .to_vec();
        DeviceKeys {
            registration: 4242,
            identity,
            signed,
            signature,
            one_time: key_pair(),
        }
    }

    /// The `<user>` of a pre-key response.
    fn bundle(&self, jid: &str) -> Node {
        let id3 = |n: u32| n.to_be_bytes()[1..].to_vec();
        NodeBuilder::new("user")
            .attr("jid", jid)
            .children([
                NodeBuilder::new("registration")
                    .bytes(self.registration.to_be_bytes().to_vec())
                    .build(),
                NodeBuilder::new("type").bytes(vec![5]).build(),
                NodeBuilder::new("identity")
                    .bytes(self.identity.public_key.public_key_bytes().to_vec())
                    .build(),
                NodeBuilder::new("key")
                    .children([
                        NodeBuilder::new("id").bytes(id3(1)).build(),
                        NodeBuilder::new("value")
                            .bytes(self.one_time.public_key.public_key_bytes().to_vec())
                            .build(),
                    ])
                    .build(),
                NodeBuilder::new("skey")
                    .children([
                        NodeBuilder::new("id").bytes(id3(1)).build(),
                        NodeBuilder::new("value")
                            .bytes(self.signed.public_key.public_key_bytes().to_vec())
                            .build(),
                        NodeBuilder::new("signature")
                            .bytes(self.signature.clone())
                            .build(),
                    ])
                    .build(),
            ])
            .build()
    }
}

/// The `jid` attributes of the `<user>` nodes under `node`, at any depth.
fn user_jids(node: &NodeRef<'_>, out: &mut Vec<String>) {
    for child in node.children().into_iter().flatten() {
        if child.tag == "user"
            && let Some(jid) = child.get_attr("jid")
        {
            out.push(jid.as_str().to_string());
        }
        user_jids(child, out);
    }
}

impl Conn {
    async fn send(&mut self, node: Node) -> Result<(), String> {
        let plain =
            whatsapp_rust::wacore_binary::marshal::marshal(&node).map_err(|e| e.to_string())?;
        let sealed = self
            .server_to_client
            .encrypt_with_counter(self.sent, &plain)
            .map_err(|e| e.to_string())?;
        self.sent += 1;
        let framed = encode_frame(&sealed, None).map_err(|e| e.to_string())?;
        self.to_client
            .send(TransportEvent::DataReceived(framed.into()))
            .await
            .map_err(|e| e.to_string())
    }

    /// The next stanza from the client, decrypted and unpacked.
    async fn receive(&mut self) -> Result<Vec<u8>, String> {
        let frame = next_frame(&self.from_client, &mut self.decoder, &mut self.first).await?;
        let mut buffer = frame;
        self.client_to_server
            .decrypt_in_place_with_counter(self.received, &mut buffer)
            .map_err(|e| e.to_string())?;
        self.received += 1;
        let unpacked = whatsapp_rust::wacore_binary::util::unpack(&buffer)
            .map_err(|e| e.to_string())?
            .into_owned();
        Ok(unpacked)
    }

    /// Logs the stored device in, then answers the client until it leaves
    /// (or, with `drop_after`, drops the connection that long after the
    /// client's first presence: it is connected by then).
    async fn logged_in(
        &mut self,
        exchange: &Exchange,
        drop_after: Option<Duration>,
    ) -> Result<(), String> {
        let now = whatsapp_api::clock::now_secs().to_string();
        self.send(
            NodeBuilder::new("success")
                .attr("t", now.as_str())
                .attr("lid", OWN_LID)
                .attr("props", "1")
                .build(),
        )
        .await?;
        let mut present: Option<Instant> = None;
        loop {
            if let (Some(after), Some(at)) = (drop_after, present)
                && at.elapsed() >= after
            {
                let _ = self
                    .to_client
                    .send(TransportEvent::Disconnected(DisconnectReason::ReadError(
                        "fake server dropped the connection".into(),
                    )))
                    .await;
                return Ok(());
            }
            while let Ok(node) = exchange.injected.try_recv() {
                self.send(node).await?;
            }
            // A short wait, so injected stanzas go out while the client is quiet.
            let bytes = match tokio::time::timeout(Duration::from_millis(50), self.receive()).await
            {
                Ok(bytes) => bytes?,
                Err(_) => continue,
            };
            let node = whatsapp_rust::wacore_binary::marshal::unmarshal_ref(&bytes)
                .map_err(|e| e.to_string())?;
            match node.tag.as_ref() {
                "iq" => self.answer_iq(&node).await?,
                "presence" => {
                    present.get_or_insert_with(Instant::now);
                    if let Some(kind) = node.get_attr("type") {
                        exchange
                            .presences
                            .lock()
                            .unwrap()
                            .push(kind.as_str().to_string());
                    }
                }
                "receipt" => {
                    let attr = |n: &str| {
                        node.get_attr(n)
                            .map(|v| v.as_str().to_string())
                            .unwrap_or_default()
                    };
                    let mut ids = vec![attr("id")];
                    if let Some(list) = node.get_optional_child("list") {
                        for item in list.get_children_by_tag("item") {
                            if let Some(id) = item.get_attr("id") {
                                ids.push(id.as_str().to_string());
                            }
                        }
                    }
                    exchange
                        .receipts
                        .lock()
                        .unwrap()
                        .push((attr("type"), attr("to"), ids));
                }
                "chatstate" => {
                    let to = node
                        .get_attr("to")
                        .map(|v| v.as_str().to_string())
                        .unwrap_or_default();
                    let state = node
                        .children()
                        .and_then(|c| c.first().map(|c| c.tag.to_string()))
                        .unwrap_or_default();
                    exchange.chatstates.lock().unwrap().push((to, state));
                }
                "message" => {
                    let id = node.get_attr("id").map(|v| v.as_str().to_string());
                    let to = node.get_attr("to").map(|v| v.as_str().to_string());
                    let (Some(id), Some(to)) = (id, to) else {
                        continue;
                    };
                    exchange.messages.lock().unwrap().push(id.clone());
                    let plan = exchange
                        .acks
                        .lock()
                        .unwrap()
                        .pop_front()
                        .unwrap_or(AckPlan::Accept);
                    let ack = NodeBuilder::new("ack")
                        .attr("class", "message")
                        .attr("id", id.as_str())
                        .attr("from", to.as_str())
                        .attr("t", now.as_str());
                    match plan {
                        AckPlan::Accept => self.send(ack.build()).await?,
                        AckPlan::Refuse(code) => self.send(ack.attr("error", code).build()).await?,
                        AckPlan::Silent => {}
                    }
                }
                _ => {}
            }
        }
    }

    /// What the client asks while logging in and sending: device lists and
    /// pre-key bundles get real answers; every other query an empty result.
    async fn answer_iq(&mut self, iq: &NodeRef<'_>) -> Result<(), String> {
        let attr = |name: &str| iq.get_attr(name).map(|v| v.as_str().to_string());
        let (Some(id), kind) = (attr("id"), attr("type")) else {
            return Ok(());
        };
        if kind.as_deref() == Some("result") || kind.as_deref() == Some("error") {
            return Ok(());
        }
        let xmlns = attr("xmlns").unwrap_or_default();
        let result = || {
            NodeBuilder::new("iq")
                .attr("id", id.as_str())
                .attr("type", "result")
                .attr("from", "s.whatsapp.net")
        };
        if let Some(usync) = iq.get_optional_child("usync") {
            let mut users = Vec::new();
            user_jids(usync, &mut users);
            let list = users.iter().map(|jid| {
                let bare = jid.split_once('@').map(|(u, _)| u).unwrap_or(jid);
                // Our own account has the phone (0) and this device (7); a
                // customer, their phone only.
                let ids: &[&str] = if bare.starts_with(OWN_PN) {
                    &["0", "7"]
                } else {
                    &["0"]
                };
                NodeBuilder::new("user")
                    .attr("jid", jid.as_str())
                    .children([NodeBuilder::new("devices")
                        .children([NodeBuilder::new("device-list")
                            .children(
                                ids.iter()
                                    .map(|d| NodeBuilder::new("device").attr("id", *d).build()),
                            )
                            .build()])
                        .build()])
                    .build()
            });
            let answer = result()
                .children([NodeBuilder::new("usync")
                    .children([NodeBuilder::new("list").children(list).build()])
                    .build()])
                .build();
            return self.send(answer).await;
        }
        if xmlns == "encrypt"
            && let Some(key) = iq.get_optional_child("key")
        {
            let mut users = Vec::new();
            user_jids(key, &mut users);
            let bundles: Vec<Node> = users
                .iter()
                .map(|jid| {
                    self.keys
                        .entry(jid.clone())
                        .or_insert_with(DeviceKeys::new)
                        .bundle(jid)
                })
                .collect();
            let answer = result()
                .children([NodeBuilder::new("list").children(bundles).build()])
                .build();
            return self.send(answer).await;
        }
        self.send(result().build()).await?;
        if xmlns == "passive" {
            // Active now: the server says the offline queue is empty.
            self.send(
                NodeBuilder::new("ib")
                    .children([NodeBuilder::new("offline").attr("count", "0").build()])
                    .build(),
            )
            .await?;
        }
        Ok(())
    }
}

fn hook(scenarios: &[Scenario]) -> (TestHook, Arc<AtomicUsize>) {
    let connections = Arc::new(AtomicUsize::new(0));
    let hook = TestHook {
        transport: Arc::new(FakeWhatsApp {
            scenarios: scenarios.to_vec(),
            connections: Arc::clone(&connections),
            exchange: Exchange::default(),
            server_static: key_pair(),
        }),
        // Pinned so the client makes no HTTP request for the current version.
        version: (2, 3000, 1_000_000_000),
        send_timeout: None,
        media_retry_delays: None,
    };
    (hook, connections)
}

pub(crate) fn start(scenarios: &[Scenario]) -> (TestServer, Arc<AtomicUsize>) {
    let (hook, connections) = hook(scenarios);
    (TestServer::start_whatsapp(hook), connections)
}

/// The device's public keys in a QR payload (noise key, identity key): the
/// same keys mean the same stored device.
fn device_keys(code: &str) -> String {
    code.split(',')
        .skip(1)
        .take(2)
        .collect::<Vec<_>>()
        .join(",")
}

/// The current QR payload from the API, once there is one.
pub(crate) fn qr(server: &TestServer) -> Option<String> {
    let r = server.get("/api/v1/qr");
    (r.status == 200).then(|| r.json()["qr"].as_str().unwrap().to_string())
}

#[test]
fn real_client_qr_code_reaches_the_api() {
    let (server, connections) = start(&[Scenario::Qr]);
    let code = eventually(30, "a QR code at /api/v1/qr", || qr(&server));
    // "<ref>,<noise key>,<identity key>,<adv secret>[,<platform>]"
    assert!(code.starts_with("REF-0-A,"), "{code}");
    assert!(code.split(',').count() >= 4, "{code}");
    let r = server.get("/api/v1/qr");
    let expires_in = r.json()["expiresIn"].as_f64().unwrap();
    assert!(expires_in > 0.0 && expires_in <= 60.0, "{}", r.text);

    let status = server.get("/api/v1/status").json();
    assert_eq!(status["qrReady"], true, "{status}");
    assert_eq!(status["connected"], false, "{status}");
    assert_eq!(status["state"], "qr", "{status}");

    let svg = server.get("/api/v1/qr?format=svg");
    assert_eq!(svg.status, 200);
    assert!(svg.text.contains("<svg"), "{}", svg.text);
    assert_eq!(connections.load(Ordering::SeqCst), 1);

    // Graceful shutdown closes the client and stops the thread in time.
    let started = Instant::now();
    server.stop();
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn dropped_connection_is_retried_within_seconds() {
    let (server, connections) = start(&[Scenario::QrThenDrop, Scenario::Qr]);
    eventually(30, "the first connection", || {
        (connections.load(Ordering::SeqCst) >= 1).then_some(())
    });
    let dropped = Instant::now();
    eventually(10, "a second connection after the drop", || {
        (connections.load(Ordering::SeqCst) >= 2).then_some(())
    });
    // The first reconnect comes within ~5 s (1 s by the backoff schedule).
    assert!(
        dropped.elapsed() < Duration::from_secs(6),
        "{:?}",
        dropped.elapsed()
    );
    // A new client (from the same store) shows the new connection's codes.
    let code = eventually(30, "a QR code from the new connection", || {
        qr(&server).filter(|code| code.starts_with("REF-1-A,"))
    });
    assert!(code.split(',').count() >= 4, "{code}");
}

#[test]
fn logged_out_stream_is_not_retried() {
    let (server, connections) = start(&[Scenario::LoggedOut, Scenario::Qr]);
    eventually(30, "state logged_out", || {
        let status = server.get("/api/v1/status").json();
        (status["state"] == "logged_out").then_some(status)
    });
    // Nothing more may happen: watch for a few reconnect periods.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "a logged-out session was retried"
    );
    let status = server.get("/api/v1/status").json();
    assert_eq!(status["state"], "logged_out", "{status}");
    assert_eq!(status["sessionExists"], false, "{status}");
    // The device keys are gone with the store file.
    assert!(!server.dir.0.join("session.db").exists());
    assert_eq!(server.get("/api/v1/qr").status, 404);

    // Asking again starts a new pairing, from a fresh store.
    let r = server.post("/api/v1/session/logout", &serde_json::json!({}));
    assert_eq!(r.status, 200, "{}", r.text);
    let code = eventually(30, "a QR code of the new pairing", || qr(&server));
    assert!(code.starts_with("REF-1-A,"), "{code}");
    assert_eq!(connections.load(Ordering::SeqCst), 2);
    assert!(server.dir.0.join("session.db").exists());
}

#[test]
fn the_device_keys_survive_a_restart() {
    let (first_hook, _) = hook(&[Scenario::Qr]);
    let server = TestServer::start_whatsapp(first_hook);
    let before = device_keys(&eventually(30, "a QR code", || qr(&server)));
    assert!(before.len() > 80, "two base64 keys expected: {before}");
    let dir = server.stop();
    let (second_hook, _) = hook(&[Scenario::Qr]);
    let server = TestServer::start_whatsapp_in(dir, second_hook);
    let after = device_keys(&eventually(30, "a QR code after the restart", || {
        qr(&server)
    }));
    assert_eq!(before, after, "the restarted server made a new device");
}

#[test]
fn logout_command_unlinks_and_stops_reconnecting() {
    let (server, connections) = start(&[Scenario::Qr]);
    let old_keys = device_keys(&eventually(30, "a QR code", || qr(&server)));
    let r = server.post("/api/v1/session/logout", &serde_json::json!({}));
    assert_eq!(r.status, 200, "{}", r.text);
    // Answered once the keys are gone and the sink applied the new state,
    // so the next request sees it.
    assert!(!server.dir.0.join("session.db").exists());
    assert_eq!(server.get("/api/v1/status").json()["state"], "logged_out");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(connections.load(Ordering::SeqCst), 1);

    // A new pairing, asked for right away (as the dashboard's re-pair
    // does), starts from clean keys: a different device.
    let r = server.post("/api/v1/session/pair", &serde_json::json!({}));
    assert_eq!(r.status, 200, "{}", r.text);
    let code = eventually(30, "a QR code of the new pairing", || {
        qr(&server).filter(|code| code.starts_with("REF-1-A,"))
    });
    assert_ne!(
        device_keys(&code),
        old_keys,
        "the old device keys were reused"
    );
}

#[test]
fn replaced_session_stops_instead_of_taking_turns() {
    let (server, connections) = start(&[Scenario::Replaced, Scenario::Qr]);
    let status = eventually(30, "state replaced", || {
        let status = server.get("/api/v1/status").json();
        (status["state"] == "replaced").then_some(status)
    });
    assert!(
        status["lastError"]
            .as_str()
            .unwrap_or("")
            .contains("another client"),
        "{status}"
    );
    assert_eq!(status["connected"], false);
    // Not logged out (the keys stay) and not retried: two copies of one
    // session would otherwise take turns and split the messages.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    assert!(server.dir.0.join("session.db").exists());
    assert_eq!(server.get("/api/v1/status").json()["state"], "replaced");
}

#[test]
fn a_temporary_ban_is_waited_out_not_retried_every_minute() {
    let (server, connections) = start(&[Scenario::Banned(3), Scenario::Qr]);
    let status = eventually(30, "state banned", || {
        let status = server.get("/api/v1/status").json();
        (status["state"] == "banned").then_some(status)
    });
    let banned_at = Instant::now();
    assert!(status["stoppedUntil"].is_string(), "{status}");
    assert!(
        status["lastError"].as_str().unwrap().contains("101"),
        "{status}"
    );
    // Nothing before the ban ends …
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    // … then a new connection.
    eventually(10, "a connection after the ban", || {
        (connections.load(Ordering::SeqCst) >= 2).then_some(())
    });
    assert!(banned_at.elapsed() >= Duration::from_millis(2500));
    eventually(10, "QR codes again", || qr(&server));
}

#[test]
fn an_outdated_client_stops() {
    let (server, connections) = start(&[Scenario::Outdated, Scenario::Qr]);
    let status = eventually(30, "state client_outdated", || {
        let status = server.get("/api/v1/status").json();
        (status["state"] == "client_outdated").then_some(status)
    });
    assert!(
        status["lastError"].as_str().unwrap().contains("upgrade"),
        "{status}"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

#[test]
fn a_connection_that_drops_after_logging_in_still_backs_off() {
    let exchange = Exchange::default();
    let (_server, _, connections) = paired_server(
        &[Scenario::LoggedInThenDrop],
        &exchange,
        Duration::from_secs(5),
    );
    // Each connection logs in and drops right after. The backoff
    // restarts only after 30 s of a stable connection, so the pauses keep
    // growing (1, 2, 4 s …) instead of a reconnect every second.
    let mut at = Vec::new();
    for n in 1..=4 {
        eventually(30, &format!("connection {n}"), || {
            (connections.load(Ordering::SeqCst) >= n).then_some(())
        });
        at.push(Instant::now());
    }
    let gap = at[3] - at[2];

    assert!(
        gap >= Duration::from_millis(3500),
        "{:?}",
        at.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>()
    );
}

#[test]
fn the_linked_device_goes_unavailable_once_connected() {
    let exchange = Exchange::default();
    let (_server, _) = logged_in(&exchange, Duration::from_secs(5));
    // The crate says "available" while connecting; the last word must be
    // "unavailable", or the owner's phone stops showing notifications.
    eventually(10, "an unavailable presence last", || {
        let presences = exchange.presences.lock().unwrap().clone();
        (presences.last().map(String::as_str) == Some("unavailable")).then_some(())
    });
}

#[test]
fn a_call_nobody_answers_leaves_a_missed_call_row() {
    let exchange = Exchange::default();
    let (server, _) = logged_in(&exchange, Duration::from_secs(5));
    let call = |child: Node| {
        NodeBuilder::new("call")
            .attr("from", CUSTOMER)
            .attr("id", format!("STANZA-{}", whatsapp_api::auth::uuid_v4()))
            .attr("t", whatsapp_api::clock::now_secs().to_string())
            .children([child])
            .build()
    };
    let offer = |id: &str, video: bool| {
        let mut children = Vec::new();
        if video {
            children.push(NodeBuilder::new("video").build());
        }
        call(
            NodeBuilder::new("offer")
                .attr("call-id", id)
                .attr("call-creator", CUSTOMER)
                .children(children)
                .build(),
        )
    };
    let terminate = |id: &str, reason: Option<&str>| {
        let mut node = NodeBuilder::new("terminate")
            .attr("call-id", id)
            .attr("call-creator", CUSTOMER);
        if let Some(reason) = reason {
            node = node.attr("reason", reason);
        }
        call(node.build())
    };
    for node in [
        offer("VOICE-1", false),
        terminate("VOICE-1", None),
        offer("VIDEO-1", true),
        terminate("VIDEO-1", Some("timeout")),
        // Answered on the phone: not missed.
        offer("TAKEN-1", false),
        terminate("TAKEN-1", Some("accepted_elsewhere")),
    ] {
        exchange.inject.send_blocking(node).unwrap();
    }
    let texts = eventually(30, "two missed-call rows", || {
        let page = server
            .get(&format!("/api/v1/conversations/{CUSTOMER}/messages"))
            .json();
        let texts: Vec<String> = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["message"].as_str().unwrap().to_string())
            .filter(|t| t.starts_with("[Missed"))
            .collect();
        (texts.len() >= 2).then_some(texts)
    });
    assert_eq!(texts, ["[Missed voice call]", "[Missed video call]"]);
    let unread = server.get("/api/v1/inbox/unread").json();
    assert_eq!(unread["pagination"]["total"], 3, "{unread}");
}

/// A data dir whose session store holds a paired device (as a pairing would
/// have left it) and whose inbox holds one message from `CUSTOMER`; the
/// message's public id.
fn paired_dir() -> (Arc<crate::support::TempDir>, String) {
    use whatsapp_rust::wacore::store::Device;
    use whatsapp_rust::wacore::store::traits::DeviceStore;
    let dir = Arc::new(crate::support::TempDir::new("wa-paired"));
    let session = dir.0.join("session.db");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let store = whatsapp_rust::prelude::SqliteStore::new(&session.to_string_lossy())
                .await
                .unwrap();
            let mut device = Device::new();
            device.pn = Some(OWN_DEVICE.parse().unwrap());
            device.lid = Some(OWN_LID.parse().unwrap());
            device.push_name = "Test Shop".into();
            store.save(&device).await.unwrap();
        });
    let mut conn = whatsapp_api::db::connect(&dir.0.join("whatsapp-api.db")).unwrap();
    whatsapp_api::db::migrate(&conn).unwrap();
    let question = whatsapp_api::wa::IncomingMessage {
        wa_id: "3EB0QUESTION".into(),
        chat: CUSTOMER.into(),
        sender: CUSTOMER.into(),
        text: "is my order on its way?".into(),
        ..Default::default()
    };
    let tx = conn.transaction().unwrap();
    let whatsapp_api::db::Received::New(row) =
        whatsapp_api::db::store_received(&tx, "question", &question, 1_700_000_000).unwrap()
    else {
        panic!("stored once");
    };
    tx.commit().unwrap();
    (dir, row.id)
}

/// A paired server against the fake server's `scenarios`; the inbox
/// message's public id and the connection counter.
fn paired_server(
    scenarios: &[Scenario],
    exchange: &Exchange,
    send_timeout: Duration,
) -> (TestServer, String, Arc<AtomicUsize>) {
    let (dir, question) = paired_dir();
    let connections = Arc::new(AtomicUsize::new(0));
    let hook = TestHook {
        transport: Arc::new(FakeWhatsApp {
            scenarios: scenarios.to_vec(),
            connections: Arc::clone(&connections),
            exchange: exchange.clone(),
            server_static: key_pair(),
        }),
        version: (2, 3000, 1_000_000_000),
        send_timeout: Some(send_timeout),
        media_retry_delays: Some(&QUICK_MEDIA_RETRIES),
    };
    (
        TestServer::start_whatsapp_in(dir, hook),
        question,
        connections,
    )
}

/// A paired server, logged in by the fake server; the inbox message's id.
fn logged_in(exchange: &Exchange, send_timeout: Duration) -> (TestServer, String) {
    let (server, question, _) = paired_server(&[Scenario::LoggedIn], exchange, send_timeout);
    eventually(60, "state connected", || {
        (server.get("/api/v1/status").json()["state"] == "connected").then_some(())
    });
    (server, question)
}

/// Replies to the stored question with an Idempotency-Key.
fn reply(server: &TestServer, id: &str, key: &str) -> crate::support::Resp {
    let body = serde_json::to_vec(&serde_json::json!({ "message": "yes, today" })).unwrap();
    server.request(
        "POST",
        &format!("/api/v1/messages/{id}/reply"),
        &[
            ("X-API-Key", crate::support::KEY),
            ("Content-Type", "application/json"),
            ("Idempotency-Key", key),
        ],
        Some(&body),
    )
}

/// The outgoing rows of the customer's chat.
fn replies(server: &TestServer) -> Vec<serde_json::Value> {
    let chat = server
        .get(&format!("/api/v1/conversations/{CUSTOMER}/messages"))
        .json();
    chat["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] == "outgoing")
        .cloned()
        .collect()
}

#[test]
fn a_send_retried_after_a_timeout_reuses_its_id() {
    let exchange = Exchange::default();
    // WhatsApp's acknowledgement of the first stanza never comes.
    exchange.acks.lock().unwrap().push_back(AckPlan::Silent);
    let (server, question) = logged_in(&exchange, Duration::from_secs(2));
    let first = reply(&server, &question, "order-7");
    assert_eq!(first.status, 500, "{}", first.text);
    let sent = exchange.messages.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "the stanza left: {sent:?}");
    // Kept, pending: it may well have reached the customer.
    let rows = replies(&server);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["delivery_status"], "pending");
    assert_eq!(rows[0]["wa_id"], sent[0].as_str());
    // The client retries with its key: the same message, under the same id
    // (WhatsApp keeps one message per id), is sent again and acknowledged.
    let second = reply(&server, &question, "order-7");
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(second.json()["waId"], sent[0].as_str());
    let sent = exchange.messages.lock().unwrap().clone();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0], sent[1], "a retry must reuse the message id");
    let rows = replies(&server);
    assert_eq!(rows.len(), 1, "one row for the reply: {rows:?}");
    assert_eq!(rows[0]["delivery_status"], "sent");
    assert_eq!(
        server.get(&format!("/api/v1/messages/{question}")).json()["reply_status"],
        "replied"
    );
}

/// Read receipts, reactions and the typing state leave the real client as
/// WhatsApp's stanzas: a receipt of type read naming the message, a message
/// stanza for the reaction, a chat state.
#[test]
fn read_marks_reactions_and_typing_reach_whatsapp() {
    let exchange = Exchange::default();
    let (server, question) = logged_in(&exchange, Duration::from_secs(10));
    let r = server.patch(
        &format!("/api/v1/messages/{question}/status"),
        &serde_json::json!({ "status": "read" }),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let receipts = eventually(10, "the read receipt", || {
        let r = exchange.receipts.lock().unwrap().clone();
        let read: Vec<_> = r.into_iter().filter(|(t, _, _)| t == "read").collect();
        (!read.is_empty()).then_some(read)
    });
    assert_eq!(
        receipts,
        [(
            "read".to_string(),
            CUSTOMER.to_string(),
            vec!["3EB0QUESTION".to_string()]
        )]
    );
    let r = server.post(
        &format!("/api/v1/messages/{question}/react"),
        &serde_json::json!({ "emoji": "👍" }),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        exchange.messages.lock().unwrap().len(),
        1,
        "the reaction's stanza"
    );
    let m = server.get(&format!("/api/v1/messages/{question}")).json();
    assert_eq!(m["reactions"][0]["sender_jid"], "me");
    for typing in [true, false] {
        let r = server.post(
            &format!("/api/v1/conversations/{CUSTOMER}/typing"),
            &serde_json::json!({ "typing": typing }),
        );
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let states = eventually(10, "both chat states", || {
        let s = exchange.chatstates.lock().unwrap().clone();
        (s.len() >= 2).then_some(s)
    });
    assert_eq!(
        states,
        [
            (CUSTOMER.to_string(), "composing".to_string()),
            (CUSTOMER.to_string(), "paused".to_string())
        ]
    );
    // Marked once: marking it read again sends no second receipt.
    server.patch(
        &format!("/api/v1/messages/{question}/status"),
        &serde_json::json!({ "status": "replied" }),
    );
    let reads = exchange
        .receipts
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _, _)| t == "read")
        .count();
    assert_eq!(reads, 1);
}

#[test]
fn a_send_whatsapp_refuses_ends_failed() {
    let exchange = Exchange::default();
    exchange
        .acks
        .lock()
        .unwrap()
        .push_back(AckPlan::Refuse("479"));
    let (server, question) = logged_in(&exchange, Duration::from_secs(10));
    let receiver = crate::support::WebhookReceiver::start();
    server.post(
        "/api/v1/webhooks",
        &serde_json::json!({ "url": receiver.url, "events": ["message.status", "message.sent"] }),
    );
    let answer = reply(&server, &question, "order-8");
    assert_eq!(answer.status, 500, "{}", answer.text);
    let sent = exchange.messages.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    let rows = replies(&server);
    assert_eq!(rows[0]["delivery_status"], "failed");
    assert_eq!(rows[0]["wa_id"], sent[0].as_str());
    let status = receiver.wait_for(1, 10)[0].json();
    assert_eq!(status["event"], "message.status");
    assert_eq!(status["data"]["status"], "failed");
    assert_eq!(status["data"]["waId"], sent[0].as_str());
    assert!(status["data"]["error"].as_str().unwrap().contains("479"));
    // Not answered: the question is still waiting.
    assert_eq!(
        server.get(&format!("/api/v1/messages/{question}")).json()["reply_status"],
        "unread"
    );
}

#[test]
fn media_a_restart_cut_short_is_fetched_when_the_connection_returns() {
    let receiver = crate::support::WebhookReceiver::start();
    let (dir, _) = paired_dir();
    // A photo stored just before the server stopped: its media never came.
    let photo = wa::Message {
        image_message: MessageField::some(wa::message::ImageMessage {
            mimetype: Some("image/jpeg".into()),
            direct_path: Some("/v/t62.7118-24/photo.enc".into()),
            file_length: Some(1234),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut conn = whatsapp_api::db::connect(&dir.0.join("whatsapp-api.db")).unwrap();
    whatsapp_api::db::upsert_webhook(
        &conn,
        &whatsapp_api::db::Webhook {
            id: "hook".into(),
            url: receiver.url.clone(),
            events: "message.received".into(),
            secret: None,
            active: true,
            created_at: 0,
            updated_at: 0,
        },
    )
    .unwrap();
    let stored = whatsapp_api::wa::IncomingMessage {
        wa_id: "3EB0PHOTO".into(),
        chat: CUSTOMER.into(),
        sender: CUSTOMER.into(),
        text: "[Image]".into(),
        raw: Some(photo.encode_to_vec()),
        media: Some(whatsapp_api::wa::MediaInfo {
            kind: "image".into(),
            mime: Some("image/jpeg".into()),
            size: Some(1234),
            ..Default::default()
        }),
        ..Default::default()
    };
    let tx = conn.transaction().unwrap();
    whatsapp_api::db::store_received(&tx, "photo", &stored, 1_700_000_100).unwrap();
    tx.commit().unwrap();
    drop(conn);
    let exchange = Exchange::default();
    let hook = TestHook {
        transport: Arc::new(FakeWhatsApp {
            scenarios: vec![Scenario::LoggedIn],
            connections: Arc::new(AtomicUsize::new(0)),
            exchange,
            server_static: key_pair(),
        }),
        version: (2, 3000, 1_000_000_000),
        send_timeout: None,
        media_retry_delays: Some(&QUICK_MEDIA_RETRIES),
    };
    let server = TestServer::start_whatsapp_in(dir, hook);
    // Once connected, the download is tried again (offline it cannot work:
    // the fake server hands out no media host), and the message is announced
    // with the reason its file is missing.
    let row = eventually(60, "the media settled", || {
        let m = server.get("/api/v1/messages/photo").json();
        m["media_error"].is_string().then_some(m)
    });
    assert!(
        row["media_error"]
            .as_str()
            .unwrap()
            .starts_with("download failed"),
        "{row}"
    );
    assert_eq!(row["media_url"], serde_json::Value::Null);
    let announced = receiver.wait_for(1, 30)[0].json();
    assert_eq!(announced["event"], "message.received");
    assert_eq!(announced["data"]["id"], "photo");
}
