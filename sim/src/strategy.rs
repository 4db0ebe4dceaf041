//! Scheduling strategies: which runnable process makes the next call.
//!
//! - `random`: uniform among the runnable processes at every call.
//! - `pct`: probabilistic concurrency testing (Burckhardt et al., ASPLOS'10,
//!   as shuttle and Coyote implement it): random distinct priorities, the
//!   highest-priority runnable process always runs, and at `depth - 1`
//!   random steps the running process drops below everyone. A bug needing
//!   `d` ordering constraints is found with probability at least
//!   `1/(n·k^(d-1))` per run.
//! - `dfs`: follows a script of choices and records every choice point, so
//!   an outer loop can enumerate schedules exhaustively (see
//!   [`crate::explore`]). Past the script it keeps running the current
//!   process, so schedules are enumerated in order of preemptions.
//!
//! Every strategy logs its choices in the `dfs` script's terms (option 0
//! is the process that made the last call, the others in slot order), so
//! any run can be re-run as a `dfs` script and its schedule shrunk by
//! editing that script (see [`crate::run::shrink`]).
//!
//! shuttle's runtime is not used: its scheduler drives shuttle's own
//! threads and has no notion of virtual time, of a process blocked on a
//! simulated `flock` or asleep until a virtual deadline, or of a crash that
//! kills a thread mid-call. baton's kernel decides which processes are
//! runnable; these strategies only choose among them, which is the part
//! shuttle's schedulers would do.

use std::collections::VecDeque;

use crate::fault::Site;
use crate::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrategyKind {
    Random,
    Pct { depth: u32 },
    Dfs,
}

impl StrategyKind {
    pub fn name(self) -> &'static str {
        match self {
            StrategyKind::Random => "random",
            StrategyKind::Pct { .. } => "pct",
            StrategyKind::Dfs => "dfs",
        }
    }
}

/// PCT's estimate of a run's length, for placing change points.
const PCT_STEPS: u64 = 3_000;

#[derive(Clone, Debug)]
pub struct Strategy {
    kind: StrategyKind,
    rng: Rng,
    priorities: Vec<u64>,
    change_points: Vec<u64>,
    script: Vec<u32>,
    /// Choices taken at each choice point with more than one option:
    /// (index taken, number of options).
    pub log: Vec<(u32, u32)>,
    /// A schedule to follow before the strategy takes over (a model
    /// checker's counterexample, replayed against production code).
    pub guide: VecDeque<GuideStep>,
    /// The process whose guided call was just scheduled: a crash step
    /// after it is for its next call, not this one.
    just_called: Option<usize>,
}

/// One step of a guided schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuideStep {
    /// Process `p` makes a call at this site.
    Call(usize, Site),
    /// Process `p` is killed at its next call.
    Crash(usize),
    /// Process `p` runs until it is about to make a call at this site,
    /// and waits there (a model's decision step, whose call comes later).
    Reach(usize, Site),
}

impl GuideStep {
    pub fn process(self) -> usize {
        match self {
            GuideStep::Call(p, _) | GuideStep::Crash(p) | GuideStep::Reach(p, _) => p,
        }
    }

    /// Whether a call at `pending` is this step (any call is, for a crash).
    fn is(self, pending: Option<Site>) -> bool {
        match self {
            GuideStep::Call(_, site) | GuideStep::Reach(_, site) => pending == Some(site),
            GuideStep::Crash(_) => pending.is_some(),
        }
    }
}

/// What following a guide decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guided {
    /// No guide (left): the strategy decides.
    Off,
    Run(usize),
    /// The next step's process is not runnable yet, and every runnable one
    /// would overtake its own next step: let time pass.
    Wait,
}

impl Strategy {
    pub fn new(kind: StrategyKind, seed: u64, procs: usize, script: Vec<u32>) -> Strategy {
        Strategy::with_horizon(kind, seed, procs, script, PCT_STEPS)
    }

    /// As [`Strategy::new`], with PCT's change points placed among the
    /// first `steps` calls (a real program's run length, measured).
    pub fn with_horizon(
        kind: StrategyKind,
        seed: u64,
        procs: usize,
        script: Vec<u32>,
        steps: u64,
    ) -> Strategy {
        let mut rng = Rng::stream(seed, 0x5C4E);
        let mut priorities = Vec::new();
        let mut change_points = Vec::new();
        if let StrategyKind::Pct { depth } = kind {
            let depth = u64::from(depth.max(1));
            priorities = (0..procs).map(|i| depth + i as u64).collect();
            for i in (1..priorities.len()).rev() {
                let j = rng.below(i as u64 + 1) as usize;
                priorities.swap(i, j);
            }
            change_points = (1..depth).map(|_| rng.below(steps.max(1))).collect();
        }
        Strategy {
            kind,
            rng,
            priorities,
            change_points,
            script,
            log: Vec::new(),
            guide: VecDeque::new(),
            just_called: None,
        }
    }

    /// Follows the guide: run the next step's process until it makes that
    /// call; meanwhile others may run, but not into their own next step.
    /// `pending[p]` is the call process `p` is about to make, if known.
    pub fn follow(&mut self, runnable: &[usize], pending: &[Option<Site>]) -> Guided {
        let step = loop {
            match self.guide.front() {
                None => return Guided::Off,
                Some(&GuideStep::Reach(p, site)) if pending[p] == Some(site) => {
                    self.guide.pop_front();
                }
                Some(&step) => break step,
            }
        };
        let p = step.process();
        if runnable.contains(&p) {
            // A crash is taken by the kernel at the call (see
            // `take_crash`); a call step is done once it is made.
            if matches!(step, GuideStep::Call(..)) && step.is(pending[p]) {
                self.guide.pop_front();
                self.just_called = Some(p);
            }
            return Guided::Run(p);
        }
        let next_of = |q: usize| self.guide.iter().find(|s| s.process() == q).copied();
        match runnable
            .iter()
            .find(|&&q| next_of(q).is_none_or(|s| !s.is(pending[q])))
        {
            Some(&q) => Guided::Run(q),
            None => Guided::Wait,
        }
    }

    /// Whether the guide kills `slot` at the call it is making now.
    pub fn take_crash(&mut self, slot: usize) -> bool {
        if self.just_called.take() == Some(slot) {
            return false;
        }
        let due = self.guide.front() == Some(&GuideStep::Crash(slot));
        if due {
            self.guide.pop_front();
        }
        due
    }

    /// Chooses among `runnable` (sorted, non-empty). `current` is the
    /// process that made the last call, if it can run on.
    pub fn pick(&mut self, runnable: &[usize], current: Option<usize>, step: u64) -> usize {
        debug_assert!(!runnable.is_empty());
        // The options in the dfs script's order: "keep running the current
        // process" first.
        let mut order: Vec<usize> = runnable.to_vec();
        if let Some(c) = current
            && let Some(pos) = order.iter().position(|&p| p == c)
        {
            order.remove(pos);
            order.insert(0, c);
        }
        // Random and pct draw (and pass change points) at every call, one
        // option or many, as they always have: seeds keep their schedules.
        let chosen = match self.kind {
            StrategyKind::Random => runnable[self.rng.below(runnable.len() as u64) as usize],
            StrategyKind::Pct { .. } => {
                for (i, &at) in self.change_points.iter().enumerate() {
                    if at == step
                        && let Some(c) = current
                    {
                        self.priorities[c] = i as u64;
                    }
                }
                *runnable
                    .iter()
                    .max_by_key(|&&p| self.priorities[p])
                    .expect("non-empty")
            }
            StrategyKind::Dfs if order.len() == 1 => order[0],
            StrategyKind::Dfs => {
                let choice = self.script.get(self.log.len()).copied().unwrap_or(0);
                order[choice.min(order.len() as u32 - 1) as usize]
            }
        };
        if order.len() == 1 {
            return chosen;
        }
        let taken = order
            .iter()
            .position(|&p| p == chosen)
            .expect("chosen among runnable");
        self.log.push((taken as u32, order.len() as u32));
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pct_runs_the_highest_priority_until_a_change_point() {
        let mut s = Strategy::new(StrategyKind::Pct { depth: 1 }, 1, 3, vec![]);
        let first = s.pick(&[0, 1, 2], None, 0);
        assert!((1..100).all(|step| s.pick(&[0, 1, 2], Some(first), step) == first));
    }

    #[test]
    fn dfs_follows_its_script_and_logs_choice_points() {
        let mut s = Strategy::new(StrategyKind::Dfs, 0, 3, vec![1, 0]);
        assert_eq!(s.pick(&[0, 1, 2], Some(0), 0), 1);
        assert_eq!(s.pick(&[0, 1, 2], Some(1), 1), 1);
        assert_eq!(s.pick(&[2], Some(1), 2), 2);
        assert_eq!(s.log, vec![(1, 3), (0, 3)]);
    }

    #[test]
    fn random_choices_are_logged_as_the_dfs_script_that_repeats_them() {
        let mut random = Strategy::new(StrategyKind::Random, 9, 3, vec![]);
        let runs: Vec<(Vec<usize>, Option<usize>)> = (0..200)
            .map(|i| {
                let all = vec![0, 1, 2];
                let runnable = if i % 7 == 0 { vec![1, 2] } else { all };
                (runnable, Some(i % 3))
            })
            .collect();
        let picked: Vec<usize> = runs
            .iter()
            .enumerate()
            .map(|(i, (r, c))| random.pick(r, *c, i as u64))
            .collect();
        let script = random.log.iter().map(|c| c.0).collect();
        let mut dfs = Strategy::new(StrategyKind::Dfs, 0, 3, script);
        let again: Vec<usize> = runs
            .iter()
            .enumerate()
            .map(|(i, (r, c))| dfs.pick(r, *c, i as u64))
            .collect();
        assert_eq!(picked, again);
        assert!(picked.iter().any(|&p| p != picked[0]), "a real mix");
    }
}
