//! The catalogue's expectations, asserted: known-bad protocols are caught,
//! their shrunk counterexamples replay exactly, baton's protocols hold.

use baton_core::catalogue::{Expect, Invariant};
use baton_sim::{Finding, StrategyKind, check, replay, run, scenarios, shrink};

/// Seeds per scenario in the test suite (more in scripts/sim-soak.sh).
const SEEDS: u64 = 150;

#[test]
fn naive_reap_is_caught_violating_mutual_exclusion_and_replays_exactly() {
    let s = scenarios::scenario("naive-reap").unwrap();
    assert_eq!(s.expect, Expect::Violates(Invariant::MutualExclusion));
    let found = check(&s, StrategyKind::Random, 0, SEEDS, &mut |_| {});
    let failure = found.failure.expect("naive-reap's double reap is found");
    let small = shrink(&s, &failure);
    let v = small.violation.clone().unwrap();
    assert_eq!(v.finding, Finding::Invariant(Invariant::MutualExclusion));
    assert!(small.steps <= 30, "shrunk trace has {} steps", small.steps);
    let token = small.config.to_string();
    let again = replay(&s, &token).unwrap();
    assert_eq!(
        again.hash, small.hash,
        "replay reproduces the trace bit for bit"
    );
    assert_eq!(again.trace, small.trace);
    assert_eq!(again.violation, small.violation);
}

#[test]
fn field_election_protocols_are_caught_with_two_primaries_and_replay_exactly() {
    for name in ["registry-rmw", "registry-150ms", "dir-election"] {
        let s = scenarios::scenario(name).unwrap();
        assert_eq!(s.expect, Expect::Violates(Invariant::SinglePrimary));
        let found = check(&s, StrategyKind::Random, 0, SEEDS, &mut |_| {});
        let failure = found
            .failure
            .unwrap_or_else(|| panic!("{name}: two primaries not found in {SEEDS} seeds"));
        let small = shrink(&s, &failure);
        let v = small.violation.clone().unwrap();
        assert_eq!(
            v.finding,
            Finding::Invariant(Invariant::SinglePrimary),
            "{name}"
        );
        let again = replay(&s, &small.config.to_string()).unwrap();
        assert_eq!(again.hash, small.hash, "{name}: replay differs");
    }
}

#[test]
fn baton_protocols_hold_every_invariant_under_every_fault() {
    for name in [
        "baton-lock-kernel",
        "baton-lock-file",
        "baton-election",
        "baton-election-lease",
    ] {
        let s = scenarios::scenario(name).unwrap();
        assert_eq!(s.expect, Expect::Holds);
        let result = check(&s, StrategyKind::Random, 0, SEEDS, &mut |_| {});
        if let Some(f) = result.failure {
            let traced = run(&s, &f.config, true);
            panic!(
                "{name} broke {:?} (replay {})\n{}",
                f.violation,
                f.config,
                traced.trace.join("\n")
            );
        }
    }
}

#[test]
fn same_seed_same_run_other_seed_other_run() {
    let s = scenarios::scenario("baton-lock-file").unwrap();
    let a = run(&s, &s.config(StrategyKind::Random, 7), true);
    let b = run(&s, &s.config(StrategyKind::Random, 7), true);
    let c = run(&s, &s.config(StrategyKind::Random, 8), true);
    assert_eq!(a.hash, b.hash);
    assert_eq!(a.trace, b.trace);
    assert_ne!(a.hash, c.hash);
}

#[test]
fn replay_token_round_trips() {
    let s = scenarios::scenario("naive-reap").unwrap();
    let mut c = s.config(StrategyKind::Pct { depth: 3 }, 0xbeef);
    c.suppressed.extend([1, 4]);
    c.script = vec![0, 2, 1];
    let token = c.to_string();
    assert_eq!(token.parse::<baton_sim::Config>().unwrap(), c);
    assert!(
        "naive-reap:random:zz:1:1:1::"
            .parse::<baton_sim::Config>()
            .is_err()
    );
    assert!(replay(&s, "baton-lock-file:random:1:1:1:1::").is_err());
}

#[test]
fn lock_scenarios_exercise_every_fault_and_every_reaping_path() {
    let want = |name: &str, marks: &[&str]| {
        let s = scenarios::scenario(name).unwrap();
        let result = check(&s, StrategyKind::Random, 0, SEEDS, &mut |_| {});
        let missing: Vec<_> = marks
            .iter()
            .filter(|m| !result.marks.contains_key(**m))
            .collect();
        assert!(
            missing.is_empty(),
            "{name}: never ran {missing:?}; ran {:?}",
            result.marks
        );
    };
    let faults = [
        "crash",
        "machine-crash",
        "pause",
        "io-error",
        "pid-reuse",
        "clock-skew",
        "clock-jump",
    ];
    want("baton-lock-kernel", &[&faults[..], &["waited"]].concat());
    want(
        "baton-lock-file",
        &[
            &faults[..],
            &["waited", "reaped-owner-dead", "reaped-unchanged"],
        ]
        .concat(),
    );
}

#[test]
fn lease_mode_past_its_pause_bound_is_saved_by_the_fence() {
    // Pauses beyond the lease let an old primary resume and try to write:
    // the fence must reject it (and the end check finds every acknowledged
    // event exactly once). The mark proves the situation really arose.
    let s = scenarios::scenario("baton-election-lease-paused").unwrap();
    let result = check(&s, StrategyKind::Random, 0, SEEDS, &mut |_| {});
    assert!(
        result.failure.is_none(),
        "{:?}",
        result.failure.map(|f| f.violation)
    );
    assert!(
        result.marks.contains_key("fenced-stale-primary"),
        "no stale primary was fenced in {SEEDS} seeds: {:?}",
        result.marks
    );
}
