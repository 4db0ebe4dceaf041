//! `baton-election` (kernel mode): the primary holds `leader.lock`'s
//! `flock`; holding it, it reads the last epoch and writes the next one
//! (durably) before acting; it steps down by unlocking, or dies and the
//! kernel unlocks. Each process serves at most two terms.

use baton_core::catalogue::Invariant;
use stateright::{Model, Property};

use crate::check::{Checks, Verdict, exhaust, may_crash};
use crate::progress::Progress;
use crate::symmetry::Permutation;

const TERMS: u8 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pc {
    Campaign,
    /// Holding the lock: read `leader.json` next.
    ReadEpoch,
    /// Read this epoch: write epoch + 1 next.
    WriteEpoch {
        last: u8,
    },
    Acting {
        epoch: u8,
    },
    Done,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    pub flock: Option<u8>,
    /// The epoch in `leader.json`.
    pub epoch: u8,
    pub pcs: Vec<Pc>,
    pub terms: Vec<u8>,
    pub alive: Vec<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Flock(u8),
    ReadEpoch(u8),
    /// `write_atomic(leader.json, epoch + 1)`, then act.
    WriteEpoch(u8),
    /// Stop acting, then `flock(LOCK_UN)`.
    StepDown(u8),
    Crash(u8),
}

#[derive(Debug)]
pub struct KernelElection {
    pub procs: usize,
    pub crashes: usize,
}

fn acting(s: &State) -> Vec<u8> {
    (0..s.pcs.len())
        .filter(|&i| s.alive[i])
        .filter_map(|i| match s.pcs[i] {
            Pc::Acting { epoch } => Some(epoch),
            _ => None,
        })
        .collect()
}

impl Model for KernelElection {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![State {
            flock: None,
            epoch: 0,
            pcs: vec![Pc::Campaign; self.procs],
            terms: vec![0; self.procs],
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
                Pc::Campaign if s.flock.is_none() => actions.push(Action::Flock(p)),
                Pc::ReadEpoch => actions.push(Action::ReadEpoch(p)),
                Pc::WriteEpoch { .. } => actions.push(Action::WriteEpoch(p)),
                Pc::Acting { .. } => actions.push(Action::StepDown(p)),
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
                n.pcs[p as usize] = Pc::ReadEpoch;
            }
            Action::ReadEpoch(p) => n.pcs[p as usize] = Pc::WriteEpoch { last: s.epoch },
            Action::WriteEpoch(p) => {
                let Pc::WriteEpoch { last } = s.pcs[p as usize] else {
                    unreachable!()
                };
                n.epoch = last + 1;
                n.pcs[p as usize] = Pc::Acting { epoch: last + 1 };
            }
            Action::StepDown(p) => {
                n.flock = None;
                n.terms[p as usize] += 1;
                n.pcs[p as usize] = if n.terms[p as usize] < TERMS {
                    Pc::Campaign
                } else {
                    Pc::Done
                };
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
            // At most one acts, and it carries the newest epoch (so a
            // fenced sink would accept it).
            Property::always(Invariant::SinglePrimary.name(), |_, s: &State| {
                let acting = acting(s);
                acting.len() <= 1 && acting.iter().all(|&e| e == s.epoch)
            }),
            Property::sometimes("a later term after a crash", |_, s: &State| {
                s.alive.iter().any(|a| !a) && acting(s).iter().any(|&e| e >= 2)
            }),
        ]
    }
}

/// Processes renumbered in a canonical order: the election never
/// compares ids (whoever locks first leads).
pub fn representative(s: &State) -> State {
    let perm = Permutation::sorting(s.pcs.len(), |i| (s.pcs[i], s.terms[i], s.alive[i]));
    State {
        flock: s.flock.map(|p| perm.id(p)),
        pcs: perm.apply(&s.pcs),
        terms: perm.apply(&s.terms),
        alive: perm.apply(&s.alive),
        ..s.clone()
    }
}

/// Fault-free steps from anywhere to a primary acting: with no live
/// primary the kernel has freed the leader lock, so a campaigner locks
/// it, reads the epoch and writes the next.
pub const PROGRESS_BOUND: usize = 3;

pub fn check(procs: usize) -> Verdict {
    exhaust(
        "baton-election",
        procs,
        KernelElection {
            procs,
            crashes: procs - 1,
        },
        Checks {
            safety: &[Invariant::SinglePrimary],
            examples: &["a later term after a crash"],
            symmetry: Some(representative),
            progress: Some(Progress {
                what: "a live primary acts, or all are done",
                goal: |s| {
                    !acting(s).is_empty()
                        || (0..s.pcs.len()).all(|i| !s.alive[i] || s.pcs[i] == Pc::Done)
                },
                fault: |a| matches!(a, Action::Crash(_)),
                bound: PROGRESS_BOUND,
            }),
        },
    )
}
