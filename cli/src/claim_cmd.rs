//! `baton claim`, `baton release`, `baton who`: per-path claims from the
//! command line (the protocol is in `baton_core::claims`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use baton_core::claims::{ClaimRecord, ClaimStatus, Claimant, Claimed, Claims};
use baton_core::election;
use baton_core::env::real::RealEnv;
use baton_core::env::{Fs, Processes};
use baton_core::hygiene;
use baton_core::lock::Wait;
use serde_json::{Value, json};

use crate::args::{self, UsageError};
use crate::child;
use crate::exit::Exit;
use crate::report;

#[derive(Debug, clap::Args)]
pub struct ClaimsDirArgs {
    /// The claims directory (default: .baton/claims at the repository
    /// root, or in the current directory outside a repository). Paths are
    /// claimed relative to its root: the repository (or that directory).
    #[arg(long = "dir", value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// This instance's id (default: $BATON_ID, else host-pid-starttime;
    /// detached claims need one that lasts: give --id or BATON_ID).
    #[arg(long, value_name = "ID", value_parser = args::instance_id)]
    pub id: Option<String>,
    #[command(flatten)]
    pub backend: crate::etcd_cmd::BackendArgs,
}

impl ClaimsDirArgs {
    /// With `--backend etcd`, `--dir` names the claims' namespace.
    fn namespace(&self) -> String {
        self.dir.as_ref().map_or_else(
            || "default".to_owned(),
            |d| d.to_string_lossy().into_owned(),
        )
    }
}

#[derive(Debug, clap::Args)]
pub struct ClaimArgs {
    #[command(flatten)]
    pub common: ClaimsDirArgs,
    /// What this instance is doing, shown to others.
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub task: String,
    /// Without CMD: the claims expire this long after claiming unless
    /// claimed again (renewed) by the same id.
    #[arg(long, value_name = "SECS", default_value = "300", value_parser = args::positive_secs)]
    pub ttl: Duration,
    /// Wait at most SECS seconds for conflicting claims to go. Without
    /// it, claims do not wait: an agent asks, and does something else.
    #[arg(short = 'w', long = "wait", value_name = "SECS", value_parser = args::wait_secs, conflicts_with = "nonblock")]
    pub wait: Option<Duration>,
    /// Do not wait (the default; for symmetry with `baton lock -n`).
    #[arg(short = 'n', long = "nonblock")]
    pub nonblock: bool,
    /// The paths to claim: files or directories (a directory covers all
    /// beneath it).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Hold the claims while CMD runs, then release them; exit with its
    /// status. Without CMD the claims are detached (see --ttl).
    #[arg(last = true, value_name = "CMD")]
    pub cmd: Vec<OsString>,
}

#[derive(Debug, clap::Args)]
pub struct ReleaseArgs {
    #[command(flatten)]
    pub common: ClaimsDirArgs,
    /// Release claims another instance holds (for a person cleaning up).
    #[arg(long)]
    pub force: bool,
    /// The paths to release (default: all of this id's claims).
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct WhoArgs {
    #[command(flatten)]
    pub common: ClaimsDirArgs,
    /// The path about to be edited.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
}

/// The claims directory, its root, and the current directory.
pub fn claims_of(env: &RealEnv, dir: Option<PathBuf>) -> anyhow::Result<(Claims, PathBuf)> {
    let here = env
        .canonicalize(Path::new("."))
        .context("resolve the current directory")?;
    let root = hygiene::find_repo(env, &here)?.map_or_else(|| here.clone(), |r| r.work_tree);
    let claims = match dir {
        // A given directory's claims are relative to the repository (or
        // the current directory) all the same.
        Some(dir) => Claims::new(here.join(dir), root),
        None => Claims::new(root.join(".baton").join("claims"), root),
    };
    Ok((claims, here))
}

pub fn instance_id(env: &RealEnv, given: Option<String>) -> anyhow::Result<(String, bool)> {
    if let Some(id) = given {
        return Ok((id, true));
    }
    if let Ok(id) = std::env::var("BATON_ID") {
        election::check_id(&id).map_err(|e| UsageError(format!("BATON_ID: {e}")))?;
        return Ok((id, true));
    }
    let me = env.identity();
    Ok((
        election::sanitize_id(&format!("{}-{}-{}", me.host, me.pid, me.start_time)),
        false,
    ))
}

pub fn record_json(r: &ClaimRecord) -> Value {
    json!({
        "path": r.path, "id": r.id, "task": r.task, "pid": r.pid, "host": r.host,
        "claimed_at_ms": r.claimed_at_ms, "detached": r.expires_boot_ms.is_some(),
    })
}

pub fn holder_text(r: &ClaimRecord) -> String {
    let task = if r.task.is_empty() {
        String::new()
    } else {
        format!(", task {:?}", r.task)
    };
    format!("{} (pid {} on {}{task})", r.id, r.pid, r.host)
}

pub fn claim(args: ClaimArgs, json_mode: bool) -> anyhow::Result<Exit> {
    let env = RealEnv::new().context("read process identity from /proc")?;
    let namespace = args.common.namespace();
    let backend = args.common.backend.clone();
    let (claims, here) = claims_of(&env, args.common.dir)?;
    let (id, lasting) = instance_id(&env, args.common.id)?;
    let attached = !args.cmd.is_empty();
    if !attached && !lasting {
        return Err(UsageError(
            "detached claims (no CMD) need an id that lasts, to be renewed and released: give --id or set BATON_ID".to_owned(),
        )
        .into());
    }
    let paths = args
        .paths
        .iter()
        .map(|p| claims.normalise(&env, &here, p))
        .collect::<Result<Vec<_>, _>>()?;
    if backend.etcd() {
        let cmd = &args.cmd;
        return crate::etcd_cmd::claim(
            &backend, &namespace, &id, &args.task, args.ttl, &paths, args.wait, cmd, json_mode,
        );
    }
    let who = Claimant {
        id: id.clone(),
        task: args.task.clone(),
        ttl: (!attached).then_some(args.ttl),
    };
    let wait = args.wait.map_or(Wait::No, Wait::For);
    let held = match claims.claim(&env, &paths, &who, wait)? {
        Claimed::All(held) => held,
        Claimed::Conflict { path, holder } => {
            if json_mode {
                report::stderr_line(
                    &json!({ "event": "conflict", "id": id, "path": path, "holder": record_json(&holder) })
                        .to_string(),
                );
            } else {
                let through = if holder.path == path {
                    String::new()
                } else {
                    format!(" (through {})", holder.path)
                };
                report::error_line(&format!(
                    "claim: {path}: claimed by {}{through}; nothing claimed",
                    holder_text(&holder)
                ));
            }
            return Ok(Exit::Unavailable);
        }
    };
    if json_mode {
        report::stderr_line(
            &json!({
                "event": "claimed", "id": id, "paths": held.paths, "detached": !attached,
                "ttl_s": (!attached).then_some(args.ttl.as_secs_f64()),
            })
            .to_string(),
        );
    }
    if !attached {
        return Ok(Exit::Ok);
    }
    for f in held.files() {
        f.set_inheritable()
            .context("share the claims with the command")?;
    }
    let envs = [("BATON_ID", id.clone())];
    let exit = match child::spawn(&args.cmd, &envs, false)? {
        Ok(running) => child::supervise(running, None, &|| true)?,
        Err(exit) => exit,
    };
    drop(held);
    if json_mode {
        report::stderr_line(&json!({ "event": "released", "id": id }).to_string());
    }
    Ok(exit)
}

pub fn release(args: ReleaseArgs, json_mode: bool) -> anyhow::Result<Exit> {
    let env = RealEnv::new().context("read process identity from /proc")?;
    let namespace = args.common.namespace();
    let backend = args.common.backend.clone();
    let (claims, here) = claims_of(&env, args.common.dir)?;
    let (id, lasting) = instance_id(&env, args.common.id)?;
    if !lasting && !args.force {
        return Err(
            UsageError("release needs --id (or BATON_ID): whose claims?".to_owned()).into(),
        );
    }
    let paths = args
        .paths
        .iter()
        .map(|p| claims.normalise(&env, &here, p))
        .collect::<Result<Vec<_>, _>>()?;
    let selected = (!paths.is_empty()).then_some(paths.as_slice());
    if backend.etcd() {
        crate::etcd_cmd::refuse(args.force, "--force")?;
        return crate::etcd_cmd::release(&backend, &namespace, &id, selected, json_mode);
    }
    let removed = claims.release(&env, &id, selected, args.force)?;
    for r in &removed {
        let forced = r.id != id;
        if json_mode {
            report::stdout_line(
                &json!({ "event": "released", "claim": record_json(r), "forced": forced })
                    .to_string(),
            );
        } else if forced {
            // A person overriding another instance: said, and logged to
            // stderr whatever the output mode.
            report::error_line(&format!(
                "release: {}: forced, it was claimed by {}",
                r.path,
                holder_text(r)
            ));
        }
    }
    Ok(Exit::Ok)
}

pub fn who(args: WhoArgs, json_mode: bool) -> anyhow::Result<Exit> {
    let env = RealEnv::new().context("read process identity from /proc")?;
    let namespace = args.common.namespace();
    let backend = args.common.backend.clone();
    let (claims, here) = claims_of(&env, args.common.dir)?;
    let me = args.common.id.or_else(|| std::env::var("BATON_ID").ok());
    let path = claims.normalise(&env, &here, &args.path)?;
    if backend.etcd() {
        return crate::etcd_cmd::who(&backend, &namespace, &path, json_mode);
    }
    let holders: Vec<ClaimStatus> = claims
        .who(&env, &path)?
        .into_iter()
        .filter(|c| Some(&c.record.id) != me.as_ref())
        .collect();
    if json_mode {
        let held: Vec<Value> = holders.iter().map(|c| record_json(&c.record)).collect();
        report::stdout_line(
            &json!({ "path": path, "free": held.is_empty(), "claims": held }).to_string(),
        );
    } else {
        match holders.first() {
            None => report::stdout_line(&format!("{path}: free")),
            Some(c) => {
                let under = if c.record.path == path {
                    String::new()
                } else {
                    format!(" (through {})", c.record.path)
                };
                report::stdout_line(&format!(
                    "{path}: claimed by {}{under}",
                    holder_text(&c.record)
                ));
            }
        }
    }
    Ok(if holders.is_empty() {
        Exit::Ok
    } else {
        Exit::Unavailable
    })
}
