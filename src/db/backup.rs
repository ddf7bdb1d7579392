//! `backup <file>`: a consistent online copy of the database.

use super::{DbError, DbResult};
use rusqlite::Connection;
use std::path::Path;
use std::time::Duration;

/// Copies the database at `source` into the new file `target` with SQLite's
/// online backup API, in one step: a single read transaction, which in WAL
/// mode neither blocks the server's writers nor is restarted by them (copying
/// in chunks restarts whenever another process writes, and may never end
/// under steady traffic). The copy is written to `<target>.partial` and
/// renamed into place once complete, so a failed backup leaves no half file.
/// Errors are one line, for the user.
pub fn online_backup(source: &Path, target: &Path) -> Result<(), String> {
    use rusqlite::backup::{Backup, StepResult};
    let src = Connection::open_with_flags(
        source,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .and_then(|c| c.busy_timeout(Duration::from_secs(10)).map(|()| c))
    .map_err(|e| format!("could not open {}: {e}", source.display()))?;
    let mut partial = target.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let _ = std::fs::remove_file(&partial);
    let copied = (|| -> DbResult<()> {
        let mut dst = Connection::open(&partial)?;
        let backup = Backup::new(&src, &mut dst)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match backup.step(-1)? {
                StepResult::Done => return Ok(()),
                StepResult::More => {}
                _ if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    return Err(DbError::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                        Some("the database stayed locked for 30 s".into()),
                    ));
                }
            }
        }
    })();
    let renamed = copied
        .map_err(|e| e.to_string())
        .and_then(|()| std::fs::rename(&partial, target).map_err(|e| e.to_string()));
    if let Err(e) = renamed {
        let _ = std::fs::remove_file(&partial);
        return Err(format!("backup to {} failed: {e}", target.display()));
    }
    Ok(())
}
