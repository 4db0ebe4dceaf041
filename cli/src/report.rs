//! What baton tells people and programs while it works.
//!
//! Human mode: a line on stderr for what is worth knowing (reaped, timed
//! out; waiting, when stderr is a terminal), nothing when all goes smoothly. `--json`: one JSON object per event, each
//! with an `event` field named by a past-tense verb (or `waiting`). Events
//! go to stderr under `baton lock`, whose stdout belongs to the command.
//!
//! Every line is written with one `write` call ([`stderr_line`],
//! [`stdout_line`]): several baton processes often share one stderr (a
//! plugin host, a CI log), and a line written in pieces interleaves with
//! theirs. `O_APPEND` pipes and terminals keep one `write` of a line whole
//! (up to `PIPE_BUF`, 4096 bytes, for a pipe).

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use baton_core::lock::{LockEvent, Mode, Release};
use baton_core::record::{OwnerRecord, RecordError};
use serde_json::{Value, json};

/// Writes `line` and a newline to stderr in one `write` call.
pub fn stderr_line(line: &str) {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    let _ = std::io::stderr().lock().write_all(&bytes);
}

/// Writes `line` and a newline to stdout in one `write` call, and flushes.
pub fn stdout_line(line: &str) {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&bytes).and_then(|()| out.flush());
}

/// An error as baton reports one: `baton: <what failed>: <path>: <cause>`,
/// one line even if the cause spans several.
pub fn error_line(message: &str) {
    stderr_line(&format!("baton: {}", message.replace('\n', " ")));
}

/// Writes `bytes` to `path`, which must not exist yet: baton never
/// overwrites a file it did not create, and `O_CREAT|O_EXCL` refuses a
/// symlink planted at the name too. A write that fails (a full disk)
/// removes the file it made, if the name still points at it, so nothing
/// partial is left.
pub fn write_new_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use anyhow::Context;
    use baton_core::env::real::RealEnv;
    use baton_core::env::{Fs, OpenFile};

    let env = RealEnv::new().context("read process identity from /proc")?;
    let file = env.create_new(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!(
                "{}: exists; baton writes only new files (remove it or name another)",
                path.display()
            )
        } else {
            anyhow::anyhow!("{}: cannot create: {e}", path.display())
        }
    })?;
    if let Err(e) = file.write_all_at(bytes, 0) {
        let ours = file.metadata().ok().map(|m| m.id);
        if ours.is_some() && env.symlink_metadata(path).ok().map(|m| m.id) == ours {
            let _ = env.remove_file(path);
        }
        return Err(anyhow::anyhow!("{}: cannot write: {e}", path.display()));
    }
    Ok(())
}

/// `n` per second of `took` (0 for work too quick to time).
pub fn per_second(n: u64, took: Duration) -> u64 {
    let secs = took.as_secs_f64();
    if secs < 1e-4 {
        0
    } else {
        (n as f64 / secs) as u64
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Reporter {
    pub json: bool,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn owner_json(owner: &Result<OwnerRecord, RecordError>) -> Value {
    match owner {
        Ok(r) => serde_json::to_value(r).unwrap_or(Value::Null),
        Err(e) => json!({ "unreadable": e.to_string() }),
    }
}

fn owner_text(owner: &Result<OwnerRecord, RecordError>) -> String {
    match owner {
        Ok(r) => format!("held by {r}"),
        Err(e) => format!("holder unknown: {e}"),
    }
}

impl Reporter {
    fn emit(&self, value: Value) {
        stderr_line(&value.to_string());
    }

    fn say(&self, line: std::fmt::Arguments<'_>) {
        stderr_line(&format!("baton: {line}"));
    }

    pub fn lock_event(&self, event: &LockEvent) {
        match (self.json, event) {
            (true, LockEvent::Waiting { lock, holder }) => self.emit(json!({
                "event": "waiting", "lock": lock, "holder": owner_json(holder),
            })),
            (true, LockEvent::Reaped { lock, owner, why }) => self.emit(json!({
                "event": "reaped", "lock": lock, "why": why.code(),
                "detail": why.to_string(), "owner": owner_json(owner),
            })),
            (true, LockEvent::CannotReap { lock, why }) => self.emit(json!({
                "event": "cannot-reap", "lock": lock, "detail": why,
            })),
            // Scripts want flock(1)'s silence; a person at a terminal wants
            // to know why nothing happens.
            (false, LockEvent::Waiting { .. }) if !std::io::stderr().is_terminal() => {}
            (false, LockEvent::Waiting { lock, holder }) => self.say(format_args!(
                "waiting for lock {} ({})",
                lock.display(),
                owner_text(holder)
            )),
            (false, LockEvent::Reaped { lock, owner, why }) => self.say(format_args!(
                "reaped lock {}: {why} ({})",
                lock.display(),
                owner_text(owner)
            )),
            (false, LockEvent::CannotReap { lock, why }) => {
                self.say(format_args!("cannot reap lock {}: {why}", lock.display()))
            }
        }
    }

    pub fn warning(&self, detail: &str) {
        if self.json {
            self.emit(json!({ "event": "warning", "detail": detail }));
        } else {
            self.say(format_args!("warning: {detail}"));
        }
    }

    pub fn acquired(&self, lock: &Path, mode: Mode, token: &str, waited: Duration) {
        if self.json {
            self.emit(json!({
                "event": "acquired", "lock": lock, "mode": mode.name(),
                "token": token, "waited_ms": ms(waited),
            }));
        }
    }

    pub fn timed_out(&self, lock: &Path, waited: Duration) {
        if self.json {
            self.emit(json!({ "event": "timed-out", "lock": lock, "waited_ms": ms(waited) }));
        } else {
            self.say(format_args!(
                "lock {} not obtained after {} ms",
                lock.display(),
                ms(waited)
            ));
        }
    }

    pub fn released(&self, lock: &Path, held: Duration, outcome: Release) {
        match (self.json, outcome) {
            (true, _) => self.emit(json!({
                "event": "released", "lock": lock, "held_ms": ms(held),
                "lost": outcome == Release::Lost,
            })),
            (false, Release::Lost) => self.say(format_args!(
                "lock {} was removed by someone else while held",
                lock.display()
            )),
            (false, Release::Released) => {}
        }
    }
}
