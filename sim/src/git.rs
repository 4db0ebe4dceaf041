//! The simulated git: [`Git`] on the simulated filesystem, so the commit
//! and transaction code that ships (`baton_core::commit`, `baton_core::txn`)
//! runs under the simulator; plus the porcelain the field's protocols use
//! (`git add`, `git commit` on the shared index) for their scenarios.
//!
//! It keeps what the protocols can observe and nothing more:
//!
//! - objects, content-addressed, in `.git/objects/OID` (blob, tree and
//!   commit; a tree is flat, one line per path);
//! - refs: `.git/HEAD` (`ref: refs/heads/main`, or an id when detached) and
//!   `.git/refs/heads/NAME`; `update-ref` compares and swaps;
//! - the shared index, `.git/index`, a flat tree; `index.lock` is git's
//!   `O_EXCL` lock, and a command that finds it fails at once;
//! - private indexes wherever `GIT_INDEX_FILE` says.
//!
//! Each git command is one call of the simulated process
//! ([`SimEnv::git_command`]): the scheduler interleaves processes between
//! commands and a crash or machine crash strikes between them, never inside
//! one (see there for why that is git's behaviour too). Objects, refs and
//! indexes are durable once the command returns, as with
//! `core.fsync=committed,index`; the work tree files `restore` writes are
//! not (git writes them without fsync), so a machine crash may undo them.
//! There are no hooks, filters or signing.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use baton_core::env::git::{
    Change, Entry, Git, GitError, Head, Hook, Oid, RefUpdate, Refresh, Repo, Staged,
};

use crate::env::SimEnv;
use crate::fs::SimFs;

/// The work tree every git scenario uses.
pub const WORK: &str = "/w";
const GIT: &str = "/w/.git";
const LIMIT: u64 = 1 << 20;

/// A flat tree: path to entry.
pub type Tree = BTreeMap<String, Entry>;

/// The simulated git, run by one simulated process.
#[derive(Debug)]
pub struct SimGit<'e> {
    env: &'e SimEnv<'e>,
}

fn git_path(rel: &str) -> PathBuf {
    Path::new(GIT).join(rel)
}

fn corrupt(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// FNV-1a, 64 bits: a content address good enough for a simulation.
fn hash(bytes: &[u8]) -> Oid {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Writes `data` at `path` durably (file and directory synced).
fn durable_put(fs: &mut SimFs, path: &Path, data: &[u8], now: SystemTime) -> io::Result<()> {
    let ofd = fs.open(path, true, usize::MAX, now)?;
    fs.set_len(ofd, 0, now);
    fs.write_all_at(ofd, data, 0, now);
    fs.sync_all(ofd);
    fs.close(ofd);
    fs.sync_dir(path.parent().expect("inside .git"))
}

/// Stores an object, returning its id.
fn write_object(fs: &mut SimFs, kind: &str, body: &[u8], now: SystemTime) -> io::Result<Oid> {
    let mut bytes = format!("{kind}\n").into_bytes();
    bytes.extend_from_slice(body);
    let oid = hash(&bytes);
    let path = git_path(&format!("objects/{oid}"));
    if fs.metadata(&path).is_err() {
        durable_put(fs, &path, &bytes, now)?;
    }
    Ok(oid)
}

/// Reads object `oid`, which must be a `kind`.
pub fn read_object(fs: &SimFs, kind: &str, oid: &str) -> io::Result<Vec<u8>> {
    let bytes = fs.read(&git_path(&format!("objects/{oid}")), LIMIT)?;
    let head = format!("{kind}\n");
    bytes
        .strip_prefix(head.as_bytes())
        .map(<[u8]>::to_vec)
        .ok_or_else(|| corrupt(format!("object {oid} is not a {kind}")))
}

fn tree_text(tree: &Tree) -> Vec<u8> {
    let mut out = String::new();
    for (path, e) in tree {
        out.push_str(&format!("{} {} {path}\n", e.mode, e.oid));
    }
    out.into_bytes()
}

fn parse_tree(bytes: &[u8]) -> io::Result<Tree> {
    let text = String::from_utf8(bytes.to_vec()).map_err(|_| corrupt("tree".into()))?;
    let mut tree = Tree::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ' ');
        let (Some(mode), Some(oid), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(corrupt(format!("tree line {line:?}")));
        };
        tree.insert(
            path.to_owned(),
            Entry {
                mode: mode.to_owned(),
                oid: oid.to_owned(),
            },
        );
    }
    Ok(tree)
}

/// A commit: its tree, parent and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    pub tree: Oid,
    pub parent: Option<Oid>,
    pub message: String,
}

pub fn read_commit(fs: &SimFs, oid: &str) -> io::Result<Commit> {
    let bytes = read_object(fs, "commit", oid)?;
    let text = String::from_utf8(bytes).map_err(|_| corrupt("commit".into()))?;
    let (headers, message) = text
        .split_once("\n\n")
        .ok_or_else(|| corrupt(format!("commit {oid}")))?;
    let mut tree = None;
    let mut parent = None;
    for h in headers.lines() {
        if let Some(t) = h.strip_prefix("tree ") {
            tree = Some(t.to_owned());
        } else if let Some(p) = h.strip_prefix("parent ") {
            parent = Some(p.to_owned());
        }
    }
    Ok(Commit {
        tree: tree.ok_or_else(|| corrupt(format!("commit {oid} has no tree")))?,
        parent,
        message: message.to_owned(),
    })
}

pub fn read_tree(fs: &SimFs, oid: &str) -> io::Result<Tree> {
    parse_tree(&read_object(fs, "tree", oid)?)
}

/// The tree of a commit, or empty for none.
fn tree_of(fs: &SimFs, commit: Option<&str>) -> io::Result<Tree> {
    match commit {
        Some(c) => read_tree(fs, &read_commit(fs, c)?.tree),
        None => Ok(Tree::new()),
    }
}

/// What HEAD names: its branch (or `None` detached) and commit.
pub fn read_head(fs: &SimFs) -> io::Result<(Option<String>, Option<Oid>)> {
    let head = String::from_utf8_lossy(&fs.read(&git_path("HEAD"), LIMIT)?)
        .trim()
        .to_owned();
    match head.strip_prefix("ref: ") {
        Some(name) => Ok((Some(name.to_owned()), read_ref(fs, name)?)),
        None => Ok((None, Some(head))),
    }
}

fn read_ref(fs: &SimFs, name: &str) -> io::Result<Option<Oid>> {
    match fs.read(&git_path(name), LIMIT) {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).trim().to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// `tree` with `paths` staged from the work tree (absent ones removed).
fn stage_into(
    fs: &mut SimFs,
    tree: &mut Tree,
    paths: &[String],
    now: SystemTime,
) -> io::Result<()> {
    for p in paths {
        match fs.read(&Path::new(WORK).join(p), LIMIT) {
            Ok(data) => {
                let oid = write_object(fs, "blob", &data, now)?;
                tree.insert(
                    p.clone(),
                    Entry {
                        mode: "100644".into(),
                        oid,
                    },
                );
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tree.remove(p);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn diff_trees(old: &Tree, new: &Tree) -> Vec<Change> {
    let mut paths: Vec<&String> = old.keys().chain(new.keys()).collect();
    paths.sort();
    paths.dedup();
    paths
        .into_iter()
        .filter(|p| old.get(*p) != new.get(*p))
        .map(|p| Change {
            path: p.clone(),
            old: old.get(p).cloned(),
            new: new.get(p).cloned(),
        })
        .collect()
}

fn read_index(fs: &SimFs, path: &Path) -> io::Result<Tree> {
    match fs.read(path, LIMIT) {
        Ok(b) => parse_tree(&b),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Tree::new()),
        Err(e) => Err(e),
    }
}

/// The shared index (`.git/index`), as a flat tree of what it stages.
pub fn read_shared_index(fs: &SimFs) -> io::Result<Tree> {
    read_index(fs, &git_path("index"))
}

fn index_lock() -> PathBuf {
    git_path("index.lock")
}

/// "Unable to create index.lock: File exists".
fn locked() -> io::Error {
    io::Error::from_raw_os_error(crate::fs::EEXIST)
}

fn git_err(command: &str) -> impl FnOnce(io::Error) -> GitError + '_ {
    move |e| GitError::Failed {
        command: command.to_owned(),
        status: 128,
        message: e.to_string(),
    }
}

/// Makes an empty repository at [`WORK`] on branch `main` (scenario setup).
pub fn init(fs: &mut SimFs, now: SystemTime) {
    for dir in [GIT, "/w/.git/objects", "/w/.git/refs", "/w/.git/refs/heads"] {
        fs.create_dir(Path::new(dir), now).expect("fresh fs");
    }
    fs.put(&git_path("HEAD"), b"ref: refs/heads/main\n", now)
        .expect("fresh fs");
}

/// Commits `files` (path, content) as the first commit (scenario setup).
pub fn seed(fs: &mut SimFs, files: &[(&str, &str)], now: SystemTime) {
    let mut tree = Tree::new();
    for (path, content) in files {
        fs.put(&Path::new(WORK).join(path), content.as_bytes(), now)
            .expect("fresh fs");
        let oid = write_object(fs, "blob", content.as_bytes(), now).expect("fresh fs");
        tree.insert(
            (*path).to_owned(),
            Entry {
                mode: "100644".into(),
                oid,
            },
        );
    }
    let t = write_object(fs, "tree", &tree_text(&tree), now).expect("fresh fs");
    let c = write_object(fs, "commit", format!("tree {t}\n\ninit\n").as_bytes(), now)
        .expect("fresh fs");
    durable_put(fs, &git_path("refs/heads/main"), c.as_bytes(), now).expect("fresh fs");
    durable_put(fs, &git_path("index"), &tree_text(&tree), now).expect("fresh fs");
}

impl<'e> SimGit<'e> {
    pub fn new(env: &'e SimEnv<'e>) -> SimGit<'e> {
        SimGit { env }
    }

    /// `git add PATHS` on the shared index (takes `index.lock`).
    pub fn add(&self, paths: &[String]) -> io::Result<()> {
        self.env
            .git_command(&|| format!("git add {}", paths.join(" ")), |fs, now| {
                if fs.metadata(&index_lock()).is_ok() {
                    return Err(locked());
                }
                let mut index = read_index(fs, &git_path("index"))?;
                // "pathspec did not match any files": a path neither in the
                // work tree nor staged fails the whole command.
                for p in paths {
                    if !index.contains_key(p) && fs.metadata(&Path::new(WORK).join(p)).is_err() {
                        return Err(io::Error::new(
                            io::ErrorKind::NotFound,
                            format!("pathspec {p}"),
                        ));
                    }
                }
                stage_into(fs, &mut index, paths, now)?;
                durable_put(fs, &git_path("index"), &tree_text(&index), now)?;
                Ok(String::new())
            })
            .map(drop)
    }

    /// `git commit -m MSG`: whatever the shared index holds, onto HEAD's
    /// branch. `Ok(None)`: nothing to commit.
    pub fn commit_index(&self, message: &str) -> io::Result<Option<Oid>> {
        let out = self
            .env
            .git_command(&|| format!("git commit -m {message:?}"), |fs, now| {
                if fs.metadata(&index_lock()).is_ok() {
                    return Err(locked());
                }
                let index = read_index(fs, &git_path("index"))?;
                let (branch, parent) = read_head(fs)?;
                let branch = branch.ok_or_else(|| corrupt("detached".into()))?;
                if tree_of(fs, parent.as_deref())? == index {
                    return Ok(String::new());
                }
                let tree = write_object(fs, "tree", &tree_text(&index), now)?;
                let commit = commit_body(&tree, parent.as_deref(), message);
                let oid = write_object(fs, "commit", commit.as_bytes(), now)?;
                durable_put(fs, &git_path(&branch), oid.as_bytes(), now)?;
                Ok(oid)
            })?;
        Ok((!out.is_empty()).then_some(out))
    }
}

fn commit_body(tree: &str, parent: Option<&str>, message: &str) -> String {
    let parent = parent.map_or(String::new(), |p| format!("parent {p}\n"));
    format!("tree {tree}\n{parent}\n{message}")
}

impl Git for SimGit<'_> {
    fn repo(&self) -> Result<Repo, GitError> {
        Ok(Repo {
            work_tree: PathBuf::from(WORK),
            git_dir: PathBuf::from(GIT),
            common_dir: PathBuf::from(GIT),
            hooks: git_path("hooks"),
            sign: false,
        })
    }

    fn head(&self, _repo: &Repo) -> Result<Head, GitError> {
        let out = self
            .env
            .git_command(&|| "git rev-parse HEAD".into(), |fs, _| {
                let (branch, commit) = read_head(fs)?;
                Ok(format!(
                    "{}\n{}",
                    branch.unwrap_or_default(),
                    commit.unwrap_or_default()
                ))
            })
            .map_err(git_err("rev-parse"))?;
        let (branch, commit) = out.split_once('\n').expect("two lines");
        let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Ok(Head {
            branch: some(branch),
            commit: some(commit),
        })
    }

    fn stage(
        &self,
        index: &Path,
        base: Option<&str>,
        paths: &[String],
    ) -> Result<Staged, GitError> {
        let mut changes = Vec::new();
        let tree = self
            .env
            .git_command(
                &|| {
                    format!(
                        "git read-tree + update-index {} + write-tree",
                        paths.join(" ")
                    )
                },
                |fs, now| {
                    let old = tree_of(fs, base)?;
                    let mut tree = old.clone();
                    stage_into(fs, &mut tree, paths, now)?;
                    changes = diff_trees(&old, &tree);
                    let text = tree_text(&tree);
                    durable_put(fs, index, &text, now)?;
                    write_object(fs, "tree", &text, now)
                },
            )
            .map_err(git_err("update-index"))?;
        Ok(Staged { tree, changes })
    }

    fn diff(&self, from: Option<&str>, to: &str) -> Result<Vec<Change>, GitError> {
        let fs_diff = |fs: &SimFs| -> io::Result<Vec<Change>> {
            Ok(diff_trees(&tree_of(fs, from)?, &read_tree(fs, to)?))
        };
        let mut changes = Vec::new();
        self.env
            .git_command(&|| format!("git diff-tree {from:?} {to}"), |fs, _| {
                changes = fs_diff(fs)?;
                Ok(format!("{} paths", changes.len()))
            })
            .map_err(git_err("diff-tree"))?;
        Ok(changes)
    }

    fn commit_tree(
        &self,
        tree: &str,
        parent: Option<&str>,
        message: &str,
        _sign: bool,
    ) -> Result<Oid, GitError> {
        self.env
            .git_command(&|| format!("git commit-tree {tree}"), |fs, now| {
                write_object(
                    fs,
                    "commit",
                    commit_body(tree, parent, message).as_bytes(),
                    now,
                )
            })
            .map_err(git_err("commit-tree"))
    }

    fn update_ref(
        &self,
        name: &str,
        new: &str,
        old: Option<&str>,
        _reflog: &str,
    ) -> Result<RefUpdate, GitError> {
        let out = self
            .env
            .git_command(
                &|| format!("git update-ref {name} {new} {old:?}"),
                |fs, now| {
                    let path = if name == "HEAD" {
                        git_path("HEAD")
                    } else {
                        git_path(name)
                    };
                    let current = if name == "HEAD" {
                        read_head(fs)?.1
                    } else {
                        read_ref(fs, name)?
                    };
                    if current.as_deref() != old {
                        return Ok("moved".to_owned());
                    }
                    durable_put(fs, &path, new.as_bytes(), now)?;
                    Ok("updated".to_owned())
                },
            )
            .map_err(git_err("update-ref"))?;
        Ok(if out == "updated" {
            RefUpdate::Updated
        } else {
            RefUpdate::Moved
        })
    }

    fn refresh_index(&self, changes: &[Change]) -> Result<Refresh, GitError> {
        let out = self
            .env
            .git_command(&|| "git update-index --index-info".into(), |fs, now| {
                // git takes the lock only once it has an entry to write.
                if changes.is_empty() {
                    return Ok("done".to_owned());
                }
                if fs.metadata(&index_lock()).is_ok() {
                    return Ok("locked".to_owned());
                }
                let mut index = read_index(fs, &git_path("index"))?;
                for c in changes {
                    match &c.new {
                        Some(e) => index.insert(c.path.clone(), e.clone()),
                        None => index.remove(&c.path),
                    };
                }
                durable_put(fs, &git_path("index"), &tree_text(&index), now)?;
                Ok("done".to_owned())
            })
            .map_err(git_err("update-index"))?;
        Ok(if out == "done" {
            Refresh::Done
        } else {
            Refresh::Locked
        })
    }

    fn run_hook(
        &self,
        _name: &str,
        _index: Option<&Path>,
        _args: &[&str],
    ) -> Result<Hook, GitError> {
        Ok(Hook::Absent)
    }

    fn restore(
        &self,
        _index: &Path,
        commit: Option<&str>,
        paths: &[String],
    ) -> Result<(), GitError> {
        self.env
            .git_command(&|| format!("git restore {}", paths.join(" ")), |fs, now| {
                let tree = tree_of(fs, commit)?;
                for p in paths {
                    let file = Path::new(WORK).join(p);
                    match tree.get(p) {
                        Some(e) => {
                            let data = read_object(fs, "blob", &e.oid)?;
                            fs.put(&file, &data, now)?;
                        }
                        None => match fs.remove_file(&file) {
                            Ok(()) => {}
                            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                            Err(e) => return Err(e),
                        },
                    }
                }
                Ok(String::new())
            })
            .map(drop)
            .map_err(git_err("restore"))
    }
}
