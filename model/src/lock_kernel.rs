//! `baton-lock-kernel`: `flock` on a sidecar that is never unlinked. A
//! crash releases the dead process's lock (the kernel closes its
//! descriptors).

use baton_core::catalogue::Invariant;
use stateright::{Model, Property};

use crate::check::{Verdict, exhaust, may_crash};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

pub fn check(procs: usize) -> Verdict {
    exhaust(
        "baton-lock-kernel",
        procs,
        KernelLock { procs, crashes: 1 },
        &[Invariant::MutualExclusion],
        &["lock taken after a holder crashed"],
    )
}
