//! Reading user files safely: every file d1ops reads on a user's behalf (configuration,
//! wrangler files, migrations, the Drizzle journal, deploy artifacts) is a regular file
//! (after following symlinks) no larger than a documented limit, or it is refused with a
//! sentence naming it. Nothing here can block on a FIFO or read a device forever: the type is
//! checked before opening, the open is non-blocking, and the opened file is checked again.
use std::fs::{File, Metadata};
use std::io::Read;
use std::path::Path;

const MIB: u64 = 1024 * 1024;

/// Largest `d1ops.toml` read (it holds settings and probes, not data).
pub const CONFIG_LIMIT: u64 = MIB;
/// Largest `wrangler.toml` / `wrangler.jsonc` / `wrangler.json` read.
pub const WRANGLER_LIMIT: u64 = 4 * MIB;
/// Largest migration file read. D1 refuses a statement over 100 KB; a migration is a list of
/// statements, so 10 MiB leaves room for seed data while keeping memory bounded.
pub const MIGRATION_LIMIT: u64 = 10 * MIB;
/// Largest Drizzle journal (`meta/_journal.json`) read.
pub const JOURNAL_LIMIT: u64 = 10 * MIB;
/// Largest deploy artifact (`--artifact NAME=PATH`) hashed.
pub const ARTIFACT_LIMIT: u64 = 1024 * MIB;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: does not exist")]
    Missing { path: String },
    #[error("{path}: is a symbolic link to {target}, which does not exist")]
    Dangling { path: String, target: String },
    #[error("{path}: is {kind}, not a regular file")]
    NotRegular { path: String, kind: &'static str },
    #[error("{path}: is larger than the {limit} limit for {what}")]
    TooLarge {
        path: String,
        what: &'static str,
        limit: String,
    },
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl FileError {
    /// Whether the file (or the target of a symlink) is simply absent.
    pub fn is_missing(&self) -> bool {
        matches!(self, FileError::Missing { .. })
    }
}

/// "a directory", "a FIFO (named pipe)", …: what a non-regular file is, for messages.
pub fn kind_of(meta: &Metadata) -> &'static str {
    let ft = meta.file_type();
    if ft.is_file() {
        return "a regular file";
    }
    if ft.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if ft.is_socket() {
            return "a socket";
        }
        if ft.is_char_device() {
            return "a character device";
        }
        if ft.is_block_device() {
            return "a block device";
        }
    }
    "a special file"
}

/// Sizes in limit messages (`10 MiB`), from the one text module.
pub use d1ops_sql::text::size as human_bytes;

/// The metadata of `path` after following symlinks; a dangling link or a missing file is
/// named as such.
pub fn regular_metadata(path: &Path, shown: &str) -> Result<Metadata, FileError> {
    let io = |source| FileError::Io {
        path: shown.to_string(),
        source,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(match std::fs::symlink_metadata(path) {
                Ok(link) if link.file_type().is_symlink() => FileError::Dangling {
                    path: shown.to_string(),
                    target: std::fs::read_link(path)
                        .map(|t| t.display().to_string())
                        .unwrap_or_else(|_| "a missing file".into()),
                },
                _ => FileError::Missing {
                    path: shown.to_string(),
                },
            });
        }
        Err(e) => return Err(io(e)),
    };
    if !meta.is_file() {
        return Err(FileError::NotRegular {
            path: shown.to_string(),
            kind: kind_of(&meta),
        });
    }
    Ok(meta)
}

/// Opens `path` for reading when it is a regular file no larger than `limit` bytes. The
/// open never blocks (a file swapped for a FIFO after the check is refused, not waited on).
pub fn open_regular(
    path: &Path,
    shown: &str,
    what: &'static str,
    limit: u64,
) -> Result<(File, u64), FileError> {
    let meta = regular_metadata(path, shown)?;
    let too_large = || FileError::TooLarge {
        path: shown.to_string(),
        what,
        limit: human_bytes(limit),
    };
    if meta.len() > limit {
        return Err(too_large());
    }
    let io = |source| FileError::Io {
        path: shown.to_string(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(io)?;
    // The path may have changed between the check and the open: judge what was opened.
    let opened = file.metadata().map_err(io)?;
    if !opened.is_file() {
        return Err(FileError::NotRegular {
            path: shown.to_string(),
            kind: kind_of(&opened),
        });
    }
    if opened.len() > limit {
        return Err(too_large());
    }
    Ok((file, opened.len()))
}

/// Reads a regular file of at most `limit` bytes (`what` names the limit in the message).
pub fn read_limited(
    path: &Path,
    shown: &str,
    what: &'static str,
    limit: u64,
) -> Result<Vec<u8>, FileError> {
    let (file, len) = open_regular(path, shown, what, limit)?;
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    // A file growing while it is read still stops at the limit.
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| FileError::Io {
            path: shown.to_string(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(FileError::TooLarge {
            path: shown.to_string(),
            what,
            limit: human_bytes(limit),
        });
    }
    Ok(bytes)
}

/// [`read_limited`] as UTF-8 text; `Ok(Err(offset))` gives the first invalid byte.
pub fn read_text(
    path: &Path,
    shown: &str,
    what: &'static str,
    limit: u64,
) -> Result<Result<String, (Vec<u8>, usize)>, FileError> {
    let bytes = read_limited(path, shown, what, limit)?;
    Ok(String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        (e.into_bytes(), offset)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(10 * MIB), "10 MiB");
        assert_eq!(human_bytes(1024 * MIB), "1 GiB");
        assert_eq!(human_bytes(100), "100 bytes");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }

    #[test]
    fn non_regular_files_are_named() {
        let d = tempfile::tempdir().unwrap();
        let e = read_limited(d.path(), "dir", "x", 10).unwrap_err();
        assert_eq!(e.to_string(), "dir: is a directory, not a regular file");
        let e = read_limited(&d.path().join("nope"), "nope", "x", 10).unwrap_err();
        assert!(e.is_missing(), "{e}");
        #[cfg(unix)]
        {
            let link = d.path().join("link");
            std::os::unix::fs::symlink(d.path().join("gone"), &link).unwrap();
            let e = read_limited(&link, "link", "x", 10).unwrap_err();
            assert!(e.to_string().contains("symbolic link"), "{e}");
            let e = read_limited(Path::new("/dev/zero"), "/dev/zero", "x", 10).unwrap_err();
            assert!(e.to_string().contains("character device"), "{e}");
        }
        let f = d.path().join("big");
        std::fs::write(&f, [b'x'; 11]).unwrap();
        let e = read_limited(&f, "big", "test files", 10).unwrap_err();
        assert_eq!(
            e.to_string(),
            "big: is larger than the 10 bytes limit for test files"
        );
        std::fs::write(&f, [b'x'; 10]).unwrap();
        assert_eq!(read_limited(&f, "big", "x", 10).unwrap().len(), 10);
    }
}
