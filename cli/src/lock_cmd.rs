//! `baton lock`: run a command holding a file's sidecar lock.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use baton_core::env::Processes;
use baton_core::env::real::RealEnv;
use baton_core::hygiene;
use baton_core::lock::{self, LockOptions, Mode, Wait};

use crate::args;
use crate::child;
use crate::exit::Exit;
use crate::report::Reporter;

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
    /// The file to lock; the lock is FILE.baton.lock beside it.
    pub file: PathBuf,
    /// The command to run while holding the lock.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub cmd: Vec<OsString>,
}

pub fn run(args: LockArgs, report: Reporter) -> anyhow::Result<Exit> {
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
        instance: args.id.unwrap_or_else(|| format!("{}:{}", me.host, me.pid)),
    };
    if let Err(e) = hygiene::exclude_from_git(&env, &lock::sidecar_path(&args.file)) {
        report.warning(&format!("cannot hide the lock file from git: {e}"));
    }
    let acquired = lock::acquire(&env, &args.file, &opts, &mut |e| report.lock_event(&e))?;
    let Some(guard) = acquired else {
        let waited = match wait {
            Wait::For(d) => d,
            _ => Duration::ZERO,
        };
        report.timed_out(&lock::sidecar_path(&args.file), waited);
        return Ok(Exit::Unavailable);
    };
    report.acquired(
        guard.path(),
        mode,
        &guard.token().to_string(),
        guard.waited(),
    );
    guard
        .file()
        .set_inheritable()
        .with_context(|| format!("share lock with command: {}", guard.path().display()))?;
    let exit = match child::spawn(
        &args.cmd,
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
