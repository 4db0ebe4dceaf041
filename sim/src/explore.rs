//! Bounded-exhaustive exploration: every schedule of a small configuration
//! with few preemptions, under every placement of one fault.
//!
//! Random faults would make depth-first search non-exhaustive (the same
//! schedule prefix could draw different faults), so faults are not drawn
//! here (the seed still sets each process's clock): an outer loop places
//! one fault at each step of the fault-free run in turn (and none), and
//! for each placement the inner loop enumerates schedules depth-first with
//! the `dfs` strategy, changing the latest choice first. The faults placed
//! are a crash of the process making the call (unless the scenario is
//! crash-free), and where the scenario has them: a machine crash, a pause
//! of the scenario's longest (healing ends it), another tool removing the
//! first foreign target. Preemptions (choices that switch away from a
//! process that could run on) are bounded iteratively, as in CHESS: every
//! placement with none, then with at most one, up to [`MAX_PREEMPTIONS`],
//! so shallow bugs are found first.
//!
//! The bound, as [`bound`] states it: two processes, one round each, at
//! most [`MAX_PREEMPTIONS`] preemptions, at most one placed fault, at any
//! step of the fault-free run. "Exhausted" means every schedule and
//! placement within it ran.

use std::collections::BTreeMap;

use crate::fault::Placed;
use crate::run::{Check, Config, Scenario, run};
use crate::strategy::StrategyKind;

/// Schedules with more preemptions than this are not enumerated.
pub const MAX_PREEMPTIONS: usize = 2;

/// What exploring found: as for random seeds, with `seeds` counting
/// schedules.
#[derive(Clone, Debug)]
pub struct Exploration {
    pub check: Check,
    /// True when every schedule within the bounds was run.
    pub exhausted: bool,
}

/// The next script after a run that met `choices`, or `None` when the
/// space bounded by `max_preemptions` is exhausted.
pub(crate) fn next_script(choices: &[(u32, u32)], max_preemptions: usize) -> Option<Vec<u32>> {
    for i in (0..choices.len()).rev() {
        let (taken, options) = choices[i];
        let preemptions = choices[..i].iter().filter(|c| c.0 != 0).count() + 1;
        if taken + 1 < options && preemptions <= max_preemptions {
            let mut script: Vec<u32> = choices[..i].iter().map(|c| c.0).collect();
            script.push(taken + 1);
            return Some(script);
        }
    }
    None
}

/// The kinds of fault exploration places in `scenario`.
pub fn placeable(scenario: &Scenario) -> Vec<Placed> {
    let f = scenario.faults;
    [
        (!scenario.crash_free, Placed::Crash),
        (f.machine_crash, Placed::MachineCrash),
        (f.pause, Placed::Pause),
        (
            f.foreign && !scenario.foreign_targets.is_empty(),
            Placed::Foreign,
        ),
    ]
    .into_iter()
    .filter_map(|(on, kind)| on.then_some(kind))
    .collect()
}

/// The bound within which exploring `scenario` is exhaustive, in words.
pub fn bound(scenario: &Scenario) -> String {
    let kinds: Vec<&str> = placeable(scenario)
        .into_iter()
        .map(|k| match k {
            Placed::Crash => "crash",
            Placed::MachineCrash => "machine crash",
            Placed::Pause => "pause",
            Placed::Foreign => "foreign rm",
        })
        .collect();
    format!(
        "{} processes x 1 round, <= {MAX_PREEMPTIONS} preemptions, <= 1 fault placed at any step ({})",
        scenario.procs.min(2),
        if kinds.is_empty() {
            "none".to_owned()
        } else {
            kinds.join(", ")
        }
    )
}

/// Explores `scenario` with two processes and one round each, at most
/// `budget` schedules in all.
pub fn dfs(
    scenario: &Scenario,
    seed: u64,
    budget: u64,
    progress: &mut dyn FnMut(u64),
) -> Exploration {
    let base = Config {
        procs: scenario.procs.min(2),
        iters: 1,
        fault_budget: 0,
        ..scenario.config(StrategyKind::Dfs, seed)
    };
    let first = run(scenario, &base, false);
    // Crashes first, at every step (as before the other kinds were added,
    // so the shallow counterexamples found are the same), then the others.
    let kinds = placeable(scenario);
    let placements: Vec<Option<(u64, Placed)>> = std::iter::once(None)
        .chain(
            kinds
                .iter()
                .flat_map(|&kind| (1..=first.steps).map(move |step| Some((step, kind)))),
        )
        .collect();
    let mut out = Exploration {
        check: Check {
            seeds: 0,
            steps: 0,
            marks: BTreeMap::new(),
            failure: None,
            other: None,
        },
        exhausted: true,
    };
    for bound in 0..=MAX_PREEMPTIONS {
        for &placement in &placements {
            let mut script = Vec::new();
            loop {
                if out.check.seeds >= budget {
                    out.exhausted = false;
                    return out;
                }
                let config = Config {
                    script,
                    crash_at: placement.map(|(step, _)| step),
                    placed: placement.map_or(Placed::Crash, |(_, kind)| kind),
                    ..base.clone()
                };
                let report = run(scenario, &config, false);
                out.check.seeds += 1;
                out.check.steps += report.steps;
                progress(out.check.seeds);
                let choices = report.choices.clone();
                if out.check.take(scenario, report) {
                    return out;
                }
                match next_script(&choices, bound) {
                    None => break,
                    Some(next) => script = next,
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenarios;
    use crate::strategy::StrategyKind;

    #[test]
    fn exploration_places_every_fault_kind_the_scenario_has() {
        let foreign = scenarios::scenario("baton-lock-file-foreign").unwrap();
        assert_eq!(
            placeable(&foreign),
            [
                Placed::Crash,
                Placed::MachineCrash,
                Placed::Pause,
                Placed::Foreign
            ]
        );
        // Crash-free, and without machine crashes: pauses only.
        let noflock = scenarios::scenario("baton-lock-file-noflock").unwrap();
        assert_eq!(placeable(&noflock), [Placed::Pause]);
        assert!(bound(&noflock).contains("(pause)"), "{}", bound(&noflock));
    }

    #[test]
    fn a_placed_fault_round_trips_through_its_token_and_strikes_on_replay() {
        let s = scenarios::scenario("baton-lock-file-foreign").unwrap();
        for (kind, letter, line) in [
            (Placed::MachineCrash, "m", "MACHINE CRASH"),
            (Placed::Pause, "p", "PAUSE"),
            (Placed::Foreign, "f", "FOREIGN rm"),
            (Placed::Crash, "", "CRASH in"),
        ] {
            let config = Config {
                crash_at: Some(6),
                placed: kind,
                fault_budget: 0,
                ..s.config(StrategyKind::Dfs, 0)
            };
            let token = config.to_string();
            assert!(token.ends_with(&format!(":{letter}6")), "{token}");
            assert_eq!(token.parse::<Config>().unwrap(), config);
            let report = crate::replay(&s, &token).unwrap();
            assert!(
                report.trace.iter().any(|l| l.contains(line)),
                "{token}: no {line}"
            );
        }
        assert!("naive-reap:dfs:0:2:1:c:0:::x6".parse::<Config>().is_err());
    }

    #[test]
    fn scripts_enumerate_latest_choice_first_within_the_preemption_bound() {
        assert_eq!(next_script(&[(0, 2), (0, 3)], 2), Some(vec![0, 1]));
        assert_eq!(next_script(&[(0, 2), (2, 3)], 2), Some(vec![1]));
        assert_eq!(next_script(&[(1, 2), (1, 3)], 2), Some(vec![1, 2]));
        // Two preemptions already before the last choice: no third.
        assert_eq!(next_script(&[(1, 2), (1, 2), (0, 2)], 2), None);
        assert_eq!(next_script(&[(1, 2)], 2), None);
        // With no preemptions allowed there is one schedule.
        assert_eq!(next_script(&[(0, 2), (0, 3)], 0), None);
    }
}
