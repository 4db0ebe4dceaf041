//! Every model's verdict at 2 and 3 instances: the field's protocols yield
//! their shortest counterexample (breadth-first), baton's are exhaustively
//! clean and not vacuous.

use baton_core::catalogue::{Expect, Invariant};
use baton_model::{MODELS, check};

#[test]
fn every_model_matches_its_catalogued_expectation_at_two_and_three_instances() {
    for name in MODELS {
        for instances in [2, 3] {
            let v = check(name, instances).unwrap();
            assert!(
                v.vacuous.is_empty(),
                "{name}/{instances}: vacuous {:?}",
                v.vacuous
            );
            assert!(v.matches(), "{name}/{instances}: {v:#?}");
            assert!(v.unique_states > 1);
        }
    }
}

/// The actions of a counterexample, without their states.
fn actions(v: &baton_model::Verdict) -> Vec<&str> {
    v.counterexample[1..]
        .iter()
        .filter(|l| l.contains("  =>  "))
        .map(|l| l[4..].split("  =>  ").next().unwrap())
        .collect()
}

#[test]
fn naive_reap_breaks_under_each_fault_alone() {
    use baton_model::naive_reap::{Faults, check_with};
    let none = Faults {
        crashes: 0,
        pauses: 0,
        skew: 0,
    };
    // Without faults a lock is never judged stale: the model holds, and
    // the reap example is missing (that is what a fault-free run covers).
    let v = check_with(3, none);
    assert_eq!(v.violated, None, "{v:#?}");
    assert_eq!(v.vacuous, vec!["stale lock reaped"]);

    // A clock one tick ahead and one behind: a running holder's fresh lock
    // looks stale. No crash, no pause.
    let v = check_with(2, Faults { skew: 1, ..none });
    assert_eq!(v.violated, Some(Invariant::MutualExclusion), "{v:#?}");
    let a = actions(&v);
    assert!(
        a.iter()
            .all(|a| !a.starts_with("Crash") && !a.starts_with("Pause")),
        "{a:?}"
    );
    assert!(
        a.contains(&"Unlink(1)") || a.contains(&"Unlink(0)"),
        "{a:?}"
    );

    // A paused holder, same clocks: its lock is reaped while it holds.
    let v = check_with(2, Faults { pauses: 1, ..none });
    assert_eq!(v.violated, Some(Invariant::MutualExclusion), "{v:#?}");
    let a = actions(&v);
    assert!(a.iter().any(|a| a.starts_with("Pause")), "{a:?}");
    assert!(a.iter().all(|a| !a.starts_with("Crash")), "{a:?}");

    // A crashed holder and one waiter: reaping is correct...
    let v = check_with(2, Faults { crashes: 1, ..none });
    assert_eq!(v.violated, None, "{v:#?}");
    assert!(v.vacuous.is_empty());
    // ...but two waiters both judge it stale, and the slower one unlinks
    // the faster one's fresh lock: the double reaper.
    let v = check_with(3, Faults { crashes: 1, ..none });
    assert_eq!(v.violated, Some(Invariant::MutualExclusion), "{v:#?}");
    let a = actions(&v);
    assert!(a.iter().any(|a| a.starts_with("Crash")), "{a:?}");
    assert_eq!(
        a.iter().filter(|a| a.starts_with("Unlink")).count(),
        2,
        "{a:?}"
    );
    assert_eq!(
        a.iter().filter(|a| a.starts_with("Stat")).count(),
        2,
        "{a:?}"
    );
}

#[test]
fn naive_reap_catalogue_counterexample_ends_at_two_holders() {
    let v = check("naive-reap", 2).unwrap();
    assert_eq!(v.expect, Expect::Violates(Invariant::MutualExclusion));
    let two = v
        .counterexample
        .iter()
        .position(|l| l.contains("pcs: [Holding, Holding]"))
        .expect("the counterexample reaches two holders");
    assert_eq!(two, v.counterexample.len() - 1);
    for step in ["Tick", "Stat(", "Unlink("] {
        assert!(
            v.counterexample.iter().any(|l| l.contains(step)),
            "{step}: {:#?}",
            v.counterexample
        );
    }
}

#[test]
fn registry_rmw_counterexample_is_both_reading_before_either_writes() {
    let v = check("registry-rmw", 2).unwrap();
    assert_eq!(v.violated, Some(Invariant::SinglePrimary));
    let actions: Vec<_> = v.counterexample[1..].iter().map(|l| &l[4..]).collect();
    assert!(
        actions[0].starts_with("Read(") && actions[1].starts_with("Read("),
        "{actions:?}"
    );
    let two = v
        .counterexample
        .iter()
        .position(|l| l.matches("Primary").count() >= 2)
        .expect("two primaries");
    assert_eq!(two, 4, "{:#?}", v.counterexample);
}

#[test]
fn commits_on_a_shared_index_or_staging_lock_cross_and_baton_txn_does_not() {
    for (name, crosses) in [
        ("commit-shared-index", true),
        ("commit-lock-staging", true),
        ("baton-txn", false),
    ] {
        for tasks in [2, 3] {
            let v = check(name, tasks).unwrap();
            assert_eq!(v.violated.is_some(), crosses, "{name}/{tasks}: {v:#?}");
            if crosses {
                assert_eq!(v.violated, Some(Invariant::NoCrossCommit));
                // The last step is a commit holding another task's edit.
                let last = v.counterexample.last().unwrap();
                assert!(last.contains("Commit("), "{name}: {last}");
            }
        }
    }
}

#[test]
fn baton_models_make_progress_within_their_bounds_after_any_faults() {
    for name in [
        "baton-lock-kernel",
        "baton-lock-file",
        "baton-election",
        "baton-election-lease",
        "baton-election-lease-paused",
    ] {
        for instances in [2, 3] {
            let v = check(name, instances).unwrap();
            let p = v.progress.as_ref().expect("a progress check");
            assert!(p.holds(), "{name}/{instances}: {p:#?}");
            assert!(p.worst.unwrap() >= 1, "{name}: some state must need a step");
        }
    }
}

#[test]
fn lock_file_needs_both_identity_and_the_name_recheck() {
    use baton_model::lock_file::{Liveness, check_variant};
    let baton = check_variant(3, Liveness::Identity, true);
    assert!(baton.matches(), "{baton:#?}");

    // kill(pid, 0): a crashed owner's reused pid keeps its lock for ever.
    let v = check_variant(3, Liveness::PidOnly, true);
    assert_eq!(v.violated, Some(Invariant::Liveness), "{v:#?}");
    let a = actions(&v);
    assert_eq!(a.len(), 3, "{a:?}");
    assert!(
        a[1].starts_with("Crash") && a[2].starts_with("ReusePid"),
        "{a:?}"
    );
    assert!(
        v.counterexample
            .last()
            .unwrap()
            .contains("no fault-free path")
    );

    // No re-check of the name under the flock: the double reaper.
    let v = check_variant(3, Liveness::Identity, false);
    assert_eq!(v.violated, Some(Invariant::MutualExclusion), "{v:#?}");
    let a = actions(&v);
    assert_eq!(
        a.iter().filter(|a| a.starts_with("Unlink")).count(),
        2,
        "{a:?}"
    );
    assert!(a.iter().any(|a| a.starts_with("Crash")), "{a:?}");
}

#[test]
fn lease_mode_acts_alone_within_its_pause_bound_and_the_fence_orders_the_log_past_it() {
    use baton_model::lease;
    // Within the bound: one actor at a time, exhaustively (every_model...
    // checks the verdict); progress needs at most L + 6 fault-free steps,
    // and some state needs exactly that (a taker whose link came too late
    // to use its own lease).
    for paused in [false, true] {
        let v = lease::check(3, paused, true);
        assert!(v.matches(), "{v:#?}");
        let p = v.progress.as_ref().unwrap();
        assert_eq!(p.worst, Some(lease::PROGRESS_BOUND), "{p:#?}");
    }
    // Past it, without the fence: the paused primary's append lands after
    // its successor's.
    let v = lease::check(2, true, false);
    assert_eq!(v.violated, Some(Invariant::SinglePrimary), "{v:#?}");
    let a = actions(&v);
    let pause = a
        .iter()
        .position(|a| a.starts_with("Pause"))
        .expect("a pause");
    let appends: Vec<usize> = (0..a.len())
        .filter(|&i| a[i].starts_with("Append"))
        .collect();
    assert!(appends.len() >= 2, "{a:?}");
    let (first, last) = (appends[0], *appends.last().unwrap());
    assert!(pause < first && a[first] != a[last], "{a:?}");
    assert!(
        v.counterexample
            .last()
            .unwrap()
            .contains("log_went_back: true")
    );
}

#[test]
fn dir_election_survives_crashes_but_not_late_joiners_pauses_or_skew() {
    use baton_model::dir_election::{Faults, check_with};
    let none = Faults {
        late_joiners: false,
        crashes: 0,
        pauses: 0,
        skew: 0,
    };
    // Instances that start together and only crash: a dead primary's file
    // goes stale, is deleted, and the next smallest id takes over.
    let v = check_with(3, Faults { crashes: 1, ..none });
    assert_eq!(v.violated, None, "{v:#?}");
    assert!(v.vacuous.is_empty(), "{v:#?}");
    for (faults, needs) in [
        (
            Faults {
                late_joiners: true,
                ..none
            },
            "Create",
        ),
        (Faults { pauses: 1, ..none }, "Pause"),
        (Faults { skew: 1, ..none }, "Remove"),
    ] {
        let v = check_with(2, faults);
        assert_eq!(
            v.violated,
            Some(Invariant::SinglePrimary),
            "{faults:?}: {v:#?}"
        );
        let a = actions(&v);
        assert!(a.iter().any(|a| a.starts_with(needs)), "{faults:?}: {a:?}");
        assert!(a.iter().all(|a| !a.starts_with("Crash")), "{a:?}");
    }
    // With skew alone, a live primary's fresh file is deleted by a reader
    // whose clock runs ahead: no pause, no late joiner.
    let v = check_with(2, Faults { skew: 1, ..none });
    let a = actions(&v);
    assert!(a.iter().all(|a| !a.starts_with("Pause")), "{a:?}");
}

#[test]
fn a_transaction_without_the_compare_and_swap_loses_a_commit() {
    use baton_model::commits::{Variant, check};
    let v = check(Variant::Txn, 2);
    assert!(v.matches() && v.vacuous.is_empty(), "{v:#?}");
    let v = check(Variant::TxnNoCas, 2);
    assert_eq!(v.violated, Some(Invariant::NoLostUpdate), "{v:#?}");
    // Both stage on the same HEAD; the later ref write drops the earlier
    // commit.
    let a = actions(&v);
    let commits: Vec<_> = a.iter().filter(|a| a.starts_with("Commit")).collect();
    assert_eq!(commits.len(), 2, "{a:?}");
    assert_ne!(commits[0], commits[1]);
    let adds: Vec<usize> = (0..a.len()).filter(|&i| a[i].starts_with("Add")).collect();
    let first_commit = a.iter().position(|a| a.starts_with("Commit")).unwrap();
    assert!(
        adds.len() == 2 && adds.iter().all(|&i| i < first_commit),
        "{a:?}"
    );
}

#[test]
fn a_transaction_that_skips_the_clean_check_commits_a_dead_ones_edit() {
    use baton_model::commits::{Variant, check};
    let v = check(Variant::Txn, 3);
    assert!(v.matches() && v.vacuous.is_empty(), "{v:#?}");
    let v = check(Variant::TxnNoCleanCheck, 3);
    assert_eq!(v.violated, Some(Invariant::NoCrossCommit), "{v:#?}");
    let a = actions(&v);
    let crash = a
        .iter()
        .position(|a| a.starts_with("Crash"))
        .expect("a crash");
    // The dead task had edited the shared file; a live one claims it,
    // stages it and commits the dead one's line with its own.
    assert!(
        a[..crash].iter().any(|a| a.starts_with("EditShared")),
        "{a:?}"
    );
    assert!(a.last().unwrap().starts_with("Commit"), "{a:?}");
}

#[test]
fn lock_file_across_hosts_is_safe_and_never_reaps_by_observation_over_host_local_locks() {
    use baton_model::lock_file::{PROGRESS_BOUND_HOSTS, check_hosts};
    // Kernel locks carried between hosts (NFS's default): a holder on the
    // other host is never reaped while it lives, however long it pauses;
    // a dead one's lock is reaped once seen silent for the stale bound.
    for procs in [2, 3] {
        let v = check_hosts(procs, true, 1, false);
        assert!(v.matches() && v.vacuous.is_empty(), "{v:#?}");
        let p = v.progress.as_ref().unwrap();
        assert!(p.holds() && p.worst <= Some(PROGRESS_BOUND_HOSTS), "{p:#?}");
    }
    // Host-local kernel locks (`local_lock=flock`), reaping by observation
    // anyway: a paused holder on the other host stops refreshing, is
    // judged stale and reaped...
    let v = check_hosts(2, false, 1, true);
    assert_eq!(v.violated, Some(Invariant::MutualExclusion), "{v:#?}");
    let a = actions(&v);
    let pause = a
        .iter()
        .position(|a| a.starts_with("Pause"))
        .expect("a pause");
    let unlink = a
        .iter()
        .position(|a| a.starts_with("Unlink"))
        .expect("a reap");
    assert!(pause < unlink, "{a:?}");
    // ...and with no pause, a crash: two reapers on different hosts, each
    // holding its own host's lock on the inode, both unlink.
    let v = check_hosts(3, false, 0, true);
    assert_eq!(v.violated, Some(Invariant::MutualExclusion), "{v:#?}");
    let a = actions(&v);
    assert!(a.iter().any(|a| a.starts_with("Crash")), "{a:?}");
    assert!(
        a.contains(&"Unlink(0)") && a.contains(&"Unlink(1)"),
        "{a:?}"
    );
    assert!(a.iter().all(|a| !a.starts_with("Pause")), "{a:?}");
    // baton's rule there: never reap another host's lock. Mutual exclusion
    // holds with pauses and crashes; what it costs is that a crashed holder
    // on the other host leaves its lock for a person to remove.
    for procs in [2, 3] {
        let v = check_hosts(procs, false, 1, false);
        assert_eq!(v.violated, Some(Invariant::Liveness), "{v:#?}");
        let a = actions(&v);
        assert!(
            a.contains(&"Crash(0)"),
            "the trap is a dead remote holder: {a:?}"
        );
        let last = v.counterexample.last().unwrap();
        assert!(last.contains("no fault-free path"), "{last}");
    }
}

#[test]
fn unknown_model_is_none() {
    assert!(check("no-such-model", 2).is_none());
}

#[test]
fn unlocked_state_update_loses_one_in_the_shortest_interleaving() {
    let v = check("state-rmw-unlocked", 2).unwrap();
    assert_eq!(v.violated, Some(Invariant::NoLostUpdate), "{v:#?}");
    // Both read 0, both write 1, both acknowledge.
    let a = actions(&v);
    assert_eq!(
        a.iter().filter(|a| a.starts_with("Read")).count(),
        2,
        "{a:?}"
    );
    assert_eq!(
        a.iter().filter(|a| a.starts_with("Rename")).count(),
        2,
        "{a:?}"
    );
    assert!(a.iter().all(|a| !a.starts_with("Crash")), "{a:?}");
}

#[test]
fn writing_state_in_place_shows_an_empty_file_even_under_the_lock() {
    let v = check("state-write-in-place", 2).unwrap();
    assert_eq!(v.violated, Some(Invariant::NoTornState), "{v:#?}");
    let a = actions(&v);
    assert!(
        a == ["Lock(0)", "Truncate(0)"] || a == ["Lock(1)", "Truncate(1)"],
        "{a:?}"
    );
}

#[test]
fn a_shared_claims_list_lets_two_readers_both_claim() {
    let v = check("claims-shared-json", 2).unwrap();
    assert_eq!(v.violated, Some(Invariant::Claims), "{v:#?}");
    // Both read the empty list before either writes; no crash needed.
    let a = actions(&v);
    assert_eq!(a.len(), 4, "{a:?}");
    assert!(a[..2].iter().all(|a| a.starts_with("ReadList")), "{a:?}");
    assert!(a[2..].iter().all(|a| a.starts_with("WriteList")), "{a:?}");
}
