//! What the machine allows, told in sentences: free space on the file system holding a path
//! (`statvfs`), the processes holding a database file's locks (`/proc/locks` and
//! `/proc/*/fd` on Linux), and whether a file or its folder can be written (`access(2)`).
//!
//! The local backend uses these to tell an obstacle in the environment (a reader holding
//! production, a read-only or immutable path, a full disk) from a failing migration, and to
//! refuse a copy or an apply that would not fit before it starts.
//!
//! `D1OPS_FAKE_FREE_BYTES=<n>` makes every free-space check see `n` free bytes (a fault point
//! for tests, like `D1OPS_FAULT` in `fault.rs`); unset, the real file system answers.
use std::ffi::CString;
use std::path::{Path, PathBuf};

/// Sizes in obstacle sentences, from the one text module.
pub use d1ops_sql::text::size as human;

/// Overrides the free bytes every check sees (tests only; see the module docs).
pub const FAKE_FREE_ENV: &str = "D1OPS_FAKE_FREE_BYTES";

/// Room always kept beyond an estimate: SQLite's journal, the state store, logs.
pub const MARGIN_BYTES: u64 = 16 * 1024 * 1024;

/// Room a copy of a `source`-byte database needs: the copy, 10 % slack, and the margin.
pub fn copy_needs(source: u64) -> u64 {
    source
        .saturating_add(source / 10)
        .saturating_add(MARGIN_BYTES)
}

/// Room an apply to a `size`-byte database needs before it starts: the rollback journal and
/// the file's growth (10 % of the database) plus the margin. A migration that grows the file
/// by more still stops with a full disk, which is reported as such, never as its fault.
pub fn apply_needs(size: u64) -> u64 {
    (size / 10).saturating_add(MARGIN_BYTES)
}

/// Free bytes (for an unprivileged writer) on the file system holding `path`, and that
/// file system's mount point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    pub free: u64,
    pub mount: PathBuf,
}

/// The free space on the file system that holds `path` (or its nearest existing ancestor).
pub fn room(path: &Path) -> std::io::Result<Room> {
    let existing = nearest_existing(path);
    let mount = mount_point(&existing);
    if let Some(fake) = std::env::var(FAKE_FREE_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return Ok(Room { free: fake, mount });
    }
    Ok(Room {
        free: statvfs_free(&existing)?,
        mount,
    })
}

/// `None` when `folder` has `needed` bytes free, else the sentence
/// "`what` needs X, Y free on MOUNT (folder F)".
pub fn shortfall(folder: &Path, needed: u64, what: &str) -> Option<String> {
    let room = room(folder).ok()?;
    (room.free < needed).then(|| {
        format!(
            "not enough disk space: {what} needs {}, {} free on {}{}",
            human(needed),
            human(room.free),
            room.mount.display(),
            folder_note(&room.mount, folder),
        )
    })
}

/// " (folder F)" when `folder` is not the mount point itself.
pub fn folder_note(mount: &Path, folder: &Path) -> String {
    let shown = nearest_existing(folder);
    if shown == mount {
        String::new()
    } else {
        format!(" (folder {})", shown.display())
    }
}

#[cfg(unix)]
fn statvfs_free(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a writable statvfs for the call.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    let free = u64::from(st.f_bavail as u64).saturating_mul(st.f_frsize as u64);
    Ok(free)
}

#[cfg(not(unix))]
fn statvfs_free(_path: &Path) -> std::io::Result<u64> {
    Ok(u64::MAX)
}

/// `path`, or its nearest ancestor that exists, made absolute.
fn nearest_existing(path: &Path) -> PathBuf {
    let mut p = std::fs::canonicalize(path).ok();
    let mut cur = path.to_path_buf();
    while p.is_none() {
        match cur.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => {
                cur = parent.to_path_buf();
                p = std::fs::canonicalize(&cur).ok();
            }
            _ => break,
        }
    }
    p.unwrap_or_else(|| path.to_path_buf())
}

/// The mount point of the file system holding `path` (the highest ancestor on its device).
pub fn mount_point(path: &Path) -> PathBuf {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let start = nearest_existing(path);
        let Ok(dev) = std::fs::metadata(&start).map(|m| m.dev()) else {
            return start;
        };
        let mut mount = start.clone();
        for ancestor in start.ancestors().skip(1) {
            match std::fs::metadata(ancestor) {
                Ok(m) if m.dev() == dev => mount = ancestor.to_path_buf(),
                _ => break,
            }
        }
        mount
    }
    #[cfg(not(unix))]
    {
        path.to_path_buf()
    }
}

/// Why `path` cannot be written, when it cannot: "is on a read-only file system", "is
/// immutable (chattr +i) …", "is not writable by uid N". `folder` also asks for search
/// permission (creating a file in it).
pub fn not_writable(path: &Path, folder: bool) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = CString::new(path.as_os_str().as_bytes()).ok()?;
        let mode = if folder {
            libc::W_OK | libc::X_OK
        } else {
            libc::W_OK
        };
        // SAFETY: `c` is a NUL-terminated path; access only reads it.
        let rc = unsafe { libc::access(c.as_ptr(), mode) };
        if rc == 0 {
            return None;
        }
        let err = std::io::Error::last_os_error();
        Some(match err.raw_os_error() {
            Some(libc::EROFS) => "is on a read-only file system (EROFS)".to_string(),
            Some(libc::EPERM) => {
                "is immutable (chattr +i) or its writes are not permitted (EPERM)".to_string()
            }
            Some(libc::EACCES) => {
                // SAFETY: geteuid has no preconditions.
                let uid = unsafe { libc::geteuid() };
                format!("is not writable by uid {uid} (EACCES, permission denied)")
            }
            Some(libc::ENOENT) => return None,
            _ => format!("cannot be written ({err})"),
        })
    }
    #[cfg(not(unix))]
    {
        let _ = (path, folder);
        None
    }
}

/// Names the read-only path behind a database that cannot be written: its folder (SQLite
/// creates `-journal`/`-wal` next to the file) and/or the file. `None` when both look
/// writable.
pub fn unwritable_sentence(name: &str, file: &Path) -> Option<String> {
    let folder = file.parent().unwrap_or(Path::new("."));
    let file_name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_string());
    let dir_why = not_writable(folder, true);
    let file_why = if file.exists() {
        not_writable(file, false)
    } else {
        None
    };
    match (dir_why, file_why) {
        (None, None) => None,
        (Some(d), None) => Some(format!(
            "{name} cannot be written: its folder {} {d}; SQLite must create {file_name}-journal (or -wal) next to the file, so the database is read-only even though the file itself is writable",
            folder.display()
        )),
        (None, Some(f)) => Some(format!(
            "{name} cannot be written: the file {} {f}",
            file.display()
        )),
        (Some(d), Some(f)) => Some(format!(
            "{name} cannot be written: the file {} {f}, and its folder {} {d}",
            file.display(),
            folder.display()
        )),
    }
}

/// One process holding a database file open or locked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    pub pid: u32,
    /// Its command line (shortened).
    pub cmd: String,
    /// When the process started (UTC, RFC 3339), when known.
    pub started: Option<String>,
    /// The strongest SQLite lock it holds, when `/proc/locks` tells.
    pub lock: Option<&'static str>,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} ({})", self.pid, self.cmd)?;
        if let Some(t) = &self.started {
            write!(f, " since {t}")?;
        }
        if let Some(l) = self.lock {
            write!(f, ", which holds {l}")?;
        }
        Ok(())
    }
}

/// SQLite's lock bytes in a database file (see `os_unix.c`).
const PENDING_BYTE: u64 = 0x4000_0000;
const RESERVED_BYTE: u64 = PENDING_BYTE + 1;
const SHARED_FIRST: u64 = PENDING_BYTE + 2;
/// The WAL locks' bytes in a `-shm` file: write, checkpoint, recover, then five read marks;
/// byte 128 (the "dead man switch") is held by every open connection.
const WAL_WRITE_BYTE: u64 = 120;
const WAL_CHECKPOINT_BYTE: u64 = 121;
const WAL_READ_FIRST: u64 = 123;
const WAL_READ_LAST: u64 = 127;

/// Lock strength, for picking each process's strongest lock.
fn rank(label: &str) -> u8 {
    match label {
        EXCLUSIVE => 5,
        WAL_WRITE | WAL_CHECKPOINT => 4,
        RESERVED => 3,
        PENDING => 2,
        SHARED | WAL_READ => 1,
        _ => 0,
    }
}
const EXCLUSIVE: &str = "an EXCLUSIVE lock (it is writing)";
const RESERVED: &str = "a write transaction (RESERVED lock)";
const PENDING: &str = "a PENDING lock (it waits to write)";
const SHARED: &str = "a read transaction (SHARED lock)";
const WAL_WRITE: &str = "the WAL write lock (a write transaction)";
const WAL_READ: &str = "a WAL read lock (a read transaction)";
const WAL_CHECKPOINT: &str = "the WAL checkpoint lock (it is checkpointing)";

/// The other processes holding `file` (or its `-wal`/`-shm`/`-journal`) open, with the SQLite
/// lock each holds when `/proc/locks` tells. Empty where `/proc` is not available.
pub fn lock_holders(file: &Path) -> Vec<LockHolder> {
    let me = std::process::id();
    let names: Vec<PathBuf> = ["", "-wal", "-shm", "-journal"]
        .iter()
        .map(|s| {
            let mut p = file.as_os_str().to_owned();
            p.push(s);
            PathBuf::from(p)
        })
        .collect();
    let canon: Vec<PathBuf> = names
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    let mut holders: Vec<LockHolder> = Vec::new();
    for pid in open_by(&canon).into_iter().filter(|p| *p != me) {
        holders.push(describe_pid(pid));
    }
    for (pid, label) in locks_on(&canon) {
        if pid == me {
            continue;
        }
        match holders.iter_mut().find(|h| h.pid == pid) {
            Some(h) => {
                if h.lock.is_none_or(|l| rank(l) < rank(label)) {
                    h.lock = Some(label);
                }
            }
            None => {
                let mut h = describe_pid(pid);
                h.lock = Some(label);
                holders.push(h);
            }
        }
    }
    // Lock holders first, strongest first.
    holders.sort_by_key(|h| std::cmp::Reverse(h.lock.map_or(0, rank)));
    holders
}

/// "NAME is locked by pid N (cmd) since T, which holds …", or "… by another connection".
pub fn locked_sentence(name: &str, file: &Path) -> String {
    let holders = lock_holders(file);
    let locking: Vec<&LockHolder> = holders.iter().filter(|h| h.lock.is_some()).collect();
    let shown: Vec<String> = if locking.is_empty() {
        holders.iter().take(3).map(ToString::to_string).collect()
    } else {
        locking.iter().take(3).map(ToString::to_string).collect()
    };
    if !locking.is_empty() {
        format!("{name} is locked by {}", shown.join("; and by "))
    } else if !shown.is_empty() {
        format!(
            "{name} is locked by another connection; it is open in {}",
            shown.join("; and in ")
        )
    } else {
        format!("{name} is locked by another connection")
    }
}

/// Pids whose open file descriptors point at one of `files`.
fn open_by(files: &[PathBuf]) -> Vec<u32> {
    let mut pids = Vec::new();
    if files.is_empty() {
        return pids;
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        if fds
            .flatten()
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .any(|target| files.contains(&target))
        {
            pids.push(pid);
        }
    }
    pids
}

/// (pid, lock) for every POSIX lock `/proc/locks` lists on one of `files` (waiters skipped).
fn locks_on(files: &[PathBuf]) -> Vec<(u32, &'static str)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let inodes: Vec<(u64, bool)> = files
            .iter()
            .filter_map(|f| {
                let shm = f.to_string_lossy().ends_with("-shm");
                std::fs::metadata(f).ok().map(|m| (m.ino(), shm))
            })
            .collect();
        // In WAL mode every open connection holds a SHARED lock on the database file and
        // byte 128 of the -shm file; only the -shm's other bytes tell transactions apart.
        let wal = inodes.iter().any(|(_, shm)| *shm);
        let Ok(text) = std::fs::read_to_string("/proc/locks") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // "1: POSIX  ADVISORY  WRITE 1234 08:01:5678 1073741825 1073741825"; a waiter
            // has "->" after the number.
            if fields.len() < 8 || fields[1] == "->" {
                continue;
            }
            let (kind, pid, dev_ino, start, end) =
                (fields[3], fields[4], fields[5], fields[6], fields[7]);
            let Some(ino) = dev_ino
                .rsplit(':')
                .next()
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            let Some(&(_, shm)) = inodes.iter().find(|(i, _)| *i == ino) else {
                continue;
            };
            let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
                continue;
            };
            let end = end.parse::<u64>().unwrap_or(u64::MAX);
            let write = kind == "WRITE";
            let covers = |byte: u64| start <= byte && byte <= end;
            let label = if shm {
                if write && covers(WAL_WRITE_BYTE) {
                    Some(WAL_WRITE)
                } else if write && covers(WAL_CHECKPOINT_BYTE) {
                    Some(WAL_CHECKPOINT)
                } else if (WAL_READ_FIRST..=WAL_READ_LAST).contains(&start) {
                    Some(WAL_READ)
                } else {
                    None
                }
            } else if wal && !write {
                None
            } else if write && end >= SHARED_FIRST {
                Some(EXCLUSIVE)
            } else if write && start <= RESERVED_BYTE && RESERVED_BYTE <= end {
                Some(RESERVED)
            } else if start <= PENDING_BYTE && PENDING_BYTE <= end {
                Some(PENDING)
            } else if start >= SHARED_FIRST {
                Some(SHARED)
            } else {
                None
            };
            if let Some(label) = label {
                out.push((pid, label));
            }
        }
        out
    }
    #[cfg(not(unix))]
    {
        let _ = files;
        Vec::new()
    }
}

/// A process's command line (shortened) and start time, from `/proc`.
fn describe_pid(pid: u32) -> LockHolder {
    let dir = PathBuf::from(format!("/proc/{pid}"));
    let cmd = std::fs::read(dir.join("cmdline"))
        .ok()
        .map(|raw| {
            raw.split(|b| *b == 0)
                .filter(|part| !part.is_empty())
                .map(|part| String::from_utf8_lossy(part).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|s| !s.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string(dir.join("comm"))
                .ok()
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "command unknown".into());
    LockHolder {
        pid,
        cmd: crate::backend::one_line(&cmd, 80),
        started: process_started(pid),
        lock: None,
    }
}

/// When `pid` started (UTC), from its `stat` start time and the boot time.
fn process_started(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) start at field 3; starttime is 22.
    let rest = stat.rsplit_once(')')?.1;
    let ticks: u64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let btime: i64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz <= 0 {
        return None;
    }
    let secs = btime.checked_add(i64::try_from(ticks / hz as u64).ok()?)?;
    let at = chrono::DateTime::<chrono::Utc>::from_timestamp(secs, 0)?;
    Some(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_like_df() {
        assert_eq!(human(512), "512 bytes");
        assert_eq!(human(4096), "4 KiB");
        assert_eq!(human(16 * 1024 * 1024 + 8 * 1024), "16.0 MiB");
        assert_eq!(human(3 << 30), "3 GiB");
    }

    #[test]
    fn needs_grow_with_the_source() {
        assert_eq!(copy_needs(0), MARGIN_BYTES);
        assert_eq!(copy_needs(1000), 1100 + MARGIN_BYTES);
        assert_eq!(apply_needs(1000), 100 + MARGIN_BYTES);
        assert_eq!(copy_needs(u64::MAX), u64::MAX);
    }

    #[test]
    fn room_names_a_mount_point() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = room(&dir.path().join("not/yet/there")).expect("room");
        assert!(r.mount.is_absolute());
        assert!(dir.path().starts_with(&r.mount) || r.mount == Path::new("/"));
    }

    #[test]
    fn this_process_is_never_its_own_obstacle() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("x.sqlite");
        std::fs::write(&file, b"x").expect("write");
        // This process is never reported as its own obstacle.
        let _open = std::fs::File::open(&file).expect("open");
        assert!(
            lock_holders(&file)
                .iter()
                .all(|h| h.pid != std::process::id())
        );
        assert_eq!(
            locked_sentence("x", &file),
            "x is locked by another connection"
        );
    }
}
