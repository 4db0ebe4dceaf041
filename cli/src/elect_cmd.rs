//! `baton elect`, `baton status`, `baton reap`: primary election from the
//! command line.
//!
//! Without a command, `elect` is the interface a plugin consumes: one JSON
//! line per event on stdout (`joined`, `standby` with the primary's id,
//! `elected` with the epoch), holding its place until stdin closes or it is
//! signalled, then leaving cleanly (`left`). With a command, it campaigns,
//! runs the command while primary (the command inherits the leadership's
//! locked descriptor, so killing `baton` never lets a second primary in
//! while the command runs) and exits with its status.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use baton_core::election::{self, Election, LeaderRecord, Leadership};
use baton_core::env::real::RealEnv;
use baton_core::env::{Fs, Processes};
use baton_core::hygiene;
use baton_core::lease::{self, LeaseTiming};
use baton_core::lock::Wait;
use serde_json::{Value, json};

use crate::args;
use crate::child;
use crate::exit::Exit;
use crate::report;

/// How often a campaign looks up from waiting to check it should stop.
/// The wait itself is woken by the kernel the moment the primary goes.
const STOP_CHECK: Duration = Duration::from_millis(250);

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ElectMode {
    /// The primary holds a kernel lock (local filesystems).
    Kernel,
    /// The primary holds a renewed lease (network filesystems); its actions
    /// must be fenced by epoch.
    Lease,
}

#[derive(Debug, clap::Args)]
pub struct ElectArgs {
    /// The election's directory (default: .baton/election at the
    /// repository root, or in the current directory outside a repository).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// This instance's id (default: host-pid-starttime): letters, digits
    /// and ._:@+-, not starting with . or -, at most 128 bytes.
    #[arg(long, value_name = "ID", value_parser = args::instance_id)]
    pub id: Option<String>,
    #[arg(long, value_enum, default_value_t = ElectMode::Kernel)]
    pub mode: ElectMode,
    /// Lease mode: the lease duration. The primary renews every 2/15 of it
    /// and stops acting 2/3 of it after its last renewal; a challenger
    /// takes over after seeing it unrenewed for all of it.
    #[arg(long, value_name = "SECS", default_value = "15", value_parser = args::positive_secs)]
    pub ttl: Duration,
    /// Kernel mode, without a command: while primary, step down for a live
    /// member with a smaller id (preference, never safety).
    #[arg(long, conflicts_with = "cmd")]
    pub hand_over: bool,
    #[command(flatten)]
    pub backend: crate::etcd_cmd::BackendArgs,
    /// The command to run while primary.
    #[arg(last = true, value_name = "CMD")]
    pub cmd: Vec<OsString>,
}

#[derive(Debug, clap::Args)]
pub struct DirArgs {
    /// The election's directory (default as for `elect`).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ReapArgs {
    #[command(flatten)]
    pub dir: DirArgs,
    /// Say what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `.baton/election` at the repository root (or here, outside one).
pub(crate) fn election_dir(env: &RealEnv, dir: Option<PathBuf>) -> anyhow::Result<Election> {
    if let Some(dir) = dir {
        return Ok(Election::new(dir));
    }
    let here = env
        .canonicalize(Path::new("."))
        .context("resolve the current directory")?;
    let root = hygiene::find_repo(env, &here)?.map_or(here, |r| r.work_tree);
    Ok(Election::new(root.join(".baton").join("election")))
}

/// Warns (stderr, one line each) about an election directory, or the one
/// holding it, that anyone may write or another user owns.
pub(crate) fn warn_if_distrusted(env: &RealEnv, election: &Election) -> anyhow::Result<()> {
    let me = rustix::process::geteuid().as_raw();
    for dir in [Some(election.dir.as_path()), election.dir.parent()]
        .into_iter()
        .flatten()
        .filter(|d| !d.as_os_str().is_empty())
    {
        if let Some(why) = election::distrust(env, dir, me)? {
            report::stderr_line(&format!("baton: warning: {why}"));
        }
    }
    Ok(())
}

fn print(line: &Value) {
    report::stdout_line(&line.to_string());
}

pub(crate) fn leader_json(r: &LeaderRecord) -> Value {
    serde_json::to_value(r).unwrap_or(Value::Null)
}

/// Set when stdin closes or a stop signal arrives.
fn stop_flag(watch_stdin: bool) -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("install signal handler")?;
    }
    if watch_stdin {
        let flag = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("baton-stdin".into())
            .spawn(move || {
                let mut sink = [0u8; 256];
                let mut stdin = std::io::stdin().lock();
                while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
                flag.store(true, Ordering::SeqCst);
            })
            .context("watch stdin")?;
    }
    Ok(stop)
}

/// Waits to become primary, until `stop`, saying `standby` with the
/// primary's id and epoch at first and again whenever they change (a
/// failover to another member is news to a standby).
fn campaign<'e>(
    env: &'e RealEnv,
    election: &Election,
    member: &election::Member<'e, RealEnv>,
    stop: &AtomicBool,
    announce: &mut dyn FnMut(Value),
) -> anyhow::Result<Option<Leadership<'e, RealEnv>>> {
    let mut said: Option<Option<(String, u64)>> = None;
    while !stop.load(Ordering::SeqCst) {
        if let Some(l) =
            election::campaign(env, election, member, Wait::For(STOP_CHECK), &mut |_| {})?
        {
            return Ok(Some(l));
        }
        let primary = election.leader_record(env)?.map(|r| (r.id, r.epoch));
        if said.as_ref() != Some(&primary) {
            let (id, epoch) = primary.clone().unzip();
            announce(json!({
                "event": "standby", "id": member.id, "primary": id, "epoch": epoch,
            }));
            said = Some(primary);
        }
    }
    Ok(None)
}

pub fn elect(args: ElectArgs, json_mode: bool) -> anyhow::Result<Exit> {
    let env = RealEnv::new().context("read process identity from /proc")?;
    let me = env.identity();
    let id = args.id.clone().unwrap_or_else(|| {
        election::sanitize_id(&format!("{}-{}-{}", me.host, me.pid, me.start_time))
    });
    let with_cmd = !args.cmd.is_empty();
    // Events go to stdout without a command (the plugin interface), to
    // stderr with one (stdout is the command's), as JSON when asked.
    let mut announce = |event: Value| {
        if !with_cmd {
            print(&event);
        } else if json_mode {
            report::stderr_line(&event.to_string());
        } else {
            report::stderr_line(&format!("baton: {}", human(&event)));
        }
    };
    if args.backend.etcd() {
        return elect_etcd(&args, &id, &mut announce);
    }
    let election = election_dir(&env, args.dir.clone())?;
    warn_if_distrusted(&env, &election)?;
    if args.hand_over && args.mode == ElectMode::Lease {
        return Err(args::UsageError(
            "--hand-over applies to kernel mode only: a lease is never handed over".to_owned(),
        )
        .into());
    }
    let stop = stop_flag(!with_cmd)?;
    match args.mode {
        ElectMode::Kernel => elect_kernel(
            &env,
            &election,
            &id,
            &args.cmd,
            args.hand_over,
            &stop,
            &mut announce,
        ),
        ElectMode::Lease => {
            let ttl = args.ttl;
            if ttl < Duration::from_millis(150) {
                return Err(args::UsageError(format!(
                    "--ttl {}: a lease shorter than 0.15 s cannot be renewed in time",
                    ttl.as_secs_f64()
                ))
                .into());
            }
            let timing = LeaseTiming::from_lease(ttl);
            elect_lease(
                &env,
                &election,
                &id,
                timing,
                &args.cmd,
                &stop,
                &mut announce,
            )
        }
    }
}

/// `--backend etcd`: `--dir` names the election (default `default`).
fn elect_etcd(args: &ElectArgs, id: &str, announce: &mut dyn FnMut(Value)) -> anyhow::Result<Exit> {
    crate::etcd_cmd::refuse(args.hand_over, "--hand-over")?;
    crate::etcd_cmd::refuse(args.mode != ElectMode::Kernel, "--mode")?;
    let name = match &args.dir {
        Some(d) => d
            .to_str()
            .context("elect: an etcd election's name must be UTF-8")?
            .to_owned(),
        None => "default".to_owned(),
    };
    let stop = stop_flag(args.cmd.is_empty())?;
    crate::etcd_cmd::elect(&args.backend, &name, id, &args.cmd, &stop, announce)
}

fn elect_kernel(
    env: &RealEnv,
    election: &Election,
    id: &str,
    cmd: &[OsString],
    hand_over: bool,
    stop: &AtomicBool,
    announce: &mut dyn FnMut(Value),
) -> anyhow::Result<Exit> {
    let member = election::join(env, election, id)?;
    announce(json!({ "event": "joined", "id": id, "dir": election.dir, "mode": "kernel" }));
    loop {
        let Some(leadership) = campaign(env, election, &member, stop, announce)? else {
            drop(member);
            announce(json!({ "event": "left", "id": id }));
            return Ok(Exit::Ok);
        };
        let epoch = leadership.epoch();
        announce(json!({
            "event": "elected", "id": id, "epoch": epoch,
            "leader": leader_json(&leadership.record),
        }));
        if !cmd.is_empty() {
            leadership
                .file()
                .set_inheritable()
                .context("share leadership with the command")?;
            let envs = [
                ("BATON_EPOCH", epoch.to_string()),
                ("BATON_ID", id.to_owned()),
            ];
            let exit = match child::spawn(cmd, &envs, false)? {
                Ok(running) => child::supervise(running, None, &|| true)?,
                Err(exit) => exit,
            };
            leadership.step_down()?;
            drop(member);
            announce(json!({ "event": "stepped-down", "id": id, "epoch": epoch }));
            return Ok(exit);
        }
        let mut successor = None;
        while !stop.load(Ordering::SeqCst) && successor.is_none() {
            std::thread::park_timeout(STOP_CHECK);
            if hand_over {
                successor = election::preferred(env, election, id)?;
            }
        }
        leadership.step_down()?;
        let Some(to) = successor else {
            drop(member);
            announce(json!({ "event": "stepped-down", "id": id, "epoch": epoch }));
            return Ok(Exit::Ok);
        };
        announce(json!({ "event": "handed-over", "id": id, "epoch": epoch, "to": to }));
        // Let the preferred member take the term before campaigning again
        // (it is already waiting on the lock; give up waiting if it died).
        for _ in 0..400 {
            if election
                .leader_record(env)?
                .is_none_or(|r| r.epoch != epoch)
            {
                break;
            }
            std::thread::park_timeout(Duration::from_millis(5));
        }
    }
}

/// Lease mode: campaign, hold by renewing, say `lost` if a renewal fails
/// (and kill the command, which dies with `baton` too: a lease does not
/// outlive its renewer), campaign again.
fn elect_lease(
    env: &RealEnv,
    election: &Election,
    id: &str,
    timing: LeaseTiming,
    cmd: &[OsString],
    stop: &AtomicBool,
    announce: &mut dyn FnMut(Value),
) -> anyhow::Result<Exit> {
    announce(json!({ "event": "joined", "id": id, "dir": election.dir, "mode": "lease" }));
    loop {
        let mut said: Option<Option<(String, u64)>> = None;
        let mut challenger = lease::Challenger::new(env, election, id, timing)?;
        let mut holder = loop {
            if stop.load(Ordering::SeqCst) {
                announce(json!({ "event": "left", "id": id }));
                return Ok(Exit::Ok);
            }
            if let Some(h) = challenger.attempt()? {
                break h;
            }
            std::thread::park_timeout(timing.retry.min(STOP_CHECK));
            let primary = lease::current(env, election)?
                .filter(|r| !r.holder.is_empty())
                .map(|r| (r.holder, r.epoch));
            if said.as_ref() != Some(&primary) {
                let (holder, epoch) = primary.clone().unzip();
                announce(json!({
                    "event": "standby", "id": id, "primary": holder, "epoch": epoch,
                }));
                said = Some(primary);
            }
        };
        let epoch = holder.epoch();
        announce(json!({ "event": "elected", "id": id, "epoch": epoch, "mode": "lease" }));
        if !cmd.is_empty() {
            let lost = AtomicBool::new(false);
            let shared = Mutex::new(holder);
            let envs = [
                ("BATON_EPOCH", epoch.to_string()),
                ("BATON_ID", id.to_owned()),
            ];
            let exit = match child::spawn(cmd, &envs, true)? {
                Ok(running) => child::supervise(running, Some(timing.retry), &|| {
                    let renewed = shared
                        .lock()
                        .map(|mut h| matches!(h.renew(), Ok(true)))
                        .unwrap_or(false);
                    lost.store(!renewed, Ordering::SeqCst);
                    renewed
                })?,
                Err(exit) => exit,
            };
            let holder = shared.into_inner().unwrap_or_else(|e| e.into_inner());
            if lost.load(Ordering::SeqCst) {
                announce(json!({ "event": "lost", "id": id, "epoch": epoch }));
                anyhow::bail!("lost the lease of epoch {epoch}: the command was stopped");
            }
            holder.release()?;
            announce(json!({ "event": "stepped-down", "id": id, "epoch": epoch }));
            return Ok(exit);
        }
        loop {
            std::thread::park_timeout(timing.retry);
            if stop.load(Ordering::SeqCst) {
                holder.release()?;
                announce(json!({ "event": "stepped-down", "id": id, "epoch": epoch }));
                return Ok(Exit::Ok);
            }
            if !matches!(holder.renew(), Ok(true)) {
                announce(json!({ "event": "lost", "id": id, "epoch": epoch }));
                break;
            }
        }
    }
}

fn human(event: &Value) -> String {
    match event["event"].as_str() {
        Some("joined") => format!("joined election {} as {}", event["dir"], event["id"]),
        Some("standby") => format!("standby (primary: {})", event["primary"]),
        Some("elected") => format!("elected primary, epoch {}", event["epoch"]),
        Some("stepped-down") => format!("stepped down from epoch {}", event["epoch"]),
        Some("lost") => format!("lost the lease of epoch {}", event["epoch"]),
        Some("handed-over") => format!(
            "handed over to {} after epoch {}",
            event["to"], event["epoch"]
        ),
        _ => event.to_string(),
    }
}

pub fn reap(args: ReapArgs, json_mode: bool) -> anyhow::Result<Exit> {
    let env = RealEnv::new().context("read process identity from /proc")?;
    let election = election_dir(&env, args.dir.dir)?;
    let reaped = election::reap(&env, &election, args.dry_run)?;
    for r in &reaped {
        let owner = r.owner.as_ref().ok();
        let why = match owner {
            Some(o) => format!(
                "no process holds its lock: owner pid {} on {} is dead",
                o.pid, o.host
            ),
            None => "no process holds its lock: owner dead".to_owned(),
        };
        if json_mode {
            print(&json!({
                "event": if args.dry_run { "would-reap" } else { "reaped" },
                "path": r.path,
                "why": "owner-dead",
                "detail": why,
                "owner": owner.map(|o| serde_json::to_value(o).unwrap_or(Value::Null)),
            }));
        } else {
            let verb = if args.dry_run { "would reap" } else { "reaped" };
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{verb} {}: {why}", r.path.display());
        }
    }
    Ok(Exit::Ok)
}
