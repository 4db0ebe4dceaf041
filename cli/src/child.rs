//! Running the command a lock protects.
//!
//! The command inherits the locked descriptor (its close-on-exec flag is
//! cleared before the spawn), so the lock stays held as long as the command
//! runs even if `baton` itself is killed with SIGKILL: the kernel lock
//! belongs to the open file description, which the child shares. That is
//! what util-linux flock(1) does. SIGINT, SIGTERM, SIGHUP and SIGQUIT sent
//! to `baton` are forwarded to the command; the lock is released only after
//! the command has exited.

use std::ffi::OsString;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::exit::Exit;

const FORWARDED: [i32; 4] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT];

/// Spawns `cmd`; maps "not found" and "not executable" to their exit codes.
pub fn spawn(cmd: &[OsString]) -> Result<Result<Child, Exit>, anyhow::Error> {
    let (program, args) = cmd.split_first().context("no command given")?;
    match Command::new(program).args(args).spawn() {
        Ok(child) => Ok(Ok(child)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            eprintln!("baton: run command: {}: {e}", program.to_string_lossy());
            Ok(Err(Exit::NotFound))
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            eprintln!("baton: run command: {}: {e}", program.to_string_lossy());
            Ok(Err(Exit::CannotExecute))
        }
        Err(e) => Err(e).with_context(|| format!("run command: {}", program.to_string_lossy())),
    }
}

/// Waits for `child`, forwarding signals to it and calling `tick` every
/// `tick_every` meanwhile (the lock's heartbeat). Returns its exit as ours.
pub fn supervise(
    mut child: Child,
    tick_every: Option<Duration>,
    tick: &(dyn Fn() + Sync),
) -> anyhow::Result<Exit> {
    let mut signals = Signals::new(FORWARDED).context("install signal handlers")?;
    let handle = signals.handle();
    let pid = rustix::process::Pid::from_raw(child.id() as i32).context("child pid")?;
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let status = std::thread::scope(|s| {
        s.spawn(move || {
            for sig in signals.forever() {
                if let Some(sig) = rustix::process::Signal::from_named_raw(sig) {
                    // The child may have exited already: nothing to forward to.
                    let _ = rustix::process::kill_process(pid, sig);
                }
            }
        });
        if let Some(every) = tick_every {
            s.spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(every) {
                    tick();
                }
            });
        }
        let status = child.wait();
        drop(stop_tx);
        handle.close();
        status
    })
    .context("wait for command")?;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Command(u8::try_from(code).unwrap_or(1)),
        (None, Some(sig)) => Exit::Command(128u8.saturating_add(sig as u8)),
        (None, None) => Exit::Error,
    })
}
