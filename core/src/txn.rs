//! Transactions (seed 003 done right): claim a scope, check it matches
//! HEAD, let the task edit it, commit exactly the scope, release.
//!
//! A scoped commit alone cannot separate two tasks' edits to one file:
//! whoever commits `TODO.md` first takes the other's line with it. So the
//! scope is claimed (all or nothing, [`crate::claims`]) before the first
//! edit and released after the commit: two transactions whose scopes
//! overlap run one after the other, disjoint ones in parallel, and nobody
//! else's edit can be in a file a transaction commits.
//!
//! A transaction that dies (killed, machine crash) leaves its edits in the
//! work tree while its claims die with it. The next transaction over that
//! scope would commit them as its own (the model checker found this:
//! `Variant::TxnNoCleanCheck` in `model/src/commits.rs`), so [`begin`]
//! refuses a scope that differs from HEAD, naming the transaction that
//! left it from its journal: `$GIT_DIR/baton/txn/ID.json`, written before
//! the task runs and removed once its scope is committed or clean again.
//! [`recover`] then restores the dead transaction's scope to HEAD, or
//! commits it under its own message, on a person's word.

use std::io;
use std::path::PathBuf;
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic;
use crate::claims::{ClaimError, ClaimRecord, Claimant, Claimed, Claims, Held, overlaps};
use crate::commit::{self, CommitError, Committed, Request};
use crate::env::git::{Git, Head, Repo};
use crate::env::{Env, Liveness, OpenFile};
use crate::error::IoFailure;
use crate::lock::Wait;
use crate::record::{RECORD_LIMIT, written_by_baton};

/// What a transaction's journal says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub baton: u32,
    /// The journal's name: `PID-STARTTIME-RANDOM`.
    pub txn: String,
    /// The instance that ran it.
    pub id: String,
    pub message: String,
    pub scope: Vec<String>,
    /// HEAD when it began: its scope matched this commit then.
    pub head: Option<String>,
    pub pid: u32,
    pub start_time: u64,
    pub boot_id: String,
    pub pid_ns: u64,
    pub host: String,
    pub started_at_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error(transparent)]
    Claim(#[from] ClaimError),
    #[error(transparent)]
    Io(#[from] IoFailure),
    #[error("{}: not a transaction journal baton wrote; move it away", .0.display())]
    Foreign(PathBuf),
    #[error("no transaction {0} (see `baton txn --list`)")]
    Unknown(String),
    #[error(
        "transaction {txn} is still running (pid {pid} on {host}); only a dead one's scope is recovered"
    )]
    Running { txn: String, pid: u32, host: String },
}

impl From<crate::env::git::GitError> for TxnError {
    fn from(e: crate::env::git::GitError) -> TxnError {
        TxnError::Commit(e.into())
    }
}

/// A transaction's journal on disk, and whether its process is gone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub file: PathBuf,
    pub journal: Journal,
    pub dead: bool,
}

/// How [`begin`] ended.
#[derive(Debug)]
pub enum Begun<'e, E: Env> {
    /// The scope is claimed and matches HEAD: run the task.
    Ready(Txn<'e, E>),
    /// Another instance claims part of the scope (not within the wait).
    Conflict { path: String, holder: ClaimRecord },
    /// The scope differs from HEAD: `paths`, and the transactions whose
    /// journals cover them (dead ones can be recovered; a live one failed
    /// to commit and is its owner's to recover).
    Dirty {
        paths: Vec<String>,
        left_by: Vec<Entry>,
    },
}

/// A running transaction: its scope claimed and journaled.
#[derive(Debug)]
pub struct Txn<'e, E: Env> {
    held: Held<'e, E>,
    pub journal: Journal,
    file: PathBuf,
    /// HEAD when it began.
    pub head: Head,
}

/// How a transaction ended.
#[derive(Debug)]
pub enum Finished {
    Committed(Committed),
    /// The task changed nothing in its scope: nothing to commit.
    Unchanged,
    /// Not committed (the task failed, or touched files outside its
    /// scope under `--strict`); these scope paths keep its edits and its
    /// journal stays for [`recover`].
    Left(Vec<String>),
}

/// What [`recover`] does with a dead transaction's scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// Put every scope path back to HEAD (the edits are discarded).
    Restore,
    /// Commit the scope under the transaction's own message.
    Commit,
}

/// Where journals live: per worktree, beside its index.
pub fn journal_dir(repo: &Repo) -> PathBuf {
    repo.git_dir.join("baton").join("txn")
}

fn now_ms<E: Env>(env: &E) -> u64 {
    env.wall()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Every journal, with whether its transaction's process is dead (one on
/// another host, boot or pid namespace cannot be judged: not dead).
pub fn list<E: Env>(env: &E, repo: &Repo) -> Result<Vec<Entry>, TxnError> {
    let dir = journal_dir(repo);
    match env.symlink_metadata(&dir) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(IoFailure::at("inspect", &dir)(e).into()),
    }
    // Never through a planted link: torn journals found here are removed.
    commit::ensure_dir(env, &dir)?;
    let names = env.read_dir(&dir).map_err(IoFailure::at("list", &dir))?;
    let me = env.identity();
    let mut out = Vec::new();
    for name in names {
        let Some(name) = name.to_str() else { continue };
        if !name.ends_with(".json") {
            continue;
        }
        let file = dir.join(name);
        let bytes = match env.read(&file, RECORD_LIMIT) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(IoFailure::at("read journal", &file)(e).into()),
        };
        let Ok(journal) = serde_json::from_slice::<Journal>(&bytes) else {
            if written_by_baton(&bytes) {
                // Torn by a machine crash before it was complete: the
                // transaction never ran its task.
                let _ = env.remove_file(&file);
                continue;
            }
            return Err(TxnError::Foreign(file));
        };
        let checkable =
            journal.host == me.host && journal.boot_id == me.boot_id && journal.pid_ns == me.pid_ns;
        let dead = (journal.boot_id != me.boot_id && journal.host == me.host)
            || (checkable
                && matches!(
                    env.liveness(journal.pid, journal.start_time),
                    Ok(Liveness::Dead | Liveness::Reused { .. })
                ));
        out.push(Entry {
            file,
            journal,
            dead,
        });
    }
    out.sort_by(|a, b| a.journal.txn.cmp(&b.journal.txn));
    Ok(out)
}

/// Whether a journal's transaction is over: its process dead, or this
/// very process (a library user's transaction that was dropped or failed
/// to commit). Recovery claims the scope first, so a transaction still
/// running (which holds its claims) is never recovered under it.
pub fn recoverable<E: Env>(env: &E, e: &Entry) -> bool {
    let me = env.identity();
    e.dead
        || (e.journal.pid == me.pid
            && e.journal.start_time == me.start_time
            && e.journal.boot_id == me.boot_id
            && e.journal.host == me.host)
}

/// Scope paths that differ from `head` in the work tree.
fn dirty<E: Env, G: Git>(
    env: &E,
    git: &G,
    repo: &Repo,
    head: &Head,
    scope: &[String],
) -> Result<Vec<String>, TxnError> {
    Ok(commit::pending(env, git, repo, head, scope)?
        .into_iter()
        .map(|c| c.path)
        .collect())
}

/// What a transaction is to do.
#[derive(Clone, Debug)]
pub struct Plan<'a> {
    /// Its scope, normalised ([`commit::normalise`]).
    pub scope: &'a [String],
    /// Who claims it (attached: the claims live with the transaction).
    pub who: &'a Claimant,
    /// How long to wait for overlapping scopes.
    pub wait: Wait,
    pub message: &'a str,
}

/// Claims the plan's scope and checks it matches HEAD; then journals the
/// transaction.
pub fn begin<'e, E: Env, G: Git>(
    env: &'e E,
    git: &G,
    repo: &Repo,
    claims: &Claims,
    plan: &Plan,
) -> Result<Begun<'e, E>, TxnError> {
    let Plan {
        scope,
        who,
        wait,
        message,
    } = *plan;
    assert!(who.ttl.is_none(), "a transaction's claims live with it");
    commit::check_quiet(env, repo)?;
    commit::check_files(env, repo, scope)?;
    commit::prepare_dir(env, repo)?;
    let held = match claims.claim(env, scope, who, wait)? {
        Claimed::All(held) => held,
        Claimed::Conflict { path, holder } => return Ok(Begun::Conflict { path, holder }),
    };
    let head = git.head(repo)?;
    let paths = dirty(env, git, repo, &head, scope)?;
    let journals = list(env, repo)?;
    if !paths.is_empty() {
        let left_by = journals
            .into_iter()
            .filter(|e| {
                e.journal
                    .scope
                    .iter()
                    .any(|s| paths.iter().any(|p| overlaps(p, s)))
            })
            .collect();
        drop(held);
        return Ok(Begun::Dirty { paths, left_by });
    }
    // A dead transaction whose scope lies wholly in ours, all clean, either
    // committed or never edited: its journal is done.
    for e in journals.iter().filter(|e| e.dead) {
        if e.journal.scope.iter().all(|s| scope.contains(s)) {
            let _ = env.remove_file(&e.file);
        }
    }
    let me = env.identity();
    let name = format!(
        "{}-{}-{:08x}",
        me.pid,
        me.start_time,
        env.random_u64() as u32
    );
    let journal = Journal {
        baton: 1,
        txn: name.clone(),
        id: who.id.clone(),
        message: message.to_owned(),
        scope: scope.to_vec(),
        head: head.commit.clone(),
        pid: me.pid,
        start_time: me.start_time,
        boot_id: me.boot_id.clone(),
        pid_ns: me.pid_ns,
        host: me.host.clone(),
        started_at_ms: now_ms(env),
    };
    let dir = journal_dir(repo);
    commit::ensure_dir(env, &dir)?;
    // The journal must outlive a machine crash that the task's edits
    // outlive, and so must every directory entry leading to it, even one
    // another process created and has not synced yet (the simulator found
    // the edits surviving and the journal's directory gone).
    for d in [&repo.git_dir, &repo.git_dir.join("baton")] {
        env.sync_dir(d)
            .map_err(IoFailure::at("sync directory", d))?;
    }
    let file = dir.join(format!("{name}.json"));
    let bytes = serde_json::to_vec(&journal).expect("a journal serialises");
    write_atomic(env, &file, &bytes)?;
    Ok(Begun::Ready(Txn {
        held,
        journal,
        file,
        head,
    }))
}

impl<'e, E: Env> Txn<'e, E> {
    /// The claims' locked descriptors, for a command to inherit.
    pub fn claim_files(&self) -> impl Iterator<Item = &E::File> {
        self.held.files()
    }

    /// Commits exactly the scope (if the task changed it) and releases.
    pub fn commit<G: Git>(
        self,
        env: &E,
        git: &G,
        repo: &Repo,
        verify: bool,
        detach_ok: bool,
    ) -> Result<Finished, TxnError> {
        let req = Request {
            paths: &self.journal.scope,
            message: &self.journal.message,
            allow_empty: false,
            detach_ok,
            verify,
            attempts: commit::ATTEMPTS,
        };
        let result = match commit::commit(env, git, repo, &req) {
            Ok(c) => Ok(Finished::Committed(c)),
            Err(CommitError::Nothing(_)) => Ok(Finished::Unchanged),
            Err(e) => Err(e),
        };
        match result {
            Ok(done) => {
                self.close(env);
                Ok(done)
            }
            Err(e) => {
                // Not committed: its edits stay, and so does its journal.
                let Txn { held, .. } = self;
                drop(held);
                Err(e.into())
            }
        }
    }

    /// Ends without committing: the journal is removed if the scope still
    /// matches HEAD, else kept (with the paths) for [`recover`].
    pub fn abandon<G: Git>(self, env: &E, git: &G, repo: &Repo) -> Result<Finished, TxnError> {
        let head = git.head(repo)?;
        let left = dirty(env, git, repo, &head, &self.journal.scope);
        match left {
            Ok(left) if left.is_empty() => {
                self.close(env);
                Ok(Finished::Unchanged)
            }
            Ok(left) => Ok(Finished::Left(left)),
            Err(e) => Err(e),
        }
    }

    /// Removes the journal, then lets the claims go.
    fn close(self, env: &E) {
        let _ = env.remove_file(&self.file);
        drop(self.held);
    }
}

/// Makes the work tree's `paths` (and their directories' entries) durable.
fn sync_paths<E: Env>(env: &E, repo: &Repo, paths: &[String]) -> Result<(), TxnError> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for p in paths {
        let file = repo.work_tree.join(p);
        match env.open(&file, false) {
            Ok(f) => f.sync_all().map_err(IoFailure::at("sync", &file))?,
            // Removed (its directory is synced below), or a symlink.
            Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(40) => {}
            Err(e) => return Err(IoFailure::at("open", &file)(e).into()),
        }
        let dir = file.parent().unwrap_or(&repo.work_tree).to_owned();
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    for d in &dirs {
        env.sync_dir(d)
            .map_err(IoFailure::at("sync directory", d))?;
    }
    Ok(())
}

/// Restores or commits the scope of the dead transaction `txn`.
pub fn recover<E: Env, G: Git>(
    env: &E,
    git: &G,
    repo: &Repo,
    claims: &Claims,
    txn: &str,
    who: &Claimant,
    how: Recovery,
) -> Result<Option<Committed>, TxnError> {
    let entry = list(env, repo)?
        .into_iter()
        .find(|e| e.journal.txn == txn)
        .ok_or_else(|| TxnError::Unknown(txn.to_owned()))?;
    if !recoverable(env, &entry) {
        return Err(TxnError::Running {
            txn: txn.to_owned(),
            pid: entry.journal.pid,
            host: entry.journal.host,
        });
    }
    let scope = &entry.journal.scope;
    let held = match claims.claim(env, scope, who, Wait::No)? {
        Claimed::All(held) => held,
        Claimed::Conflict { path, holder } => {
            return Err(ClaimError::NotYours {
                path,
                holder: holder.id,
                task: holder.task,
                id: who.id.clone(),
            }
            .into());
        }
    };
    let result = match how {
        Recovery::Restore => {
            let head = git.head(repo)?;
            let paths = dirty(env, git, repo, &head, scope)?;
            let index = commit::own_file(env, repo, "index");
            let restored = git.restore(&index, head.commit.as_deref(), &paths);
            commit::discard(env, &index);
            restored?;
            // git writes the work tree without fsync: the restored files
            // must be durable before the journal that names them goes, or
            // a machine crash brings the edits back with no journal (the
            // simulator found that).
            sync_paths(env, repo, &paths)?;
            Ok(None)
        }
        Recovery::Commit => {
            let req = Request {
                paths: scope,
                message: &entry.journal.message,
                allow_empty: false,
                detach_ok: false,
                verify: true,
                attempts: commit::ATTEMPTS,
            };
            match commit::commit(env, git, repo, &req) {
                Ok(c) => Ok(Some(c)),
                Err(CommitError::Nothing(_)) => Ok(None),
                Err(e) => Err(TxnError::from(e)),
            }
        }
    };
    if result.is_ok() {
        let _ = env.remove_file(&entry.file);
    }
    drop(held);
    result
}
