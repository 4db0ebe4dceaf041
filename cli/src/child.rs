//! Running the command a lock protects.
//!
//! The command inherits the locked descriptor (its close-on-exec flag is
//! cleared before the spawn), so the lock stays held as long as the command
//! runs even if `baton` itself is killed with SIGKILL: the kernel lock
//! belongs to the open file description, which the child shares. That is
//! what util-linux flock(1) does. SIGINT, SIGTERM, SIGHUP and SIGQUIT sent
//! to `baton` by a process (`kill`) are forwarded to the command; the lock
//! is released only after the command has exited.
//!
//! Signals the kernel generates (Ctrl-C, Ctrl-\, a terminal hang-up) are
//! not forwarded: the terminal sends them to its whole foreground process
//! group, and the command, in baton's group, already has its own copy.
//! Forwarding those would deliver Ctrl-C twice. (A `kill` of the whole
//! process group reaches the command twice for the same reason; send it to
//! `baton` alone.)
//!
//! The lock is released when the command exits. A background process the
//! command started and left running inherits the descriptor but not the
//! lock: baton unlocks the description they share (unlike flock(1), which
//! leaves the lock to the last holder of the descriptor). A command that
//! starts background work should wait for it before exiting.

use std::ffi::OsString;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::SignalsInfo;
use signal_hook::iterator::exfiltrator::WithOrigin;
use signal_hook::low_level::siginfo::Cause;

use crate::exit::Exit;

const FORWARDED: [i32; 4] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT];

/// Spawns `cmd` with `envs` added to its environment; maps "not found"
/// and "not executable" to their exit codes. With `die_with_parent`, the
/// command is killed if `baton` dies: for protection that lapses with
/// `baton` (a lease), unlike a kernel lock the command can inherit.
pub fn spawn(
    cmd: &[OsString],
    envs: &[(&str, String)],
    die_with_parent: bool,
) -> Result<Result<Child, Exit>, anyhow::Error> {
    spawn_with(cmd, envs, die_with_parent, |_| {})
}

/// [`spawn`], with `configure` setting up the command first (its stdio).
pub fn spawn_with(
    cmd: &[OsString],
    envs: &[(&str, String)],
    die_with_parent: bool,
    configure: impl FnOnce(&mut Command),
) -> Result<Result<Child, Exit>, anyhow::Error> {
    let (program, args) = cmd.split_first().context("no command given")?;
    let mut command = Command::new(program);
    command.args(args);
    command.envs(envs.iter().map(|(k, v)| (k, v)));
    configure(&mut command);
    if die_with_parent {
        let parent = rustix::process::getpid();
        // SAFETY: the closure runs in the child between fork and exec and
        // makes only async-signal-safe system calls (prctl, getppid), with
        // no allocation or locking.
        unsafe {
            command.pre_exec(move || {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))?;
                // The parent may have died before the prctl took effect.
                if rustix::process::getppid() != Some(parent) {
                    return Err(io::Error::other("baton exited before the command started"));
                }
                Ok(())
            });
        }
    }
    match command.spawn() {
        Ok(child) => Ok(Ok(child)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            crate::report::error_line(&format!("run command: {}: {e}", program.to_string_lossy()));
            Ok(Err(Exit::NotFound))
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            crate::report::error_line(&format!("run command: {}: {e}", program.to_string_lossy()));
            Ok(Err(Exit::CannotExecute))
        }
        Err(e) => Err(e).with_context(|| format!("run command: {}", program.to_string_lossy())),
    }
}

/// Waits for `child`, forwarding signals to it and calling `tick` every
/// `tick_every` meanwhile (a heartbeat, a lease renewal). When `tick`
/// returns false the protection is gone: the child is killed at once.
/// Returns its exit as ours.
pub fn supervise(
    mut child: Child,
    tick_every: Option<Duration>,
    tick: &(dyn Fn() -> bool + Sync),
) -> anyhow::Result<Exit> {
    let mut signals =
        SignalsInfo::<WithOrigin>::new(FORWARDED).context("install signal handlers")?;
    let handle = signals.handle();
    let pid = rustix::process::Pid::from_raw(child.id() as i32).context("child pid")?;
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let status = std::thread::scope(|s| {
        s.spawn(move || {
            for origin in signals.forever() {
                // The terminal's own copy already reached the command.
                if origin.cause == Cause::Kernel {
                    continue;
                }
                if let Some(sig) = rustix::process::Signal::from_named_raw(origin.signal) {
                    // The child may have exited already: nothing to forward to.
                    let _ = rustix::process::kill_process(pid, sig);
                }
            }
        });
        if let Some(every) = tick_every {
            s.spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(every) {
                    if !tick() {
                        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                        break;
                    }
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
