//! A person's `rm` at a random moment, while baton reads what it may
//! remove: a state file, a dead election member, a torn transaction
//! journal. A file that vanishes between baton's listing or stat and its
//! next look is gone, not an error; with no fault injected, every call
//! succeeds.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use baton_core::election::{self, Election};
use baton_core::env::git::Git;
use baton_core::env::{Clock, Fs, Random};
use baton_core::txn;
use baton_sim::git::{self as simgit, SimGit};
use baton_sim::{StrategyKind, run};

/// Runs `op` against `target` removed by a second process a few steps in,
/// seed after seed; returns how many runs saw the file vanish under one
/// of baton's calls on it. `op` must succeed every time.
fn with_rm(
    target: &'static str,
    setup: fn(&mut baton_sim::fs::SimFs),
    op: fn(&baton_sim::SimEnv<'_>) -> Result<(), String>,
) -> u32 {
    let mut vanished = 0;
    for seed in 0..400 {
        let outcome = Arc::new(Mutex::new(None));
        let sink = Arc::clone(&outcome);
        let mut s = baton_sim::Scenario::new("person-rm", 2, move |env, _, role| {
            if role.index == 1 {
                for _ in 0..env.random_u64() % 12 {
                    env.monotonic();
                }
                let _ = env.remove_file(Path::new(target));
                return;
            }
            *sink.lock().unwrap() = Some(op(env));
        });
        s.setup = Box::new(setup);
        let report = run(&s, &s.config(StrategyKind::Random, seed), true);
        assert!(report.violation.is_none(), "{:?}", report.violation);
        let got = outcome.lock().unwrap().take().expect("finished");
        assert!(got.is_ok(), "seed {seed}: {got:?}");
        vanished += u32::from(report.trace.iter().any(|l| {
            l.contains(" p0 ") && l.contains(&format!("({target}")) && l.ends_with("ENOENT")
        }));
    }
    vanished
}

fn base(fs: &mut baton_sim::fs::SimFs) {
    fs.create_dir(Path::new("/w"), std::time::UNIX_EPOCH)
        .unwrap();
}

#[test]
fn a_state_file_removed_while_read_reads_as_missing() {
    let vanished = with_rm(
        "/w/state.json",
        |fs| {
            base(fs);
            fs.put(Path::new("/w/state.json"), b"[1]", std::time::UNIX_EPOCH)
                .unwrap();
        },
        |env| {
            let doc = baton_core::state::get(env, Path::new("/w/state.json"))
                .map_err(|e| e.to_string())?;
            if doc == b"[1]" || doc == b"null" {
                Ok(())
            } else {
                Err(format!("read {doc:?}"))
            }
        },
    );
    assert!(vanished > 5, "{vanished}");
}

const MEMBER: &str = "/w/el/members/dead.member";

fn election_tree(fs: &mut baton_sim::fs::SimFs) {
    base(fs);
    let t = std::time::UNIX_EPOCH;
    fs.create_dir(Path::new("/w/el"), t).unwrap();
    fs.create_dir(Path::new("/w/el/members"), t).unwrap();
    // A dead member's file: a baton record nobody holds locked.
    fs.put(Path::new(MEMBER), b"{\"baton\":1,\"pid\":7}\n", t)
        .unwrap();
}

#[test]
fn election_status_and_reap_take_a_member_removed_meanwhile_as_gone() {
    let vanished = with_rm(MEMBER, election_tree, |env| {
        election::status(env, &Election::new("/w/el")).map_err(|e| e.to_string())?;
        Ok(())
    });
    assert!(vanished > 5, "status: {vanished}");
    let vanished = with_rm(MEMBER, election_tree, |env| {
        election::reap(env, &Election::new("/w/el"), false).map_err(|e| e.to_string())?;
        Ok(())
    });
    assert!(vanished > 5, "reap: {vanished}");
}

const JOURNAL: &str = "/w/.git/baton/txn/torn.json";

#[test]
fn a_journal_removed_while_listed_is_gone_not_an_error() {
    let vanished = with_rm(
        JOURNAL,
        |fs| {
            base(fs);
            let t = std::time::UNIX_EPOCH;
            simgit::init(fs, t);
            fs.create_dir(Path::new("/w/.git/baton"), t).unwrap();
            fs.create_dir(Path::new("/w/.git/baton/txn"), t).unwrap();
            // Torn by a machine crash: listing removes it.
            fs.put(Path::new(JOURNAL), b"{\"baton\":1,\"tx", t).unwrap();
        },
        |env| {
            let repo = SimGit::new(env).repo().map_err(|e| e.to_string())?;
            let listed = txn::list(env, &repo).map_err(|e| e.to_string())?;
            assert!(listed.is_empty());
            assert_eq!(txn::journal_dir(&repo), PathBuf::from("/w/.git/baton/txn"));
            Ok(())
        },
    );
    assert!(vanished > 5, "{vanished}");
}
