//! `registry-rmw` (seed 001): read the lock file; if nobody is recorded,
//! write my id and I am primary. Read and write are two steps.

use baton_core::catalogue::Invariant;
use stateright::{Model, Property};

use crate::check::{Checks, Verdict, exhaust};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pc {
    Read,
    /// Read this holder (none, or an id): write or stand by next.
    Decide {
        seen: Option<u8>,
    },
    Primary,
    Standby,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    pub file: Option<u8>,
    pub pcs: Vec<Pc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// `read` of the lock file.
    Read(u8),
    /// `write` of my id if I read nobody; primary if I read nobody or me.
    WriteIfEmpty(u8),
}

pub struct RegistryRmw {
    pub procs: usize,
}

fn primaries(s: &State) -> usize {
    s.pcs.iter().filter(|p| **p == Pc::Primary).count()
}

impl Model for RegistryRmw {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![State {
            file: None,
            pcs: vec![Pc::Read; self.procs],
        }]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        for (i, pc) in s.pcs.iter().enumerate() {
            match pc {
                Pc::Read => actions.push(Action::Read(i as u8)),
                Pc::Decide { .. } => actions.push(Action::WriteIfEmpty(i as u8)),
                _ => {}
            }
        }
    }

    fn next_state(&self, s: &State, action: Action) -> Option<State> {
        let mut n = s.clone();
        match action {
            Action::Read(p) => n.pcs[p as usize] = Pc::Decide { seen: s.file },
            Action::WriteIfEmpty(p) => {
                let Pc::Decide { seen } = s.pcs[p as usize] else {
                    unreachable!()
                };
                n.pcs[p as usize] = match seen {
                    None => {
                        n.file = Some(p);
                        Pc::Primary
                    }
                    Some(id) if id == p => Pc::Primary,
                    Some(_) => Pc::Standby,
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
        "registry-rmw",
        procs,
        RegistryRmw { procs },
        Checks {
            safety: &[Invariant::SinglePrimary],
            examples: &["a primary is elected"],
            symmetry: None,
            progress: None,
        },
    )
}
