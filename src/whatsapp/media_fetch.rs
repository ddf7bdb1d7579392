//! Fetching the media of stored messages in the background: bounded
//! attempts, retries, and WhatsApp's re-upload for expired files.

use super::translate;
use crate::media;
use crate::wa::{COMMAND_TIMEOUT, MediaInfo, MediaSpec, WaEvent};
use crossbeam_channel::{Sender, bounded};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use whatsapp_rust::download::{DownloadParams, Downloadable};
use whatsapp_rust::http::HttpStatusError;
use whatsapp_rust::prelude::{Client, Jid, MessageInfo, wa as proto};
use whatsapp_rust::wacore_binary::jid::JidExt;
use whatsapp_rust::{MediaRetryResult, MediaReuploadRequest};

/// What a media download needs: the stored row, the message's media fields
/// and where it was received (for a re-upload request).
pub(super) struct MediaJob {
    /// Public id of the row the file belongs to.
    pub(super) id: String,
    pub(super) message: proto::Message,
    pub(super) spec: MediaSpec,
    pub(super) wa_id: String,
    pub(super) chat: Jid,
    pub(super) sender: Jid,
    pub(super) from_me: bool,
}

impl MediaJob {
    pub(super) fn new(
        id: String,
        info: &MessageInfo,
        message: proto::Message,
        spec: MediaSpec,
    ) -> MediaJob {
        MediaJob {
            id,
            message,
            spec,
            wa_id: info.id.to_string(),
            chat: info.source.chat.clone(),
            sender: info.source.sender.clone(),
            from_me: info.source.is_from_me,
        }
    }
}

/// Fetches media in the background after the message is stored: a few at a
/// time, each download bounded by the HTTP client's connect and per-read
/// timeouts, retried, and recovered with WhatsApp's media re-upload when the
/// file has expired on its servers. The result goes to the sink, which
/// records it and only then announces the message to webhooks.
#[derive(Clone)]
pub(super) struct MediaFetcher {
    pub(super) events: Sender<WaEvent>,
    pub(super) dir: PathBuf,
    pub(super) max_bytes: u64,
    /// Downloads at once; the rest wait their turn.
    pub(super) slots: Arc<tokio::sync::Semaphore>,
    /// Rows with a download running (the sweep at connect skips them).
    pub(super) running: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// Pauses before each attempt (`MEDIA_RETRY_DELAYS`).
    pub(super) delays: &'static [Duration],
}

/// Pauses before the download attempts of one file.
const MEDIA_RETRY_DELAYS: [Duration; 3] = [
    Duration::ZERO,
    Duration::from_secs(10),
    Duration::from_secs(60),
];
/// Downloads running at once.
const MEDIA_SLOTS: usize = 4;
/// A bound on one whole attempt, beyond the per-read timeouts (a 64 MiB
/// file at 100 KB/s takes about 11 minutes).
const MEDIA_ATTEMPT_LIMIT: Duration = Duration::from_secs(20 * 60);

impl MediaFetcher {
    pub(super) fn new(events: Sender<WaEvent>, dir: PathBuf, max_bytes: u64) -> MediaFetcher {
        MediaFetcher {
            events,
            dir,
            max_bytes,
            slots: Arc::new(tokio::sync::Semaphore::new(MEDIA_SLOTS)),
            running: Default::default(),
            delays: &MEDIA_RETRY_DELAYS,
        }
    }

    /// Starts a download unless one runs for that row already.
    pub(super) fn spawn(&self, client: Arc<Client>, job: MediaJob) {
        {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            if !running.insert(job.id.clone()) {
                return;
            }
        }
        let fetcher = self.clone();
        tokio::spawn(async move {
            let id = job.id.clone();
            let media = match fetcher.slots.clone().acquire_owned().await {
                Ok(_slot) => fetcher.fetch(&client, job).await,
                Err(_) => return,
            };
            let events = fetcher.events.clone();
            let sent = id.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let (done, applied) = bounded(1);
                if events
                    .send(WaEvent::Media {
                        id: sent,
                        media: Box::new(media),
                        done: Some(done),
                    })
                    .is_ok()
                {
                    let _ = applied.recv_timeout(COMMAND_TIMEOUT);
                }
            })
            .await;
            fetcher
                .running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        });
    }

    /// Every attempt at one file; the last failure's reason when none works.
    async fn fetch(&self, client: &Arc<Client>, job: MediaJob) -> MediaInfo {
        let spec = &job.spec;
        let failed = |error: String| MediaInfo {
            kind: spec.kind.to_string(),
            mime: spec.mime.clone(),
            size: spec.announced_len,
            error: Some(error),
            ..Default::default()
        };
        let Some(original) = translate::downloadable(&job.message) else {
            return failed("the message carries no downloadable media".into());
        };
        let mut reuploaded: Option<DownloadParams> = None;
        let mut last_error = String::new();
        for delay in self.delays {
            tokio::time::sleep(*delay).await;
            let source: &dyn Downloadable = match &reuploaded {
                Some(params) => params,
                None => original,
            };
            match self.attempt(client, source, spec).await {
                Ok(media) => return media,
                Err(Attempt::Final(media)) => return media,
                Err(Attempt::Expired(error)) if reuploaded.is_none() => {
                    log::info!(
                        "media of message {} expired ({error}); asking for a re-upload",
                        job.wa_id
                    );
                    match reupload(client, &job, original).await {
                        Ok(params) => {
                            reuploaded = Some(params);
                            // The re-uploaded file is there now: try it at once.
                            let source: &dyn Downloadable = reuploaded.as_ref().expect("just set");
                            match self.attempt(client, source, spec).await {
                                Ok(media) | Err(Attempt::Final(media)) => return media,
                                Err(Attempt::Expired(e) | Attempt::Retry(e)) => last_error = e,
                            }
                        }
                        Err(e) => last_error = format!("{error}; re-upload failed: {e}"),
                    }
                }
                Err(Attempt::Expired(error) | Attempt::Retry(error)) => last_error = error,
            }
            log::warn!(
                "downloading the media of message {} failed: {last_error}",
                job.wa_id
            );
        }
        failed(format!("download failed: {last_error}"))
    }

    /// One download into a fresh `.part` file, moved into place (fsynced)
    /// when it is complete.
    async fn attempt(
        &self,
        client: &Arc<Client>,
        source: &dyn Downloadable,
        spec: &MediaSpec,
    ) -> Result<MediaInfo, Attempt> {
        let kind = spec.kind;
        let (pending, file) =
            media::PendingFile::create(&self.dir, spec.mime.as_deref(), spec.file_name.as_deref())
                .map_err(|e| Attempt::Retry(format!("could not create the file: {e}")))?;
        let download = client.download_to_writer(source, file);
        match tokio::time::timeout(MEDIA_ATTEMPT_LIMIT, download).await {
            Ok(Ok(file)) => {
                drop(file);
                let (max, mime) = (self.max_bytes, spec.mime.clone());
                let media =
                    tokio::task::spawn_blocking(move || pending.finish(kind, mime.as_deref(), max))
                        .await
                        .map_err(|e| Attempt::Retry(format!("could not store the file: {e}")))?;
                // Over the size limit is final; a failed write may pass next time.
                match &media.error {
                    None => Ok(media),
                    Some(e) if e.contains("MEDIA_MAX_BYTES") => Err(Attempt::Final(media)),
                    Some(e) => Err(Attempt::Retry(e.clone())),
                }
            }
            Ok(Err(e)) => {
                let _ = pending.abandon(kind, None, String::new());
                let expired = e
                    .downcast_ref::<HttpStatusError>()
                    .is_some_and(|s| matches!(s.status, 404 | 410));
                let reason = format!("{e:#}");
                Err(if expired {
                    Attempt::Expired(reason)
                } else {
                    Attempt::Retry(reason)
                })
            }
            Err(_) => {
                let _ = pending.abandon(kind, None, String::new());
                Err(Attempt::Retry(format!(
                    "took longer than {} s",
                    MEDIA_ATTEMPT_LIMIT.as_secs()
                )))
            }
        }
    }
}

/// How a download attempt failed.
enum Attempt {
    /// Worth another try later.
    Retry(String),
    /// WhatsApp's copy is gone (404/410): a re-upload may bring it back.
    Expired(String),
    /// No try will do better (over the size limit).
    Final(MediaInfo),
}

/// Asks the sender's phone, through WhatsApp, to upload expired media again;
/// the same file under a new path.
async fn reupload(
    client: &Client,
    job: &MediaJob,
    original: &dyn Downloadable,
) -> Result<DownloadParams, String> {
    let media_key = original.media_key().ok_or("the message has no media key")?;
    let participant = job.chat.is_group().then_some(&job.sender);
    let request = MediaReuploadRequest {
        msg_id: &job.wa_id,
        chat_jid: &job.chat,
        media_key,
        is_from_me: job.from_me,
        participant,
    };
    match client.media_reupload().request(&request).await {
        Ok(MediaRetryResult::Success { direct_path }) => Ok(DownloadParams::encrypted(
            direct_path,
            media_key,
            original.file_sha256().unwrap_or_default(),
            original.file_enc_sha256().unwrap_or_default(),
            original.file_length().unwrap_or(0),
            original.app_info(),
        )),
        Ok(other) => Err(format!("WhatsApp answered {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}
