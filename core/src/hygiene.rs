//! Keeping baton's files out of git.
//!
//! A sidecar beside a user's file (`tasks.json.baton.lock`) must never show in
//! `git status` nor be swept into a commit by `git add -A` (seed 003 put its
//! lock where `git status` showed it). baton adds the sidecar's exact path,
//! and the pattern of its temp names, to the repository's
//! `$GIT_COMMON_DIR/info/exclude`: ignored like `.gitignore`, but local to
//! the clone, so no tracked file changes and nobody else's repository is
//! touched. Exact paths, not `*.lock`, which would hide `Cargo.lock` and
//! `yarn.lock` too.
//!
//! A gitignore line cannot hold a newline (nor, reliably, any control
//! character): a path with one would add lines of its own to the file and
//! could hide the user's files (`q\nsrc\nq` hides `src/`). Such a path is
//! not excluded, and the caller is told. Everything else is escaped so the
//! line matches exactly that path. An `info/exclude` that is a symlink is
//! left alone: replacing it would replace the link with a file.
//!
//! Concurrent baton processes editing `info/exclude` are serialised by a
//! lock that lives inside the git directory (`baton-exclude.lock`, never in
//! the work tree), and the file is replaced atomically.

use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::atomic::write_atomic;
use crate::env::{Env, Fs};
use crate::error::IoFailure;
use crate::lock::{self, LockError, LockOptions, Wait};

const HEADER: &str = "# baton: lock files (added by baton; safe to delete when unused)";

/// Limits on what baton reads of git's files: a `.git` or `commondir` file
/// holds one path; an exclude file is a list of patterns.
const GIT_FILE_LIMIT: u64 = 64 * 1024;
const EXCLUDE_LIMIT: u64 = 16 * 1024 * 1024;

/// How long to wait for another baton editing `info/exclude`.
const EXCLUDE_LOCK_WAIT: Duration = Duration::from_secs(10);

/// The repository a path lives in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repo {
    /// The work tree's top directory.
    pub work_tree: PathBuf,
    /// The git directory shared by all worktrees (holds `info/exclude`).
    pub common_dir: PathBuf,
}

/// Finds the repository whose work tree holds `dir` (absolute), if any.
pub fn find_repo<E: Env>(env: &E, dir: &Path) -> Result<Option<Repo>, IoFailure> {
    for top in dir.ancestors() {
        let dot_git = top.join(".git");
        let meta = match env.metadata(&dot_git) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(IoFailure::at("inspect", &dot_git)(e)),
        };
        let git_dir = if meta.is_dir {
            dot_git
        } else {
            // A linked worktree or submodule: `.git` is a file "gitdir: PATH".
            let text = env
                .read(&dot_git, GIT_FILE_LIMIT)
                .map_err(IoFailure::at("read", &dot_git))?;
            let text = String::from_utf8_lossy(&text);
            let Some(path) = text.trim().strip_prefix("gitdir:") else {
                return Err(IoFailure::at("read", &dot_git)(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "not a gitdir file",
                )));
            };
            top.join(path.trim())
        };
        let commondir = git_dir.join("commondir");
        let common_dir = match env.read(&commondir, GIT_FILE_LIMIT) {
            Ok(text) => git_dir.join(String::from_utf8_lossy(&text).trim()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => git_dir,
            Err(e) => return Err(IoFailure::at("read", &commondir)(e)),
        };
        return Ok(Some(Repo {
            work_tree: top.to_owned(),
            common_dir,
        }));
    }
    Ok(None)
}

/// Escapes a path for a gitignore line: `\` before the glob and comment
/// characters, so the line matches exactly this path.
fn escape(rel: &str) -> String {
    let mut out = String::with_capacity(rel.len());
    for c in rel.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '!' | '#' | ' ') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The exclude lines for a lock file at `rel` in the work tree: its exact
/// path and its temp names' pattern. `None` when no gitignore line can
/// express the path: not UTF-8, or holding a control character.
fn patterns(rel: &Path) -> Option<[String; 2]> {
    let rel = rel.to_str()?;
    if rel.chars().any(char::is_control) {
        return None;
    }
    let temps = match rel.rsplit_once('/') {
        Some((dir, name)) => format!("/{}/.{}.*.tmp", escape(dir), escape(name)),
        None => format!("/.{}.*.tmp", escape(rel)),
    };
    Some([format!("/{}", escape(rel)), temps])
}

/// Makes sure git ignores the lock file `lock` and its temp names. Returns
/// the exclude file edited, or `None` when `lock` is not in a work tree (or
/// already excluded). Paths inside the git directory need nothing.
pub fn exclude_from_git<E: Env>(env: &E, lock: &Path) -> Result<Option<PathBuf>, LockError> {
    let dir = match lock.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = env
        .canonicalize(dir)
        .map_err(IoFailure::at("resolve directory", dir))?;
    let Some(repo) = find_repo(env, &dir)? else {
        return Ok(None);
    };
    let mut rel = dir
        .strip_prefix(&repo.work_tree)
        .expect("an ancestor is a prefix")
        .to_owned();
    if rel.components().next() == Some(Component::Normal(".git".as_ref())) {
        return Ok(None);
    }
    rel.push(lock.file_name().unwrap_or_default());
    let Some(lines) = patterns(&rel) else {
        return Err(IoFailure::at("exclude from git", lock)(io::Error::new(
            io::ErrorKind::InvalidInput,
            "its path is not UTF-8 or holds a newline or control character, which no gitignore line can express",
        ))
        .into());
    };
    let info = repo.common_dir.join("info");
    let exclude = info.join("exclude");
    match env.symlink_metadata(&exclude) {
        Ok(m) if !m.is_file => {
            return Err(IoFailure::at("edit", &exclude)(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file (a symlink?): left alone",
            ))
            .into());
        }
        _ => {}
    }
    if missing(env, &exclude, &lines)?.is_empty() {
        return Ok(None);
    }
    match env.create_dir(&info) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(IoFailure::at("create directory", &info)(e).into()),
    }
    let guard_target = repo.common_dir.join("baton-exclude");
    let mode = lock::mode_for(env, &guard_target)?;
    let opts = LockOptions::new(mode, Wait::For(EXCLUDE_LOCK_WAIT));
    let Some(guard) = lock::acquire(env, &guard_target, &opts, &mut |_| {})? else {
        return Err(
            IoFailure::at("lock", &lock::sidecar_path(&guard_target))(io::Error::new(
                io::ErrorKind::TimedOut,
                "held by another baton too long",
            ))
            .into(),
        );
    };
    let todo = missing(env, &exclude, &lines)?;
    if !todo.is_empty() {
        let mut text = match env.read(&exclude, EXCLUDE_LIMIT) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(IoFailure::at("read", &exclude)(e).into()),
        };
        if !text.is_empty() && !text.ends_with(b"\n") {
            text.push(b'\n');
        }
        if !String::from_utf8_lossy(&text).lines().any(|l| l == HEADER) {
            text.extend_from_slice(HEADER.as_bytes());
            text.push(b'\n');
        }
        for line in todo {
            text.extend_from_slice(line.as_bytes());
            text.push(b'\n');
        }
        write_atomic(env, &exclude, &text)?;
    }
    guard.release()?;
    Ok(Some(exclude))
}

/// The lines of `want` that `exclude` lacks.
fn missing<E: Fs>(env: &E, exclude: &Path, want: &[String]) -> Result<Vec<String>, IoFailure> {
    let text = match env.read(exclude, EXCLUDE_LIMIT) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(IoFailure::at("read", exclude)(e)),
    };
    let text = String::from_utf8_lossy(&text);
    Ok(want
        .iter()
        .filter(|w| !text.lines().any(|l| l == w.as_str()))
        .cloned()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_with_newlines_or_control_characters_get_no_pattern() {
        for bad in [
            "q\nsrc\nq.baton.lock",
            "a\rb.baton.lock",
            "tab\there",
            "del\u{7f}",
        ] {
            assert_eq!(patterns(Path::new(bad)), None, "{bad:?}");
        }
    }

    #[test]
    fn patterns_match_exactly_this_lock_and_its_temps() {
        assert_eq!(
            patterns(Path::new("tasks.json.baton.lock")).unwrap(),
            [
                "/tasks.json.baton.lock".to_owned(),
                "/.tasks.json.baton.lock.*.tmp".to_owned()
            ]
        );
        assert_eq!(
            patterns(Path::new("a b/[x]*.lock")).unwrap(),
            [
                "/a\\ b/\\[x\\]\\*.lock".to_owned(),
                "/a\\ b/.\\[x\\]\\*.lock.*.tmp".to_owned()
            ]
        );
    }
}
