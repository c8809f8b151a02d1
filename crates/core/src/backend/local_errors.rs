//! How the local backend words what went wrong: the obstacle behind an SQLite or file-system
//! error (a lock, a read-only path, a full disk, an I/O error), the sentence naming the file
//! and the free space, and SQLite's own message and code name. Decides no outcome itself.
use std::path::Path;

use super::{BUSY_TIMEOUT, BackendError};
use crate::backend::Obstacle;
use crate::backend::sandbox as guard;
use crate::backend::space::{self, human as human_bytes};

/// The obstacle an SQLite error reports when the machine, not the SQL, stopped it: another
/// connection's lock, a read-only file or folder (the journal cannot be created), a full
/// disk, an I/O error.
pub(super) fn obstacle_of(e: &rusqlite::Error) -> Option<Obstacle> {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code()? {
        C::DatabaseBusy | C::DatabaseLocked => Some(Obstacle::Locked),
        C::ReadOnly | C::CannotOpen | C::PermissionDenied => Some(Obstacle::ReadOnly),
        C::DiskFull => Some(Obstacle::NoSpace),
        C::SystemIoFailure => Some(Obstacle::Io),
        _ => None,
    }
}

/// How a database file is named in a sentence: "production (/w/.d1ops/db/production.sqlite)".
pub(super) fn shown_db(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = name.strip_suffix(".sqlite").unwrap_or(&name);
    format!("{name} ({})", path.display())
}

/// " (N free on MOUNT)" for the folder holding `path`, when it can be measured.
fn free_note(path: &Path) -> String {
    let folder = path.parent().unwrap_or(Path::new("."));
    match space::room(folder) {
        Ok(r) => format!(
            "{} free on {}{}",
            human_bytes(r.free),
            r.mount.display(),
            space::folder_note(&r.mount, folder)
        ),
        Err(_) => "free space unknown".into(),
    }
}

/// The sentence for an SQLite error caused by the environment while working on the database
/// at `path`. `free_before`: the bytes free before a write that then filled the disk.
pub(super) fn environment_error(
    path: &Path,
    obstacle: Obstacle,
    e: &rusqlite::Error,
    free_before: Option<u64>,
) -> BackendError {
    let shown = shown_db(path);
    let cause = sqlite_message(e);
    let sentence = match obstacle {
        Obstacle::Locked => format!(
            "{} (SQLite: {cause}, still busy after {} s)",
            space::locked_sentence(&shown, path),
            BUSY_TIMEOUT.as_secs()
        ),
        Obstacle::ReadOnly => match space::unwritable_sentence(&shown, path) {
            Some(s) => format!("{s} (SQLite: {cause})"),
            None => format!(
                "{shown} cannot be written, or its journal cannot be created next to it (SQLite: {cause})"
            ),
        },
        Obstacle::NoSpace => {
            let folder = path.parent().unwrap_or(Path::new("."));
            let room = space::room(folder).ok();
            let on = room.as_ref().map_or_else(String::new, |r| {
                format!(
                    " on {}{}",
                    r.mount.display(),
                    space::folder_note(&r.mount, folder)
                )
            });
            match free_before.or(room.map(|r| r.free)) {
                Some(free) => format!(
                    "the disk is full: writing {shown} needs more than the {} free{on} (SQLite: {cause})",
                    human_bytes(free)
                ),
                None => format!(
                    "the disk is full: writing {shown} needs more space than is free (SQLite: {cause})"
                ),
            }
        }
        Obstacle::Io => format!(
            "I/O error on {shown}: the disk failed a read or write, {} (SQLite: {cause})",
            free_note(path)
        ),
    };
    BackendError::Environment { obstacle, sentence }
}

/// The obstacle behind a file-system error, when it is one (a full disk, a read-only path).
pub(super) fn io_obstacle(e: &std::io::Error) -> Option<Obstacle> {
    match e.raw_os_error()? {
        libc::ENOSPC | libc::EDQUOT => Some(Obstacle::NoSpace),
        libc::EROFS | libc::EACCES | libc::EPERM => Some(Obstacle::ReadOnly),
        _ => None,
    }
}

/// A file-system error on `path`: a sentence naming the obstacle, or a plain I/O error.
pub(super) fn io_error(path: &Path, source: std::io::Error) -> BackendError {
    match io_obstacle(&source) {
        Some(Obstacle::NoSpace) => BackendError::Environment {
            obstacle: Obstacle::NoSpace,
            sentence: format!(
                "the disk is full: writing {} failed, {} ({source})",
                path.display(),
                free_note(path)
            ),
        },
        Some(obstacle) => {
            let (target, folder) = if path.exists() {
                (path, path.is_dir())
            } else {
                (path.parent().unwrap_or(Path::new(".")), true)
            };
            let why =
                space::not_writable(target, folder).unwrap_or_else(|| "cannot be written".into());
            BackendError::Environment {
                obstacle,
                sentence: format!(
                    "{} {} {why}, so {} cannot be written ({source})",
                    if folder { "the folder" } else { "the file" },
                    target.display(),
                    path.display()
                ),
            }
        }
        None => BackendError::Io {
            what: path.display().to_string(),
            source,
        },
    }
}

pub(super) fn map_sql_error(context: &str, e: rusqlite::Error) -> BackendError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy) | Some(rusqlite::ErrorCode::DatabaseLocked) => {
            BackendError::Locked {
                db: context.to_string(),
                seconds: BUSY_TIMEOUT.as_secs(),
            }
        }
        _ => BackendError::Sql {
            context: context.to_string(),
            message: sqlite_message(&e),
        },
    }
}

/// SQLite's own message, without rusqlite's wrapping.
pub fn sqlite_message(e: &rusqlite::Error) -> String {
    if let Some(reason) = guard::refusal_of(e) {
        return format!("refused: {reason} (SQLITE_AUTH)");
    }
    match e {
        rusqlite::Error::SqliteFailure(err, Some(msg)) => {
            format!("{msg} ({})", sqlite_code_name(err))
        }
        rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
        other => other.to_string(),
    }
}

fn sqlite_code_name(err: &rusqlite::ffi::Error) -> String {
    // The extended code says most (D1 reports the same names).
    match err.extended_code {
        2067 => "SQLITE_CONSTRAINT_UNIQUE".into(),
        1555 => "SQLITE_CONSTRAINT_PRIMARYKEY".into(),
        787 => "SQLITE_CONSTRAINT_FOREIGNKEY".into(),
        1299 => "SQLITE_CONSTRAINT_NOTNULL".into(),
        275 => "SQLITE_CONSTRAINT_CHECK".into(),
        1 => "SQLITE_ERROR".into(),
        // SQLite's own names for the codes the environment causes.
        _ => match err.code {
            rusqlite::ErrorCode::DatabaseBusy => "SQLITE_BUSY".into(),
            rusqlite::ErrorCode::DatabaseLocked => "SQLITE_LOCKED".into(),
            rusqlite::ErrorCode::ReadOnly => "SQLITE_READONLY".into(),
            rusqlite::ErrorCode::DiskFull => "SQLITE_FULL".into(),
            rusqlite::ErrorCode::CannotOpen => "SQLITE_CANTOPEN".into(),
            rusqlite::ErrorCode::PermissionDenied => "SQLITE_PERM".into(),
            rusqlite::ErrorCode::SystemIoFailure => {
                format!("SQLITE_IOERR, extended code {}", err.extended_code)
            }
            _ => format!("SQLITE_{:?}", err.code).to_uppercase(),
        },
    }
}
