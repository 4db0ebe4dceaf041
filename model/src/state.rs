//! State files: processes each add 1 to a number in one file.
//!
//! - `baton-state`: lock, read, replace atomically (rename), acknowledge,
//!   unlock.
//! - `baton-state-cas`: read without the lock; lock; replace only if the
//!   file still holds what was read, else unlock and read again.
//! - `state-rmw-unlocked` (seed 002 before the fix): read, replace, no
//!   lock: two readers of one value lose an update.
//! - `state-write-in-place`: under the lock, but truncate then write: the
//!   file is empty between the two (a reader or a crash sees it so).
//!
//! Assumed, not modelled: a rename is atomic and what it publishes was
//! synced first (the simulator checks the bytes and the machine crashes);
//! content compare-and-swap is modelled as comparing the value, which is
//! exact here since the value only grows.

use baton_core::catalogue::Invariant;
use stateright::{Model, Property};

use crate::check::{Checks, Verdict, exhaust, may_crash};
use crate::progress::Progress;
use crate::symmetry::Permutation;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    Locked,
    Cas,
    Unlocked,
    InPlace,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pc {
    Start,
    /// Holds the value it read (and, locked variants, the lock).
    Read(u8),
    /// In place: truncated, about to write `n`.
    Truncated(u8),
    /// Wrote; about to acknowledge (and unlock).
    Wrote,
    Done,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// The file's number; `None` while empty (truncated in place).
    pub file: Option<u8>,
    /// The sidecar's `flock` holder.
    pub lock: Option<u8>,
    pub pcs: Vec<Pc>,
    pub alive: Vec<bool>,
    /// Updates acknowledged to their callers.
    pub acked: u8,
    /// Compare-and-swap found the file changed and went round again.
    pub retried: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// `flock` returns.
    Lock(u8),
    /// Read the file.
    Read(u8),
    /// Compare-and-swap, under the lock: re-read and compare.
    Check(u8),
    /// Replace the file by rename with read + 1.
    Rename(u8),
    /// In place: `ftruncate(0)`, then `pwrite`.
    Truncate(u8),
    Write(u8),
    /// Acknowledge the update, unlock.
    Ack(u8),
    Crash(u8),
}

#[derive(Debug)]
pub struct StateModel {
    pub variant: Variant,
    pub procs: usize,
    pub crashes: usize,
}

impl StateModel {
    fn locks_first(&self) -> bool {
        matches!(self.variant, Variant::Locked | Variant::InPlace)
    }
}

impl Model for StateModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![State {
            file: Some(0),
            lock: None,
            pcs: vec![Pc::Start; self.procs],
            alive: vec![true; self.procs],
            acked: 0,
            retried: false,
        }]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        for i in 0..self.procs {
            if !s.alive[i] {
                continue;
            }
            let p = i as u8;
            let holds = s.lock == Some(p);
            match s.pcs[i] {
                Pc::Start if self.locks_first() && !holds => {
                    if s.lock.is_none() {
                        actions.push(Action::Lock(p));
                    }
                }
                Pc::Start => actions.push(Action::Read(p)),
                Pc::Read(_) => match self.variant {
                    Variant::Locked | Variant::Unlocked => actions.push(Action::Rename(p)),
                    Variant::InPlace => actions.push(Action::Truncate(p)),
                    Variant::Cas if holds => actions.push(Action::Check(p)),
                    Variant::Cas if s.lock.is_none() => actions.push(Action::Lock(p)),
                    Variant::Cas => {}
                },
                Pc::Truncated(_) => actions.push(Action::Write(p)),
                Pc::Wrote => actions.push(Action::Ack(p)),
                Pc::Done => {}
            }
            if s.pcs[i] != Pc::Done && may_crash(&s.alive, self.crashes) {
                actions.push(Action::Crash(p));
            }
        }
    }

    fn next_state(&self, s: &State, action: Action) -> Option<State> {
        let mut n = s.clone();
        match action {
            Action::Lock(p) => n.lock = Some(p),
            Action::Read(p) => {
                // An empty file reads as nothing to add to: the reader
                // would fail; it waits instead.
                n.pcs[p as usize] = Pc::Read(s.file?);
            }
            Action::Check(p) => {
                let Pc::Read(v) = s.pcs[p as usize] else {
                    unreachable!("checks after reading")
                };
                if s.file == Some(v) {
                    n.file = Some(v + 1);
                    n.pcs[p as usize] = Pc::Wrote;
                } else {
                    n.lock = None;
                    n.pcs[p as usize] = Pc::Start;
                    n.retried = true;
                }
            }
            Action::Rename(p) => {
                let Pc::Read(v) = s.pcs[p as usize] else {
                    unreachable!("renames after reading")
                };
                n.file = Some(v + 1);
                n.pcs[p as usize] = Pc::Wrote;
            }
            Action::Truncate(p) => {
                let Pc::Read(v) = s.pcs[p as usize] else {
                    unreachable!("truncates after reading")
                };
                n.file = None;
                n.pcs[p as usize] = Pc::Truncated(v);
            }
            Action::Write(p) => {
                let Pc::Truncated(v) = s.pcs[p as usize] else {
                    unreachable!("writes after truncating")
                };
                n.file = Some(v + 1);
                n.pcs[p as usize] = Pc::Wrote;
            }
            Action::Ack(p) => {
                n.acked += 1;
                n.pcs[p as usize] = Pc::Done;
                if s.lock == Some(p) {
                    n.lock = None;
                }
            }
            Action::Crash(p) => {
                n.alive[p as usize] = false;
                if s.lock == Some(p) {
                    n.lock = None;
                }
            }
        }
        // The locked variants read under the lock.
        if let Action::Lock(p) = action
            && self.locks_first()
        {
            n.pcs[p as usize] = Pc::Read(s.file?);
        }
        Some(n)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(Invariant::NoLostUpdate.name(), |_, s: &State| {
                s.file.is_none_or(|v| v >= s.acked)
            }),
            Property::always(Invariant::NoTornState.name(), |_, s: &State| {
                s.file.is_some()
            }),
            Property::sometimes("every update acknowledged", |m: &StateModel, s: &State| {
                usize::from(s.acked) == m.procs
            }),
            Property::sometimes("an update acknowledged after a crash", |_, s: &State| {
                s.acked > 0 && s.alive.iter().any(|a| !a)
            }),
            Property::sometimes(
                "compare-and-swap went round again",
                |m: &StateModel, s: &State| m.variant != Variant::Cas || s.retried,
            ),
        ]
    }
}

/// Processes renumbered in a canonical order (ids are never compared).
pub fn representative(s: &State) -> State {
    let perm = Permutation::sorting(s.pcs.len(), |i| (s.pcs[i], s.alive[i]));
    State {
        lock: s.lock.map(|p| perm.id(p)),
        pcs: perm.apply(&s.pcs),
        alive: perm.apply(&s.alive),
        ..s.clone()
    }
}

/// Progress: some live process has written and is about to acknowledge,
/// or every live process is done.
fn progressed(s: &State) -> bool {
    (0..s.pcs.len()).all(|i| !s.alive[i] || s.pcs[i] == Pc::Done)
        || (0..s.pcs.len()).any(|i| s.alive[i] && s.pcs[i] == Pc::Wrote)
}

/// Fault-free steps from anywhere to progress. Locked: take the free lock
/// (a dead holder's is freed by the kernel) with the read, rename: 2.
/// Compare-and-swap: a holder whose read went stale checks and lets go,
/// then one process reads, locks, checks and renames: 5.
pub const PROGRESS_BOUND_LOCKED: usize = 2;
pub const PROGRESS_BOUND_CAS: usize = 5;

pub fn check(variant: Variant, procs: usize) -> Verdict {
    let name = match variant {
        Variant::Locked => "baton-state",
        Variant::Cas => "baton-state-cas",
        Variant::Unlocked => "state-rmw-unlocked",
        Variant::InPlace => "state-write-in-place",
    };
    let (safety, examples): (&[Invariant], &[&str]) = match variant {
        Variant::Locked | Variant::Cas => (
            &[Invariant::NoLostUpdate, Invariant::NoTornState],
            &[
                "every update acknowledged",
                "an update acknowledged after a crash",
                "compare-and-swap went round again",
            ],
        ),
        Variant::Unlocked => (&[Invariant::NoLostUpdate], &[]),
        Variant::InPlace => (&[Invariant::NoTornState, Invariant::NoLostUpdate], &[]),
    };
    exhaust(
        name,
        procs,
        StateModel {
            variant,
            procs,
            crashes: procs.saturating_sub(1).min(1),
        },
        match variant {
            Variant::Locked | Variant::Cas => Checks {
                safety,
                examples,
                symmetry: Some(representative),
                progress: Some(Progress {
                    what: "an update is written, or all are done",
                    goal: progressed,
                    fault: |a| matches!(a, Action::Crash(_)),
                    bound: if variant == Variant::Locked {
                        PROGRESS_BOUND_LOCKED
                    } else {
                        PROGRESS_BOUND_CAS
                    },
                }),
            },
            // The field's variants: breadth first, for short counterexamples.
            Variant::Unlocked | Variant::InPlace => Checks {
                safety,
                examples,
                symmetry: None,
                progress: None,
            },
        },
    )
}
