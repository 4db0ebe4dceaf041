//! `baton status`: the ACTIVE-TASKS view of seed 004, derived from the
//! per-instance files (election members, claims), never stored: who is
//! primary, which instances are alive, what each claims, since when.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context;
use baton_core::claims::ClaimStatus;
use baton_core::election::{self, Election, ElectionMode};
use baton_core::env::Fs;
use baton_core::env::real::RealEnv;
use baton_core::lease;
use serde_json::{Value, json};

use crate::claim_cmd::claims_of;
use crate::elect_cmd::{election_dir, leader_json, warn_if_distrusted};
use crate::exit::Exit;
use crate::report;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The election's directory (default as for `elect`; its absence is
    /// an error only when given).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The claims directory (default as for `claim`).
    #[arg(long, value_name = "DIR")]
    pub claims: Option<PathBuf>,
    /// Redraw whenever something changes, until interrupted (polls every
    /// 250 ms).
    #[arg(long)]
    pub watch: bool,
    #[command(flatten)]
    pub backend: crate::etcd_cmd::BackendArgs,
}

pub fn run(args: StatusArgs, json_mode: bool) -> anyhow::Result<Exit> {
    if args.backend.etcd() {
        crate::etcd_cmd::refuse(args.watch, "--watch")?;
        let name = |d: &Option<std::path::PathBuf>| {
            d.as_ref().map_or_else(
                || "default".to_owned(),
                |d| d.to_string_lossy().into_owned(),
            )
        };
        return crate::etcd_cmd::status(
            &args.backend,
            &name(&args.dir),
            &name(&args.claims),
            json_mode,
        );
    }
    let env = RealEnv::new().context("read process identity from /proc")?;
    let explicit = args.dir.is_some();
    let election = election_dir(&env, args.dir)?;
    match env.symlink_metadata(&election.dir) {
        Ok(m) if m.is_dir => warn_if_distrusted(&env, &election)?,
        Ok(_) => anyhow::bail!("status: {}: not a directory", election.dir.display()),
        Err(e) if explicit => anyhow::bail!(
            "status: {}: no election here ({e}); start one with `baton elect --dir {}`",
            election.dir.display(),
            election.dir.display()
        ),
        Err(_) => {}
    }
    let mut last = String::new();
    loop {
        let view = render(&env, &election, args.claims.clone(), json_mode)?;
        if !args.watch {
            report::stdout_line(view.trim_end());
            return Ok(Exit::Ok);
        }
        if view != last {
            // Clear the screen, then draw: a terminal shows one view.
            report::stdout_line(&format!("\x1b[H\x1b[2J{}", view.trim_end()));
            last = view;
        }
        std::thread::park_timeout(Duration::from_millis(250));
    }
}

fn render(
    env: &RealEnv,
    election: &Election,
    claims_dir: Option<PathBuf>,
    json_mode: bool,
) -> anyhow::Result<String> {
    if json_mode {
        return Ok(view_json(env, election, claims_dir)?.to_string());
    }
    let (claims, _) = claims_of(env, claims_dir)?;
    let claim_list = claims.status(env)?;
    let has_election = env.symlink_metadata(&election.dir).is_ok_and(|m| m.is_dir);
    let election_view = if has_election {
        Some(election_view(env, election)?)
    } else {
        None
    };
    let mut out = String::new();
    if let Some((_, text)) = election_view {
        out.push_str(&text);
    }
    let _ = writeln!(out, "claims   {}", claims.dir.display());
    if claim_list.is_empty() {
        let _ = writeln!(out, "claim    none");
    }
    for c in &claim_list {
        let r = &c.record;
        let life = match (c.alive, r.expires_boot_ms, c.expires_in) {
            (false, _, _) => "dead (reapable)".to_owned(),
            (true, None, _) => "held".to_owned(),
            (true, Some(_), Some(left)) => format!("detached, {} s left", left.as_secs()),
            (true, Some(_), None) => "detached, another host".to_owned(),
        };
        let task = if r.task.is_empty() {
            String::new()
        } else {
            format!("  task {:?}", r.task)
        };
        let _ = writeln!(
            out,
            "claim    {:<32} {:<20} since {}  {life}{task}",
            r.path,
            r.id,
            clock_time(r.claimed_at_ms)
        );
    }
    Ok(out)
}

/// The whole view as one JSON object: the election (if there is one) and
/// every claim.
pub fn view_json(
    env: &RealEnv,
    election: &Election,
    claims_dir: Option<PathBuf>,
) -> anyhow::Result<Value> {
    let (claims, _) = claims_of(env, claims_dir)?;
    let claim_list = claims.status(env)?;
    let has_election = env.symlink_metadata(&election.dir).is_ok_and(|m| m.is_dir);
    let mut v = if has_election {
        election_view(env, election)?.0
    } else {
        json!({})
    };
    v["claims_dir"] = json!(claims.dir);
    v["claims"] = json!(claim_list.iter().map(claim_json).collect::<Vec<_>>());
    Ok(v)
}

fn claim_json(c: &ClaimStatus) -> Value {
    let r = &c.record;
    json!({
        "path": r.path, "id": r.id, "task": r.task, "pid": r.pid, "host": r.host,
        "claimed_at_ms": r.claimed_at_ms, "alive": c.alive,
        "detached": r.expires_boot_ms.is_some(),
        "expires_in_s": c.expires_in.map(|d| d.as_secs_f64()),
    })
}

/// `HH:MM:SS` (UTC) of a wall-clock reading in ms, for people.
fn clock_time(ms: u64) -> String {
    let secs = UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

/// The election's part of the view: as JSON, and as lines.
fn election_view(env: &RealEnv, election: &Election) -> anyhow::Result<(Value, String)> {
    let mode = election.recorded_mode(env)?;
    let st = election::status(env, election)?;
    let members: Vec<Value> = st
        .members
        .iter()
        .map(|m| {
            let owner = match &m.owner {
                Ok(r) => serde_json::to_value(r).unwrap_or(Value::Null),
                Err(e) => json!({ "unreadable": e.to_string() }),
            };
            json!({
                "id": m.id,
                "alive": m.alive,
                "why": if m.alive { "its lock is held" } else { "no process holds its lock: dead" },
                "owner": owner,
            })
        })
        .collect();
    let primary = st
        .leader
        .as_ref()
        .filter(|_| st.primary_alive)
        .map(leader_json);
    let lease = lease::current(env, election)?;
    // In lease mode the primary is the lease's holder: files cannot say
    // whether it still renews, only who holds the newest version.
    let lease_primary = lease.as_ref().filter(|l| !l.holder.is_empty());
    let (primary, epoch) = match mode {
        Some(ElectionMode::Lease) => (
            lease_primary.map(|l| json!({ "id": l.holder, "epoch": l.epoch, "seq": l.seq })),
            lease.as_ref().map(|l| l.epoch),
        ),
        _ => (primary, st.leader.as_ref().map(|r| r.epoch)),
    };
    let json = json!({
        "dir": election.dir,
        "mode": mode.map(ElectionMode::name),
        "primary": primary,
        "epoch": epoch,
        "members": members,
        "lease": lease.as_ref().map(|l| json!({ "epoch": l.epoch, "holder": l.holder, "seq": l.seq })),
    });
    let mut out = String::new();
    let _ = writeln!(
        out,
        "election {} ({} mode)",
        election.dir.display(),
        mode.map_or("no", ElectionMode::name)
    );
    if mode == Some(ElectionMode::Lease) {
        match lease_primary {
            Some(l) => {
                let _ = writeln!(
                    out,
                    "primary  {} (lease holder), epoch {}, version {}",
                    l.holder, l.epoch, l.seq
                );
            }
            None => {
                let _ = writeln!(out, "primary  none (lease free or never taken)");
            }
        }
    } else {
        match (&st.leader, st.primary_alive) {
            (Some(r), true) => {
                let _ = writeln!(
                    out,
                    "primary  {} (pid {} on {}), epoch {}",
                    r.id, r.pid, r.host, r.epoch
                );
            }
            (Some(r), false) => {
                let _ = writeln!(out, "primary  none (last: {}, epoch {})", r.id, r.epoch);
            }
            (None, _) => {
                let _ = writeln!(out, "primary  none ever elected");
            }
        }
    }
    if let Some(l) = lease.as_ref().filter(|_| mode != Some(ElectionMode::Lease)) {
        let holder = if l.holder.is_empty() {
            "released"
        } else {
            &l.holder
        };
        let _ = writeln!(
            out,
            "lease    {holder}, epoch {}, version {}",
            l.epoch, l.seq
        );
    }
    for m in &st.members {
        let who = match &m.owner {
            Ok(r) => format!("pid {} on {}", r.pid, r.host),
            Err(e) => e.to_string(),
        };
        let state = if m.alive { "alive" } else { "dead (reapable)" };
        let _ = writeln!(out, "member   {:<32} {state:<16} {who}", m.id);
    }
    Ok((json, out))
}
