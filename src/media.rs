//! Media files: streamed to `media/<uuid>.<ext>` with size and SHA-256 as they
//! arrive (never held whole in memory), and opened again for `GET /media/…`.

use crate::auth;
use crate::wa::MediaInfo;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Writes `reader` into the media dir. Never fails: a failed or over-size
/// download returns a `MediaInfo` without a file and with the reason, so the
/// message itself is still stored.
pub fn store(
    dir: &Path,
    kind: &str,
    mime: Option<&str>,
    filename: Option<&str>,
    reader: &mut dyn Read,
    max_bytes: u64,
) -> MediaInfo {
    let mut download = Download(reader);
    store_stream(dir, kind, mime, filename, &mut download, max_bytes).unwrap_or_else(|e| {
        MediaInfo {
            kind: kind.to_string(),
            mime: mime.map(str::to_string),
            error: Some(e.to_string()),
            ..Default::default()
        }
    })
}

/// Writes `reader` into the media dir as a new file (`<uuid>.<ext>`),
/// hashing it on the way, in 64 KiB pieces. On any error nothing is left
/// behind; past `max_bytes` the error is of kind `FileTooLarge`, and a
/// reader's own error keeps its kind (`InvalidData` for a malformed upload).
pub fn store_stream(
    dir: &Path,
    kind: &str,
    mime: Option<&str>,
    filename: Option<&str>,
    reader: &mut dyn Read,
    max_bytes: u64,
) -> io::Result<MediaInfo> {
    let name = format!("{}.{}", auth::uuid_v4(), extension(mime, filename));
    let partial = dir.join(format!(".{name}.part"));
    let stored = copy_hashed(reader, &partial, max_bytes)
        .and_then(|hashed| rename_durably(&partial, &dir.join(&name)).map(|()| hashed));
    match stored {
        Ok((size, sha)) => Ok(MediaInfo {
            kind: kind.to_string(),
            mime: mime.map(str::to_string),
            file_name: Some(name),
            size: Some(size),
            sha256: Some(sha),
            ..Default::default()
        }),
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

/// A download's reader: its errors say that the download failed.
struct Download<'a>(&'a mut dyn Read);

impl Read for Download<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0
            .read(buf)
            .map_err(|e| io::Error::new(e.kind(), format!("download failed: {e}")))
    }
}

/// A new temporary file in `dir` whose name is removed at once: it lives
/// only while open, so no path, nor a crash after this returns, leaves it
/// behind. Named `.spool-…` for the instant it has a name
/// (`http::remove_upload_leftovers` clears those at start).
pub fn nameless_file(dir: &Path) -> io::Result<File> {
    loop {
        let path = dir.join(format!(".spool-{}", auth::uuid_v4()));
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            other => other?,
        };
        std::fs::remove_file(&path)?;
        return Ok(file);
    }
}

/// A media file filled by someone else's writer (the WhatsApp backend's
/// streaming download, which may rewind and retry): a hidden `.part` file in
/// the media dir until `finish` hashes it and moves it into place.
pub struct PendingFile {
    dir: PathBuf,
    name: String,
}

impl PendingFile {
    /// Creates the `.part` file; named like `store` names its files.
    pub fn create(
        dir: &Path,
        mime: Option<&str>,
        filename: Option<&str>,
    ) -> io::Result<(PendingFile, File)> {
        let pending = PendingFile {
            dir: dir.to_path_buf(),
            name: format!("{}.{}", auth::uuid_v4(), extension(mime, filename)),
        };
        let file = File::create(pending.partial())?;
        Ok((pending, file))
    }

    fn partial(&self) -> PathBuf {
        self.dir.join(format!(".{}.part", self.name))
    }

    /// Hashes the written file (reading it back in pieces, never whole),
    /// enforces `max_bytes` and moves it into place. Blocking file I/O.
    pub fn finish(self, kind: &str, mime: Option<&str>, max_bytes: u64) -> MediaInfo {
        let partial = self.partial();
        let target = self.dir.join(&self.name);
        let mut info = MediaInfo {
            kind: kind.to_string(),
            mime: mime.map(str::to_string),
            ..Default::default()
        };
        // Opened for writing so that its data can be synced before the rename.
        let hashed = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&partial)
            .and_then(|mut file| {
                let hashed = hash_up_to(&mut file, max_bytes)?;
                file.sync_all()?;
                Ok(hashed)
            });
        match hashed.and_then(|(size, sha)| {
            rename_durably(&partial, &target)?;
            Ok((size, sha))
        }) {
            Ok((size, sha)) => {
                info.file_name = Some(self.name);
                info.size = Some(size);
                info.sha256 = Some(sha);
            }
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                info.error = Some(e.to_string());
            }
        }
        info
    }

    /// Removes the partial file; the message keeps `error` as the reason.
    pub fn abandon(self, kind: &str, mime: Option<&str>, error: String) -> MediaInfo {
        let _ = std::fs::remove_file(self.partial());
        MediaInfo {
            kind: kind.to_string(),
            mime: mime.map(str::to_string),
            error: Some(error),
            ..Default::default()
        }
    }
}

/// Moves a synced file into place and syncs the directory, so that after a
/// power cut the file is there under its name (a rename lives in the
/// directory, not in the file).
fn rename_durably(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::rename(from, to)?;
    if let Some(dir) = to.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Reads `reader` to the end, hashing what it reads and passing it on to
/// `out`; fails past `max_bytes` (`FileTooLarge`).
fn hash_through(
    reader: &mut dyn Read,
    out: &mut dyn Write,
    max_bytes: u64,
) -> io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total: u64 = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        if total > max_bytes {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                format!("larger than MEDIA_MAX_BYTES ({max_bytes} bytes)"),
            ));
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
    }
    Ok((total, auth::hex(&hasher.finalize())))
}

/// Size and SHA-256 of what `reader` holds, within `max_bytes`.
fn hash_up_to(reader: &mut dyn Read, max_bytes: u64) -> io::Result<(u64, String)> {
    hash_through(reader, &mut io::sink(), max_bytes)
}

/// Copies `reader` into a new file at `path`, durably, with size and SHA-256.
fn copy_hashed(reader: &mut dyn Read, path: &Path, max_bytes: u64) -> io::Result<(u64, String)> {
    let mut file = File::create(path)?;
    let hashed = hash_through(reader, &mut file, max_bytes)?;
    file.sync_all()?;
    Ok(hashed)
}

/// A file extension for stored media: from the mime type, else a safe one from
/// the original file name, else `bin`.
pub fn extension(mime: Option<&str>, filename: Option<&str>) -> String {
    let from_mime = mime
        .map(|m| {
            m.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .and_then(|m| {
            Some(match m.as_str() {
                "image/jpeg" => "jpg",
                "image/png" => "png",
                "image/webp" => "webp",
                "image/gif" => "gif",
                "video/mp4" => "mp4",
                "video/3gpp" => "3gp",
                "audio/ogg" | "audio/ogg; codecs=opus" => "ogg",
                "audio/mpeg" => "mp3",
                "audio/mp4" | "audio/aac" => "m4a",
                "application/pdf" => "pdf",
                "text/plain" => "txt",
                "application/zip" => "zip",
                _ => return None,
            })
        });
    if let Some(ext) = from_mime {
        return ext.to_string();
    }
    filename
        .and_then(|f| f.rsplit_once('.'))
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .filter(|ext| {
            (1..=8).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_alphanumeric())
        })
        .unwrap_or_else(|| "bin".to_string())
}

/// The content type served for a stored file, from its extension.
pub fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, e)| e) {
        Some("jpg") | Some("jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        Some("mp4") => "video/mp4",
        Some("3gp") => "video/3gpp",
        Some("ogg") => "audio/ogg",
        Some("mp3") => "audio/mpeg",
        Some("m4a") => "audio/mp4",
        Some("pdf") => "application/pdf",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Whether `name` is a plain file name we could have written: no separators,
/// no `..`, no leading dot, no NUL, nothing outside `[A-Za-z0-9._-]`.
pub fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The path of a stored file, if the name is safe and the file exists.
pub fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    if !is_safe_name(name) {
        return None;
    }
    let path = dir.join(name);
    path.is_file().then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_with_hash_and_refuses_oversize() {
        let dir = std::env::temp_dir().join(format!("wa-media-{}", auth::uuid_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let info = store(&dir, "image", Some("image/png"), None, &mut &b"abc"[..], 10);
        let name = info.file_name.clone().unwrap();
        assert!(name.ends_with(".png"));
        assert_eq!(info.size, Some(3));
        assert_eq!(
            info.sha256.as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(std::fs::read(dir.join(&name)).unwrap(), b"abc");
        let big = store(
            &dir,
            "video",
            Some("video/mp4"),
            None,
            &mut &[0u8; 11][..],
            10,
        );
        assert!(big.file_name.is_none());
        assert!(big.error.unwrap().contains("MEDIA_MAX_BYTES"));
        // Nothing but the one stored file is left behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pending_files_are_hashed_or_removed() {
        let dir = std::env::temp_dir().join(format!("wa-media-{}", auth::uuid_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let (pending, mut file) = PendingFile::create(&dir, Some("application/pdf"), None).unwrap();
        file.write_all(b"abc").unwrap();
        drop(file);
        let info = pending.finish("document", Some("application/pdf"), 10);
        let name = info.file_name.clone().unwrap();
        assert!(name.ends_with(".pdf"));
        assert_eq!(info.size, Some(3));
        assert_eq!(
            info.sha256.as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        let (pending, mut file) = PendingFile::create(&dir, None, None).unwrap();
        file.write_all(&[0u8; 11]).unwrap();
        drop(file);
        let big = pending.finish("video", None, 10);
        assert!(big.error.unwrap().contains("MEDIA_MAX_BYTES"));
        let (pending, _file) = PendingFile::create(&dir, None, None).unwrap();
        let failed = pending.abandon("image", None, "download failed".into());
        assert_eq!(failed.error.as_deref(), Some("download failed"));
        // Only the finished file is left.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn names_and_extensions() {
        for bad in [
            "",
            "..",
            "../x",
            "a/b",
            "/etc/passwd",
            ".hidden",
            "a\0b",
            "a..b",
            "%2e%2e",
        ] {
            assert!(!is_safe_name(bad), "{bad:?}");
        }
        assert!(is_safe_name("0b9c-1.jpg"));
        assert_eq!(extension(Some("image/jpeg"), None), "jpg");
        assert_eq!(extension(None, Some("report.PDF")), "pdf");
        assert_eq!(extension(None, Some("evil.ph/p")), "bin");
        assert_eq!(extension(Some("x/unknown"), Some("noext")), "bin");
        assert_eq!(content_type("a.png"), "image/png");
    }
}
