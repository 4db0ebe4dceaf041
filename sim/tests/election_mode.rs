//! Elections under errors: an election directory from before modes were
//! recorded keeps the mode its files show, under injected I/O errors too
//! (a failed look at those files is an error, never "no files", which
//! would record the other mode and let a second primary in); a primary
//! stepping down hears of a failure to do so.

use std::path::Path;
use std::sync::{Arc, Mutex};

use baton_core::election::{self, Election, ElectionError, ElectionMode};
use baton_core::lock::Wait;
use baton_sim::fs::{EIO, Failing};
use baton_sim::{FaultKinds, StrategyKind, run};

#[test]
fn an_old_kernel_mode_directory_is_never_given_lease_mode() {
    let mut errors = 0;
    for seed in 0..400 {
        let outcome = Arc::new(Mutex::new(None));
        let sink = Arc::clone(&outcome);
        let mut s = baton_sim::Scenario::new("election-mode", 1, move |env, _, _| {
            let e = Election::new("/w/el");
            *sink.lock().unwrap() = Some(e.prepare(env, ElectionMode::Lease));
        });
        s.faults = FaultKinds {
            io_errors: true,
            ..FaultKinds::NONE
        };
        s.setup = Box::new(|fs| {
            let t = std::time::UNIX_EPOCH;
            fs.create_dir(Path::new("/w"), t).unwrap();
            fs.create_dir(Path::new("/w/el"), t).unwrap();
            fs.create_dir(Path::new("/w/el/members"), t).unwrap();
            // A term was held by kernel lock here; no mode record yet.
            fs.put(
                Path::new("/w/el/leader.json"),
                b"{\"epoch\":3,\"id\":\"a\",\"pid\":1,\"host\":\"h\",\"elected_at_ms\":0}\n",
                t,
            )
            .unwrap();
        });
        run(&s, &s.config(StrategyKind::Random, seed), false);
        match outcome.lock().unwrap().take() {
            Some(Ok(())) => panic!("seed {seed}: a kernel-mode directory took lease mode"),
            Some(Err(ElectionError::ModeMismatch { .. })) | None => {}
            Some(Err(_)) => errors += 1,
        }
    }
    assert!(errors > 10, "{errors}");
}

#[test]
fn a_step_down_that_fails_says_so() {
    for fail in [false, true] {
        let outcome = Arc::new(Mutex::new(None));
        let sink = Arc::clone(&outcome);
        let mut s = baton_sim::Scenario::new("step-down", 1, move |env, probe, _| {
            let e = Election::new("/w/el");
            let me = election::join(env, &e, "a").unwrap();
            let term = election::campaign(env, &e, &me, Wait::No, &mut |_| {})
                .unwrap()
                .unwrap();
            if fail {
                // Writing "free" back into the leader lock fails.
                probe.arrange(|fs| fs.write_fails = Some(Failing::next(EIO, 1)));
            }
            *sink.lock().unwrap() = Some(term.step_down().map_err(|e| e.to_string()));
        });
        s.setup = Box::new(|fs| {
            fs.create_dir(Path::new("/w"), std::time::UNIX_EPOCH)
                .unwrap();
        });
        let report = run(&s, &s.config(StrategyKind::Random, 0), false);
        assert!(report.violation.is_none(), "{:?}", report.violation);
        let got = outcome.lock().unwrap().take().unwrap();
        assert_eq!(got.is_err(), fail, "{got:?}");
    }
}

#[test]
fn a_dead_member_that_could_not_be_removed_fails_the_reap() {
    let mut met = 0;
    for seed in 0..2000 {
        let outcome = Arc::new(Mutex::new(None));
        let sink = Arc::clone(&outcome);
        let mut s = baton_sim::Scenario::new("reap-errors", 1, move |env, _, _| {
            let got = election::reap(env, &Election::new("/w/el"), false);
            *sink.lock().unwrap() = Some(got.map(|r| r.len()).map_err(|e| e.to_string()));
        });
        s.faults = FaultKinds {
            io_errors: true,
            ..FaultKinds::NONE
        };
        s.setup = Box::new(|fs| {
            let t = std::time::UNIX_EPOCH;
            for d in ["/w", "/w/el", "/w/el/members"] {
                fs.create_dir(Path::new(d), t).unwrap();
            }
            fs.put(
                Path::new("/w/el/members/dead.member"),
                b"{\"baton\":1,\"pid\":7}\n",
                t,
            )
            .unwrap();
        });
        let report = run(&s, &s.config(StrategyKind::Random, seed), true);
        let unlink_failed = report
            .trace
            .iter()
            .any(|l| l.contains("remove_file(/w/el/members/dead.member)") && !l.ends_with("ok"));
        if unlink_failed {
            met += 1;
            let got = outcome.lock().unwrap().take();
            assert!(
                matches!(got, Some(Err(_)) | None),
                "seed {seed}: {got:?} though the member file could not be removed"
            );
        }
    }
    assert!(met > 3, "{met}");
}
