//! Scoped commits landing at once, on the simulated git: every one lands,
//! and the losers of each compare-and-swap round queue behind each other
//! rather than all rebuilding again (about 2n rebuilds for n commits, not
//! n²/2). Only virtual time and the schedule vary, so the count is exact
//! for a seed; the bound is checked over many.

use std::path::Path;
use std::sync::{Arc, Mutex};

use baton_core::commit::{self, Request};
use baton_core::env::git::Git;
use baton_core::env::{Fs, OpenFile};
use baton_sim::git::{self, SimGit, WORK};
use baton_sim::{StrategyKind, run};

const PROCS: usize = 6;

/// Total compare-and-swap rounds of `PROCS` commits of distinct files,
/// all started together, under `seed` (6 commits land in 2 to 6 ms of
/// virtual time here; without the queue, retrying at once, in 18 rounds).
fn rounds(seed: u64) -> u32 {
    let total = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&total);
    let mut s = baton_sim::Scenario::new("commit-queue", PROCS, move |env, _, role| {
        let g = SimGit::new(env);
        let repo = g.repo().unwrap();
        let file = format!("f{}.txt", role.index);
        let f = env.open(&Path::new(WORK).join(&file), false).unwrap();
        f.write_all_at(b"changed\n", 0).unwrap();
        drop(f);
        let paths = vec![file];
        let req = Request {
            paths: &paths,
            message: "one of many",
            allow_empty: false,
            detach_ok: false,
            verify: false,
            attempts: commit::ATTEMPTS,
        };
        let done = commit::commit(env, &g, &repo, &req).unwrap();
        sink.lock().unwrap().push(done.attempts);
    });
    s.setup = Box::new(|fs| {
        let t = std::time::UNIX_EPOCH;
        fs.create_dir(Path::new(WORK), t).unwrap();
        git::init(fs, t);
        let files: Vec<(String, String)> = (0..PROCS)
            .map(|i| (format!("f{i}.txt"), "base\n".to_owned()))
            .collect();
        let files: Vec<(&str, &str)> = files
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        git::seed(fs, &files, t);
    });
    let report = run(&s, &s.config(StrategyKind::Random, seed), false);
    assert!(report.violation.is_none(), "{:?}", report.violation);
    let got = total.lock().unwrap().clone();
    assert_eq!(got.len(), PROCS, "every commit landed");
    // Nobody waits out the queue's 10 s patience on a lock it holds itself.
    assert!(
        report.virtual_ns < 1_000_000_000,
        "seed {seed}: {} ms to land {PROCS} commits",
        report.virtual_ns / 1_000_000
    );
    got.iter().sum()
}

#[test]
fn commits_landing_at_once_queue_instead_of_rebuilding_over_and_over() {
    let mut worst = 0;
    for seed in 0..40 {
        worst = worst.max(rounds(seed));
    }
    // n commits need n rounds at best; queued, about 2n at worst.
    assert!(
        worst <= 2 * PROCS as u32 + 2,
        "{worst} rounds for {PROCS} commits"
    );
}
