//! The commit protocols in the simulator: the field's are caught crossing
//! commits and replay exactly; baton's transactions hold under every fault
//! and exercise their recovery path.

use baton_core::catalogue::{Expect, Invariant};
use baton_sim::{Finding, StrategyKind, check, replay, run, scenarios, shrink};

const SEEDS: u64 = 500;

#[test]
fn field_commit_protocols_cross_commits_and_replay_exactly() {
    for name in ["commit-shared-index", "commit-lock-staging"] {
        let s = scenarios::scenario(name).unwrap();
        assert_eq!(s.expect, Expect::Violates(Invariant::NoCrossCommit));
        let found = check(&s, StrategyKind::Random, 0, SEEDS, &mut |_| {});
        let failure = found
            .failure
            .unwrap_or_else(|| panic!("{name}: no cross-commit in {SEEDS} seeds"));
        let small = shrink(&s, &failure);
        let v = small.violation.clone().unwrap();
        assert_eq!(
            v.finding,
            Finding::Invariant(Invariant::NoCrossCommit),
            "{name}"
        );
        assert!(v.detail.contains("commit of task"), "{name}: {}", v.detail);
        let again = replay(&s, &small.config.to_string()).unwrap();
        assert_eq!(again.hash, small.hash, "{name}: replay differs");
        assert_eq!(again.violation, small.violation);
    }
}

#[test]
fn baton_txn_holds_under_every_fault_and_recovers_dead_transactions() {
    let s = scenarios::scenario("baton-txn").unwrap();
    assert_eq!(s.expect, Expect::Holds);
    for strategy in [StrategyKind::Random, StrategyKind::Pct { depth: 3 }] {
        let result = check(&s, strategy, 0, SEEDS, &mut |_| {});
        if let Some(f) = result.failure {
            let traced = run(&s, &f.config, true);
            panic!(
                "baton-txn broke {:?} (replay {})\n{}",
                f.violation,
                f.config,
                traced.trace.join("\n")
            );
        }
        if strategy == StrategyKind::Random {
            assert!(
                result.marks.contains_key("recovered"),
                "no dead transaction was ever recovered: {:?}",
                result.marks
            );
        }
    }
}
