//! Runs one `command` target step: `sh -c <script>` in its own process group, with the
//! step's environment, stdin closed, stdout and stderr captured line by line into the
//! step's log (secrets redacted before anything is written), a time limit that kills the
//! whole group, and the last lines kept for the operator.
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{TargetError, redact};

/// How many lines of output a step keeps for the failure record and the console.
pub const TAIL_LINES: usize = 20;
/// The longest line kept in a tail (the log keeps whole lines).
const TAIL_LINE_CHARS: usize = 300;

/// What to run.
#[derive(Debug, Clone)]
pub struct CommandStep {
    /// Given to `sh -c`.
    pub script: String,
    pub cwd: PathBuf,
    /// Added to d1ops' own environment (`D1OPS_RELEASE_ID`, `D1OPS_ENV`…).
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    /// The log the output is appended to (created with its folder).
    pub log: PathBuf,
    /// A header line written to the log before the output.
    pub header: String,
    /// Values replaced by `[redacted]` in the log and the tail.
    pub secrets: Vec<String>,
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutcome {
    /// The exit code (`None` when killed by a signal or the time limit).
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// The last [`TAIL_LINES`] lines of stdout and stderr, redacted.
    pub tail: String,
    pub duration_ms: u64,
}

impl CommandOutcome {
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }

    /// One sentence: how the step ended.
    pub fn summary(&self, limit: Duration) -> String {
        if self.timed_out {
            format!(
                "timed out after {} and was killed",
                humantime::format_duration(limit)
            )
        } else {
            match self.exit_code {
                Some(0) => "exited 0".to_string(),
                Some(c) => format!("exited {c}"),
                None => "was killed by a signal".to_string(),
            }
        }
    }
}

/// Environment variables a step never inherits: d1ops' own fault injection (a `d1ops`
/// called by the step must not crash where the test meant the outer one to).
const NOT_INHERITED: [&str; 2] = [crate::fault::FAULT_ENV, crate::fault::PAUSE_ENV];

/// Runs the step to its end (or its time limit).
pub fn run(step: &CommandStep) -> Result<CommandOutcome, TargetError> {
    let log_err = |e: std::io::Error| TargetError::Log {
        path: step.log.display().to_string(),
        source: e,
    };
    if let Some(dir) = step.log.parent() {
        std::fs::create_dir_all(dir).map_err(log_err)?;
    }
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&step.log)
        .map_err(log_err)?;
    writeln!(log, "{}", redact(&step.header, &step.secrets)).map_err(log_err)?;
    if !step.cwd.is_dir() {
        return Err(TargetError::Cwd(step.cwd.display().to_string()));
    }
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(&step.script)
        .current_dir(&step.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for var in NOT_INHERITED {
        cmd.env_remove(var);
    }
    for (k, v) in &step.env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(TargetError::Spawn)?;
    let pid = child.id();
    let (tx, rx) = mpsc::channel::<String>();
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(spawn_reader(out, tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(spawn_reader(err, tx.clone()));
    }
    drop(tx);
    let mut tail: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let mut keep = |line: String, log: &mut std::fs::File| -> Result<(), TargetError> {
        let line = redact(&line, &step.secrets);
        writeln!(log, "{line}").map_err(log_err)?;
        let shown: String = line.chars().take(TAIL_LINE_CHARS).collect();
        tail.push_back(shown);
        if tail.len() > TAIL_LINES {
            tail.pop_front();
        }
        Ok(())
    };
    let mut timed_out = false;
    let status = loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(line) => keep(line, &mut log)?,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Both pipes closed (or were never there): wait on the process alone.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(Duration::from_millis(20))
            }
        }
        if let Some(status) = child.try_wait().map_err(TargetError::Spawn)? {
            break status;
        }
        if started.elapsed() >= step.timeout {
            timed_out = true;
            kill_group(pid);
            break child.wait().map_err(TargetError::Spawn)?;
        }
    };
    // The group may have left children holding the pipes: they go with the step.
    kill_group(pid);
    // Whatever output is still buffered (the readers end when the pipes close).
    let drain_until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < drain_until {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => keep(line, &mut log)?,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    for r in readers {
        if r.is_finished() {
            let _ = r.join();
        }
    }
    let outcome = CommandOutcome {
        exit_code: status.code(),
        timed_out,
        tail: tail.into_iter().collect::<Vec<_>>().join("\n"),
        duration_ms: started.elapsed().as_millis() as u64,
    };
    writeln!(
        log,
        "== {} ({} ms)",
        outcome.summary(step.timeout),
        outcome.duration_ms
    )
    .map_err(log_err)?;
    log.sync_all().map_err(log_err)?;
    Ok(outcome)
}

fn spawn_reader<R: std::io::Read + Send + 'static>(
    pipe: R,
    tx: mpsc::Sender<String>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf)
                        .trim_end_matches(['\n', '\r'])
                        .to_string();
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    })
}

/// Kills the step's whole process group (it was started as its own group leader).
fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) with a negative pid signals the process group; no memory involved.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(dir: &std::path::Path, script: &str) -> CommandStep {
        CommandStep {
            script: script.into(),
            cwd: dir.to_path_buf(),
            env: vec![("D1OPS_TARGET".into(), "app".into())],
            timeout: Duration::from_secs(20),
            log: dir.join("logs/app.log"),
            header: "== deploy".into(),
            secrets: vec!["s3cr3t-value".into()],
        }
    }

    #[test]
    fn output_is_logged_redacted_and_its_tail_kept() {
        let dir = tempfile::tempdir().unwrap();
        let out = run(&step(
            dir.path(),
            "echo \"target $D1OPS_TARGET\"; echo token s3cr3t-value >&2; exit 3",
        ))
        .unwrap();
        assert_eq!(out.exit_code, Some(3));
        assert!(!out.succeeded());
        assert!(out.tail.contains("target app"), "{}", out.tail);
        assert!(out.tail.contains("token [redacted]"), "{}", out.tail);
        let log = std::fs::read_to_string(dir.path().join("logs/app.log")).unwrap();
        assert!(log.starts_with("== deploy\n"), "{log}");
        assert!(!log.contains("s3cr3t-value"), "{log}");
        assert!(log.contains("exited 3"), "{log}");
    }

    #[test]
    fn the_time_limit_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = step(dir.path(), "echo started; sleep 30 & sleep 30");
        s.timeout = Duration::from_millis(300);
        let out = run(&s).unwrap();
        assert!(out.timed_out);
        assert!(!out.succeeded());
        assert!(out.summary(s.timeout).contains("timed out after 300ms"));
        assert!(out.tail.contains("started"));
    }

    #[test]
    fn only_the_last_lines_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let out = run(&step(
            dir.path(),
            "for i in $(seq 1 50); do echo line $i; done",
        ))
        .unwrap();
        assert!(out.succeeded());
        assert_eq!(out.tail.lines().count(), TAIL_LINES);
        assert!(out.tail.ends_with("line 50"));
    }

    #[test]
    fn a_missing_working_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = step(dir.path(), "true");
        s.cwd = dir.path().join("nope");
        let err = run(&s).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }
}
