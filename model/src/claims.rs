//! Claims: processes claim overlapping sets of paths, edit, let go.
//! Process `i` wants `WANTS[i % 3]` over two files `x` and `y` in a
//! directory `d`: `{d}`, `{x}`, `{y, x}`, so a directory overlaps its
//! files and two sets overlap in opposite orders.
//!
//! - `baton-claims`: take the directory's lock; if no live claim
//!   overlaps, publish every claim (each file locked by its claimant),
//!   let the directory go; edit; remove the claims. A crash frees the
//!   process's locks: its claims are then dead, and the next scanner
//!   reaps them.
//! - `claims-shared-json` (seed 004 Option A): read the shared list; if
//!   nothing in it overlaps, write the list plus one's own entries (last
//!   writer wins); edit; write the list without them.
//!
//! Assumed, not modelled: publishing a claim file and reading a directory
//! are atomic (the simulator runs the real calls); detached claims
//! (expiry by the boot clock) are leases, with the lease model's caveat.

use baton_core::catalogue::Invariant;
use stateright::{Model, Property};

use crate::check::{Checks, Verdict, exhaust, may_crash};
use crate::progress::Progress;

/// Paths as bit sets over the two files: `d` covers both.
const X: u8 = 0b01;
const Y: u8 = 0b10;
const D: u8 = X | Y;
const WANTS: [u8; 3] = [D, X, Y | X];

fn wants(p: usize) -> u8 {
    WANTS[p % WANTS.len()]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    Baton,
    SharedJson,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pc {
    Start,
    /// Holds the claims directory's lock (baton), or has read the shared
    /// list, finding these files taken by others (shared JSON).
    Checking(u8),
    Editing,
    Done,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// baton: the claims directory's lock holder.
    pub dir_lock: Option<u8>,
    /// baton: the files covered by each process's published claims (alive
    /// while the process is; dead ones are reaped by the next scanner).
    /// Shared JSON: each process's entries in the shared list.
    pub claims: Vec<u8>,
    pub pcs: Vec<Pc>,
    pub alive: Vec<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// baton: `flock` the claims directory's sidecar.
    LockDir(u8),
    /// baton: scan; publish every claim or, on a conflict, let go.
    Publish(u8),
    /// Shared JSON: read the list.
    ReadList(u8),
    /// Shared JSON: write the list read plus one's own entries.
    WriteList(u8),
    /// Done editing: remove one's claims.
    Release(u8),
    Crash(u8),
}

#[derive(Debug)]
pub struct ClaimsModel {
    pub variant: Variant,
    pub procs: usize,
    pub crashes: usize,
}

/// Files covered by live claims of processes other than `p`.
fn others(s: &State, p: usize) -> u8 {
    (0..s.pcs.len())
        .filter(|&i| i != p && s.alive[i])
        .fold(0, |acc, i| acc | s.claims[i])
}

impl Model for ClaimsModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![State {
            dir_lock: None,
            claims: vec![0; self.procs],
            pcs: vec![Pc::Start; self.procs],
            alive: vec![true; self.procs],
        }]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        for i in 0..self.procs {
            if !s.alive[i] {
                continue;
            }
            let p = i as u8;
            match (self.variant, s.pcs[i]) {
                (Variant::Baton, Pc::Start) if s.dir_lock.is_none() => {
                    actions.push(Action::LockDir(p));
                }
                (Variant::Baton, Pc::Checking(_)) => actions.push(Action::Publish(p)),
                (Variant::SharedJson, Pc::Start) => actions.push(Action::ReadList(p)),
                (Variant::SharedJson, Pc::Checking(taken)) if taken & wants(i) == 0 => {
                    actions.push(Action::WriteList(p));
                }
                (_, Pc::Editing) => actions.push(Action::Release(p)),
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
            Action::LockDir(p) => {
                n.dir_lock = Some(p);
                n.pcs[p as usize] = Pc::Checking(0);
            }
            Action::Publish(p) => {
                let i = p as usize;
                n.dir_lock = None;
                if others(s, i) & wants(i) == 0 {
                    n.claims[i] = wants(i);
                    n.pcs[i] = Pc::Editing;
                } else {
                    n.pcs[i] = Pc::Start;
                }
            }
            Action::ReadList(p) => {
                // The list as written: a dead writer's entries stay until
                // they are five minutes old (far beyond this model).
                let taken = (0..s.pcs.len())
                    .filter(|&j| j != p as usize)
                    .fold(0, |acc, j| acc | s.claims[j]);
                n.pcs[p as usize] = Pc::Checking(taken);
            }
            Action::WriteList(p) => {
                let i = p as usize;
                // Last writer wins: entries written since our read are lost.
                let Pc::Checking(taken) = s.pcs[i] else {
                    unreachable!("writes after reading")
                };
                for j in 0..s.pcs.len() {
                    if j != i && s.claims[j] & !taken != 0 {
                        n.claims[j] &= taken;
                    }
                }
                n.claims[i] = wants(i);
                n.pcs[i] = Pc::Editing;
            }
            Action::Release(p) => {
                n.claims[p as usize] = 0;
                n.pcs[p as usize] = Pc::Done;
            }
            Action::Crash(p) => {
                let i = p as usize;
                n.alive[i] = false;
                if s.dir_lock == Some(p) {
                    n.dir_lock = None;
                }
                if self.variant == Variant::Baton {
                    // Its claim files' locks die with it: dead claims.
                    n.claims[i] = 0;
                }
            }
        }
        Some(n)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(Invariant::Claims.name(), |_, s: &State| {
                // No file edited by two live processes.
                let mut seen = 0u8;
                for i in 0..s.pcs.len() {
                    if s.alive[i] && s.pcs[i] == Pc::Editing {
                        if seen & wants(i) != 0 {
                            return false;
                        }
                        seen |= wants(i);
                    }
                }
                true
            }),
            Property::sometimes("a claim taken after its holder crashed", |_, s: &State| {
                s.alive.iter().any(|a| !a)
                    && (0..s.pcs.len()).any(|i| s.alive[i] && s.pcs[i] == Pc::Editing)
            }),
            Property::sometimes("every claimant done", |_, s: &State| {
                s.pcs.iter().all(|p| *p == Pc::Done)
            }),
        ]
    }
}

/// Fault-free steps from anywhere to a live claimant editing (or all
/// done): a dead claimant's claims and lock are gone with it, so with no
/// live editor a process takes the directory's lock and publishes: 2.
/// Processes are not interchangeable (each wants its own set), so there is
/// no symmetry reduction.
pub const PROGRESS_BOUND: usize = 2;

pub fn check(variant: Variant, procs: usize) -> Verdict {
    let (name, examples): (&'static str, &'static [&'static str]) = match variant {
        Variant::Baton => (
            "baton-claims",
            &[
                "a claim taken after its holder crashed",
                "every claimant done",
            ],
        ),
        Variant::SharedJson => ("claims-shared-json", &[]),
    };
    exhaust(
        name,
        procs,
        ClaimsModel {
            variant,
            procs,
            crashes: procs.saturating_sub(1).min(1),
        },
        Checks {
            safety: &[Invariant::Claims],
            examples,
            symmetry: None,
            progress: (variant == Variant::Baton).then_some(Progress {
                what: "a live claimant edits, or all are done",
                goal: |s: &State| {
                    (0..s.pcs.len()).any(|i| s.alive[i] && s.pcs[i] == Pc::Editing)
                        || (0..s.pcs.len()).all(|i| !s.alive[i] || s.pcs[i] == Pc::Done)
                },
                fault: |a| matches!(a, Action::Crash(_)),
                bound: PROGRESS_BOUND,
            }),
        },
    )
}
