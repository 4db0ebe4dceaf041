//! `registry-150ms` (seed 001's first fix): read the list of ids, write it
//! back with mine added, wait, read it again; the smallest id among the
//! list and myself is primary. Time is not modelled: the wait only lets
//! any interleaving happen, which is all the protocol's bug needs.

use std::collections::BTreeSet;

use baton_core::catalogue::Invariant;
use stateright::{Model, Property};

use crate::check::{Checks, Verdict, exhaust};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Pc {
    Read,
    /// Read this list: write it back with my id.
    Write {
        seen: BTreeSet<u8>,
    },
    /// Registered: read the list again and decide.
    Decide,
    Primary,
    Standby,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    pub list: BTreeSet<u8>,
    pub pcs: Vec<Pc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// `read` of the list file.
    Read(u8),
    /// `write` of the list as read, plus my id (last writer wins).
    Write(u8),
    /// After the delay: `read` again; smallest of the list and me wins.
    Decide(u8),
}

pub struct Registry150ms {
    pub procs: usize,
}

fn primaries(s: &State) -> usize {
    s.pcs.iter().filter(|p| **p == Pc::Primary).count()
}

impl Model for Registry150ms {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![State {
            list: BTreeSet::new(),
            pcs: vec![Pc::Read; self.procs],
        }]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        for (i, pc) in s.pcs.iter().enumerate() {
            let p = i as u8;
            match pc {
                Pc::Read => actions.push(Action::Read(p)),
                Pc::Write { .. } => actions.push(Action::Write(p)),
                Pc::Decide => actions.push(Action::Decide(p)),
                _ => {}
            }
        }
    }

    fn next_state(&self, s: &State, action: Action) -> Option<State> {
        let mut n = s.clone();
        match action {
            Action::Read(p) => {
                n.pcs[p as usize] = Pc::Write {
                    seen: s.list.clone(),
                }
            }
            Action::Write(p) => {
                let Pc::Write { seen } = &s.pcs[p as usize] else {
                    unreachable!()
                };
                n.list = seen.clone();
                n.list.insert(p);
                n.pcs[p as usize] = Pc::Decide;
            }
            Action::Decide(p) => {
                let smallest = s.list.iter().copied().chain([p]).min();
                n.pcs[p as usize] = if smallest == Some(p) {
                    Pc::Primary
                } else {
                    Pc::Standby
                };
            }
        }
        Some(n)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(Invariant::SinglePrimary.name(), |_, s: &State| {
                primaries(s) <= 1
            }),
            Property::sometimes("a primary is elected", |_, s: &State| primaries(s) == 1),
        ]
    }
}

pub fn check(procs: usize) -> Verdict {
    exhaust(
        "registry-150ms",
        procs,
        Registry150ms { procs },
        Checks {
            safety: &[Invariant::SinglePrimary],
            examples: &["a primary is elected"],
            symmetry: None,
            progress: None,
        },
    )
}
