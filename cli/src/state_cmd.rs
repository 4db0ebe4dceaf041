//! `baton state get | update`: JSON state files that many processes update
//! without losing each other's work (the protocol is in
//! `baton_core::state`).

use std::ffi::OsString;
use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::process::Stdio;

use anyhow::Context;
use baton_core::env::real::RealEnv;
use baton_core::env::{Clock, Processes};
use baton_core::hygiene;
use baton_core::lock::{self, Mode};
use baton_core::state::{self, Outcome, STATE_LIMIT, Strategy, UpdateOptions};
use serde_json::json;

use crate::args;
use crate::child;
use crate::exit::Exit;
use crate::lock_cmd::ModeArg;
use crate::report::{self, Reporter};

#[derive(Debug, clap::Args)]
pub struct StateArgs {
    #[command(subcommand)]
    pub command: StateCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum StateCommand {
    /// Print FILE's JSON document (`null` if FILE does not exist). Never
    /// empty or partial, whatever writers are doing.
    Get {
        /// The state file.
        file: PathBuf,
    },
    /// Give FILE's document to CMD on stdin; if CMD exits 0 with JSON on
    /// stdout, replace FILE with it atomically. Concurrent updates are
    /// serialised by FILE's sidecar lock (or, with --cas, checked), so none
    /// is lost.
    Update(UpdateArgs),
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub wait: args::WaitArgs,
    /// Compare-and-swap: run CMD without the lock, replace FILE only if
    /// nobody replaced it meanwhile, else run CMD again (exit 75 after
    /// --attempts). For slow commands and rare conflicts.
    #[arg(long)]
    pub cas: bool,
    /// With --cas: how many times CMD may run before giving up.
    #[arg(long, value_name = "N", default_value = "20", value_parser = args::positive_count, requires = "cas")]
    pub attempts: u64,
    #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
    pub mode: ModeArg,
    /// The state file (JSON).
    pub file: PathBuf,
    /// Exchange the documents over baton's own stdin and stdout instead of
    /// running CMD, one JSON line each way: baton writes
    /// `{"event":"old","document":DOC}` and reads the new document as one
    /// line (EOF or an empty line: nothing changes, exit 1). With --cas a
    /// lost race asks again. For clients in other languages.
    #[arg(long, conflicts_with = "cmd")]
    pub stdio: bool,
    /// The command mapping the old document (stdin) to the new (stdout).
    #[arg(last = true, required_unless_present = "stdio", value_name = "CMD")]
    pub cmd: Vec<OsString>,
}

pub fn run(args: StateArgs, report: Reporter) -> anyhow::Result<Exit> {
    let env = RealEnv::new().context("read process identity from /proc")?;
    match args.command {
        StateCommand::Get { file } => {
            let mut doc = state::get(&env, &file)?;
            if !doc.ends_with(b"\n") {
                doc.push(b'\n');
            }
            let mut out = std::io::stdout().lock();
            out.write_all(&doc)
                .and_then(|()| out.flush())
                .context("write to stdout")?;
            Ok(Exit::Ok)
        }
        StateCommand::Update(args) => update(&env, args, report),
    }
}

fn update(env: &RealEnv, args: UpdateArgs, report: Reporter) -> anyhow::Result<Exit> {
    let wait = args.wait.wait();
    let lock_mode = match args.mode {
        ModeArg::Kernel => Mode::Kernel,
        ModeArg::File => Mode::File,
        ModeArg::Auto => lock::mode_for(env, &args.file)?,
    };
    let strategy = if args.cas {
        Strategy::Cas {
            max_attempts: u32::try_from(args.attempts).unwrap_or(u32::MAX),
        }
    } else {
        Strategy::Locked
    };
    let me = env.identity();
    let mut opts = UpdateOptions::new(strategy, lock_mode, wait);
    opts.instance = format!("{}:{}", me.host, me.pid);
    if let Err(e) = hygiene::exclude_from_git(env, &lock::sidecar_path(&args.file)) {
        report.warning(&format!("cannot hide the lock file from git: {e}"));
    }
    let started = env.monotonic();
    let outcome = state::update(
        env,
        &args.file,
        &opts,
        &mut |e| report.lock_event(&e),
        |old| {
            if args.stdio {
                exchange(&args.file, old)
            } else {
                run_command(&args.cmd, old)
            }
        },
    )?;
    let file = args.file.display();
    let took = env.monotonic().saturating_since(started);
    let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
    match outcome {
        Outcome::Updated { attempts } => {
            if report.json {
                report::stderr_line(
                    &json!({ "event": "updated", "file": args.file, "attempts": attempts, "ms": ms })
                        .to_string(),
                );
            }
            Ok(Exit::Ok)
        }
        Outcome::Busy { attempts } => {
            let why = if attempts == 0 || !args.cas {
                "the lock was not obtained in time".to_owned()
            } else {
                format!("another writer replaced it each time, {attempts} attempts")
            };
            if report.json {
                report::stderr_line(
                    &json!({ "event": "busy", "file": args.file, "attempts": attempts, "detail": why })
                        .to_string(),
                );
            } else {
                report::error_line(&format!("state update: {file}: not updated: {why}"));
            }
            Ok(Exit::Unavailable)
        }
        Outcome::Aborted(exit) => {
            if let Exit::Command(code) = exit {
                report::error_line(&format!(
                    "state update: {file}: command exited with status {code}; {file} untouched"
                ));
            }
            Ok(exit)
        }
    }
}

/// `--stdio`: offers the old document on stdout and reads the new one, a
/// line, from stdin.
fn exchange(file: &std::path::Path, old: &[u8]) -> Result<Vec<u8>, Exit> {
    let file = file.display();
    // The old document is JSON (state::update checked it): one line here.
    let document: serde_json::Value =
        serde_json::from_slice(old).unwrap_or(serde_json::Value::Null);
    report::stdout_line(&json!({ "event": "old", "document": document }).to_string());
    let mut line = Vec::new();
    let read = std::io::stdin()
        .lock()
        .take(STATE_LIMIT + 1)
        .read_until(b'\n', &mut line);
    if let Err(e) = read {
        report::error_line(&format!(
            "state update: {file}: read the new document from stdin: {e}"
        ));
        return Err(Exit::Error);
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        report::error_line(&format!(
            "state update: {file}: the client gave no new document; {file} untouched"
        ));
        return Err(Exit::Error);
    }
    Ok(line)
}

/// Runs `cmd` with `input` on its stdin; its stdout if it exits 0, else
/// how it ended. Its stderr is ours. Signals sent to baton are forwarded.
fn run_command(cmd: &[OsString], input: &[u8]) -> Result<Vec<u8>, Exit> {
    let spawned = child::spawn_with(cmd, &[], false, |c| {
        c.stdin(Stdio::piped()).stdout(Stdio::piped());
    });
    let mut running = match spawned {
        Ok(Ok(running)) => running,
        Ok(Err(exit)) => return Err(exit),
        Err(e) => {
            report::error_line(&format!("{e:#}"));
            return Err(Exit::Error);
        }
    };
    let mut stdin = running.stdin.take().expect("piped");
    let mut stdout = running.stdout.take().expect("piped");
    let (status, output) = std::thread::scope(|s| {
        s.spawn(move || {
            // A command may stop reading early (it ignores its input):
            // a broken pipe here is its choice, not an error.
            let _ = stdin.write_all(input);
        });
        let reader = s.spawn(move || {
            let mut out = Vec::new();
            let read = (&mut stdout).take(STATE_LIMIT + 1).read_to_end(&mut out);
            // Past the limit the document is refused anyway; keep reading
            // (into nothing) so a command writing more never blocks on a
            // full pipe, and ends.
            let _ = std::io::copy(&mut stdout, &mut std::io::sink());
            read.map(|_| out)
        });
        let status = child::supervise(running, None, &|| true);
        (status, reader.join())
    });
    let exit = match status {
        Ok(exit) => exit,
        Err(e) => {
            report::error_line(&format!("{e:#}"));
            return Err(Exit::Error);
        }
    };
    if exit != Exit::Command(0) {
        return Err(exit);
    }
    match output {
        Ok(Ok(out)) => Ok(out),
        _ => {
            report::error_line("state update: reading the command's output failed");
            Err(Exit::Error)
        }
    }
}
