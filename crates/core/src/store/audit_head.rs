//! The chain head kept outside the table, in `.d1ops/audit.head`: reading it (with its MAC
//! when keyed), replacing it atomically (temporary file, fsync, rename, fsync of the folder)
//! and making the store's WAL durable first, so the file never names an uncommitted event.
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::HEAD_FILE;

/// A head file is a few hundred bytes; anything much larger is not one.
const HEAD_FILE_LIMIT: u64 = 64 * 1024;

/// `.d1ops/audit.head`.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct HeadFile {
    pub(super) seq: i64,
    pub(super) hash: String,
    pub(super) at: String,
    /// HMAC of (seq, hash) under the audit key, when the head event is keyed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) mac: Option<String>,
}

pub(super) enum HeadRead {
    Absent,
    Unreadable(String),
    Present(HeadFile),
}

pub(super) fn read_head_file(path: &Path) -> HeadRead {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return HeadRead::Absent,
        Err(e) => return HeadRead::Unreadable(e.to_string()),
    };
    if !meta.file_type().is_file() {
        return HeadRead::Unreadable("not a regular file".into());
    }
    let mut text = String::new();
    let read = std::fs::File::open(path)
        .and_then(|f| f.take(HEAD_FILE_LIMIT + 1).read_to_string(&mut text));
    match read {
        Err(e) => HeadRead::Unreadable(e.to_string()),
        Ok(n) if n as u64 > HEAD_FILE_LIMIT => {
            HeadRead::Unreadable(format!("larger than {HEAD_FILE_LIMIT} bytes"))
        }
        Ok(_) => match serde_json::from_str::<HeadFile>(&text) {
            Ok(h) => HeadRead::Present(h),
            Err(e) => HeadRead::Unreadable(format!("not a head record: {e}")),
        },
    }
}

/// Distinguishes temporary files of concurrent writers in one process.
pub(super) static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replaces the head file atomically: temp file, fsync, rename, fsync of the folder.
pub(super) fn write_head_file(path: &Path, head: &HeadFile) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        "{HEAD_FILE}.{}.{}.tmp",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let mut text = serde_json::to_vec(head).map_err(std::io::Error::other)?;
    text.push(b'\n');
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(unix)]
pub(super) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
pub(super) fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Makes the store's committed WAL frames durable (the store runs `synchronous = NORMAL`, which
/// does not fsync at commit): the head file must never survive a power loss that the commit it
/// names did not.
pub(super) fn sync_wal(db: &Path) -> std::io::Result<()> {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    match std::fs::File::open(PathBuf::from(wal)) {
        Ok(f) => f.sync_all(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
