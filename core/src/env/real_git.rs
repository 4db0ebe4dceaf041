//! The real git: [`Git`] by running git's plumbing commands.
//!
//! Why the command line and not a library (gix, git2): a scoped commit must
//! stage files exactly as `git add` would, through `.gitattributes` clean
//! filters, `core.autocrlf`, Git LFS and the executable bit, run the
//! user's hooks and sign with their GPG or SSH setup. The plumbing does all
//! of that by construction; libgit2 and gix each implement a subset (the
//! research probes in `shared/research/git-anchors.md` applied no filters),
//! and a subtle difference there is a wrong commit, not a slow one. The
//! price is a process per step (ten per commit, counted in
//! `reports/commit.md` with its timings); a library backend can join behind
//! this trait if that ever dominates.
//!
//! Every command runs with `GIT_LITERAL_PATHSPECS=1` (a file named `*.md`
//! is that file, not a glob), `LC_ALL=C` (errors are parsed), and
//! `core.fsync=committed,index` (objects, refs and the index synced before
//! git renames them into place: a machine crash mid-commit leaves the old
//! branch or the new one, never a ref naming a lost object).
#![allow(clippy::disallowed_methods)]

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use super::git::{Change, Entry, Git, GitError, Head, Hook, Oid, RefUpdate, Refresh, Repo};

/// git run in one directory.
#[derive(Clone, Debug)]
pub struct CliGit {
    dir: PathBuf,
    program: PathBuf,
    /// The hooks directory, once [`Git::repo`] has found it.
    hooks: OnceLock<PathBuf>,
}

impl CliGit {
    /// git as found on `PATH` (or `BATON_GIT`), run in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> CliGit {
        let program =
            std::env::var_os("BATON_GIT").map_or_else(|| PathBuf::from("git"), PathBuf::from);
        CliGit {
            dir: dir.into(),
            program,
            hooks: OnceLock::new(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.program);
        c.current_dir(&self.dir)
            .args(["-c", "core.fsync=committed,index"])
            .args(args)
            .env("GIT_LITERAL_PATHSPECS", "1")
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        c
    }

    /// Runs `c` feeding it `input`, collecting its output.
    fn output(&self, mut c: Command, input: Option<&[u8]>) -> Result<Output, GitError> {
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
        child.wait_with_output().map_err(GitError::Spawn)
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

/// Parses `ls-tree -r -z` output (`MODE TYPE OID\tPATH\0`) as additions.
fn parse_ls_tree(out: &[u8]) -> Result<Vec<Change>, GitError> {
    let mut changes = Vec::new();
    for line in out.split(|&b| b == 0).filter(|f| !f.is_empty()) {
        let line = text(line)?;
        let (meta, path) = line
            .split_once('\t')
            .ok_or_else(|| GitError::Corrupt(format!("ls-tree: {line:?}")))?;
        let parts: Vec<&str> = meta.split(' ').collect();
        let [mode, _kind, oid] = parts[..] else {
            return Err(GitError::Corrupt(format!("ls-tree: {line:?}")));
        };
        changes.push(Change {
            path: path.to_owned(),
            old: None,
            new: Some(Entry {
                mode: mode.to_owned(),
                oid: oid.to_owned(),
            }),
        });
    }
    Ok(changes)
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
        let out = self.output(self.command(&args), None)?;
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
        let sign = self.output(
            self.command(&["config", "--type=bool", "--get", "commit.gpgSign"]),
            None,
        )?;
        let _ = self.hooks.set(PathBuf::from(hooks));
        Ok(Repo {
            work_tree: PathBuf::from(work_tree),
            git_dir: PathBuf::from(git_dir),
            common_dir: PathBuf::from(common_dir),
            hooks: PathBuf::from(hooks),
            sign: sign.status.success() && text(&sign.stdout)?.trim() == "true",
        })
    }

    fn head(&self, repo: &Repo) -> Result<Head, GitError> {
        // HEAD is a loose file in both ref backends; reftable leaves a
        // placeholder there and symbolic-ref must be asked.
        let file = std::fs::read(repo.git_dir.join("HEAD")).map_err(GitError::Spawn)?;
        let file = text(&file)?.trim();
        let branch = match file.strip_prefix("ref: ") {
            Some("refs/heads/.invalid") => {
                let out = self.output(self.command(&["symbolic-ref", "-q", "HEAD"]), None)?;
                out.status
                    .success()
                    .then(|| text(&out.stdout).map(|s| s.trim().to_owned()))
                    .transpose()?
            }
            Some(name) => Some(name.to_owned()),
            None => None,
        };
        let commit = self.rev(branch.as_deref().unwrap_or("HEAD"))?;
        Ok(Head { branch, commit })
    }

    fn stage(&self, index: &Path, base: Option<&str>, paths: &[String]) -> Result<Oid, GitError> {
        match base {
            Some(base) => self.run_indexed(index, &["read-tree", base], None)?,
            None => self.run_indexed(index, &["read-tree", "--empty"], None)?,
        };
        self.run_indexed(
            index,
            &["update-index", "--add", "--remove", "-z", "--stdin"],
            Some(&nul_list(paths)),
        )?;
        let tree = self.run_indexed(index, &["write-tree"], None)?;
        Ok(text(&tree)?.trim().to_owned())
    }

    fn diff(&self, from: Option<&str>, to: &str) -> Result<Vec<Change>, GitError> {
        match from {
            Some(from) => {
                let out = self.run(&["diff-tree", "-r", "-z", "--no-renames", from, to], None)?;
                parse_raw_diff(&out)
            }
            None => parse_ls_tree(&self.run(&["ls-tree", "-r", "-z", to], None)?),
        }
    }

    fn commit_tree(
        &self,
        tree: &str,
        parent: Option<&str>,
        message: &str,
        sign: bool,
    ) -> Result<Oid, GitError> {
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
        // An empty OLD means "must not exist yet".
        let mut args = vec!["update-ref", "-m", reflog];
        if name == "HEAD" {
            args.push("--no-deref");
        }
        args.extend([name, new, old.unwrap_or("")]);
        let out = self.output(self.command(&args), None)?;
        if out.status.success() {
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
        let out = self.output(self.command(&args), Some(&input))?;
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

    fn restore(&self, commit: Option<&str>, paths: &[String]) -> Result<(), GitError> {
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
            self.run(&args, None)?;
        }
        Ok(())
    }
}

impl CliGit {
    /// The hook `name` as git would find it: `hooks` under `core.hooksPath`
    /// or the git directory, as `rev-parse --git-path` resolved it.
    fn hook_path(&self, name: &str) -> Result<PathBuf, GitError> {
        if let Some(hooks) = self.hooks.get() {
            return Ok(hooks.join(name));
        }
        Ok(self.repo()?.hooks.join(name))
    }
}
