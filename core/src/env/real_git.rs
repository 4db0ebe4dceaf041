//! The real git: [`Git`] by running git's plumbing commands.
//!
//! Why the command line and not a library (gix, git2): a scoped commit must
//! stage files exactly as `git add` would, through `.gitattributes` clean
//! filters, `core.autocrlf`, Git LFS and the executable bit, run the
//! user's hooks and sign with their GPG or SSH setup. The plumbing does all
//! of that by construction; libgit2 and gix each implement a subset (the
//! research probes in `shared/research/git-anchors.md` applied no filters),
//! and a subtle difference there is a wrong commit, not a slow one. The
//! price is a process per step: nine per commit, seven of them in a chain
//! (`reports/commit.md` has the timings: about twice a plain `git add` +
//! `git commit`, whose two processes do the same work in-process). So
//! where nothing could transform what is staged (no attributes, no
//! `core.autocrlf`, no pre-commit hook, no signing: [`inprocess`] lists it
//! all), the staging and the commit are written in-process ([`objects`]:
//! loose and packed objects read, one synced pack written per commit) and
//! the branch is moved under git's own ref lock (`refs`), and git runs
//! three processes in a chain of two: `rev-parse` beside `git var`, then
//! the shared index's `update-index` (its format, extensions and all, stays
//! git's). Anything else, and any failure of the in-process path, goes to
//! git's plumbing as before.
//! `BATON_GIT_INPROCESS=0` sends everything to git.
//!
//! Every command runs with `GIT_LITERAL_PATHSPECS=1` (a file named `*.md`
//! is that file, not a glob), `LC_ALL=C` (errors are parsed), and
//! `core.fsync=committed` (objects and refs synced before git renames them
//! into place: a machine crash mid-commit leaves the old branch or the new
//! one, never a ref naming a lost object); the shared index is synced too
//! when it is written (`committed,index`). Private indexes are not: a
//! crash throws them away, and syncing them cost a fifth of a commit.
//!
//! Where two commands are independent they run side by side (`repo`'s two
//! questions, `stage`'s tree and diff): a commit is a chain of processes,
//! and its length is the chain's.
#![allow(clippy::disallowed_methods)]

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use super::git::{Change, Entry, Git, GitError, Head, Hook, Oid, RefUpdate, Refresh, Repo, Staged};

pub mod inprocess;
pub mod objects;
mod refs;

use inprocess::{Defer, InProcess, Settings};

/// git run in one directory.
#[derive(Clone, Debug)]
pub struct CliGit {
    dir: PathBuf,
    /// The hooks directory, once [`Git::repo`] has found it.
    hooks: OnceLock<PathBuf>,
    /// Whether steps may be done in-process at all.
    inprocess: bool,
    /// The in-process writer and what it may do, once [`Git::repo`] has
    /// read the repository's settings.
    fast: OnceLock<Arc<Fast>>,
}

#[derive(Debug)]
struct Fast {
    settings: Settings,
    writer: InProcess,
    /// Steps done in-process (stagings and commits), for tests that must
    /// know which way ran.
    steps: AtomicU32,
}

/// The git program: `BATON_GIT`, or `git`, looked up on `PATH` once per
/// process rather than by every spawn (each lookup is a failed `execve`
/// per directory before git's).
pub fn program() -> &'static Path {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        let name =
            std::env::var_os("BATON_GIT").map_or_else(|| PathBuf::from("git"), PathBuf::from);
        if name.components().count() != 1 {
            return name;
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .filter(|dir| dir.is_absolute())
            .map(|dir| dir.join(&name))
            .find(|candidate| is_executable(candidate))
            .unwrap_or(name)
    })
}

/// A regular file (through symlinks) with an executable bit: a program on
/// `PATH`, or a hook git would run.
pub(super) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

impl CliGit {
    /// git (see [`program`]) run in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> CliGit {
        let inprocess = std::env::var_os("BATON_GIT_INPROCESS").is_none_or(|v| v != "0");
        CliGit {
            dir: dir.into(),
            hooks: OnceLock::new(),
            inprocess,
            fast: OnceLock::new(),
        }
    }

    /// git whose every step is git's plumbing (the in-process path's
    /// reference in tests and benchmarks).
    pub fn plumbing_only(dir: impl Into<PathBuf>) -> CliGit {
        CliGit {
            inprocess: false,
            ..CliGit::new(dir)
        }
    }

    /// How many stagings and commits were done in-process so far.
    pub fn in_process_steps(&self) -> u32 {
        self.fast
            .get()
            .map_or(0, |f| f.steps.load(Ordering::Relaxed))
    }

    /// Writes what the in-process steps made, durable, before git is given
    /// a name of it.
    fn flush(&self) -> Result<(), GitError> {
        match self.fast.get() {
            Some(fast) => fast.writer.flush().map_err(GitError::Objects),
            None => Ok(()),
        }
    }

    /// Each in-process commit adds a pack; past `gc.autoPackLimit` of
    /// them, git's automatic maintenance is asked to fold them, as `git
    /// commit` asks after every commit (it detaches and works in the
    /// background; its failure is git's to report, never the commit's).
    fn maintain(&self) {
        let Some(fast) = self.fast() else {
            return;
        };
        // Asked once at the limit and then every sixteenth pack past it,
        // not on every commit: a detached gc takes a while to fold them,
        // and with `gc.auto=0` it never will.
        let (limit, count) = (fast.settings.auto_pack_limit, fast.writer.pack_count());
        if limit == 0 || count < limit || (count - limit) % 16 != 0 {
            return;
        }
        let mut c = self.command(&["maintenance", "run", "--auto", "--quiet"]);
        c.stdout(Stdio::null()).stderr(Stdio::null());
        let _ = c.status();
    }

    /// The in-process writer, when [`Git::repo`] has set it up.
    fn fast(&self) -> Option<&Fast> {
        self.fast.get().map(|f| &**f).filter(|_| self.inprocess)
    }

    /// Runs an in-process step, or says why git must (to a reader of
    /// `BATON_GIT_TRACE`).
    fn try_fast<T>(&self, step: impl FnOnce(&Fast) -> Result<T, Defer>) -> Option<T> {
        let fast = self.fast()?;
        match step(fast) {
            Ok(done) => {
                fast.steps.fetch_add(1, Ordering::Relaxed);
                Some(done)
            }
            Err(Defer(why)) => {
                if std::env::var_os("BATON_GIT_TRACE").is_some() {
                    let _ = writeln!(io::stderr(), "baton: git does this step: {why}");
                }
                None
            }
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        self.command_syncing("committed", args)
    }

    /// git with `core.fsync` set to `sync`.
    fn command_syncing(&self, sync: &str, args: &[&str]) -> Command {
        let mut c = Command::new(program());
        c.current_dir(&self.dir)
            .arg("-c")
            .arg(format!("core.fsync={sync}"))
            .args(args)
            .env("GIT_LITERAL_PATHSPECS", "1")
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        c
    }

    /// Runs `c` feeding it `input`, collecting its output.
    fn output(&self, c: Command, input: Option<&[u8]>) -> Result<Output, GitError> {
        finish(start(c, input)?)
    }

    /// Runs git with `args` (and `input` on stdin); its stdout if it
    /// succeeded.
    fn run(&self, args: &[&str], input: Option<&[u8]>) -> Result<Vec<u8>, GitError> {
        let out = self.output(self.command(args), input)?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(failed(args, &out))
        }
    }

    fn run_indexed(
        &self,
        index: &Path,
        args: &[&str],
        input: Option<&[u8]>,
    ) -> Result<Vec<u8>, GitError> {
        let mut c = self.command(args);
        c.env("GIT_INDEX_FILE", index);
        let out = self.output(c, input)?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(failed(args, &out))
        }
    }

    fn rev(&self, name: &str) -> Result<Option<Oid>, GitError> {
        let spec = format!("{name}^{{commit}}");
        let out = self.output(self.command(&["rev-parse", "-q", "--verify", &spec]), None)?;
        match out.status.code() {
            Some(0) => Ok(Some(text(&out.stdout)?.trim().to_owned())),
            Some(1) => Ok(None),
            _ => Err(failed(&["rev-parse", "--verify", &spec], &out)),
        }
    }
}

/// Starts `c` and feeds it `input` (small: git reads it all before it
/// writes much), so that independent commands can run side by side.
fn start(mut c: Command, input: Option<&[u8]>) -> Result<Child, GitError> {
    if input.is_some() {
        c.stdin(Stdio::piped());
    }
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().map_err(GitError::Spawn)?;
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("piped");
        // A command that exits early closes its end: its status says
        // why, not the broken pipe.
        let _ = stdin.write_all(input);
    }
    Ok(child)
}

fn finish(child: Child) -> Result<Output, GitError> {
    child.wait_with_output().map_err(GitError::Spawn)
}

fn succeeded(args: &[&str], out: Output) -> Result<Vec<u8>, GitError> {
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(failed(args, &out))
    }
}

fn failed(args: &[&str], out: &Output) -> GitError {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let message = stderr
        .lines()
        .find(|l| l.starts_with("fatal:") || l.starts_with("error:"))
        .or_else(|| stderr.lines().find(|l| !l.trim().is_empty()))
        .unwrap_or("(no message)")
        .trim()
        .to_owned();
    GitError::Failed {
        command: args.first().copied().unwrap_or("").to_owned(),
        status: out.status.code().unwrap_or(-1),
        message,
    }
}

fn text(bytes: &[u8]) -> Result<&str, GitError> {
    std::str::from_utf8(bytes).map_err(|_| GitError::Corrupt("git printed non-UTF-8".to_owned()))
}

/// Paths as update-index's `-z --stdin` wants them.
fn nul_list(paths: &[String]) -> Vec<u8> {
    let mut input = Vec::new();
    for p in paths {
        input.extend_from_slice(p.as_bytes());
        input.push(0);
    }
    input
}

/// Parses `diff-tree -r -z` output: `:OLDMODE NEWMODE OLD NEW S\0PATH\0`.
fn parse_raw_diff(out: &[u8]) -> Result<Vec<Change>, GitError> {
    let mut fields = out.split(|&b| b == 0).filter(|f| !f.is_empty());
    let mut changes = Vec::new();
    while let Some(meta) = fields.next() {
        let meta = text(meta)?;
        let path = fields
            .next()
            .ok_or_else(|| GitError::Corrupt(format!("diff-tree: no path after {meta:?}")))?;
        let parts: Vec<&str> = meta.trim_start_matches(':').split(' ').collect();
        let [old_mode, new_mode, old, new, _status] = parts[..] else {
            return Err(GitError::Corrupt(format!("diff-tree: {meta:?}")));
        };
        let entry = |mode: &str, oid: &str| {
            (mode != "000000").then(|| Entry {
                mode: mode.to_owned(),
                oid: oid.to_owned(),
            })
        };
        changes.push(Change {
            path: text(path)?.to_owned(),
            old: entry(old_mode, old),
            new: entry(new_mode, new),
        });
    }
    Ok(changes)
}

/// Which listing [`parse_listing`] reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ListingKind {
    /// `ls-tree -r -z`: `MODE TYPE OID\tPATH`.
    Tree,
    /// `ls-files --stage -z`: `MODE OID STAGE\tPATH`.
    Index,
}

/// Parses a NUL-separated listing of entries as additions.
fn parse_listing(out: &[u8], kind: ListingKind) -> Result<Vec<Change>, GitError> {
    let mut changes = Vec::new();
    for line in out.split(|&b| b == 0).filter(|f| !f.is_empty()) {
        let line = text(line)?;
        let bad = || GitError::Corrupt(format!("listing: {line:?}"));
        let (meta, path) = line.split_once('\t').ok_or_else(bad)?;
        let parts: Vec<&str> = meta.split(' ').collect();
        let (mode, oid) = match (kind, &parts[..]) {
            (ListingKind::Tree, [mode, _kind, oid]) => (mode, oid),
            (ListingKind::Index, [mode, oid, _stage]) => (mode, oid),
            _ => return Err(bad()),
        };
        changes.push(Change {
            path: path.to_owned(),
            old: None,
            new: Some(Entry {
                mode: (*mode).to_owned(),
                oid: (*oid).to_owned(),
            }),
        });
    }
    Ok(changes)
}

/// A full object id (SHA-1 or SHA-256), as refs hold them.
fn is_oid(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Git for CliGit {
    fn repo(&self) -> Result<Repo, GitError> {
        let args = [
            "rev-parse",
            "--path-format=absolute",
            "--git-dir",
            "--git-common-dir",
            "--git-path",
            "hooks",
            "--is-bare-repository",
            "--show-toplevel",
        ];
        // The settings and the author and committer idents, as git
        // computes them (config, environment, dates): one process, beside
        // rev-parse.
        let settings = ["var", "-l"];
        let dirs = start(self.command(&args), None)?;
        let settings = start(self.command(&settings), None)?;
        let (out, settings) = (finish(dirs)?, finish(settings)?);
        let stdout = text(&out.stdout)?;
        let lines: Vec<&str> = stdout.lines().collect();
        if !out.status.success() {
            if lines.get(3) == Some(&"true") {
                return Err(GitError::Bare(PathBuf::from(lines[0])));
            }
            if String::from_utf8_lossy(&out.stderr).contains("not a git repository") {
                return Err(GitError::NotARepo(self.dir.clone()));
            }
            return Err(failed(&args, &out));
        }
        let [git_dir, common_dir, hooks, _bare, work_tree] = lines[..] else {
            return Err(GitError::Corrupt(format!("rev-parse printed {stdout:?}")));
        };
        let _ = self.hooks.set(PathBuf::from(hooks));
        if !settings.status.success() {
            return Err(failed(&["var", "-l"], &settings));
        }
        let settings = Settings::parse(text(&settings.stdout)?, Path::new(common_dir));
        let sign = settings.sign;
        let _ = self.fast.set(Arc::new(Fast {
            settings,
            writer: InProcess::new(
                PathBuf::from(work_tree),
                PathBuf::from(git_dir),
                PathBuf::from(common_dir),
                PathBuf::from(hooks),
            ),
            steps: AtomicU32::new(0),
        }));
        Ok(Repo {
            work_tree: PathBuf::from(work_tree),
            git_dir: PathBuf::from(git_dir),
            common_dir: PathBuf::from(common_dir),
            hooks: PathBuf::from(hooks),
            sign,
        })
    }

    fn head(&self, repo: &Repo) -> Result<Head, GitError> {
        // HEAD and branches are read as git's files backend stores them (a
        // process each would be a fifth of a commit's time); reftable
        // leaves a placeholder in HEAD, and git is asked.
        let file = std::fs::read(repo.git_dir.join("HEAD")).map_err(GitError::Spawn)?;
        let file = text(&file)?.trim();
        let Some(name) = file.strip_prefix("ref: ") else {
            if !is_oid(file) {
                return Err(GitError::Corrupt(format!("HEAD holds {file:?}")));
            }
            return Ok(Head {
                branch: None,
                commit: Some(file.to_owned()),
            });
        };
        if name == "refs/heads/.invalid" {
            let out = self.output(self.command(&["symbolic-ref", "-q", "HEAD"]), None)?;
            let branch = out
                .status
                .success()
                .then(|| text(&out.stdout).map(|s| s.trim().to_owned()))
                .transpose()?;
            let commit = self.rev(branch.as_deref().unwrap_or("HEAD"))?;
            return Ok(Head { branch, commit });
        }
        Ok(Head {
            branch: Some(name.to_owned()),
            commit: self.branch(repo, name)?,
        })
    }

    fn stage(
        &self,
        index: &Path,
        base: Option<&str>,
        paths: &[String],
    ) -> Result<Staged, GitError> {
        if let Some(staged) = self.try_fast(|f| f.writer.stage(&f.settings, base, paths)) {
            return Ok(staged);
        }
        match base {
            Some(base) => self.run_indexed(index, &["read-tree", base], None)?,
            None => self.run_indexed(index, &["read-tree", "--empty"], None)?,
        };
        self.run_indexed(
            index,
            &["update-index", "--add", "--remove", "-z", "--stdin"],
            Some(&nul_list(paths)),
        )?;
        // write-tree and the diff both only read the private index (git
        // takes its lock to cache the trees it wrote): side by side.
        let write = ["write-tree"];
        let diff: &[&str] = match base {
            Some(base) => &["diff-index", "--cached", "-r", "-z", "--no-renames", base],
            None => &["ls-files", "--stage", "-z"],
        };
        let with_index = |args: &[&str]| {
            let mut c = self.command(args);
            c.env("GIT_INDEX_FILE", index);
            c
        };
        let tree = start(with_index(&write), None)?;
        let changes = start(with_index(diff), None)?;
        let (tree, changes) = (finish(tree)?, finish(changes)?);
        let tree = text(&succeeded(&write, tree)?)?.trim().to_owned();
        let changes = succeeded(diff, changes)?;
        let changes = match base {
            Some(_) => parse_raw_diff(&changes)?,
            None => parse_listing(&changes, ListingKind::Index)?,
        };
        Ok(Staged { tree, changes })
    }

    fn diff(&self, from: Option<&str>, to: &str) -> Result<Vec<Change>, GitError> {
        self.flush()?;
        match from {
            Some(from) => {
                let out = self.run(&["diff-tree", "-r", "-z", "--no-renames", from, to], None)?;
                parse_raw_diff(&out)
            }
            None => parse_listing(
                &self.run(&["ls-tree", "-r", "-z", to], None)?,
                ListingKind::Tree,
            ),
        }
    }

    fn commit_tree(
        &self,
        tree: &str,
        parent: Option<&str>,
        message: &str,
        sign: bool,
    ) -> Result<Oid, GitError> {
        if !sign
            && let Some(commit) =
                self.try_fast(|f| f.writer.commit_tree(&f.settings, tree, parent, message))
        {
            return Ok(commit);
        }
        self.flush()?;
        let mut args = vec!["commit-tree", tree];
        if let Some(parent) = parent {
            args.extend(["-p", parent]);
        }
        if sign {
            args.push("-S");
        }
        args.extend(["-F", "-"]);
        let out = self.run(&args, Some(message.as_bytes()))?;
        Ok(text(&out)?.trim().to_owned())
    }

    fn update_ref(
        &self,
        name: &str,
        new: &str,
        old: Option<&str>,
        reflog: &str,
    ) -> Result<RefUpdate, GitError> {
        self.flush()?;
        if let Some(updated) =
            self.try_fast(|f| f.writer.update_ref(&f.settings, name, new, old, reflog))
        {
            if updated {
                self.maintain();
                return Ok(RefUpdate::Updated);
            }
            return Ok(RefUpdate::Moved);
        }
        // An empty OLD means "must not exist yet".
        let mut args = vec!["update-ref", "-m", reflog];
        if name == "HEAD" {
            args.push("--no-deref");
        }
        args.extend([name, new, old.unwrap_or("")]);
        let out = self.output(self.command(&args), None)?;
        if out.status.success() {
            self.maintain();
            return Ok(RefUpdate::Updated);
        }
        // Lost the race (the ref moved, or its lock was held for the
        // microseconds another update takes): the caller rebuilds.
        let now = self.rev(name)?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if now.as_deref() != old || stderr.contains(".lock") {
            return Ok(RefUpdate::Moved);
        }
        Err(failed(&args, &out))
    }

    fn refresh_index(&self, changes: &[Change]) -> Result<Refresh, GitError> {
        self.flush()?;
        let mut input = Vec::new();
        for c in changes {
            let any = c
                .new
                .as_ref()
                .or(c.old.as_ref())
                .map_or(40, |e| e.oid.len());
            input.extend_from_slice(format!("0 {}\t{}\0", "0".repeat(any), c.path).as_bytes());
            if let Some(e) = &c.new {
                input.extend_from_slice(format!("{} {}\t{}\0", e.mode, e.oid, c.path).as_bytes());
            }
        }
        let args = ["update-index", "-z", "--index-info"];
        let shared = self.command_syncing("committed,index", &args);
        let out = self.output(shared, Some(&input))?;
        if out.status.success() {
            Ok(Refresh::Done)
        } else if String::from_utf8_lossy(&out.stderr).contains("index.lock") {
            Ok(Refresh::Locked)
        } else {
            Err(failed(&args, &out))
        }
    }

    fn run_hook(&self, name: &str, index: Option<&Path>, args: &[&str]) -> Result<Hook, GitError> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.hook_path(name)?;
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {}
            _ => return Ok(Hook::Absent),
        }
        // A hook may read what was staged.
        self.flush()?;
        let mut all = vec!["hook", "run", "--ignore-missing", name, "--"];
        all.extend_from_slice(args);
        let mut c = self.command(&all);
        // The user reads a hook's words as git shows them: on stderr, so
        // `--json` output stays clean.
        let stderr = io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map_err(GitError::Spawn)?;
        c.env_remove("LC_ALL")
            .stdout(stderr)
            .stderr(Stdio::inherit());
        if let Some(index) = index {
            c.env("GIT_INDEX_FILE", index);
        }
        let status = c.status().map_err(GitError::Spawn)?;
        Ok(if status.success() {
            Hook::Passed
        } else {
            Hook::Failed {
                status: status.code().unwrap_or(-1),
                output: String::new(),
            }
        })
    }

    fn restore(
        &self,
        index: &Path,
        commit: Option<&str>,
        paths: &[String],
    ) -> Result<(), GitError> {
        self.flush()?;
        if paths.is_empty() {
            // `ls-tree` and `restore` with no path mean every path.
            return Ok(());
        }
        let mut present = Vec::new();
        if let Some(commit) = commit {
            let mut args = vec!["ls-tree", "-z", "--name-only", commit, "--"];
            args.extend(paths.iter().map(String::as_str));
            let out = self.run(&args, None)?;
            for p in out.split(|&b| b == 0).filter(|f| !f.is_empty()) {
                present.push(text(p)?.to_owned());
            }
        }
        for p in paths.iter().filter(|p| !present.contains(p)) {
            let file = self.dir.join(p);
            match std::fs::symlink_metadata(&file) {
                Ok(m) if !m.is_dir() => std::fs::remove_file(&file).map_err(GitError::Spawn)?,
                _ => {}
            }
        }
        if let (Some(commit), false) = (commit, present.is_empty()) {
            let source = format!("--source={commit}");
            let mut args = vec!["restore", source.as_str(), "--worktree", "--"];
            args.extend(present.iter().map(String::as_str));
            self.run_indexed(index, &args, None)?;
        }
        Ok(())
    }
}

impl CliGit {
    /// The commit branch `name` (`refs/heads/...`) points at, as git's
    /// files backend stores it: the loose ref in the common directory, else
    /// its line in `packed-refs` (`pack-refs` writes that before removing
    /// the loose file, so reading in this order never misses a branch).
    /// Anything unusual (a symbolic branch, an odd name) is git's to read.
    fn branch(&self, repo: &Repo, name: &str) -> Result<Option<Oid>, GitError> {
        let plain = name.starts_with("refs/heads/")
            && name
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..");
        if !plain {
            return self.rev(name);
        }
        match std::fs::read(repo.common_dir.join(name)) {
            Ok(bytes) => {
                let oid = text(&bytes)?.trim();
                return if is_oid(oid) {
                    Ok(Some(oid.to_owned()))
                } else {
                    self.rev(name)
                };
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(_) => return self.rev(name),
        }
        let packed = match std::fs::read(repo.common_dir.join("packed-refs")) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(GitError::Spawn(e)),
        };
        for line in text(&packed)?.lines() {
            if let Some((oid, refname)) = line.split_once(' ')
                && refname == name
                && is_oid(oid)
            {
                return Ok(Some(oid.to_owned()));
            }
        }
        Ok(None)
    }

    /// The hook `name` as git would find it: `hooks` under `core.hooksPath`
    /// or the git directory, as `rev-parse --git-path` resolved it.
    fn hook_path(&self, name: &str) -> Result<PathBuf, GitError> {
        if let Some(hooks) = self.hooks.get() {
            return Ok(hooks.join(name));
        }
        Ok(self.repo()?.hooks.join(name))
    }
}
