//! `baton commit`: commit exactly the paths given, onto the current branch,
//! whatever else is staged (the protocol is in `baton_core::commit`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use baton_core::commit::{self, CommitError, Committed, Request};
use baton_core::env::git::{Change, Git, GitError, Refresh, Repo};
use baton_core::env::real::RealEnv;
use baton_core::env::real_git::CliGit;
use baton_core::env::{Clock, Fs};
use serde_json::{Value, json};

use crate::exit::Exit;
use crate::report::{self, Reporter};

#[derive(Debug, clap::Args)]
pub struct CommitArgs {
    /// Run as if started in REPO.
    #[arg(short = 'C', value_name = "REPO")]
    pub repo: Option<PathBuf>,
    /// The commit message (several -m are paragraphs, as with git commit).
    #[arg(short = 'm', long = "message", value_name = "MSG", required = true)]
    pub message: Vec<String>,
    /// Commit even if the paths already match HEAD.
    #[arg(long)]
    pub allow_empty: bool,
    /// Commit onto a detached HEAD (refused otherwise).
    #[arg(long)]
    pub detach_ok: bool,
    /// Skip the pre-commit, prepare-commit-msg, commit-msg and post-commit
    /// hooks.
    #[arg(short = 'n', long)]
    pub no_verify: bool,
    /// Files to commit: added, modified or deleted; a rename is its old
    /// and new path.
    #[arg(value_name = "PATH", required_unless_present = "allow_empty")]
    pub paths: Vec<PathBuf>,
}

/// A repository opened for committing: git, where it is, and where baton
/// was started (paths are relative to it).
pub struct Opened {
    pub git: CliGit,
    pub repo: Repo,
    pub cwd: PathBuf,
}

/// Opens the repository `dir` (or the current directory) is in.
pub fn open(env: &RealEnv, dir: Option<&Path>) -> anyhow::Result<Opened> {
    let here = env
        .canonicalize(Path::new("."))
        .context("resolve the current directory")?;
    let cwd = match dir {
        Some(d) => env
            .canonicalize(&here.join(d))
            .with_context(|| format!("-C {}", d.display()))?,
        None => here,
    };
    let git = CliGit::new(&cwd);
    let repo = git.repo()?;
    Ok(Opened { git, repo, cwd })
}

/// The scope paths, normalised against the work tree and deduplicated.
pub fn scope(
    env: &RealEnv,
    opened: &Opened,
    paths: &[PathBuf],
) -> Result<Vec<String>, CommitError> {
    let mut out = Vec::new();
    for p in paths {
        let rel = commit::normalise(env, &opened.repo.work_tree, &opened.cwd, p)?;
        if !out.contains(&rel) {
            out.push(rel);
        }
    }
    Ok(out)
}

/// The exit for a failed commit: 75 when trying later may work.
pub fn failure(e: CommitError) -> anyhow::Result<Exit> {
    if e.is_busy() {
        report::error_line(&format!("commit: {e}"));
        return Ok(Exit::Unavailable);
    }
    Err(anyhow::Error::new(e).context("commit"))
}

pub fn change_json(c: &Change) -> Value {
    let status = match (&c.old, &c.new) {
        (None, _) => "added",
        (_, None) => "deleted",
        _ => "modified",
    };
    json!({ "path": c.path, "status": status })
}

/// The `committed` event: what `--json` prints and MCP's `commit` returns.
pub fn committed_json(c: &Committed, took: Duration) -> Value {
    json!({
        "event": "committed", "commit": c.commit, "parent": c.parent,
        "ref": c.target, "changes": c.changes.iter().map(change_json).collect::<Vec<_>>(),
        "validated": true, "attempts": c.attempts,
        "index": if c.index == Refresh::Locked { "stale" } else { "refreshed" },
        "ms": took.as_millis() as u64,
    })
}

/// Tells what was committed, and warns when the shared index is stale.
pub fn report_committed(c: &Committed, subject: &str, took: Duration, json_mode: bool) {
    let branch = c.target.strip_prefix("refs/heads/").unwrap_or(&c.target);
    let short = &c.commit[..c.commit.len().min(7)];
    let stale = c.index == Refresh::Locked;
    if json_mode {
        report::stdout_line(&committed_json(c, took).to_string());
    } else {
        let n = c.changes.len();
        report::stdout_line(&format!(
            "[{branch} {short}] {subject}\n {n} file{} changed",
            if n == 1 { "" } else { "s" }
        ));
    }
    if stale {
        let paths: Vec<&str> = c.changes.iter().map(|c| c.path.as_str()).collect();
        report::stderr_line(&format!(
            "baton: warning: {short} is committed, but .git/index.lock stayed taken, so the \
             shared index still holds the old {}: the next plain `git commit` would revert \
             them. Once no git command runs: git reset -q -- {}",
            paths.join(", "),
            paths.join(" ")
        ));
    }
}

pub fn run(args: CommitArgs, report: Reporter) -> anyhow::Result<Exit> {
    let env = RealEnv::new().context("read process identity from /proc")?;
    let started = env.monotonic();
    let opened = match open(&env, args.repo.as_deref()) {
        Ok(o) => o,
        Err(e) => return repo_failure(e),
    };
    let paths = match scope(&env, &opened, &args.paths) {
        Ok(p) => p,
        Err(e) => return failure(e),
    };
    let message = args.message.join("\n\n");
    let req = Request {
        paths: &paths,
        message: &message,
        allow_empty: args.allow_empty,
        detach_ok: args.detach_ok,
        verify: !args.no_verify,
        attempts: commit::ATTEMPTS,
    };
    match commit::commit(&env, &opened.git, &opened.repo, &req) {
        Ok(c) => {
            let subject = commit::clean_message(&message);
            let subject = subject.lines().next().unwrap_or("");
            report_committed(
                &c,
                subject,
                env.monotonic().saturating_since(started),
                report.json,
            );
            Ok(Exit::Ok)
        }
        Err(e) => failure(e),
    }
}

/// A repository that cannot be opened: one line, exit 1.
pub fn repo_failure(e: anyhow::Error) -> anyhow::Result<Exit> {
    if let Some(GitError::Spawn(io)) = e.downcast_ref::<GitError>() {
        anyhow::bail!("commit: cannot run git ({io}): install git, or point BATON_GIT at it");
    }
    Err(e.context("commit"))
}
