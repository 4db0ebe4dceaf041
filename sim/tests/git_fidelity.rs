//! Differential fidelity of the simulated git: random sequences of what the
//! commit protocols do to a repository (work-tree edits, `stage`,
//! `commit_tree`, `update_ref` with right and wrong expectations,
//! `refresh_index`, `restore`, the field's `git add` and `git commit`, a
//! planted `index.lock`) run against real git in a temporary repository
//! and against [`SimGit`], by the same generic code. Outcomes, the work
//! tree, the shared index and the branch's history must agree.
//!
//! Object ids differ between the worlds (SHA-1 there, FNV here), so each
//! world's ids are renamed in order of first appearance: the same content
//! must get the same name on both sides, and different content different
//! names.
#![allow(clippy::disallowed_methods)] // the real side needs a temp directory

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use baton_core::env::git::{Change, Git, RefUpdate, Refresh};
use baton_core::env::real_git::CliGit;
use baton_core::env::{Fs, OpenFile};
use baton_sim::git::{self as simgit, SimGit, WORK};
use baton_sim::{Scenario, SimEnv, StrategyKind, run};
use proptest::prelude::*;

const PATHS: [&str; 4] = ["a.txt", "b.txt", "d/c.txt", "d/e.txt"];
const CONTENTS: [&str; 3] = ["one\n", "two\n", ""];
/// The first commit: `a.txt` and `d/c.txt`.
const SEED: [(&str, &str); 2] = [("a.txt", "zero\n"), ("d/c.txt", "one\n")];

#[derive(Clone, Debug)]
enum Op {
    Write(usize, usize),
    Remove(usize),
    /// Stage these paths into a fresh private index on HEAD's commit.
    Stage(Vec<usize>),
    /// Commit the last staged tree on HEAD and move the branch from it.
    Commit,
    /// Move the branch to the newest commit made, expecting the `k`-th
    /// commit seen (or an absent branch): right or wrong, by turns.
    UpdateExpecting(Option<usize>),
    /// Bring the shared index in line with the last staging's changes.
    Refresh,
    Restore(Vec<usize>),
    Add(Vec<usize>),
    CommitIndex,
    PlantIndexLock,
    RemoveIndexLock,
    Head,
}

fn subset() -> impl Strategy<Value = Vec<usize>> {
    proptest::sample::subsequence((0..PATHS.len()).collect::<Vec<_>>(), 0..=PATHS.len())
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..PATHS.len(), 0..CONTENTS.len()).prop_map(|(p, c)| Op::Write(p, c)),
        1 => (0..PATHS.len()).prop_map(Op::Remove),
        3 => subset().prop_map(Op::Stage),
        2 => Just(Op::Commit),
        1 => proptest::option::of(0..4usize).prop_map(Op::UpdateExpecting),
        2 => Just(Op::Refresh),
        1 => subset().prop_map(Op::Restore),
        2 => subset().prop_map(Op::Add),
        2 => Just(Op::CommitIndex),
        1 => Just(Op::PlantIndexLock),
        1 => Just(Op::RemoveIndexLock),
        1 => Just(Op::Head),
    ]
}

/// What differs between the worlds; everything else is the shared code.
trait World {
    type G: Git;
    fn git(&self) -> &Self::G;
    fn write(&self, path: &str, content: &str);
    fn remove(&self, path: &str);
    /// `git add PATHS`: whether it succeeded.
    fn add(&self, paths: &[String]) -> bool;
    /// `git commit -m`: the commit made, `Ok(None)` for nothing to commit.
    fn commit_index(&self, message: &str) -> Result<Option<String>, ()>;
    fn plant_index_lock(&self);
    fn remove_index_lock(&self);
    fn private_index(&self) -> PathBuf;
}

/// Ids renamed by first appearance.
#[derive(Default)]
struct Names(HashMap<String, usize>);

impl Names {
    fn of(&mut self, oid: &str) -> String {
        let next = self.0.len();
        format!("o{}", self.0.entry(oid.to_owned()).or_insert(next))
    }

    fn changes(&mut self, changes: &[Change]) -> String {
        let mut out = Vec::new();
        for c in changes {
            let mut side = |e: &Option<baton_core::env::git::Entry>| {
                e.as_ref().map_or("-".to_owned(), |e| {
                    format!("{}:{}", e.mode, self.of(&e.oid))
                })
            };
            let (old, new) = (side(&c.old), side(&c.new));
            out.push(format!("{} {old}>{new}", c.path));
        }
        out.join(",")
    }
}

fn paths(idx: &[usize]) -> Vec<String> {
    idx.iter().map(|&i| PATHS[i].to_owned()).collect()
}

/// Runs `ops` in a world; one line per operation.
fn apply<W: World>(w: &W, ops: &[Op], names: &mut Names) -> Vec<String> {
    let git = w.git();
    let repo = git.repo().expect("repo");
    let mut staged: Option<baton_core::env::git::Staged> = None;
    let mut commits: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let line = match op {
            Op::Write(p, c) => {
                w.write(PATHS[*p], CONTENTS[*c]);
                String::new()
            }
            Op::Remove(p) => {
                w.remove(PATHS[*p]);
                String::new()
            }
            Op::Stage(idx) => {
                let head = git.head(&repo).expect("head");
                let result = git.stage(&w.private_index(), head.commit.as_deref(), &paths(idx));
                match result {
                    Ok(s) => {
                        let line =
                            format!("tree {} [{}]", names.of(&s.tree), names.changes(&s.changes));
                        staged = Some(s);
                        line
                    }
                    Err(_) => "err".to_owned(),
                }
            }
            Op::Commit => match &staged {
                None => "no tree".to_owned(),
                Some(s) => {
                    let head = git.head(&repo).expect("head");
                    let message = format!("c{i}\n");
                    let c = git
                        .commit_tree(&s.tree, head.commit.as_deref(), &message, false)
                        .expect("commit-tree");
                    commits.push(c.clone());
                    let moved = git
                        .update_ref(head.target(), &c, head.commit.as_deref(), "fidelity")
                        .expect("update-ref");
                    format!("commit {} {moved:?}", names.of(&c))
                }
            },
            Op::UpdateExpecting(k) => match commits.last() {
                None => "no commit".to_owned(),
                Some(new) => {
                    let old = k.map(|k| commits[k % commits.len()].clone());
                    match git.update_ref("refs/heads/main", new, old.as_deref(), "fidelity") {
                        Ok(RefUpdate::Updated) => "updated".to_owned(),
                        Ok(RefUpdate::Moved) => "moved".to_owned(),
                        Err(_) => "err".to_owned(),
                    }
                }
            },
            Op::Refresh => match &staged {
                None => "no changes".to_owned(),
                Some(s) => match git.refresh_index(&s.changes) {
                    Ok(Refresh::Done) => "done".to_owned(),
                    Ok(Refresh::Locked) => "locked".to_owned(),
                    Err(_) => "err".to_owned(),
                },
            },
            Op::Restore(idx) => {
                let head = git.head(&repo).expect("head");
                match git.restore(&w.private_index(), head.commit.as_deref(), &paths(idx)) {
                    Ok(()) => "restored".to_owned(),
                    Err(_) => "err".to_owned(),
                }
            }
            Op::Add(idx) => format!("add {}", w.add(&paths(idx))),
            Op::CommitIndex => match w.commit_index(&format!("c{i}")) {
                Ok(Some(c)) => format!("commit {}", names.of(&c)),
                Ok(None) => "nothing".to_owned(),
                Err(()) => "err".to_owned(),
            },
            Op::PlantIndexLock => {
                w.plant_index_lock();
                String::new()
            }
            Op::RemoveIndexLock => {
                w.remove_index_lock();
                String::new()
            }
            Op::Head => {
                let head = git.head(&repo).expect("head");
                format!(
                    "{:?} {}",
                    head.branch,
                    head.commit.map_or("-".to_owned(), |c| names.of(&c))
                )
            }
        };
        out.push(format!("{op:?} -> {line}"));
    }
    out
}

/// The repository's end state in one world: files, shared index, history.
#[derive(Debug, PartialEq, Eq)]
struct End {
    files: BTreeMap<String, String>,
    index: BTreeMap<String, String>,
    /// Tip first: each commit's message and tree (path -> blob name).
    history: Vec<(String, BTreeMap<String, String>)>,
}

// --- real git --------------------------------------------------------------

struct Real {
    dir: tempfile::TempDir,
    git: CliGit,
}

fn sh_git(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_LITERAL_PATHSPECS", "1")
        .output()
        .expect("git runs")
}

impl Real {
    fn new() -> Real {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for args in [
            &["init", "-q", "-b", "main"][..],
            &["config", "user.name", "f"],
            &["config", "user.email", "f@example.com"],
            &["config", "commit.gpgSign", "false"],
        ] {
            assert!(sh_git(d, args).status.success());
        }
        std::fs::create_dir(d.join("d")).unwrap();
        for (p, c) in SEED {
            std::fs::write(d.join(p), c).unwrap();
        }
        assert!(sh_git(d, &["add", "-A"]).status.success());
        assert!(sh_git(d, &["commit", "-qm", "init"]).status.success());
        std::fs::create_dir(d.join(".git/baton")).unwrap();
        let git = CliGit::new(d);
        // Reading the repository's settings is what lets the in-process
        // steps run: the simulated git is checked against them too.
        git.repo().unwrap();
        Real { dir, git }
    }

    fn end(&self, names: &mut Names) -> End {
        let d = self.dir.path();
        let mut files = BTreeMap::new();
        for p in PATHS {
            if let Ok(c) = std::fs::read_to_string(d.join(p)) {
                files.insert(p.to_owned(), c);
            }
        }
        let listing = |args: &[&str]| -> Vec<(String, String)> {
            let out = sh_git(d, args);
            assert!(out.status.success(), "{args:?}");
            String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(|l| {
                    let (meta, path) = l.split_once('\t').unwrap();
                    let oid = meta
                        .split(' ')
                        .nth(if args[0] == "ls-files" { 1 } else { 2 });
                    (path.to_owned(), oid.unwrap().to_owned())
                })
                .collect()
        };
        let index = listing(&["ls-files", "-s"])
            .into_iter()
            .map(|(p, o)| (p, names.of(&o)))
            .collect();
        let log = sh_git(d, &["rev-list", "main"]);
        let mut history = Vec::new();
        for c in String::from_utf8(log.stdout).unwrap().lines() {
            let message = sh_git(d, &["log", "-1", "--format=%B", c]);
            let tree = listing(&["ls-tree", "-r", c])
                .into_iter()
                .map(|(p, o)| (p, names.of(&o)))
                .collect();
            history.push((
                String::from_utf8(message.stdout).unwrap().trim().to_owned(),
                tree,
            ));
        }
        End {
            files,
            index,
            history,
        }
    }
}

impl World for Real {
    type G = CliGit;
    fn git(&self) -> &CliGit {
        &self.git
    }
    fn write(&self, path: &str, content: &str) {
        std::fs::write(self.dir.path().join(path), content).unwrap();
    }
    fn remove(&self, path: &str) {
        let _ = std::fs::remove_file(self.dir.path().join(path));
    }
    fn add(&self, paths: &[String]) -> bool {
        let mut args = vec!["add", "--"];
        args.extend(paths.iter().map(String::as_str));
        sh_git(self.dir.path(), &args).status.success()
    }
    fn commit_index(&self, message: &str) -> Result<Option<String>, ()> {
        let d = self.dir.path();
        let out = sh_git(d, &["commit", "-q", "-m", message]);
        match out.status.code() {
            Some(0) => {
                let head = sh_git(d, &["rev-parse", "HEAD"]);
                Ok(Some(
                    String::from_utf8(head.stdout).unwrap().trim().to_owned(),
                ))
            }
            // "nothing to commit" or "no changes added to commit".
            Some(1) => Ok(None),
            _ => Err(()),
        }
    }
    fn plant_index_lock(&self) {
        let _ = std::fs::write(self.dir.path().join(".git/index.lock"), "");
    }
    fn remove_index_lock(&self) {
        let _ = std::fs::remove_file(self.dir.path().join(".git/index.lock"));
    }
    fn private_index(&self) -> PathBuf {
        self.dir.path().join(".git/baton/index.fidelity")
    }
}

// --- simulated git ----------------------------------------------------------

struct Sim<'e> {
    env: &'e SimEnv<'e>,
    git: SimGit<'e>,
}

impl<'e> World for Sim<'e> {
    type G = SimGit<'e>;
    fn git(&self) -> &SimGit<'e> {
        &self.git
    }
    fn write(&self, path: &str, content: &str) {
        let file = self.env.open(&Path::new(WORK).join(path), true).unwrap();
        file.set_len(0).unwrap();
        file.write_all_at(content.as_bytes(), 0).unwrap();
    }
    fn remove(&self, path: &str) {
        let _ = self.env.remove_file(&Path::new(WORK).join(path));
    }
    fn add(&self, paths: &[String]) -> bool {
        self.git.add(paths).is_ok()
    }
    fn commit_index(&self, message: &str) -> Result<Option<String>, ()> {
        self.git.commit_index(message).map_err(drop)
    }
    fn plant_index_lock(&self) {
        let _ = self.env.create_new(Path::new("/w/.git/index.lock"));
    }
    fn remove_index_lock(&self) {
        let _ = self.env.remove_file(Path::new("/w/.git/index.lock"));
    }
    fn private_index(&self) -> PathBuf {
        PathBuf::from("/w/.git/baton/index.fidelity")
    }
}

fn sim_end(fs: &baton_sim::fs::SimFs, names: &mut Names) -> End {
    let mut files = BTreeMap::new();
    for p in PATHS {
        if let Ok(c) = fs.read(&Path::new(WORK).join(p), 1 << 20) {
            files.insert(p.to_owned(), String::from_utf8(c).unwrap());
        }
    }
    let index = simgit::read_shared_index(fs)
        .unwrap()
        .into_iter()
        .map(|(p, e)| (p, names.of(&e.oid)))
        .collect();
    let mut history = Vec::new();
    let (_, mut at) = simgit::read_head(fs).unwrap();
    while let Some(oid) = at {
        let c = simgit::read_commit(fs, &oid).unwrap();
        let tree = simgit::read_tree(fs, &c.tree)
            .unwrap()
            .into_iter()
            .map(|(p, e)| (p, names.of(&e.oid)))
            .collect();
        history.push((c.message.trim().to_owned(), tree));
        at = c.parent;
    }
    End {
        files,
        index,
        history,
    }
}

fn on_sim(ops: &[Op]) -> (Vec<String>, End) {
    type Shared = (Vec<String>, Names, Option<End>);
    let shared: Arc<Mutex<Shared>> = Arc::default();
    let (ops, sink) = (ops.to_vec(), Arc::clone(&shared));
    let mut s = Scenario::new("git-fidelity", 1, move |env, _, _| {
        let world = Sim {
            env,
            git: SimGit::new(env),
        };
        let mut guard = sink.lock().unwrap();
        let (lines, names, _) = &mut *guard;
        *lines = apply(&world, &ops, names);
    });
    s.setup = Box::new(|fs| {
        let t = std::time::UNIX_EPOCH;
        fs.create_dir(Path::new(WORK), t).unwrap();
        simgit::init(fs, t);
        fs.create_dir(Path::new("/w/d"), t).unwrap();
        simgit::seed(fs, &SEED, t);
        fs.create_dir(Path::new("/w/.git/baton"), t).unwrap();
    });
    let end_sink = Arc::clone(&shared);
    s.end = Box::new(move |fs, _| {
        let mut guard = end_sink.lock().unwrap();
        let (_, names, end) = &mut *guard;
        *end = Some(sim_end(fs, names));
        Ok(())
    });
    let report = run(&s, &s.config(StrategyKind::Random, 0), false);
    assert!(report.violation.is_none(), "{:?}", report.violation);
    let mut guard = shared.lock().unwrap();
    let (lines, _, end) = &mut *guard;
    (std::mem::take(lines), end.take().expect("end ran"))
}

fn on_real(ops: &[Op]) -> (Vec<String>, End) {
    let world = Real::new();
    let mut names = Names::default();
    let lines = apply(&world, ops, &mut names);
    let end = world.end(&mut names);
    (lines, end)
}

proptest! {
    // PROPTEST_CASES overrides the count for a longer soak.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    #[test]
    fn simulated_git_matches_real_git(ops in proptest::collection::vec(op(), 1..24)) {
        prop_assert_eq!(on_sim(&ops), on_real(&ops));
    }
}

#[test]
fn the_commit_protocols_steps_match_real_git() {
    use Op::*;
    let ops = [
        Write(0, 0),
        Write(2, 1),
        Add(vec![0]),
        Write(1, 2),
        Stage(vec![1, 2]),
        Commit,
        Refresh,
        Head,
        CommitIndex,
        PlantIndexLock,
        Refresh,
        Add(vec![1]),
        RemoveIndexLock,
        Remove(0),
        Stage(vec![0]),
        UpdateExpecting(Some(0)),
        Commit,
        Restore(vec![0, 3]),
        UpdateExpecting(None),
    ];
    assert_eq!(on_sim(&ops), on_real(&ops));
}

// Regression tests: discrepancies this differential test found.

#[test]
fn add_of_a_path_neither_staged_nor_present_fails_whole() {
    use Op::*;
    // "pathspec did not match any files": a.txt is not staged either.
    let ops = [Write(1, 0), Add(vec![1, 3]), CommitIndex];
    assert_eq!(on_sim(&ops), on_real(&ops));
}

#[test]
fn an_empty_index_refresh_takes_no_lock() {
    use Op::*;
    let ops = [PlantIndexLock, Stage(vec![]), Refresh];
    assert_eq!(on_sim(&ops), on_real(&ops));
}

#[test]
fn restore_of_no_paths_touches_nothing_and_ignores_index_lock() {
    use Op::*;
    // The real side once restored every top-level path for an empty list
    // (`ls-tree` and `restore` read no path as all paths), and failed on a
    // stale index.lock.
    let ops = [
        Write(0, 1),
        Write(2, 0),
        PlantIndexLock,
        Restore(vec![]),
        Restore(vec![2]),
    ];
    let (lines, end) = on_real(&ops);
    assert_eq!(end.files["a.txt"], CONTENTS[1], "a.txt was not asked for");
    assert_eq!((lines, end), on_sim(&ops));
}
