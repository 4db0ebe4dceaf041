//! Transactions on real repositories, as a library user meets them: a
//! scope claimed, checked clean, journaled, committed or left; overlapping
//! scopes kept apart; a dead transaction's edits found, named and
//! recovered; journals that are not baton's refused.
#![allow(clippy::disallowed_methods)]

use std::fs;

mod common;
use common::{git, init};

use baton_core::claims::{Claimant, Claims};
use baton_core::env::Processes;
use baton_core::env::git::{Git, Repo};
use baton_core::env::real::RealEnv;
use baton_core::env::real_git::CliGit;
use baton_core::lock::Wait;
use baton_core::txn::{self, Begun, Finished, Journal, Plan, Recovery, TxnError};

struct Fixture {
    _tmp: tempfile::TempDir,
    env: RealEnv,
    cli: CliGit,
    repo: Repo,
    claims: Claims,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    init(d, "Txn");
    fs::write(d.join("TODO.md"), "# TODO\n").unwrap();
    fs::write(d.join("a.txt"), "a\n").unwrap();
    fs::write(d.join("b.txt"), "b\n").unwrap();
    git(d, &["add", "."]);
    git(d, &["commit", "-q", "-m", "first"]);
    let env = RealEnv::new().unwrap();
    let cli = CliGit::new(d);
    let repo = cli.repo().unwrap();
    let claims = Claims::new(repo.git_dir.join("baton/claims"), &repo.work_tree);
    Fixture {
        _tmp: tmp,
        env,
        cli,
        repo,
        claims,
    }
}

fn who(id: &str) -> Claimant {
    Claimant {
        id: id.into(),
        task: format!("task of {id}"),
        ttl: None,
    }
}

fn scope(ps: &[&str]) -> Vec<String> {
    ps.iter().map(|p| (*p).to_owned()).collect()
}

fn append(f: &Fixture, path: &str, line: &str) {
    let p = f.repo.work_tree.join(path);
    let mut s = fs::read_to_string(&p).unwrap_or_default();
    s.push_str(line);
    s.push('\n');
    fs::write(p, s).unwrap();
}

fn journals(f: &Fixture) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(txn::journal_dir(&f.repo))
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn begin<'e>(
    f: &'e Fixture,
    sc: &[String],
    claimant: &Claimant,
    message: &str,
) -> Begun<'e, RealEnv> {
    let plan = Plan {
        scope: sc,
        who: claimant,
        wait: Wait::No,
        message,
    };
    txn::begin(&f.env, &f.cli, &f.repo, &f.claims, &plan).unwrap()
}

#[test]
fn a_transaction_commits_exactly_its_scope_and_leaves_no_journal() {
    let f = fixture();
    let sc = scope(&["TODO.md", "a.txt"]);
    let me = who("t1");
    let Begun::Ready(t) = begin(&f, &sc, &me, "task 1") else {
        panic!("a clean scope")
    };
    assert_eq!(t.journal.scope, sc);
    assert_eq!(t.journal.message, "task 1");
    assert_eq!(t.journal.id, "t1");
    assert_eq!(t.journal.pid, f.env.identity().pid);
    assert_eq!(t.claim_files().count(), 2);
    assert_eq!(journals(&f), [format!("{}.json", t.journal.txn)]);
    // The journal on disk is the one returned.
    let listed = txn::list(&f.env, &f.repo).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].journal, t.journal);
    assert!(!listed[0].dead);
    assert!(txn::recoverable(&f.env, &listed[0]), "this very process's");
    append(&f, "TODO.md", "- one");
    append(&f, "b.txt", "outside the scope");
    let Finished::Committed(c) = t.commit(&f.env, &f.cli, &f.repo, true, false).unwrap() else {
        panic!("edited")
    };
    assert_eq!(
        c.changes
            .iter()
            .map(|c| c.path.as_str())
            .collect::<Vec<_>>(),
        ["TODO.md"]
    );
    assert!(journals(&f).is_empty());
    assert!(txn::list(&f.env, &f.repo).unwrap().is_empty());
    // Its claims went with it.
    assert!(f.claims.status(&f.env).unwrap().is_empty());
    assert_eq!(
        git(&f.repo.work_tree, &["log", "-1", "--format=%s"]),
        "task 1\n"
    );
}

#[test]
fn a_transaction_that_changed_nothing_is_unchanged_and_one_abandoned_keeps_its_edits() {
    let f = fixture();
    let sc = scope(&["a.txt"]);
    let Begun::Ready(t) = begin(&f, &sc, &who("t"), "nothing") else {
        panic!()
    };
    assert!(matches!(
        t.commit(&f.env, &f.cli, &f.repo, true, false).unwrap(),
        Finished::Unchanged
    ));
    assert!(journals(&f).is_empty());
    // Abandoned clean: gone.
    let Begun::Ready(t) = begin(&f, &sc, &who("t"), "clean") else {
        panic!()
    };
    assert!(matches!(
        t.abandon(&f.env, &f.cli, &f.repo).unwrap(),
        Finished::Unchanged
    ));
    assert!(journals(&f).is_empty());
    // Abandoned with edits: its journal stays to name them.
    let Begun::Ready(t) = begin(&f, &sc, &who("t"), "edited") else {
        panic!()
    };
    let name = t.journal.txn.clone();
    append(&f, "a.txt", "edit");
    match t.abandon(&f.env, &f.cli, &f.repo).unwrap() {
        Finished::Left(paths) => assert_eq!(paths, sc),
        other => panic!("{other:?}"),
    }
    assert_eq!(journals(&f), [format!("{name}.json")]);
    // The next transaction over it is told, and by whom.
    match begin(&f, &sc, &who("u"), "next") {
        Begun::Dirty { paths, left_by } => {
            assert_eq!(paths, sc);
            assert_eq!(left_by.len(), 1);
            assert_eq!(left_by[0].journal.txn, name);
        }
        other => panic!("{other:?}"),
    }
    // A scope beside it is not held up.
    assert!(matches!(
        begin(&f, &scope(&["b.txt"]), &who("v"), "beside"),
        Begun::Ready(_)
    ));
}

#[test]
fn overlapping_scopes_wait_for_each_other_and_disjoint_ones_do_not() {
    let f = fixture();
    let Begun::Ready(first) = begin(&f, &scope(&["TODO.md", "a.txt"]), &who("one"), "one") else {
        panic!()
    };
    match begin(&f, &scope(&["TODO.md"]), &who("two"), "two") {
        Begun::Conflict { path, holder } => {
            assert_eq!(path, "TODO.md");
            assert_eq!(holder.id, "one");
        }
        other => panic!("{other:?}"),
    }
    let Begun::Ready(other) = begin(&f, &scope(&["b.txt"]), &who("three"), "three") else {
        panic!("disjoint")
    };
    drop(other);
    drop(first);
}

#[test]
fn a_dead_transactions_scope_is_restored_or_committed_on_request() {
    for how in [Recovery::Restore, Recovery::Commit] {
        let f = fixture();
        let sc = scope(&["a.txt"]);
        // A transaction whose process died mid-task: its edit in the work
        // tree, its journal naming a pid that is gone.
        let Begun::Ready(t) = begin(&f, &sc, &who("dead"), "dead's work") else {
            panic!()
        };
        append(&f, "a.txt", "dead's edit");
        let mut journal: Journal = t.journal.clone();
        drop(t); // its claims die with it
        let file = txn::journal_dir(&f.repo).join(format!("{}.json", journal.txn));
        fs::remove_file(&file).unwrap();
        journal.pid = 4_194_999;
        journal.txn = format!("4194999-1-{}", &journal.txn[journal.txn.len() - 8..]);
        let file = txn::journal_dir(&f.repo).join(format!("{}.json", journal.txn));
        fs::write(&file, serde_json::to_vec(&journal).unwrap()).unwrap();
        let listed = txn::list(&f.env, &f.repo).unwrap();
        assert!(listed[0].dead);
        assert!(txn::recoverable(&f.env, &listed[0]));
        match begin(&f, &sc, &who("next"), "next") {
            Begun::Dirty { left_by, .. } => assert_eq!(left_by[0].journal.txn, journal.txn),
            other => panic!("{other:?}"),
        }
        let rescuer = who("rescuer");
        assert!(matches!(
            txn::recover(&f.env, &f.cli, &f.repo, &f.claims, "no-such", &rescuer, how),
            Err(TxnError::Unknown(_))
        ));
        let done = txn::recover(
            &f.env,
            &f.cli,
            &f.repo,
            &f.claims,
            &journal.txn,
            &rescuer,
            how,
        )
        .unwrap();
        let content = fs::read_to_string(f.repo.work_tree.join("a.txt")).unwrap();
        match how {
            Recovery::Restore => {
                assert!(done.is_none());
                assert_eq!(content, "a\n");
            }
            Recovery::Commit => {
                assert!(done.is_some());
                assert_eq!(content, "a\ndead's edit\n");
                assert_eq!(
                    git(&f.repo.work_tree, &["log", "-1", "--format=%s"]),
                    "dead's work\n"
                );
            }
        }
        assert!(journals(&f).is_empty(), "{how:?}");
        assert!(matches!(
            begin(&f, &sc, &who("next"), "next"),
            Begun::Ready(_)
        ));
    }
}

/// `/proc/PID/stat` field 22: the process's start, in clock ticks.
fn start_time_of(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    after_comm.split(' ').nth(19).unwrap().parse().unwrap()
}

#[test]
fn a_live_transaction_is_never_recovered_under_it() {
    let f = fixture();
    let sc = scope(&["a.txt"]);
    let Begun::Ready(t) = begin(&f, &sc, &who("live"), "live") else {
        panic!()
    };
    let mut journal = t.journal.clone();
    // Another live process's journal: pid 1's, with its true start time.
    journal.pid = 1;
    journal.start_time = start_time_of(1);
    journal.txn = "1-0-00000001".into();
    let file = txn::journal_dir(&f.repo).join("1-0-00000001.json");
    fs::write(&file, serde_json::to_vec(&journal).unwrap()).unwrap();
    let entry = txn::list(&f.env, &f.repo)
        .unwrap()
        .into_iter()
        .find(|e| e.journal.txn == "1-0-00000001")
        .unwrap();
    assert!(!entry.dead, "pid 1 is alive");
    assert!(!txn::recoverable(&f.env, &entry));
    match txn::recover(
        &f.env,
        &f.cli,
        &f.repo,
        &f.claims,
        "1-0-00000001",
        &who("r"),
        Recovery::Restore,
    ) {
        Err(TxnError::Running { pid, .. }) => assert_eq!(pid, 1),
        other => panic!("{other:?}"),
    }
    // Another boot of this host: dead. Another host: cannot be judged.
    let me = f.env.identity();
    for (boot, host, dead) in [
        ("old-boot", me.host.as_str(), true),
        ("b", "elsewhere", false),
    ] {
        journal.boot_id = boot.into();
        journal.host = host.into();
        fs::write(&file, serde_json::to_vec(&journal).unwrap()).unwrap();
        let entry = txn::list(&f.env, &f.repo)
            .unwrap()
            .into_iter()
            .find(|e| e.journal.txn == "1-0-00000001")
            .unwrap();
        assert_eq!(entry.dead, dead, "{boot} on {host}");
    }
    drop(t);
}

#[test]
fn journals_torn_by_a_crash_are_dropped_and_foreign_ones_refused() {
    let f = fixture();
    let dir = txn::journal_dir(&f.repo);
    assert!(txn::list(&f.env, &f.repo).unwrap().is_empty());
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("torn.json"), b"{\"baton\":1,\"txn\":\"x").unwrap();
    fs::write(dir.join("notes.txt"), b"not a journal name").unwrap();
    assert!(txn::list(&f.env, &f.repo).unwrap().is_empty());
    assert!(!dir.join("torn.json").exists());
    assert!(dir.join("notes.txt").exists());
    fs::write(dir.join("theirs.json"), b"{\"something\": \"else\"}").unwrap();
    match txn::list(&f.env, &f.repo) {
        Err(TxnError::Foreign(p)) => assert_eq!(p, dir.join("theirs.json")),
        other => panic!("{other:?}"),
    }
    assert!(dir.join("theirs.json").exists());
}

#[test]
fn only_journals_that_can_be_judged_are_judged_and_only_ones_own_are_recoverable_unjudged() {
    let f = fixture();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let Begun::Ready(t) = begin(&f, &scope(&["a.txt"]), &who("me"), "mine") else {
        panic!()
    };
    assert!(
        t.journal.started_at_ms >= before,
        "{}",
        t.journal.started_at_ms
    );
    let me = f.env.identity().clone();
    let dir = txn::journal_dir(&f.repo);
    let plant = |name: &str, j: &Journal| {
        fs::write(
            dir.join(format!("{name}.json")),
            serde_json::to_vec(j).unwrap(),
        )
        .unwrap();
    };
    let find = |name: &str| {
        txn::list(&f.env, &f.repo)
            .unwrap()
            .into_iter()
            .find(|e| e.journal.txn == name)
            .unwrap()
    };
    // Another pid namespace on this host and boot: its pid means nothing
    // here, so a pid that is not running here proves nothing.
    let other_ns = Journal {
        txn: "ns".into(),
        pid: 4_194_999,
        pid_ns: me.pid_ns + 1,
        ..t.journal.clone()
    };
    plant("ns", &other_ns);
    assert!(!find("ns").dead);
    // Our very pid, on another host: not us, not judged, not ours.
    let elsewhere = Journal {
        txn: "elsewhere".into(),
        host: "elsewhere".into(),
        boot_id: "its-boot".into(),
        ..t.journal.clone()
    };
    plant("elsewhere", &elsewhere);
    let e = find("elsewhere");
    assert!(!e.dead);
    assert!(!txn::recoverable(&f.env, &e));
    // Ours (this process's): recoverable though alive.
    let mine = find(&t.journal.txn);
    assert!(!mine.dead && txn::recoverable(&f.env, &mine));
    drop(t);
}

#[test]
fn journals_that_cannot_be_read_are_errors() {
    let f = fixture();
    let baton = f.repo.git_dir.join("baton");
    fs::write(&baton, "a file where baton's directory goes").unwrap();
    assert!(txn::list(&f.env, &f.repo).is_err());
    fs::remove_file(&baton).unwrap();
    fs::create_dir_all(txn::journal_dir(&f.repo).join("odd.json")).unwrap();
    assert!(txn::list(&f.env, &f.repo).is_err());
}
