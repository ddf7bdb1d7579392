//! Sending: a reply, waiting for WhatsApp's server acknowledgement; a
//! reaction; read receipts; the typing state.

use super::lock;
use super::translate;
use crate::wa::{COMMAND_TIMEOUT, OutgoingMedia, Quote, Target, WaEvent};
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
    pub(super) media: Option<OutgoingMedia>,
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
    let deadline = tokio::time::Instant::now() + limit;
    let message = match &out.media {
        Some(media) => {
            let uploading = upload(client, media);
            let uploaded = match tokio::time::timeout_at(deadline, uploading).await {
                Ok(result) => result,
                Err(_) => Err("the file did not upload in time".to_string()),
            };
            match uploaded {
                Ok(upload) => media_message(upload, media, &out.text, context),
                // Nothing went out: the reply is refused, like a send WhatsApp refuses.
                Err(e) => return record_outcome(events, out.wa_id, Err(e)).await,
            }
        }
        None => match context {
            Some(context) => proto::Message::text_with_context(out.text, context),
            None => proto::Message::text(out.text),
        },
    };
    let mut options = SendOptions::default().with_message_id(out.wa_id.clone());
    if let Some(seconds) = out.expiration {
        options = options.with_ephemeral_expiration(seconds);
    }
    let (ack_tx, ack_rx) = oneshot::channel();
    // Registered before sending: the acknowledgement can beat the send's return.
    lock(acks).insert(out.wa_id.clone(), ack_tx);
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
    record_outcome(events, out.wa_id, outcome).await
}

/// Hands the outcome of a send to the sink and waits until it is applied;
/// then the outcome.
async fn record_outcome(
    events: &Sender<WaEvent>,
    wa_id: String,
    outcome: Result<(), String>,
) -> Result<(), String> {
    let events = events.clone();
    let recorded = outcome.clone();
    let applied = tokio::task::spawn_blocking(move || {
        let (done, applied) = bounded(1);
        events
            .send(WaEvent::Sent {
                wa_id,
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

/// What the crate's upload gave back: where the encrypted file is and the
/// keys the recipient needs.
pub(super) struct Uploaded {
    url: String,
    direct_path: String,
    media_key: Vec<u8>,
    file_sha256: Vec<u8>,
    file_enc_sha256: Vec<u8>,
    file_length: u64,
    media_key_timestamp: i64,
    streaming_sidecar: Option<Vec<u8>>,
}

/// Encrypts and uploads a stored file through the crate, never whole in
/// memory: on the blocking pool, the file is encrypted in pieces into a
/// nameless temporary file beside it (`encrypt_to_file`), which the crate's
/// `upload_stream` then sends from disk (each attempt reading it again
/// from where the last one stopped). The temporary file is gone once the
/// upload ends, however it ends.
async fn upload(client: &Arc<Client>, media: &OutgoingMedia) -> Result<Uploaded, String> {
    use whatsapp_rust::download::MediaType;
    let kind = match media.kind.as_str() {
        "image" => MediaType::Image,
        "video" => MediaType::Video,
        "audio" | "voice" => MediaType::Audio,
        _ => MediaType::Document,
    };
    let path = media.path.clone();
    let (ciphertext, info) = tokio::task::spawn_blocking(move || encrypt_to_file(&path, kind))
        .await
        .map_err(|e| format!("encrypting the file failed: {e}"))??;
    let r = client
        .upload_stream(ciphertext, info, kind)
        .await
        .map_err(|e| format!("uploading the file failed: {e}"))?;
    Ok(Uploaded {
        url: r.url,
        direct_path: r.direct_path,
        media_key: r.media_key.to_vec(),
        file_sha256: r.file_sha256.to_vec(),
        file_enc_sha256: r.file_enc_sha256.to_vec(),
        file_length: r.file_length,
        media_key_timestamp: r.media_key_timestamp,
        streaming_sidecar: r.streaming_sidecar,
    })
}

/// A file's ciphertext, in a nameless temporary file.
struct Ciphertext {
    file: std::fs::File,
    len: u64,
}

impl whatsapp_rust::wacore::upload::UploadSource for Ciphertext {
    fn len(&self) -> u64 {
        self.len
    }

    fn reader_from(&self, offset: u64) -> std::io::Result<Box<dyn std::io::Read + Send>> {
        Ok(Box::new(ReadAt {
            file: self.file.try_clone()?,
            at: offset,
        }))
    }
}

/// Reads a file from `at` on, by position: readers of one file never move
/// each other.
struct ReadAt {
    file: std::fs::File,
    at: u64,
}

impl std::io::Read for ReadAt {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = std::os::unix::fs::FileExt::read_at(&self.file, buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// Encrypts the file at `path` for WhatsApp's CDN in 64 KiB pieces into a
/// nameless temporary file in its directory. Blocking file I/O.
fn encrypt_to_file(
    path: &std::path::Path,
    kind: whatsapp_rust::download::MediaType,
) -> Result<
    (
        Ciphertext,
        whatsapp_rust::wacore::upload::EncryptedMediaInfo,
    ),
    String,
> {
    use std::io::{BufReader, BufWriter};
    let plain = std::fs::File::open(path).map_err(|e| format!("reading the file failed: {e}"))?;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let failed = |e: &dyn std::fmt::Display| format!("encrypting the file failed: {e}");
    let file = crate::media::nameless_file(dir).map_err(|e| failed(&e))?;
    let info = whatsapp_rust::wacore::upload::encrypt_media_streaming(
        BufReader::with_capacity(64 * 1024, plain),
        BufWriter::with_capacity(64 * 1024, &file),
        kind,
    )
    .map_err(|e| failed(&e))?;
    let len = file.metadata().map_err(|e| failed(&e))?.len();
    Ok((Ciphertext { file, len }, info))
}

/// The message that carries an uploaded file: its kind's message with the
/// caption (audio has none), the quote and a document's file name; a voice
/// note is `ptt`.
pub(super) fn media_message(
    u: Uploaded,
    media: &OutgoingMedia,
    caption: &str,
    context: Option<proto::ContextInfo>,
) -> proto::Message {
    use whatsapp_rust::buffa::MessageField;
    let caption = (!caption.is_empty()).then(|| caption.to_string());
    let context_info = context.map(MessageField::some).unwrap_or_default();
    let mimetype = Some(media.mime.clone());
    match media.kind.as_str() {
        "image" => proto::Message {
            image_message: MessageField::some(proto::message::ImageMessage {
                url: Some(u.url),
                direct_path: Some(u.direct_path),
                media_key: Some(u.media_key),
                file_sha256: Some(u.file_sha256),
                file_enc_sha256: Some(u.file_enc_sha256),
                file_length: Some(u.file_length),
                media_key_timestamp: Some(u.media_key_timestamp),
                mimetype,
                caption,
                context_info,
                ..Default::default()
            }),
            ..Default::default()
        },
        "video" => proto::Message {
            video_message: MessageField::some(proto::message::VideoMessage {
                url: Some(u.url),
                direct_path: Some(u.direct_path),
                media_key: Some(u.media_key),
                file_sha256: Some(u.file_sha256),
                file_enc_sha256: Some(u.file_enc_sha256),
                file_length: Some(u.file_length),
                media_key_timestamp: Some(u.media_key_timestamp),
                streaming_sidecar: u.streaming_sidecar,
                mimetype,
                caption,
                context_info,
                ..Default::default()
            }),
            ..Default::default()
        },
        "audio" | "voice" => proto::Message {
            audio_message: MessageField::some(proto::message::AudioMessage {
                url: Some(u.url),
                direct_path: Some(u.direct_path),
                media_key: Some(u.media_key),
                file_sha256: Some(u.file_sha256),
                file_enc_sha256: Some(u.file_enc_sha256),
                file_length: Some(u.file_length),
                media_key_timestamp: Some(u.media_key_timestamp),
                streaming_sidecar: u.streaming_sidecar,
                mimetype,
                ptt: Some(media.kind == "voice"),
                context_info,
                ..Default::default()
            }),
            ..Default::default()
        },
        _ => proto::Message {
            document_message: MessageField::some(proto::message::DocumentMessage {
                url: Some(u.url),
                direct_path: Some(u.direct_path),
                media_key: Some(u.media_key),
                file_sha256: Some(u.file_sha256),
                file_enc_sha256: Some(u.file_enc_sha256),
                file_length: Some(u.file_length),
                media_key_timestamp: Some(u.media_key_timestamp),
                mimetype,
                file_name: media.file_name.clone(),
                title: media.file_name.clone(),
                caption,
                context_info,
                ..Default::default()
            }),
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uploaded() -> Uploaded {
        Uploaded {
            url: "https://mmg.whatsapp.net/x".into(),
            direct_path: "/v/x".into(),
            media_key: vec![1; 32],
            file_enc_sha256: vec![2; 32],
            file_sha256: vec![3; 32],
            file_length: 4,
            media_key_timestamp: 1_700_000_000,
            streaming_sidecar: None,
        }
    }
    fn file(kind: &str, mime: &str, name: Option<&str>) -> OutgoingMedia {
        OutgoingMedia {
            kind: kind.into(),
            path: "/nonexistent".into(),
            mime: mime.into(),
            file_name: name.map(str::to_string),
            size: 4,
            sha256: "00".into(),
        }
    }

    #[test]
    fn a_file_is_encrypted_to_disk_as_the_crate_would_in_memory() {
        use std::io::Read;
        use whatsapp_rust::download::MediaType;
        use whatsapp_rust::wacore::upload::{UploadSource, encrypt_media_with_key};
        let dir = std::env::temp_dir().join(format!("wa-send-{}", crate::auth::uuid_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("clip.mp4");
        let plain: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &plain).unwrap();
        let (source, info) = encrypt_to_file(&path, MediaType::Video).unwrap();
        // Only the plain file has a name: the ciphertext has none.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let whole =
            encrypt_media_with_key(&plain, MediaType::Video, Some(&info.media_key)).unwrap();
        assert_eq!(source.len(), whole.data_to_upload.len() as u64);
        assert_eq!(info.file_sha256, whole.file_sha256);
        assert_eq!(info.file_enc_sha256, whole.file_enc_sha256);
        assert_eq!(info.file_length, plain.len() as u64);
        assert_eq!(info.streaming_sidecar, whole.streaming_sidecar);
        // A retry resumes anywhere, and readers do not move each other.
        let mut first = source.reader_from(0).unwrap();
        let mut resumed = source.reader_from(100_000).unwrap();
        let mut head = vec![0; 10];
        first.read_exact(&mut head).unwrap();
        let mut rest = Vec::new();
        resumed.read_to_end(&mut rest).unwrap();
        assert_eq!(head, whole.data_to_upload[..10]);
        assert_eq!(rest, whole.data_to_upload[100_000..]);
        assert!(encrypt_to_file(&dir.join("missing"), MediaType::Image).is_err());
        drop((source, first, resumed));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn each_kind_becomes_its_message_with_caption_quote_and_name() {
        let quote = whatsapp_rust::proto_helpers::build_quote_context(
            "Q1".to_string(),
            "15551234567@s.whatsapp.net".to_string(),
            &proto::Message::text("where is it?"),
        );
        let m = media_message(
            uploaded(),
            &file("image", "image/png", None),
            "here it is",
            Some(quote.clone()),
        );
        let image = m.image_message.as_option().unwrap();
        assert_eq!(image.caption.as_deref(), Some("here it is"));
        assert_eq!(image.mimetype.as_deref(), Some("image/png"));
        assert_eq!(image.file_length, Some(4));
        assert_eq!(
            image.context_info.as_option().unwrap().stanza_id.as_deref(),
            Some("Q1")
        );
        let m = media_message(
            uploaded(),
            &file("document", "application/pdf", Some("invoice.pdf")),
            "",
            None,
        );
        let doc = m.document_message.as_option().unwrap();
        assert_eq!(doc.file_name.as_deref(), Some("invoice.pdf"));
        assert_eq!(doc.caption, None);
        let m = media_message(
            uploaded(),
            &file("voice", "audio/ogg; codecs=opus", None),
            "",
            None,
        );
        assert_eq!(m.audio_message.as_option().unwrap().ptt, Some(true));
        let m = media_message(uploaded(), &file("audio", "audio/mpeg", None), "", None);
        assert_eq!(m.audio_message.as_option().unwrap().ptt, Some(false));
        let m = media_message(uploaded(), &file("video", "video/mp4", None), "clip", None);
        assert_eq!(
            m.video_message.as_option().unwrap().caption.as_deref(),
            Some("clip")
        );
    }
}
