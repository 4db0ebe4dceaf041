//! Bounded-exhaustive exploration: every schedule of a small configuration
//! with few preemptions, under every placement of one crash.
//!
//! Random faults would make depth-first search non-exhaustive (the same
//! schedule prefix could draw different faults), so faults are not drawn
//! here (the seed still sets each process's clock): an outer loop places
//! one crash at each step of the fault-free run in turn (and none), and for
//! each placement the inner loop enumerates schedules depth-first with the
//! `dfs` strategy, changing the latest choice first. Preemptions (choices
//! that switch away from a process that could run on) are bounded
//! iteratively, as in CHESS: every placement with none, then with at most
//! one, up to [`MAX_PREEMPTIONS`], so shallow bugs are found first.

use std::collections::BTreeMap;

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
fn next_script(choices: &[(u32, u32)], max_preemptions: usize) -> Option<Vec<u32>> {
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
    let crashes = if scenario.crash_free { 0 } else { first.steps };
    let placements: Vec<Option<u64>> = std::iter::once(None)
        .chain((1..=crashes).map(Some))
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
        for &crash_at in &placements {
            let mut script = Vec::new();
            loop {
                if out.check.seeds >= budget {
                    out.exhausted = false;
                    return out;
                }
                let config = Config {
                    script,
                    crash_at,
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
