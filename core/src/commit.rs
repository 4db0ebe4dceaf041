//! Scoped commits (seed 003): commit exactly the paths given, whatever else
//! anyone staged, with no global lock.
//!
//! `git add` + `git commit` commits the repository's one shared index, so
//! whatever another task staged between the two rides along (the field
//! measured 15–29 contaminated commits per 100). Here nothing reads or
//! writes the shared index until the commit is published:
//!
//! 1. a private index (`$GIT_DIR/baton/index.*`) is seeded from the branch
//!    tip, the paths are staged into it from the work tree, and its tree
//!    written: the tip's tree with exactly those paths replaced;
//! 2. the tree is validated against the tip before anything is published
//!    (every changed path is one asked for; undoing a published commit
//!    would itself race);
//! 3. hooks run as `git commit` runs them (pre-commit against the private
//!    index, prepare-commit-msg and commit-msg on the message file);
//! 4. the commit is written on the tip and the branch moved by
//!    compare-and-swap (`update-ref BRANCH NEW TIP`); if another commit
//!    landed meanwhile, everything is rebuilt on the new tip (bounded),
//!    the losers of a round taking turns on a kernel lock (`join_queue`);
//! 5. the shared index is brought in line for the changed paths only,
//!    under git's own `index.lock` (lock, then read: entries others staged
//!    meanwhile stay). If it cannot be (a stale `index.lock`), the commit
//!    stands and the caller is told: a stale index would let the next plain
//!    `git commit` silently revert it.
//!
//! What git's own files need from a crash: the private index and message
//! file are named after their process and removed by the next commit once
//! it is dead; the branch is moved by git's lock-and-rename, so it names
//! the old tip or the new one.

use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::backoff::Backoff;
use crate::env::git::{Change, Git, GitError, Head, Hook, Oid, RefUpdate, Refresh, Repo, Staged};
use crate::env::{Env, Liveness, OpenFile};
use crate::error::IoFailure;

/// Compare-and-swap attempts before a commit gives up (exit 75).
pub const ATTEMPTS: u32 = 50;

/// Longest commit message read back from a commit-msg hook.
const MESSAGE_LIMIT: u64 = 1 << 20;

/// What to commit.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// Relative to the work tree's top, as [`normalise`] returns them.
    pub paths: &'a [String],
    pub message: &'a str,
    /// Commit even if the paths match the tip already.
    pub allow_empty: bool,
    /// Commit onto a detached HEAD.
    pub detach_ok: bool,
    /// Run the pre-commit, prepare-commit-msg, commit-msg and post-commit
    /// hooks (`--no-verify` clears it).
    pub verify: bool,
    pub attempts: u32,
}

/// A published commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    pub commit: Oid,
    pub parent: Option<Oid>,
    /// The ref moved: `refs/heads/...`, or `HEAD` when detached.
    pub target: String,
    /// What it changed (checked to be within the paths asked for).
    pub changes: Vec<Change>,
    /// Compare-and-swap rounds it took (1 when nobody else committed).
    pub attempts: u32,
    /// Whether the shared index now matches the commit for those paths.
    pub index: Refresh,
}

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("{what} is in progress in {}: finish or abort it first", .repo.display())]
    InProgress { what: &'static str, repo: PathBuf },
    #[error("HEAD is detached at {0}: check out a branch, or pass --detach-ok to commit there")]
    Detached(String),
    #[error("{path}: {why}")]
    BadPath { path: String, why: &'static str },
    #[error("nothing to commit: {} already match{} HEAD", .0.join(", "), if .0.len() == 1 { "es" } else { "" })]
    Nothing(Vec<String>),
    #[error("the commit would change {}, outside the paths given: nothing committed", .0.join(", "))]
    Outside(Vec<String>),
    #[error("the {hook} hook failed (exit {status}): nothing committed (--no-verify skips hooks)")]
    Hook { hook: &'static str, status: i32 },
    #[error("empty commit message")]
    EmptyMessage,
    #[error(
        "{target} moved under each of {attempts} attempts (other commits kept landing first): nothing committed"
    )]
    Busy { target: String, attempts: u32 },
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Io(#[from] IoFailure),
}

impl CommitError {
    /// Whether trying again later may succeed (exit 75, not 1).
    pub fn is_busy(&self) -> bool {
        matches!(self, CommitError::Busy { .. })
    }
}

/// Operations that stop a commit, by the file git leaves while they run.
const IN_PROGRESS: [(&str, &str); 6] = [
    ("MERGE_HEAD", "a merge"),
    ("rebase-merge", "a rebase"),
    ("rebase-apply", "a rebase (or git am)"),
    ("CHERRY_PICK_HEAD", "a cherry-pick"),
    ("REVERT_HEAD", "a revert"),
    ("BISECT_LOG", "a bisect"),
];

/// Refuses while a merge, rebase, cherry-pick, revert or bisect is under
/// way: its half-done state is not the user's to commit over.
pub fn check_quiet<E: Env>(env: &E, repo: &Repo) -> Result<(), CommitError> {
    for (file, what) in IN_PROGRESS {
        let path = repo.git_dir.join(file);
        match env.symlink_metadata(&path) {
            Ok(_) => {
                return Err(CommitError::InProgress {
                    what,
                    repo: repo.work_tree.clone(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(IoFailure::at("inspect", &path)(e).into()),
        }
    }
    Ok(())
}

/// `path` (absolute, or relative to `cwd`) as a scope path: relative to the
/// work tree's top, `/`-separated, `.` and `..` resolved, and symlinks in
/// its directories resolved, but not in its last component (a symlink is
/// committed as a link, as git does). Refused: paths outside the work
/// tree, inside `.git`, the top itself, and names holding control
/// characters (they would be lines in git's input).
pub fn normalise<E: Env>(
    env: &E,
    work_tree: &Path,
    cwd: &Path,
    path: &Path,
) -> Result<String, CommitError> {
    let shown = path.display().to_string();
    let bad = |why| CommitError::BadPath {
        path: shown.clone(),
        why,
    };
    let mut lexical = PathBuf::new();
    for c in cwd.join(path).components() {
        match c {
            Component::ParentDir => {
                lexical.pop();
            }
            Component::CurDir => {}
            other => lexical.push(other),
        }
    }
    let name = lexical
        .file_name()
        .ok_or_else(|| bad("names no file"))?
        .to_owned();
    let parent = lexical.parent().ok_or_else(|| bad("names no file"))?;
    // The longest existing ancestor of the directory, resolved; the rest as
    // spelt (what does not exist cannot be a symlink).
    let mut rest = vec![name];
    let mut base = parent.to_owned();
    let resolved = loop {
        match env.canonicalize(&base) {
            Ok(r) => break r,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                rest.push(
                    base.file_name()
                        .ok_or_else(|| bad("names no file"))?
                        .to_owned(),
                );
                base.pop();
            }
            Err(e) => return Err(IoFailure::at("resolve", &base)(e).into()),
        }
    };
    let mut full = resolved;
    for name in rest.iter().rev() {
        full.push(name);
    }
    let top = env
        .canonicalize(work_tree)
        .map_err(IoFailure::at("resolve", work_tree))?;
    let rel = full
        .strip_prefix(&top)
        .map_err(|_| bad("outside the repository's work tree"))?;
    let rel = rel.to_str().ok_or_else(|| bad("not UTF-8"))?;
    if rel.is_empty() {
        return Err(bad("is the repository's top: name the files to commit"));
    }
    if rel.chars().any(char::is_control) {
        return Err(bad("holds a control character"));
    }
    if rel.split('/').any(|c| c == ".git") {
        return Err(bad("inside the git directory"));
    }
    Ok(rel.to_owned())
}

/// Refuses a directory among `paths`: git stages files, and a directory's
/// files are not all the caller's to commit.
pub fn check_files<E: Env>(env: &E, repo: &Repo, paths: &[String]) -> Result<(), CommitError> {
    for p in paths {
        if let Ok(m) = env.symlink_metadata(&repo.work_tree.join(p))
            && m.is_dir
        {
            return Err(CommitError::BadPath {
                path: p.clone(),
                why: "a directory: name the files in it",
            });
        }
    }
    Ok(())
}

/// What committing `paths` onto `head` would change: the paths whose work
/// tree content differs from it. Reads no index but a private one.
pub fn pending<E: Env, G: Git>(
    env: &E,
    git: &G,
    repo: &Repo,
    head: &Head,
    paths: &[String],
) -> Result<Vec<Change>, CommitError> {
    let index = own_file(env, repo, "index");
    let result = git.stage(&index, head.commit.as_deref(), paths);
    discard(env, &index);
    Ok(result?.changes)
}

/// A file in `$GIT_DIR/baton/` named after this process, so a later commit
/// can tell a dead process's leftover from a live one's.
pub(crate) fn own_file<E: Env>(env: &E, repo: &Repo, kind: &str) -> PathBuf {
    let me = env.identity();
    repo.git_dir.join("baton").join(format!(
        "{kind}.{}.{}.{:08x}",
        me.pid,
        me.start_time,
        env.random_u64() as u32
    ))
}

/// Makes `dir` (true) or finds it there (false). Anything else at that
/// name, a symlink above all, is refused: baton writes and removes files
/// in it, and must never do so wherever a planted link points.
pub fn ensure_dir<E: Env>(env: &E, dir: &Path) -> Result<bool, IoFailure> {
    match env.create_dir(dir) {
        Ok(()) => return Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(IoFailure::at("create", dir)(e)),
    }
    let meta = env
        .symlink_metadata(dir)
        .map_err(IoFailure::at("inspect", dir))?;
    if meta.is_symlink || !meta.is_dir {
        return Err(IoFailure::at("use", dir)(io::Error::other(
            "not a directory baton made (a symlink or a file); move it away",
        )));
    }
    Ok(false)
}

/// Makes `$GIT_DIR/baton/` and removes the private indexes and message
/// files of processes that died mid-commit.
pub fn prepare_dir<E: Env>(env: &E, repo: &Repo) -> Result<(), IoFailure> {
    let dir = repo.git_dir.join("baton");
    if ensure_dir(env, &dir)? {
        return Ok(());
    }
    let names = env.read_dir(&dir).map_err(IoFailure::at("list", &dir))?;
    for name in names {
        let Some(name) = name.to_str() else { continue };
        let mut parts = name.split('.');
        let (Some("index" | "msg"), Some(pid), Some(start)) =
            (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (Ok(pid), Ok(start)) = (pid.parse(), start.parse()) else {
            continue;
        };
        if !matches!(
            env.liveness(pid, start),
            Ok(Liveness::Dead | Liveness::Reused { .. })
        ) {
            continue;
        }
        // Lock files git made beside a dead private index go with it.
        let _ = env.remove_file(&dir.join(name));
    }
    Ok(())
}

/// Message cleanup as `git commit -m` does it (`git stripspace`): trailing
/// whitespace dropped, blank lines at either end dropped and runs of them
/// inside made one, one final newline.
pub fn clean_message(message: &str) -> String {
    let mut out = String::new();
    let mut blank_before = false;
    for line in message.lines().map(str::trim_end) {
        if line.is_empty() {
            blank_before = !out.is_empty();
            continue;
        }
        if blank_before {
            out.push('\n');
            blank_before = false;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Removes `path`, which this process made; it may never have been.
pub(crate) fn discard<E: Env>(env: &E, path: &Path) {
    let _ = env.remove_file(path);
    let mut lock = path.as_os_str().to_owned();
    lock.push(".lock");
    let _ = env.remove_file(Path::new(&lock));
}

/// Commits exactly `req.paths` onto the branch HEAD names.
pub fn commit<E: Env, G: Git>(
    env: &E,
    git: &G,
    repo: &Repo,
    req: &Request,
) -> Result<Committed, CommitError> {
    check_quiet(env, repo)?;
    let mut message = clean_message(req.message);
    if message.is_empty() {
        return Err(CommitError::EmptyMessage);
    }
    check_files(env, repo, req.paths)?;
    prepare_dir(env, repo)?;
    let index = own_file(env, repo, "index");
    let result = build_and_publish(env, git, repo, req, &index, &mut message);
    discard(env, &index);
    let (head, commit, changes, attempts) = result?;
    let index_state = refresh(env, git, &changes)?;
    if req.verify {
        // git ignores post-commit's status too: the commit is published.
        git.run_hook("post-commit", None, &[])?;
    }
    Ok(Committed {
        commit,
        target: head.target().to_owned(),
        parent: head.commit,
        changes,
        attempts,
        index: index_state,
    })
}

type Built = (Head, Oid, Vec<Change>, u32);

fn build_and_publish<E: Env, G: Git>(
    env: &E,
    git: &G,
    repo: &Repo,
    req: &Request,
    index: &Path,
    message: &mut String,
) -> Result<Built, CommitError> {
    let mut backoff = Backoff::new(Duration::from_millis(2), Duration::from_millis(100));
    let mut message_done = false;
    let mut queue = None;
    for attempt in 1..=req.attempts.max(1) {
        let head = git.head(repo)?;
        if head.branch.is_none() && !req.detach_ok {
            let at = head.commit.clone().unwrap_or_default();
            return Err(CommitError::Detached(at));
        }
        let Staged { tree, changes } = git.stage(index, head.commit.as_deref(), req.paths)?;
        // Validated before anything is published.
        let outside: Vec<String> = changes
            .iter()
            .filter(|c| !req.paths.contains(&c.path))
            .map(|c| c.path.clone())
            .collect();
        if !outside.is_empty() {
            return Err(CommitError::Outside(outside));
        }
        if changes.is_empty() && !req.allow_empty {
            return Err(CommitError::Nothing(req.paths.to_vec()));
        }
        if req.verify {
            hook(git, "pre-commit", Some(index), &[])?;
            if !message_done {
                *message = run_message_hooks(env, git, repo, message)?;
                message_done = true;
            }
        }
        let commit = git.commit_tree(&tree, head.commit.as_deref(), message, repo.sign)?;
        let subject = message.lines().next().unwrap_or("");
        let reflog = format!("commit: {subject}");
        match git.update_ref(head.target(), &commit, head.commit.as_deref(), &reflog)? {
            RefUpdate::Updated => return Ok((head, commit, changes, attempt)),
            RefUpdate::Moved if queue.is_none() => queue = join_queue(env, repo)?,
            RefUpdate::Moved => env.sleep(backoff.next_delay(env.random_u64())),
        }
    }
    let head = git.head(repo)?;
    Err(CommitError::Busy {
        target: head.target().to_owned(),
        attempts: req.attempts,
    })
}

/// How long a commit that lost a race waits for its turn in the queue
/// before it retries regardless (its holder may be stopped).
const QUEUE_WAIT: Duration = Duration::from_secs(10);

/// After losing a race for the branch, a commit queues behind the other
/// losers on a kernel lock in the common git directory, so that n commits
/// landing at once rebuild about 2n times rather than n²/2. Winning the
/// first round takes no lock, and the lock guards no data: the branch is
/// still moved by compare-and-swap, and a holder that dies or stops (the
/// wait is bounded) delays others, never wrongs them.
fn join_queue<E: Env>(env: &E, repo: &Repo) -> Result<Option<E::File>, CommitError> {
    let dir = repo.common_dir.join("baton");
    ensure_dir(env, &dir)?;
    let path = dir.join("publish.lock");
    let file = env
        .open(&path, true)
        .map_err(IoFailure::at("open", &path))?;
    let turn = file
        .lock(Some(QUEUE_WAIT))
        .map_err(IoFailure::at("lock", &path))?;
    Ok(turn.then_some(file))
}

fn hook<G: Git>(
    git: &G,
    name: &'static str,
    index: Option<&Path>,
    args: &[&str],
) -> Result<(), CommitError> {
    match git.run_hook(name, index, args)? {
        Hook::Absent | Hook::Passed => Ok(()),
        Hook::Failed { status, .. } => Err(CommitError::Hook { hook: name, status }),
    }
}

/// Whether git would run hook `name`: an executable file in the hooks
/// directory (through a symlink, as git follows one).
fn has_hook<E: Env>(env: &E, repo: &Repo, name: &str) -> bool {
    env.metadata(&repo.hooks.join(name))
        .is_ok_and(|m| m.is_file && m.mode & 0o111 != 0)
}

/// prepare-commit-msg and commit-msg, on a message file they may edit.
fn run_message_hooks<E: Env, G: Git>(
    env: &E,
    git: &G,
    repo: &Repo,
    message: &str,
) -> Result<String, CommitError> {
    if !has_hook(env, repo, "prepare-commit-msg") && !has_hook(env, repo, "commit-msg") {
        // Nothing would read the file: spare writing it.
        return Ok(message.to_owned());
    }
    let file = own_file(env, repo, "msg");
    let result = (|| {
        crate::atomic::write_atomic(env, &file, message.as_bytes())?;
        let name = file.to_str().unwrap_or_default();
        hook(git, "prepare-commit-msg", None, &[name, "message"])?;
        hook(git, "commit-msg", None, &[name])?;
        let edited = env
            .read(&file, MESSAGE_LIMIT)
            .map_err(IoFailure::at("read", &file))?;
        let edited = clean_message(&String::from_utf8_lossy(&edited));
        if edited.is_empty() {
            return Err(CommitError::EmptyMessage);
        }
        Ok(edited)
    })();
    let _ = env.remove_file(&file);
    result
}

/// How long the shared index's refresh keeps trying for `index.lock`.
const REFRESH_TRIES: u32 = 100;

/// Brings the shared index in line with the commit for `changes`, retrying
/// while another git command holds `index.lock`.
fn refresh<E: Env, G: Git>(env: &E, git: &G, changes: &[Change]) -> Result<Refresh, CommitError> {
    if changes.is_empty() {
        return Ok(Refresh::Done);
    }
    for _ in 0..REFRESH_TRIES {
        if git.refresh_index(changes)? == Refresh::Done {
            return Ok(Refresh::Done);
        }
        env.sleep(Duration::from_millis(10));
    }
    Ok(Refresh::Locked)
}

#[cfg(test)]
mod tests {
    use super::clean_message;

    #[test]
    fn messages_are_cleaned_as_git_commit_cleans_them() {
        assert_eq!(clean_message("fix  \n\n"), "fix\n");
        assert_eq!(clean_message("\n\nsubject\n\nbody \n"), "subject\n\nbody\n");
        assert_eq!(clean_message(" \n\t\n"), "");
    }
}
