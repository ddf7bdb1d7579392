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
use whatsapp_rust::wacore_binary::consts::{NOISE_PATTERN_XX, WA_CONN_HEADER};
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

/// What a test scripts and sees of the logged-in exchange.
#[derive(Clone, Default)]
struct Exchange {
    /// How to answer the message stanzas, in order (then: accept).
    acks: Arc<Mutex<VecDeque<AckPlan>>>,
    /// The ids of the message stanzas the client sent, in order.
    messages: Arc<Mutex<Vec<String>>>,
}

/// Counts connections; connection n plays `scenarios[n]` (the last one
/// repeats).
struct FakeWhatsApp {
    scenarios: Vec<Scenario>,
    connections: Arc<AtomicUsize>,
    exchange: Exchange,
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
        tokio::spawn(async move {
            if let Err(e) = serve(n, scenario, from_client, to_client, exchange).await {
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

async fn serve(
    connection: usize,
    scenario: Scenario,
    from_client: async_channel::Receiver<Bytes>,
    to_client: async_channel::Sender<TransportEvent>,
    exchange: Exchange,
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let mut decoder = FrameDecoder::new();
    let mut first = true;
    let _ = to_client.send(TransportEvent::Connected).await;

    // ClientHello → ServerHello (Noise XX, responder side).
    let hello = next_frame(&from_client, &mut decoder, &mut first).await?;
    let hello = wa::HandshakeMessage::decode_from_slice(&hello).map_err(|e| err(&e))?;
    let client_ephemeral: Vec<u8> = hello
        .client_hello
        .into_option()
        .and_then(|h| h.ephemeral)
        .ok_or("no client ephemeral key")?;
    let (server_static, server_ephemeral) = (key_pair(), key_pair());
    let static_public = server_static.public_key.public_key_bytes().to_vec();
    let ephemeral_public = server_ephemeral.public_key.public_key_bytes().to_vec();
    let mut noise = NoiseHandshake::new(NOISE_PATTERN_XX, &WA_CONN_HEADER).map_err(|e| err(&e))?;
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
    let server_hello = wa::HandshakeMessage {
        server_hello: MessageField::some(wa::handshake_message::ServerHello {
            ephemeral: Some(ephemeral_public),
            r#static: Some(encrypted_static),
            payload: Some(encrypted_chain),
            ..Default::default()
        }),
        ..Default::default()
    };
    let framed = encode_frame(&server_hello.encode_to_vec(), None).map_err(|e| err(&e))?;
    to_client
        .send(TransportEvent::DataReceived(framed.into()))
        .await
        .map_err(|e| err(&e))?;

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
    // Named from the initiator's view: (client→server, server→client).
    let (client_to_server, server_to_client) = noise.finish().map_err(|e| err(&e))?;
    if let Scenario::LoggedIn = scenario {
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
        return conn.logged_in(&exchange).await;
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
        Scenario::LoggedIn => unreachable!("served above"),
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

    /// Logs the stored device in, then answers the client until it leaves.
    async fn logged_in(&mut self, exchange: &Exchange) -> Result<(), String> {
        let now = whatsapp_api::clock::now_secs().to_string();
        self.send(
            NodeBuilder::new("success")
                .attr("t", now.as_str())
                .attr("lid", OWN_LID)
                .attr("props", "1")
                .build(),
        )
        .await?;
        loop {
            let bytes = self.receive().await?;
            let node = whatsapp_rust::wacore_binary::marshal::unmarshal_ref(&bytes)
                .map_err(|e| e.to_string())?;
            match node.tag.as_ref() {
                "iq" => self.answer_iq(&node).await?,
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
        }),
        // Pinned so the client makes no HTTP request for the current version.
        version: (2, 3000, 1_000_000_000),
        send_timeout: None,
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
    // Answered once the keys are gone; the sink applies the state just after.
    assert!(!server.dir.0.join("session.db").exists());
    eventually(5, "state logged_out", || {
        (server.get("/api/v1/status").json()["state"] == "logged_out").then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(connections.load(Ordering::SeqCst), 1);

    // A new pairing starts from clean keys: a different device.
    let r = server.post("/api/v1/session/logout", &serde_json::json!({}));
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
fn replaced_session_backs_off_to_the_slowest_pace() {
    let (server, connections) = start(&[Scenario::Replaced, Scenario::Qr]);
    let status = eventually(30, "state disconnected", || {
        let status = server.get("/api/v1/status").json();
        (status["state"] == "disconnected").then_some(status)
    });
    assert!(
        status["lastError"]
            .as_str()
            .unwrap_or("")
            .contains("another client"),
        "{status}"
    );
    // Not logged out: the keys stay, and it retries, but only after 60 s.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    assert!(server.dir.0.join("session.db").exists());
}

/// A server whose store holds a paired device (as a pairing would have left
/// it) and whose inbox holds one message from `CUSTOMER`, against the fake
/// server in its logged-in scenario; the message's public id. Sends wait
/// `send_timeout` for WhatsApp's acknowledgement.
fn logged_in(exchange: &Exchange, send_timeout: Duration) -> (TestServer, String) {
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
    drop(conn);
    let connections = Arc::new(AtomicUsize::new(0));
    let hook = TestHook {
        transport: Arc::new(FakeWhatsApp {
            scenarios: vec![Scenario::LoggedIn],
            connections,
            exchange: exchange.clone(),
        }),
        version: (2, 3000, 1_000_000_000),
        send_timeout: Some(send_timeout),
    };
    let server = TestServer::start_whatsapp_in(dir, hook);
    eventually(60, "state connected", || {
        (server.get("/api/v1/status").json()["state"] == "connected").then_some(())
    });
    (server, row.id)
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
