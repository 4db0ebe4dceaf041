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

#[test]
fn naive_reap_counterexample_is_the_shortest_double_holder() {
    let v = check("naive-reap", 2).unwrap();
    assert_eq!(v.expect, Expect::Violates(Invariant::MutualExclusion));
    // One creates; the lock ages; the other fails to create, stats it old,
    // unlinks it and creates its own: two holders after six actions
    // (breadth-first search finds no shorter path).
    let two = v
        .counterexample
        .iter()
        .position(|l| l.contains("pcs: [Holding, Holding]"))
        .expect("the counterexample reaches two holders");
    assert_eq!(two, 6, "{:#?}", v.counterexample);
    for step in ["Age", "Stat(", "Unlink("] {
        assert!(
            v.counterexample[..=two].iter().any(|l| l.contains(step)),
            "{step}"
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
fn unknown_model_is_none() {
    assert!(check("no-such-model", 2).is_none());
}
