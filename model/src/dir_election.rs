//! `dir-election` (seed 000): each instance creates its own file in a
//! directory (atomically), then lists the directory; the smallest id is
//! primary. One round: mtime refresh and stale cleanup are left out here
//! (the simulator runs them); the late joiner needs neither.

use std::collections::BTreeSet;

use baton_core::catalogue::Invariant;
use stateright::{Model, Property};

use crate::check::{Checks, Verdict, exhaust};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pc {
    Create,
    ReadDir,
    Primary,
    Standby,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// Ids with a file in the directory.
    pub files: BTreeSet<u8>,
    pub pcs: Vec<Pc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// `open(O_CREAT|O_EXCL)` of `DIR/ID.lock`.
    CreateOwnFile(u8),
    /// `read_dir`: primary if my id is the smallest listed.
    ReadDir(u8),
}

pub struct DirElection {
    pub procs: usize,
}

fn primaries(s: &State) -> usize {
    s.pcs.iter().filter(|p| **p == Pc::Primary).count()
}

impl Model for DirElection {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![State {
            files: BTreeSet::new(),
            pcs: vec![Pc::Create; self.procs],
        }]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        for (i, pc) in s.pcs.iter().enumerate() {
            let p = i as u8;
            match pc {
                Pc::Create => actions.push(Action::CreateOwnFile(p)),
                Pc::ReadDir => actions.push(Action::ReadDir(p)),
                _ => {}
            }
        }
    }

    fn next_state(&self, s: &State, action: Action) -> Option<State> {
        let mut n = s.clone();
        match action {
            Action::CreateOwnFile(p) => {
                n.files.insert(p);
                n.pcs[p as usize] = Pc::ReadDir;
            }
            Action::ReadDir(p) => {
                n.pcs[p as usize] = if s.files.first() == Some(&p) {
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
        "dir-election",
        procs,
        DirElection { procs },
        Checks {
            safety: &[Invariant::SinglePrimary],
            examples: &["a primary is elected"],
            symmetry: None,
            progress: None,
        },
    )
}
