//! Commits (seed 003): tasks append their tag to their own file and, the
//! even-numbered ones, to the shared `TODO.md`, then commit "task TAG".
//!
//! - `commit-shared-index`: `git add` of the task's files, `git commit`:
//!   the shared index carries whatever another task staged meanwhile.
//! - `commit-lock-staging`: the seed's plan, a global lock around add and
//!   commit only; edits happen before it, so staging `TODO.md` stages the
//!   other task's line too.
//! - `baton-txn`: `baton_core::txn`, production code, on the simulated git,
//!   under every fault: crashes leave edits in the work tree and journals,
//!   which the next transaction over the scope finds and recovers
//!   (restoring the scope to HEAD, as a person would on `--recover
//!   --restore`).
//!
//! The oracle reads the repository after every acknowledged commit and at
//! the end (from outside the simulation: no calls). Walking the branch
//! from its tip, every commit's diff must add exactly its own task's tag,
//! once per file of that task's scope (no cross-commit; committed whole or
//! not at all), every object must be readable (a valid repository), and
//! every acknowledged commit must be in the history (no lost update).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use baton_core::atomic::write_atomic;
use baton_core::catalogue::Invariant;
use baton_core::claims::{ClaimError, Claimant, Claims};
use baton_core::env::git::Git;
use baton_core::env::{Clock, Fs, OpenFile, Random};
use baton_core::lock::{self, LockOptions, Mode, Wait, sidecar_path};
use baton_core::record::{FREE_SIDECAR, padded};
use baton_core::txn::{self, Begun, Finished, Plan, Recovery, TxnError};

use crate::clock::epoch;
use crate::env::{Probe, SimEnv};
use crate::fault::FaultKinds;
use crate::fs::SimFs;
use crate::git::{self, SimGit, WORK, read_commit, read_head, read_object, read_tree};
use crate::oracle::Oracle;
use crate::run::{Role, Scenario};

const TODO: &str = "TODO.md";
const PROCS: usize = 3;

fn own(slot: usize) -> String {
    format!("own{slot}.txt")
}

/// The files a task edits: its own, and `TODO.md` for even slots (so odd
/// ones commit concurrently with them and the branch's compare-and-swap is
/// exercised).
fn scope_of(slot: usize) -> Vec<String> {
    let mut s = vec![own(slot)];
    if slot.is_multiple_of(2) {
        s.push(TODO.to_owned());
    }
    s
}

/// The field's tasks all edit TODO.md.
fn field_scope(slot: usize) -> Vec<String> {
    vec![own(slot), TODO.to_owned()]
}

fn setup(fs: &mut SimFs) {
    fs.create_dir(Path::new(WORK), epoch()).expect("fresh fs");
    git::init(fs, epoch());
    let mut files = vec![(TODO.to_owned(), "# TODO\n".to_owned())];
    for slot in 0..PROCS {
        files.push((own(slot), format!("{slot}\n")));
    }
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    git::seed(fs, &files, epoch());
}

/// A baton task's edit: its tag appended to `path`, written atomically
/// (a machine crash leaves the old file or the new one).
fn append(env: &SimEnv, path: &str, tag: &str) -> std::io::Result<()> {
    let file = Path::new(WORK).join(path);
    let mut data = env.read(&file, 1 << 20)?;
    data.extend_from_slice(format!("{tag}\n").as_bytes());
    write_atomic(env, &file, &data).map_err(|e| e.cause)
}

/// The field's edit: its tag appended to `path` and the file saved in
/// place, as the workflows' tools and most editors save (no temp file, no
/// sync). The field scenarios run without machine crashes: durability is
/// not what they test, what gets staged is. Writing before trimming (the
/// file only grows here) keeps a process crash from leaving it emptied,
/// which would be a broken save rather than a broken commit protocol.
fn save_in_place(env: &SimEnv, path: &str, tag: &str) -> std::io::Result<()> {
    let file = Path::new(WORK).join(path);
    let mut data = env.read(&file, 1 << 20)?;
    data.extend_from_slice(format!("{tag}\n").as_bytes());
    let f = env.open(&file, false)?;
    f.write_all_at(&data, 0)?;
    f.set_len(data.len() as u64)
}

fn new_tag(env: &SimEnv, slot: usize) -> String {
    format!("p{slot}-{:06x}", env.random_u64() & 0xff_ffff)
}

fn lines(fs: &SimFs, oid: Option<&str>) -> Result<BTreeSet<String>, String> {
    let Some(oid) = oid else {
        return Ok(BTreeSet::new());
    };
    let data = read_object(fs, "blob", oid).map_err(|e| format!("blob {oid}: {e}"))?;
    Ok(String::from_utf8_lossy(&data)
        .lines()
        .map(str::to_owned)
        .collect())
}

/// The no-cross-commit oracle, on the final repository.
fn end(fs: &SimFs, oracle: &Oracle, whole: bool) -> Result<(), (Invariant, String)> {
    let broken = |e: std::io::Error| {
        (
            Invariant::NoLostUpdate,
            format!("repository unreadable: {e}"),
        )
    };
    let (_, mut at) = read_head(fs).map_err(broken)?;
    let mut committed = BTreeSet::new();
    while let Some(oid) = at {
        let c = read_commit(fs, &oid).map_err(broken)?;
        let Some(tag) = c.message.trim().strip_prefix("task ").map(str::to_owned) else {
            at = c.parent;
            continue;
        };
        let new = read_tree(fs, &c.tree).map_err(broken)?;
        let old = match &c.parent {
            Some(p) => read_tree(fs, &read_commit(fs, p).map_err(broken)?.tree).map_err(broken)?,
            None => Default::default(),
        };
        let mut paths: Vec<&String> = old.keys().chain(new.keys()).collect();
        paths.sort();
        paths.dedup();
        let mut touched = BTreeSet::new();
        for path in paths {
            let before = lines(fs, old.get(path).map(|e| e.oid.as_str()))
                .map_err(|e| (Invariant::NoLostUpdate, e))?;
            let after = lines(fs, new.get(path).map(|e| e.oid.as_str()))
                .map_err(|e| (Invariant::NoLostUpdate, e))?;
            for line in after.difference(&before) {
                if *line != tag {
                    return Err((
                        Invariant::NoCrossCommit,
                        format!(
                            "commit of task {tag} holds {line:?} in {path}, another task's edit"
                        ),
                    ));
                }
                touched.insert(path.clone());
            }
            if let Some(line) = before.difference(&after).next() {
                return Err((
                    Invariant::NoCrossCommit,
                    format!("commit of task {tag} removes {line:?} from {path}"),
                ));
            }
        }
        if whole {
            let slot: usize = tag[1..tag.find('-').unwrap_or(1)]
                .parse()
                .unwrap_or(usize::MAX);
            let want: BTreeSet<String> = scope_of(slot).into_iter().collect();
            if touched != want {
                return Err((
                    Invariant::NoCrossCommit,
                    format!(
                        "commit of task {tag} holds its edits to {touched:?}, not its whole scope {want:?}"
                    ),
                ));
            }
        }
        if !committed.insert(tag.clone()) {
            return Err((
                Invariant::NoCrossCommit,
                format!("task {tag} committed twice"),
            ));
        }
        at = c.parent;
    }
    for key in oracle.acked_keys() {
        if let Some(tag) = key.strip_prefix("task ")
            && !committed.contains(tag)
        {
            return Err((
                Invariant::NoLostUpdate,
                format!("task {tag}'s acknowledged commit is not on the branch"),
            ));
        }
    }
    Ok(())
}

/// Rounds a process gives up after (a liveness failure).
const ATTEMPTS: u32 = 100;

fn txn_body(env: &SimEnv, probe: &Probe, role: Role) {
    let git = SimGit::new(env);
    let repo = git.repo().expect("the simulated repository");
    let claims = Claims::new(Path::new(WORK).join(".baton/claims"), WORK);
    let scope = scope_of(role.index);
    for _ in 0..role.iters {
        let tag = new_tag(env, role.index);
        let message = format!("task {tag}");
        let who = Claimant {
            id: format!("p{}", role.index),
            task: message.clone(),
            ttl: None,
        };
        let plan = Plan {
            scope: &scope,
            who: &who,
            wait: Wait::For(Duration::from_secs(60)),
            message: &message,
        };
        for _ in 0..ATTEMPTS {
            let before = probe.injected();
            match txn::begin(env, &git, &repo, &claims, &plan) {
                Ok(Begun::Ready(t)) => {
                    if scope.iter().any(|p| append(env, p, &tag).is_err()) {
                        // An injected error mid-edit: give the attempt up;
                        // the next begin finds its journal and restores.
                        drop(t);
                        continue;
                    }
                    match t.commit(env, &git, &repo, true, false) {
                        Ok(Finished::Committed(_)) => {
                            probe.ack(&message);
                            probe.check(|fs, oracle| end(fs, oracle, true));
                            break;
                        }
                        Ok(Finished::Unchanged | Finished::Left(_)) => {
                            probe.violated(
                                Invariant::NoLostUpdate,
                                &format!("task {tag}'s edits vanished before its commit"),
                            );
                            return;
                        }
                        Err(e) => {
                            failed(probe, before, "commit", &e);
                            env.sleep(Duration::from_millis(50));
                        }
                    }
                }
                Ok(Begun::Conflict { .. }) => env.sleep(Duration::from_millis(20)),
                Ok(Begun::Dirty { paths, left_by }) => {
                    if !left_by.is_empty() && !left_by.iter().any(|e| txn::recoverable(env, e)) {
                        // A live transaction failed to commit: its owner
                        // recovers its scope.
                        env.sleep(Duration::from_millis(50));
                        continue;
                    }
                    let Some(dead) = left_by.iter().find(|e| txn::recoverable(env, e)) else {
                        probe.violated(
                            Invariant::NoCrossCommit,
                            &format!("scope {paths:?} differs from HEAD and no journal names who left it: the next transaction would commit it as its own"),
                        );
                        return;
                    };
                    probe.mark("recovered");
                    let rescuer = Claimant {
                        id: who.id.clone(),
                        task: "recover".into(),
                        ttl: None,
                    };
                    let _ = txn::recover(
                        env,
                        &git,
                        &repo,
                        &claims,
                        &dead.journal.txn,
                        &rescuer,
                        Recovery::Restore,
                    );
                }
                // An injected I/O error: back off and try again.
                Err(e) => {
                    failed(probe, before, "begin", &e);
                    env.sleep(Duration::from_millis(50));
                }
            }
        }
    }
}

/// Tells the oracle that `what` failed with `e`: a bounded wait for another
/// process's short hold that expired, or an error (see `Probe::busy_seen`,
/// `Probe::error_seen`).
fn failed(probe: &Probe, before: u32, what: &str, e: &TxnError) {
    let busy = match e {
        TxnError::Commit(c) => c.is_busy(),
        TxnError::Claim(c) => matches!(c, ClaimError::Busy { .. }),
        _ => false,
    };
    if busy {
        probe.busy_seen(what);
    } else {
        probe.error_seen(before, what, e);
    }
}

fn shared_index_body(env: &SimEnv, probe: &Probe, role: Role) {
    let git = SimGit::new(env);
    for _ in 0..role.iters {
        let tag = new_tag(env, role.index);
        let scope = field_scope(role.index);
        if scope.iter().any(|p| save_in_place(env, p, &tag).is_err()) {
            continue;
        }
        if git.add(&scope).is_err() {
            continue;
        }
        // `git add` and `git commit` are two processes: starting the
        // second takes a while.
        env.sleep(Duration::from_millis(2));
        if let Ok(Some(_)) = git.commit_index(&format!("task {tag}")) {
            probe.ack(&format!("task {tag}"));
            probe.check(|fs, oracle| end(fs, oracle, false));
        }
    }
}

/// What the workflows lock around staging and committing.
const STAGING_LOCK: &str = "specs-git-commit";

fn lock_staging_body(env: &SimEnv, probe: &Probe, role: Role) {
    let git = SimGit::new(env);
    let lock_file = Path::new(WORK).join(STAGING_LOCK);
    let opts = LockOptions::new(Mode::Kernel, Wait::Forever);
    for _ in 0..role.iters {
        let tag = new_tag(env, role.index);
        let scope = field_scope(role.index);
        // The edit happens outside the lock (the workflow's postflight).
        if scope.iter().any(|p| save_in_place(env, p, &tag).is_err()) {
            continue;
        }
        let Ok(Some(guard)) = lock::acquire(env, &lock_file, &opts, &mut |_| {}) else {
            continue;
        };
        if git.add(&scope).is_ok()
            && let Ok(Some(_)) = git.commit_index(&format!("task {tag}"))
        {
            probe.ack(&format!("task {tag}"));
            probe.check(|fs, oracle| end(fs, oracle, false));
        }
        let _ = guard.release();
    }
}

fn scenario_with(
    name: &str,
    whole: bool,
    body: impl Fn(&SimEnv, &Probe, Role) + Send + Sync + 'static,
) -> Scenario {
    let mut s = Scenario::new(name, PROCS, body);
    s.iters = 2;
    s.setup = Box::new(setup);
    s.end = Box::new(move |fs, oracle| end(fs, oracle, whole));
    s
}

pub fn commit_shared_index() -> Scenario {
    scenario_with("commit-shared-index", false, shared_index_body)
}

pub fn commit_lock_staging() -> Scenario {
    let mut s = scenario_with("commit-lock-staging", false, lock_staging_body);
    // A repository whose commit lock has been used before: its sidecar is
    // there (baton never removes one), as on every run after the first.
    s.setup = Box::new(|fs| {
        setup(fs);
        let sidecar = sidecar_path(&Path::new(WORK).join(STAGING_LOCK));
        fs.put(&sidecar, &padded(FREE_SIDECAR), epoch())
            .expect("fresh fs");
    });
    s
}

pub fn baton_txn() -> Scenario {
    let mut s = scenario_with("baton-txn", true, txn_body);
    s.faults = FaultKinds::ALL;
    s
}
