//! The git seam: the plumbing a scoped commit needs, one method per git
//! command, so the commit and transaction code above it runs unchanged on
//! a real repository ([`super::real_git::CliGit`]) and on the simulator's
//! git (`baton_sim::git::SimGit`), where a crash can strike between any two
//! of its steps.
//!
//! Each method's doc states what real git does; the simulated one must do
//! the same to what the protocol can observe (which trees and commits
//! exist, where refs point, what the shared index holds), checked by
//! `sim/tests/git_fidelity.rs` against real git on random operation
//! sequences.
//!
//! Object ids are opaque strings: hex in both worlds, but never compared
//! across worlds.

use std::path::{Path, PathBuf};

/// A git object id, as git prints it.
pub type Oid = String;

/// Where a repository lives and what it is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repo {
    /// The top of the work tree; scope paths are relative to it.
    pub work_tree: PathBuf,
    /// This worktree's git directory (its index, HEAD, in-progress state).
    pub git_dir: PathBuf,
    /// The git directory all worktrees share (objects, branches).
    pub common_dir: PathBuf,
    /// Where hooks are looked up (`core.hooksPath` honoured).
    pub hooks: PathBuf,
    /// `commit.gpgSign`: commits must be signed.
    pub sign: bool,
}

/// What HEAD names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// The branch HEAD points at (`refs/heads/main`); `None` when detached.
    pub branch: Option<String>,
    /// The commit it resolves to; `None` on an unborn branch (no commit yet).
    pub commit: Option<Oid>,
}

impl Head {
    /// The ref a commit moves: the branch, or HEAD itself when detached.
    pub fn target(&self) -> &str {
        self.branch.as_deref().unwrap_or("HEAD")
    }
}

/// One tree entry: its mode (`100644`, `100755`, `120000`) and blob.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Entry {
    pub mode: String,
    pub oid: Oid,
}

/// One path a commit changes (`diff-tree -r --no-renames`): a rename is a
/// deletion and an addition.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    /// Relative to the work tree's top, `/`-separated.
    pub path: String,
    /// Before; `None` for an addition.
    pub old: Option<Entry>,
    /// After; `None` for a deletion.
    pub new: Option<Entry>,
}

/// A private index's staging: the tree written from it and how that tree
/// differs from the base it was seeded with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Staged {
    pub tree: Oid,
    pub changes: Vec<Change>,
}

/// How a compare-and-swap of a ref ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefUpdate {
    Updated,
    /// The ref no longer held the expected value (someone committed), or
    /// its lock was taken: nothing changed.
    Moved,
}

/// How a write of the shared index ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refresh {
    Done,
    /// `index.lock` exists (another git command, or one that died): the
    /// index was not touched.
    Locked,
}

/// How a hook ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hook {
    /// No executable hook of that name.
    Absent,
    Passed,
    /// It exited non-zero (or by a signal): its status and what it printed.
    Failed {
        status: i32,
        output: String,
    },
}

/// A git command that failed for a reason the protocol does not handle.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("not a git repository: {0}")]
    NotARepo(PathBuf),
    #[error("a bare repository has no work tree to commit from: {0}")]
    Bare(PathBuf),
    /// `git` itself could not be run.
    #[error("cannot run git: {0}")]
    Spawn(std::io::Error),
    /// A git command failed: which one, its status and its first error line.
    #[error("git {command} failed (exit {status}): {message}")]
    Failed {
        command: String,
        status: i32,
        message: String,
    },
    /// Objects made in-process could not be written or made durable.
    #[error("cannot write git objects: {0}")]
    Objects(std::io::Error),
    /// Something git or the simulator's git left that cannot be read.
    #[error("{0}")]
    Corrupt(String),
}

/// The git commands a scoped commit runs.
pub trait Git {
    /// `git rev-parse --show-toplevel --git-dir --git-common-dir
    /// --git-path hooks` and `commit.gpgSign`.
    fn repo(&self) -> Result<Repo, GitError>;

    /// `HEAD`: the branch it names (`symbolic-ref`) and the commit that
    /// resolves to (`rev-parse --verify`), as one reading: a branch moved
    /// by git's lock-and-rename is seen at its old commit or its new one.
    fn head(&self, repo: &Repo) -> Result<Head, GitError>;

    /// `GIT_INDEX_FILE=index git read-tree BASE` (an empty index when
    /// `None`), `update-index --add --remove` of `paths` from the work tree
    /// (new, modified and deleted files alike; clean filters and the
    /// executable bit applied as `git add` does), then `write-tree`: the
    /// tree of `BASE` with exactly `paths` replaced, and `diff-index
    /// --cached BASE`: every path whose entry differs from `BASE`'s. The
    /// shared index is neither read nor written. `index` is left behind
    /// for hooks; the caller removes it.
    fn stage(&self, index: &Path, base: Option<&str>, paths: &[String])
    -> Result<Staged, GitError>;

    /// `git diff-tree -r --no-renames FROM TO`, FROM a commit (`None`: the
    /// empty tree) and TO a tree: every path whose entry differs.
    fn diff(&self, from: Option<&str>, to: &str) -> Result<Vec<Change>, GitError>;

    /// `git commit-tree TREE [-p PARENT] [-S]` with `message` verbatim, the
    /// author and committer from git's configuration.
    fn commit_tree(
        &self,
        tree: &str,
        parent: Option<&str>,
        message: &str,
        sign: bool,
    ) -> Result<Oid, GitError>;

    /// `git update-ref -m REFLOG NAME NEW OLD`: move `name` to `new` only
    /// if it still holds `old` (`None`: must not exist yet), under git's
    /// own ref lock. A ref given as `HEAD` is updated without dereferencing
    /// (detached HEAD).
    fn update_ref(
        &self,
        name: &str,
        new: &str,
        old: Option<&str>,
        reflog: &str,
    ) -> Result<RefUpdate, GitError>;

    /// `git update-index -z --index-info` on the shared index: for each
    /// change, drop the path's entries and enter its new blob (if any).
    /// git takes `index.lock` before it reads the index, so entries other
    /// processes staged meanwhile are kept. Fails fast (`Locked`) if the
    /// lock exists, unless `changes` is empty (git locks only to write).
    fn refresh_index(&self, changes: &[Change]) -> Result<Refresh, GitError>;

    /// `git hook run --ignore-missing NAME -- ARGS` with `GIT_INDEX_FILE`
    /// set to `index` when given.
    fn run_hook(&self, name: &str, index: Option<&Path>, args: &[&str]) -> Result<Hook, GitError>;

    /// Puts `paths` in the work tree back to `commit`'s content (`git
    /// restore --source --worktree`), removing those it does not hold; no
    /// paths, nothing touched. The shared index is neither read nor
    /// locked (git's restore locks whichever index it is given: `index`
    /// is a private one, which the caller removes), so a stale
    /// `index.lock` cannot stop a recovery.
    fn restore(&self, index: &Path, commit: Option<&str>, paths: &[String])
    -> Result<(), GitError>;
}
