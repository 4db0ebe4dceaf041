//! `baton lock`: run a command holding a file's sidecar lock, with
//! util-linux flock(1)'s options where they make sense for baton (the
//! README's table lists each difference).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use baton_core::env::real::{RealEnv, RealFile};
use baton_core::env::{Clock, OpenFile, Processes};
use baton_core::hygiene;
use baton_core::lock::{self, LockOptions, Mode, Wait};

use crate::args::{self, UsageError};
use crate::child;
use crate::exit::Exit;
use crate::report::{self, Reporter};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    /// Kernel mode on local filesystems, exclusive-file mode on network ones.
    Auto,
    /// flock(2) on a sidecar that is never removed.
    Kernel,
    /// The sidecar's existence is the lock (O_EXCL semantics, reaped when stale).
    File,
}

#[derive(Debug, clap::Args)]
pub struct LockArgs {
    #[command(flatten)]
    pub wait: args::WaitArgs,
    #[command(flatten)]
    pub backend: crate::etcd_cmd::BackendArgs,
    /// A shared lock: many holders at once, none while an exclusive lock
    /// is held (kernel mode only)
    #[arg(short = 's', long, conflicts_with_all = ["exclusive", "unlock"])]
    pub shared: bool,
    /// An exclusive lock (the default)
    #[arg(short = 'x', short_alias = 'e', long, conflicts_with = "unlock")]
    pub exclusive: bool,
    /// With a descriptor: drop its lock
    #[arg(short = 'u', long)]
    pub unlock: bool,
    /// Exit with N, not 75, when the lock is not obtained in time
    #[arg(short = 'E', long = "conflict-exit-code", value_name = "N")]
    pub conflict_exit_code: Option<u8>,
    /// Do not let the command inherit the lock: it is released when baton
    /// exits, even if the command lives on
    #[arg(short = 'o', long)]
    pub close: bool,
    /// Run STRING with `$SHELL -c` (else /bin/sh) instead of CMD
    #[arg(
        short = 'c',
        long = "command",
        value_name = "STRING",
        conflicts_with = "cmd"
    )]
    pub command: Option<OsString>,
    /// Say how long the lock took and what runs, on stdout (as flock does)
    #[arg(long)]
    pub verbose: bool,
    /// Exclusive-file mode: reap a lock whose owner cannot be checked after
    /// seeing it unchanged this long.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = args::positive_secs)]
    pub stale: Duration,
    #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
    pub mode: ModeArg,
    /// Instance name written into the lock's owner record (letters,
    /// digits and ._:@+-).
    #[arg(long, value_name = "ID", value_parser = args::instance_id)]
    pub id: Option<String>,
    /// The file to lock (the lock is FILE.baton.lock beside it), or, with no
    /// command, an inherited file descriptor to lock as `flock FD` does.
    #[arg(value_name = "FILE|FD")]
    pub file: PathBuf,
    /// The command to run while holding the lock (`--` before it is
    /// optional, as with flock).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub cmd: Vec<OsString>,
}

/// The descriptor number `file` spells, if it is one.
fn descriptor(file: &Path) -> Option<i32> {
    let s = file.to_str()?;
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

pub fn run(args: LockArgs, report: Reporter) -> anyhow::Result<Exit> {
    let conflict = args
        .conflict_exit_code
        .map_or(Exit::Unavailable, Exit::Command);
    let cmd: Vec<OsString> = match &args.command {
        Some(string) => {
            let shell = std::env::var_os("SHELL")
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "/bin/sh".into());
            vec![shell, "-c".into(), string.clone()]
        }
        None => args.cmd.clone(),
    };
    if args.backend.etcd() {
        return lock_etcd(&args, &cmd, conflict, report);
    }
    if cmd.is_empty() {
        let Some(fd) = descriptor(&args.file) else {
            return Err(UsageError(format!(
                "lock {}: give a command (-- CMD..., or -c STRING), or a file descriptor number",
                args.file.display()
            ))
            .into());
        };
        return lock_descriptor(&args, fd, conflict);
    }
    if args.unlock {
        return Err(UsageError(
            "lock: -u/--unlock drops a descriptor's lock: give a descriptor number and no command"
                .to_owned(),
        )
        .into());
    }
    let env = RealEnv::new().context("read process identity from /proc")?;
    let wait = args.wait.wait();
    let mode = match args.mode {
        ModeArg::Kernel => Mode::Kernel,
        ModeArg::File => Mode::File,
        ModeArg::Auto => lock::mode_for(&env, &args.file)?,
    };
    let stale = args.stale;
    let me = env.identity();
    let opts = LockOptions {
        mode,
        wait,
        stale,
        instance: args
            .id
            .clone()
            .unwrap_or_else(|| format!("{}:{}", me.host, me.pid)),
        shared: args.shared,
    };
    if let Err(e) = hygiene::exclude_from_git(&env, &lock::sidecar_path(&args.file)) {
        report.warning(&format!("cannot hide the lock file from git: {e}"));
    }
    let started = env.monotonic();
    let acquired = lock::acquire(&env, &args.file, &opts, &mut |e| report.lock_event(&e))?;
    let Some(guard) = acquired else {
        let waited = match wait {
            Wait::For(d) => d,
            _ => Duration::ZERO,
        };
        report.timed_out(&lock::sidecar_path(&args.file), waited);
        return Ok(conflict);
    };
    if args.verbose {
        verbose_took(env.monotonic().saturating_since(started));
        report::stdout_line(&format!(
            "baton: lock: executing {}",
            cmd[0].to_string_lossy()
        ));
    }
    report.acquired(
        guard.path(),
        mode,
        &guard.token().to_string(),
        guard.waited(),
    );
    if !args.close {
        guard
            .file()
            .set_inheritable()
            .with_context(|| format!("share lock with command: {}", guard.path().display()))?;
    }
    let exit = match child::spawn(
        &cmd,
        &[("BATON_LOCK_TOKEN", guard.token().to_string())],
        false,
    )? {
        Ok(running) => {
            let heartbeat = (mode == Mode::File).then_some(stale / 3);
            child::supervise(running, heartbeat, &|| {
                if let Err(e) = guard.heartbeat() {
                    crate::report::error_line(&e.to_string());
                }
                // A missed heartbeat does not lose the lock: a live holder
                // keeps its inode locked, so nobody reaps it.
                true
            })?
        }
        Err(exit) => exit,
    };
    let (path, held) = (guard.path().to_owned(), guard.held());
    let outcome = guard.release()?;
    report.released(&path, held, outcome);
    Ok(exit)
}

/// `--backend etcd`: FILE names the lock; no sidecar is made.
fn lock_etcd(
    args: &LockArgs,
    cmd: &[OsString],
    conflict: Exit,
    report: Reporter,
) -> anyhow::Result<Exit> {
    use crate::etcd_cmd::refuse;
    refuse(args.shared, "-s/--shared")?;
    refuse(args.unlock, "-u/--unlock")?;
    refuse(args.close, "-o/--close")?;
    refuse(args.mode != ModeArg::Auto, "--mode")?;
    if cmd.is_empty() {
        return Err(UsageError(format!(
            "lock {}: --backend etcd needs a command (-- CMD..., or -c STRING)",
            args.file.display()
        ))
        .into());
    }
    let name = args
        .file
        .to_str()
        .context("lock: an etcd lock's name must be UTF-8")?;
    let env = RealEnv::new().context("read process identity from /proc")?;
    let me = env.identity();
    let id = args
        .id
        .clone()
        .unwrap_or_else(|| format!("{}:{}", me.host, me.pid));
    crate::etcd_cmd::lock(
        &args.backend,
        name,
        &id,
        args.wait.wait(),
        cmd,
        conflict,
        report.json,
    )
}

fn verbose_took(took: Duration) {
    report::stdout_line(&format!(
        "baton: lock: getting lock took {:.6} seconds",
        took.as_secs_f64()
    ));
}

/// `baton lock [-s|-x|-u] FD`: `flock(2)` on the open file description the
/// shell gave us as `fd`, which keeps the lock after baton exits. No
/// sidecar and no owner record: the descriptor names the file.
fn lock_descriptor(args: &LockArgs, fd: i32, conflict: Exit) -> anyhow::Result<Exit> {
    let file = RealFile::inherited(fd)
        .with_context(|| format!("lock: descriptor {fd} (is it open? `9>FILE` opens one)"))?;
    if args.unlock {
        file.unlock()
            .with_context(|| format!("lock: unlock descriptor {fd}"))?;
        return Ok(Exit::Ok);
    }
    let timeout = match args.wait.wait() {
        Wait::No => Some(Duration::ZERO),
        Wait::For(d) => Some(d),
        Wait::Forever => None,
    };
    let env = RealEnv::new().context("read process identity from /proc")?;
    let started = env.monotonic();
    let got = match (args.shared, timeout) {
        (true, Some(Duration::ZERO)) => file.try_lock_shared(),
        (true, t) => file.lock_shared(t),
        (false, Some(Duration::ZERO)) => file.try_lock(),
        (false, t) => file.lock(t),
    }
    .with_context(|| format!("lock: descriptor {fd}"))?;
    if args.verbose {
        verbose_took(env.monotonic().saturating_since(started));
    }
    Ok(if got { Exit::Ok } else { conflict })
}
