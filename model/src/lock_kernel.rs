//! `baton-lock-kernel`: `flock` on a sidecar that is never unlinked. A
//! crash releases the dead process's lock (the kernel closes its
//! descriptors).
//!
//! Assumed, not modelled: nothing but baton unlinks the sidecar (a user's
//! `rm` or `git clean -x` of a held sidecar lets the next process create a
//! new one; no lock file protocol survives its file being deleted).

use baton_core::catalogue::Invariant;
use stateright::{Model, Property};

use crate::check::{Checks, Verdict, exhaust, may_crash};
use crate::progress::Progress;
use crate::symmetry::Permutation;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pc {
    Wait,
    Holding,
    Done,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// Which process's open description holds the sidecar's `flock`.
    pub flock: Option<u8>,
    pub pcs: Vec<Pc>,
    pub alive: Vec<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// `flock(LOCK_EX)` returns (the kernel woke this waiter).
    Flock(u8),
    /// Clear the record, `flock(LOCK_UN)`.
    Unlock(u8),
    Crash(u8),
}

#[derive(Debug)]
pub struct KernelLock {
    pub procs: usize,
    pub crashes: usize,
}

fn holders(s: &State) -> usize {
    (0..s.pcs.len())
        .filter(|&i| s.alive[i] && s.pcs[i] == Pc::Holding)
        .count()
}

impl Model for KernelLock {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![State {
            flock: None,
            pcs: vec![Pc::Wait; self.procs],
            alive: vec![true; self.procs],
        }]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        for i in 0..self.procs {
            if !s.alive[i] {
                continue;
            }
            let p = i as u8;
            match s.pcs[i] {
                Pc::Wait if s.flock.is_none() => actions.push(Action::Flock(p)),
                Pc::Holding => actions.push(Action::Unlock(p)),
                _ => {}
            }
            if s.pcs[i] != Pc::Done && may_crash(&s.alive, self.crashes) {
                actions.push(Action::Crash(p));
            }
        }
    }

    fn next_state(&self, s: &State, action: Action) -> Option<State> {
        let mut n = s.clone();
        match action {
            Action::Flock(p) => {
                n.flock = Some(p);
                n.pcs[p as usize] = Pc::Holding;
            }
            Action::Unlock(p) => {
                n.flock = None;
                n.pcs[p as usize] = Pc::Done;
            }
            Action::Crash(p) => {
                n.alive[p as usize] = false;
                if s.flock == Some(p) {
                    n.flock = None;
                }
            }
        }
        Some(n)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(Invariant::MutualExclusion.name(), |_, s: &State| {
                holders(s) <= 1
            }),
            Property::sometimes("lock taken after a holder crashed", |_, s: &State| {
                holders(s) == 1 && s.alive.iter().any(|a| !a)
            }),
        ]
    }
}

/// Processes renumbered in a canonical order (ids are never compared).
pub fn representative(s: &State) -> State {
    let perm = Permutation::sorting(s.pcs.len(), |i| (s.pcs[i], s.alive[i]));
    State {
        flock: s.flock.map(|p| perm.id(p)),
        pcs: perm.apply(&s.pcs),
        alive: perm.apply(&s.alive),
    }
}

/// Fault-free steps from anywhere to a holder: with no live holder, the
/// kernel has freed the lock (a dead holder's descriptors are closed), so
/// one waiter's `flock` returns.
pub const PROGRESS_BOUND: usize = 1;

pub fn check(procs: usize) -> Verdict {
    exhaust(
        "baton-lock-kernel",
        procs,
        KernelLock {
            procs,
            crashes: procs - 1,
        },
        Checks {
            safety: &[Invariant::MutualExclusion],
            examples: &["lock taken after a holder crashed"],
            symmetry: Some(representative),
            progress: Some(Progress {
                what: "a live process holds the lock, or all are done",
                goal: |s| {
                    holders(s) == 1 || (0..s.pcs.len()).all(|i| !s.alive[i] || s.pcs[i] == Pc::Done)
                },
                fault: |a| matches!(a, Action::Crash(_)),
                bound: PROGRESS_BOUND,
            }),
        },
    )
}
