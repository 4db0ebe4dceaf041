//! `baton txn`: claim a scope, run a command that edits it, commit exactly
//! the scope, release (the protocol is in `baton_core::txn`).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::Context;
use baton_core::claims::{Claimant, Claims};
use baton_core::env::git::Git;
use baton_core::env::real::RealEnv;
use baton_core::env::{Clock, Fs};
use baton_core::lock::Wait;
use baton_core::txn::{self, Begun, Entry, Finished, Plan, Recovery, TxnError};
use serde_json::json;

use crate::args;
use crate::child;
use crate::claim_cmd::{holder_text, instance_id};
use crate::commit_cmd::{self, Opened};
use crate::exit::Exit;
use crate::report;

#[derive(Debug, clap::Args)]
pub struct TxnArgs {
    /// The paths the command edits: claimed (all or nothing) before it
    /// runs, checked to match HEAD, committed after it.
    #[arg(long, value_name = "PATH", num_args = 1.., required_unless_present_any = ["list", "recover"])]
    pub scope: Vec<PathBuf>,
    /// The commit message.
    #[arg(short = 'm', long = "message", value_name = "MSG", required_unless_present_any = ["list", "recover"])]
    pub message: Vec<String>,
    /// Wait up to SECS for another transaction's overlapping scope (default:
    /// do not wait; exit 75).
    #[arg(short = 'w', long = "wait", value_name = "SECS", value_parser = args::wait_secs)]
    pub wait: Option<std::time::Duration>,
    /// This instance's id (default: $BATON_ID, else host-pid-start).
    #[arg(long, value_parser = args::instance_id)]
    pub id: Option<String>,
    /// The claims directory (default: .baton/claims at the repository's top,
    /// shared with `baton claim` and `baton who`).
    #[arg(long = "dir", value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Run as if started in REPO.
    #[arg(short = 'C', value_name = "REPO")]
    pub repo: Option<PathBuf>,
    /// Fail without committing if the command changed files outside the
    /// scope (default: warn).
    #[arg(long)]
    pub strict: bool,
    /// Skip git's commit hooks.
    #[arg(short = 'n', long)]
    pub no_verify: bool,
    /// Commit onto a detached HEAD.
    #[arg(long)]
    pub detach_ok: bool,
    /// List transactions' journals (running, or dead with their edits
    /// left in the work tree).
    #[arg(long, conflicts_with_all = ["scope", "recover"])]
    pub list: bool,
    /// Recover the scope of the dead transaction TXN: --restore puts it
    /// back to HEAD, --commit commits it under its own message.
    #[arg(long, value_name = "TXN", requires = "how")]
    pub recover: Option<String>,
    #[arg(long, group = "how", requires = "recover")]
    pub restore: bool,
    #[arg(long = "commit", group = "how", requires = "recover")]
    pub commit_it: bool,
    /// The command that edits the scope.
    #[arg(last = true, value_name = "CMD", required_unless_present_any = ["list", "recover"])]
    pub cmd: Vec<OsString>,
}

fn claims_for(opened: &Opened, dir: Option<PathBuf>) -> Claims {
    let root = opened.repo.work_tree.clone();
    match dir {
        Some(d) => Claims::new(opened.cwd.join(d), root),
        None => Claims::new(root.join(".baton").join("claims"), root),
    }
}

fn entry_text(e: &Entry) -> String {
    let j = &e.journal;
    let state = if e.dead { "dead" } else { "running" };
    let subject = j.message.lines().next().unwrap_or("");
    format!(
        "{} ({state}; pid {} on {}, instance {}, {subject:?}; scope {})",
        j.txn,
        j.pid,
        j.host,
        j.id,
        j.scope.join(" ")
    )
}

pub fn run(args: TxnArgs, json_mode: bool) -> anyhow::Result<Exit> {
    let env = RealEnv::new().context("read process identity from /proc")?;
    let started = env.monotonic();
    let opened = match commit_cmd::open(&env, args.repo.as_deref()) {
        Ok(o) => o,
        Err(e) => return commit_cmd::repo_failure(e),
    };
    let claims = claims_for(&opened, args.dir.clone());
    let (id, _) = instance_id(&env, args.id.clone())?;
    if args.list {
        for e in txn::list(&env, &opened.repo)? {
            if json_mode {
                report::stdout_line(
                    &json!({ "txn": e.journal.txn, "dead": e.dead, "id": e.journal.id,
                             "pid": e.journal.pid, "host": e.journal.host,
                             "message": e.journal.message, "scope": e.journal.scope })
                    .to_string(),
                );
            } else {
                report::stdout_line(&entry_text(&e));
            }
        }
        return Ok(Exit::Ok);
    }
    if let Some(name) = &args.recover {
        let who = Claimant {
            id,
            task: format!("recover {name}"),
            ttl: None,
        };
        let how = if args.restore {
            Recovery::Restore
        } else {
            Recovery::Commit
        };
        return match txn::recover(&env, &opened.git, &opened.repo, &claims, name, &who, how) {
            Ok(Some(c)) => {
                commit_cmd::report_committed(
                    &c,
                    &format!("recovered {name}"),
                    env.monotonic().saturating_since(started),
                    json_mode,
                );
                Ok(Exit::Ok)
            }
            Ok(None) => {
                report::stderr_line(&format!(
                    "baton: txn: {name}: scope {}",
                    if how == Recovery::Restore {
                        "restored to HEAD"
                    } else {
                        "already matched HEAD: nothing to commit"
                    }
                ));
                Ok(Exit::Ok)
            }
            Err(e) => txn_failure(e),
        };
    }
    let scope = match commit_cmd::scope(&env, &opened, &args.scope) {
        Ok(s) => s,
        Err(e) => return commit_cmd::failure(e),
    };
    let message = args.message.join("\n\n");
    let subject = baton_core::commit::clean_message(&message);
    let subject = subject.lines().next().unwrap_or("").to_owned();
    let who = Claimant {
        id: id.clone(),
        task: format!("txn: {subject}"),
        ttl: None,
    };
    let wait = args.wait.map_or(Wait::No, Wait::For);
    let plan = Plan {
        scope: &scope,
        who: &who,
        wait,
        message: &message,
    };
    let begun = txn::begin(&env, &opened.git, &opened.repo, &claims, &plan);
    let t = match begun {
        Err(e) => return txn_failure(e),
        Ok(Begun::Ready(t)) => t,
        Ok(Begun::Conflict { path, holder }) => {
            report::error_line(&format!(
                "txn: {path}: claimed by {}; nothing run",
                holder_text(&holder)
            ));
            return Ok(Exit::Unavailable);
        }
        Ok(Begun::Dirty { paths, left_by }) => {
            let why = if left_by.is_empty() {
                "commit or restore them first".to_owned()
            } else {
                let names: Vec<String> = left_by.iter().map(entry_text).collect();
                let first = &left_by[0].journal.txn;
                let how = if left_by.iter().any(|e| e.dead) {
                    format!(
                        "`baton txn --recover {first} --restore` discards its edits, \
                         `--commit` commits them under its message"
                    )
                } else {
                    "wait for it to end".to_owned()
                };
                format!("left by transaction {}: {how}", names.join("; "))
            };
            report::error_line(&format!(
                "txn: scope differs from HEAD in {}: {why}; nothing run",
                paths.join(", ")
            ));
            return Ok(Exit::Error);
        }
    };
    if json_mode {
        report::stderr_line(
            &json!({ "event": "began", "txn": t.journal.txn, "id": id, "scope": scope })
                .to_string(),
        );
    }
    let before = snapshot(&env, &opened)?;
    for f in t.claim_files() {
        f.set_inheritable()
            .context("share the scope's claims with the command")?;
    }
    let envs = [
        ("BATON_ID", id.clone()),
        ("BATON_TXN", t.journal.txn.clone()),
    ];
    let exit = match child::spawn(&args.cmd, &envs, false)? {
        Ok(running) => child::supervise(running, None, &|| true)?,
        Err(exit) => exit,
    };
    if exit.code() != 0 {
        let name = t.journal.txn.clone();
        let done = t.abandon(&env, &opened.git, &opened.repo);
        let left = match done {
            Ok(Finished::Left(left)) => format!(
                "; its edits to {} stay: `baton txn --recover {name} --restore` or `--commit`",
                left.join(", ")
            ),
            _ => String::new(),
        };
        report::error_line(&format!(
            "txn: the command failed (exit {}): nothing committed{left}",
            exit.code()
        ));
        return Ok(exit);
    }
    let outside = outside_edits(&env, &opened, &claims, &id, &t.head, &scope, &before)?;
    if !outside.is_empty() {
        let list = outside.join(", ");
        if args.strict {
            let _ = t.abandon(&env, &opened.git, &opened.repo);
            report::error_line(&format!(
                "txn: the command changed {list}, outside its scope (--strict): nothing committed"
            ));
            return Ok(Exit::Error);
        }
        report::stderr_line(&format!(
            "baton: warning: the command changed {list}, outside its scope: not committed"
        ));
    }
    match t.commit(
        &env,
        &opened.git,
        &opened.repo,
        !args.no_verify,
        args.detach_ok,
    ) {
        Ok(Finished::Committed(c)) => {
            let took = env.monotonic().saturating_since(started);
            commit_cmd::report_committed(&c, &subject, took, json_mode);
            Ok(Exit::Ok)
        }
        Ok(Finished::Unchanged | Finished::Left(_)) => {
            report::stderr_line(
                "baton: txn: the command changed nothing in its scope: nothing committed",
            );
            Ok(Exit::Ok)
        }
        Err(e) => txn_failure(e),
    }
}

fn txn_failure(e: TxnError) -> anyhow::Result<Exit> {
    match e {
        TxnError::Commit(e) => commit_cmd::failure(e),
        e => Err(anyhow::Error::new(e).context("txn")),
    }
}

/// What each changed or untracked file outside git's view of HEAD looks
/// like: `git status` names them, `lstat` tells a later change apart.
type Snapshot = BTreeMap<String, Option<(u64, std::time::SystemTime, u64)>>;

fn snapshot(env: &RealEnv, opened: &Opened) -> anyhow::Result<Snapshot> {
    let out = Command::new(baton_core::env::real_git::program())
        .current_dir(&opened.repo.work_tree)
        .args([
            "--no-optional-locks",
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=all",
            "--no-renames",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .context("run git status")?;
    let mut snap = Snapshot::new();
    for item in out.stdout.split(|&b| b == 0) {
        let Some(path) = item.get(3..).and_then(|p| std::str::from_utf8(p).ok()) else {
            continue;
        };
        let meta = env
            .symlink_metadata(&opened.repo.work_tree.join(path))
            .ok()
            .map(|m| (m.len, m.modified, m.id.ino));
        snap.insert(path.to_owned(), meta);
    }
    Ok(snap)
}

/// Files the command changed outside its scope: differences between the
/// two snapshots, leaving out baton's own files, what other live claims
/// cover (their transactions' edits) and what commits landed meanwhile.
fn outside_edits(
    env: &RealEnv,
    opened: &Opened,
    claims: &Claims,
    id: &str,
    head: &baton_core::env::git::Head,
    scope: &[String],
    before: &Snapshot,
) -> anyhow::Result<Vec<String>> {
    let after = snapshot(env, opened)?;
    let mut changed: Vec<String> = after
        .iter()
        .filter(|(p, m)| before.get(*p) != Some(*m))
        .map(|(p, _)| p.clone())
        .chain(before.keys().filter(|p| !after.contains_key(*p)).cloned())
        .filter(|p| !scope.contains(p) && !p.starts_with(".baton/"))
        .collect();
    if changed.is_empty() {
        return Ok(changed);
    }
    let others: Vec<String> = claims
        .status(env)?
        .into_iter()
        .filter(|c| c.alive && c.record.id != id)
        .map(|c| c.record.path)
        .collect();
    let now = opened.git.head(&opened.repo)?;
    let landed: Vec<String> = match (&head.commit, &now.commit) {
        (Some(a), Some(b)) if a != b => opened
            .git
            .diff(Some(a), b)?
            .into_iter()
            .map(|c| c.path)
            .collect(),
        _ => Vec::new(),
    };
    changed.retain(|p| {
        !landed.contains(p) && !others.iter().any(|o| baton_core::claims::overlaps(p, o))
    });
    Ok(changed)
}
